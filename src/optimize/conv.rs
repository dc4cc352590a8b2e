//! Convolutions as im2col + matmul in the pixel-major layout (issue 6, ResNet blocks).
//!
//! `Conv(x, w, b)` of an NCHW `x` is `Im2Col(pixels(x)) @ W + b`, where `pixels(x)` is the
//! `[n * h * w, c]` matrix with one row per pixel and `W` the weights as `[kh * kw * c, o]`
//! (rows in the im2col's column order). The product is pixel-major too, so the elementwise ops
//! that follow a convolution (the ReLU after a folded BatchNorm, a residual add) stay in that
//! layout: per-channel operands become row vectors, a same-shape NCHW operand is converted once,
//! and a tensor leaves the pixel-major region through one reshape and transpose back to NCHW.
//! A classifier's global average pool leaves it for free: it is a constant averaging matrix
//! times the pixel matrix, `[n, c]`, which the reshape flattening the pool reads as it is.
//! The matmul kernel then gathers the im2col windows in its reader ([`TileGather`]) with the
//! folded bias, activation and residual as its epilogue.
//!
//! A pointwise convolution (1x1, stride 1, no padding) is the pixel matrix times `W` itself, a
//! plain matmul. Of the others, only convolutions whose im2col a matmul kernel gathers with
//! whole-tile reads are rewritten (any other would trade one TTNN convolution for a host
//! im2col). Either is rewritten only where the cost model finds the matmul kernel cheaper than
//! the TTNN convolution (`kernel_saving`), counting the elementwise kernel it absorbs (a
//! bottleneck's residual add and ReLU): a gathering kernel re-reads every pixel tile per
//! window offset, which costs more than it saves.
//!
//! The other convolutions of a region stay TTNN convolutions, reading and writing pixel
//! matrices as TTNN's `conv2d` does ([`Op::Conv`] with `pixels`), so that a CNN converts its
//! layout once on the way in and once on the way out, not around every matmul kernel.
//! A pass over the extracted graph like [`super::rotate`]: the e-graph language builds no new
//! layouts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use petgraph::graph::NodeIndex;

use super::cost::CostModel;
use crate::graph::fold::rebuild;
use crate::graph::im2col::TileGather;
use crate::graph::{BinaryOp, Graph, Op, ReduceOp, TensorData, TensorType, UnaryOp};
use crate::import::builder::{BuildError, GraphBuilder};

/// The `Im2Col` of convolution `n`, when its im2col is a whole-tile gather.
fn gathered_im2col(graph: &Graph, n: NodeIndex) -> Option<Op> {
    gather_of(graph, n).map(|(op, _)| op)
}

/// The `Im2Col` of convolution `n` and its whole-tile gather.
fn gather_of(graph: &Graph, n: NodeIndex) -> Option<(Op, TileGather)> {
    let Op::Conv {
        kernel,
        stride,
        pads,
        dilation,
        groups: 1,
        ..
    } = &graph.node(n).op
    else {
        return None;
    };
    let x = *graph.inputs_of(n).first()?;
    let &[images, channels, h, w] = graph.node(x).ty.shape.as_slice() else {
        return None;
    };
    let op = Op::Im2Col {
        image: [images, h, w],
        kernel: *kernel,
        stride: *stride,
        pads: *pads,
        dilation: *dilation,
    };
    let aligned = (images * h * w).is_multiple_of(32);
    TileGather::of(&op, channels)
        .filter(|_| aligned || finite_padding(graph, x))
        .map(|g| (op, g))
}

