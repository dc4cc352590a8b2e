//! Concatenations read in place (`plan::concat`): a batch-1 channel concatenation whose inputs
//! hold whole tiles of rows needs no kernel; the kernels that use it read each block from the
//! input that holds its rows.

mod lower_common;

use lower_common::*;
use ttfuse::graph::{BinaryOp, Graph, Op, UnaryOp};
use ttfuse::lower::FusionMode;
use ttfuse::plan::body::BodyBuilder;
use ttfuse::plan::{KernelKind, KernelPlan};

/// A DenseNet block of `layers` layers on `x [1, channels, hw, hw]`: each layer's BatchNorm and
/// ReLU (a per-channel scale and shift, then ReLU) of the concatenation of the block's input and
/// every earlier layer's 32 features, then a 3x3 convolution making its own 32; the output is
/// the last concatenation's BatchNorm and ReLU.
fn dense_block(channels: usize, hw: usize, layers: usize) -> Graph {
    let mut g = Graph::new();
    let mut feats = g.add_input("x", f32t(&[1, channels, hw, hw]));
    for l in 0..=layers {
        let c = g.node(feats).ty.shape[1];
        let seed = 100 + 2 * l as u64;
        let s = constant(&mut g, &format!("s{l}"), &[1, c, 1, 1], seed, 0.5);
        let t = constant(&mut g, &format!("t{l}"), &[1, c, 1, 1], seed + 1, 0.5);
        let scaled = binary(&mut g, &format!("scaled{l}"), BinaryOp::Mul, feats, s);
        let shifted = binary(&mut g, &format!("shifted{l}"), BinaryOp::Add, scaled, t);
        let act = unary(&mut g, &format!("act{l}"), UnaryOp::Relu, shifted);
        if l == layers {
            output(&mut g, "y", act);
            break;
        }
        let f = conv_node(&mut g, &format!("conv{l}"), act, 32, 3, false);
        feats = concat(&mut g, &format!("concat{l}"), &[feats, f]);
    }
    g
}

/// The channel concatenation of NCHW tensors `xs`.
fn concat(
    g: &mut Graph,
    name: &str,
    xs: &[petgraph::graph::NodeIndex],
) -> petgraph::graph::NodeIndex {
    let mut shape = g.node(xs[0]).ty.shape.clone();
    shape[1] = xs.iter().map(|&x| g.node(x).ty.shape[1]).sum();
    g.add(name, Op::Concat { axis: 1 }, f32t(&shape), xs)
}

/// How many host steps of `plan` run op `op`.
fn host_steps(plan: &KernelPlan, op: &str) -> usize {
    plan.kernels
        .iter()
        .filter(|k| k.kind == KernelKind::Host && k.ops.iter().any(|o| o == op))
        .count()
}

#[test]
fn a_dense_block_reads_its_concatenations_in_place() {
    // 32 channels of 8 x 8: every part is 256 rows, 8 tiles.
    let g = dense_block(32, 8, 3);
    let fused = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(host_steps(&fused.plan, "Concat"), 0);
    let free: Vec<_> = fused
        .plan
        .free
        .iter()
        .filter(|f| f.op == "Concat")
        .collect();
    assert_eq!(free.len(), 3, "{:?}", fused.plan.free);
    assert!(free.iter().all(|f| f.reason.contains("read in place")));
    // The last BatchNorm and ReLU reads its 128 channels from the block's input and the three
    // convolutions: four parts, read block by block.
    let last = fused.plan.kernels.last().expect("a kernel");
    assert_eq!(last.kind, KernelKind::Eltwise);
    assert_eq!(last.reads, ["x", "conv0", "conv1", "conv2"]);
    let source = ttfuse_runtime::ttl::print::print_kernel(compiled_kernel(
        &fused.program.kernels,
        &last.name,
    ));
    assert!(source.contains("if row < 8:"), "{source}");
    assert!(source.contains("elif row < 24:"), "{source}");
    assert!(
        source.contains("[row - 24:row - 24 + BLOCK_ROWS"),
        "{source}"
    );

    // The unfused baseline concatenates as TTNN does.
    let unfused = run_checked(&g, &device(), FusionMode::Unfused);
    assert_eq!(host_steps(&unfused.plan, "Concat"), 3);
}

#[test]
fn a_block_lies_within_one_part() {
    // 32 channels of 43 x 43: every part is 43 tile rows (of 2 tile columns), 129 in all, so a
    // block of 3 rows would straddle the parts at rows 43 and 86.
    let g = dense_block(32, 43, 2);
    let last_act = g
        .dag
        .node_indices()
        .find(|&n| g.node(n).name == "scaled2")
        .expect("the last BatchNorm's scale");
    let mut builder = BodyBuilder::new(&g, (32 * 43 * 3, 43));
    builder.read_concats_in_place();
    builder.node(last_act).expect("the scale has a body");
    let body = builder.finish();
    assert_eq!(body.row_choices(vec![1, 3, 43, 129]), [1, 43]);

    let fused = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(host_steps(&fused.plan, "Concat"), 0);
    let last = fused.plan.kernels.last().expect("a kernel");
    assert_eq!(43 % last.partition.block.0, 0, "{}", last.partition_summary);
}

#[test]
fn concatenations_in_part_tiles_along_columns_or_as_outputs_run_on_the_host() {
    // 3 channels of 8 x 8 are 24 rows: not whole tiles.
    let g = dense_block(3, 8, 1);
    let fused = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(host_steps(&fused.plan, "Concat"), 1);

    // Along the last axis: the parts would be column ranges.
    let mut g = Graph::new();
    let a = g.add_input("a", f32t(&[64, 32]));
    let b = g.add_input("b", f32t(&[64, 32]));
    let c = g.add("c", Op::Concat { axis: 1 }, f32t(&[64, 64]), &[a, b]);
    let y = unary(&mut g, "y", UnaryOp::Relu, c);
    output(&mut g, "y", y);
    let fused = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(host_steps(&fused.plan, "Concat"), 1);

    // A graph output is written whole.
    let mut g = Graph::new();
    let a = g.add_input("a", f32t(&[1, 32, 8, 8]));
    let b = g.add_input("b", f32t(&[1, 32, 8, 8]));
    let c = concat(&mut g, "c", &[a, b]);
    let y = unary(&mut g, "y", UnaryOp::Relu, c);
    output(&mut g, "y", y);
    output(&mut g, "c", c);
    let fused = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(host_steps(&fused.plan, "Concat"), 1);
}

/// The program kernel named `name`.
fn compiled_kernel<'k>(
    kernels: &'k [ttfuse_runtime::ttl::ast::Kernel],
    name: &str,
) -> &'k ttfuse_runtime::ttl::ast::Kernel {
    kernels
        .iter()
        .find(|k| k.name == name)
        .expect("the kernel is in the program")
}
