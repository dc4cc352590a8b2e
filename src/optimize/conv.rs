//! Convolutions as im2col + matmul in the pixel-major layout (issue 6, ResNet blocks).
//!
//! `Conv(x, w, b)` of an NCHW `x` is `Im2Col(pixels(x)) @ W + b`, where `pixels(x)` is the
//! `[n * h * w, c]` matrix with one row per pixel and `W` the weights as `[kh * kw * c, o]`
//! (rows in the im2col's column order). The product is pixel-major too, so the elementwise ops
//! that follow a convolution (the ReLU after a folded BatchNorm, a residual add) stay in that
//! layout: per-channel operands become row vectors, a same-shape NCHW operand is converted once,
//! and a tensor leaves the pixel-major region through one reshape and transpose back to NCHW.
//! The matmul kernel then gathers the im2col windows in its reader ([`TileGather`]) with the
//! folded bias, activation and residual as its epilogue.
//!
//! A pointwise convolution (1x1, stride 1, no padding) is the pixel matrix times `W` itself, a
//! plain matmul. Of the others, only convolutions whose im2col a matmul kernel gathers with
//! whole-tile reads are rewritten (any other would trade one TTNN convolution for a host
//! im2col). Either is rewritten only where the cost model finds the matmul kernel cheaper than
//! the TTNN convolution (`kernel_is_cheaper`): a gathering kernel re-reads every pixel tile per
//! window offset, which costs more than it saves on large images.
//! A pass over the extracted graph like [`super::rotate`]: the e-graph language builds no new
//! layouts.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::NodeIndex;

use super::cost::CostModel;
use crate::graph::fold::rebuild;
use crate::graph::im2col::TileGather;
use crate::graph::{BinaryOp, Graph, Op, TensorType, UnaryOp};
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
/// (`CostModel::node_cost`, a fallback at its DRAM traffic and matmul rate), negative when it
/// costs more. The kernel's
/// estimate: one dispatch, then the longer of its DRAM traffic and its math over the grid.
/// Per output row tile and window offset it reads the offset's weights and its A tiles: one
/// per channel tile, or gathered, two pixel row tiles per channel tile and two table tiles,
/// from which it selects each A tile with a matmul. The layout changes into and out of the
/// pixel-major form, shared by the convolutions of a region, are not counted.
fn kernel_saving(graph: &Graph, n: NodeIndex, k: &ConvKernel, cost: &CostModel) -> f64 {
    let node = graph.node(n);
    let ins: Vec<&TensorType> = graph
        .inputs_of(n)
        .into_iter()
        .map(|i| &graph.node(i).ty)
        .collect();
    let ttnn = cost.node_cost(&node.op, &ins, &node.ty, false);
    let (rows, offsets) = (k.rows as f64, k.offsets as f64);
    let ct = k.channel_tiles as f64;
    let nt = node.ty.shape[1].div_ceil(32) as f64;
    let (a_tiles, select_tiles) = match k.gathered {
        true => (2.0 * ct + 2.0, 2.0),
        false => (ct, 0.0),
    };
    let read_tiles = rows * offsets * (a_tiles + ct * nt);
    let tile_bytes = 1024.0 * cost.bytes_per_element;
    let traffic = (read_tiles + rows * nt) * tile_bytes / cost.dram_bytes_per_cycle;
    let products = rows * offsets * ct * (select_tiles + nt);
    let math = products * cost.matmul_tile_cycles / cost.cores;
    ttnn - (cost.dispatch_cycles + traffic.max(math))
}