/// Whether the device padding of NCHW tensor `x`'s pixel-major form certainly holds finite
/// values: the gather selects a window's rows with a matmul, and a zero times a NaN or an
/// infinity in a padding row past the last pixel would spoil the real rows. Inputs, constants
/// and host ops' results are zero-padded; convolutions (matmuls with their bias), BatchNorm and
/// the piecewise-linear ops keep finite rows finite; anything else (a logarithm, a reciprocal)
/// may not.
fn finite_padding(graph: &Graph, x: NodeIndex) -> bool {
    let finite_op = |op: &Op| match op {
        Op::Input | Op::Constant(_) | Op::Pool { .. } | Op::Concat { .. } => Some(true),
        Op::Conv { .. } | Op::BatchNorm { .. } | Op::Clip { .. } | Op::LeakyRelu { .. } => None,
        Op::Unary(UnaryOp::Relu | UnaryOp::Identity | UnaryOp::Abs | UnaryOp::Neg) => None,
        Op::Binary(
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min,
        ) => None,
        _ => Some(false),
    };
    let mut stack = vec![x];
    let mut seen = BTreeSet::new();
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        match finite_op(&graph.node(n).op) {
            Some(true) => {}
            Some(false) => return false,
            None => stack.extend(graph.inputs_of(n)),
        }
    }
    true
}

/// Whether convolution `n` is pointwise: a 1x1 kernel with stride 1, no padding and one group,
/// whose im2col is the pixel matrix itself (any number of pixels and channels: the matmul pads
/// them to tiles like any other).
fn is_pointwise(graph: &Graph, n: NodeIndex) -> bool {
    matches!(
        &graph.node(n).op,
        Op::Conv {
            kernel: [1, 1],
            stride: [1, 1],
            pads: [0, 0, 0, 0],
            groups: 1,
            ..
        }
    ) && graph
        .inputs_of(n)
        .first()
        .is_some_and(|&x| graph.node(x).ty.shape.len() == 4)
}

/// The matmul kernel a convolution becomes: its pixel row tiles, window offsets (1 for a
/// pointwise convolution) and input channel tiles, and whether it gathers its windows.
struct ConvKernel {
    rows: usize,
    offsets: usize,
    channel_tiles: usize,
    gathered: bool,
}

/// The cycles convolution `n` saves as the matmul kernel `k` rather than a TTNN convolution
/// (`CostModel::ttnn_op_cycles`, as the runtime times it), negative when it costs more.
///
/// The kernel's estimate: one dispatch, then the longer of its DRAM traffic and its math over
/// the cores its output tiles occupy, which read at most at the per-core rate each, times
/// [`KERNEL_OVERRUN`]. A pointwise kernel reads its pixel matrix and weights once. A gathering
/// kernel, per output row tile and window offset, reads the offset's weights and two pixel
/// row tiles per channel tile and two table tiles, from which it selects each A tile with a
/// matmul. The kernel is credited with the elementwise kernel it absorbs as its epilogue
/// ([`epilogue_credit`]). The layout changes into and out of the pixel-major form, shared by
/// the convolutions of a region, are not counted.
fn kernel_saving(graph: &Graph, n: NodeIndex, k: &ConvKernel, cost: &CostModel) -> f64 {
    let node = graph.node(n);
    let ins: Vec<&TensorType> = graph
        .inputs_of(n)
        .into_iter()
        .map(|i| &graph.node(i).ty)
        .collect();
    let ttnn = cost.ttnn_op_cycles(&node.op, &ins, &node.ty);
    let (rows, offsets) = (k.rows as f64, k.offsets as f64);
    let ct = k.channel_tiles as f64;
    let nt = node.ty.shape[1].div_ceil(32) as f64;
    let (a_tiles, select_tiles) = match k.gathered {
        true => (2.0 * ct + 2.0, 2.0),
        false => (ct, 0.0),
    };
    let cores = (rows * nt).min(cost.cores);
    let bandwidth = cost
        .dram_bytes_per_cycle
        .min(cores * cost.core_dram_bytes_per_cycle);
    // A pointwise convolution is a plain matmul, whose kernel multicasts A along grid rows
    // and B down grid columns: each is read once. A gathering kernel reads both per block.
    let read_tiles = match k.gathered {
        true => rows * offsets * (a_tiles + ct * nt),
        false => rows * ct + ct * nt,
    };
    let tile_bytes = 1024.0 * cost.bytes_per_element;
    let traffic = (read_tiles + rows * nt) * tile_bytes / bandwidth;
    let products = rows * offsets * ct * (select_tiles + nt);
    let math = products * cost.matmul_tile_cycles / cores;
    let kernel = cost.dispatch_cycles + KERNEL_OVERRUN * traffic.max(math);
    ttnn + epilogue_credit(graph, n, cost) - kernel
}

