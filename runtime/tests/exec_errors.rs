//! Every kernel error the executor promises: a clear message naming kernel, core, thread and
//! line (or CB / pipe), never a hang or a panic.

mod exec_util;

use exec_util::*;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{run_kernel, ExecError, FaultKind};
use ttfuse_runtime::tensor::Tensor;
use ttfuse_runtime::ttl::parse::parse_module;

fn indent(body: &str, n: usize) -> String {
    body.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(n)))
        .collect()
}

/// A `grid`-core kernel `k(x, out)` with the given setup lines and thread bodies.
fn kernel(grid: (u32, u32), setup: &str, compute: &str, read: &str, write: &str) -> String {
    format!(
        "import ttl\n\n@ttl.kernel(grid=({}, {}))\ndef k(x, out):\n{}\n    @ttl.compute()\n    def compute():\n{}\n    @ttl.datamovement()\n    def dm_read():\n{}\n    @ttl.datamovement()\n    def dm_write():\n{}",
        grid.0,
        grid.1,
        indent(setup, 4),
        indent(compute, 8),
        indent(read, 8),
        indent(write, 8)
    )
}

const SETUP: &str = "x_cb = ttl.make_circular_buffer_like(x, shape=(1, 1), buffer_factor=2)
out_cb = ttl.make_circular_buffer_like(out, shape=(1, 1), buffer_factor=2)";
const COMPUTE: &str = "with x_cb.wait() as a, out_cb.reserve() as o:
    o.store(ttl.math.abs(a))";
const READ: &str = "with x_cb.reserve() as blk:
    tx = ttl.copy(x[0, 0], blk)
    tx.wait()";
const WRITE: &str = "with out_cb.wait() as blk:
    tx = ttl.copy(blk, out[0, 0])
    tx.wait()";

fn fail(src: &str) -> (FaultKind, String) {
    let module = parse_module(src, "t.py").expect("parses");
    let mut args = [tensor(32, 32, 1, -1.0, 1.0), Tensor::zeros(32, 32)];
    match run_kernel(&module, "k", &wormhole(), &mut args) {
        Err(e @ ExecError::Kernel { kind, .. }) => (kind, e.to_string()),
        Err(e) => panic!("expected a kernel error, got {e}"),
        Ok(_) => panic!("expected an error from:\n{src}"),
    }
}

fn expect(src: &str, kind: FaultKind, parts: &[&str]) {
    let (k, msg) = fail(src);
    assert_eq!(k, kind, "{msg}");
    for p in parts {
        assert!(msg.contains(p), "`{p}` missing from: {msg}");
    }
}

/// Runs a `k(x, out)` kernel that must succeed and checks `out = |x|`; returns its warnings.
fn run_abs(src: &str) -> Vec<String> {
    let module = parse_module(src, "t.py").expect("parses");
    let x = tensor(32, 32, 1, -1.0, 1.0);
    let mut args = [x.clone(), Tensor::zeros(32, 32)];
    let r =
        run_kernel(&module, "k", &wormhole(), &mut args).unwrap_or_else(|e| panic!("{e}\n{src}"));
    let want: Vec<f32> = x.to_f32().iter().map(|v| v.abs()).collect();
    assert_close(&args[1], &want, 0.0, 0.0);
    r.warnings
}

#[test]
fn the_template_itself_runs() {
    let warnings = run_abs(&kernel((1, 1), SETUP, COMPUTE, READ, WRITE));
    assert!(warnings.is_empty(), "{warnings:?}");
}

#[test]
fn loop_count_mismatch_is_a_deadlock_listing_each_blocked_thread() {
    let compute =
        "for _ in range(2):\n    with x_cb.wait() as a, out_cb.reserve() as o:\n        o.store(a)";
    let write = "for _ in range(2):\n    with out_cb.wait() as blk:\n        tx = ttl.copy(blk, out[0, 0])\n        tx.wait()";
    expect(
        &kernel((1, 1), SETUP, compute, READ, write),
        FaultKind::Deadlock,
        &[
            "kernel `k`",
            "core (0, 0) thread `compute` at line 11 waits for a pushed block in CB `x_cb` (line 5)",
            "core (0, 0) thread `dm_write` at line 23 waits for a pushed block in CB `out_cb`",
        ],
    );
}

