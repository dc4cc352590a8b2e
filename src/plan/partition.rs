//! Cutting a kernel's work into blocks and blocks over the core grid, under the core's L1 and
//! circular-buffer limits.

use serde::Serialize;

use super::target::Target;

/// How a kernel's work is spread over the grid.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Partition {
    /// Block of the iteration space (output) in tiles: rows, columns.
    pub block: (usize, usize),
    /// Row blocks per batch.
    pub row_blocks: usize,
    /// Column blocks.
    pub col_blocks: usize,
    /// Independent batches (batched matmul and transpose).
    pub batches: usize,
    /// Tiles of K per streamed chunk (matmul only).
    pub k_block: Option<usize>,
    /// K chunks per output block (matmul only; 1 otherwise); with K split
    /// ([`Partition::k_split`]), per part.
    pub k_chunks: usize,
    /// Parts K is split into over the grid's rows ([`Partition::split_k`]): a multicast
    /// matmul's grid repeated this many times down the grid, the `s`-th copy summing the
    /// `s`-th part of K, the partial sums sent through pipes to the first copy's cores, which
    /// add them and run the epilogue. 1 when K is not split.
    pub k_split: usize,
    /// Blocks in total.
    pub blocks: usize,
    /// Blocks each core processes (the last cores may have fewer).
    pub blocks_per_core: usize,
    /// Cores that get work (with K split, those of the first part,
    /// [`Partition::all_cores`]).
    pub cores_used: usize,
    /// The kernel's grid `(x, y)`, as its threads see it: block columns along `x`, block
    /// rows along `y`. With K split, the first part's ([`Partition::kernel_grid`]).
    pub grid: (u32, u32),
    /// Whether the kernel's grid lies across the device's: its `x` along the device's rows
    /// (`y`) and its `y` along the device's columns (`x`). On a grid that is not square
    /// (Blackhole's 11x10) a product whose blocks form more rows than columns uses more cores
    /// so: `[1024, 768] @ [768, 768]` in blocks of 3x3 tiles fills 8x11 cores, not 8x8. The
    /// lowering writes the kernel on its own grid and swaps the axes of the device's
    /// coordinates at the end ([`crate::lower::grid_axes`]).
    pub across: bool,
    /// Whether some iterations fall past the last block and are skipped by an `if`.
    pub guarded: bool,
    /// Whether streaming buffers hold two blocks (double buffering) or one.
    pub double_buffered: bool,
    /// Tiles per chunk when the columns of the kernel's chained product are split over cores
    /// ([`crate::plan::wide::split`]): `col_blocks` counts the chunks, and every
    /// block still spans whole rows of the rest of the kernel, recomputing it per chunk.
    pub wide: Option<usize>,
    /// Tiles per chunk and chunks when the kernel streams its hidden layer
    /// ([`crate::plan::stream`]).
    pub stream: Option<(usize, usize)>,
    /// Whether a matmul's operands travel core to core: for a 2-D product
    /// ([`Partition::multicast`]) each of A's K chunks is read from DRAM once per grid row and
    /// sent to the row's other cores, each of B's once per grid column and sent down it; for
    /// batches ([`Partition::share_batches`]) each batch's right operands once per grid row.
    pub multicast: bool,
    /// Cores sharing each block row of a row-wise or elementwise kernel
    /// ([`crate::plan::segments`]): its columns cut into this many segments (`col_blocks`), one
    /// block per core, the cores of a block row exchanging their partial row reductions (if
    /// it has any) through pipes.
    pub segments: Option<usize>,
    /// Whether, with shared batches ([`Partition::share_batches`]), a core's odd steps take
    /// the row block mirrored within the batch (`row_blocks - 1 - r` for `r`): causal
    /// attention in key chunks ([`crate::plan::causal`]), where a row block's work grows with
    /// its row, so that a core's blocks add up to about the same work on every core.
    pub mirrored: bool,
    /// With mirrored steps and an odd number of them, the row blocks per class of equal work
    /// (blocks whose rows end in the same key chunk) when the last three steps are balanced by
    /// class instead ([`ClassSteps`]): mirrored pairs balance an even number of steps, and
    /// an odd last step alone would give the cores of the far classes the most work.
    pub class_steps: Option<ClassSteps>,
    /// The cores over which the mirrored pairs of a batched kernel's row blocks are spread
    /// in row order ([`Partition::pairs_over_cores`]), when they are: causal attention whose
    /// batches do not divide over the grid's rows (12 heads on Blackhole's 10).
    pub pair_cores: Option<usize>,
    /// Tiles by which the last block row and the last block column overlap the ones before
    /// them, for blocks that do not divide the rows (columns): the last block ends at the last
    /// tile, and its first tiles recompute, and write again with the same values, the end of
    /// the block before it ([`Partition::overlapping`]). `(0, 0)` when the blocks divide.
    pub overlap: (usize, usize),
}

