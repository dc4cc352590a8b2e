//! Building one planned kernel from a group: its body, the block size that fits (a matmul
//! kernel's in `matmul_fit`), its buffers and its DRAM traffic.

use std::collections::BTreeSet;

use petgraph::graph::NodeIndex;

use super::body::{Body, BodyBuilder, LoadSource, ValueOp};
use super::group::{is_last_two_swap, real_users, resolve, Group, GroupKind};
use super::heads::{merged_into, split_into, HeadWrite};
use super::layout::{device_dims, layout_of};
use super::matmul_info::{matmul_body, row_norm_sharers, MatmulInfo};
use super::partition::{divisors, preference, Partition};
use super::schedule::{Cb, Schedule};
use super::target::Target;
use super::{estimate, matmul_fit, segments, stream, wide};
use super::{FusionMode, KernelKind, PlanError, PlannedKernel};
use crate::graph::im2col::weight_matrix_tiles;
use crate::graph::{DType, Graph, Op};

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

impl KernelDetail {
    /// The compute body of an elementwise, row-wise or matmul kernel.
    pub fn body(&self) -> Option<&Body> {
        match self {
            KernelDetail::Body { body, .. } | KernelDetail::Matmul { body, .. } => Some(body),
            KernelDetail::Transpose(_) | KernelDetail::Host(_) => None,
        }
    }
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
pub(super) fn tiles(n: usize) -> usize {
    n.div_ceil(32)
}

/// Whether the device padding of `n` is certainly zero: graph inputs and constants, which
/// bindings pad with zeros, and transposes of them.
pub(super) fn zero_padded(graph: &Graph, n: NodeIndex) -> bool {
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
pub(super) fn deferrable_softmaxes(graph: &Graph, g: &Group) -> BTreeSet<NodeIndex> {
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

/// Why a kernel's circular buffers do not fit a core.
#[derive(Debug)]
pub(super) struct Misfit {
    /// The L1 bytes the buffers take.
    bytes: u64,
    /// What they take against what the core has.
    reason: String,
}

/// Whether circular buffers `cbs` fit one core of `target`: its L1 and its number of buffers.
pub(super) fn fits(cbs: &[Cb], target: &Target) -> Result<(), Misfit> {
    let bytes: u64 = cbs
        .iter()
        .map(|c| c.tiles() as u64 * target.tile_bytes)
        .sum();
    let reason = if cbs.len() > target.max_cbs as usize {
        format!(
            "{} circular buffers, the core has {}",
            cbs.len(),
            target.max_cbs
        )
    } else if bytes > target.l1_bytes {
        format!(
            "{bytes} B of circular buffers, the core has {} B of L1",
            target.l1_bytes
        )
    } else {
        return Ok(());
    };
    Err(Misfit { bytes, reason })
}

/// Of the layouts a kernel was tried in and that did not fit, the one that came closest (the
/// least L1): the error quotes it, since a layout that needs more would not fit either.
#[derive(Debug, Default)]
pub(super) struct Closest(Option<Misfit>);

impl Closest {
    /// Keeps `misfit` of the layout `layout` (e.g. "blocks of 2x3 tiles") if it came closer.
    pub(super) fn offer(&mut self, layout: String, misfit: Misfit) {
        if self.0.as_ref().is_none_or(|m| misfit.bytes < m.bytes) {
            let reason = format!("{layout} need {}", misfit.reason);
            self.0 = Some(Misfit { reason, ..misfit });
        }
    }

    /// The closest layout and its need, for [`PlanError::DoesNotFit`].
    pub(super) fn reason(self) -> String {
        self.0
            .map_or_else(|| "no layout was tried".into(), |m| m.reason)
    }
}

/// The running-sum buffer of a streamed hidden layer, which is waited and reserved at once and
/// so keeps two blocks.
pub(super) fn stream_acc(body: &Body) -> Vec<String> {
    body.stream
        .iter()
        .map(|st| format!("{}_cb", st.acc_stem))
        .collect()
}

pub(super) fn single_buffer(cbs: &mut [Cb], keep: &[String]) {
    for cb in cbs {
        if !keep.contains(&cb.name) {
            cb.buffer_factor = 1;
        }
    }
}

/// Single-buffers the loads that a core of a kernel planned as `p` reads once and keeps
/// ([`super::body::Load::kept_by_core`]).
pub(super) fn single_buffer_kept(body: &Body, schedule: &mut Schedule, p: &Partition) {
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

impl Cut {
    /// The chunk width of a chained product's columns split over the grid, if they are.
    pub(crate) fn wide_chunk(self) -> Option<usize> {
        match self {
            Cut::Wide(chunk) => Some(chunk),
            _ => None,
        }
    }
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
    build_from_whole(graph, target, g, mode, whole)
}

/// [`build`], given what building group `g` whole gave (`whole`, [`Cut::Whole`]).
pub(crate) fn build_from_whole(
    graph: &Graph,
    target: &Target,
    g: &Group,
    mode: FusionMode,
    whole: Result<PlannedKernel, PlanError>,
) -> Result<PlannedKernel, PlanError> {
    if mode != FusionMode::Fused {
        return whole;
    }
    match whole {
        Ok(k) => {
            let Some(body) = k.detail.body().cloned() else {
                return Ok(k);
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
pub(super) fn fastest(
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
/// Returns the whole kernel when it fits, for [`build_from_whole`].
pub(crate) fn fits_some_cut(
    graph: &Graph,
    target: &Target,
    g: &Group,
    mode: FusionMode,
) -> Result<Option<PlannedKernel>, PlanError> {
    match build_cut(graph, target, g, mode, Cut::Whole) {
        Err(e @ PlanError::DoesNotFit { .. }) if mode == FusionMode::Fused => {
            let Some(body) = group_body(graph, g) else {
                return Err(e);
            };
            let streams = stream::streamable_width(&body).is_some()
                && build_cut(graph, target, g, mode, Cut::Stream(1)).is_ok();
            if streams {
                Ok(None)
            } else {
                Err(e)
            }
        }
        other => other.map(Some),
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
    let outputs = group_outputs(graph, g);
    match &g.kind {
        GroupKind::Body => {
            let body = body_of(graph, g, &outputs, mode == FusionMode::Fused)?;
            body_kernel(graph, target, g, cut_body(graph, g, body, cut)?, cut)
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
            let body = cut_body(graph, g, body, cut)?;
            matmul_fit::matmul_kernel(graph, target, g, body, &info, cut)
        }
        GroupKind::Transpose => transpose_kernel(graph, target, g),
        GroupKind::Host => host_step(graph, target, g),
    }
}

/// Group `g`'s `body` cut by `cut`, with the number of column chunks of its chained product
/// (1 unless they are split).
fn cut_body(graph: &Graph, g: &Group, body: Body, cut: Cut) -> Result<(Body, usize), PlanError> {
    let unsupported = |reason: String| unsupported(graph, g.nodes[0], reason);
    match cut {
        Cut::Whole => Ok((body, 1)),
        Cut::Wide(chunk) => wide::split(&body, chunk).ok_or_else(|| {
            unsupported(format!(
                "its chained product's columns do not split into chunks of {chunk} tiles"
            ))
        }),
        Cut::Stream(chunk) => stream::stream(&body, chunk).map(|b| (b, 1)).ok_or_else(|| {
            unsupported(format!(
                "its hidden layer does not stream in chunks of {chunk} tiles"
            ))
        }),
    }
}

/// The planned kernel of elementwise or row-wise `body` (its chained product's columns in
/// `chunks` chunks) of group `g`, cut by `cut`: the first block shape that fits, by
/// [`preference`], or its columns in segments over cores where the estimate finds that faster.
fn body_kernel(
    graph: &Graph,
    target: &Target,
    g: &Group,
    (body, chunks): (Body, usize),
    cut: Cut,
) -> Result<PlannedKernel, PlanError> {
    let wide = cut.wide_chunk();
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
    let mut closest = Closest::default();
    let mut fitting = Fitting::new(&body, false, false);
    for (_, br, bc, double) in cands {
        let mut schedule = Schedule::new(&body, (br, bc), rt / br, ct / bc * chunks, vec![]);
        if !double {
            single_buffer(&mut schedule.cbs, &stream_acc(&body));
        }
        if let Err(misfit) = fits(&schedule.cbs, target) {
            closest.offer(format!("blocks of {br}x{bc} tiles"), misfit);
            continue;
        }
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
        if fitting.take(summary(graph, target, g, kind, p, traffic, detail)) {
            break;
        }
    }
    let whole = fitting.fastest(target);
    // Segments are for rows too few to fill the grid whole.
    let few_rows = rt < target.cores();
    let segmentable = rowwise && few_rows && cut == Cut::Whole && segments::segmentable(&body);
    let segmented = segmentable
        .then(|| segmented(graph, target, g, &body, (rt, ct)))
        .flatten();
    if let Some((_, k)) = fastest(whole.into_iter().chain(segmented), target) {
        return Ok(k);
    }
    Err(PlanError::DoesNotFit {
        node: graph.node(g.nodes[0]).name.clone(),
        reason: closest.reason(),
    })
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
pub(super) struct Fitting {
    chained: bool,
    /// How many different candidates end the search.
    wanted: usize,
    kernels: Vec<PlannedKernel>,
}

impl Fitting {
    /// For a kernel of `body`; `overlaps` when some candidates' blocks overlap
    /// ([`Partition::overlap`]); `norm` when the kernel normalizes its A with its row sums
    /// shared or not.
    pub(super) fn new(body: &Body, overlaps: bool, norm: bool) -> Fitting {
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
    pub(super) fn take(&mut self, k: PlannedKernel) -> bool {
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
    pub(super) fn into_kernels(self) -> Vec<PlannedKernel> {
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

/// Adds a kernel's `outputs` to `builder`. With `heads` (fused mode), the one output of a head
/// merge or split is written as its reshape's or transpose's tensor instead
/// ([`merged_into`], [`split_into`]); returns how heads are then written.
pub(super) fn add_outputs(
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

pub(super) fn unsupported(graph: &Graph, n: NodeIndex, reason: String) -> PlanError {
    PlanError::Unsupported {
        node: graph.node(n).name.clone(),
        op: graph.node(n).op.name(),
        reason,
    }
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
    let mut closest = Closest::default();
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
            Err(misfit) => closest.offer(format!("blocks of {br}x{bc} tiles"), misfit),
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
        reason: closest.reason(),
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
pub(super) fn body_traffic(body: &Body, s: &Schedule, p: &Partition, tile: u64) -> (u64, u64) {
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
pub(super) fn summary(
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
    let rowwise = detail.body().is_some_and(Body::is_rowwise);
    if partition.segments.is_some() && rowwise {
        partition_summary += ", the segments of each row exchanging their partial row reductions";
    }
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
            if let Some(input) = info.norm_input() {
                partition_summary += &format!(
                    ", A computed in the kernel (each core's chunk of {a} as {} @ {} plus {} add(s), K in {} chunk(s) of {} tiles, written to {a})",
                    graph.node(input.a).name,
                    graph.node(input.b).name,
                    input.adds.len(),
                    input.kt / input.bk,
                    input.bk,
                );
            }
            let spare = match (spare, info.norm_input().is_some()) {
                (true, false) => {
                    " (the cores past the last chunk's receive that one from its core)"
                }
                (true, true) => {
                    " (the cores past the last chunk's compute that one again, its core writing it)"
                }
                (false, _) => "",
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
