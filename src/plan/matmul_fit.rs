//! Fitting a matmul kernel to the core: the block shapes, K chunks and operand sharings its
//! group can take, ranked by the planner's first estimate ([`candidate_key`]), each checked
//! against the core's L1 and circular buffers; the first that fits is taken, or the fastest by
//! the full estimate of the few the first estimate cannot rank ([`Fitting`]), of a layout with
//! its columns in segments ([`segmented_plans`]), of layouts with K split over the grid's rows
//! ([`split_k`]) and of a causal variant
//! ([`super::causal::variants`]).

use super::body::Body;
use super::causal;
use super::group::Group;
use super::heads::HeadWrite;
use super::kernel::{
    body_traffic, fastest, fits, single_buffer, single_buffer_kept, stream_acc, summary, Closest,
    Cut, Fitting, KernelDetail, Misfit,
};
use super::matmul_info::{row_norm_sharers, row_norm_sharing, MatmulInfo, NormInput, RowNorm};
use super::partition::{divisors, preference, Partition};
use super::schedule::{Cb, Schedule};
use super::target::Target;
use super::{estimate, segments, split_k};
use super::{KernelKind, PlanError, PlannedKernel};
use crate::graph::Graph;

/// The planned kernel of matmul `info` with epilogue `body` (its chained product's columns in
/// `chunks` chunks, 1 when they are not split), cut by `cut`: the fastest, by the estimate, of
/// the layouts that fit, on the device's grid and, when it is not square, across it
/// ([`Partition::across`]; the device's grid wins ties).
pub(super) fn matmul_kernel(
    graph: &Graph,
    target: &Target,
    g: &Group,
    (body, chunks): (Body, usize),
    info: &MatmulInfo,
    cut: Cut,
) -> Result<PlannedKernel, PlanError> {
    let wide = cut.wide_chunk();
    let cut_body = wide.is_some() || body.stream.is_some();
    let mut closest = Closest::default();
    let mut all = Vec::new();
    // Recognized once for every layout: it reads each cell of the mask.
    let causal = causal::recognize(graph, &body, info);
    for target in std::iter::once(target.clone()).chain(target.swapped()) {
        let candidates = candidates(info, &body, chunks, cut_body, &target);
        let overlaps = candidates.iter().any(|c| c.laid.overlap != (0, 0));
        let both_ways = info.norm.as_ref().is_some_and(|rn| rn.kept.is_none());
        let mut fitting = Fitting::new(&body, overlaps, both_ways);
        for c in candidates {
            match fit(graph, &target, g, &body, info, c, wide) {
                Err((layout, misfit)) => closest.offer(layout, misfit),
                Ok(k) => {
                    if fitting.take(k) {
                        break;
                    }
                }
            }
        }
        // An epilogue on few block rows: its columns in segments over grid rows.
        let segmented = (cut == Cut::Whole)
            .then(|| segmented_plans(graph, &target, g, &body, info))
            .flatten()
            .and_then(|plans| fastest(plans, &target))
            .map(|(_, k)| k);
        // Causal attention: the variant of each candidate that skips the keys past each row
        // block's diagonal, taken when the estimate finds it faster. Each block shape's own:
        // the imbalance between row blocks near and far from the diagonal depends on how many
        // steps each core takes.
        let whole = fitting.into_kernels();
        let skipping: Vec<PlannedKernel> = causal
            .iter()
            .flat_map(|c| whole.iter().flat_map(|k| causal::variants(&target, k, c)))
            .collect();
        // K split over copies of the grid's rows, for the whole kernels whose blocks leave
        // grid rows idle.
        let split: Vec<PlannedKernel> = whole
            .iter()
            .flat_map(|k| split_k::layouts(info, &k.partition, &target))
            .filter_map(|(laid, bk)| {
                let double = laid.double_buffered;
                let c = Candidate {
                    laid,
                    bk,
                    double,
                    share_norm: false,
                };
                fit(graph, &target, g, &body, info, c, wide).ok()
            })
            .collect();
        all.extend(
            whole
                .into_iter()
                .chain(segmented)
                .chain(skipping)
                .chain(split),
        );
    }
    if let Some((_, k)) = fastest(all, target) {
        return Ok(k);
    }
    Err(PlanError::DoesNotFit {
        node: graph.node(g.nodes[0]).name.clone(),
        reason: closest.reason(),
    })
}