#[test]
fn blocks_pushed_and_never_consumed_are_a_warning_and_the_kernel_finishes() {
    // The reader pushes a second block that the compute thread never waits for.
    let read2 = format!("{READ}\n{READ}");
    let warnings = run_abs(&kernel((1, 1), SETUP, COMPUTE, &read2, WRITE));
    assert_eq!(
        warnings,
        ["kernel `k`, core (0, 0): CB `x_cb` (line 5) ends the kernel with 1 block(s) pushed but \
          never consumed (last pushed at line 18); every push normally has a matching wait and pop"]
    );
}

#[test]
fn a_block_waited_for_and_released_unread_is_a_warning_and_the_kernel_finishes() {
    // The reader pushes a second block; the compute thread waits for it and pops it without
    // reading it (which tt-lang's simulator rejects).
    let read2 = format!("{READ}\n{READ}");
    let compute = format!("{COMPUTE}\nwith x_cb.wait() as unused:\n    pass");
    let warnings = run_abs(&kernel((1, 1), SETUP, &compute, &read2, WRITE));
    assert_eq!(
        warnings,
        ["kernel `k`, core (0, 0): CB `x_cb` (line 5): a block waited for at line 12 was popped \
          without being read; wait only for blocks the thread reads"]
    );
}

#[test]
fn a_thread_ending_with_a_reserved_or_waited_block_is_an_error() {
    let read = format!("{READ}\nblk2 = x_cb.reserve()");
    expect(
        &kernel((1, 1), SETUP, COMPUTE, &read, WRITE),
        FaultKind::CircularBuffer,
        &[
            "core (0, 0)",
            "thread `dm_read`",
            "ends holding a block of CB `x_cb` (line 5) reserved at line 18 that was never pushed",
        ],
    );
    let compute = "a = x_cb.wait()\nwith out_cb.reserve() as o:\n    o.store(ttl.math.abs(a))";
    expect(
        &kernel((1, 1), SETUP, compute, READ, WRITE),
        FaultKind::CircularBuffer,
        &[
            "core (0, 0)",
            "thread `compute`",
            "ends holding a block of CB `x_cb` (line 5) waited for at line 10 that was never popped",
        ],
    );
}

#[test]
fn a_name_set_to_none_is_assigned_but_a_never_assigned_one_is_an_error() {
    // `cb.pop()` returns None; the name holding it can be read like any other.
    let compute = "a = x_cb.wait()\nwith out_cb.reserve() as o:\n    o.store(ttl.math.abs(a))\n\
                   done = x_cb.pop()\nsame = done\nif not same:\n    pass";
    let warnings = run_abs(&kernel((1, 1), SETUP, compute, READ, WRITE));
    assert!(warnings.is_empty(), "{warnings:?}");
    let compute = format!("if False:\n    z = 1\nw = z\n{COMPUTE}");
    expect(
        &kernel((1, 1), SETUP, &compute, READ, WRITE),
        FaultKind::Unsupported,
        &[
            "thread `compute`",
            "line 12",
            "name `z` is used before it is assigned",
        ],
    );
    // The same for a kernel-level name read by a thread.
    let setup = format!("{SETUP}\nif False:\n    n = 1");
    let compute = format!("m = n\n{COMPUTE}");
    expect(
        &kernel((1, 1), &setup, &compute, READ, WRITE),
        FaultKind::Unsupported,
        &["thread `compute`", "name `n` is used before it is assigned"],
    );
}

#[test]
fn core_dims_outside_1_to_8_are_an_error() {
    for dims in ["0", "9", "(1, 2)"] {
        let compute = format!("c = ttl.core(dims={dims})\n{COMPUTE}");
        expect(
            &kernel((1, 1), SETUP, &compute, READ, WRITE),
            FaultKind::Type,
            &["line 10", "`ttl.core(dims=...)` takes an int from 1 to 8"],
        );
    }
}