/// How much longer than its DRAM or math bound a convolution's matmul kernel runs (per-block
/// pipeline overheads, write tails, fewer cores than output tiles). Measured on ResNet-50's
/// pointwise convolutions as matmul kernels on the runtime (every convolution rewritten,
/// [`ConvChoice::Every`]): 1.25x to 2.1x of [`kernel_saving`]'s bound beyond the dispatch,
/// the most where the kernel also reads a residual the bound leaves out. 1.5x, between them,
/// keeps out a kernel that only ties with TTNN's convolution.
const KERNEL_OVERRUN: f64 = 1.5;

/// The cycles convolution `n` as a matmul kernel saves by taking the elementwise op after it
/// (a ReLU, a residual add) as its epilogue: that op's own kernel launch, and its reading and
/// writing a tensor of the convolution's size. Nothing when the convolution's result has
/// another use; of two convolutions meeting in one op (the two branches of a residual add)
/// that could both be matmul kernels, only the later is credited.
fn epilogue_credit(graph: &Graph, n: NodeIndex, cost: &CostModel) -> f64 {
    let Some(user) = graph.only_user(n) else {
        return 0.0;
    };
    let later_conv = graph.inputs_of(user).into_iter().any(|x| {
        x > n && matches!(graph.node(x).op, Op::Conv { .. }) && matmul_kernel(graph, x).is_some()
    });
    if later_conv || !elementwise(&graph.node(user).op) {
        return 0.0;
    }
    let bytes = 2.0 * graph.node(n).ty.numel() as f64 * cost.bytes_per_element;
    cost.dispatch_cycles + bytes / cost.dram_bytes_per_cycle
}

/// Whether convolution `n` can stay a TTNN convolution inside a pixel-major region, reading
/// and writing pixel matrices as TTNN's `conv2d` does: an NCHW input, and input and output
/// channels that fill whole tiles (a pixel matrix of fewer channels is mostly tile padding).
fn ttnn_pixel_major(graph: &Graph, n: NodeIndex) -> bool {
    let Some(&x) = graph.inputs_of(n).first() else {
        return false;
    };
    let x = &graph.node(x).ty.shape;
    let out = &graph.node(n).ty.shape;
    x.len() == 4 && out.len() == 4 && x[1].is_multiple_of(32) && out[1].is_multiple_of(32)
}

/// The cycles convolution `n` saves as a matmul kernel (pointwise, or gathering its windows by
/// whole tiles), if it can be one.
fn saving_as_matmul(graph: &Graph, n: NodeIndex, cost: &CostModel) -> Option<f64> {
    matmul_kernel(graph, n).map(|k| kernel_saving(graph, n, &k, cost))
}

/// The matmul kernel convolution `n` becomes, if it can be one: pointwise, or gathering its
/// windows by whole tiles.
fn matmul_kernel(graph: &Graph, n: NodeIndex) -> Option<ConvKernel> {
    if is_pointwise(graph, n) {
        let x = &graph.node(graph.inputs_of(n)[0]).ty.shape;
        return Some(ConvKernel {
            rows: (x[0] * x[2] * x[3]).div_ceil(32),
            offsets: 1,
            channel_tiles: x[1].div_ceil(32),
            gathered: false,
        });
    }
    gather_of(graph, n).map(|(_, g)| ConvKernel {
        rows: g.row_tiles(),
        offsets: g.offsets(),
        channel_tiles: g.channels / 32,
        gathered: true,
    })
}

/// Whether `op` is computed element by element.
fn elementwise(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_)
            | Op::Binary(_)
            | Op::Clip { .. }
            | Op::LeakyRelu { .. }
            | Op::HardSigmoid { .. }
    )
}

