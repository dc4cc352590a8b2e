//! Convolutions as im2col + matmul (`optimize::conv`, `plan::gather`): over a range of
//! geometries the rewritten graph computes what the convolution computes (the reference's
//! convolution against its im2col and matmul), and its fused program gathers the windows in a
//! matmul kernel's reader, with bias, activation and residual as the kernel's epilogue, and
//! agrees with the reference. Convolutions a reader cannot gather by whole tiles stay TTNN
//! convolutions.

mod lower_common;

use lower_common::*;
use ttfuse::graph::{BinaryOp, Graph, Op, ReduceOp, UnaryOp};
use ttfuse::lower::{Compiled, FusionMode};
use ttfuse::optimize::conv::{convs_as_matmuls, ConvChoice};
use ttfuse::optimize::cost::CostModel;
use ttfuse::plan::KernelKind;

/// One convolution's geometry.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    images: usize,
    channels: usize,
    h: usize,
    w: usize,
    out: usize,
    kernel: usize,
    pad: usize,
    dilation: usize,
    stride: usize,
}

const BASE: Geometry = Geometry {
    images: 1,
    channels: 32,
    h: 16,
    w: 16,
    out: 32,
    kernel: 3,
    pad: 1,
    dilation: 1,
    stride: 1,
};

/// `relu(conv(x) + b)`, plus `x` when `residual` (the output then needs `out == channels`).
fn conv_relu(geo: Geometry, residual: bool) -> Graph {
    conv_graph(geo, residual, false)
}

/// `relu(conv(x) + b)` with the ReLU fused into the convolution (TTNN conv2d's activation).
fn fused_conv_relu(geo: Geometry) -> Graph {
    conv_graph(geo, false, true)
}

/// `conv(x) + b`, plus `x` when `residual`, then a ReLU: a separate op, or the convolution's
/// own when `fused` (without a residual).
fn conv_graph(geo: Geometry, residual: bool, fused: bool) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[geo.images, geo.channels, geo.h, geo.w]));
    let w = constant(
        &mut g,
        "w",
        &[geo.out, geo.channels, geo.kernel, geo.kernel],
        5,
        0.1,
    );
    let b = constant(&mut g, "b", &[geo.out], 6, 0.5);
    let span = geo.dilation * (geo.kernel - 1) + 1;
    let size = |n: usize| (n + 2 * geo.pad - span) / geo.stride + 1;
    let (oh, ow) = (size(geo.h), size(geo.w));
    let y = g.add(
        "conv",
        Op::Conv {
            kernel: [geo.kernel; 2],
            stride: [geo.stride; 2],
            pads: [geo.pad; 4],
            dilation: [geo.dilation; 2],
            groups: 1,
            relu: fused,
            pixels: None,
        },
        f32t(&[geo.images, geo.out, oh, ow]),
        &[x, w, b],
    );
    let r = match (residual, fused) {
        (_, true) => y,
        (true, false) => {
            let y = binary(&mut g, "residual", BinaryOp::Add, y, x);
            unary(&mut g, "relu", UnaryOp::Relu, y)
        }
        (false, false) => unary(&mut g, "relu", UnaryOp::Relu, y),
    };
    output(&mut g, "y", r);
    g
}

fn count(g: &Graph, f: impl Fn(&Op) -> bool) -> usize {
    g.dag.node_weights().filter(|n| f(&n.op)).count()
}

/// The reference outputs of `a` and `b` on the same inputs, within float32 summation order.
fn same_reference(a: &Graph, b: &Graph) {
    let inputs = inputs_for(a);
    let (ra, rb) = (
        ttfuse::reference::run(a, &inputs).unwrap(),
        ttfuse::reference::run(b, &inputs).unwrap(),
    );
    for (name, want) in &ra {
        let (want, got) = (want.to_f32(), rb[name].to_f32());
        assert_eq!(want.len(), got.len(), "{name}");
        for (i, (w, g)) in want.iter().zip(&got).enumerate() {
            assert!(
                (w - g).abs() <= 1e-4 * w.abs().max(1.0),
                "{name}[{i}]: {w} vs {g}"
            );
        }
    }
}

/// Rewrites `g`'s convolutions and checks the rewrite (reference against reference) and its
/// fused program (against the reference); returns the compiled program.
fn rewritten_and_run(g: &Graph) -> Compiled {
    let (r, convs) = convs_as_matmuls(g, ConvChoice::Every).unwrap();
    assert_eq!(convs, 1);
    assert_eq!(count(&r, |op| matches!(op, Op::Conv { .. })), 0);
    same_reference(g, &r);
    run_checked(&r, &device(), FusionMode::Fused)
}

