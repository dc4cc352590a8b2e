//! Building one planned kernel from a group: its body, the block size that fits, its buffers
//! and its DRAM traffic.

use std::collections::BTreeSet;

use petgraph::graph::NodeIndex;

use super::body::{Body, BodyBuilder, LoadSource, ValueOp};
use super::causal::{self, Causal};
use super::gather::{gathered_in_place, tile_gather};
use super::group::{is_last_two_swap, real_users, resolve, Group, GroupKind};
use super::heads::{merged_into, read_in_place, split_into, HeadView, HeadWrite};
use super::layout::{device_dims, flat2d, layout_of};
use super::partition::{divisors, preference, Partition};
use super::schedule::{Cb, Schedule};
use super::target::Target;
use super::{estimate, segments, stream, wide};
use super::{FusionMode, KernelKind, PlanError, PlannedKernel};
use crate::graph::im2col::{weight_matrix_tiles, TileGather};
use crate::graph::{DType, Graph, Op};

/// The matmul a matmul kernel computes, in tiles.
#[derive(Clone, Debug, PartialEq)]
pub struct MatmulInfo {
    /// The A tensor (graph node whose data is read).
    pub a: NodeIndex,
    /// The tensor B is read from (the transpose's input when `b_transposed`).
    pub b: NodeIndex,
    /// Whether B is read as `(N, K)` tiles and transposed in the kernel.
    pub b_transposed: bool,
    /// Whether B has one matrix per batch (otherwise one matrix for all rows of A).
    pub b_batched: bool,
    /// Batches.
    pub batches: usize,
    /// Output rows per batch, in tiles.
    pub mt: usize,
    /// K in tiles.
    pub kt: usize,
    /// Output columns in tiles.
    pub nt: usize,
    /// Kernel parameter A is read from.
    pub a_param: String,
    /// Kernel parameter B is read from (A's when both are the same tensor).
    pub b_param: String,
    /// Stem of A's buffer.
    pub a_stem: String,
    /// Stem of the buffer B's tiles are read into.
    pub b_stem: String,
    /// Stem of the buffer holding B's transposed block (transposed reads only).
    pub bt_stem: String,
    /// Stem of the running-sum buffer.
    pub acc_stem: String,
    /// A read head by head from a column range of its source (`a` is the source).
    pub a_heads: Option<HeadView>,
    /// B read head by head from a column range of its source (`b` is the source).
    pub b_heads: Option<HeadView>,
    /// A gathered from the pixel matrix `a` window by window (a convolution's im2col).
    pub a_gather: Option<GatherInfo>,
    /// More products of the same A, computed after the first, each with its own B.
    pub others: Vec<OtherProduct>,
    /// Causal attention taken in key chunks ([`super::causal`]), if the kernel is planned so.
    pub causal: Option<Causal>,
    /// A is the input of an RMSNorm or LayerNorm the kernel applies itself ([`RowNorm`]).
    pub norm: Option<RowNorm>,
}

/// The RMSNorm of a matmul kernel's left operand, applied by the kernel
/// ([`GroupKind::Matmul::norm`]): `rmsnorm(x) @ W == (x @ W) * rsqrt(mean(x^2) + eps)` per row,
/// so the kernel reads `x` as A. As the first product's K chunks pass, the compute thread squares
/// each chunk and adds its row sums (scaled by `1 / K`) to a running mean square; after the
/// chunks it computes the rows' scale once (an SFPU `rsqrt`, ~1080 cycles a tile) and copies it
/// once per product, and each product's running sum is scaled by it before the epilogue. The
/// cores of a grid row that take the same rows share the sums ([`row_norm_sharers`]).
///
/// A LayerNorm ([`RowNorm::kept`]) is `((x - mean) @ W) * rsqrt(var + eps)`: its rows'
/// mean must be known before the first product, so each core of a grid row first reads the
/// chunk it multicasts, and the cores share its row sums (the mean). Each core then centers its
/// chunk, and shares its centered squares' row sums (the variance) as an RMSNorm's; the scale is
/// known before the products, which each scale their last chunk. The centered chunk stays in
/// L1: its core multicasts it for every block and product, and uses it itself, so A is read
/// from DRAM once. KeptChunk before the product, rather than subtracting `mean * colsum(W)`
/// after it, keeps the products as exact as the separate LayerNorm's: the two terms of the
/// other form cancel in bf16.
#[derive(Clone, Debug, PartialEq)]
pub struct RowNorm {
    /// Body value of the reduce scaler tile, `1 / K`.
    pub scaler: usize,
    /// Body value of the epsilon tile.
    pub eps: usize,
    /// Stem of the buffer of a K chunk's squares.
    pub squares_stem: String,
    /// Stem of the running mean square of the rows.
    pub mean_square_stem: String,
    /// Stem of the buffer of the rows' scale, computed once.
    pub rstd_stem: String,
    /// Stem of the buffer of the rows' scale copied once per product.
    pub scale_stem: String,
    /// Stems of the buffers through which the cores of a grid row share the sums
    /// ([`row_norm_sharers`]): this core's partial to send, the others' received, and their
    /// running total.
    pub send_stem: String,
    /// See [`RowNorm::send_stem`].
    pub peers_stem: String,
    /// See [`RowNorm::send_stem`].
    pub total_stem: String,
    /// Whether the cores of a grid row share the sums, where the layout lets them
    /// ([`row_norm_sharers`]): the planner weighs each layout both ways.
    pub shared: bool,
    /// The chunk of A each core takes before the products and keeps in L1 ([`KeptChunk`]):
    /// always for a LayerNorm, which centers it; for an RMSNorm, when the kernel computes A
    /// ([`KeptChunk::input`]). `None` when the first product's chunks sum an RMSNorm's squares
    /// as they pass.
    pub kept: Option<KeptChunk>,
}

/// The K chunk of A each core of a grid row multicasts, taken before the products (read, or
/// computed by [`KeptChunk::input`]) and kept in L1 for every block and product: the cores
/// share its row statistics (a LayerNorm's mean, then variance; an RMSNorm's mean square)
/// before the first product, and the products each scale their last chunk ([`RowNorm`]).
#[derive(Clone, Debug, PartialEq)]
pub struct KeptChunk {
    /// Whether the chunk is centered on its rows' mean (a LayerNorm).
    pub centered: bool,
    /// Stem of the buffer of the K chunk this core multicasts, read before the products.
    pub own_chunk_stem: String,
    /// Stem of the buffer of that chunk (centered) which the reader holds and multicasts.
    pub sent_stem: String,
    /// Stem of the buffer of the same, which the compute thread holds for its own products.
    pub kept_stem: String,
    /// The product computing the norm's input in the kernel, if it does
    /// ([`super::group::GroupKind::Matmul::norm_input`]).
    pub input: Option<NormInput>,
}

/// The product whose result, plus bias and residual adds, is a centered A's input, computed
/// by the kernel ([`KeptChunk::input`]): each core computes its K chunk of A (its rows of `a`
/// times its columns of `b`, plus the adds' same columns) before the norm's statistics, instead
/// of reading it, and writes it to A's tensor for the kernels after. The product's K is taken
/// in chunks, `a`'s multicast along the grid row and `b`'s down the grid column, as in a
/// multicast matmul kernel whose blocks are the chunks.
#[derive(Clone, Debug, PartialEq)]
pub struct NormInput {
    /// The left operand (a graph tensor of A's rows).
    pub a: NodeIndex,
    /// The right operand (a constant matrix with A's columns).
    pub b: NodeIndex,
    /// Kernel parameters `a` and `b` are read from.
    pub a_param: String,
    /// See [`NormInput::a_param`].
    pub b_param: String,
    /// The product's K, in tiles.
    pub kt: usize,
    /// Its K chunk, in tiles: the largest divisor of `kt` up to 8.
    pub bk: usize,
    /// The adds after the product, in order.
    pub adds: Vec<InputAdd>,
    /// Stems of the buffers of `a`'s and `b`'s chunks, of the running sum, and of the chunk of
    /// A the writer writes.
    pub a_stem: String,
    /// See [`NormInput::a_stem`].
    pub b_stem: String,
    /// See [`NormInput::a_stem`].
    pub acc_stem: String,
    /// See [`NormInput::a_stem`].
    pub written_stem: String,
}

impl NormInput {
    /// The K chunk of a product of `kt` tiles: the largest divisor of `kt` up to 8 tiles.
    fn k_block(kt: usize) -> usize {
        divisors(kt)
            .into_iter()
            .filter(|&d| d <= 8)
            .max()
            .unwrap_or(1)
    }
}

/// An add after a [`NormInput`]'s product: a bias row or a residual of A's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct InputAdd {
    /// The tensor added.
    pub tensor: NodeIndex,
    /// Kernel parameter it is read from, and the stem of its buffer.
    pub param: String,
    /// Whether it is a row vector, broadcast down the rows.
    pub row_vector: bool,
}

/// How many cores of a grid row share the row sums of a normalized A ([`RowNorm`]) in a kernel
/// planned as `p` with `k_chunks` K chunks: with A multicast along grid rows and one block per
/// core, every core of a grid row takes the same rows, so each squares and sums its share of
/// the chunks (chunk `kc` on core `kc % GRID_X`) and sends its partial to the row's other
/// cores. With fewer chunks than cores, the cores from the last chunk's on all sum the last
/// chunk, so that every core sums one chunk (and uses the reductions' scaler tile it waits
/// for), and only the first `k_chunks` send: the sharers are the `k_chunks` cores whose
/// partials differ. `None` when every core sums all its chunks itself.
pub fn row_norm_sharers(info: &MatmulInfo, p: &Partition, k_chunks: usize) -> Option<usize> {
    let norm = info.norm.as_ref()?;
    row_norm_sharing(p, k_chunks, norm).filter(|_| norm.shared)
}

