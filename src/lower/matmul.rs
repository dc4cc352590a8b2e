//! The matmul kernel template: output blocks over the grid, K streamed through the operand
//! buffers in chunks (each chunk's product added to a running sum, the guide's pattern 4 with
//! the add fused after the matmul), B optionally read as `(N, K)` tiles and transposed in L1, and
//! the elementwise epilogue applied to each finished block before it is written. A left operand
//! the kernel normalizes ([`crate::plan::matmul_info::RowNorm`]; its names and stages are the
//! `row_norm` module's) has its squares summed per row as the first product's K chunks pass (on
//! the cores of a grid row that take the same rows, each core the chunks it multicasts, or with
//! fewer chunks than cores the last chunk on every core past it, the partial sums then
//! exchanged through pipes by the reader), and every product's rows scaled by the resulting
//! `rsqrt`.

use ttfuse_runtime::ttl::ast::{BinOp, BoolOp, CmpOp, Expr, Kernel, Stmt};

use super::blocks::{
    block_loop, block_loop_after, constants, coords, coords_of, this_core, Coords, Names,
};
use super::body_kernel::{
    kernel, load_reads, output_coords, output_writes, params, stream_constants,
};
use super::compute::{compute_thread, Buffer, Naming};
use super::emit::{
    add, assign, compare, for_range, for_range_from, if_else, if_less, index, int, make_cb, mul,
    name, read_into, reserve, span, store, wait, with,
};
use super::exchange;
use super::multicast::{shared_read, Along};
use super::row_norm::{NormPart, RowNormNames};
use super::split_k;
use crate::plan::body::Body;
use crate::plan::heads::HeadView;
use crate::plan::matmul_info::{row_norm_sharers, GatherInfo, MatmulInfo, OtherProduct};
use crate::plan::schedule::Schedule;
use crate::plan::segments::kernel_exchanges;
use crate::plan::{Partition, PlannedKernel};

/// Block geometry names of matmul kernels.
pub const NAMES: Names = Names {
    block_rows: "BLOCK_M",
    block_cols: "BLOCK_N",
    col_blocks: "N_BLOCKS",
    batch_rows: Some("M_TILES"),
};

/// Lowers a planned matmul kernel.
pub fn lower(k: &PlannedKernel, body: &Body, sched: &Schedule, info: &MatmulInfo) -> Kernel {
    if let Some(causal) = &info.causal {
        return super::causal::lower(k, body, sched, info, causal);
    }
    let l = Lowering::new(k, body, sched, info);
    let c = coords(&k.partition, &NAMES);
    let compute = l.compute_thread(&c);
    let [read, write] = l.data_movement(&c);
    let threads = match k.partition.k_split > 1 {
        true => l.split_threads(&c, [compute, read, write]),
        false => [compute, read, write],
    };
    kernel(k, l.params(), l.setup(), threads)
}

/// What the phases of [`lower`] share: the kernel, its body and schedule, its matmul, and the
/// names of its buffers.
struct Lowering<'a> {
    k: &'a PlannedKernel,
    body: &'a Body,
    sched: &'a Schedule,
    info: &'a MatmulInfo,
    naming: Naming<'a>,
    /// K chunks.
    kc: usize,
    /// A's buffer and its waited block.
    a_cb: String,
    a_v: String,
    /// The first product's names, and each further product's value and names.
    first: Product,
    others: Vec<(usize, Product)>,
    /// A left operand the kernel normalizes.
    norm: Option<RowNormNames>,
}

impl<'a> Lowering<'a> {
    fn new(
        k: &'a PlannedKernel,
        body: &'a Body,
        sched: &'a Schedule,
        info: &'a MatmulInfo,
    ) -> Self {
        let p = &k.partition;
        let naming = Naming::new(body, sched);
        let kc = p.k_chunks;
        let others = info
            .others
            .iter()
            .map(|op| (op.value, Product::new(&op.b_param, &op.acc_stem)))
            .collect();
        let sharers = row_norm_sharers(info, p, kc);
        let norm = info
            .norm
            .as_ref()
            .map(|rn| RowNormNames::new(rn, &naming, 1 + info.others.len(), sharers, p));
        Lowering {
            k,
            body,
            sched,
            info,
            naming,
            kc,
            a_cb: format!("{}_cb", info.a_stem),
            a_v: format!("{}_v", info.a_stem),
            first: Product::new(&info.b_stem, &info.acc_stem),
            others,
            norm,
        }
    }

