//! The planner's estimate of a planned kernel's time, in cycles, for choices where fusing trades
//! parallelism for DRAM traffic and launches (a chained product keeps a row-wise kernel's few
//! whole-row blocks, where the matmul alone would spread over the grid).
//!
//! It follows the runtime's timing model in outline: a dispatch, then the longer of the chip's
//! DRAM traffic at its bandwidth and one core's work, where a core's blocks flow through its
//! reader (at the core's read rate), compute (every stage through the unpack/math/pack
//! pipeline) and writer threads, overlapping from one block to the next. It compares plans of
//! the same ops; the runtime times the program.

use super::body::{Body, TtBinary, ValueOp};
use super::kernel::KernelDetail;
use super::matmul_fit::operand_tiles;
use super::matmul_info::{row_norm_sharers, KeptChunk, MatmulInfo, NormInput};
use super::target::{Costs, Target};
use super::{Partition, PlannedKernel};

/// Estimated cycles of kernel `k` on `target`.
pub fn cycles(k: &PlannedKernel, target: &Target) -> f64 {
    let c = &target.costs;
    let p = &k.partition;
    let blocks = p.blocks.max(1) as f64;
    let compute = match &k.detail {
        KernelDetail::Body { body, .. } => {
            body_cycles(body, p.block, c) + exchange_cycles(body, p, c, target.tile_bytes)
        }
        KernelDetail::Matmul { body, info, .. } => match &info.causal {
            Some(causal) => super::causal::block_cycles(c, p, info, causal),
            None => {
                matmul_block_cycles(c, p, body, info, target.tile_bytes)
                    + exchange_cycles(body, p, c, target.tile_bytes)
            }
        },
        KernelDetail::Transpose(_) => stage(c, p.block.0 * p.block.1, c.add, 1.0),
        KernelDetail::Host(_) => 0.0,
    };
    // A core reads and writes at its own rate, or at its share of the chip's when all of the
    // kernel's cores do at once.
    let cores = p.all_cores().max(1) as f64;
    let read_rate = c
        .core_read_bytes_per_cycle
        .min(c.dram_bytes_per_cycle / cores);
    let write_rate = c
        .core_write_bytes_per_cycle
        .min(c.dram_bytes_per_cycle / cores);
    let mut read = k.dram_read_bytes as f64 / blocks / read_rate;
    if let (true, KernelDetail::Matmul { info, .. }) = (p.multicast && p.batches == 1, &k.detail) {
        // Shared operands: the blocks' own reads (bias, residual) at the core's rate, and the
        // first K chunk's transfer; the rest stream under the compute.
        let bk = p.k_block.unwrap_or(info.kt);
        let operands = operand_tiles(info, p, bk) as u64 * target.tile_bytes;
        let own = k.dram_read_bytes.saturating_sub(operands) as f64 / blocks;
        // A kept chunk: the core's own, before the first product.
        let first = own_chunk_cycles(c, p, info, target.tile_bytes)
            .unwrap_or_else(|| first_shared_chunk_cycles(c, p.block, bk, target.tile_bytes));
        read = own / c.core_read_bytes_per_cycle + first;
    }
    let first_read = match &k.detail {
        KernelDetail::Matmul { info, .. } => info.causal.as_ref().map(|causal| {
            // Causal attention streams a block's key chunks under its compute: only the
            // query, read by every core, and the first chunk's keys and values, read by one
            // core of the grid row at its own rate, come before it.
            let (bm, hd, kc) = (p.block.0, info.kt, causal.key_chunk);
            let tile = target.tile_bytes as f64;
            (bm * hd) as f64 * tile / read_rate
                + (2 * kc * hd) as f64 * tile / c.core_read_bytes_per_cycle
        }),
        _ => None,
    };
    let write = k.dram_write_bytes as f64 / blocks / write_rate;
    // A streamed hidden layer's chunks are read while the compute thread works on the chunk
    // before: only the first chunk's read is not hidden within the block.
    let hidden = hidden_chunk_read_bytes(k, target) / c.core_read_bytes_per_cycle
        + streamed_operand_bytes(k, target) / read_rate;
    let (exposed_read, compute) = (first_read.unwrap_or(read) - hidden, compute.max(hidden));
    // The reader, compute and writer threads overlap across blocks, not within one: the first
    // block's read and the last block's write are not hidden.
    let per_core = exposed_read
        + compute
        + write
        + (p.blocks_per_core as f64 - 1.0).max(0.0) * compute.max(read).max(write);
    let chip = (k.dram_read_bytes + k.dram_write_bytes) as f64 / c.dram_bytes_per_cycle;
    // Single-buffered operands hold one chunk: the next is passed only once the compute has
    // taken the one before, so the chain and the compute take turns (without a chain, the
    // compute alone is within `per_core`).
    let chain = match p.double_buffered {
        true => multicast_chain(k, target),
        false => multicast_chain(k, target) + p.blocks_per_core as f64 * compute,
    };
    c.dispatch
        + chip
            .max(per_core)
            .max(shared_chunk_chain(k, target))
            .max(chain)
}