/// The fewest result tiles per core, and per block, for which a multicast matmul cuts a core's
/// part of a block row into several blocks ([`Partition::multicast`]). Below the first, the
/// last block's write, which the cut shortens, is short; below the second, every block streams
/// A again for few results, and the reader falls behind. Measured on the runtime,
/// `[1024, 768] @ [768, n]` with a bias: n = 2304 (QKV), 3 blocks of 4x3: 79.77 us against 88.64
/// us as one 4x9 block; n = 3072 (MLP), 4 blocks of 4x3: 100.37 against 116.18; n = 2048, 2
/// blocks of 4x4: 71.88 against 79.46, but 4 blocks of 4x2: 85.82; and `[256, 768] @ [768,
/// 512]`, 2 tiles per core: 15.35 against 14.81.
const MIN_SPLIT_CORE_TILES: usize = 16;
/// See [`MIN_SPLIT_CORE_TILES`].
const MIN_SPLIT_BLOCK_TILES: usize = 12;

impl Partition {
    /// Spreads `blocks` blocks over the target's cores.
    pub fn spread(
        block: (usize, usize),
        grid_blocks: (usize, usize, usize),
        target: &Target,
    ) -> Partition {
        let (batches, row_blocks, col_blocks) = grid_blocks;
        let blocks = batches * row_blocks * col_blocks;
        let per_core = blocks.div_ceil(target.cores().max(1)).max(1);
        let cores_used = blocks.div_ceil(per_core);
        let gx = cores_used.min(target.grid_x as usize).max(1);
        let gy = cores_used.div_ceil(gx).max(1);
        Partition {
            block,
            row_blocks,
            col_blocks,
            batches,
            k_block: None,
            k_chunks: 1,
            k_split: 1,
            blocks,
            blocks_per_core: per_core,
            cores_used,
            grid: (gx as u32, gy as u32),
            across: target.across,
            guarded: gx * gy * per_core > blocks,
            double_buffered: true,
            wide: None,
            stream: None,
            multicast: false,
            segments: None,
            mirrored: false,
            class_steps: None,
            pair_cores: None,
            overlap: (0, 0),
        }
    }

    /// Spreads blocks of `block` tiles over `tiles` (rows, columns), which they need not
    /// divide: `ceil(tiles / block)` blocks each way, the last ones overlapping the ones
    /// before them ([`Partition::overlap`]). For a matmul laid out as the grid
    /// ([`Partition::multicast`]), a block size that does not divide the product lets it use
    /// grid rows or columns that no divisor does: 11 blocks of 9 tile columns fill
    /// Blackhole's 11 grid columns with a product 96 tiles wide (GPT-2's MLP), which blocks
    /// that divide it fill only 8 of.
    pub fn overlapping(block: (usize, usize), tiles: (usize, usize), target: &Target) -> Partition {
        let (rows, cols) = (tiles.0.div_ceil(block.0), tiles.1.div_ceil(block.1));
        let mut p = Partition::spread(block, (1, rows, cols), target);
        p.overlap = (rows * block.0 - tiles.0, cols * block.1 - tiles.1);
        p
    }