    /// The name of B's rows per batch: `N_TILES` when B is read transposed, else `K_TILES`.
    fn b_rows_name(&self) -> &'static str {
        match self.info.b_transposed {
            true => "N_TILES",
            false => "K_TILES",
        }
    }

    /// The kernel's constants and circular buffers.
    fn setup(&self) -> Vec<Stmt> {
        let (p, info, kc) = (&self.k.partition, self.info, self.kc);
        let bk = p.k_block.unwrap_or(info.kt);
        let mut setup = constants(p, &NAMES, info.mt);
        setup.push(assign("BLOCK_K", int(bk)));
        if let Some(input) = self.info.norm_input() {
            setup.push(assign("IN_BLOCK_K", int(input.bk)));
            setup.push(assign("IN_K_CHUNKS", int(input.kt / input.bk)));
        }
        if kc > 1 {
            setup.push(assign("K_CHUNKS", int(kc)));
        }
        if info.b_batched && info.b_heads.is_none() {
            setup.push(assign(
                self.b_rows_name(),
                int(if info.b_transposed { info.nt } else { info.kt }),
            ));
        }
        setup.extend(stream_constants(self.body));
        setup.extend(self.sched.cbs.iter().map(make_cb));
        setup
    }

    /// The kernel's parameters: its operands, then the body's tensors.
    fn params(&self) -> Vec<String> {
        let info = self.info;
        let mut operands = vec![info.a_param.clone()];
        if info.b_param != info.a_param {
            operands.push(info.b_param.clone());
        }
        if let Some(g) = &info.a_gather {
            operands.push(g.table_param.clone());
        }
        operands.extend(info.others.iter().map(|op| op.b_param.clone()));
        if let Some(input) = self.info.norm_input() {
            operands.extend([input.a_param.clone(), input.b_param.clone()]);
            operands.extend(input.adds.iter().map(|add| add.param.clone()));
        }
        params(self.body, &operands)
    }

    /// One K chunk's product into `dst_cb` (reserved as `dst`), after the first chunk added to
    /// the running sum in the same stage; only the first product reads B transposed. `part`:
    /// what the chunk does for a normalized A.
    fn chunk(
        &self,
        pr: &Product,
        transposed: bool,
        summed: bool,
        (dst_cb, dst): (&str, &str),
        part: NormPart,
    ) -> Vec<Stmt> {
        let (info, a_cb, a_v, norm) = (self.info, &self.a_cb, &self.a_v, &self.norm);
        let mut out = Vec::new();
        if let Some(g) = &info.a_gather {
            out.push(gather_stage(g, a_cb, &info.a_stem));
        }
        let b_item = if transposed {
            let bt = Buffer::new(&info.bt_stem);
            out.push(with(
                vec![
                    (wait(&pr.b.cb), pr.b.v.clone()),
                    (reserve(&bt.cb), bt.o.clone()),
                ],
                vec![store(
                    &bt.o,
                    Expr::path("ttl.transpose").call(vec![name(&pr.b.v), name(&bt.o)]),
                )],
            ));
            (wait(&bt.cb), bt.v)
        } else {
            (wait(&pr.b.cb), pr.b.v.clone())
        };
        let b_v = b_item.1.clone();
        // The chunk's product of A block `a`.
        let product = |a: &str| {
            let mut product =
                Expr::path("ttl.math.matmul").call(vec![name(a), name(&b_v), name(dst)]);
            if summed {
                product = Expr::bin(BinOp::Add, product, name(&pr.acc.v));
            }
            if let NormPart::Scaled(n) = part {
                product = Expr::bin(BinOp::Mul, product, name(&n.scale_bcast_name()));
            }
            store(dst, product)
        };
        let mut items = vec![b_item];
        if summed {
            items.push((wait(&pr.acc.cb), pr.acc.v.clone()));
        }
        let mut stores = Vec::new();
        if let NormPart::Scaled(n) = part {
            items.push((wait(&n.scale.cb), n.scale.v.clone()));
            stores.push(n.scale_bcast(dst));
        }
        items.push((reserve(dst_cb), dst.to_string()));
        let mut squares = Vec::new();
        if let NormPart::Squares(n) = part {
            let sq = store(&n.squares.o, Expr::bin(BinOp::Mul, name(a_v), name(a_v)));
            match n.sharers {
                None => {
                    items.push((reserve(&n.squares.cb), n.squares.o.clone()));
                    squares.push(sq);
                }
                Some(_) => squares.push(if_else(
                    n.mine(),
                    vec![with(
                        vec![(reserve(&n.squares.cb), n.squares.o.clone())],
                        vec![sq],
                    )],
                    vec![],
                )),
            }
        }
        let a_wait = (wait(a_cb), a_v.clone());
        let from_buffer = with(
            [vec![a_wait], items.clone()].concat(),
            [stores.clone(), vec![product(a_v)], squares].concat(),
        );
        // A kept chunk: the core's own chunk is the one it keeps, the others arrive in A's
        // buffer.
        out.push(match norm.as_ref().and_then(|n| n.kept_chunk()) {
            Some((own, kept)) => if_else(
                compare(CmpOp::Eq, name("kc"), own),
                vec![with(items, [stores, vec![product(kept)]].concat())],
                vec![from_buffer],
            ),
            None => from_buffer,
        });
        if let NormPart::Squares(n) = part {
            out.push(n.mean_square_stage(summed));
        }
        out
    }

    /// The stage computing matmul value `v` (the first product or a further one): its K
    /// chunks, and a normalized A's squares, shared sums and scales.
    fn matmul_stage(&self, v: usize) -> Vec<Stmt> {
        let (info, naming, norm) = (self.info, &self.naming, &self.norm);
        let (first, others) = (&self.first, &self.others);
        let (pr, transposed, is_first) = match others.iter().find(|(ov, _)| *ov == v) {
            Some((_, pr)) => (pr, false, false),
            None => (first, info.b_transposed, true),
        };
        let target_cb = naming.cb(v);
        let target = naming.reserved(v);
        let acc = (pr.acc.cb.as_str(), pr.acc.o.as_str());
        // A normalized A: the first product's chunks also sum squares, and its sum is scaled
        // once the rows' scale is known; the later products scale their last chunk. A
        // kept chunk's scale is known before the products ([`RowNormNames::prologue`]), so
        // every product scales its last chunk.
        let kept = norm.as_ref().is_some_and(|n| n.kept.is_some());
        // A split K: the first copy's sum ends in the running sum, the other parts' added
        // after ([`split_k::reduction`]).
        let split = self.k.partition.k_split > 1;
        let (each, last, last_part) = match &norm {
            None if split => (NormPart::Plain, acc, NormPart::Plain),
            None => (
                NormPart::Plain,
                (target_cb.as_str(), target.as_str()),
                NormPart::Plain,
            ),
            Some(n) if is_first && !kept => (NormPart::Squares(n), acc, NormPart::Squares(n)),
            Some(n) => (
                NormPart::Plain,
                (target_cb.as_str(), target.as_str()),
                NormPart::Scaled(n),
            ),
        };
        // Shared row sums: the chunk's index decides which core sums its squares; for a
        // kept chunk, whether the chunk is the core's own.
        let indexed = matches!(each, NormPart::Squares(n) if n.sharers.is_some()) || kept;
        let mut out = self.k_chunks((pr, transposed), each, (last, last_part), indexed);
        if let (Some(n), true, false) = (&norm, is_first, kept) {
            out.extend(n.shared_sums_stages());
            out.extend(n.scales_stage(n.products));
            out.push(n.scaled_stage(pr, (&target_cb, &target)));
        }
        if split {
            let part = Buffer::new(&info.part_stem);
            let parts = self.k.partition.k_split;
            let into = (target_cb.as_str(), target.as_str());
            out.extend(split_k::reduction(&pr.acc, &part, into, parts));
        }
        out
    }

    /// Product `pr`'s K chunks (its B read `transposed` or not): the first into its running
    /// sum, the middle ones added to it, each doing `each` for a normalized A, and the last
    /// into `last` doing `last_part`; a single chunk straight into `last`. With `indexed`,
    /// each chunk's stage binds its index, `kc`.
    fn k_chunks(
        &self,
        (pr, transposed): (&Product, bool),
        each: NormPart,
        (last, last_part): ((&str, &str), NormPart),
        indexed: bool,
    ) -> Vec<Stmt> {
        let acc = (pr.acc.cb.as_str(), pr.acc.o.as_str());
        let at = |stmts: Vec<Stmt>, kc: Expr| match indexed {
            true => [vec![assign("kc", kc)], stmts].concat(),
            false => stmts,
        };
        if self.kc == 1 {
            return at(self.chunk(pr, transposed, false, last, last_part), int(0));
        }
        let mut out = at(self.chunk(pr, transposed, false, acc, each), int(0));
        let middle = self.chunk(pr, transposed, true, acc, each);
        let last_kc = last_chunk();
        if self.kc > 2 {
            out.push(match indexed {
                true => for_range_from("kc", int(1), last_kc.clone(), middle),
                false => for_range("_", Expr::bin(BinOp::Sub, name("K_CHUNKS"), int(2)), middle),
            });
        }
        out.extend(at(
            self.chunk(pr, transposed, true, last, last_part),
            last_kc,
        ));
        out
    }

    /// The K chunks of one block of each product of a kernel with K split, on the cores past
    /// the first copy: each product's last chunk's sum into the partial sums' buffer, which the
    /// writer sends to the first copy.
    fn part_chunks(&self) -> Vec<Stmt> {
        let part = Buffer::new(&self.info.part_stem);
        let into = ((part.cb.as_str(), part.o.as_str()), NormPart::Plain);
        std::iter::once((&self.first, self.info.b_transposed))
            .chain(self.others.iter().map(|(_, pr)| (pr, false)))
            .flat_map(|product| self.k_chunks(product, NormPart::Plain, into, false))
            .collect()
    }

    /// Each product's B buffer and the source of its K chunk at `k`: the first product's
    /// (`first`, [`Self::sources`]), then each further product's.
    fn b_sources(&self, c: &Coords, first: Expr) -> Vec<(String, Expr)> {
        let others = self
            .info
            .others
            .iter()
            .map(|op| (format!("{}_cb", op.b_param), self.other_b_source(op, c)));
        std::iter::once((self.first.b.cb.clone(), first))
            .chain(others)
            .collect()
    }

    /// The threads of a kernel with K split ([`Partition::k_split`]): `first`, the first
    /// copy's, on its cores; the other parts' on the rest ([`split_k::part_threads`]).
    fn split_threads(&self, c: &Coords, first: [Vec<Stmt>; 3]) -> [Vec<Stmt>; 3] {
        let sources = self.sources(c);
        let part_cb = format!("{}_cb", self.info.part_stem);
        let a = (self.a_cb.as_str(), sources.a);
        let bs = self.b_sources(c, sources.b);
        let own_b = self.k.partition.segment_rows() > 1;
        let rest = split_k::part_threads(self.part_chunks(), c, (a, &bs, own_b), &part_cb);
        let [compute, read, write] = first;
        let [part_compute, part_read, part_write] = rest;
        [
            split_k::by_part(compute, part_compute),
            split_k::by_part(read, part_read),
            split_k::by_part(write, part_write),
        ]
    }

    /// The compute thread: every block's products ([`Self::matmul_stage`]) and epilogue, with
    /// a normalized A's prologue.
    fn compute_thread(&self, c: &Coords) -> Vec<Stmt> {
        let p = &self.k.partition;
        let around = self
            .norm
            .as_ref()
            .map_or_else(Default::default, |n| n.prologue(p.blocks_per_core));
        let stage = |v: usize| self.matmul_stage(v);
        let mut compute = compute_thread(self.body, self.sched, p, &stage, c, &around);
        if let Some(n) = self.norm.as_ref().filter(|n| n.sharers.is_some()) {
            compute.splice(0..0, [vec![this_core()], n.own_binding()].concat());
        }
        compute
    }

    /// The reader and writer threads: A's and B's chunks (multicast over the grid, or shared
    /// by a grid row's batches, or each block's own), the epilogue's loads and the outputs.
    fn data_movement(&self, c: &Coords) -> [Vec<Stmt>; 2] {
        let p = &self.k.partition;
        // Shared batches: the cores of a grid row work on one batch per step `i`, and take turns
        // to read its right operands.
        let shared_batches = p.multicast && p.batches > 1;
        let shared_matrix = |cb: &str, src: Expr| shared_read(cb, src, Along::Row, Some(name("i")));
        let matrix_read: &dyn Fn(&str, Expr) -> Stmt = if shared_batches {
            &shared_matrix
        } else {
            &read_into
        };
        let loads = load_reads(
            self.body,
            self.sched,
            &self.naming,
            c,
            &NAMES,
            matrix_read,
            p,
        );
        let sources = self.sources(c);
        if p.multicast && !shared_batches {
            self.multicast_threads(c, &sources, loads)
        } else {
            self.own_read_threads(c, sources, loads, matrix_read)
        }
    }

    /// The first tile of the K chunk a block reads: `k` when K is streamed in chunks, else 0.
    fn k_at(&self) -> Expr {
        if self.kc > 1 {
            name("k")
        } else {
            int(0)
        }
    }

    /// Where a block's K chunk `k` of A and of the first product's B is read from, with the
    /// block's statements that name their rows.
    fn sources(&self, c: &Coords) -> Sources {
        let info = self.info;
        let mut stmts = Vec::new();
        let b_row = if info.b_batched && info.b_heads.is_none() {
            stmts.push(assign(
                "b_row",
                mul(c.batch.clone(), name(self.b_rows_name())),
            ));
            name("b_row")
        } else {
            int(0)
        };
        // Head views: batch `h` is the column range starting at `col0 + h * head_tiles` of the
        // source, whose rows are one batch's rows.
        let head_col = |v: &HeadView| add(int(v.col0), mul(c.batch.clone(), int(v.head_tiles)));
        let k_at = self.k_at();
        let a = match &info.a_heads {
            Some(v) => {
                stmts.push(assign("a_row", c.row_in_batch()));
                index(
                    &info.a_param,
                    vec![
                        span(name("a_row"), name("BLOCK_M")),
                        span(add(head_col(v), k_at.clone()), name("BLOCK_K")),
                    ],
                )
            }
            None => index(
                &info.a_param,
                vec![
                    span(c.row.clone(), name("BLOCK_M")),
                    span(k_at.clone(), name("BLOCK_K")),
                ],
            ),
        };
        let b = if let Some(v) = &info.b_heads {
            if info.b_transposed {
                index(
                    &info.b_param,
                    vec![
                        span(c.col.clone(), name("BLOCK_N")),
                        span(add(head_col(v), k_at.clone()), name("BLOCK_K")),
                    ],
                )
            } else {
                index(
                    &info.b_param,
                    vec![
                        span(k_at.clone(), name("BLOCK_K")),
                        span(add(head_col(v), c.col.clone()), name("BLOCK_N")),
                    ],
                )
            }
        } else if info.b_transposed {
            index(
                &info.b_param,
                vec![
                    span(add(b_row.clone(), c.col.clone()), name("BLOCK_N")),
                    span(k_at.clone(), name("BLOCK_K")),
                ],
            )
        } else {
            index(
                &info.b_param,
                vec![
                    span(add(b_row.clone(), k_at.clone()), name("BLOCK_K")),
                    span(c.col.clone(), name("BLOCK_N")),
                ],
            )
        };
        Sources { a, b, stmts }
    }

    /// Where a block's K chunk of a further product's B is read from: a 2-D matrix as it is.
    fn other_b_source(&self, op: &OtherProduct, c: &Coords) -> Expr {
        index(
            &op.b_param,
            vec![
                span(self.k_at(), name("BLOCK_K")),
                span(c.col.clone(), name("BLOCK_N")),
            ],
        )
    }

    /// The reader and writer of a kernel whose operands are multicast over the grid
    /// ([`Partition::multicast`]), given the epilogue's `(hoisted, per_block)` loads.
    ///
    /// A's chunks go along the grid row in the reader, B's down the column in the writer
    /// (before it writes the block), each thread waiting only on its own transfers. Every
    /// further product streams A again with its own B, after the per-block loads its epilogue
    /// needs (as in [`Self::own_read_threads`]). With several (narrower) blocks per core, the
    /// reader writes each block's results once it has sent the next block's first A chunks,
    /// while the core computes that block, and the last block's after the loop: the writer,
    /// busy with B, would hold up the next block's B chunks.
    fn multicast_threads(
        &self,
        c: &Coords,
        sources: &Sources,
        (hoisted, per_block): (Vec<Stmt>, Vec<Stmt>),
    ) -> [Vec<Stmt>; 2] {
        let (body, sched, info) = (self.body, self.sched, self.info);
        let (p, naming, kc, norm) = (&self.k.partition, &self.naming, self.kc, &self.norm);
        let a_cb = &self.a_cb;
        let mut read = hoisted;
        let several = p.blocks_per_core > 1;
        let kc_at = (kc > 1).then(|| name("kc"));
        let products = 1 + info.others.len();
        let mut a_reads = Vec::new();
        for product in 0..products {
            let a_read = match norm.as_ref().filter(|n| n.kept.is_some()) {
                Some(n) => n.kept_chunk_read(a_cb),
                None => shared_read(a_cb, sources.a.clone(), Along::Row, kc_at.clone()),
            };
            let mut reads = vec![a_read];
            if several && product == 0 {
                reads.insert(0, earlier_block_writes(body, naming, p, kc));
            }
            a_reads.extend(k_chunk_loop(kc, reads));
            // This core's partial row sums of a normalized A to the grid row's other cores, and
            // theirs, once the first product's chunks have passed: the thread that sends A
            // along the grid row sends them too, so that each pipe carries its blocks in the
            // order of one thread's program.
            if let (0, Some(n)) = (product, norm) {
                if n.sharers.is_some() && n.kept.is_none() {
                    a_reads.extend(n.exchange());
                }
            }
        }
        let mut inner = c.stmts.clone();
        if info.others.is_empty() {
            inner.extend(a_reads);
            inner.extend(per_block);
        } else {
            inner.extend(per_block);
            inner.extend(a_reads);
        }
        // An epilogue in segments ([`Partition::segments`]): the segments of a block row
        // exchange their partial row reductions, the reader receiving the others', the writer
        // sending its own.
        let exchanged = kernel_exchanges(body, sched, p);
        inner.extend(exchange::receives(&exchanged));
        let (before, after) = norm
            .as_ref()
            .map_or_else(Default::default, |n| n.reader_prologue(&info.a_param));
        read.extend(block_loop_after(p, true, before, inner));
        read.extend(after);
        if several {
            read.extend(block_writes_at(
                body,
                naming,
                p,
                add(
                    mul(name("core"), name("BLOCKS_PER_CORE")),
                    Expr::bin(BinOp::Sub, name("BLOCKS_PER_CORE"), int(1)),
                ),
            ));
        }
        // A block row's segments over several grid rows share no column of B: each core
        // reads its own ([`Partition::segments_over_rows`]).
        let own_b = p.segment_rows() > 1;
        let mut inner = c.stmts.clone();
        for (cb, src) in self.b_sources(c, sources.b.clone()) {
            let read = match own_b {
                true => read_into(&cb, src),
                false => shared_read(&cb, src, Along::Column, kc_at.clone()),
            };
            inner.extend(k_chunk_loop(kc, vec![read]));
            // The other parts' sums of the product of a split K, before the next product's
            // chunks and the epilogue's exchanges, which wait for them.
            if p.k_split > 1 {
                inner.extend(split_k::receives(&format!("{}_cb", info.part_stem)));
            }
        }
        inner.extend(exchange::sends(&exchanged));
        if !several {
            inner.extend(block_writes(body, naming, c, p));
        }
        let before = norm
            .as_ref()
            .map_or_else(Vec::new, |n| n.writer_prologue(&info.a_param));
        let write = block_loop_after(p, true, before, inner);
        [read, write]
    }

    /// The reader and writer of a kernel whose blocks read their own operands (a gathered A
    /// among them), or whose grid rows share each batch's B (`matrix_read`), given the
    /// epilogue's `(hoisted, per_block)` loads. Every further product streams A again, with its
    /// own B (a 2-D matrix), in the order the compute thread takes them. Their kernel's
    /// per-block loads come first: an epilogue op between two products waits for them while
    /// the next product's chunks stream in.
    fn own_read_threads(
        &self,
        c: &Coords,
        sources: Sources,
        (hoisted, per_block): (Vec<Stmt>, Vec<Stmt>),
        matrix_read: &dyn Fn(&str, Expr) -> Stmt,
    ) -> [Vec<Stmt>; 2] {
        let (info, p, kc, a_cb) = (self.info, &self.k.partition, self.kc, &self.a_cb);
        let mut read = hoisted;
        let mut inner = c.stmts.clone();
        inner.extend(sources.stmts);
        let mut reads = match &info.a_gather {
            Some(g) => {
                let kc_at = if kc > 1 { name("kc") } else { int(0) };
                gather_reads(g, &info.a_param, &c.row, kc_at, p.block.0)
            }
            None => vec![read_into(a_cb, sources.a.clone())],
        };
        reads.push(matrix_read(&self.first.b.cb, sources.b));
        let other_reads = info.others.iter().map(|op| {
            vec![
                read_into(a_cb, sources.a.clone()),
                read_into(&format!("{}_cb", op.b_param), self.other_b_source(op, c)),
            ]
        });
        let all_reads: Vec<Vec<Stmt>> = std::iter::once(reads).chain(other_reads).collect();
        if !info.others.is_empty() {
            inner.extend(per_block.clone());
        }
        for reads in all_reads {
            inner.extend(k_chunk_loop(kc, reads));
        }
        if info.others.is_empty() {
            inner.extend(per_block);
        }
        read.extend(block_loop(p, true, inner));

        let mut inner = c.stmts.clone();
        inner.extend(block_writes(self.body, &self.naming, c, p));
        let write = block_loop(p, true, inner);
        [read, write]
    }
}