/// One way to lay out a matmul kernel, before its buffers are checked against the core.
struct Candidate {
    /// Its blocks laid out over the grid, operands shared or not.
    laid: Partition,
    /// K's chunk width, in tiles.
    bk: usize,
    /// Whether its buffers are double-buffered.
    double: bool,
    /// Whether a normalized A's row sums are shared over grid rows.
    share_norm: bool,
}

/// The candidate layouts of matmul `info` with epilogue `body` (`chunks` column chunks of a
/// chained product; `cut_body` when its columns are split or its hidden layer streamed),
/// best first by [`candidate_key`], ties broken by the block's width, then its height, then
/// the K chunk's width, smallest first.
fn candidates(
    info: &MatmulInfo,
    body: &Body,
    chunks: usize,
    cut_body: bool,
    target: &Target,
) -> Vec<Candidate> {
    let sharings = sharings(info, chunks, cut_body);
    let (row_sizes, col_sizes) = block_sizes(info, body, &sharings, target);
    // A gathered operand: one window offset per K chunk.
    let k_choices = match &info.a_gather {
        Some(g) => vec![g.gather.channels / 32],
        None => divisors(info.kt),
    };
    let mut ranked = Vec::new();
    for &bm in &row_sizes {
        for &bn in &col_sizes {
            for laid in layouts(info, (bm, bn), chunks, &sharings, target) {
                for &bk in &k_choices {
                    // A normalized A's row sums, shared and not, where they can be; a kept
                    // chunk's only shared.
                    let k_chunks = info.kt / bk;
                    let norm_sharers = info
                        .norm
                        .as_ref()
                        .and_then(|rn| row_norm_sharing(&laid, k_chunks, rn));
                    let shares: &[bool] = match (&info.norm, norm_sharers) {
                        (Some(rn), None) if rn.kept.is_some() => &[],
                        (Some(rn), Some(_)) if rn.kept.is_some() => &[true],
                        (Some(_), Some(_)) => &[true, false],
                        _ => &[false],
                    };
                    for double in [true, false] {
                        for &share_norm in shares {
                            let key = candidate_key(info, &laid, (bk, share_norm), double, target);
                            let order = (key, bn, bm, bk, double, norm_sharers, share_norm);
                            let c = Candidate {
                                laid: laid.clone(),
                                bk,
                                double,
                                share_norm,
                            };
                            ranked.push((order, c));
                        }
                    }
                }
            }
        }
    }
    // Sorts positions, not the candidates (each holds a whole partition): stable, so equal
    // orders keep the order they were made in.
    let (orders, mut slots): (Vec<_>, Vec<_>) = ranked
        .into_iter()
        .map(|(order, c)| (order, Some(c)))
        .unzip();
    let mut best_first: Vec<usize> = (0..orders.len()).collect();
    best_first.sort_by_key(|&i| orders[i]);
    best_first
        .into_iter()
        .filter_map(|i| slots[i].take())
        .collect()
}

/// The block heights and widths matmul `info` with epilogue `body` may take. A row-wise
/// epilogue needs blocks spanning whole rows; a head split, blocks within one head; a gathered
/// operand, blocks whose rows the gather reaches. Laid out as the grid (`sharings` holds
/// [`Sharing::Grid`]), blocks need not divide the product: sizes that make more grid rows or
/// columns than any that do ([`overlapping_sizes`]).
fn block_sizes(
    info: &MatmulInfo,
    body: &Body,
    sharings: &[Sharing],
    target: &Target,
) -> (Vec<usize>, Vec<usize>) {
    let mut col_sizes = if body.is_rowwise() {
        vec![info.nt]
    } else {
        divisors(info.nt)
    };
    if let Some(HeadWrite::Split { head_tiles, .. }) = body.head_write {
        col_sizes.retain(|&bn| head_tiles.is_multiple_of(bn));
    }
    let mut row_sizes = body.row_choices(divisors(info.mt));
    if let Some(g) = &info.a_gather {
        row_sizes.retain(|&bm| g.gather.fits_block(bm));
    }
    if sharings.contains(&Sharing::Grid) && body.head_write.is_none() {
        if body.row_alignment().is_none() {
            row_sizes.extend(overlapping_sizes(info.mt, target.grid_y as usize));
        }
        if !body.is_rowwise() {
            col_sizes.extend(overlapping_sizes(info.nt, target.grid_x as usize));
        }
    }
    (row_sizes, col_sizes)
}