/// The cycles a core's reader or writer spends passing a multicast matmul's operands along
/// its grid row (A) or column (B) when the blocks take whole rows and columns of the grid
/// ([`Partition::multicast`]): every K chunk of every product, each read from DRAM by its
/// turn's sender and multicast, one after the other; and for a normalized A, the compute's
/// wait between its first and second product, which holds the chain up as long
/// ([`norm_boundary_cycles`]). With small blocks this, not the math, bounds the kernel
/// (LLaMA's q, k, v projections at 128 rows: one row tile per block, the writer passing B for
/// 65k cycles while the compute works for 41k).
fn multicast_chain(k: &PlannedKernel, target: &Target) -> f64 {
    let p = &k.partition;
    let KernelDetail::Matmul { info, .. } = &k.detail else {
        return 0.0;
    };
    if !p.multicast || p.batches != 1 || p.segments.is_some() || info.causal.is_some() {
        return 0.0;
    }
    let c = &target.costs;
    let products = 1 + info.others.len();
    let boundary = norm_boundary_cycles(c, p, info, target.tile_bytes);
    operand_chain_cycles(c, p, (info.kt / p.k_split, products), target.tile_bytes)
        + p.blocks_per_core as f64 * boundary
        + kept_chunk_latency(c, p, info, target.tile_bytes)
}

/// The cycles of [`multicast_chain`]'s operand chunks alone, for a multicast layout `p` of
/// `products` products over `kt` K tiles: the longer of the reader's and the writer's, which
/// pass a block's A rows along the grid row and its B columns down the grid column over all
/// of K, every product and every block of a core, each chunk read from DRAM by its sender and
/// multicast to the others (read by the core itself on a grid of one column or row). With K
/// split, `kt` is one part's.
fn operand_chain_cycles(
    c: &Costs,
    p: &Partition,
    (kt, products): (usize, usize),
    tile: u64,
) -> f64 {
    let (bm, bn) = p.block;
    let along = |rows: usize, cores: u32| {
        let bytes = (rows * kt * products * p.blocks_per_core) as u64 * tile;
        match cores > 1 {
            true => shared_chunk_cycles(c, bytes, c.core_read_bytes_per_cycle),
            false => bytes as f64 / c.core_read_bytes_per_cycle,
        }
    };
    along(bm, p.grid.0).max(along(bn, p.grid.1))
}