/// Where a matmul kernel's block reads its K chunks of A and of the first product's B.
struct Sources {
    /// A's chunk.
    a: Expr,
    /// The first product's B chunk.
    b: Expr,
    /// The block's statements naming the rows they read (`a_row`, `b_row`).
    stmts: Vec<Stmt>,
}

/// `reads` once per K chunk (`for kc in range(K_CHUNKS)`, with `k` its first tile) when K is
/// streamed in `kc > 1` chunks, else once.
fn k_chunk_loop(kc: usize, reads: Vec<Stmt>) -> Vec<Stmt> {
    if kc <= 1 {
        return reads;
    }
    let mut body = vec![assign("k", mul(name("kc"), name("BLOCK_K")))];
    body.extend(reads);
    vec![for_range("kc", name("K_CHUNKS"), body)]
}

/// The K chunk of a core's next block at which its reader writes the block before
/// ([`earlier_block_writes`]): once the A buffer's two chunks of the next block are sent.
const WRITE_AT_CHUNK: usize = 2;

/// The reader's writes of the core's block before this one (`block - 1`), at K chunk
/// [`WRITE_AT_CHUNK`] (or the last of `kc` chunks) of every block but the first.
fn earlier_block_writes(body: &Body, naming: &Naming, p: &Partition, kc: usize) -> Stmt {
    let first = compare(CmpOp::Gt, name("i"), int(0));
    let cond = if kc > 1 {
        let at = compare(CmpOp::Eq, name("kc"), int(WRITE_AT_CHUNK.min(kc - 1)));
        Expr::Bool2(BoolOp::And, Box::new(first), Box::new(at))
    } else {
        first
    };
    let before = Expr::bin(BinOp::Sub, name("block"), int(1));
    if_else(cond, block_writes_at(body, naming, p, before), vec![])
}