/// The ops of the device kernels, and those of the host steps.
fn kernels(c: &Compiled) -> (Vec<Vec<String>>, Vec<String>) {
    let (host, device): (Vec<_>, Vec<_>) = c
        .plan
        .kernels
        .iter()
        .partition(|k| k.kind == KernelKind::Host);
    (
        device.iter().map(|k| k.ops.clone()).collect(),
        host.iter().flat_map(|k| k.ops.clone()).collect(),
    )
}

#[test]
fn convolutions_gather_their_windows_in_one_matmul_kernel_with_their_epilogue() {
    let cases = [
        BASE,
        // Two images, two channel tiles, output channels off the tile size.
        Geometry {
            images: 2,
            channels: 64,
            h: 8,
            w: 16,
            out: 40,
            ..BASE
        },
        // 7x7 pixels: the last pixel row tile is part padding, which the table never selects.
        Geometry { h: 7, w: 7, ..BASE },
        Geometry {
            h: 12,
            dilation: 2,
            pad: 2,
            ..BASE
        },
        Geometry {
            h: 8,
            kernel: 5,
            pad: 2,
            ..BASE
        },
        // 128 row tiles: blocks of several row tiles, each reading one more pixel row tile.
        Geometry {
            h: 64,
            w: 64,
            ..BASE
        },
    ];
    for geo in cases {
        let c = rewritten_and_run(&conv_relu(geo, false));
        let (device, host) = kernels(&c);
        assert_eq!(device.len(), 1, "{geo:?}: {device:?}");
        assert_eq!(device[0], ["MatMul", "Add", "Relu"], "{geo:?}");
        // Only the layout changes into and out of the pixel-major form run on the host.
        assert!(host.iter().all(|op| op == "Transpose"), "{geo:?}: {host:?}");
        assert!(
            c.plan.free.iter().any(|f| f.op == "Im2Col"),
            "{geo:?}: the im2col is gathered in place"
        );
        let block_rows = c
            .plan
            .kernels
            .iter()
            .find(|k| k.kind == KernelKind::Matmul)
            .map(|k| k.partition.block.0)
            .unwrap();
        let pixel_tiles = (geo.images * geo.h * geo.w).div_ceil(32);
        assert_eq!(
            block_rows > 1,
            pixel_tiles > 64,
            "{geo:?}: blocks of {block_rows} rows"
        );
    }
}

#[test]
fn a_fused_relu_stays_in_the_gathered_kernel_s_epilogue() {
    // The same convolution, its ReLU fused (as TTNN conv2d applies it), is the same kernel and
    // the same numbers as with a separate ReLU.
    let (fused, separate) = (fused_conv_relu(BASE), conv_relu(BASE, false));
    same_reference(&fused, &separate);
    let c = rewritten_and_run(&fused);
    let (device, _) = kernels(&c);
    assert_eq!(device, [["MatMul", "Add", "Relu"]]);
}

#[test]
fn pointwise_convolutions_are_matmuls_of_the_pixel_matrix() {
    // 1x1 convolutions need no gather: whole tiles of pixels, pixels off the tile size (a
    // 14x14 image), channels off it (48 in, 24 out), and two images.
    let cases = [
        Geometry {
            h: 8,
            w: 8,
            out: 64,
            kernel: 1,
            pad: 0,
            ..BASE
        },
        Geometry {
            h: 14,
            w: 14,
            channels: 48,
            out: 24,
            kernel: 1,
            pad: 0,
            ..BASE
        },
        Geometry {
            images: 2,
            h: 7,
            w: 7,
            kernel: 1,
            pad: 0,
            ..BASE
        },
    ];
    for geo in cases {
        let g = conv_relu(geo, false);
        let (r, convs) = convs_as_matmuls(&g, ConvChoice::Every).unwrap();
        assert_eq!(convs, 1, "{geo:?}");
        assert_eq!(
            count(&r, |op| matches!(op, Op::Im2Col { .. })),
            0,
            "{geo:?}"
        );
        let c = rewritten_and_run(&g);
        let (device, host) = kernels(&c);
        assert_eq!(device, [["MatMul", "Add", "Relu"]], "{geo:?}");
        assert!(host.iter().all(|op| op == "Transpose"), "{geo:?}: {host:?}");
    }
}