/// The cycles convolution `n` saves as a matmul kernel (pointwise, or gathering its windows by
/// whole tiles), if it can be one.
fn saving_as_matmul(graph: &Graph, n: NodeIndex, cost: &CostModel) -> Option<f64> {
    if is_pointwise(graph, n) {
        let x = &graph.node(graph.inputs_of(n)[0]).ty.shape;
        let k = ConvKernel {
            rows: (x[0] * x[2] * x[3]).div_ceil(32),
            offsets: 1,
            channel_tiles: x[1].div_ceil(32),
            gathered: false,
        };
        return Some(kernel_saving(graph, n, &k, cost));
    }
    gather_of(graph, n).map(|(_, g)| {
        let k = ConvKernel {
            rows: g.row_tiles(),
            offsets: g.offsets(),
            channel_tiles: g.channels / 32,
            gathered: true,
        };
        kernel_saving(graph, n, &k, cost)
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

/// The nodes computed pixel-major: convolutions that are cheaper as matmul kernels, and
/// elementwise ops over a pixel-major tensor whose other operands have a pixel-major form;
/// then only the connected regions of them whose convolutions save more than the region's
/// layout changes cost (one transpose per tensor entering or leaving it, [`conversions`]).
fn pixel_major_nodes(graph: &Graph, choice: ConvChoice) -> BTreeSet<NodeIndex> {
    let mut pixel_major = BTreeSet::new();
    let mut saving = BTreeMap::new();
    let cost = match choice {
        ConvChoice::ByCost(c) => Some(c),
        ConvChoice::Every => None,
    };
    for n in graph.topo_order() {
        let node = graph.node(n);
        let joins = if matches!(node.op, Op::Conv { .. }) {
            match cost {
                None => is_pointwise(graph, n) || gather_of(graph, n).is_some(),
                Some(cost) => match saving_as_matmul(graph, n, cost) {
                    Some(s) if s > 0.0 => saving.insert(n, s).is_none(),
                    _ => false,
                },
            }
        } else if elementwise(&node.op) && node.ty.shape.len() == 4 {
            let ins = graph.inputs_of(n);
            ins.iter().any(|x| pixel_major.contains(x))
                && ins
                    .iter()
                    .all(|&x| operand(graph, x, &node.ty.shape).is_some())
        } else {
            false
        };
        if joins {
            pixel_major.insert(n);
        }
    }
    let Some(cost) = cost else {
        return pixel_major;
    };
    let mut kept = BTreeSet::new();
    for region in regions(graph, &pixel_major) {
        let saved: f64 = region.iter().filter_map(|n| saving.get(n)).sum();
        if saved > conversions(graph, &region, cost) {
            kept.extend(region);
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
        cost.node_cost(&op, &[ty], ty, false)
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
        let leaves = graph.users_of(n).iter().any(|u| !region.contains(u))
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

/// Convolution `n` as `Im2Col(pixels(x)) @ W (+ bias)`, then its fused ReLU if it has one.
fn conv_as_matmul(
    b: &mut GraphBuilder,
    pixels: &mut Pixels,
    n: NodeIndex,
    rebuilt: &[Option<NodeIndex>],
) -> Result<NodeIndex, BuildError> {
    let graph = pixels.graph;
    let node = graph.node(n);
    let ins = graph.inputs_of(n);
    let new = |i: usize| rebuilt[ins[i].index()].expect("inputs are rebuilt first");
    let x = pixels.of_nchw(b, ins[0], new(0))?;
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
        &[new(1)],
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
        let bias = [y, new(2)];
        y = b.add(&name("biased", !relu), Op::Binary(BinaryOp::Add), &bias)?;
    }
    if relu {
        y = b.add(&node.name, Op::Unary(UnaryOp::Relu), &[y])?;
    }
    Ok(y)
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
/// matmul kernel gathers by tiles as (im2col +) matmul, with the elementwise ops after them in
/// the pixel-major layout. Returns the graph and how many convolutions were rewritten (the
/// graph unchanged when none).
pub fn convs_as_matmuls(graph: &Graph, choice: ConvChoice) -> Result<(Graph, usize), BuildError> {
    let pixel_major = pixel_major_nodes(graph, choice);
    let convs = pixel_major
        .iter()
        .filter(|&&n| matches!(graph.node(n).op, Op::Conv { .. }))
        .count();
    if convs == 0 {
        return Ok((graph.clone(), 0));
    }
    let mut pixels = Pixels {
        graph,
        of: BTreeMap::new(),
    };
    let out = rebuild(graph, |b, n, rebuilt| {
        if !pixel_major.contains(&n) {
            return Ok(None);
        }
        let node = graph.node(n);
        let p = if matches!(node.op, Op::Conv { .. }) {
            conv_as_matmul(b, &mut pixels, n, rebuilt)?
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
    Ok((out, convs))
}