/// How many cores of a grid row could share `norm`'s row sums in a kernel planned as `p` with
/// `k_chunks` K chunks ([`row_norm_sharers`]), if any. A centered A (a LayerNorm,
/// [`RowNorm::kept`]) must share them, each core summing one chunk before the products;
/// since that happens once per core, the core may take several blocks, as long as they are
/// all on the same rows (its grid row's blocks make whole block rows). A centered A computed
/// in the kernel ([`KeptChunk::input`]) takes as many chunks as the grid row has cores, each
/// core computing one.
fn row_norm_sharing(p: &Partition, k_chunks: usize, norm: &RowNorm) -> Option<usize> {
    let cols = p.grid.0 as usize;
    let same_rows = match &norm.kept {
        None => p.blocks_per_core == 1,
        Some(ce) => {
            let chunks = match ce.input {
                Some(_) => k_chunks == cols,
                None => k_chunks <= cols,
            };
            p.col_blocks == cols * p.blocks_per_core && chunks
        }
    };
    let one_row_block = p.multicast
        && p.batches == 1
        && same_rows
        && !p.guarded
        && p.segments.is_none()
        && p.overlap == (0, 0);
    let sharers = (p.grid.0 as usize).min(k_chunks);
    (one_row_block && sharers > 1).then_some(sharers)
}

/// A further product of a matmul kernel computing several products of one left operand (a gated
/// MLP's `x @ W1` and `x @ W3`): the reader streams A again with this B, K chunk by K chunk.
#[derive(Clone, Debug, PartialEq)]
pub struct OtherProduct {
    /// Its body value (a `MatMul` value like the first product's).
    pub value: usize,
    /// The tensor B is read from.
    pub b: NodeIndex,
    /// Kernel parameter B is read from.
    pub b_param: String,
    /// Stem of the running-sum buffer.
    pub acc_stem: String,
}

/// A matmul's left operand gathered from a pixel matrix ([`super::gather`]): per K chunk (one
/// window offset, all channels) the reader reads the block's `bm + 1` pixel row tiles and its
/// gather table tiles, and the compute thread selects the window's rows from them with a
/// matmul.
#[derive(Clone, Debug, PartialEq)]
pub struct GatherInfo {
    /// The gather.
    pub gather: TileGather,
    /// Kernel parameter of the gather table ([`TileGather::table`] for the block's rows).
    pub table_param: String,
    /// Stem of the buffer of the block's pixel row tiles.
    pub pixels_stem: String,
}

/// A standalone transpose, in tiles.
#[derive(Clone, Debug, PartialEq)]
pub struct TransposeInfo {
    /// The input tensor.
    pub input: NodeIndex,
    /// The transpose node (its output).
    pub output: NodeIndex,
    /// Batches (product of the leading axes).
    pub batches: usize,
    /// Input rows per batch, in tiles.
    pub in_rows: usize,
    /// Input columns, in tiles.
    pub in_cols: usize,
    /// Kernel parameter names: input, output.
    pub stems: (String, String),
}

/// What the lowering needs beyond the summary.
#[derive(Clone, Debug, PartialEq)]
pub enum KernelDetail {
    /// Elementwise and row-wise kernels.
    Body {
        /// The compute body.
        body: Body,
        /// Its schedule for the chosen block.
        schedule: Schedule,
    },
    /// Matmul kernels.
    Matmul {
        /// The epilogue body (its `MatMul` value is the product).
        body: Body,
        /// Its schedule.
        schedule: Schedule,
        /// The matmul's shape.
        info: Box<MatmulInfo>,
    },
    /// Transpose kernels.
    Transpose(TransposeInfo),
    /// Host fallbacks.
    Host(HostInfo),
}

/// A graph op run by the host.
#[derive(Clone, Debug, PartialEq)]
pub struct HostInfo {
    /// The node.
    pub node: NodeIndex,
    /// Its inputs, in slot order (views resolved).
    pub inputs: Vec<NodeIndex>,
    /// The TTNN-style op name, e.g. `ttnn.slice`.
    pub op: String,
}

/// Tiles along a dimension of `n` elements (padded up to whole tiles).
fn tiles(n: usize) -> usize {
    n.div_ceil(32)
}

/// Whether the device padding of `n` is certainly zero: graph inputs and constants, which
/// bindings pad with zeros, and transposes of them.
fn zero_padded(graph: &Graph, n: NodeIndex) -> bool {
    match &graph.node(n).op {
        Op::Input | Op::Constant(_) => true,
        Op::Transpose { .. } if is_last_two_swap(graph, n) => graph
            .inputs_of(n)
            .first()
            .is_some_and(|&i| zero_padded(graph, resolve(graph, i))),
        _ => false,
    }
}

/// The softmaxes of `g` whose only use is a product of `g` with the softmax as its left
/// operand (attention's `softmax(q k^T) @ v`): their normalization can wait for the product.
fn deferrable_softmaxes(graph: &Graph, g: &Group) -> BTreeSet<NodeIndex> {
    g.nodes
        .iter()
        .copied()
        .filter(|&n| matches!(graph.node(n).op, Op::Softmax { .. }))
        .filter(|&n| match real_users(graph, n) {
            (users, false) => match users.as_slice() {
                &[m] => {
                    g.nodes.contains(&m)
                        && matches!(graph.node(m).op, Op::MatMul)
                        && graph.inputs_of(m).first().map(|&a| resolve(graph, a)) == Some(n)
                }
                _ => false,
            },
            (_, true) => false,
        })
        .collect()
}

/// The nodes of `g` whose value leaves the kernel.
pub fn group_outputs(graph: &Graph, g: &Group) -> Vec<NodeIndex> {
    g.nodes
        .iter()
        .copied()
        .filter(|&n| {
            let (users, is_out) = real_users(graph, n);
            is_out || users.iter().any(|u| !g.nodes.contains(u))
        })
        .collect()
}

fn fits(cbs: &[Cb], target: &Target) -> Result<(), String> {
    let bytes: u64 = cbs
        .iter()
        .map(|c| c.tiles() as u64 * target.tile_bytes)
        .sum();
    if cbs.len() > target.max_cbs as usize {
        Err(format!(
            "{} circular buffers, the core has {}",
            cbs.len(),
            target.max_cbs
        ))
    } else if bytes > target.l1_bytes {
        Err(format!(
            "{bytes} B of circular buffers, the core has {} B of L1",
            target.l1_bytes
        ))
    } else {
        Ok(())
    }
}

/// The running-sum buffer of a streamed hidden layer, which is waited and reserved at once and
/// so keeps two blocks.
fn stream_acc(body: &Body) -> Vec<String> {
    body.stream
        .iter()
        .map(|st| format!("{}_cb", st.acc_stem))
        .collect()
}

fn single_buffer(cbs: &mut [Cb], keep: &[String]) {
    for cb in cbs {
        if !keep.contains(&cb.name) {
            cb.buffer_factor = 1;
        }
    }
}

/// Single-buffers the loads that a core of a kernel planned as `p` reads once and keeps
/// ([`super::body::Load::kept_by_core`]).
fn single_buffer_kept(body: &Body, schedule: &mut Schedule, p: &Partition) {
    for load in body.loads.iter().filter(|l| l.kept_by_core(p)) {
        if let Some(&i) = schedule.cb_of.get(&load.value) {
            schedule.cbs[i].buffer_factor = 1;
        }
    }
}

/// How a kernel with chained products cuts their work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Each block computes its products whole.
    Whole,
    /// The last chained product's columns in chunks of this many tiles over the grid
    /// ([`wide`]).
    Wide(usize),
    /// The hidden layer streamed in chunks of this many tiles ([`stream`]).
    Stream(usize),
}

/// Builds the planned kernel of group `g`. A kernel whose chained product's columns can be
/// split over cores ([`wide`]), or whose hidden layer can be streamed ([`stream`]), takes the
/// cut, if any, the planner's estimate finds fastest; a kernel that does not fit whole takes
/// the fastest cut that fits.
pub fn build(
    graph: &Graph,
    target: &Target,
    g: &Group,
    mode: FusionMode,
) -> Result<PlannedKernel, PlanError> {
    let whole = build_cut(graph, target, g, mode, Cut::Whole);
    if mode != FusionMode::Fused {
        return whole;
    }
    match whole {
        Ok(k) => {
            let body = match &k.detail {
                KernelDetail::Body { body, .. } | KernelDetail::Matmul { body, .. } => body.clone(),
                _ => return Ok(k),
            };
            let rows = k.partition.batches * k.partition.row_blocks;
            let cycles = estimate::cycles(&k, target);
            Ok(match fastest_cut(graph, target, g, &body, Some(rows)) {
                Some((c, cut)) if c < cycles => cut,
                _ => k,
            })
        }
        Err(e @ PlanError::DoesNotFit { .. }) => group_body(graph, g)
            .and_then(|body| fastest_cut(graph, target, g, &body, None))
            .map(|(_, k)| k)
            .ok_or(e),
        Err(e) => Err(e),
    }
}

/// The fastest (by the estimate) of group `g`'s cuts that fit, with its estimated cycles: its
/// chained product's columns split ([`wide`]), or its hidden layer streamed ([`stream`]).
/// `rows` are the whole kernel's row blocks when it fits (more chunks than it takes to fill the
/// grid only add recomputation); without, only the fewest column chunks that fit are tried.
fn fastest_cut(
    graph: &Graph,
    target: &Target,
    g: &Group,
    body: &Body,
    rows: Option<usize>,
) -> Option<(f64, PlannedKernel)> {
    let mode = FusionMode::Fused;
    let mut cuts = Vec::new();
    if let Some(width) = wide::splittable_width(body) {
        let mut chunks = divisors(width).into_iter().rev().filter(|&c| c < width);
        match rows {
            Some(rows) => {
                for chunk in chunks.filter(|&c| (width / c - 1) * rows < target.cores()) {
                    if let Ok(k) = build_cut(graph, target, g, mode, Cut::Wide(chunk)) {
                        cuts.push(k);
                    }
                }
            }
            None => {
                if let Some(k) =
                    chunks.find_map(|c| build_cut(graph, target, g, mode, Cut::Wide(c)).ok())
                {
                    cuts.push(k);
                }
            }
        }
    }
    if let Some(width) = stream::streamable_width(body) {
        for chunk in divisors(width).into_iter().filter(|&c| c < width) {
            if let Ok(k) = build_cut(graph, target, g, mode, Cut::Stream(chunk)) {
                cuts.push(k);
            }
        }
    }
    fastest(cuts, target)
}