/// The images `[n, h, w]` that `n` averages whole, when it is a global average pool (one
/// window over each whole image, no padding): in the pixel-major form, the product of a
/// constant averaging matrix and the pixel matrix, `[n, c]`.
fn global_average(graph: &Graph, n: NodeIndex) -> Option<[usize; 3]> {
    let Op::Pool {
        op: ReduceOp::Mean,
        kernel,
        pads: [0, 0, 0, 0],
        ..
    } = &graph.node(n).op
    else {
        return None;
    };
    let x = *graph.inputs_of(n).first()?;
    let &[images, _, h, w] = graph.node(x).ty.shape.as_slice() else {
        return None;
    };
    (*kernel == [h, w]).then_some([images, h, w])
}

/// Whether `n` flattens a global average pool's `[n, c, 1, 1]` result into `[n, c]`: its
/// pixel-major form as it is.
fn flattens_pool(graph: &Graph, n: NodeIndex, pool: NodeIndex) -> bool {
    let pooled = &graph.node(pool).ty.shape;
    matches!(graph.node(n).op, Op::Reshape { .. })
        && graph.node(n).ty.shape.as_slice() == [pooled[0], pooled[1]]
}

/// How an operand of a pixel-major elementwise op of NCHW shape `shape` enters the layout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Operand {
    /// Already pixel-major (or an NCHW tensor of the same shape, converted).
    Pixels,
    /// One value per channel: a row vector.
    PerChannel,
    /// One value.
    Scalar,
}

fn operand(graph: &Graph, x: NodeIndex, shape: &[usize]) -> Option<Operand> {
    let s = graph.node(x).ty.shape.as_slice();
    let channels = shape[1];
    if s == shape {
        Some(Operand::Pixels)
    } else if s.iter().product::<usize>() == 1 {
        Some(Operand::Scalar)
    } else if s == [channels, 1, 1] || s == [1, channels, 1, 1] {
        Some(Operand::PerChannel)
    } else {
        None
    }
}

/// The nodes computed pixel-major, and which of their convolutions become matmul kernels.
#[derive(Default)]
struct PixelMajor {
    nodes: BTreeSet<NodeIndex>,
    as_matmuls: BTreeSet<NodeIndex>,
}

/// The nodes computed pixel-major: convolutions that are cheaper as matmul kernels, the other
/// convolutions that can stay TTNN convolutions of pixel matrices ([`ttnn_pixel_major`]), and
/// elementwise ops over a pixel-major tensor whose other operands have a pixel-major form;
/// then only the connected regions of them that hold a matmul kernel and, by cost, whose
/// matmul kernels save more than the region's layout changes cost (one transpose per tensor
/// entering or leaving it, [`conversions`]). TTNN convolutions inside a region cost what they
/// cost outside it, and join the regions around them into one, as in TTNN's own CNNs.
fn pixel_major_nodes(graph: &Graph, choice: ConvChoice) -> PixelMajor {
    let mut all = PixelMajor::default();
    let mut saving = BTreeMap::new();
    for n in graph.topo_order() {
        let node = graph.node(n);
        let joins = if matches!(node.op, Op::Conv { .. }) {
            let as_matmul = match choice {
                ConvChoice::Every => matmul_kernel(graph, n).is_some(),
                ConvChoice::ByCost(cost) => match saving_as_matmul(graph, n, cost) {
                    Some(s) if s > 0.0 => saving.insert(n, s).is_none(),
                    _ => false,
                },
            };
            if as_matmul {
                all.as_matmuls.insert(n);
            }
            as_matmul || ttnn_pixel_major(graph, n)
        } else if global_average(graph, n).is_some() {
            graph.inputs_of(n).iter().any(|x| all.nodes.contains(x))
        } else if elementwise(&node.op) && node.ty.shape.len() == 4 {
            let ins = graph.inputs_of(n);
            ins.iter().any(|x| all.nodes.contains(x))
                && ins
                    .iter()
                    .all(|&x| operand(graph, x, &node.ty.shape).is_some())
        } else {
            false
        };
        if joins {
            all.nodes.insert(n);
        }
    }
    let mut kept = PixelMajor::default();
    for region in regions(graph, &all.nodes) {
        let matmuls: BTreeSet<NodeIndex> = region.intersection(&all.as_matmuls).copied().collect();
        let pays = match choice {
            ConvChoice::Every => !matmuls.is_empty(),
            ConvChoice::ByCost(cost) => {
                let saved: f64 = matmuls.iter().filter_map(|n| saving.get(n)).sum();
                !matmuls.is_empty() && saved > conversions(graph, &region, cost)
            }
        };
        if pays {
            kept.nodes.extend(region);
            kept.as_matmuls.extend(matmuls);
        }
    }
    kept
}