#[test]
fn an_unaligned_gather_needs_finite_padding_rows() {
    // The gather selects rows with a matmul, and zero times a non-finite padding value is not
    // zero: a 7x7 image (49 pixels, padding rows in the last tile) is gathered from an input,
    // not from a logarithm's result.
    let geo = Geometry { h: 7, w: 7, ..BASE };
    let mut g = conv_relu(geo, false);
    let (r, convs) = convs_as_matmuls(&g, ConvChoice::Every).unwrap();
    assert_eq!(
        (convs, count(&r, |op| matches!(op, Op::Im2Col { .. }))),
        (1, 1)
    );
    let x = g.inputs[0];
    let log = unary(&mut g, "log", UnaryOp::Log, x);
    let conv = g
        .dag
        .node_indices()
        .find(|&n| matches!(g.node(n).op, Op::Conv { .. }))
        .unwrap();
    let edge = g.dag.find_edge(x, conv).unwrap();
    let slot = g.dag[edge];
    g.dag.remove_edge(edge);
    g.dag.add_edge(log, conv, slot);
    let (_, convs) = convs_as_matmuls(&g, ConvChoice::Every).unwrap();
    assert_eq!(convs, 0);
}

#[test]
fn a_residual_block_s_add_and_relu_join_the_convolution_s_kernel() {
    let c = rewritten_and_run(&conv_relu(BASE, true));
    let (device, host) = kernels(&c);
    assert_eq!(device, [["MatMul", "Add", "Add", "Relu"]]);
    // x is converted once, for both the convolution and the residual.
    assert_eq!(host, ["Transpose", "Transpose"]);
}

#[test]
fn convolutions_without_a_whole_tile_gather_stay_ttnn_convolutions() {
    let strided = Geometry { stride: 2, ..BASE };
    let three_channels = Geometry {
        channels: 3,
        ..BASE
    };
    let shrinking = Geometry { pad: 0, ..BASE };
    for geo in [strided, three_channels, shrinking] {
        let g = conv_relu(geo, false);
        let (r, convs) = convs_as_matmuls(&g, ConvChoice::Every).unwrap();
        assert_eq!(convs, 0, "{geo:?}");
        assert_eq!(count(&r, |op| matches!(op, Op::Conv { .. })), 1);
    }
}

#[test]
fn an_im2col_read_other_than_by_matmuls_is_a_host_step() {
    // The im2col matrix itself as an output: no matmul reader gathers it.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[256, 32]));
    let col = g.add(
        "col",
        Op::Im2Col {
            image: [1, 16, 16],
            kernel: [3, 3],
            stride: [1, 1],
            pads: [1; 4],
            dilation: [1, 1],
        },
        f32t(&[256, 288]),
        &[x],
    );
    let e = unary(&mut g, "e", UnaryOp::Exp, col);
    output(&mut g, "e", e);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    let (_, host) = kernels(&c);
    assert_eq!(host, ["Im2Col"]);
}

/// `depth` convolutions of `geo` (with as many output channels as input), each followed by a
/// ReLU, one after the other.
fn conv_chain(geo: Geometry, depth: usize) -> Graph {
    let mut g = Graph::new();
    let mut x = g.add_input("x", f32t(&[geo.images, geo.channels, geo.h, geo.w]));
    for i in 0..depth {
        let w = constant(
            &mut g,
            &format!("w{i}"),
            &[geo.channels, geo.channels, geo.kernel, geo.kernel],
            5 + i as u64,
            0.1,
        );
        let y = g.add(
            format!("conv{i}"),
            Op::Conv {
                kernel: [geo.kernel; 2],
                stride: [1; 2],
                pads: [geo.pad; 4],
                dilation: [1; 2],
                groups: 1,
                relu: false,
                pixels: None,
            },
            f32t(&[geo.images, geo.channels, geo.h, geo.w]),
            &[x, w],
        );
        x = unary(&mut g, &format!("relu{i}"), UnaryOp::Relu, y);
    }
    output(&mut g, "y", x);
    g
}

/// [`bottlenecks`], then a classifier's global average pool flattened to `[1, 256]`.
fn pooled_bottlenecks(depth: usize) -> Graph {
    let mut g = bottlenecks(depth);
    let (_, y) = g.outputs.pop().expect("the chain has its output");
    let pool = Op::Pool {
        op: ReduceOp::Mean,
        kernel: [14, 14],
        stride: [1, 1],
        pads: [0; 4],
        count_include_pad: false,
    };
    let p = g.add("pool", pool, f32t(&[1, 256, 1, 1]), &[y]);
    let flat = g.add(
        "flat",
        Op::Reshape {
            shape: vec![1, 256],
        },
        f32t(&[1, 256]),
        &[p],
    );
    output(&mut g, "features", flat);
    g
}