/// The cycles a single block row's segments ([`Partition::segments`]) spend passing A's K
/// chunks along their grid rows: chunk after chunk, every core reads its own columns of B and
/// each grid row's sender its chunk of A, all through the chip's one DRAM queue, and the sender
/// then multicasts the chunk. The chain, not the math, bounds a classifier's product (x
/// [1, 4096] @ w [4096, 1000]: 32 segments on 8x4 cores ran 56.94 us on the runtime, 16 on
/// 8x2 49.01 us) and LLaMA's gated MLP products at 128 rows on wormhole_b0 (32 segments: run
/// 47.2k cycles, estimated 51.3k). It had been counted as the sender reading at the share of
/// the bandwidth a core gets when every core reads as much as it does: 69.0k for that MLP,
/// whose cores each read half of the sender's chunk. With K split, each part's grid rows pass
/// their part's chunks at once.
fn shared_chunk_chain(k: &PlannedKernel, target: &Target) -> f64 {
    let p = &k.partition;
    let KernelDetail::Matmul { info, .. } = &k.detail else {
        return 0.0;
    };
    if !(p.multicast && p.segments.is_some() && p.row_blocks == 1) {
        return 0.0;
    }
    let c = &target.costs;
    let bk = p.k_block.unwrap_or(info.kt);
    let (bm, bn) = p.block;
    let tile = target.tile_bytes as f64;
    let a_chunk = (bm * bk) as f64 * tile;
    let senders = p.kernel_grid().1 as f64;
    let step_bytes = a_chunk * senders + (bk * bn * p.all_cores()) as f64 * tile;
    let read = (step_bytes / c.dram_bytes_per_cycle).max(a_chunk / c.core_read_bytes_per_cycle);
    let per_chunk = read + a_chunk / c.multicast_bytes_per_cycle;
    (p.k_chunks * (1 + info.others.len())) as f64 * per_chunk
}

/// Compute cycles of one block of a matmul kernel partitioned as `p`: its products over K (for
/// a gathered operand, with the selecting products), the running sums, and its epilogue.
fn matmul_block_cycles(c: &Costs, p: &Partition, body: &Body, info: &MatmulInfo, tile: u64) -> f64 {
    let (bm, bn) = p.block;
    // A gathered operand: per K chunk, each A tile selected from `bm + 1` pixel tiles.
    let gather = match (&info.a_gather, p.k_block) {
        (Some(_), Some(bk)) => {
            let k = (bm + 1) as f64;
            p.k_chunks as f64 * stage(c, bm * bk, k * c.matmul_tile, k * c.matmul_unpack_tiles)
        }
        _ => 0.0,
    };
    // A transposed B (attention's keys): each K chunk transposed before its product.
    let transposes = match (info.b_transposed, p.k_block) {
        (true, Some(bk)) => p.k_chunks as f64 * stage(c, bk * bn, c.transpose, 1.0),
        _ => 0.0,
    };
    let products = (1 + info.others.len()) as f64;
    let kt = (info.kt / p.k_split.max(1)) as f64;
    gather
        + transposes
        + norm_cycles(c, p, info, tile)
        + products
            * (stage(c, bm * bn, kt * c.matmul_tile, kt * c.matmul_unpack_tiles)
                + accumulation_cycles(c, p.block, p.k_chunks))
        + products * partial_sums_cycles(c, p, tile)
        + body_cycles(body, p.block, c)
}

/// The cycles a core of the first part of a split K ([`Partition::k_split`]) spends on the
/// other parts' partial sums of a product's block: each sent through a pipe, then added.
fn partial_sums_cycles(c: &Costs, p: &Partition, tile: u64) -> f64 {
    let (bm, bn) = p.block;
    let transfer = ((bm * bn) as u64 * tile) as f64 / c.multicast_bytes_per_cycle;
    p.k_split.saturating_sub(1) as f64 * (transfer + stage(c, bm * bn, c.add, 2.0))
}

