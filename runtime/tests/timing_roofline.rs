//! Roofline figures, bound classification, multicast timing and program totals, each derived by
//! hand from the device file.

mod exec_util;

use std::collections::BTreeMap;

use exec_util::*;
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{run_program, Bound, Dispatch, HostOps, KernelReport};
use ttfuse_runtime::program::{Program, Step, TensorDecl, TensorInit};
use ttfuse_runtime::tensor::Tensor;
use ttfuse_runtime::ttl::parse::parse_module;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

const ADD: &str = r#"
import ttl

@ttl.kernel(grid=(1, 1))
def add_kernel(lhs, rhs, out):
    lhs_cb = ttl.make_circular_buffer_like(lhs, shape=(1, 1), buffer_factor=2)
    rhs_cb = ttl.make_circular_buffer_like(rhs, shape=(1, 1), buffer_factor=2)
    out_cb = ttl.make_circular_buffer_like(out, shape=(1, 1), buffer_factor=2)

    @ttl.compute()
    def compute():
        with lhs_cb.wait() as l, rhs_cb.wait() as r, out_cb.reserve() as o:
            o.store(l + r)

    @ttl.datamovement()
    def dm_read():
        with lhs_cb.reserve() as blk:
            tx = ttl.copy(lhs[0, 0], blk)
            tx.wait()
        with rhs_cb.reserve() as blk:
            tx = ttl.copy(rhs[0, 0], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0, 0])
            tx.wait()
"#;

fn add_args() -> [Tensor; 3] {
    [
        tensor(32, 32, 1, -1.0, 1.0),
        tensor(32, 32, 2, -1.0, 1.0),
        Tensor::zeros(32, 32),
    ]
}

#[test]
fn a_single_tile_add_is_dispatch_bound_with_its_dram_roofline() {
    let d = wormhole();
    let r = run(ADD, "add_kernel", &mut add_args()).unwrap();
    // Three tiles of DRAM traffic at 267 B/cycle against 1024 FLOPs at 1024 FLOP/cycle (HiFi4
    // matmul peak of one core): DRAM is the roofline.
    let dram_cycles = 3.0 * d.tile_bytes as f64 / d.dram_bytes_per_cycle();
    assert_eq!(d.dram_bytes_per_cycle(), 267.0);
    assert!(dram_cycles > 1024.0 / 1024.0);
    let roof = dram_cycles / 1000.0;
    assert!(
        close(r.roofline.roofline_us, roof),
        "{}",
        r.roofline.roofline_us
    );
    let multiple = r.roofline.roofline_multiple.unwrap();
    assert!(close(multiple, r.time_us / roof), "{multiple}");
    // 4 us of dispatch against well under 1 us on the device.
    assert!(r.cycles < 1000.0);
    assert_eq!(r.roofline.bound, Bound::Dispatch);
}

#[test]
fn a_matmul_block_on_one_core_is_compute_bound_at_its_flop_roofline() {
    let src = r#"
import ttl

@ttl.kernel(grid=(1, 1))
def mm(a, b, out):
    a_cb = ttl.make_circular_buffer_like(a, shape=(4, 8), buffer_factor=1)
    b_cb = ttl.make_circular_buffer_like(b, shape=(8, 4), buffer_factor=1)
    out_cb = ttl.make_circular_buffer_like(out, shape=(4, 4), buffer_factor=1)

    @ttl.compute()
    def compute():
        with a_cb.wait() as av, b_cb.wait() as bv, out_cb.reserve() as o:
            o.store(ttl.math.matmul(av, bv, o))

    @ttl.datamovement()
    def dm_read():
        with a_cb.reserve() as blk:
            tx = ttl.copy(a[0:4, 0:8], blk)
            tx.wait()
        with b_cb.reserve() as blk:
            tx = ttl.copy(b[0:8, 0:4], blk)
            tx.wait()

    @ttl.datamovement()
    def dm_write():
        with out_cb.wait() as blk:
            tx = ttl.copy(blk, out[0:4, 0:4])
            tx.wait()
"#;
    let d = wormhole();
    let mut args = [
        tensor(128, 256, 4, -1.0, 1.0),
        tensor(256, 128, 5, -1.0, 1.0),
        Tensor::zeros(128, 128),
    ];
    let r = run(src, "mm", &mut args).unwrap();
    // 4 x 8 x 4 tile matmuls of 2 x 32^3 FLOPs at 2 x 32^3 / 64 FLOP per cycle (HiFi4).
    let flop_cycles = 128.0 * 64.0;
    assert!(close(r.flops, 128.0 * 2.0 * 32768.0));
    let dram_cycles = (32.0 + 32.0 + 16.0) * 2048.0 / 267.0;
    assert!(flop_cycles > dram_cycles);
    assert!(close(r.roofline.roofline_us, flop_cycles / 1000.0));
    // The compute thread's pipeline (about 8.4k cycles) outweighs the 4 us dispatch.
    let c = &d.compute;
    let u = c.matmul_unpack_tiles_per_tile * 8.0 * c.unpack_cycles_per_tile;
    let m = 8.0 * c.matmul_cycles_per_tile.hifi4;
    let compute = c.block_overhead_cycles + u + m + c.pack_cycles_per_tile + 15.0 * u.max(m);
    assert!(compute / 1000.0 > d.dispatch.traced_us);
    assert_eq!(r.roofline.bound, Bound::Compute);
}