/// `depth` ResNet bottleneck blocks on a 14x14 image of 256 channels, as the optimizer leaves
/// them (BatchNorm folded, ReLUs fused into the convolutions they follow):
/// `x = relu(conv1x1(conv3x3(conv1x1(x))) + x)`, 256 -> 64 -> 64 -> 256 channels.
fn bottlenecks(depth: usize) -> Graph {
    let mut g = Graph::new();
    let mut x = g.add_input("x", f32t(&[1, 256, 14, 14]));
    for i in 0..depth {
        let a = conv_node(&mut g, &format!("b{i}.reduce"), x, 64, 1, true);
        let c = conv_node(&mut g, &format!("b{i}.conv"), a, 64, 3, true);
        let e = conv_node(&mut g, &format!("b{i}.expand"), c, 256, 1, false);
        let sum = binary(&mut g, &format!("b{i}.add"), BinaryOp::Add, e, x);
        x = unary(&mut g, &format!("b{i}.relu"), UnaryOp::Relu, sum);
    }
    output(&mut g, "y", x);
    g
}

#[test]
fn the_cost_model_gathers_regions_whose_convolutions_outweigh_their_layout_changes() {
    // A region pays a layout change into the pixel-major form and one out of it. A
    // bottleneck's expanding 1x1 convolution, with the residual add and ReLU as its kernel's
    // epilogue, saves a TTNN convolution and an elementwise kernel: one saves less than the
    // two layout changes, three chained (the TTNN convolutions between them pixel-major too)
    // more. Its reducing 1x1 convolution and its 3x3 convolution, their ReLU fused in TTNN's
    // conv2d already, save nothing as kernels and stay TTNN convolutions.
    let by_cost =
        |g: &Graph| convs_as_matmuls(g, ConvChoice::ByCost(&CostModel::default())).unwrap();
    assert_eq!(by_cost(&bottlenecks(1)).1, 0);
    let (r, matmuls) = by_cost(&bottlenecks(3));
    assert_eq!(matmuls, 3);
    let pixel_convs = |op: &Op| {
        matches!(
            op,
            Op::Conv {
                pixels: Some(_),
                ..
            }
        )
    };
    assert_eq!(count(&r, pixel_convs), 6);
    assert_eq!(count(&r, |op| matches!(op, Op::Conv { .. })), 6);
    // A gathering kernel re-reads its pixel and table tiles for every window offset, slower
    // on the runtime than a TTNN convolution and the ReLU kernel after it (9.95 us against
    // 4.31 + 4.42 us for BASE), at any chain length; a 64x64 image with 64 channels more so.
    let large = Geometry {
        channels: 64,
        h: 64,
        w: 64,
        ..BASE
    };
    assert_eq!(by_cost(&conv_chain(BASE, 8)).1, 0);
    assert_eq!(by_cost(&conv_chain(large, 8)).1, 0);
    // Every form is available when asked for.
    let every = |g: &Graph| convs_as_matmuls(g, ConvChoice::Every).unwrap().1;
    assert_eq!(every(&conv_chain(large, 2)), 2);
}

#[test]
fn a_global_average_pool_leaves_the_region_as_a_matmul() {
    // A classifier's pool over the last block: in the pixel-major form the averaging matrix
    // times the pixel matrix, already the flattened [1, 256] its user reads. No layout change
    // on the way out, no TTNN pool or reshape; numbers checked against the reference.
    let g = pooled_bottlenecks(3);
    let (r, matmuls) = convs_as_matmuls(&g, ConvChoice::ByCost(&CostModel::default())).unwrap();
    assert_eq!(matmuls, 3);
    same_reference(&g, &r);
    assert_eq!(count(&r, |op| matches!(op, Op::Pool { .. })), 0);
    let c = run_checked(&r, &device(), FusionMode::Fused);
    let (device, host) = kernels(&c);
    assert!(device.contains(&vec!["MatMul".to_string()]), "{device:?}");
    assert_eq!(
        host.iter().filter(|op| *op == "Transpose").count(),
        1,
        "{host:?}"
    );
    assert!(
        !host.iter().any(|op| op == "Reshape" || op == "MeanPool"),
        "{host:?}"
    );
}

#[test]
fn ttnn_convolutions_between_matmul_kernels_read_and_write_pixel_matrices() {
    // Three bottlenecks as the cost model rewrites them: one layout change in, one out; the
    // TTNN convolutions in between take and give pixel matrices, and each expanding
    // convolution is one kernel with its residual add and ReLU. Numbers checked against the
    // reference interpreter.
    let g = bottlenecks(3);
    let (r, _) = convs_as_matmuls(&g, ConvChoice::ByCost(&CostModel::default())).unwrap();
    same_reference(&g, &r);
    let c = run_checked(&r, &device(), FusionMode::Fused);
    let (device, host) = kernels(&c);
    assert_eq!(device, vec![["MatMul", "Add", "Add", "Relu"]; 3]);
    let transposes = host.iter().filter(|op| *op == "Transpose").count();
    assert_eq!(transposes, 2, "{host:?}");
    assert_eq!(host.iter().filter(|op| *op == "ConvRelu").count(), 6);
}