/// The fastest of `kernels` by the estimate (the first of equals), with its estimated cycles.
fn fastest(
    kernels: impl IntoIterator<Item = PlannedKernel>,
    target: &Target,
) -> Option<(f64, PlannedKernel)> {
    let mut best: Option<(f64, PlannedKernel)> = None;
    for k in kernels {
        let cycles = estimate::cycles(&k, target);
        if best.as_ref().is_none_or(|(b, _)| cycles < *b) {
            best = Some((cycles, k));
        }
    }
    best
}

/// The body of group `g` before any cut, for body and matmul groups.
fn group_body(graph: &Graph, g: &Group) -> Option<Body> {
    let outputs = group_outputs(graph, g);
    match &g.kind {
        GroupKind::Body => body_of(graph, g, &outputs, true).ok(),
        GroupKind::Matmul {
            mm,
            b_transposed,
            heads,
            siblings,
            norm,
            norm_input,
        } => matmul_body(
            graph,
            g,
            *mm,
            (*b_transposed, *heads, siblings, *norm),
            *norm_input,
            &outputs,
        )
        .ok()
        .map(|(_, body)| body),
        _ => None,
    }
}

/// Whether group `g` fits the core whole or with its hidden layer streamed (the grouping's
/// budget check: the cut searches of [`build`] need not run for it; the smallest chunks need the
/// least L1). A column split is not asked for: a norm that fits its projection only split
/// joins it, and the ops after the projection, which would have joined the projection's own
/// kernel, are then left out when the estimate splits the norm off again (measured on the
/// GPT-2 block at seq 1024: 8 kernels and 1508 us against 7 kernels and 1462 us).
pub(crate) fn fits_some_cut(
    graph: &Graph,
    target: &Target,
    g: &Group,
    mode: FusionMode,
) -> Result<(), PlanError> {
    match build_cut(graph, target, g, mode, Cut::Whole) {
        Err(e @ PlanError::DoesNotFit { .. }) if mode == FusionMode::Fused => {
            let Some(body) = group_body(graph, g) else {
                return Err(e);
            };
            let streams = stream::streamable_width(&body).is_some()
                && build_cut(graph, target, g, mode, Cut::Stream(1)).is_ok();
            if streams {
                Ok(())
            } else {
                Err(e)
            }
        }
        other => other.map(|_| ()),
    }
}

/// The body of a body group `g` writing `outputs` (with `heads`, merging or splitting attention
/// heads as it writes them, see [`add_outputs`]).
fn body_of(
    graph: &Graph,
    g: &Group,
    outputs: &[NodeIndex],
    heads: bool,
) -> Result<Body, PlanError> {
    let mut b = BodyBuilder::new(graph, g.space);
    if heads {
        b.read_concats_in_place();
    }
    b.defer_normalization(deferrable_softmaxes(graph, g));
    for &n in &g.nodes {
        b.node(n)?;
    }
    let head_write = add_outputs(graph, &mut b, outputs, heads)?;
    let mut body = b.finish();
    body.head_write = head_write;
    Ok(body)
}

/// Builds the planned kernel of group `g` with its chained products cut by `cut`.
pub(crate) fn build_cut(
    graph: &Graph,
    target: &Target,
    g: &Group,
    mode: FusionMode,
    cut: Cut,
) -> Result<PlannedKernel, PlanError> {
    let first = g.nodes[0];
    let wide = match cut {
        Cut::Wide(chunk) => Some(chunk),
        _ => None,
    };
    let split = |body: Body| match cut {
        Cut::Whole => Ok((body, 1)),
        Cut::Wide(chunk) => wide::split(&body, chunk).ok_or_else(|| {
            unsupported(
                graph,
                first,
                format!("its chained product's columns do not split into chunks of {chunk} tiles"),
            )
        }),
        Cut::Stream(chunk) => match stream::stream(&body, chunk) {
            Some(b) => Ok((b, 1)),
            None => Err(unsupported(
                graph,
                first,
                format!("its hidden layer does not stream in chunks of {chunk} tiles"),
            )),
        },
    };
    let outputs = group_outputs(graph, g);
    match &g.kind {
        GroupKind::Body => {
            let body = body_of(graph, g, &outputs, mode == FusionMode::Fused)?;
            let (body, chunks) = split(body)?;
            let (rt, ct) = (tiles(g.space.0), tiles(g.space.1));
            let rowwise = body.is_rowwise();
            let mut col_choices = if rowwise { vec![ct] } else { divisors(ct) };
            // A head split needs blocks within one head.
            if let Some(HeadWrite::Split { head_tiles, .. }) = body.head_write {
                col_choices.retain(|&bc| head_tiles.is_multiple_of(bc));
            }
            let mut cands = Vec::new();
            for br in body.row_choices(divisors(rt)) {
                for &bc in &col_choices {
                    for double in [true, false] {
                        let blocks = (rt / br) * (ct / bc) * chunks;
                        cands.push((preference(blocks, br * bc, double, target), br, bc, double));
                    }
                }
            }
            cands.sort();
            let mut last_err = String::new();
            let mut fitting = Fitting::new(&body, false, false);
            for (_, br, bc, double) in cands {
                let mut schedule =
                    Schedule::new(&body, (br, bc), rt / br, ct / bc * chunks, vec![]);
                if !double {
                    single_buffer(&mut schedule.cbs, &stream_acc(&body));
                }
                match fits(&schedule.cbs, target) {
                    Err(e) => last_err = format!("blocks of {br}x{bc} tiles need {e}"),
                    Ok(()) => {
                        let grid_blocks = (1, rt / br, ct / bc * chunks);
                        let mut p = Partition::spread((br, bc), grid_blocks, target);
                        p.double_buffered = double;
                        p.wide = wide;
                        p.stream = body.stream.as_ref().map(|st| (st.chunk, st.chunks));
                        let kind = if rowwise {
                            KernelKind::RowWise
                        } else {
                            KernelKind::Eltwise
                        };
                        let traffic = body_traffic(&body, &schedule, &p, target.tile_bytes);
                        let detail = KernelDetail::Body {
                            body: body.clone(),
                            schedule,
                        };
                        let k = summary(graph, target, g, kind, p, traffic, detail);
                        if fitting.take(k) {
                            break;
                        }
                    }
                }
            }
            let whole = fitting.fastest(target);
            // Segments are for rows too few to fill the grid whole.
            let few_rows = rt < target.cores();
            let segmentable =
                rowwise && few_rows && cut == Cut::Whole && segments::segmentable(&body);
            let segmented = segmentable
                .then(|| segmented(graph, target, g, &body, (rt, ct)))
                .flatten();
            if let Some((_, k)) = fastest(whole.into_iter().chain(segmented), target) {
                return Ok(k);
            }
            Err(PlanError::DoesNotFit {
                node: graph.node(first).name.clone(),
                reason: last_err,
            })
        }
        GroupKind::Matmul {
            mm,
            b_transposed,
            heads,
            siblings,
            norm,
            norm_input,
        } => {
            let (info, body) = matmul_body(
                graph,
                g,
                *mm,
                (*b_transposed, *heads, siblings, *norm),
                *norm_input,
                &outputs,
            )?;
            let (body, chunks) = split(body)?;
            let mut cands = Vec::new();
            // A row-wise epilogue needs blocks spanning whole rows; a head split, blocks
            // within one head.
            let mut col_choices = if body.is_rowwise() {
                vec![info.nt]
            } else {
                divisors(info.nt)
            };
            if let Some(HeadWrite::Split { head_tiles, .. }) = body.head_write {
                col_choices.retain(|&bn| head_tiles.is_multiple_of(bn));
            }
            // A gathered operand: blocks whose rows the gather reaches, and one window offset
            // per K chunk.
            let (row_choices, k_choices) = match &info.a_gather {
                Some(g) => (
                    body.row_choices(divisors(info.mt))
                        .into_iter()
                        .filter(|&bm| g.gather.fits_block(bm))
                        .collect(),
                    vec![g.gather.channels / 32],
                ),
                None => (body.row_choices(divisors(info.mt)), divisors(info.kt)),
            };
            let sharings = sharings(&info, chunks, wide.is_some() || body.stream.is_some());
            // Laid out as the grid, blocks that need not divide the product: more grid rows or
            // columns than any that do.
            let (mut row_sizes, mut col_sizes) = (row_choices.clone(), col_choices.clone());
            if sharings.contains(&Sharing::Grid) && body.head_write.is_none() {
                if body.row_alignment().is_none() {
                    row_sizes.extend(overlapping_sizes(info.mt, target.grid_y as usize));
                }
                if !body.is_rowwise() {
                    col_sizes.extend(overlapping_sizes(info.nt, target.grid_x as usize));
                }
            }
            for &bm in &row_sizes {
                for &bn in &col_sizes {
                    let exact = info.mt.is_multiple_of(bm) && info.nt.is_multiple_of(bn);
                    let spread = if exact {
                        Partition::spread(
                            (bm, bn),
                            (info.batches, info.mt / bm, info.nt / bn * chunks),
                            target,
                        )
                    } else {
                        let p = Partition::overlapping((bm, bn), (info.mt, info.nt), target);
                        // Only a 2-D grid shares both operands; on one grid row or column
                        // the overlap buys nothing a spread layout does not.
                        if p.row_blocks < 2 || p.col_blocks < 2 {
                            continue;
                        }
                        p
                    };
                    for &sharing in &sharings {
                        if !exact && sharing != Sharing::Grid {
                            continue;
                        }
                        let split = info.others.is_empty();
                        let Some(laid) = sharing.apply(spread.clone(), target, split) else {
                            continue;
                        };
                        for &bk in &k_choices {
                            // A normalized A's row sums, shared and not, where they can be; a
                            // centered A's only shared.
                            let k_chunks = info.kt / bk;
                            let sharing = info
                                .norm
                                .as_ref()
                                .and_then(|rn| row_norm_sharing(&laid, k_chunks, rn));
                            let shares: &[bool] = match (&info.norm, sharing) {
                                (Some(rn), None) if rn.kept.is_some() => &[],
                                (Some(rn), Some(_)) if rn.kept.is_some() => &[true],
                                (Some(_), Some(_)) => &[true, false],
                                _ => &[false],
                            };
                            for double in [true, false] {
                                for &share in shares {
                                    let key =
                                        candidate_key(&info, &laid, (bk, share), double, target);
                                    let order = (key, bn, bm, bk, double, sharing, share);
                                    cands.push((order, laid.clone()));
                                }
                            }
                        }
                    }
                }
            }
            cands.sort_by_key(|(order, _)| *order);
            let mut last_err = String::new();
            let overlaps = cands.iter().any(|(_, laid)| laid.overlap != (0, 0));
            let both_ways = info.norm.as_ref().is_some_and(|rn| rn.kept.is_none());
            let mut fitting = Fitting::new(&body, overlaps, both_ways);
            for ((_, bn, bm, bk, double, _, share), laid) in cands {
                let k_chunks = info.kt / bk;
                let with_sharing;
                let info = match &info.norm {
                    Some(rn) if rn.shared != share => {
                        let mut i = info.clone();
                        i.norm = Some(RowNorm {
                            shared: share,
                            ..rn.clone()
                        });
                        with_sharing = i;
                        &with_sharing
                    }
                    _ => &info,
                };
                let sharers = row_norm_sharers(info, &laid, k_chunks);
                let extra = matmul_cbs(
                    info,
                    (bm, bn),
                    (bk, k_chunks),
                    laid.blocks_per_core,
                    sharers,
                );
                let mut schedule = Schedule::new(
                    &body,
                    (bm, bn),
                    laid.batches * laid.row_blocks,
                    laid.col_blocks,
                    extra,
                );
                if !double {
                    let mut keep = vec![format!("{}_cb", info.acc_stem)];
                    keep.extend(info.others.iter().map(|op| format!("{}_cb", op.acc_stem)));
                    if let Some(rn) = &info.norm {
                        keep.push(format!("{}_cb", rn.mean_square_stem));
                        keep.push(format!("{}_cb", rn.scale_stem));
                        keep.push(format!("{}_cb", rn.total_stem));
                    }
                    keep.extend(stream_acc(&body));
                    single_buffer(&mut schedule.cbs, &keep);
                }
                single_buffer_kept(&body, &mut schedule, &laid);
                match fits(&schedule.cbs, target) {
                    Err(e) => {
                        last_err =
                            format!("blocks of {bm}x{bn} tiles with K chunks of {bk} need {e}")
                    }
                    Ok(()) => {
                        let mut p = laid;
                        p.wide = wide;
                        p.stream = body.stream.as_ref().map(|st| (st.chunk, st.chunks));
                        p.k_block = Some(bk);
                        p.k_chunks = k_chunks;
                        p.double_buffered = double;
                        let (mut reads, mut writes) =
                            body_traffic(&body, &schedule, &p, target.tile_bytes);
                        reads += operand_tiles(info, &p, bk) as u64 * target.tile_bytes;
                        let kept = info.norm.as_ref().and_then(|rn| rn.kept.as_ref());
                        if let Some(input) = kept.and_then(|ce| ce.input.as_ref()) {
                            let written = norm_input_tiles(info, input, &p).1;
                            writes += written as u64 * target.tile_bytes;
                        }
                        let detail = KernelDetail::Matmul {
                            body: body.clone(),
                            schedule,
                            info: Box::new(info.clone()),
                        };
                        let kind = KernelKind::Matmul;
                        let k = summary(graph, target, g, kind, p, (reads, writes), detail);
                        if fitting.take(k) {
                            break;
                        }
                    }
                }
            }
            // A row-wise epilogue on few block rows: its columns in segments over grid rows.
            let segmented = (cut == Cut::Whole)
                .then(|| segmented_matmul(graph, target, g, &body, &info))
                .flatten();
            // Causal attention: the variant of each candidate that skips the keys past each
            // row block's diagonal, taken when the estimate finds it faster. Each block shape's
            // own: the imbalance between row blocks near and far from the diagonal depends on
            // how many steps each core takes.
            let whole = fitting.into_kernels();
            let causal: Vec<PlannedKernel> = whole
                .iter()
                .filter_map(|k| causal::variant(graph, target, k))
                .collect();
            let all = whole.into_iter().chain(segmented).chain(causal);
            if let Some((_, k)) = fastest(all, target) {
                return Ok(k);
            }
            Err(PlanError::DoesNotFit {
                node: graph.node(first).name.clone(),
                reason: last_err,
            })
        }
        GroupKind::Transpose => transpose_kernel(graph, target, g),
        GroupKind::Host => host_step(graph, target, g),
    }
}