/// The layouts of matmul `info` in blocks of `bm x bn` tiles (`chunks` column chunks of a
/// chained product), one per way of `sharings` its blocks allow. Blocks that do not divide the
/// product overlap ([`Partition::overlapping`]), only laid out as the grid and only on a 2-D
/// grid: on one grid row or column the overlap buys nothing a spread layout does not.
fn layouts(
    info: &MatmulInfo,
    (bm, bn): (usize, usize),
    chunks: usize,
    sharings: &[Sharing],
    target: &Target,
) -> Vec<Partition> {
    let exact = info.mt.is_multiple_of(bm) && info.nt.is_multiple_of(bn);
    let spread = if exact {
        let blocks = (info.batches, info.mt / bm, info.nt / bn * chunks);
        Partition::spread((bm, bn), blocks, target)
    } else {
        let p = Partition::overlapping((bm, bn), (info.mt, info.nt), target);
        if p.row_blocks < 2 || p.col_blocks < 2 {
            return Vec::new();
        }
        p
    };
    let split = info.others.is_empty();
    sharings
        .iter()
        .filter(|&&sharing| exact || sharing == Sharing::Grid)
        .filter_map(|sharing| sharing.apply(spread.clone(), target, split))
        .collect()
}

/// Candidate `c` of matmul `info` with epilogue `body` as a planned kernel (its chained
/// product's columns cut in chunks of `wide` tiles, if they are), or its layout and why its
/// buffers do not fit the core.
fn fit(
    graph: &Graph,
    target: &Target,
    g: &Group,
    body: &Body,
    info: &MatmulInfo,
    c: Candidate,
    wide: Option<usize>,
) -> Result<PlannedKernel, (String, Misfit)> {
    let Candidate {
        laid,
        bk,
        double,
        share_norm,
    } = c;
    let (bm, bn) = laid.block;
    let k_chunks = info.kt / bk / laid.k_split;
    let with_sharing;
    let info = match &info.norm {
        Some(rn) if rn.shared != share_norm => {
            let mut i = info.clone();
            i.norm = Some(RowNorm {
                shared: share_norm,
                ..rn.clone()
            });
            with_sharing = i;
            &with_sharing
        }
        _ => info,
    };
    let sharers = row_norm_sharers(info, &laid, k_chunks);
    let extra = matmul_cbs(
        info,
        (bm, bn),
        (bk, k_chunks, laid.k_split),
        laid.blocks_per_core,
        sharers,
    );
    let mut schedule = Schedule::new(
        body,
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
        keep.extend(stream_acc(body));
        single_buffer(&mut schedule.cbs, &keep);
    }
    single_buffer_kept(body, &mut schedule, &laid);
    fits(&schedule.cbs, target).map_err(|e| {
        (
            format!("blocks of {bm}x{bn} tiles with K chunks of {bk}"),
            e,
        )
    })?;
    let mut p = laid;
    p.wide = wide;
    p.stream = body.stream.as_ref().map(|st| (st.chunk, st.chunks));
    p.k_block = Some(bk);
    p.k_chunks = k_chunks;
    p.double_buffered = double;
    let (mut reads, mut writes) = body_traffic(body, &schedule, &p, target.tile_bytes);
    reads += operand_tiles(info, &p, bk) as u64 * target.tile_bytes;
    if let Some(input) = info.norm_input() {
        let written = norm_input_tiles(info, input, &p, bk).1;
        writes += written as u64 * target.tile_bytes;
    }
    let detail = KernelDetail::Matmul {
        body: body.clone(),
        schedule,
        info: Box::new(info.clone()),
    };
    let kind = KernelKind::Matmul;
    Ok(summary(graph, target, g, kind, p, (reads, writes), detail))
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
                    Some(input) => norm_input_tiles(info, input, p, bk).0,
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
/// columns of `b`), its adds' (each core its chunk's columns of a bias row, or its rows and
/// columns of a residual), and A written once. The rows are the block rows' (an overlapping
/// last block row's again, [`Partition::overlap`]); the grid columns past the last chunk's
/// read that chunk's columns again. K is in chunks of `bk`.
fn norm_input_tiles(
    info: &MatmulInfo,
    input: &NormInput,
    p: &Partition,
    bk: usize,
) -> (usize, usize) {
    let (rows, cols) = (p.row_blocks * p.block.0, p.grid.0 as usize);
    let adds: usize = input
        .adds
        .iter()
        .map(|add| match add.row_vector {
            true => p.cores_used * bk,
            false => rows * cols * bk,
        })
        .sum();
    (
        rows * input.kt + cols * input.kt * bk + adds,
        rows * info.kt,
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

/// The template's buffers of matmul `info` in blocks of `bm x bn` tiles with K chunks of `bk`
/// (`k_chunks` of them in each of K's `k_split` parts), `blocks_per_core` of them on each core; `sharers`, the cores sharing
/// a normalized A's row sums ([`row_norm_sharers`]).
fn matmul_cbs(
    info: &MatmulInfo,
    (bm, bn): (usize, usize),
    (bk, k_chunks, k_split): (usize, usize, usize),
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
    // A split K's part ends in the running sum, to which the first part's cores add the
    // others' partial sums, received into a buffer of their own.
    let summed = k_chunks > 1 || info.norm.is_some() && !kept || k_split > 1;
    if k_split > 1 {
        cbs.push(Cb::running_sum(&info.part_stem, &info.a_param, (bm, bn)));
    }
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

/// The plans of plain matmul `info` with its block rows' columns in segments over the cores of
/// a grid row ([`segments`]), each with K whole and, where they fit, split over copies of its
/// grid ([`split_k`]). A row-wise epilogue `body`'s
/// segments lie as the grid, the operands multicast ([`Partition::multicast`]), one block per
/// core, each grid row's cores exchanging their partial row reductions. A single block row may
/// also take more segments than a grid row has cores, over several grid rows, A multicast
/// along each and B read by each core ([`Partition::segments_over_rows`]); so does an
/// elementwise epilogue's (on few rows, a gated MLP's products at 128 rows: the weights read
/// once, by 64 cores, 44.71 us on the runtime against 69.06 for 4x4 blocks on 16 cores, whose
/// A each block reads). `None` when the epilogue cannot run in segments.
fn segmented_plans(
    graph: &Graph,
    target: &Target,
    g: &Group,
    body: &Body,
    info: &MatmulInfo,
) -> Option<Vec<PlannedKernel>> {
    let plain = info.a_heads.is_none()
        && info.b_heads.is_none()
        && info.a_gather.is_none()
        && info.norm.is_none();
    if !(plain && info.batches == 1 && segments::segmentable(body)) {
        return None;
    }
    // An elementwise epilogue's segments as the grid are the grid layout itself, a candidate
    // of its own: it takes only those of one block row over several grid rows.
    let as_grid = body.is_rowwise();
    let mut heights = body.row_choices(divisors(info.mt));
    if !as_grid {
        heights.retain(|&bm| bm == info.mt);
    }
    let mut plans = Vec::new();
    for s in divisors(info.nt).into_iter().filter(|&s| s > 1) {
        for &bm in &heights {
            let block = (bm, info.nt / s);
            let spread = Partition::spread(block, (1, info.mt / bm, s), target);
            let laid = as_grid
                .then(|| spread.clone().multicast(target, false))
                .flatten();
            let Some(mut p) = laid.or_else(|| spread.segments_over_rows(target, s)) else {
                continue;
            };
            p.segments = Some(s);
            // K's chunks in the order the other layouts rank them.
            let mut bks = divisors(info.kt);
            bks.sort_by_key(|&bk| candidate_key(info, &p, (bk, false), true, target));
            // K split over copies of the grid's rows where they fit ([`split_k`]).
            let split = split_k::part_counts(&p, target)
                .filter(|_| split_k::splittable(info))
                .filter_map(|parts| p.clone().split_k(target, parts));
            for p in std::iter::once(p.clone()).chain(split) {
                // The first chunk width that gives every part of K two chunks or more and fits.
                let parts = p.k_split;
                for &bk in bks
                    .iter()
                    .filter(|&&bk| split_k::divides(info.kt, bk, parts))
                {
                    let k_chunks = info.kt / bk / parts;
                    let extra = matmul_cbs(info, (bm, block.1), (bk, k_chunks, parts), 1, None);
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
    }
    Some(plans)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use petgraph::graph::NodeIndex;

    use super::{candidates, fit, segmented_plans, split_k, Candidate};
    use crate::graph::{BinaryOp, Graph, Op, TensorData, UnaryOp};
    use crate::plan::group::{Group, GroupKind};
    use crate::plan::matmul_info::matmul_body;
    use crate::plan::testing::{constant, f32t, output_pccs, small_grid};

    /// The group of one plain product `mm`, normalizing its A (`norm`) if it does, of `nodes`
    /// over `space`.
    fn product_group(
        mm: NodeIndex,
        norm: Option<NodeIndex>,
        nodes: Vec<NodeIndex>,
        space: (usize, usize),
    ) -> Group {
        Group {
            kind: GroupKind::Matmul {
                mm,
                b_transposed: false,
                heads: false,
                siblings: Vec::new(),
                norm,
                norm_input: None,
            },
            nodes,
            space,
        }
    }

    /// The planner declines a single-buffered normalizing kernel wherever its double-buffered
    /// form fits (the multicast chain and the compute take turns), so no model runs one. This
    /// runs the single-buffered candidates of an RMSNorm's and a LayerNorm's products directly:
    /// row sums shared over grid rows and not, against the reference.
    #[test]
    fn single_buffered_normalizing_kernels_compute_the_reference() {
        for layer_norm in [false, true] {
            let mut graph = Graph::new();
            let x = graph.add_input("x", f32t(&[256, 512]));
            let filled = |v: f32| Op::Constant(Arc::new(TensorData::f32(vec![512], vec![v; 512])));
            let gain = graph.add("gain", filled(1.0), f32t(&[512]), &[]);
            let norm = match layer_norm {
                true => {
                    let bias = graph.add("bias", filled(0.0), f32t(&[512]), &[]);
                    let op = Op::LayerNorm { eps: 1e-5 };
                    graph.add("norm", op, f32t(&[256, 512]), &[x, gain, bias])
                }
                false => {
                    let op = Op::RmsNorm { eps: 1e-6 };
                    graph.add("norm", op, f32t(&[256, 512]), &[x, gain])
                }
            };
            let w = constant(&mut graph, "w", &[512, 256], 3);
            let p = graph.add("p", Op::MatMul, f32t(&[256, 256]), &[norm, w]);
            graph.outputs.push(("p".into(), p));
            let group = product_group(p, Some(norm), vec![norm, p], (256, 256));
            let norm_form = (false, false, &[][..], Some(norm));
            let (info, body) =
                matmul_body(&graph, &group, p, norm_form, None, &[p]).expect("a normalizing body");
            let (device, target) = small_grid(4, 4);
            let mut ran = Vec::new();
            for c in candidates(&info, &body, 1, false, &target) {
                let form = (c.share_norm, c.bk);
                if c.double || ran.contains(&form) {
                    continue;
                }
                let Ok(k) = fit(&graph, &target, &group, &body, &info, c, None) else {
                    continue;
                };
                assert!(!k.partition.double_buffered);
                let summary = k.partition_summary.clone();
                for (name, pcc) in output_pccs(&graph, &device, k) {
                    assert!(pcc >= 0.999, "{name} ({summary}): pcc {pcc}");
                }
                ran.push(form);
            }

            // LayerNorm's centered chunk is always shared; RMSNorm's row sums both ways.
            let sharings = [true, false].map(|s| ran.iter().any(|&(shared, _)| shared == s));
            assert_eq!(
                sharings,
                [true, !layer_norm],
                "layer norm {layer_norm}: ran {ran:?}"
            );
            assert!(ran.iter().any(|&(_, bk)| bk < 16), "some K chunks: {ran:?}");
        }
    }

    /// K split over copies of the grid's rows ([`split_k`]): every split layout the planner
    /// offers of a 64-row product on a 4x8 grid, whose blocks fill 2 grid rows so that 2, 3
    /// and 4 parts fit, laid out as the grid and in segments, with an elementwise epilogue and
    /// a row-wise one (whose segments exchange their row sums on the first part's cores), run
    /// against the reference.
    #[test]
    fn split_k_kernels_compute_the_reference() {
        for layer_norm in [false, true] {
            let mut graph = Graph::new();
            let x = graph.add_input("x", f32t(&[64, 384]));
            let w = constant(&mut graph, "w", &[384, 256], 3);
            let bias = constant(&mut graph, "bias", &[256], 4);
            let p = graph.add("p", Op::MatMul, f32t(&[64, 256]), &[x, w]);
            let add = Op::Binary(BinaryOp::Add);
            let biased = graph.add("biased", add, f32t(&[64, 256]), &[p, bias]);
            let last = match layer_norm {
                true => {
                    let gain = constant(&mut graph, "gain", &[256], 5);
                    let shift = constant(&mut graph, "shift", &[256], 6);
                    let op = Op::LayerNorm { eps: 1e-5 };
                    graph.add("y", op, f32t(&[64, 256]), &[biased, gain, shift])
                }
                false => {
                    let op = Op::Unary(UnaryOp::Relu);
                    graph.add("y", op, f32t(&[64, 256]), &[biased])
                }
            };
            graph.outputs.push(("y".into(), last));
            let group = product_group(p, None, vec![p, biased, last], (64, 256));
            let plain = (false, false, &[][..], None);
            let (info, body) =
                matmul_body(&graph, &group, p, plain, None, &[last]).expect("a matmul body");
            let (device, target) = small_grid(4, 8);
            // The first layout as the grid that fits, split every way it can be.
            let grid = candidates(&info, &body, 1, false, &target)
                .into_iter()
                .filter(|c| c.laid.multicast)
                .find_map(|c| fit(&graph, &target, &group, &body, &info, c, None).ok())
                .expect("a layout as the grid fits");
            let split = split_k::layouts(&info, &grid.partition, &target)
                .into_iter()
                .filter_map(|(laid, bk)| {
                    let c = Candidate {
                        laid,
                        bk,
                        double: true,
                        share_norm: false,
                    };
                    fit(&graph, &target, &group, &body, &info, c, None).ok()
                });
            let segmented = segmented_plans(&graph, &target, &group, &body, &info)
                .expect("the epilogue runs in segments")
                .into_iter()
                .filter(|k| k.partition.k_split > 1);
            let mut ran = Vec::new();
            for k in split.chain(segmented) {
                let form = (k.partition.k_split, k.partition.segments.is_some());
                let summary = k.partition_summary.clone();
                for (name, pcc) in output_pccs(&graph, &device, k) {
                    assert!(pcc >= 0.999, "{name} ({summary}): pcc {pcc}");
                }
                ran.push(form);
            }
            for form in [(2, false), (3, false), (4, false), (2, true), (4, true)] {
                assert!(
                    ran.contains(&form),
                    "layer norm {layer_norm}: {form:?} not among {ran:?}"
                );
            }
        }
    }
}