#[test]
fn a_many_core_copy_is_dram_bound() {
    let src = r#"
import ttl

@ttl.kernel(grid=(8, 8))
def copy(inp, out):
    cb = ttl.make_circular_buffer_like(inp, shape=(2, 8), buffer_factor=2)

    @ttl.compute()
    def compute():
        pass

    @ttl.datamovement()
    def dm_read():
        x, y = ttl.core(dims=2)
        for i in range(4):
            with cb.reserve() as blk:
                tx = ttl.copy(inp[y * 8 + i * 2:y * 8 + i * 2 + 2, x * 8:x * 8 + 8], blk)
                tx.wait()

    @ttl.datamovement()
    def dm_write():
        x, y = ttl.core(dims=2)
        for i in range(4):
            with cb.wait() as blk:
                tx = ttl.copy(blk, out[y * 8 + i * 2:y * 8 + i * 2 + 2, x * 8:x * 8 + 8])
                tx.wait()
"#;
    let inp = tensor(2048, 2048, 3, -1.0, 1.0);
    let mut args = [inp.clone(), Tensor::zeros(2048, 2048)];
    let r = run(src, "copy", &mut args).unwrap();
    assert_eq!(args[1], inp);
    let bytes = 2.0 * 2048.0 * 2048.0 * 2.0;
    assert!(close(r.roofline.roofline_us, bytes / 267.0 / 1000.0));
    assert_eq!(r.roofline.bound, Bound::Dram);
    assert!(r.roofline.roofline_multiple.unwrap() >= 1.0);
}

/// Core (0, 0) reads one tile and sends it to cores (1, 0) and (2, 0): one multicast.
const MULTICAST: &str = r#"
import ttl

@ttl.kernel(grid=(3, 1))
def mc(inp):
    cb = ttl.make_circular_buffer_like(inp, shape=(1, 1), buffer_factor=1)

    @ttl.compute()
    def compute():
        with cb.wait() as blk:
            pass

    @ttl.datamovement()
    def dm_read():
        x, y = ttl.core(dims=2)
        with cb.reserve() as blk:
            if x == 0:
                tx = ttl.copy(inp[0, 0], blk)
                tx.wait()
                for i in range(1, 3):
                    tx = ttl.copy(blk, ttl.Pipe(src=(0, 0), dst=(i, 0)))
                    tx.wait()
            else:
                tx = ttl.copy(ttl.Pipe(src=(0, 0), dst=(x, 0)), blk)
                tx.wait()

    @ttl.datamovement()
    def dm_write():
        pass
"#;

fn reader_end(r: &KernelReport, x: u32) -> f64 {
    r.cores.iter().find(|c| c.x == x).unwrap().threads[1].end_cycles
}