/// The connected parts of `nodes` (joined by edges between two of them), each in node order.
fn regions(graph: &Graph, nodes: &BTreeSet<NodeIndex>) -> Vec<BTreeSet<NodeIndex>> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for &start in nodes {
        if !seen.insert(start) {
            continue;
        }
        let mut region = BTreeSet::from([start]);
        let mut stack = vec![start];
        while let Some(n) = stack.pop() {
            for m in graph.inputs_of(n).into_iter().chain(graph.users_of(n)) {
                if nodes.contains(&m) && seen.insert(m) {
                    region.insert(m);
                    stack.push(m);
                }
            }
        }
        out.push(region);
    }
    out
}

/// The cycles of a region's layout changes: a TTNN transpose (`CostModel::node_cost`) for each
/// NCHW tensor converted into the pixel-major form and for each region tensor read outside
/// the region or returned.
fn conversions(graph: &Graph, region: &BTreeSet<NodeIndex>, cost: &CostModel) -> f64 {
    let transpose = |n: NodeIndex| {
        let ty = &graph.node(n).ty;
        let op = Op::Transpose {
            perm: vec![0, 2, 3, 1],
        };
        cost.ttnn_op_cycles(&op, &[ty], ty)
    };
    let mut entering = BTreeSet::new();
    let mut total = 0.0;
    for &n in region {
        let node = graph.node(n);
        let ins = graph.inputs_of(n);
        let pixel_inputs: Vec<NodeIndex> = match node.op {
            Op::Conv { .. } => ins.first().copied().into_iter().collect(),
            _ => ins
                .into_iter()
                .filter(|&x| operand(graph, x, &node.ty.shape) == Some(Operand::Pixels))
                .collect(),
        };
        for x in pixel_inputs {
            if !region.contains(&x) && entering.insert(x) {
                total += transpose(x);
            }
        }
        let flattened =
            |u: &NodeIndex| global_average(graph, n).is_some() && flattens_pool(graph, *u, n);
        let leaves = graph
            .users_of(n)
            .iter()
            .any(|u| !region.contains(u) && !flattened(u))
            || graph.outputs.iter().any(|(_, o)| *o == n);
        if leaves {
            total += transpose(n);
        }
    }
    total
}

/// The pixel-major forms of original nodes, built on first use.
struct Pixels<'g> {
    graph: &'g Graph,
    of: BTreeMap<NodeIndex, NodeIndex>,
}

impl Pixels<'_> {
    /// Original NCHW node `x` (rebuilt as `new`) as a `[n * h * w, c]` matrix: its own
    /// pixel-major form when it has one, else converted (once).
    fn of_nchw(
        &mut self,
        b: &mut GraphBuilder,
        x: NodeIndex,
        new: NodeIndex,
    ) -> Result<NodeIndex, BuildError> {
        if let Some(&p) = self.of.get(&x) {
            return Ok(p);
        }
        let name = &self.graph.node(x).name;
        let &[n, c, h, w] = self.graph.node(x).ty.shape.as_slice() else {
            unreachable!("pixel-major operands are NCHW");
        };
        let nhwc = b.add(
            &format!("{name}/nhwc"),
            Op::Transpose {
                perm: vec![0, 2, 3, 1],
            },
            &[new],
        )?;
        let p = b.add(
            &format!("{name}/pixels"),
            Op::Reshape {
                shape: vec![n * h * w, c],
            },
            &[nhwc],
        )?;
        self.of.insert(x, p);
        Ok(p)
    }

    /// Operand `x` of the pixel-major elementwise op `user`.
    fn operand(
        &mut self,
        b: &mut GraphBuilder,
        user: NodeIndex,
        x: NodeIndex,
        new: NodeIndex,
    ) -> Result<NodeIndex, BuildError> {
        let shape = &self.graph.node(user).ty.shape;
        let name = &self.graph.node(x).name;
        let reshape = |b: &mut GraphBuilder, what: &str, shape: Vec<usize>| {
            b.add(&format!("{name}/{what}"), Op::Reshape { shape }, &[new])
        };
        match operand(self.graph, x, shape) {
            Some(Operand::Pixels) => self.of_nchw(b, x, new),
            Some(Operand::PerChannel) => reshape(b, "channels", vec![shape[1]]),
            Some(Operand::Scalar) => reshape(b, "scalar", vec![1]),
            None => unreachable!("pixel_major_nodes checked every operand"),
        }
    }
}