/// The writes of block `block` (an expression), its coordinates bound to `*_w` names.
fn block_writes_at(body: &Body, naming: &Naming, p: &Partition, block: Expr) -> Vec<Stmt> {
    let mut out = vec![assign("w_block", block)];
    let c = coords_of(p, &NAMES, name("w_block"), "_w");
    out.extend(c.stmts.clone());
    out.extend(block_writes(body, naming, &c, p));
    out
}

/// The writer's statements for one block: its output coordinates and the output writes.
pub(super) fn block_writes(body: &Body, naming: &Naming, c: &Coords, p: &Partition) -> Vec<Stmt> {
    let mut out = Vec::new();
    let (out_row, out_col, out_wide) = output_coords(body.head_write, c, &mut out);
    let at = (&out_row, &out_col, &out_wide);
    out.extend(output_writes(body, naming, at, p.wide.is_some(), &NAMES));
    out
}

/// The compute stage of a gathered left operand ([`crate::plan::matmul_info::GatherInfo`]): the
/// window's rows of the block's pixel row tiles, selected by the gather table tiles with one
/// matmul (exact: every output is one pixel value times one), into A's buffer.
fn gather_stage(g: &GatherInfo, a_cb: &str, a_stem: &str) -> Stmt {
    let (table_v, pixels_v) = (
        format!("{}_v", g.table_param),
        format!("{}_v", g.pixels_stem),
    );
    let a_o = format!("{a_stem}_o");
    let select =
        Expr::path("ttl.math.matmul").call(vec![name(&table_v), name(&pixels_v), name(&a_o)]);
    with(
        vec![
            (wait(&format!("{}_cb", g.table_param)), table_v),
            (wait(&format!("{}_cb", g.pixels_stem)), pixels_v),
            (reserve(a_cb), a_o.clone()),
        ],
        vec![store(&a_o, select)],
    )
}