    /// Lays the blocks out as the block grid itself, with the operands multicast: the cores of
    /// a grid row share the block row's A, the cores of a grid column the block column's B.
    /// One block per core on a `(col_blocks, row_blocks)` grid, or, when there are more block
    /// columns than grid columns, the fewest consecutive block columns per core that divide
    /// them (a core's part of a block row cut into narrower blocks, whose results it writes
    /// while it computes the next, [`crate::lower::matmul`]). `None` when the blocks do not form such a
    /// grid on the target (batched, more block rows than the grid has, a single block), or
    /// when they need several blocks per core and `split` is false.
    pub fn multicast(self, target: &Target, split: bool) -> Option<Partition> {
        // The fewest blocks per core that leave no more block columns than the grid has.
        let gx = target.grid_x as usize;
        let per_core = divisors(self.col_blocks)
            .into_iter()
            .find(|&d| self.col_blocks / d <= gx)?;
        let block_tiles = self.block.0 * self.block.1;
        let narrow =
            block_tiles < MIN_SPLIT_BLOCK_TILES || block_tiles * per_core < MIN_SPLIT_CORE_TILES;
        if per_core > 1 && (!split || narrow) {
            return None;
        }
        let fits =
            self.batches == 1 && self.blocks > 1 && self.row_blocks <= target.grid_y as usize;
        if !fits {
            return None;
        }
        let grid = (self.col_blocks / per_core, self.row_blocks);
        Some(self.shared_over(grid, per_core))
    }

    /// Lays out a matmul with a single block row whose row-wise epilogue runs in `segments`
    /// column segments ([`crate::plan::segments`]) over more cores than a grid row has: the
    /// segments fill `segments / across` grid rows of `across` cores (the most cores up to a
    /// grid row that divide them), one block per core in block order. Every core needs all of
    /// A, which each grid row's cores share (read once per grid row); no two share a column of
    /// B, which each reads itself. A classifier's product with its softmax (one row of a
    /// thousand classes) otherwise reads all of its weights through one grid row's cores.
    /// `None` when the blocks are not one block row or the segments do not fit the grid.
    pub fn segments_over_rows(self, target: &Target, segments: usize) -> Option<Partition> {
        let (gx, gy) = (target.grid_x as usize, target.grid_y as usize);
        let across = divisors(segments).into_iter().rfind(|&d| d <= gx)?;
        let rows = segments / across;
        let fits = self.batches == 1
            && self.row_blocks == 1
            && self.col_blocks == segments
            && rows > 1
            && rows <= gy;
        if !fits {
            return None;
        }
        let mut p = self.shared_over((across, rows), 1);
        p.segments = Some(segments);
        Some(p)
    }

    /// This multicast layout with K split in `parts` over copies of its grid stacked down the
    /// target's grid ([`Partition::k_split`]): a product whose blocks fill few grid rows (128
    /// tokens are 4 row tiles, half of Wormhole's 8 grid rows) keeps the rest of the cores
    /// busy with the other parts of K. `grid` and `cores_used` stay one copy's. `None` unless
    /// the layout is a 2-D multicast one of one block per core, or of one block row in
    /// segments, and the copies fit the grid.
    pub fn split_k(mut self, target: &Target, parts: usize) -> Option<Partition> {
        // Segments take their blocks in rounds over the cores; the other copies' threads take
        // a core's blocks in a row, which is the same block only for one block per core.
        let one_block = self.segments.is_none() || self.blocks_per_core == 1;
        let plain = self.multicast
            && self.batches == 1
            && one_block
            && self.wide.is_none()
            && self.stream.is_none()
            && self.k_split == 1;
        let rows = self.grid.1 as usize * parts;
        if !plain || parts < 2 || rows > target.grid_y as usize {
            return None;
        }
        self.k_split = parts;
        Some(self)
    }

    /// The kernel's whole grid `(x, y)`: its `grid`, repeated down the grid for each part of a
    /// split K ([`Partition::k_split`]).
    pub fn kernel_grid(&self) -> (u32, u32) {
        (self.grid.0, self.grid.1 * self.k_split.max(1) as u32)
    }

    /// The cores the kernel runs on: `cores_used`, times the parts of a split K.
    pub fn all_cores(&self) -> usize {
        self.cores_used * self.k_split.max(1)
    }

