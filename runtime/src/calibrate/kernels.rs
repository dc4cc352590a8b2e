//! The calibration kernels, as TT-Lang source text in the style of the guide.
//!
//! - [`gemm`]: a multi-core matmul laid out the way tt-metal's 2-D multicast matmul runs the
//!   GEMM_FLOPS benchmarks: each core owns a 2-D block of the output, K is streamed in chunks,
//!   the cores of column 0 read each `a` chunk from DRAM and multicast it along their row (from
//!   the reader thread), and the cores of row 0 read each `b` chunk and multicast it down their
//!   column (from the writer thread, which also writes the output). A multicast is the same block
//!   sent into one pipe per destination, which the timing model charges once at the multicast
//!   rate ([`crate::timing::Multicast`]).
//! - [`dram_read`]: every core streams its share of a tensor from DRAM into a circular buffer
//!   and the compute thread releases each block.
//! - [`eltwise_add`]: one core adds two tensors block by block, `tiles` tiles per block.

use std::fmt::Write;

/// A multi-core GEMM on a `gx` x `gy` grid: output `mt` x `nt` tiles, `kt` tiles of K streamed
/// `kb` at a time. Each core computes an `(mt / gy)` x `(nt / gx)` block; the caller checks the
/// divisions.
pub fn gemm(gx: u32, gy: u32, mt: usize, kt: usize, nt: usize, kb: usize) -> String {
    let mb = mt / gy as usize;
    let nb = nt / gx as usize;
    let steps = kt / kb;
    let mut s = String::new();
    let w = &mut s;
    // Writing to a String cannot fail.
    let _ = writeln!(
        w,
        r#"import ttl

@ttl.kernel(grid=({gx}, {gy}))
def gemm(a, b, out):
    a_cb = ttl.make_circular_buffer_like(a, shape=({mb}, {kb}), buffer_factor=2)
    b_cb = ttl.make_circular_buffer_like(b, shape=({kb}, {nb}), buffer_factor=2)
    acc_cb = ttl.make_circular_buffer_like(out, shape=({mb}, {nb}), buffer_factor=1)
    out_cb = ttl.make_circular_buffer_like(out, shape=({mb}, {nb}), buffer_factor=1)

    @ttl.compute()
    def compute():"#
    );
    if steps == 1 {
        let _ = writeln!(
            w,
            r#"        with a_cb.wait() as av, b_cb.wait() as bv, out_cb.reserve() as o:
            o.store(ttl.math.matmul(av, bv, o))"#
        );
    } else {
        let _ = writeln!(
            w,
            r#"        with a_cb.wait() as av, b_cb.wait() as bv, acc_cb.reserve() as acc:
            acc.store(ttl.math.matmul(av, bv, acc))"#
        );
        if steps > 2 {
            let _ = writeln!(
                w,
                r#"        for _ in range({}):
            with a_cb.wait() as av, b_cb.wait() as bv, acc_cb.wait() as acc:
                with acc_cb.reserve() as nacc:
                    nacc.store(ttl.math.matmul(av, bv, acc))"#,
                steps - 2
            );
        }
        let _ = writeln!(
            w,
            r#"        with a_cb.wait() as av, b_cb.wait() as bv, acc_cb.wait() as acc:
            with out_cb.reserve() as o:
                o.store(ttl.math.matmul(av, bv, acc))"#
        );
    }
    let _ = writeln!(
        w,
        r#"
    @ttl.datamovement()
    def dm_read():
        x, y = ttl.core(dims=2)
        for k in range({steps}):
            with a_cb.reserve() as blk:
                if x == 0:
                    tx = ttl.copy(a[y * {mb}:(y + 1) * {mb}, k * {kb}:(k + 1) * {kb}], blk)
                    tx.wait()
                    for i in range(1, {gx}):
                        tx = ttl.copy(blk, ttl.Pipe(src=(0, y), dst=(i, y)))
                        tx.wait()
                else:
                    tx = ttl.copy(ttl.Pipe(src=(0, y), dst=(x, y)), blk)
                    tx.wait()

    @ttl.datamovement()
    def dm_write():
        x, y = ttl.core(dims=2)
        for k in range({steps}):
            with b_cb.reserve() as blk:
                if y == 0:
                    tx = ttl.copy(b[k * {kb}:(k + 1) * {kb}, x * {nb}:(x + 1) * {nb}], blk)
                    tx.wait()
                    for j in range(1, {gy}):
                        tx = ttl.copy(blk, ttl.Pipe(src=(x, 0), dst=(x, j)))
                        tx.wait()
                else:
                    tx = ttl.copy(ttl.Pipe(src=(x, 0), dst=(x, y)), blk)
                    tx.wait()
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[y * {mb}:(y + 1) * {mb}, x * {nb}:(x + 1) * {nb}])
            tx.wait()"#
    );
    s
}

/// A streaming DRAM read on a `gx` x `gy` grid: core `(x, y)` reads tile rows
/// `[(y * gx + x) * rows, ...)` of a tensor `cols` tiles wide, one `1 x cols` block per step,
/// `rows` steps.
pub fn dram_read(gx: u32, gy: u32, rows: usize, cols: usize) -> String {
    format!(
        r#"import ttl

@ttl.kernel(grid=({gx}, {gy}))
def dram_read(inp):
    cb = ttl.make_circular_buffer_like(inp, shape=(1, {cols}), buffer_factor=4)

    @ttl.compute()
    def compute():
        for _ in range({rows}):
            with cb.wait() as blk:
                pass

    @ttl.datamovement()
    def dm_read():
        x, y = ttl.core(dims=2)
        base = (y * {gx} + x) * {rows}
        for r in range({rows}):
            with cb.reserve() as blk:
                tx = ttl.copy(inp[base + r:base + r + 1, 0:{cols}], blk)
                tx.wait()

    @ttl.datamovement()
    def dm_write():
        pass
"#
    )
}

/// A single-core elementwise add of two `1 x (blocks * tiles)`-tile tensors, `tiles` tiles per
/// block, double buffered.
pub fn eltwise_add(tiles: usize, blocks: usize) -> String {
    format!(
        r#"import ttl

@ttl.kernel(grid=(1, 1))
def add(lhs, rhs, out):
    l_cb = ttl.make_circular_buffer_like(lhs, shape=(1, {tiles}), buffer_factor=2)
    r_cb = ttl.make_circular_buffer_like(rhs, shape=(1, {tiles}), buffer_factor=2)
    o_cb = ttl.make_circular_buffer_like(out, shape=(1, {tiles}), buffer_factor=2)

    @ttl.compute()
    def compute():
        for _ in range({blocks}):
            with l_cb.wait() as l, r_cb.wait() as r, o_cb.reserve() as o:
                o.store(l + r)

    @ttl.datamovement()
    def dm_read():
        for i in range({blocks}):
            with l_cb.reserve() as blk:
                tx = ttl.copy(lhs[0:1, i * {tiles}:(i + 1) * {tiles}], blk)
                tx.wait()
            with r_cb.reserve() as blk:
                tx = ttl.copy(rhs[0:1, i * {tiles}:(i + 1) * {tiles}], blk)
                tx.wait()

    @ttl.datamovement()
    def dm_write():
        for i in range({blocks}):
            with o_cb.wait() as blk:
                tx = ttl.copy(blk, out[0:1, i * {tiles}:(i + 1) * {tiles}])
                tx.wait()
"#
    )
}