/// Node `n`'s rebuilt inputs, the first (its images) as their pixel matrix.
fn pixel_inputs(
    b: &mut GraphBuilder,
    pixels: &mut Pixels,
    n: NodeIndex,
    rebuilt: &[Option<NodeIndex>],
) -> Result<Vec<NodeIndex>, BuildError> {
    let ins = pixels.graph.inputs_of(n);
    let new = |i: NodeIndex| rebuilt[i.index()].expect("inputs are rebuilt first");
    let mut args = vec![pixels.of_nchw(b, ins[0], new(ins[0]))?];
    args.extend(ins[1..].iter().map(|&i| new(i)));
    Ok(args)
}

/// Convolution `n` as `Im2Col(pixels(x)) @ W (+ bias)`, then its fused ReLU if it has one.
fn conv_as_matmul(
    b: &mut GraphBuilder,
    pixels: &mut Pixels,
    n: NodeIndex,
    rebuilt: &[Option<NodeIndex>],
) -> Result<NodeIndex, BuildError> {
    let args = pixel_inputs(b, pixels, n, rebuilt)?;
    let graph = pixels.graph;
    let (node, ins) = (graph.node(n), graph.inputs_of(n));
    let x = args[0];
    let col = if is_pointwise(graph, n) {
        x
    } else {
        let im2col = gathered_im2col(graph, n).expect("pixel-major convolutions gather by tiles");
        b.add(&format!("{}/im2col", node.name), im2col, &[x])?
    };
    let &[out, c, kh, kw] = graph.node(ins[1]).ty.shape.as_slice() else {
        unreachable!("shape inference checked OIHW weights");
    };
    let w = b.add(
        &format!("{}/weights_hwio", node.name),
        Op::Transpose {
            perm: vec![2, 3, 1, 0],
        },
        &[args[1]],
    )?;
    let w = b.add(
        &format!("{}/weights", node.name),
        Op::Reshape {
            shape: vec![kh * kw * c, out],
        },
        &[w],
    )?;
    // The last of the product, the bias and the ReLU keeps the convolution's name.
    let (biased, relu) = (
        ins.len() == 3,
        matches!(node.op, Op::Conv { relu: true, .. }),
    );
    let name = |part: &str, last: bool| match last {
        true => node.name.clone(),
        false => format!("{}/{part}", node.name),
    };
    let mut y = b.add(&name("matmul", !biased && !relu), Op::MatMul, &[col, w])?;
    if biased {
        let bias = [y, args[2]];
        y = b.add(&name("biased", !relu), Op::Binary(BinaryOp::Add), &bias)?;
    }
    if relu {
        y = b.add(&node.name, Op::Unary(UnaryOp::Relu), &[y])?;
    }
    Ok(y)
}

/// Convolution `n` as the TTNN convolution of its input's pixel matrix, with the same weights,
/// bias and fused ReLU.
fn ttnn_conv_of_pixels(
    b: &mut GraphBuilder,
    pixels: &mut Pixels,
    n: NodeIndex,
    rebuilt: &[Option<NodeIndex>],
) -> Result<NodeIndex, BuildError> {
    let args = pixel_inputs(b, pixels, n, rebuilt)?;
    let graph = pixels.graph;
    let node = graph.node(n);
    let &[images, _, h, w] = graph.node(graph.inputs_of(n)[0]).ty.shape.as_slice() else {
        unreachable!("pixel-major convolutions read NCHW images");
    };
    let mut op = node.op.clone();
    let Op::Conv { pixels: layout, .. } = &mut op else {
        unreachable!("only convolutions are rewritten here");
    };
    *layout = Some([images, h, w]);
    b.add(&node.name, op, &args)
}