/// The cycles a left operand the kernel normalizes ([`super::matmul_info::RowNorm`]) adds to a
/// block of `p` ([`row_norm_cycles`]).
fn norm_cycles(c: &Costs, p: &Partition, info: &MatmulInfo, tile: u64) -> f64 {
    let (Some(rn), Some(bk)) = (&info.norm, p.k_block) else {
        return 0.0;
    };
    let sharers = row_norm_sharers(info, p, p.k_chunks);
    let products = 1 + info.others.len();
    if let Some(kept) = &rn.kept {
        let blocks = (p.blocks_per_core, products);
        return kept_chunk_cycles(c, (p.block, bk), kept, blocks, sharers, tile)
            / p.blocks_per_core as f64;
    }
    row_norm_cycles(c, p.block, (bk, p.k_chunks), products, sharers, tile)
}

/// The compute cycles a chunk kept in L1 ([`super::matmul_info::RowNorm::kept`]) adds to one core
/// with blocks of `(bm, bn)` tiles and K chunks of `bk`, `blocks` of them, each of `products`
/// products, the row sums shared by `sharers` cores: the chunk computed (when the kernel
/// computes A), its statistics once for all the blocks, and each product's last chunk scaled.
pub fn kept_chunk_cycles(
    c: &Costs,
    ((bm, bn), bk): ((usize, usize), usize),
    kept: &KeptChunk,
    (blocks, products): (usize, usize),
    sharers: Option<usize>,
    tile: u64,
) -> f64 {
    let copies = products * blocks;
    let scaled = (copies * bm * bn) as f64 * (c.add + c.mul);
    statistics_cycles(c, (bm, bk, kept.centered), copies, sharers, tile)
        + norm_input_cycles(c, (bm, bk), kept.input.as_ref())
        + scaled
}

/// The compute cycles of a kept chunk's statistics on one core
/// ([`super::matmul_info::RowNorm::kept`]), for blocks of `bm` rows and K chunks of `bk` tiles,
/// `centered` for a LayerNorm, the row sums shared by `sharers` cores, the rows' scale copied
/// `copies` times: a LayerNorm's chunk row sums and the others' partials (the mean) and the
/// chunk centered; the squares, their row sums and the others' partials (the variance or
/// mean square); the scale and its copies.
fn statistics_cycles(
    c: &Costs,
    (bm, bk, centered): (usize, usize, bool),
    copies: usize,
    sharers: Option<usize>,
    tile: u64,
) -> f64 {
    let row_sums = stage(c, bm, bk as f64 * c.reduce + c.add, bk as f64 + 2.0);
    let exchange = partials_cycles(c, bm, sharers, tile);
    let scale = stage(c, bm, c.add + c.sfpu("rsqrt"), 2.0);
    let copies = copies as f64 * stage(c, bm, c.add, 1.0);
    // A LayerNorm's mean and centering, then its variance; an RMSNorm's mean square.
    let (sums, keep) = match centered {
        true => (2.0, stage(c, bm * bk, 3.0 * c.add + c.mul, 2.0)),
        false => (1.0, stage(c, bm * bk, c.mul, 1.0)),
    };
    sums * (row_sums + exchange) + keep + scale + copies
}

/// The compute cycles of one core's chunk of a kept A that the kernel computes
/// ([`NormInput`]), `bm` rows by `bk` columns: the product over its K in chunks, the running
/// sum, then the adds into the chunk kept and the chunk written. None without one.
fn norm_input_cycles(c: &Costs, (bm, bk): (usize, usize), input: Option<&NormInput>) -> f64 {
    let Some(input) = input else {
        return 0.0;
    };
    let kt = input.kt as f64;
    let product = stage(c, bm * bk, kt * c.matmul_tile, kt * c.matmul_unpack_tiles);
    let chunks = input.kt / input.bk;
    let adds = input.adds.len() as f64;
    let last = stage(c, bm * bk, 2.0 * adds * c.add, 1.0 + adds) + (bm * bk) as f64 * c.pack;
    product + accumulation_cycles(c, (bm, bk), chunks) + last
}