/// Block sizes that do not divide `tiles` and cut them into more blocks, up to `lanes` (grid
/// rows or columns), than any size that divides them
/// ([`Partition::overlapping`]).
fn overlapping_sizes(tiles: usize, lanes: usize) -> Vec<usize> {
    let most_exact = divisors(tiles)
        .into_iter()
        .filter(|&d| tiles / d <= lanes)
        .map(|d| tiles / d)
        .max()
        .unwrap_or(1);
    let mut sizes: Vec<usize> = (most_exact + 1..=lanes.min(tiles))
        .map(|n| tiles.div_ceil(n))
        .filter(|&s| !tiles.is_multiple_of(s) && tiles.div_ceil(s) > most_exact)
        .collect();
    sizes.dedup();
    sizes
}

/// How a matmul kernel's cores share its operands ([`Partition::multicast`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Sharing {
    /// Every block reads its own operands.
    None,
    /// A 2-D product's blocks laid out as the grid: A along grid rows, B down grid columns.
    Grid,
    /// Batches on grid rows: each batch's right operands along its row.
    Batches,
}

impl Sharing {
    /// Partition `p` laid out for this sharing, if its blocks allow it; `split` when a core may
    /// take several narrower blocks of a block row ([`Partition::multicast`]), which a kernel
    /// of several products does not (each block would stream A again for each product).
    fn apply(self, p: Partition, target: &Target, split: bool) -> Option<Partition> {
        match self {
            Sharing::None => Some(p),
            Sharing::Grid => p.multicast(target, split),
            Sharing::Batches => p.share_batches(target),
        }
    }
}

/// The ways the blocks of matmul `info` can share operands, for `chunks` column chunks of a
/// chained product (1 when they are not split), `cut` when its columns are split or its hidden
/// layer streamed: plain 2-D products (one or several of one A) lay out as the grid, batched
/// row-wise ones (attention) share each batch's right operands; gathered operands and cut
/// bodies read their own.
fn sharings(info: &MatmulInfo, chunks: usize, cut: bool) -> Vec<Sharing> {
    let mut out = vec![Sharing::None];
    if info.a_gather.is_some() || chunks != 1 || cut {
        return out;
    }
    let plain = info.a_heads.is_none() && info.b_heads.is_none() && !info.b_batched;
    if plain && info.batches == 1 {
        out.push(Sharing::Grid);
    } else if info.others.is_empty()
        && info.batches > 1
        && (info.b_heads.is_some() || info.b_batched)
    {
        out.push(Sharing::Batches);
    }
    out
}

/// Operand tiles a matmul kernel partitioned as `p`, K in chunks of `bk`, reads: per K chunk
/// every block its A block (for a gathered A, `bm + 1` pixel row tiles and the block's
/// `bm x (bm + 1)` table tiles) and its B block, again for every further product; with the
/// operands multicast over the grid, B once and A once per block of a core (a centered A once
/// per core, [`RowNorm::kept`]); with batches shared over grid rows, each block its A and
/// each grid row its batch's B.
pub(crate) fn operand_tiles(info: &MatmulInfo, p: &Partition, bk: usize) -> usize {
    let (bm, bn) = p.block;
    let k_chunks = info.kt / bk;
    let products = 1 + info.others.len();
    let a_tiles = match &info.a_gather {
        Some(_) => (bm + 1) * (bk + bm),
        None => bm * bk,
    };
    match (p.multicast, p.batches > 1) {
        (true, false) => {
            // A once per grid row of a block row's cores (and per block of a core's), B once.
            let (rows, cols) = (p.row_blocks * bm, p.col_blocks * bn);
            let a = match info.norm.as_ref().and_then(|rn| rn.kept.as_ref()) {
                Some(ce) => match &ce.input {
                    Some(input) => norm_input_tiles(info, input, p).0,
                    None => p.grid.1 as usize * k_chunks.min(p.grid.0 as usize) * bm * bk,
                },
                None => products * info.kt * rows * p.blocks_per_core * p.segment_rows(),
            };
            a + products * info.kt * cols
        }
        (true, true) => {
            p.blocks * k_chunks * a_tiles + p.blocks / p.grid.0 as usize * k_chunks * bk * bn
        }
        (false, _) => p.blocks * k_chunks * (a_tiles + bk * bn) * products,
    }
}

/// The tiles a kernel planned as `p` reads and writes for the norm input it computes
/// ([`KeptChunk::input`]): its operands' (each grid row's rows of `a`, each grid column's
/// columns of `b`), its adds' (a bias row per core, a residual once), and A written once.
fn norm_input_tiles(info: &MatmulInfo, input: &NormInput, p: &Partition) -> (usize, usize) {
    let bk = info.kt / p.grid.0 as usize;
    let adds: usize = input
        .adds
        .iter()
        .map(|add| match add.row_vector {
            true => p.cores_used * bk,
            false => info.mt * info.kt,
        })
        .sum();
    (
        info.mt * input.kt + input.kt * info.kt + adds,
        info.mt * info.kt,
    )
}