/// The reader's part of a gathered left operand for K chunk `kc` (window offset `kc`) of the
/// block at row tile `row`: the offset's row shift, the first of the `BLOCK_M + 1` pixel row
/// tiles it reaches (kept inside the matrix; the table masks rows outside the image), then the
/// table's tiles for this block and offset, and the pixel row tiles.
fn gather_reads(g: &GatherInfo, pixels: &str, row: &Expr, kc: Expr, rows: usize) -> Vec<Stmt> {
    let [kw, row_step, col_step, origin] = g.gather.shift_terms();
    let offset_row = Expr::bin(BinOp::FloorDiv, kc.clone(), int(kw));
    let offset_col = Expr::bin(BinOp::Mod, kc.clone(), int(kw));
    let shift = Expr::bin(
        BinOp::Sub,
        add(
            mul(offset_row, int(row_step)),
            mul(offset_col, int(col_step)),
        ),
        int(origin),
    );
    let last = int(g.gather.row_tiles() - rows - 1);
    let span_rows = || add(name("BLOCK_M"), int(1));
    vec![
        assign("shift", shift),
        assign(
            "first",
            add(
                row.clone(),
                Expr::bin(BinOp::FloorDiv, name("shift"), int(32)),
            ),
        ),
        if_less(name("first"), int(0), vec![assign("first", int(0))]),
        if_less(last.clone(), name("first"), vec![assign("first", last)]),
        read_into(
            &format!("{}_cb", g.table_param),
            index(
                &g.table_param,
                vec![
                    span(row.clone(), name("BLOCK_M")),
                    span(mul(kc, span_rows()), span_rows()),
                ],
            ),
        ),
        read_into(
            &format!("{}_cb", g.pixels_stem),
            index(
                pixels,
                vec![
                    span(name("first"), span_rows()),
                    span(int(0), name("BLOCK_K")),
                ],
            ),
        ),
    ]
}

/// `K_CHUNKS - 1`, the last K chunk.
pub(super) fn last_chunk() -> Expr {
    Expr::bin(BinOp::Sub, name("K_CHUNKS"), int(1))
}

/// The buffers and block names of one product of a matmul kernel: its B's and its K chunks'
/// running sum.
pub(super) struct Product {
    /// Its B's buffer.
    pub(super) b: Buffer,
    /// Its K chunks' running sum.
    pub(super) acc: Buffer,
}

impl Product {
    /// The names of a product reading B into `{b}_cb` and accumulating in `{acc}_cb`.
    fn new(b: &str, acc: &str) -> Product {
        Product {
            b: Buffer::new(b),
            acc: Buffer::new(acc),
        }
    }
}