/// The `[n, n * h * w]` matrix whose product with a pixel matrix of `n` images of `h x w` is
/// each image's mean pixel: row `b` holds `1 / (h * w)` over image `b`'s pixels.
fn averaging_matrix([n, h, w]: [usize; 3]) -> TensorData {
    let pixels = h * w;
    let mut values = vec![0.0; n * n * pixels];
    for b in 0..n {
        values[b * n * pixels + b * pixels..][..pixels].fill(1.0 / pixels as f32);
    }
    TensorData::f32(vec![n, n * pixels], values)
}

/// Which convolutions [`convs_as_matmuls`] rewrites.
#[derive(Clone, Copy, Debug)]
pub enum ConvChoice<'c> {
    /// Those in regions whose convolutions save more, by this cost model, than the region's
    /// layout changes cost.
    ByCost(&'c CostModel),
    /// Every convolution that can be a matmul kernel, whatever it costs (to compare the forms).
    Every,
}

/// Rewrites the convolutions `choice` picks among those that are pointwise or whose im2col a
/// matmul kernel gathers by tiles as (im2col +) matmul, with the elementwise ops after them and
/// the TTNN convolutions between them in the pixel-major layout. Returns the graph and how many
/// convolutions became matmuls (the graph unchanged when none).
pub fn convs_as_matmuls(graph: &Graph, choice: ConvChoice) -> Result<(Graph, usize), BuildError> {
    let PixelMajor {
        nodes: pixel_major,
        as_matmuls,
    } = pixel_major_nodes(graph, choice);
    if as_matmuls.is_empty() {
        return Ok((graph.clone(), 0));
    }
    let mut pixels = Pixels {
        graph,
        of: BTreeMap::new(),
    };
    let out = rebuild(graph, |b, n, rebuilt| {
        if !pixel_major.contains(&n) {
            // A flattened global average pool is its pixel-major form.
            let pool = graph.inputs_of(n).first().copied();
            let flat = pool.filter(|&q| pixel_major.contains(&q) && flattens_pool(graph, n, q));
            return Ok(flat.and_then(|q| pixels.of.get(&q).copied()));
        }
        let node = graph.node(n);
        let p = if as_matmuls.contains(&n) {
            conv_as_matmul(b, &mut pixels, n, rebuilt)?
        } else if matches!(node.op, Op::Conv { .. }) {
            ttnn_conv_of_pixels(b, &mut pixels, n, rebuilt)?
        } else if let Some(images) = global_average(graph, n) {
            let x = pixel_inputs(b, &mut pixels, n, rebuilt)?[0];
            let avg = b.add(
                &format!("{}/average", node.name),
                Op::Constant(Arc::new(averaging_matrix(images))),
                &[],
            )?;
            b.add(&node.name, Op::MatMul, &[avg, x])?
        } else {
            let mut ins = Vec::new();
            for x in graph.inputs_of(n) {
                let new = rebuilt[x.index()].expect("inputs are rebuilt first");
                ins.push(pixels.operand(b, n, x, new)?);
            }
            b.add(&node.name, node.op.clone(), &ins)?
        };
        pixels.of.insert(n, p);
        // Users outside the region (and graph outputs) read the NCHW tensor; the builder drops
        // it when nobody does.
        let &[images, c, h, w] = node.ty.shape.as_slice() else {
            unreachable!("pixel-major nodes are NCHW");
        };
        let nhwc = b.add(
            &format!("{}/nhwc", node.name),
            Op::Reshape {
                shape: vec![images, h, w, c],
            },
            &[p],
        )?;
        b.add(
            &format!("{}/nchw", node.name),
            Op::Transpose {
                perm: vec![0, 3, 1, 2],
            },
            &[nhwc],
        )
        .map(Some)
    })?;
    Ok((out, as_matmuls.len()))
}