/// The cycles a kernel that centers its A ([`super::matmul_info::RowNorm::kept`]) waits for
/// the chunk each core reads before its products: the first `K_CHUNKS` cores of each grid row
/// read at once, at their share of the chip's bandwidth (the cores past them receive the last
/// chunk from its core). A chunk the kernel computes ([`NormInput`]) waits instead for its
/// operands' first chunks, each read by its sender and multicast along the grid row (`a`'s
/// rows) or down the column (`b`'s columns); the later ones arrive while the compute thread
/// works. `None` for any other kernel.
fn own_chunk_cycles(c: &Costs, p: &Partition, info: &MatmulInfo, tile: u64) -> Option<f64> {
    let rn = info.norm.as_ref()?;
    let ce = rn.kept.as_ref()?;
    let bk = p.k_block.unwrap_or(info.kt);
    if let Some(input) = &ce.input {
        return Some(input_chain_cycles(c, (p.block.0, bk), input.bk, tile));
    }
    let bytes = (p.block.0 * bk) as u64 * tile;
    let readers = p.grid.1 as usize * p.k_chunks.min(p.grid.0 as usize);
    let rate = c
        .core_read_bytes_per_cycle
        .min(c.dram_bytes_per_cycle / readers.max(1) as f64);
    let passed_on = match p.k_chunks < p.grid.0 as usize {
        true => bytes as f64 / c.multicast_bytes_per_cycle,
        false => 0.0,
    };
    Some(bytes as f64 / rate + passed_on)
}

/// The cycles a computed norm input's operand chunks ([`NormInput`]) take to reach a core
/// whose chunk of A is `bm` rows by `bk` columns, over `k` tiles of the product's K: its rows
/// of `a` and its columns of `b`, each read by its sender and multicast, the longer of the two.
fn input_chain_cycles(c: &Costs, (bm, bk): (usize, usize), k: usize, tile: u64) -> f64 {
    let chain = |tiles: usize| {
        shared_chunk_cycles(c, (tiles * k) as u64 * tile, c.core_read_bytes_per_cycle)
    };
    chain(bm).max(chain(bk))
}

/// The cycles before a kernel that centers its A multicasts its first K chunk: each core
/// reads its chunk ([`own_chunk_cycles`]) or computes it ([`norm_input_cycles`]), and
/// computes its statistics with the others' ([`statistics_cycles`]).
fn kept_chunk_latency(c: &Costs, p: &Partition, info: &MatmulInfo, tile: u64) -> f64 {
    let kept = info.norm.as_ref().and_then(|rn| rn.kept.as_ref());
    let (Some(kept), Some(read), Some(bk)) = (kept, own_chunk_cycles(c, p, info, tile), p.k_block)
    else {
        return 0.0;
    };
    let sharers = row_norm_sharers(info, p, p.k_chunks);
    let copies = (1 + info.others.len()) * p.blocks_per_core;
    let computed = match &kept.input {
        // The product's chain of operand chunks, or its compute, whichever is longer.
        Some(input) => {
            let operands = input_chain_cycles(c, (p.block.0, bk), input.kt, tile);
            operands.max(read + norm_input_cycles(c, (p.block.0, bk), Some(input)))
        }
        None => read,
    };
    let stats = (p.block.0, bk, kept.centered);
    computed + statistics_cycles(c, stats, copies, sharers, tile)
}

/// The cycles the compute thread of a kernel that normalizes its A spends between its first
/// product's last chunk and its second product's first, when it takes no chunks: the rows'
/// scale, and before it the other sharers' partial row sums, one after the other through
/// pipes, and their adds. A reader or writer only a buffer's slots ahead waits as long.
fn norm_boundary_cycles(c: &Costs, p: &Partition, info: &MatmulInfo, tile: u64) -> f64 {
    // A kept chunk's scale is known before the first product.
    if info.norm.as_ref().is_none_or(|rn| rn.kept.is_some()) {
        return 0.0;
    }
    let bm = p.block.0;
    let sharers = row_norm_sharers(info, p, p.k_chunks);
    stage(c, bm, c.add + c.sfpu("rsqrt"), 2.0) + partials_cycles(c, bm, sharers, tile)
}