/// Sort key of a matmul candidate: blocks `laid` out (operands shared or not), K in chunks of
/// `bk`, a normalized A's row sums shared over grid rows or not (`share_norm`).
///
/// First the layout's first estimate ([`estimate::matmul_layout_cycles`]: the chip's DRAM
/// traffic, one core's products, one core's reads; plus a normalized A's squares,
/// [`estimate::row_norm_cycles`], or its kept chunk's work, [`estimate::kept_chunk_cycles`];
/// for a gathered operand, the cores kept busy), then the fewest operand tiles read
/// ([`operand_tiles`]): every block reads its rows of
/// A and its columns of B over all of K, so the bigger and squarer blocks re-read the operands
/// fewer times, while more and smaller blocks keep more cores busy. K's chunks trade the
/// running sum's adds against the first chunk's wait ([`estimate::k_chunking_cycles`]), which
/// the first estimate includes.
fn candidate_key(
    info: &MatmulInfo,
    laid: &Partition,
    (bk, share_norm): (usize, bool),
    double: bool,
    target: &Target,
) -> (usize, usize, usize, usize, usize, bool, usize, usize) {
    let (bm, bn) = laid.block;
    let (_, capped, tiles, single) = preference(laid.blocks, bm * bn, double, target);
    let (c, tile) = (&target.costs, target.tile_bytes);
    let (kt, products) = (info.kt, 1 + info.others.len());
    let reads = operand_tiles(info, laid, bk);
    let shared = laid.multicast;
    let turns =
        estimate::k_chunking_cycles(c, ((bm, bn), laid.blocks_per_core), (bk, kt), shared, tile);
    let out_tiles = laid.blocks * bm * bn * products;
    // A normalized A's squares, which the K chunks and their sharing decide.
    let norm = match &info.norm {
        Some(rn) => {
            let k_chunks = kt / bk;
            let sharers = row_norm_sharing(laid, k_chunks, rn).filter(|_| share_norm);
            match &rn.kept {
                Some(kept) => {
                    let blocks = (laid.blocks_per_core, products);
                    estimate::kept_chunk_cycles(c, (laid.block, bk), kept, blocks, sharers, tile)
                }
                None => {
                    let chunks = (bk, k_chunks);
                    let block =
                        estimate::row_norm_cycles(c, laid.block, chunks, products, sharers, tile);
                    block * laid.blocks_per_core as f64
                }
            }
        }
        None => 0.0,
    };
    let cycles =
        estimate::matmul_layout_cycles(c, laid, (kt, products), (reads, out_tiles), shared, tile)
            + turns
            + norm;
    // The first estimate leaves out a gathered operand's select matmuls, which grow with the
    // block's rows: those keep the cores kept busy first.
    let rank = match &info.a_gather {
        Some(_) => usize::MAX - laid.cores_used,
        None => cycles as usize,
    };
    (
        rank,
        reads,
        capped,
        tiles,
        bm + bn,
        single,
        turns as usize,
        usize::MAX - bk,
    )
}

/// How many block shapes that fit (the first, best-buffered, of each) the planner weighs, by its
/// estimate, for a kernel whose chained products read a whole matrix per block: bigger row
/// blocks read those matrices fewer times (attention's keys and values at long sequences),
/// smaller ones spread over more cores.
const CHAINED_CANDIDATES: usize = 3;

/// The kernels the block-size search found to fit: the first (and the first whose blocks
/// overlap, [`Fitting::take`]), or for a kernel with chained products (which read a whole
/// right operand per block) the first of each of [`CHAINED_CANDIDATES`] block shapes, for the
/// estimate to weigh. A kernel that normalizes its A ([`RowNorm`]) weighs the first with
/// the row sums shared and the first without (a centered A's are always shared).
struct Fitting {
    chained: bool,
    /// How many different candidates end the search.
    wanted: usize,
    kernels: Vec<PlannedKernel>,
}

impl Fitting {
    /// For a kernel of `body`; `overlaps` when some candidates' blocks overlap
    /// ([`Partition::overlap`]); `norm` when the kernel normalizes its A with its row sums
    /// shared or not.
    fn new(body: &Body, overlaps: bool, norm: bool) -> Fitting {
        let chained = body.values.iter().any(|v| v.op == ValueOp::Product);
        Fitting {
            chained,
            wanted: match chained {
                true => CHAINED_CANDIDATES,
                false => (1 + usize::from(overlaps)) * (1 + usize::from(norm)),
            },
            kernels: Vec::new(),
        }
    }

    /// Takes a kernel that fits; returns whether the search is over. With chained products,
    /// the search takes the first kernel of each block shape; without, the first kernel whose
    /// blocks divide the product and, when the candidates have any, the first whose blocks
    /// overlap: the first estimate, which ranks the candidates, misjudges the two kinds
    /// against each other (on Blackhole, GPT-2's MLP up-projection on 11 grid columns ranks
    /// behind 8 columns of narrower blocks, but the estimate and the runtime find it faster:
    /// 75.12 against 85.24 us).
    fn take(&mut self, k: PlannedKernel) -> bool {
        let overlapping = |f: &PlannedKernel| f.partition.overlap != (0, 0);
        let alike = |f: &PlannedKernel| match self.chained {
            true => f.partition.block == k.partition.block,
            false => overlapping(f) == overlapping(&k) && shares_norm(f) == shares_norm(&k),
        };
        if !self.kernels.iter().any(alike) {
            self.kernels.push(k);
        }
        self.kernels.len() == self.wanted
    }

    /// The kernel the estimate finds fastest (the first of equals).
    fn fastest(self, target: &Target) -> Option<PlannedKernel> {
        fastest(self.kernels, target).map(|(_, k)| k)
    }

    /// The kernels taken, in the order taken.
    fn into_kernels(self) -> Vec<PlannedKernel> {
        self.kernels
    }
}

/// Whether kernel `k` shares a normalized A's row sums over its grid rows
/// ([`row_norm_sharers`]).
fn shares_norm(k: &PlannedKernel) -> bool {
    match &k.detail {
        KernelDetail::Matmul { info, .. } => {
            row_norm_sharers(info, &k.partition, k.partition.k_chunks).is_some()
        }
        _ => false,
    }
}

/// The template's buffers of matmul `info` in blocks of `bm x bn` tiles with K chunks of `bk`
/// (`k_chunks` of them), `blocks_per_core` of them on each core; `sharers`, the cores sharing
/// a normalized A's row sums ([`row_norm_sharers`]).
fn matmul_cbs(
    info: &MatmulInfo,
    (bm, bn): (usize, usize),
    (bk, k_chunks): (usize, usize),
    blocks_per_core: usize,
    sharers: Option<usize>,
) -> Vec<Cb> {
    let mut cbs = vec![Cb {
        name: format!("{}_cb", info.a_stem),
        like: info.a_param.clone(),
        shape: (bm, bk),
        buffer_factor: 2,
    }];
    if info.b_transposed {
        cbs.push(Cb {
            name: format!("{}_cb", info.b_stem),
            like: info.b_param.clone(),
            shape: (bn, bk),
            buffer_factor: 2,
        });
        cbs.push(Cb {
            name: format!("{}_cb", info.bt_stem),
            like: info.b_param.clone(),
            shape: (bk, bn),
            buffer_factor: 1,
        });
    } else {
        cbs.push(Cb {
            name: format!("{}_cb", info.b_stem),
            like: info.b_param.clone(),
            shape: (bk, bn),
            buffer_factor: 2,
        });
    }
    if let Some(g) = &info.a_gather {
        cbs.push(Cb {
            name: format!("{}_cb", g.table_param),
            like: g.table_param.clone(),
            shape: (bm, bm + 1),
            buffer_factor: 2,
        });
        cbs.push(Cb {
            name: format!("{}_cb", g.pixels_stem),
            like: info.a_param.clone(),
            shape: (bm + 1, bk),
            buffer_factor: 2,
        });
    }
    // An RMSNorm's first product is summed, then scaled into its own buffer (a kept chunk's
    // scale is known before the products: each scales its last chunk).
    let kept = info.norm.as_ref().is_some_and(|rn| rn.kept.is_some());
    let summed = k_chunks > 1 || info.norm.is_some() && !kept;
    for sp in &info.others {
        cbs.push(Cb {
            name: format!("{}_cb", sp.b_param),
            like: sp.b_param.clone(),
            shape: (bk, bn),
            buffer_factor: 2,
        });
        if summed {
            cbs.push(Cb::running_sum(&sp.acc_stem, &info.a_param, (bm, bn)));
        }
    }
    if summed {
        cbs.push(Cb::running_sum(&info.acc_stem, &info.a_param, (bm, bn)));
    }
    if let Some(rn) = &info.norm {
        let cb = |stem: &str, shape: (usize, usize), buffer_factor: usize| Cb {
            name: format!("{stem}_cb"),
            like: info.a_param.clone(),
            shape,
            buffer_factor,
        };
        cbs.push(cb(&rn.squares_stem, (bm, bk), 1));
        cbs.push(Cb::running_sum(
            &rn.mean_square_stem,
            &info.a_param,
            (bm, 1),
        ));
        cbs.push(cb(&rn.rstd_stem, (bm, 1), 1));
        // One copy of the scale per product (a kept chunk's, per product of every block).
        let copies = match kept {
            true => blocks_per_core,
            false => 1,
        };
        cbs.push(cb(
            &rn.scale_stem,
            (bm, 1),
            (1 + info.others.len()) * copies,
        ));
        if sharers.is_some() {
            cbs.push(cb(&rn.send_stem, (bm, 1), 1));
            // The others' partials arrive while the compute thread adds the one before.
            cbs.push(cb(&rn.peers_stem, (bm, 1), 2));
            cbs.push(Cb::running_sum(&rn.total_stem, &info.a_param, (bm, 1)));
        }
        if let Some(ce) = &rn.kept {
            cbs.push(cb(&ce.own_chunk_stem, (bm, bk), 1));
            cbs.push(cb(&ce.sent_stem, (bm, bk), 1));
            cbs.push(cb(&ce.kept_stem, (bm, bk), 1));
            if let Some(input) = &ce.input {
                let of = |stem: &str, like: &str, shape, buffer_factor| Cb {
                    name: format!("{stem}_cb"),
                    like: like.to_string(),
                    shape,
                    buffer_factor,
                };
                cbs.push(of(&input.a_stem, &input.a_param, (bm, input.bk), 2));
                cbs.push(of(&input.b_stem, &input.b_param, (input.bk, bk), 2));
                cbs.push(Cb::running_sum(&input.acc_stem, &info.a_param, (bm, bk)));
                for add in &input.adds {
                    let rows = if add.row_vector { 1 } else { bm };
                    cbs.push(of(&add.param, &add.param, (rows, bk), 1));
                }
                cbs.push(cb(&input.written_stem, (bm, bk), 1));
            }
        }
    }
    cbs
}

