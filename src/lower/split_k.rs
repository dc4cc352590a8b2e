//! A matmul kernel with K split over copies of its grid ([`crate::plan::Partition::k_split`]).
//! The first copy (grid rows `0..GRID_Y`) runs the kernel as it would without the split, over
//! the first part of K, and adds the other parts' partial sums of each product, which its
//! writer receives through pipes, before the epilogue. The cores of copy `s` (rows
//! `s * GRID_Y..`) take the same blocks over part `s` of K: A's chunks shared along their grid
//! row, B's down the column within the copy (or read by each core, for segments over several
//! grid rows), and each product's sums sent to the core `s * GRID_Y` rows up.

use ttfuse_runtime::ttl::ast::{BinOp, CmpOp, Expr, Stmt};

use super::blocks::{this_core, without_core_binding, Coords};
use super::compute::Buffer;
use super::emit::{
    add, assign, compare, copy, for_range, for_range_from, if_else, int, mul, name, pipe,
    read_into, reserve, store, wait, with,
};
use super::multicast::{part_shared_read, shared_read, Along};

/// `first` on the first copy's cores, `rest` on the others', each thread asking for its core
/// once.
pub(super) fn by_part(first: Vec<Stmt>, rest: Vec<Stmt>) -> Vec<Stmt> {
    vec![
        this_core(),
        if_else(
            compare(CmpOp::Lt, name("core_y"), name("GRID_Y")),
            without_core_binding(first),
            rest,
        ),
    ]
}

/// The first copy's compute after its K chunks, whose sum is in `acc`: the other `parts - 1`
/// parts' partial sums from `part`, added one by one, the last into `target`
/// (`(cb, reserved)`).
pub(super) fn reduction(
    acc: &Buffer,
    part: &Buffer,
    (cb, reserved): (&str, &str),
    parts: usize,
) -> Vec<Stmt> {
    let sum = |dst: (&str, &str)| {
        with(
            vec![
                (wait(&acc.cb), acc.v.clone()),
                (wait(&part.cb), part.v.clone()),
                (reserve(dst.0), dst.1.to_string()),
            ],
            vec![store(
                dst.1,
                Expr::bin(BinOp::Add, name(&acc.v), name(&part.v)),
            )],
        )
    };
    let mut out = Vec::new();
    if parts > 2 {
        let earlier = Expr::bin(BinOp::Sub, name("K_SPLIT"), int(2));
        out.push(for_range("_", earlier, vec![sum((&acc.cb, &acc.o))]));
    }
    out.push(sum((cb, reserved)));
    out
}

/// The first copy's writer, once a block's B chunks are passed: the other parts' partial sums
/// of the block, each from the core of the same column in its copy, into `part_cb`.
pub(super) fn receives(part_cb: &str) -> Vec<Stmt> {
    let src = (
        name("core_x"),
        add(name("core_y"), mul(name("s"), name("GRID_Y"))),
    );
    let receive = copy(pipe(src, (name("core_x"), name("core_y"))), name("blk"));
    vec![for_range_from(
        "s",
        int(1),
        name("K_SPLIT"),
        vec![with(vec![(reserve(part_cb), "blk".into())], receive)],
    )]
}

/// The threads of the cores past the first copy: `[compute, reader, writer]`, given the
/// compute of one block's K chunks of each product into `part_cb` (`chunks`), the block's
/// coordinates `c`, A's buffer and chunk source at `k` (`a`), and each product's B's (`bs`;
/// read by each core when `own_b`, as a block row's segments over several grid rows do, else
/// shared down the grid column within the copy).
pub(super) fn part_threads(
    chunks: Vec<Stmt>,
    c: &Coords,
    (a, bs, own_b): ((&str, Expr), &[(String, Expr)], bool),
    part_cb: &str,
) -> [Vec<Stmt>; 3] {
    let compute = vec![for_range("_", name("BLOCKS_PER_CORE"), chunks)];
    let send = with(
        vec![(wait(part_cb), "blk".into())],
        copy(
            name("blk"),
            pipe(
                (name("core_x"), name("core_y")),
                (
                    name("core_x"),
                    Expr::bin(BinOp::Sub, name("core_y"), name("part_y0")),
                ),
            ),
        ),
    );
    // A streams again for every product, each product's B with it, and the product's partial
    // sums go to the first copy once its chunks have passed.
    let mut reads = Vec::new();
    let mut writes = Vec::new();
    for (cb, src) in bs {
        reads.push(chunk_loop(shared_read(
            a.0,
            a.1.clone(),
            Along::Row,
            Some(name("kc")),
        )));
        let b_read = match own_b {
            true => read_into(cb, src.clone()),
            false => part_shared_read(cb, src.clone(), name("kc")),
        };
        writes.extend([chunk_loop(b_read), send.clone()]);
    }
    let read = part_block_loop(c, reads);
    let write = part_block_loop(c, writes);
    [compute, read, write]
}

/// `inner` for each of this core's blocks, its part (`part`, first grid row `part_y0`) and
/// its block's coordinates bound: the block the first copy's core of the same position takes.
fn part_block_loop(c: &Coords, inner: Vec<Stmt>) -> Vec<Stmt> {
    let floordiv = |a: Expr, b: Expr| Expr::bin(BinOp::FloorDiv, a, b);
    let position = Expr::bin(BinOp::Sub, name("core_y"), name("part_y0"));
    let mut body = vec![assign(
        "block",
        add(mul(name("core"), name("BLOCKS_PER_CORE")), name("i")),
    )];
    body.extend(c.stmts.iter().cloned());
    body.extend(inner);
    vec![
        assign("part", floordiv(name("core_y"), name("GRID_Y"))),
        assign("part_y0", mul(name("part"), name("GRID_Y"))),
        assign("core", add(mul(position, name("GRID_X")), name("core_x"))),
        for_range("i", name("BLOCKS_PER_CORE"), body),
    ]
}

/// `read` once per K chunk of this core's part (a split K's parts have two chunks or more),
/// with `k` the chunk's first tile.
fn chunk_loop(read: Stmt) -> Stmt {
    let chunk = add(mul(name("part"), name("K_CHUNKS")), name("kc"));
    for_range(
        "kc",
        name("K_CHUNKS"),
        vec![assign("k", mul(chunk, name("BLOCK_K"))), read],
    )
}