/// The cycles of receiving and adding the other sharers' partial row sums of `bm` tiles
/// ([`super::matmul_info::row_norm_sharers`]), none when the sums are not shared.
fn partials_cycles(c: &Costs, bm: usize, sharers: Option<usize>, tile: u64) -> f64 {
    let Some(sharers) = sharers else {
        return 0.0;
    };
    let transfer = (bm as u64 * tile) as f64 / c.multicast_bytes_per_cycle;
    (sharers - 1) as f64 * (transfer + stage(c, bm, c.add, 2.0))
}

/// The cycles a left operand the kernel normalizes adds to a block of `(bm, bn)` tiles whose K
/// is taken in `k_chunks` chunks of `bk` tiles, for `products` products, the row sums shared by
/// `sharers` cores if they are: per K chunk its squares and their row sums, the other sharers'
/// partials, then the rows' scale (an SFPU `rsqrt`) copied once per product, the first
/// product's sum scaled in a stage of its own, the later products' in their last chunk's (a
/// broadcast and a multiply per output tile).
pub fn row_norm_cycles(
    c: &Costs,
    (bm, bn): (usize, usize),
    (bk, k_chunks): (usize, usize),
    products: usize,
    sharers: Option<usize>,
    tile: u64,
) -> f64 {
    let products = products as f64;
    let squares = stage(c, bm * bk, c.mul, 2.0);
    let row_sums = stage(c, bm, bk as f64 * c.reduce + c.add, bk as f64 + 2.0);
    // Shared over a grid row: the busiest core's share of the chunks, then the other cores'
    // partials.
    let chunks = match sharers {
        Some(sharers) => k_chunks.div_ceil(sharers),
        None => k_chunks,
    } as f64;
    let exchange = partials_cycles(c, bm, sharers, tile);
    let scale = stage(c, bm, c.add + c.sfpu("rsqrt"), 2.0);
    let copies = products * stage(c, bm, c.add, 1.0);
    let first = stage(c, bm * bn, c.add + c.mul, 2.0);
    let later = (products - 1.0) * (bm * bn) as f64 * (c.add + c.mul);
    chunks * (squares + row_sums) + exchange + scale + copies + first + later
}

/// The cycles a streamed K adds to a block's compute: every chunk after the first adds its
/// product to the running sum in the product's own stage (the guide's pattern 4, the add
/// fused after the matmul), one more tile unpacked and added per output tile.
fn accumulation_cycles(c: &Costs, block: (usize, usize), k_chunks: usize) -> f64 {
    let per_chunk = (block.0 * block.1) as f64 * (c.unpack + c.add);
    k_chunks.saturating_sub(1) as f64 * per_chunk
}

/// Cycles before a multicast matmul block can start: its first K chunk (of `bk` tiles) of the
/// longer operand read from DRAM by its sender and multicast to the others.
fn first_shared_chunk_cycles(c: &Costs, block: (usize, usize), bk: usize, tile: u64) -> f64 {
    let bytes = (block.0.max(block.1) * bk) as u64 * tile;
    shared_chunk_cycles(c, bytes, c.core_read_bytes_per_cycle)
}

/// Cycles to pass on a shared operand's chunk of `bytes`: its sender reads it from DRAM at
/// `read_rate`, then multicasts it.
fn shared_chunk_cycles(c: &Costs, bytes: u64, read_rate: f64) -> f64 {
    bytes as f64 * (1.0 / read_rate + 1.0 / c.multicast_bytes_per_cycle)
}