/// Adds a kernel's `outputs` to `builder`. With `heads` (fused mode), the one output of a head
/// merge or split is written as its reshape's or transpose's tensor instead
/// ([`merged_into`], [`split_into`]); returns how heads are then written.
fn add_outputs(
    graph: &Graph,
    builder: &mut BodyBuilder,
    outputs: &[NodeIndex],
    heads: bool,
) -> Result<Option<HeadWrite>, PlanError> {
    let mut head_write = None;
    for &o in outputs {
        let merge = merged_into(graph, o).filter(|_| heads);
        let split = split_into(graph, o).filter(|_| heads);
        match (merge, split) {
            // The kernel's last product (its own or a chained one) writes the merged heads.
            (Some(r), _) if matches!(graph.node(o).op, Op::MatMul) && outputs.len() == 1 => {
                builder.output_as(o, r)?;
                head_write = graph.node(o).ty.shape.last().map(|&cols| HeadWrite::Merge {
                    head_tiles: tiles(cols),
                });
            }
            (None, Some(t)) if outputs.len() == 1 => {
                builder.output_as(o, t)?;
                if let &[_, seq, hd] = graph.node(t).ty.shape.as_slice() {
                    head_write = Some(HeadWrite::Split {
                        head_tiles: tiles(hd),
                        seq_tiles: tiles(seq),
                    });
                }
            }
            (None, None) => builder.output(o)?,
            _ => {
                return Err(unsupported(
                    graph,
                    o,
                    "heads merged or split in place must be their kernel's only output".into(),
                ))
            }
        }
    }
    Ok(head_write)
}

fn unsupported(graph: &Graph, n: NodeIndex, reason: String) -> PlanError {
    PlanError::Unsupported {
        node: graph.node(n).name.clone(),
        op: graph.node(n).op.name(),
        reason,
    }
}

fn matmul_body(
    graph: &Graph,
    g: &Group,
    mm: NodeIndex,
    (b_transposed, heads, siblings, norm_node): (bool, bool, &[NodeIndex], Option<NodeIndex>),
    norm_input: Option<NodeIndex>,
    outputs: &[NodeIndex],
) -> Result<(MatmulInfo, Body), PlanError> {
    let ins = graph.inputs_of(mm);
    let (Some(&a_raw), Some(&b_raw)) = (ins.first(), ins.get(1)) else {
        return Err(unsupported(graph, mm, "a matmul needs two inputs".into()));
    };
    let in_place = |x: NodeIndex| if heads { read_in_place(graph, x) } else { None };
    let (a_heads, b_heads) = (in_place(a_raw), in_place(b_raw));
    let b_transposed = b_transposed || b_heads.is_some_and(|v| v.transposed);
    let gather = (heads && gathered_in_place(graph, a_raw))
        .then(|| tile_gather(graph, a_raw))
        .flatten();
    let a = match (&a_heads, &gather) {
        (Some(v), _) => v.source,
        // The gathered pixel matrix, or the normalized input.
        (None, Some(_)) => resolve(graph, graph.inputs_of(a_raw)[0]),
        (None, None) if norm_node.is_some() => resolve(graph, graph.inputs_of(a_raw)[0]),
        (None, None) => resolve(graph, a_raw),
    };
    let a_shape = graph.node(a_raw).ty.shape.clone();
    let b_shape = graph.node(b_raw).ty.shape.clone();
    if a_shape.len() < 2 || b_shape.len() < 2 {
        return Err(unsupported(
            graph,
            mm,
            format!("operands {a_shape:?} and {b_shape:?}: vector operands are not lowered"),
        ));
    }
    let (m, k) = (a_shape[a_shape.len() - 2], a_shape[a_shape.len() - 1]);
    let (kb, n) = (b_shape[b_shape.len() - 2], b_shape[b_shape.len() - 1]);
    if k != kb {
        return Err(unsupported(
            graph,
            mm,
            format!("inner dimensions differ: {a_shape:?} @ {b_shape:?}"),
        ));
    }
    let a_lead = &a_shape[..a_shape.len() - 2];
    let b_lead = &b_shape[..b_shape.len() - 2];
    let batch_b: usize = b_lead.iter().product();
    let (batches, b_batched, rows) = if batch_b == 1 {
        (1, false, a_lead.iter().product::<usize>() * m)
    } else if a_lead == b_lead {
        (batch_b, true, m)
    } else {
        return Err(unsupported(graph, mm, format!("batch dimensions {a_lead:?} and {b_lead:?} differ (broadcast batches are not lowered)")));
    };
    // Padding is per 2-D view, so batched operands need whole tiles per batch; a padded inner
    // dimension needs zeros in the padding of at least one operand, which bindings guarantee
    // for graph inputs and constants.
    let tiled = |x: usize| x.is_multiple_of(32);
    if batches > 1 && !(tiled(m) && tiled(k) && tiled(n)) {
        return Err(PlanError::shape(graph, mm));
    }
    if !tiled(k) && !zero_padded(graph, a) && !zero_padded(graph, resolve(graph, b_raw)) {
        return Err(unsupported(
            graph,
            mm,
            format!("inner dimension {k} is not a multiple of 32 and neither operand is a graph input or constant, whose device padding is zero"),
        ));
    }
    if layout_of(&a_shape).is_none() {
        return Err(PlanError::shape(graph, a_raw));
    }
    let b = if let Some(v) = b_heads {
        v.source
    } else if b_transposed {
        graph
            .inputs_of(b_raw)
            .first()
            .map(|&x| resolve(graph, x))
            .ok_or_else(|| unsupported(graph, b_raw, "transpose without input".into()))?
    } else {
        resolve(graph, b_raw)
    };
    let space = flat2d(&graph.node(mm).ty.shape);
    let mut builder = BodyBuilder::new(graph, space);
    if heads {
        builder.read_concats_in_place();
    }
    builder.defer_normalization(deferrable_softmaxes(graph, g));
    let a_param = builder.reserve_stem(&graph.node(a).name);
    let (b_param, b_stem) = if b == a {
        (
            a_param.clone(),
            builder.reserve_stem(&format!("{}_b", graph.node(b).name)),
        )
    } else {
        let p = builder.reserve_stem(&graph.node(b).name);
        (p.clone(), p)
    };
    let a_stem = a_param.clone();
    builder.share_param(a, a_param.clone());
    builder.share_param(b, b_param.clone());
    let bt_stem = builder.reserve_stem(&format!("{}_t", graph.node(b).name));
    let mm_name = graph.node(mm).name.clone();
    let acc_stem = builder.reserve_stem(&format!("{mm_name}_acc"));
    let a_gather = gather.map(|gather| GatherInfo {
        gather,
        table_param: builder.reserve_stem(&format!("{}_gather", graph.node(a_raw).name)),
        pixels_stem: builder.reserve_stem(&format!("{}_pair", graph.node(a).name)),
    });
    // Each sibling product reads its own B (a 2-D matrix, as `group::siblings` requires).
    let mut others = Vec::with_capacity(siblings.len());
    for &s in siblings {
        let b2 = graph
            .inputs_of(s)
            .get(1)
            .map(|&b| resolve(graph, b))
            .ok_or_else(|| unsupported(graph, s, "a matmul needs two inputs".into()))?;
        let b_param = builder.reserve_stem(&graph.node(b2).name);
        builder.share_param(b2, b_param.clone());
        let s_name = graph.node(s).name.clone();
        others.push(OtherProduct {
            value: 0,
            b: b2,
            b_param,
            acc_stem: builder.reserve_stem(&format!("{s_name}_acc")),
        });
    }
    let mut norm = match norm_node {
        Some(nrm) => Some(row_norm(graph, nrm, k, norm_input.is_some(), &mut builder)?),
        None => None,
    };
    // The norm's input computed in the kernel: its product's and adds' nodes lead the group.
    let input_nodes: Vec<NodeIndex> = match norm_input {
        Some(mm0) => {
            let at = g.nodes.iter().position(|&n| n == a).ok_or_else(|| {
                unsupported(
                    graph,
                    mm0,
                    "the norm's input is not the product's last add".into(),
                )
            })?;
            g.nodes[..=at].to_vec()
        }
        None => Vec::new(),
    };
    if let Some(mm0) = norm_input {
        let input = norm_input_of(graph, mm0, &input_nodes, &mut builder)?;
        if let Some(ce) = norm.as_mut().and_then(|rn| rn.kept.as_mut()) {
            ce.input = Some(input);
        }
    }
    match &norm {
        Some(rn) => builder.matmul_reading(mm, vec![rn.scaler, rn.eps]),
        None => builder.matmul(mm),
    };
    let epilogue = g
        .nodes
        .iter()
        .filter(|&&n| n != mm && Some(n) != norm_node && !input_nodes.contains(&n));
    for &node in epilogue {
        match siblings.iter().position(|&s| s == node) {
            Some(i) => others[i].value = builder.matmul(node),
            None => {
                builder.node(node)?;
            }
        }
    }
    // The reader streams the products in the order the compute thread takes them.
    others.sort_by_key(|op| op.value);
    // A computed norm input is written by the kernel's own path, not as a body output.
    let outputs: Vec<NodeIndex> = outputs
        .iter()
        .copied()
        .filter(|n| !input_nodes.contains(n))
        .collect();
    let head_write = add_outputs(graph, &mut builder, &outputs, heads)?;
    let mut body = builder.finish();
    body.head_write = head_write;
    if batches > 1 {
        // A causal mask or table shared by every head is read at the block's row within its
        // batch.
        for load in &mut body.loads {
            load.batch_shared = match load.source {
                super::body::LoadSource::WhereMask(w) => {
                    super::body::where_mask_batch_shared(graph, w)
                }
                super::body::LoadSource::Expanded { constant, like } => {
                    super::body::expanded_batch_shared(graph, like, constant)
                }
                _ => false,
            };
        }
    }
    let info = MatmulInfo {
        a,
        b,
        b_transposed,
        b_batched,
        batches,
        mt: tiles(rows),
        kt: tiles(k),
        nt: tiles(n),
        a_param,
        b_param,
        a_stem,
        b_stem,
        bt_stem,
        acc_stem,
        a_heads,
        b_heads,
        a_gather,
        others,
        causal: None,
        norm,
    };
    Ok((info, body))
}