#[test]
fn one_block_sent_to_two_pipes_is_one_multicast() {
    for name in Device::names() {
        let d = Device::load(name).unwrap();
        let module = parse_module(MULTICAST, "mc.py").unwrap();
        let mut args = [tensor(32, 32, 6, -1.0, 1.0)];
        let r = ttfuse_runtime::exec::run_kernel(&module, "mc", &d, &mut args).unwrap();
        let tile = d.tile_bytes as f64;
        let dm = &d.core_dm;
        let read = tile / dm.dram_read_bytes_per_cycle;
        // The first destination is a unicast; the second continues the same write as a
        // multicast from its start, at the multicast rate, two hops away.
        let first = read + tile / dm.core_to_core_bytes_per_cycle + d.noc.hop_cycles;
        let second = read + tile / dm.multicast_bytes_per_cycle + 2.0 * d.noc.hop_cycles;
        assert!(
            close(reader_end(&r, 1), first),
            "{name}: {}",
            reader_end(&r, 1)
        );
        assert!(
            close(reader_end(&r, 2), second),
            "{name}: {}",
            reader_end(&r, 2)
        );
        assert_eq!(
            r.noc_bytes, 2048,
            "{name}: the multicast moves its bytes once"
        );
    }
}

#[test]
fn two_different_blocks_are_two_unicasts() {
    // The sender stores a fresh copy before the second send, so the blocks differ.
    let src = MULTICAST.replace(
        "                for i in range(1, 3):\n                    tx = ttl.copy(blk, ttl.Pipe(src=(0, 0), dst=(i, 0)))\n                    tx.wait()",
        "                tx = ttl.copy(blk, ttl.Pipe(src=(0, 0), dst=(1, 0)))\n                tx.wait()\n                tx = ttl.copy(inp[0, 0], blk)\n                tx.wait()\n                tx = ttl.copy(blk, ttl.Pipe(src=(0, 0), dst=(2, 0)))\n                tx.wait()",
    );
    assert_ne!(src, MULTICAST);
    let d = wormhole();
    let mut args = [tensor(32, 32, 6, -1.0, 1.0)];
    let r = run(&src, "mc", &mut args).unwrap();
    let tile = 2048.0;
    let read = tile / d.core_dm.dram_read_bytes_per_cycle;
    let send = tile / d.core_dm.core_to_core_bytes_per_cycle;
    // Each copy starts when the thread's previous transfer has arrived (the first send one hop
    // away, the second two).
    let second = read + send + d.noc.hop_cycles + read + send + 2.0 * d.noc.hop_cycles;
    assert!(close(reader_end(&r, 2), second), "{}", reader_end(&r, 2));
    assert_eq!(r.noc_bytes, 2 * 2048);
}

/// A one-tile program tensor.
fn decl(name: &str, init: TensorInit) -> TensorDecl {
    TensorDecl {
        name: name.into(),
        rows: 32,
        cols: 32,
        init,
        is_output: true,
    }
}

struct NoHost;

impl HostOps for NoHost {
    fn run(
        &self,
        op: &str,
        _attrs: &serde_json::Value,
        inputs: &[&Tensor],
    ) -> Result<Vec<Tensor>, String> {
        match op {
            "test.copy" => Ok(vec![inputs[0].clone()]),
            other => Err(format!("no host op `{other}`")),
        }
    }
}