/// What streaming K in chunks of `bk` of `kt` tiles costs a matmul block beyond its products:
/// the running sum's adds, which grow with the chunks, and the wait for the first chunk (read
/// by the block's core, or when `shared` read by its sender and multicast), which shrinks with
/// them. Only a core's first block waits for its first chunk (the reader fetches the next
/// block's while the compute works on the one before), so with `blocks_per_core` blocks the
/// wait is spread over them.
pub fn k_chunking_cycles(
    c: &Costs,
    (block, blocks_per_core): ((usize, usize), usize),
    (bk, kt): (usize, usize),
    shared: bool,
    tile: u64,
) -> f64 {
    let first = if shared {
        first_shared_chunk_cycles(c, block, bk, tile)
    } else {
        ((block.0 + block.1) * bk) as f64 * tile as f64 / c.core_read_bytes_per_cycle
    };
    accumulation_cycles(c, block, kt / bk) + first / blocks_per_core.max(1) as f64
}

/// A first estimate of a matmul layout's cycles, to rank block shapes before any is built:
/// the longest of the chip's DRAM traffic (`read_tiles` operand tiles and `out_tiles` output
/// tiles at the aggregate bandwidth), one core's `products` (its blocks' tiles over K, `kt`
/// tiles), and one core's reads at its own rate (laid out as the grid, its grid row's or
/// column's chain of operand chunks, each read by its sender and then multicast; otherwise its
/// share, twice over when `shared`); then the last blocks' writes, which nothing hides.
pub fn matmul_layout_cycles(
    c: &Costs,
    laid: &Partition,
    (kt, products): (usize, usize),
    (read_tiles, out_tiles): (usize, usize),
    shared: bool,
    tile: u64,
) -> f64 {
    let tile = tile as f64;
    let dram = (read_tiles + out_tiles) as f64 * tile / c.dram_bytes_per_cycle;
    let per_tile = c.matmul_tile.max(c.matmul_unpack_tiles * c.unpack);
    let block_tiles = (laid.block.0 * laid.block.1) as f64;
    let compute = (laid.blocks_per_core * products) as f64 * block_tiles * kt as f64 * per_tile;
    // One core's reads: laid out as the grid, the chain of chunks each read by its sender and
    // multicast; otherwise its share, twice over when shared (each tile read, then sent on).
    let core_read = if shared && laid.batches == 1 && laid.segments.is_none() {
        operand_chain_cycles(c, laid, (kt, products), tile as u64)
    } else {
        let passes = if shared { 2.0 } else { 1.0 };
        let cores = laid.cores_used.max(1) as f64;
        read_tiles as f64 / cores * tile * passes / c.core_read_bytes_per_cycle
    };
    // Every core's last block is written after the compute is done, all at once.
    let last_writes = out_tiles as f64 / (laid.blocks_per_core.max(1) as f64);
    let tail = last_writes * tile / c.dram_bytes_per_cycle;
    dram.max(compute).max(core_read) + tail
}

/// DRAM bytes one block of a matmul kernel `k` that reads its own operands reads while the
/// compute thread works on an earlier K chunk: every product's chunks but the first's (LLaMA's
/// gated MLP at 128 rows, each of 16 cores reading its operands in 6 chunks: estimated 1.69
/// times its run when the whole read came before the compute).
fn streamed_operand_bytes(k: &PlannedKernel, target: &Target) -> f64 {
    let p = &k.partition;
    let KernelDetail::Matmul { info, body, .. } = &k.detail else {
        return 0.0;
    };
    // Not a kernel with chained products, which read whole matrices per block.
    let chained = body.values.iter().any(|v| v.op == ValueOp::Product);
    let plain = !p.multicast && info.a_gather.is_none() && info.causal.is_none() && !chained;
    let (Some(bk), true) = (p.k_block, plain && p.k_chunks > 1) else {
        return 0.0;
    };
    let operands = operand_tiles(info, p, bk) as f64 / p.blocks.max(1) as f64;
    let (bm, bn) = p.block;
    (operands - (bm * bk + bk * bn) as f64).max(0.0) * target.tile_bytes as f64
}