#[test]
fn cb_misuse() {
    let read = "a = x_cb.reserve()\nb = x_cb.reserve()";
    expect(
        &kernel((1, 1), SETUP, COMPUTE, read, WRITE),
        FaultKind::CircularBuffer,
        &[
            "thread `dm_read`",
            "line 16",
            "reserved at line 15 is not pushed yet",
        ],
    );
    let compute = format!("x_cb.pop()\n{COMPUTE}");
    expect(
        &kernel((1, 1), SETUP, &compute, READ, WRITE),
        FaultKind::CircularBuffer,
        &[
            "thread `compute`",
            "line 10",
            "`x_cb.pop()` without a waited block",
        ],
    );
    let write = format!("{WRITE}\nwith x_cb.reserve() as b:\n    pass");
    expect(
        &kernel((1, 1), SETUP, COMPUTE, READ, &write),
        FaultKind::CircularBuffer,
        &["thread `dm_write`", "already produced by thread `dm_read`"],
    );
    let compute = "with x_cb.wait() as a, out_cb.reserve() as o:\n    a.store(a)\n    o.store(a)";
    expect(
        &kernel((1, 1), SETUP, compute, READ, WRITE),
        FaultKind::CircularBuffer,
        &["line 11", "store into a block from `reserve()`"],
    );
}

#[test]
fn too_many_cbs_and_l1_overflow() {
    let setup = "for i in range(33):\n    c = ttl.make_circular_buffer_like(x, shape=(1, 1), buffer_factor=1)\nx_cb = c\nout_cb = c";
    expect(
        &kernel((1, 1), setup, "pass", "pass", "pass"),
        FaultKind::Limit,
        &["core (0, 0)", "33 circular buffers", "allows 32"],
    );
    let setup =
        "x_cb = ttl.make_circular_buffer_like(x, shape=(24, 16), buffer_factor=2)\nout_cb = x_cb";
    let usable = Device::load("wormhole_b0").unwrap().l1.usable_bytes();
    expect(
        &kernel((1, 1), setup, "pass", "pass", "pass"),
        FaultKind::Limit,
        &[
            &format!("{} B of L1", 24 * 16 * 2 * 2048),
            &format!("{usable} B usable"),
            "`x_cb` 24x16x2",
        ],
    );
}

#[test]
fn slices_out_of_bounds_and_shape_mismatches() {
    let read = "with x_cb.reserve() as blk:\n    tx = ttl.copy(x[0:2, 0:1], blk)\n    tx.wait()";
    expect(
        &kernel((1, 1), SETUP, COMPUTE, read, WRITE),
        FaultKind::Bounds,
        &[
            "thread `dm_read`",
            "line 16",
            "tile slice [0:2, 0:1] of tensor `x` is outside its 1x1 tiles",
        ],
    );
    let setup = "x_cb = ttl.make_circular_buffer_like(x, shape=(1, 1), buffer_factor=2)\nout_cb = ttl.make_circular_buffer_like(out, shape=(2, 1), buffer_factor=2)";
    expect(
        &kernel((1, 1), setup, COMPUTE, READ, WRITE),
        FaultKind::Shape,
        &[
            "thread `compute`",
            "line 11",
            "1x1-tile value into a block of CB `out_cb`, which is 2x1",
        ],
    );
    let read = "with out_cb.reserve() as blk:\n    tx = ttl.copy(x[0, 0], blk)\n    tx.wait()";
    expect(
        &kernel((1, 1), setup, "pass", read, "pass"),
        FaultKind::Shape,
        &[
            "thread `dm_read`",
            "line 15",
            "a tensor slice of 1x1 tiles and a block of CB `out_cb`, which is 2x1",
        ],
    );
}