    /// Grid rows one block row's segments fill: more than one only for
    /// [`Partition::segments_over_rows`].
    pub fn segment_rows(&self) -> usize {
        match self.segments {
            Some(_) if self.multicast && self.batches == 1 => {
                self.grid.1 as usize / self.row_blocks.max(1)
            }
            _ => 1,
        }
    }

    /// Lays out a batched kernel whose blocks span whole rows (attention's heads) so that the
    /// cores of a grid row work on the same batch at each step, and the batch's whole right
    /// operands (keys, values) are multicast along the row: a batch's row blocks fill
    /// `row_blocks / grid_x` grid rows, and each such group of grid rows takes its share of
    /// the batches, one per step. `None` when the row blocks do not fill at least two cores
    /// of a grid row, or the batches do not divide among the groups.
    pub fn share_batches(self, target: &Target) -> Option<Partition> {
        if self.col_blocks != 1 || self.batches < 2 {
            return None;
        }
        let (gx, gy) = (target.grid_x as usize, target.grid_y as usize);
        let across = divisors(self.row_blocks)
            .into_iter()
            .rfind(|&d| d <= gx)
            .filter(|&d| d > 1)?;
        let group_rows = self.row_blocks / across;
        let groups = divisors(self.batches)
            .into_iter()
            .rfind(|&d| d * group_rows <= gy)?;
        let per_core = self.batches / groups;
        Some(self.shared_over((across, group_rows * groups), per_core))
    }

    /// Spreads the row blocks of a batched kernel laid out with shared batches
    /// ([`Partition::share_batches`]) as mirrored pairs (`r` and `row_blocks - 1 - r`, the
    /// same work together under a causal mask) over the target's cores in row order, ignoring
    /// the grid rows: pair `u` of all batches' pairs goes to core `u % cores` at steps
    /// `2 (u / cores)` and the one after, on the fewest cores that take the fewest steps.
    /// The cores of a grid row that take the same batch at a step share its right operands
    /// along the row. Where the batches do not divide over the grid's rows (GPT-2's 12 heads
    /// of 16 row blocks on Blackhole's 11x10 cores: 3 blocks on 64 cores as shared batches)
    /// the pairs fill the grid (2 blocks on 96 cores). `None` for an odd number of row blocks,
    /// or when the pairs would take no fewer steps per core than the shared batches.
    pub fn pairs_over_cores(mut self, target: &Target) -> Option<Partition> {
        let (gx, cores) = (target.grid_x as usize, target.cores());
        let pairs = self.batches * self.row_blocks / 2;
        let steps = pairs.div_ceil(cores.max(1));
        let used = pairs.div_ceil(steps.max(1));
        if !self.row_blocks.is_multiple_of(2) || pairs == 0 || 2 * steps >= self.blocks_per_core {
            return None;
        }
        self.blocks_per_core = 2 * steps;
        self.cores_used = used;
        self.grid = (gx.min(used) as u32, used.div_ceil(gx) as u32);
        self.mirrored = true;
        self.class_steps = None;
        self.pair_cores = Some(used);
        Some(self)
    }

    /// The batch and row block that the core at `(x, y)` of a causal kernel's grid takes at
    /// step `i`, if any: with shared batches its group's batch and [`Partition::row_block_at`],
    /// with pairs over the cores ([`Partition::pairs_over_cores`]) its pair's.
    pub fn causal_block_at(&self, (x, y): (usize, usize), i: usize) -> Option<(usize, usize)> {
        let gx = self.grid.0 as usize;
        let Some(cores) = self.pair_cores else {
            let group_rows = self.group_rows();
            let batch = y / group_rows * self.blocks_per_core + i;
            return Some((batch, self.row_block_at((y % group_rows) * gx + x, i)));
        };
        let (core, pairs) = (y * gx + x, self.row_blocks / 2);
        let unit = i / 2 * cores + core;
        if core >= cores || unit >= self.batches * pairs {
            return None;
        }
        let base = unit % pairs;
        let rem = match i % 2 {
            0 => base,
            _ => self.row_blocks - 1 - base,
        };
        Some((unit / pairs, rem))
    }