/// DRAM bytes one block of kernel `k` reads for its streamed hidden layer while the compute
/// thread works on an earlier chunk: every chunk's reads but the first's.
fn hidden_chunk_read_bytes(k: &PlannedKernel, target: &Target) -> f64 {
    let Some(body) = k.detail.body() else {
        return 0.0;
    };
    let Some(st) = &body.stream else {
        return 0.0;
    };
    let tiles: usize = body
        .loads
        .iter()
        .filter(|l| body.is_streamed(l.value))
        .map(|l| {
            let (r, c) = body.values[l.value].class.block(k.partition.block);
            r * c * (st.chunks - 1)
        })
        .sum();
    (tiles as u64 * target.tile_bytes) as f64
}

/// What exchanging its partial row reductions costs a block of a kernel in column segments
/// ([`super::segments`]): per reduction, the partial copied twice (to send and to keep), the
/// other segments' partials received through pipes, and one combining stage for each.
fn exchange_cycles(body: &Body, p: &Partition, c: &Costs, tile: u64) -> f64 {
    let Some(s) = p.segments else {
        return 0.0;
    };
    let reductions = body
        .values
        .iter()
        .filter(|v| matches!(v.op, ValueOp::Reduce(_)))
        .count() as f64;
    let rows = p.block.0;
    let peers = (s - 1) as f64;
    let receive = peers * (rows as u64 * tile) as f64 / c.multicast_bytes_per_cycle;
    let combine = peers * stage(c, rows, c.add, 2.0);
    reductions * (stage(c, 2 * rows, c.add, 1.0) + receive + combine)
}

/// One pipeline stage producing `tiles` tiles, each `math` cycles on `unpacked` input tiles:
/// the runtime's unpack/math/pack pipeline.
pub(crate) fn stage(c: &Costs, tiles: usize, math: f64, unpacked: f64) -> f64 {
    let u = unpacked * c.unpack;
    let t = tiles.max(1) as f64;
    c.block_overhead + u + math + c.pack + (t - 1.0) * u.max(math).max(c.pack)
}

/// Compute cycles of one block of `body`: one stage per materialized computed value, with the
/// math of the values computed inline in it.
fn body_cycles(body: &Body, block: (usize, usize), c: &Costs) -> f64 {
    let mut total = 0.0;
    let mut math = 0.0;
    // A streamed hidden layer's stages run once per chunk, and all but the first chunk's
    // product are added to the running sum.
    let times = |i: usize| match &body.stream {
        Some(st) if st.per_chunk(i) => st.chunks as f64,
        _ => 1.0,
    };
    if let Some(st) = &body.stream {
        total += accumulation_cycles(c, body.values[st.product].class.block(block), st.chunks);
    }
    for (i, v) in body.values.iter().enumerate() {
        let (r, cols) = v.class.block(block);
        let tiles = r * cols;
        let per_tile = match &v.op {
            ValueOp::Load(_) | ValueOp::MatMul => continue,
            ValueOp::Product => {
                let k = v
                    .args
                    .first()
                    .map_or(1, |&a| body.values[a].class.block(block).1)
                    as f64;
                total += times(i) * stage(c, tiles, k * c.matmul_tile, k * c.matmul_unpack_tiles);
                continue;
            }
            ValueOp::Unary(f) => c.sfpu(f.name()),
            ValueOp::Power(_) => c.sfpu("power"),
            ValueOp::Binary(TtBinary::Add | TtBinary::Sub) => c.add,
            ValueOp::Binary(TtBinary::Mul) => c.mul,
            ValueOp::Binary(TtBinary::Div) => c.sfpu("division"),
            ValueOp::Binary(TtBinary::Max) => c.sfpu("max"),
            ValueOp::Binary(TtBinary::Min) => c.sfpu("min"),
            ValueOp::Reduce(_) => c.reduce,
            ValueOp::Broadcast | ValueOp::Copy => c.add,
        };
        math += per_tile;
        if body.materialized[i] {
            total += times(i) * stage(c, tiles, math, v.args.len().max(1) as f64);
            math = 0.0;
        }
    }
    total
}