#[test]
fn pipes_without_partners() {
    let setup = format!("{SETUP}\np = ttl.Pipe(src=(1, 0), dst=(0, 0))");
    let compute = "cx, cy = ttl.core(dims=2)\nif cx == 1:\n    with x_cb.wait() as a, out_cb.reserve() as o:\n        o.store(a)";
    let read = "cx, cy = ttl.core(dims=2)\nif cx == 1:\n    with x_cb.reserve() as blk:\n        tx = ttl.copy(x[0, 0], blk)\n        tx.wait()";
    let send = "cx, cy = ttl.core(dims=2)\nif cx == 1:\n    with out_cb.wait() as blk:\n        tx = ttl.copy(blk, p)\n        tx.wait()";
    expect(
        &kernel((2, 1), &setup, compute, read, send),
        FaultKind::Pipe,
        &["pipe (1, 0) -> (0, 0) were never received"],
    );
    let recv = "cx, cy = ttl.core(dims=2)\nif cx == 0:\n    with out_cb.reserve() as blk:\n        tx = ttl.copy(p, blk)\n        tx.wait()";
    expect(
        &kernel((2, 1), &setup, "pass", "pass", recv),
        FaultKind::Deadlock,
        &[
            "core (0, 0) thread `dm_write`",
            "a block from pipe (1, 0) -> (0, 0): nothing was sent",
        ],
    );
    let wrong = "with out_cb.reserve() as blk:\n    tx = ttl.copy(p, blk)\n    tx.wait()";
    expect(
        &kernel((2, 1), &setup, "pass", "pass", wrong),
        FaultKind::Pipe,
        &["core (1, 0)", "only its destination core may receive"],
    );
    let setup = format!("{SETUP}\np = ttl.Pipe(src=(2, 0), dst=(0, 0))");
    expect(
        &kernel((2, 1), &setup, "pass", "pass", "pass"),
        FaultKind::Pipe,
        &["outside the kernel's 2x1 grid"],
    );
}

#[test]
fn unknown_names_and_ops() {
    let c = "with x_cb.wait() as a, out_cb.reserve() as o:\n    o.store(ttl.math.gelu(a))";
    expect(
        &kernel((1, 1), SETUP, c, READ, WRITE),
        FaultKind::Unsupported,
        &[
            "thread `compute`",
            "line 11",
            "unknown TT-Lang function `ttl.math.gelu`",
        ],
    );
    let c = "with x_cb.wait() as a, out_cb.reserve() as o:\n    o.store(a + bogus)";
    expect(
        &kernel((1, 1), SETUP, c, READ, WRITE),
        FaultKind::Unsupported,
        &["line 11", "unknown name `bogus`"],
    );
    let c = "with x_cb.wait() as a, out_cb.reserve() as o:\n    o.store(a.exp())";
    expect(
        &kernel((1, 1), SETUP, c, READ, WRITE),
        FaultKind::Unsupported,
        &["unknown method `.exp()`"],
    );
    let c = "with x_cb.wait() as a, out_cb.reserve() as o:\n    o.store(ttl.math.exp(x_cb.wait()))";
    expect(
        &kernel((1, 1), SETUP, c, READ, WRITE),
        FaultKind::Unsupported,
        &["must be a statement of its own"],
    );
}

#[test]
fn python_scalar_operands_need_a_constant_tile() {
    let c = "with x_cb.wait() as a, out_cb.reserve() as o:\n    o.store(a * 0.5)";
    expect(
        &kernel((1, 1), SETUP, c, READ, WRITE),
        FaultKind::Type,
        &["line 11", "Python scalar", "full 32x32 tile"],
    );
}

#[test]
fn grid_larger_than_the_device_and_bad_calls() {
    expect(
        &kernel((9, 1), SETUP, COMPUTE, READ, WRITE),
        FaultKind::Limit,
        &["grid (9, 1) does not fit device `wormhole_b0`"],
    );
    let module = parse_module(&kernel((1, 1), SETUP, COMPUTE, READ, WRITE), "t.py").unwrap();
    let mut one = [Tensor::zeros(32, 32)];
    let e = run_kernel(&module, "k", &wormhole(), &mut one).unwrap_err();
    assert!(
        matches!(
            e,
            ExecError::ArgCount {
                expected: 2,
                given: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = run_kernel(&module, "nope", &wormhole(), &mut one).unwrap_err();
    assert!(
        e.to_string().contains("no kernel named `nope`") && e.to_string().contains("kernels: k"),
        "{e}"
    );
    let mut odd = [Tensor::zeros(30, 32), Tensor::zeros(32, 32)];
    let e = run_kernel(&module, "k", &wormhole(), &mut odd).unwrap_err();
    assert!(matches!(e, ExecError::Unaligned { rows: 30, .. }), "{e}");
}

#[test]
fn unknown_device_lists_the_targets() {
    let e = Device::load("grayskull").unwrap_err().to_string();
    assert!(
        e.contains("`grayskull`") && e.contains("blackhole, wormhole_b0"),
        "{e}"
    );
}