#[test]
fn program_totals_sum_kernel_rooflines_and_host_dram_time() {
    let d = wormhole();
    let add = parse_module(ADD, "add.py").unwrap();
    let program = Program {
        tensors: vec![
            decl("a", TensorInit::Input),
            decl("b", TensorInit::Input),
            decl("c", TensorInit::Zeros),
            decl("e", TensorInit::Zeros),
        ],
        kernels: vec![add.kernels[0].clone()],
        steps: vec![
            Step::Launch {
                kernel: 0,
                args: vec!["a".into(), "b".into(), "c".into()],
            },
            Step::Host {
                op: "test.copy".into(),
                attrs: serde_json::json!({}),
                inputs: vec!["c".into()],
                outputs: vec!["e".into()],
            },
        ],
    };
    let [a, b, _] = add_args();
    let inputs = BTreeMap::from([("a".to_string(), a), ("b".to_string(), b)]);
    let run = run_program(&program, &d, &inputs, &NoHost, Dispatch::Eager).unwrap();
    let rep = &run.report;
    let k = &rep.kernels[0];
    // The host op reads and writes one tile: 4096 B at 267 B/cycle.
    let host_dram_us = 4096.0 / 267.0 / 1000.0;
    let roof = k.roofline.roofline_us + host_dram_us;
    assert!(close(rep.roofline.roofline_us, roof));
    assert!(close(
        rep.roofline.roofline_multiple.unwrap(),
        rep.total_us / roof
    ));
    // Eager dispatch (30 us) bounds both steps.
    assert_eq!(k.roofline.bound, Bound::Dispatch);
    let by: Vec<_> = rep.roofline.time_by_bound_us.iter().collect();
    assert_eq!(by.len(), 1);
    assert_eq!(*by[0].0, Bound::Dispatch);
    assert!(close(*by[0].1, rep.total_us));
    let json = serde_json::to_value(rep).unwrap();
    assert!(json["time_by_bound_us"]["dispatch"].is_number());
    assert!(json["kernels"][0]["bound"] == "dispatch");
}

#[test]
fn an_untimed_run_computes_the_same_values_and_charges_nothing() {
    let d = wormhole();
    let module = parse_module(MULTICAST, "mc.py").unwrap();
    let mut a = [tensor(32, 32, 6, -1.0, 1.0)];
    let timed = ttfuse_runtime::exec::run_kernel(&module, "mc", &d, &mut a).unwrap();
    let mut args = add_args();
    let module = parse_module(ADD, "add.py").unwrap();
    let mut untimed_args = args.clone();
    let t = ttfuse_runtime::exec::run_kernel(&module, "add_kernel", &d, &mut args).unwrap();
    let u = ttfuse_runtime::exec::run_kernel_untimed(&module, "add_kernel", &d, &mut untimed_args)
        .unwrap();
    assert_eq!(args[2], untimed_args[2]);
    assert!(t.cycles > 0.0 && timed.cycles > 0.0);
    assert_eq!(u.cycles, 0.0);
    assert_eq!((u.dram_read_bytes, u.flops), (t.dram_read_bytes, t.flops));
}

#[test]
fn the_single_pass_bound_moves_each_tensor_once_at_the_whole_grid_s_peak() {
    // The add reads `lhs` twice (as both operands): three tiles of DRAM traffic for two tensor
    // tiles. Its own roofline counts the traffic it makes; the single-pass bound, the two
    // tiles of its arguments moved once (its 1024 FLOPs at 64 cores' peak are far less).
    let d = wormhole();
    let twice = ADD
        .replace(
            "def add_kernel(lhs, rhs, out):",
            "def add_kernel(lhs, out):",
        )
        .replace(
            "make_circular_buffer_like(rhs,",
            "make_circular_buffer_like(lhs,",
        )
        .replace("ttl.copy(rhs[0, 0], blk)", "ttl.copy(lhs[0, 0], blk)");
    assert_ne!(twice, ADD);
    let module = parse_module(&twice, "twice.py").unwrap();
    let program = Program {
        tensors: vec![decl("a", TensorInit::Input), decl("c", TensorInit::Zeros)],
        kernels: vec![module.kernels[0].clone()],
        steps: vec![Step::Launch {
            kernel: 0,
            args: vec!["a".into(), "c".into()],
        }],
    };
    let [a, _, _] = add_args();
    let inputs = BTreeMap::from([("a".to_string(), a)]);
    let run = run_program(&program, &d, &inputs, &NoHost, Dispatch::Traced).unwrap();
    let rep = &run.report;
    let k = &rep.kernels[0];
    assert_eq!(k.dram_read_bytes + k.dram_write_bytes, 3 * d.tile_bytes);
    assert_eq!(k.tensor_bytes, 2 * d.tile_bytes);
    let single = 2.0 * d.tile_bytes as f64 / d.dram_bytes_per_cycle() / 1000.0;
    assert!(close(rep.roofline.single_pass_us, single));
    assert!(close(rep.roofline.roofline_us, 1.5 * single));
    assert!(close(
        rep.roofline.single_pass_multiple.unwrap(),
        rep.total_us / single
    ));
}