/// The [`NormInput`] of matmul `mm0` and the adds after it (`nodes`, the product first, A
/// last), with its parameters and stems reserved in `builder`.
fn norm_input_of(
    graph: &Graph,
    mm0: NodeIndex,
    nodes: &[NodeIndex],
    builder: &mut BodyBuilder,
) -> Result<NormInput, PlanError> {
    let ins = graph.inputs_of(mm0);
    let (Some(&a_raw), Some(&b_raw)) = (ins.first(), ins.get(1)) else {
        return Err(unsupported(graph, mm0, "a matmul needs two inputs".into()));
    };
    let (a, b) = (resolve(graph, a_raw), resolve(graph, b_raw));
    let kt = tiles(graph.node(a).ty.shape[1]);
    let param = |builder: &mut BodyBuilder, n: NodeIndex| {
        let p = builder.reserve_stem(&graph.node(n).name);
        builder.share_param(n, p.clone());
        p
    };
    let (a_param, b_param) = (param(builder, a), param(builder, b));
    let mut adds = Vec::new();
    let mut chain = mm0;
    for &add in &nodes[1..] {
        let other = graph
            .inputs_of(add)
            .into_iter()
            .find(|&x| x != chain)
            .map(|x| resolve(graph, x))
            .ok_or_else(|| unsupported(graph, add, "an add of the chain to itself".into()))?;
        adds.push(InputAdd {
            tensor: other,
            param: param(builder, other),
            row_vector: graph.node(other).ty.shape.len() == 1,
        });
        chain = add;
    }
    let name = graph.node(mm0).name.clone();
    Ok(NormInput {
        a,
        b,
        a_param,
        b_param,
        kt,
        bk: NormInput::k_block(kt),
        adds,
        a_stem: builder.reserve_stem(&format!("{name}_a")),
        b_stem: builder.reserve_stem(&format!("{name}_b")),
        acc_stem: builder.reserve_stem(&format!("{name}_acc")),
        written_stem: builder.reserve_stem(&format!("{name}_written")),
    })
}

/// The [`RowNorm`] of RMSNorm or LayerNorm node `nrm` over `k` columns: its scaler and epsilon
/// tiles and its buffers' stems; a chunk kept in L1 for a LayerNorm, or when the kernel
/// computes the norm's input (`computed_input`).
fn row_norm(
    graph: &Graph,
    nrm: NodeIndex,
    k: usize,
    computed_input: bool,
    builder: &mut BodyBuilder,
) -> Result<RowNorm, PlanError> {
    let node = graph.node(nrm);
    let mut kept = |centered: bool| KeptChunk {
        centered,
        own_chunk_stem: builder.reserve_stem(&format!("{}_own_chunk", node.name)),
        sent_stem: builder.reserve_stem(&format!("{}_sent", node.name)),
        kept_stem: builder.reserve_stem(&format!("{}_kept", node.name)),
        input: None,
    };
    let (eps, kept) = match node.op {
        Op::RmsNorm { eps } => (eps, computed_input.then(|| kept(false))),
        Op::LayerNorm { eps } => (eps, Some(kept(true))),
        _ => {
            return Err(unsupported(
                graph,
                nrm,
                "only an RMSNorm or a LayerNorm is normalized by a matmul kernel".into(),
            ))
        }
    };
    Ok(RowNorm {
        scaler: builder.scalar(1.0 / k as f32),
        eps: builder.scalar(eps),
        squares_stem: builder.reserve_stem(&format!("{}_squares", node.name)),
        mean_square_stem: builder.reserve_stem(&format!("{}_mean_square", node.name)),
        rstd_stem: builder.reserve_stem(&format!("{}_rstd", node.name)),
        scale_stem: builder.reserve_stem(&format!("{}_scale", node.name)),
        send_stem: builder.reserve_stem(&format!("{}_send", node.name)),
        peers_stem: builder.reserve_stem(&format!("{}_peers", node.name)),
        total_stem: builder.reserve_stem(&format!("{}_total", node.name)),
        shared: false,
        kept,
    })
}

/// The fastest plan, by the estimate, of plain matmul `info` whose epilogue `body` is
/// row-wise, with its block rows' columns in segments over the cores of a grid row
/// ([`segments`]): the operands multicast as the grid ([`Partition::multicast`]), one block
/// per core, each grid row's cores exchanging their partial row reductions. A single block row
/// may also take more segments than a grid row has cores, over several grid rows
/// ([`Partition::segments_over_rows`]). `None` when the epilogue cannot run in segments, or
/// no layout fits.
fn segmented_matmul(
    graph: &Graph,
    target: &Target,
    g: &Group,
    body: &Body,
    info: &MatmulInfo,
) -> Option<PlannedKernel> {
    let plain = info.a_heads.is_none()
        && info.b_heads.is_none()
        && info.a_gather.is_none()
        && info.norm.is_none();
    if !(plain && info.batches == 1 && body.is_rowwise() && segments::segmentable(body)) {
        return None;
    }
    let mut plans = Vec::new();
    for s in divisors(info.nt).into_iter().filter(|&s| s > 1) {
        for bm in body.row_choices(divisors(info.mt)) {
            let block = (bm, info.nt / s);
            let spread = Partition::spread(block, (1, info.mt / bm, s), target);
            let laid = spread.clone().multicast(target, false);
            let Some(mut p) = laid.or_else(|| spread.segments_over_rows(target, s)) else {
                continue;
            };
            p.segments = Some(s);
            // K's chunks in the order the other layouts rank them; the first that fits.
            let mut bks = divisors(info.kt);
            bks.sort_by_key(|&bk| candidate_key(info, &p, (bk, false), true, target));
            for bk in bks {
                let k_chunks = info.kt / bk;
                let extra = matmul_cbs(info, (bm, block.1), (bk, k_chunks), 1, None);
                let mut schedule = Schedule::new(body, block, info.mt / bm, s, extra);
                segments::add_exchange_cbs(body, &mut schedule, s)?;
                if fits(&schedule.cbs, target).is_err() {
                    continue;
                }
                let mut p = p.clone();
                p.k_block = Some(bk);
                p.k_chunks = k_chunks;
                let (mut reads, writes) = body_traffic(body, &schedule, &p, target.tile_bytes);
                reads += operand_tiles(info, &p, bk) as u64 * target.tile_bytes;
                let detail = KernelDetail::Matmul {
                    body: body.clone(),
                    schedule,
                    info: Box::new(info.clone()),
                };
                let kind = KernelKind::Matmul;
                plans.push(summary(graph, target, g, kind, p, (reads, writes), detail));
                break;
            }
        }
    }
    fastest(plans, target).map(|(_, k)| k)
}

/// The fastest plan, by the estimate, of row-wise `body` (`rt` x `ct` tiles) with its columns
/// cut into segments over cores ([`segments`]): every divisor of its columns above one as the
/// segment count, every divisor of its rows as the block height, and as many blocks per core
/// as fill the cores evenly (a core reads its next block while it computes one), with a whole
/// block row's segments in each round over the cores.
fn segmented(
    graph: &Graph,
    target: &Target,
    g: &Group,
    body: &Body,
    (rt, ct): (usize, usize),
) -> Option<PlannedKernel> {
    let mut plans = Vec::new();
    for s in divisors(ct).into_iter().filter(|&s| s > 1) {
        for br in body.row_choices(divisors(rt)) {
            let block = (br, ct / s);
            let mut p = Partition::spread(block, (1, rt / br, s), target);
            let rounds_fill = p.blocks == p.cores_used * p.blocks_per_core;
            if !(rounds_fill && p.cores_used.is_multiple_of(s)) {
                continue;
            }
            let mut schedule = Schedule::new(body, block, rt / br, s, vec![]);
            segments::add_exchange_cbs(body, &mut schedule, s)?;
            if fits(&schedule.cbs, target).is_err() {
                continue;
            }
            p.segments = Some(s);
            let traffic = body_traffic(body, &schedule, &p, target.tile_bytes);
            let detail = KernelDetail::Body {
                body: body.clone(),
                schedule,
            };
            plans.push(summary(
                graph,
                target,
                g,
                KernelKind::RowWise,
                p,
                traffic,
                detail,
            ));
        }
    }
    fastest(plans, target).map(|(_, k)| k)
}

fn transpose_kernel(graph: &Graph, target: &Target, g: &Group) -> Result<PlannedKernel, PlanError> {
    let out = g.nodes[0];
    let input = graph
        .inputs_of(out)
        .first()
        .map(|&x| resolve(graph, x))
        .ok_or_else(|| unsupported(graph, out, "transpose without input".into()))?;
    let shape = graph.node(input).ty.shape.clone();
    let (r, c) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let batches: usize = shape[..shape.len() - 2].iter().product();
    if batches > 1 && (r % 32 != 0 || c % 32 != 0) {
        return Err(PlanError::shape(graph, out));
    }
    let mut stems = super::names::Stems::new();
    let in_stem = stems.alloc(&graph.node(input).name);
    let out_stem = stems.alloc(&graph.node(out).name);
    let (ort, oct) = (tiles(c), tiles(r));
    let mut cands = Vec::new();
    for br in divisors(ort) {
        for bc in divisors(oct) {
            for double in [true, false] {
                let blocks = batches * (ort / br) * (oct / bc);
                cands.push((preference(blocks, br * bc, double, target), br, bc, double));
            }
        }
    }
    cands.sort();
    let mut last_err = String::new();
    for (_, br, bc, double) in cands {
        let bf = if double { 2 } else { 1 };
        let cbs = vec![
            Cb {
                name: format!("{in_stem}_cb"),
                like: in_stem.clone(),
                shape: (bc, br),
                buffer_factor: bf,
            },
            Cb {
                name: format!("{out_stem}_cb"),
                like: out_stem.clone(),
                shape: (br, bc),
                buffer_factor: bf,
            },
        ];
        match fits(&cbs, target) {
            Err(e) => last_err = e,
            Ok(()) => {
                let mut p = Partition::spread((br, bc), (batches, ort / br, oct / bc), target);
                p.double_buffered = double;
                let bytes = (batches * ort * oct) as u64 * target.tile_bytes;
                let info = TransposeInfo {
                    input,
                    output: out,
                    batches,
                    in_rows: tiles(r),
                    in_cols: tiles(c),
                    stems: (in_stem, out_stem),
                };
                let node = graph.node(out);
                let p_summary = p.describe();
                let l1: u64 = cbs
                    .iter()
                    .map(|c| c.tiles() as u64 * target.tile_bytes)
                    .sum();
                return Ok(PlannedKernel {
                    name: "transpose".into(),
                    kind: KernelKind::Transpose,
                    nodes: vec![node.name.clone()],
                    ops: vec![node.op.name()],
                    reads: vec![graph.node(input).name.clone()],
                    writes: vec![node.name.clone()],
                    partition: p,
                    partition_summary: p_summary,
                    cbs,
                    l1_bytes: l1,
                    l1_limit: target.l1_bytes,
                    dram_read_bytes: bytes,
                    dram_write_bytes: bytes,
                    notes: vec![],
                    detail: KernelDetail::Transpose(info),
                });
            }
        }
    }
    Err(PlanError::DoesNotFit {
        node: graph.node(out).name.clone(),
        reason: last_err,
    })
}