    /// Whether a load every batch shares ([`super::body::Load::batch_shared`], a causal mask
    /// over heads) is read once per core rather than per block: with shared batches
    /// ([`Partition::share_batches`]) a core's blocks are one row block of successive batches,
    /// which read the same tiles of it. The first group's core reads them and sends them to the
    /// cores of the other groups that take the same row block.
    pub fn keeps_batch_shared(&self) -> bool {
        self.multicast && self.batches > 1 && self.pair_cores.is_none()
    }

    /// The partition on a `grid` whose every core takes `per_core` blocks, its operands
    /// multicast.
    fn shared_over(mut self, grid: (usize, usize), per_core: usize) -> Partition {
        self.blocks_per_core = per_core;
        self.cores_used = grid.0 * grid.1;
        self.grid = (grid.0 as u32, grid.1 as u32);
        self.guarded = false;
        self.multicast = true;
        self
    }

    /// Grid rows one batch's row blocks fill when the batches are shared
    /// ([`Partition::share_batches`]).
    pub fn group_rows(&self) -> usize {
        self.row_blocks / (self.grid.0 as usize).max(1)
    }

    /// The row block that the core at position `base` of its batch group takes at step `i`
    /// with shared batches ([`Partition::mirrored`], [`Partition::class_steps`]).
    pub fn row_block_at(&self, base: usize, i: usize) -> usize {
        if let Some(cs) = self.class_steps.filter(|cs| i >= cs.from) {
            let class = cs.class_at(base / cs.rows, i - cs.from);
            return class * cs.rows + base % cs.rows;
        }
        if self.mirrored && i % 2 == 1 {
            self.row_blocks - 1 - base
        } else {
            base
        }
    }

    /// The empty partition of a host step (no blocks, no cores).
    pub fn none() -> Partition {
        Partition {
            block: (0, 0),
            row_blocks: 0,
            col_blocks: 0,
            batches: 0,
            k_block: None,
            k_chunks: 0,
            k_split: 1,
            blocks: 0,
            blocks_per_core: 0,
            cores_used: 0,
            grid: (0, 0),
            across: false,
            guarded: false,
            double_buffered: false,
            wide: None,
            stream: None,
            multicast: false,
            segments: None,
            mirrored: false,
            class_steps: None,
            pair_cores: None,
            overlap: (0, 0),
        }
    }

    /// The kernel's grid on the device's axes `(x, y)`: its own grid, swapped when it lies
    /// across the device's ([`Partition::across`]).
    pub fn device_grid(&self) -> (u32, u32) {
        let (x, y) = self.kernel_grid();
        match self.across {
            true => (y, x),
            false => (x, y),
        }
    }

    /// A one-line description for plans.
    pub fn describe(&self) -> String {
        let mut s = format!(
            "{} block(s) of {}x{} tiles",
            self.blocks, self.block.0, self.block.1
        );
        if self.batches > 1 {
            s += &format!(" over {} batches", self.batches);
        }
        match (self.k_block, self.k_split) {
            (Some(k), 1) => {
                s += &format!(", K streamed in {} chunk(s) of {k} tiles", self.k_chunks)
            }
            (Some(k), parts) => {
                s += &format!(
                    ", K split in {parts} parts over {parts} copies of the grid's rows, each \
                     streamed in {} chunk(s) of {k} tiles, the partial sums added on the first \
                     copy's cores",
                    self.k_chunks
                )
            }
            (None, _) => {}
        }
        if let Some(w) = self.wide {
            s += &format!(
                ", the chained product's columns in {} chunk(s) of {w} tiles",
                self.col_blocks
            );
        }
        if let Some((chunk, chunks)) = self.stream {
            s += &format!(", the hidden layer streamed in {chunks} chunk(s) of {chunk} tiles");
        }
        if let Some(n) = self.segments {
            s += &format!(", each row's columns in {n} segments on {n} cores");
        }
        let (over_rows, over_cols) = self.overlap;
        if over_rows > 0 {
            s += &format!(", the last block row overlapping the one before by {over_rows} tile(s)");
        }
        if over_cols > 0 {
            s += &format!(
                ", the last block column overlapping the one before by {over_cols} tile(s)"
            );
        }
        if self.pair_cores.is_some() {
            s += ", mirrored pairs of row blocks over the cores in row order, each batch's right \
                  operands multicast along the part of a grid row that takes it";
        } else if self.multicast && self.batches > 1 {
            s += ", each batch's right operands multicast along its grid row";
        } else if self.segment_rows() > 1 {
            s += ", A multicast along grid rows, B read by each core";
        } else if self.multicast {
            s += ", A multicast along grid rows and B down grid columns";
        }
        let (gx, gy) = self.kernel_grid();
        s += &format!(
            ", {} per core on {} core(s) (grid {gx}x{gy}{}){}",
            self.blocks_per_core,
            self.all_cores(),
            match (self.across, gx == gy) {
                (false, _) => String::new(),
                (true, true) =>
                    ", across the device's grid, its rows along the device's columns".into(),
                (true, false) => format!(", across the device's grid as {gy}x{gx}"),
            },
            if self.double_buffered {
                ""
            } else {
                ", single-buffered to fit L1"
            }
        );
        s
    }
}