/// A host fallback: every tensor it touches must exist on the device in a tile layout, and
/// integers must survive bf16 (only booleans do in general).
fn host_step(graph: &Graph, target: &Target, g: &Group) -> Result<PlannedKernel, PlanError> {
    let n = g.nodes[0];
    let node = graph.node(n);
    let inputs: Vec<NodeIndex> = graph
        .inputs_of(n)
        .into_iter()
        .map(|i| resolve(graph, i))
        .collect();
    let device_bytes = |t: NodeIndex| -> Result<u64, PlanError> {
        let tn = graph.node(t);
        let layout = layout_of(&tn.ty.shape).ok_or_else(|| PlanError::shape(graph, t))?;
        if !(tn.ty.dtype.is_float() || tn.ty.dtype == DType::Bool) {
            return Err(unsupported(
                graph,
                n,
                format!(
                    "tensor `{}` is {:?}; device tensors are bf16, which holds only small integers exactly",
                    tn.name, tn.ty.dtype
                ),
            ));
        }
        let (r, c) = device_dims(&tn.ty.shape, layout);
        Ok((r * c * 2) as u64)
    };
    let mut read = 0;
    for (slot, &i) in inputs.iter().enumerate() {
        // TTNN reads a convolution's weights as the matrix it prepares them in.
        let prepared = match (&node.op, slot) {
            (Op::Conv { .. }, 1) => weight_matrix_tiles(&graph.node(i).ty.shape),
            _ => None,
        };
        read += match prepared {
            Some(tiles) => tiles as u64 * target.tile_bytes,
            None => device_bytes(i)?,
        };
    }
    let written = device_bytes(n)?;
    let op = format!("ttnn.{}", token(graph, n));
    Ok(PlannedKernel {
        name: format!("host_{}", token(graph, n)),
        kind: KernelKind::Host,
        nodes: vec![node.name.clone()],
        ops: vec![node.op.name()],
        reads: inputs.iter().map(|&i| graph.node(i).name.clone()).collect(),
        writes: vec![node.name.clone()],
        partition_summary: format!("no TT-Lang template: runs on the host as {op}"),
        partition: Partition::none(),
        cbs: vec![],
        l1_bytes: 0,
        l1_limit: target.l1_bytes,
        dram_read_bytes: read,
        dram_write_bytes: written,
        notes: vec![format!("{} runs as a host (TTNN) fallback step", node.name)],
        detail: KernelDetail::Host(HostInfo {
            node: n,
            inputs,
            op,
        }),
    })
}

/// DRAM bytes read by the body's loads and written by its outputs.
fn body_traffic(body: &Body, s: &Schedule, p: &Partition, tile: u64) -> (u64, u64) {
    let mut reads = 0u64;
    for load in &body.loads {
        let v = &body.values[load.value];
        let (r, c) = v.class.block(p.block);
        // A streamed read is one chunk of what the block reads.
        let chunks = match &body.stream {
            Some(st) if body.is_streamed(load.value) => st.chunks,
            _ => 1,
        };
        let per = (r * c * chunks) as u64;
        // With shared batches a grid row reads each batch's whole matrices once.
        let shared = p.multicast && p.batches > 1 && matches!(load.source, LoadSource::Matrix(_));
        reads += if s.hoisted[load.value] {
            per * p.cores_used as u64
        } else if load.kept_by_core(p) {
            // Once per row block of a batch.
            per * (p.blocks / p.batches) as u64
        } else if shared {
            per * (p.blocks / p.grid.0 as usize) as u64
        } else {
            per * p.blocks as u64
        };
    }
    // With a chained product's columns split, one chunk's blocks write the other outputs.
    let writes: u64 = body
        .outputs
        .iter()
        .map(|&(_, v)| {
            let value = &body.values[v];
            let (r, c) = value.class.block(p.block);
            let writers = match p.wide {
                Some(_) if !value.chunked => p.blocks / p.col_blocks.max(1),
                _ => p.blocks,
            };
            (r * c * writers) as u64
        })
        .sum();
    (reads * tile, writes * tile)
}

fn token(graph: &Graph, n: NodeIndex) -> String {
    let op = &graph.node(n).op;
    match op {
        Op::MatMul => "matmul".into(),
        Op::Softmax { .. } => "softmax".into(),
        Op::LayerNorm { .. } => "layernorm".into(),
        Op::RmsNorm { .. } => "rmsnorm".into(),
        Op::Im2Col { .. } => "im2col".into(),
        Op::Attention { .. } => "scaled_dot_product_attention".into(),
        other => {
            let mut s = String::new();
            for (i, ch) in other.name().chars().enumerate() {
                if ch.is_ascii_uppercase() && i > 0 {
                    s.push('_');
                }
                s.push(ch.to_ascii_lowercase());
            }
            s
        }
    }
}

/// The plan entry of a body or matmul kernel: its name from its ops, what it reads and writes,
/// its buffers and its DRAM traffic (`(read, written)` bytes).
fn summary(
    graph: &Graph,
    target: &Target,
    g: &Group,
    kind: KernelKind,
    partition: Partition,
    traffic: (u64, u64),
    detail: KernelDetail,
) -> PlannedKernel {
    let (body, cbs) = match &detail {
        KernelDetail::Body { body, schedule } | KernelDetail::Matmul { body, schedule, .. } => {
            (Some(body), schedule.cbs.clone())
        }
        KernelDetail::Transpose(_) | KernelDetail::Host(_) => (None, Vec::new()),
    };
    let notes = body.map(|b| b.notes.clone()).unwrap_or_default();
    let mut tokens: Vec<String> = Vec::new();
    for &n in &g.nodes {
        let mut t = token(graph, n);
        if let (
            GroupKind::Matmul {
                b_transposed: true, ..
            },
            Op::MatMul,
        ) = (&g.kind, &graph.node(n).op)
        {
            t = "matmul_bt".into();
        }
        if !tokens.contains(&t) {
            tokens.push(t);
        }
    }
    tokens.truncate(4);
    let mut name = tokens.join("_");
    if kind == KernelKind::RowWise {
        name += "_rows";
    }
    let mut read_nodes = Vec::new();
    if let KernelDetail::Matmul { info, .. } = &detail {
        read_nodes.extend([info.a, info.b]);
    }
    for load in body.iter().flat_map(|b| &b.loads) {
        read_nodes.extend(load.source.tensors());
    }
    let mut reads: Vec<String> = Vec::new();
    for n in read_nodes {
        let r = graph.node(n).name.clone();
        if !reads.contains(&r) {
            reads.push(r);
        }
    }
    let writes = body
        .iter()
        .flat_map(|b| &b.outputs)
        .map(|&(n, _)| graph.node(n).name.clone())
        .collect();
    let l1_bytes = cbs
        .iter()
        .map(|c| c.tiles() as u64 * target.tile_bytes)
        .sum();
    let mut partition_summary = partition.describe();
    if let KernelDetail::Matmul { info, .. } = &detail {
        if info.norm.is_some() {
            let shared = match row_norm_sharers(info, &partition, partition.k_chunks) {
                Some(s) if s < partition.grid.0 as usize => ", each core of a grid row summing one chunk's (the cores past the last chunk's the last) and the first K_CHUNKS sending their partials to the others",
                Some(_) => ", each core of a grid row summing every GRID_X-th chunk's and sending its partial to the others",
                None => "",
            };
            let a = &graph.node(info.a).name;
            let spare = partition.k_chunks < partition.grid.0 as usize;
            let kept = info.norm.as_ref().and_then(|n| n.kept.as_ref());
            if let Some(input) = kept.and_then(|ce| ce.input.as_ref()) {
                partition_summary += &format!(
                    ", A computed in the kernel (each core's chunk of {a} as {} @ {} plus {} add(s), K in {} chunk(s) of {} tiles, written to {a})",
                    graph.node(input.a).name,
                    graph.node(input.b).name,
                    input.adds.len(),
                    input.kt / input.bk,
                    input.bk,
                );
            }
            let spare = match spare {
                true => " (the cores past the last chunk's receive that one from its core)",
                false => "",
            };
            partition_summary += &match kept.map(|ce| ce.centered) {
                None => format!(", A normalized in the kernel (RMSNorm of {a}: row sums of squares as the K chunks pass{shared}, each product's rows scaled)"),
                Some(true) => format!(", A normalized in the kernel (LayerNorm of {a}: each core of a grid row takes the chunk it multicasts{spare}, shares its row sums and then its centered squares' with the others and keeps it centered in L1 for every block and product, each product's rows scaled)"),
                Some(false) => format!(", A normalized in the kernel (RMSNorm of {a}: each core of a grid row takes the chunk it multicasts{spare}, shares its squares' row sums with the others and keeps it in L1 for every block and product, each product's rows scaled)"),
            };
        }
    }
    PlannedKernel {
        name,
        kind,
        nodes: g
            .nodes
            .iter()
            .map(|&n| graph.node(n).name.clone())
            .collect(),
        ops: g.nodes.iter().map(|&n| graph.node(n).op.name()).collect(),
        reads,
        writes,
        partition_summary,
        partition,
        cbs,
        l1_bytes,
        l1_limit: target.l1_bytes,
        dram_read_bytes: traffic.0,
        dram_write_bytes: traffic.1,
        notes,
        detail,
    }
}