/// The divisors of `n` in increasing order.
pub fn divisors(n: usize) -> Vec<usize> {
    (1..=n).filter(|d| n.is_multiple_of(*d)).collect()
}

/// Blocks bigger than this many tiles are only chosen when the work needs them (whole rows).
pub const PREFERRED_BLOCK_TILES: usize = 16;

/// Sort key for candidate blocks: keep as many cores busy as there is work for (144 blocks on
/// 64 cores are 3 per core on 48, no more parallel than 48 blocks), then blocks up to
/// [`PREFERRED_BLOCK_TILES`] tiles (bigger transfers), then the smallest blocks beyond that,
/// then double buffering.
pub fn preference(
    blocks: usize,
    tiles: usize,
    double: bool,
    target: &Target,
) -> (usize, usize, usize, bool) {
    let per_core = blocks.div_ceil(target.cores().max(1)).max(1);
    let parallel = blocks.div_ceil(per_core);
    (
        usize::MAX - parallel,
        usize::MAX - tiles.min(PREFERRED_BLOCK_TILES),
        tiles,
        !double,
    )
}

/// Three steps of shared batches that give every core about the same work when a row block's
/// work grows with its class (`class + 1` key chunks for class `class` of `classes`): at the
/// first a core takes the block of its own class `q`, at the second class `(q + classes / 2)
/// % classes`, at the third class `(k - 2q) % m`, where `(k, m)` is `(classes - 1, classes)`
/// for an odd number of classes and `(classes - 2, classes + 1)` for an even one. Each is a
/// permutation of the classes, and the three add up to `3 (classes - 1) / 2`, or one of the
/// two integers around it, for every `q`: the least the largest sum can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ClassSteps {
    /// Row blocks per class.
    pub rows: usize,
    /// Classes.
    pub classes: usize,
    /// The first of the three steps.
    pub from: usize,
}

impl ClassSteps {
    /// The class a core of class `q` takes at step `t` (0, 1 or 2) of the three.
    pub fn class_at(&self, q: usize, t: usize) -> usize {
        let n = self.classes;
        match t {
            0 => q,
            1 => (q + n / 2) % n,
            _ => {
                let (k, m) = self.third();
                (k + 2 * m - 2 * q % m) % m
            }
        }
    }

    /// `(k, m)` of the third step's class `(k - 2q) % m`.
    pub fn third(&self) -> (usize, usize) {
        let n = self.classes;
        if n % 2 == 1 {
            (n - 1, n)
        } else {
            (n - 2, n + 1)
        }
    }
}

#[cfg(test)]
mod class_steps_tests {
    use super::ClassSteps;

    #[test]
    fn three_class_steps_are_permutations_whose_sums_are_as_even_as_integers_allow() {
        for classes in 1..=12 {
            let cs = ClassSteps {
                rows: 1,
                classes,
                from: 0,
            };
            let mut most = 0;
            for t in 0..3 {
                let mut seen: Vec<usize> = (0..classes).map(|q| cs.class_at(q, t)).collect();
                seen.sort();
                assert_eq!(
                    seen,
                    (0..classes).collect::<Vec<_>>(),
                    "{classes} classes, step {t}"
                );
            }
            for q in 0..classes {
                most = most.max((0..3).map(|t| cs.class_at(q, t)).sum::<usize>());
            }
            // The sums total 3 * classes * (classes - 1) / 2: the largest is at least their mean.
            assert_eq!(most, (3 * (classes - 1)).div_ceil(2), "{classes} classes");
        }
    }
}

#[cfg(test)]
mod pairs_tests {
    use super::Partition;
    use crate::plan::testing::small_grid;

    /// Shared batches of `heads` heads of `row_blocks` row blocks on an `x` by `y` grid.
    fn shared(heads: usize, row_blocks: usize, (x, y): (u32, u32)) -> Option<Partition> {
        let (_, target) = small_grid(x, y);
        Partition::spread((1, 32), (heads, row_blocks, 1), &target).share_batches(&target)
    }

    #[test]
    fn pairs_over_the_cores_take_every_row_block_once_as_mirrored_pairs() {
        // GPT-2's 12 heads of 16 row blocks: 3 steps on 8x8 cores of an 11x10 grid as shared
        // batches, 2 (one pair) on 96 of its cores as pairs. 12 heads of 32 row blocks, or 24
        // of 16: 6 steps on 64 cores, 4 on 96. An 8x8 grid takes no fewer steps as pairs.
        for (heads, row_blocks, grid, cores, steps) in [
            (12, 16, (11, 10), 96, 2),
            (12, 32, (11, 10), 96, 4),
            (24, 16, (11, 10), 96, 4),
            (12, 16, (10, 11), 96, 2),
        ] {
            let (_, target) = small_grid(grid.0, grid.1);
            let p = shared(heads, row_blocks, grid).unwrap();
            assert!(p.blocks_per_core > steps, "{p:?}");
            let p = p.pairs_over_cores(&target).unwrap();
            assert_eq!((p.pair_cores, p.blocks_per_core), (Some(cores), steps));
            assert_eq!(p.cores_used, cores);
            let (gx, gy) = (p.grid.0 as usize, p.grid.1 as usize);
            assert!(gx * gy >= cores && gx <= grid.0 as usize && gy <= grid.1 as usize);
            let mut taken = vec![0; heads * row_blocks];
            for y in 0..gy {
                for x in 0..gx {
                    let blocks: Vec<_> = (0..steps)
                        .filter_map(|i| p.causal_block_at((x, y), i))
                        .collect();
                    for pair in blocks.chunks(2) {
                        // Each step pair is one batch's row block and its mirror.
                        let [(b0, r0), (b1, r1)] = pair else {
                            panic!("a pair cut in two at ({x}, {y}): {blocks:?}");
                        };
                        assert_eq!((b0, r0 + r1), (b1, row_blocks - 1));
                    }
                    for (b, r) in blocks {
                        taken[b * row_blocks + r] += 1;
                    }
                }
            }
            assert!(taken.iter().all(|&t| t == 1), "{heads}x{row_blocks}");
        }
        assert!(shared(12, 16, (8, 8))
            .unwrap()
            .pairs_over_cores(&small_grid(8, 8).1)
            .is_none());
    }

    #[test]
    fn a_kernel_across_the_device_s_grid_names_the_device_s_axes() {
        // 96 pairs on the swapped view of an 11x10 grid: 10x10 cores, the kernel's rows along
        // the device's columns; a grid that is not square gives its shape on the device's axes.
        let (_, swapped) = small_grid(10, 11);
        let mut p = shared(12, 16, (10, 11))
            .unwrap()
            .pairs_over_cores(&swapped)
            .unwrap();
        p.across = true;
        assert_eq!(p.grid, (10, 10));
        let summary = p.describe();
        assert!(
            summary.contains(
                "(grid 10x10, across the device's grid, its rows along the device's columns)"
            ),
            "{summary}"
        );
        p.grid = (10, 9);
        assert!(
            p.describe()
                .contains("(grid 10x9, across the device's grid as 9x10)"),
            "{}",
            p.describe()
        );
    }
}
