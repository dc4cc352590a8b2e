//! The names and stages of a left operand a matmul kernel normalizes ([`RowNorm`]): its
//! squares' row sums as the first product's K chunks pass, their exchange along the grid row,
//! the rows' scale, and a chunk kept in L1 (centered for a LayerNorm, or computed by the
//! kernel from the norm's input, [`crate::plan::matmul_info::NormInput`]).

use ttfuse_runtime::ttl::ast::{BinOp, BoolOp, CmpOp, Expr, IndexItem, Stmt};

use super::blocks::last_block_shifted;
use super::compute::{Buffer, Naming};
use super::emit::{
    assign, compare, copy, for_range, if_else, index, int, math, math_dims, mul, name, pipe, pop,
    read_into, reserve, span, store, wait, with,
};
use super::matmul::{last_chunk, Product};
use super::multicast::{send_along, shared_read, Along};
use crate::plan::matmul_info::{NormInput, RowNorm};
use crate::plan::Partition;

/// The buffer names of a left operand the kernel normalizes ([`RowNorm`]).
pub(super) struct RowNormNames {
    /// A's chunk squared; then (below) the rows' running mean square, its `rsqrt` and the scale
    /// each product takes.
    pub(super) squares: Buffer,
    mean_square: Buffer,
    rstd: Buffer,
    pub(super) scale: Buffer,
    /// The waited scaler (`1 / K`) and epsilon tiles.
    scaler_v: String,
    eps_v: String,
    /// Products, each scaled by its own block of the rows' scale.
    pub(super) products: usize,
    /// Cores of the grid row sharing the row sums ([`row_norm_sharers`]), if they do, and the
    /// buffers they share them through.
    pub(super) sharers: Option<usize>,
    /// The grid row has more cores than K chunks: the cores from the last chunk's on all sum
    /// the last chunk, and only the first `K_CHUNKS` send ([`RowNormNames::own`]).
    spare_cores: bool,
    /// The last block row overlaps the one before ([`Partition::overlap`]): the last grid
    /// row's rows start `ROW_OVERLAP` tiles early.
    row_overlap: bool,
    send: Buffer,
    peers: Buffer,
    total: Buffer,
    /// The buffers of a chunk kept in L1 ([`RowNorm::kept`]).
    pub(super) kept: Option<KeptNames>,
}

/// The buffer names of a chunk kept in L1 ([`crate::plan::matmul_info::KeptChunk`]).
pub(super) struct KeptNames {
    /// Whether the chunk is centered (a LayerNorm's).
    centers: bool,
    own_chunk: Buffer,
    /// The copy of the (centered) chunk the reader multicasts.
    sent: Buffer,
    kept: Buffer,
    /// The product computing the norm's input, if the kernel does.
    input: Option<InputNames>,
}

/// The names of a norm input the kernel computes ([`NormInput`]).
struct InputNames {
    a: Buffer,
    b: Buffer,
    acc: Buffer,
    written: Buffer,
    a_param: String,
    b_param: String,
    /// Each add's buffer and parameter, and whether it is a row vector.
    adds: Vec<(Buffer, String, bool)>,
    /// K chunks of the product.
    chunks: usize,
}

impl InputNames {
    fn new(input: &NormInput) -> InputNames {
        InputNames {
            a: Buffer::new(&input.a_stem),
            b: Buffer::new(&input.b_stem),
            acc: Buffer::new(&input.acc_stem),
            written: Buffer::new(&input.written_stem),
            a_param: input.a_param.clone(),
            b_param: input.b_param.clone(),
            adds: input
                .adds
                .iter()
                .map(|add| (Buffer::new(&add.param), add.param.clone(), add.row_vector))
                .collect(),
            chunks: input.kt / input.bk,
        }
    }

    /// The compute's stages of the core's chunk of the norm's input: the product's K chunks
    /// into the running sum, then the sum plus the adds into `own` (the chunk the norm's
    /// statistics read) and into the chunk the writer writes, where `writes` holds, if given
    /// ([`InputNames::writes`]).
    fn stages(&self, own: &Buffer, writes: Option<Expr>) -> Vec<Stmt> {
        let (a, b, acc, written) = (&self.a, &self.b, &self.acc, &self.written);
        let chunk = |summed: bool| {
            let mut items = vec![(wait(&a.cb), a.v.clone()), (wait(&b.cb), b.v.clone())];
            let mut value =
                Expr::path("ttl.math.matmul").call(vec![name(&a.v), name(&b.v), name(&acc.o)]);
            if summed {
                items.push((wait(&acc.cb), acc.v.clone()));
                value = Expr::bin(BinOp::Add, value, name(&acc.v));
            }
            items.push((reserve(&acc.cb), acc.o.clone()));
            with(items, vec![store(&acc.o, value)])
        };
        let mut out = vec![chunk(false)];
        if self.chunks > 1 {
            out.push(for_range(
                "_",
                Expr::bin(BinOp::Sub, name("IN_K_CHUNKS"), int(1)),
                vec![chunk(true)],
            ));
        }
        let mut items = vec![(wait(&acc.cb), acc.v.clone())];
        let mut stores = Vec::new();
        let mut sum = name(&acc.v);
        for (buffer, _, row_vector) in &self.adds {
            items.push((wait(&buffer.cb), buffer.v.clone()));
            let term = match row_vector {
                true => {
                    let bcast = format!("{}_bcast", buffer.v);
                    stores.push(assign(
                        &bcast,
                        math_dims("broadcast", vec![name(&buffer.v), name(&own.o)], &[0]),
                    ));
                    name(&bcast)
                }
                false => name(&buffer.v),
            };
            sum = Expr::bin(BinOp::Add, sum, term);
        }
        items.push((reserve(&own.cb), own.o.clone()));
        stores.push(store(&own.o, sum.clone()));
        let kept_only = with(items.clone(), stores.clone());
        items.push((reserve(&written.cb), written.o.clone()));
        stores.push(store(&written.o, sum));
        let both = with(items, stores);
        out.push(match writes {
            Some(cond) => if_else(cond, vec![both], vec![kept_only]),
            None => both,
        });
        out
    }

    /// The reader's part: the product's chunks of `a` (this grid row's rows), multicast along
    /// the grid row, then the adds' columns of this core's chunk (at `col`).
    fn reads(&self, rows: IndexItem, col: &Expr) -> Vec<Stmt> {
        let a = index(
            &self.a_param,
            vec![rows.clone(), span(name("k"), name("IN_BLOCK_K"))],
        );
        let mut out = vec![in_chunk_loop(shared_read(
            &self.a.cb,
            a,
            Along::Row,
            Some(name("kc")),
        ))];
        for (buffer, param, row_vector) in &self.adds {
            let rows = match row_vector {
                true => span(int(0), int(1)),
                false => rows.clone(),
            };
            let src = index(param, vec![rows, span(col.clone(), name("BLOCK_K"))]);
            out.push(read_into(&buffer.cb, src));
        }
        out
    }

    /// The writer's part: the product's chunks of `b` (this core's columns, at `col`),
    /// multicast down the grid column, then the core's chunk written to `a` (A's tensor) where
    /// `writes` holds, if given (the cores past the last chunk's compute that chunk again, and
    /// leave writing it to its core).
    fn writes(&self, a: &str, (rows, col): (IndexItem, &Expr), writes: Option<Expr>) -> Vec<Stmt> {
        let b = index(
            &self.b_param,
            vec![
                span(name("k"), name("IN_BLOCK_K")),
                span(col.clone(), name("BLOCK_K")),
            ],
        );
        let dst = index(a, vec![rows, span(col.clone(), name("BLOCK_K"))]);
        let write = with(
            vec![(wait(&self.written.cb), "blk".into())],
            copy(name("blk"), dst),
        );
        vec![
            in_chunk_loop(shared_read(&self.b.cb, b, Along::Column, Some(name("kc")))),
            match writes {
                Some(cond) => if_else(cond, vec![write], vec![]),
                None => write,
            },
        ]
    }
}

/// `read` once per K chunk of a computed norm input's product (`for kc in
/// range(IN_K_CHUNKS)`, with `k` its first tile).
fn in_chunk_loop(read: Stmt) -> Stmt {
    for_range(
        "kc",
        name("IN_K_CHUNKS"),
        vec![assign("k", mul(name("kc"), name("IN_BLOCK_K"))), read],
    )
}

impl RowNormNames {
    pub(super) fn new(
        rn: &RowNorm,
        naming: &Naming,
        products: usize,
        sharers: Option<usize>,
        p: &Partition,
    ) -> RowNormNames {
        RowNormNames {
            squares: Buffer::new(&rn.squares_stem),
            mean_square: Buffer::new(&rn.mean_square_stem),
            rstd: Buffer::new(&rn.rstd_stem),
            scale: Buffer::new(&rn.scale_stem),
            scaler_v: naming.waited(rn.scaler),
            eps_v: naming.waited(rn.eps),
            products,
            sharers,
            spare_cores: sharers.is_some_and(|s| s < p.grid.0 as usize),
            row_overlap: p.overlap.0 > 0,
            send: Buffer::new(&rn.send_stem),
            peers: Buffer::new(&rn.peers_stem),
            total: Buffer::new(&rn.total_stem),
            kept: rn.kept.as_ref().map(|ce| KeptNames {
                centers: ce.centered,
                own_chunk: Buffer::new(&ce.own_chunk_stem),
                sent: Buffer::new(&ce.sent_stem),
                kept: Buffer::new(&ce.kept_stem),
                input: ce.input.as_ref().map(InputNames::new),
            }),
        }
    }

    /// The compute's statements around its blocks for a kept chunk ([`RowNorm::kept`]);
    /// nothing when the first product's chunks sum an RMSNorm's squares. Before: the chunk
    /// (computed first, when the kernel computes A); for a LayerNorm its row sums (scaled by
    /// `1 / K`), shared into the rows' mean, and the chunk centered; the chunk, once for the
    /// reader to multicast (on the cores that send it) and once kept for this core's own
    /// products, and its (centered) squares' row sums, shared into the variance or mean
    /// square; the rows' scale, copied once per product of each of the core's `blocks` blocks
    /// (which all take the same rows); the kept chunk waited for. After: the kept chunk
    /// released.
    pub(super) fn prologue(&self, blocks: usize) -> (Vec<Stmt>, Vec<Stmt>) {
        let Some(ce) = &self.kept else {
            return Default::default();
        };
        let (own, ms, sq, total) = (&ce.own_chunk, &self.mean_square, &self.squares, &self.total);
        // A LayerNorm's chunk less its rows' mean (the shared total, broadcast), an RMSNorm's
        // as it is.
        let bcast = format!("{}_bcast", total.v);
        let chunk = || match ce.centers {
            true => Expr::bin(BinOp::Sub, name(&own.v), name(&bcast)),
            false => name(&own.v),
        };
        let keep = |sent: bool| {
            let mut items = vec![
                (reserve(&sq.cb), sq.o.clone()),
                (reserve(&ce.kept.cb), ce.kept.o.clone()),
            ];
            let mut stores = vec![
                store(&sq.o, Expr::bin(BinOp::Mul, chunk(), chunk())),
                store(&ce.kept.o, chunk()),
            ];
            if ce.centers {
                items.insert(0, (wait(&total.cb), total.v.clone()));
                stores.insert(
                    0,
                    assign(
                        &bcast,
                        math_dims("broadcast", vec![name(&total.v), name(&sq.o)], &[1]),
                    ),
                );
            }
            if sent {
                items.push((reserve(&ce.sent.cb), ce.sent.o.clone()));
                stores.push(store(&ce.sent.o, chunk()));
            }
            with(items, stores)
        };
        let mut stages = Vec::new();
        if ce.centers {
            stages.push(with(
                vec![(reserve(&ms.cb), ms.o.clone())],
                vec![store(
                    &ms.o,
                    math_dims(
                        "reduce_sum",
                        vec![name(&own.v), name(&self.scaler_v), name(&ms.o)],
                        &[0],
                    ),
                )],
            ));
            stages.extend(self.shared_sums_stages());
        }
        stages.extend([self.by_sender(keep), self.mean_square_sum(false)]);
        let mut before = match &ce.input {
            Some(input) => input.stages(own, self.written_by()),
            None => Vec::new(),
        };
        before.push(with(vec![(wait(&own.cb), own.v.clone())], stages));
        before.extend(self.shared_sums_stages());
        before.extend(self.scales_stage(self.products * blocks));
        before.push(assign(&ce.kept.v, wait(&ce.kept.cb)));
        (before, vec![pop(&ce.kept.cb)])
    }

    /// For a kept chunk, this core's own K chunk (`own`) and the name of the chunk it
    /// keeps for it ([`RowNormNames::prologue`]).
    pub(super) fn kept_chunk(&self) -> Option<(Expr, &str)> {
        let ce = self.kept.as_ref()?;
        Some((self.own(), ce.kept.v.as_str()))
    }

    /// The reader's statements around the core's blocks for a kept chunk
    /// ([`RowNormNames::prologue`]); nothing otherwise. Before: the chunk this core multicasts
    /// (of its grid row's row block of `a`; on the cores past the last chunk's, that one, from
    /// its core; or the operands of the product computing it), a LayerNorm's mean's partial
    /// sums exchanged, the chunk waited for (by the cores that send it), and the variance's or
    /// mean square's partial sums exchanged. After: the chunk released.
    pub(super) fn reader_prologue(&self, a: &str) -> (Vec<Stmt>, Vec<Stmt>) {
        let Some(ce) = &self.kept else {
            return Default::default();
        };
        let col = mul(self.own(), name("BLOCK_K"));
        let rows = self.grid_row_rows();
        let chunk = index(a, vec![rows.clone(), span(col.clone(), name("BLOCK_K"))]);
        // With spare cores, the last chunk's core passes its chunk on to the cores past it,
        // which sum it too: each chunk is read from DRAM once. A computed chunk the cores past
        // the last chunk's compute again themselves.
        let own_read = match (&ce.input, self.spare_cores) {
            (Some(input), _) => input.reads(rows, &col),
            (None, true) => vec![if_else(
                compare(CmpOp::Lt, name("core_x"), last_chunk()),
                vec![read_into(&ce.own_chunk.cb, chunk.clone())],
                vec![send_along(
                    &ce.own_chunk.cb,
                    chunk,
                    Along::Row,
                    vec![assign("sender", last_chunk())],
                    (vec![], compare(CmpOp::Ge, name("peer"), name("K_CHUNKS"))),
                )],
            )],
            (None, false) => vec![read_into(&ce.own_chunk.cb, chunk)],
        };
        let mut before = self.own_binding();
        before.extend(own_read);
        if ce.centers {
            before.extend([self.sends(), self.receives()]);
        }
        before.extend([
            self.on_senders(assign("own_blk", wait(&ce.sent.cb))),
            self.sends(),
            self.receives(),
        ]);
        (before, vec![self.on_senders(pop(&ce.sent.cb))])
    }

    /// The writer's statements before the core's blocks: for a norm input the kernel computes,
    /// its part of the product and the core's chunk written to `a` (A's tensor; with spare
    /// cores, by the cores that send it only); nothing otherwise.
    pub(super) fn writer_prologue(&self, a: &str) -> Vec<Stmt> {
        let Some(input) = self.kept.as_ref().and_then(|ce| ce.input.as_ref()) else {
            return Vec::new();
        };
        let col = mul(self.own(), name("BLOCK_K"));
        let mut out = self.own_binding();
        out.extend(input.writes(a, (self.grid_row_rows(), &col), self.written_by()));
        out
    }

    /// The reader's K chunk `kc` with kept chunks: the core's own multicast from the
    /// chunk it holds to the grid row's other cores (the last chunk's core to those before it,
    /// the cores past it keeping that chunk themselves); any other received into `a_cb` from
    /// its core's pipe.
    pub(super) fn kept_chunk_read(&self, a_cb: &str) -> Stmt {
        let receive = with(
            vec![(reserve(a_cb), "blk".into())],
            copy(
                pipe(
                    (name("kc"), name("core_y")),
                    (name("core_x"), name("core_y")),
                ),
                name("blk"),
            ),
        );
        if_else(
            compare(CmpOp::Eq, name("kc"), self.own()),
            vec![self.on_senders(self.to_peers("own_blk"))],
            vec![receive],
        )
    }

    /// The row tiles of A that the blocks of this core's grid row take (each grid row one block
    /// row, as kept chunks need): `core_y * BLOCK_M` on, moved back by `ROW_OVERLAP` on the
    /// last grid row when the last block row overlaps the one before (`first - first //
    /// LAST_ROW * ROW_OVERLAP`, as the blocks' own rows are).
    fn grid_row_rows(&self) -> IndexItem {
        let first = mul(name("core_y"), name("BLOCK_M"));
        let first = match self.row_overlap {
            true => last_block_shifted(first, "ROW"),
            false => first,
        };
        span(first, name("BLOCK_M"))
    }

    /// The sharer whose partial this core's equals: itself (`core_x`), or with spare cores
    /// ([`RowNormNames::spare_cores`]) for the cores past the last chunk's, that chunk's core
    /// (`own`, bound by [`RowNormNames::own_binding`]).
    fn own(&self) -> Expr {
        match self.spare_cores {
            true => name("own"),
            false => name("core_x"),
        }
    }

    /// Binds `own` ([`RowNormNames::own`]) in a thread that has bound `core_x`.
    pub(super) fn own_binding(&self) -> Vec<Stmt> {
        if !self.spare_cores {
            return Vec::new();
        }
        vec![if_else(
            self.sends_partial(),
            vec![assign("own", name("core_x"))],
            vec![assign("own", last_chunk())],
        )]
    }

    /// Whether this core sums chunk `kc`'s squares: `kc % GRID_X == core_x`, or with spare
    /// cores `kc == own`.
    pub(super) fn mine(&self) -> Expr {
        let chunk = match self.spare_cores {
            true => name("kc"),
            false => Expr::bin(BinOp::Mod, name("kc"), name("GRID_X")),
        };
        compare(CmpOp::Eq, chunk, self.own())
    }

    /// Which cores write a computed norm input's chunk: with spare cores, those that send
    /// their partials ([`Self::sends_partial`]); without, every core (`None`).
    fn written_by(&self) -> Option<Expr> {
        self.spare_cores.then(|| self.sends_partial())
    }

    /// Whether this core sends its partial: with spare cores, only the first `K_CHUNKS`.
    fn sends_partial(&self) -> Expr {
        compare(CmpOp::Lt, name("core_x"), name("K_CHUNKS"))
    }

    /// `by(true)` on the cores that send their partials ([`Self::sends_partial`]), `by(false)`
    /// on the others: with no spare cores, `by(true)` alone.
    fn by_sender(&self, by: impl Fn(bool) -> Stmt) -> Stmt {
        match self.spare_cores {
            true => if_else(self.sends_partial(), vec![by(true)], vec![by(false)]),
            false => by(true),
        }
    }

    /// `stmt` on the cores that send their partials only.
    fn on_senders(&self, stmt: Stmt) -> Stmt {
        match self.spare_cores {
            true => if_else(self.sends_partial(), vec![stmt], vec![]),
            false => stmt,
        }
    }

    /// The mean squares of the rows, shared: each core of the grid row sends its partial and
    /// starts the total with it, then adds every other core's. With spare cores, the cores
    /// past the last chunk's keep their partial (the last chunk's) to themselves.
    pub(super) fn shared_sums_stages(&self) -> Vec<Stmt> {
        let Some(sharers) = self.sharers else {
            return Vec::new();
        };
        let (ms, send, peers, total) = (&self.mean_square, &self.send, &self.peers, &self.total);
        let own_partial = |sent: bool| {
            let mut items = vec![(wait(&ms.cb), ms.v.clone())];
            let mut stores = vec![store(&total.o, name(&ms.v))];
            if sent {
                items.push((reserve(&send.cb), send.o.clone()));
                stores.insert(0, store(&send.o, name(&ms.v)));
            }
            items.push((reserve(&total.cb), total.o.clone()));
            with(items, stores)
        };
        let own = self.by_sender(own_partial);
        let add_peer = with(
            vec![
                (wait(&total.cb), total.v.clone()),
                (wait(&peers.cb), peers.v.clone()),
                (reserve(&total.cb), total.o.clone()),
            ],
            vec![store(
                &total.o,
                Expr::bin(BinOp::Add, name(&total.v), name(&peers.v)),
            )],
        );
        vec![own, for_range("_", int(sharers - 1), vec![add_peer])]
    }

    /// The reader's exchange of partial row sums: this core's sent to the grid row's other
    /// cores, then the other sharers' received (a pipe send does not wait for its receiver).
    pub(super) fn exchange(&self) -> Vec<Stmt> {
        [self.own_binding(), vec![self.sends(), self.receives()]].concat()
    }

    /// The receipt of the partial row sums of the grid row's other sharers.
    fn receives(&self) -> Stmt {
        let receive = with(
            vec![(reserve(&self.peers.cb), "blk".into())],
            copy(
                pipe(
                    (name("peer"), name("core_y")),
                    (name("core_x"), name("core_y")),
                ),
                name("blk"),
            ),
        );
        let sharers = match self.spare_cores {
            true => name("K_CHUNKS"),
            false => name("GRID_X"),
        };
        for_range(
            "peer",
            sharers,
            vec![if_else(
                compare(CmpOp::Ne, name("peer"), self.own()),
                vec![receive],
                vec![],
            )],
        )
    }

    /// The sending of this core's partial row sums to the grid row's other cores
    /// (with spare cores, the last chunk's core sends only to the cores before it, the others
    /// summing that chunk themselves, and the cores past it send nothing).
    fn sends(&self) -> Stmt {
        let sends = with(
            vec![(wait(&self.send.cb), "blk".into())],
            vec![self.to_peers("blk")],
        );
        self.on_senders(sends)
    }

    /// Block `block` sent to every core of the grid row that needs it from this one
    /// ([`Self::to_peer`]).
    fn to_peers(&self, block: &str) -> Stmt {
        let send = if_else(
            self.to_peer(),
            copy(
                name(block),
                pipe(
                    (name("core_x"), name("core_y")),
                    (name("peer"), name("core_y")),
                ),
            ),
            vec![],
        );
        for_range("peer", name("GRID_X"), vec![send])
    }

    /// Whether this core sends what it alone has (its partial, its centered chunk) to core
    /// `peer` of its grid row: to every other, but with spare cores the last chunk's core only
    /// to the cores before it (the cores past it compute the same themselves).
    fn to_peer(&self) -> Expr {
        let other = compare(CmpOp::Ne, name("peer"), name("core_x"));
        if !self.spare_cores {
            return other;
        }
        let last = last_chunk();
        let needs = Expr::Bool2(
            BoolOp::Or,
            Box::new(compare(CmpOp::Lt, name("peer"), last.clone())),
            Box::new(compare(CmpOp::Lt, name("core_x"), last)),
        );
        Expr::Bool2(BoolOp::And, Box::new(other), Box::new(needs))
    }

    /// A chunk's row sums of squares, scaled by `1 / K`, into the running mean square (added to
    /// it when `summed`). Shared over the grid row, on the core whose chunk it is, added when
    /// it is not the core's first (`kc >= GRID_X`).
    pub(super) fn mean_square_stage(&self, summed: bool) -> Stmt {
        if self.sharers.is_none() {
            return self.mean_square_sum(summed);
        }
        let later = compare(CmpOp::Ge, name("kc"), name("GRID_X"));
        if_else(
            self.mine(),
            vec![if_else(
                later,
                vec![self.mean_square_sum(true)],
                vec![self.mean_square_sum(false)],
            )],
            vec![],
        )
    }

    /// [`Self::mean_square_stage`] on this core: the chunk's row sums into the running mean
    /// square, added to it when `summed`.
    fn mean_square_sum(&self, summed: bool) -> Stmt {
        let (sq, ms) = (&self.squares, &self.mean_square);
        let mut value = math_dims(
            "reduce_sum",
            vec![name(&sq.v), name(&self.scaler_v), name(&ms.o)],
            &[0],
        );
        let mut items = vec![(wait(&sq.cb), sq.v.clone())];
        if summed {
            value = Expr::bin(BinOp::Add, value, name(&ms.v));
            items.push((wait(&ms.cb), ms.v.clone()));
        }
        items.push((reserve(&ms.cb), ms.o.clone()));
        with(items, vec![store(&ms.o, value)])
    }

    /// The rows' scale `rsqrt(mean square + eps)`, computed once and copied `copies` times
    /// (once for each product that it scales).
    pub(super) fn scales_stage(&self, copies: usize) -> Vec<Stmt> {
        let ms = match self.sharers {
            Some(_) => &self.total,
            None => &self.mean_square,
        };
        let (rstd, sc) = (&self.rstd, &self.scale);
        let eps = format!("{}_bcast", self.eps_v);
        let once = with(
            vec![
                (wait(&ms.cb), ms.v.clone()),
                (reserve(&rstd.cb), rstd.o.clone()),
            ],
            vec![
                assign(
                    &eps,
                    math_dims("broadcast", vec![name(&self.eps_v), name(&rstd.o)], &[0, 1]),
                ),
                store(
                    &rstd.o,
                    math(
                        "rsqrt",
                        vec![Expr::bin(BinOp::Add, name(&ms.v), name(&eps))],
                    ),
                ),
            ],
        );
        let copy = with(
            vec![(reserve(&sc.cb), sc.o.clone())],
            vec![store(&sc.o, name(&rstd.v))],
        );
        let copies = if copies > 1 {
            for_range("_", int(copies), vec![copy])
        } else {
            copy
        };
        vec![
            once,
            with(vec![(wait(&rstd.cb), rstd.v.clone())], vec![copies]),
        ]
    }

    /// The first product's sum scaled by the rows' scale into `target` (buffer, reserved
    /// block).
    pub(super) fn scaled_stage(&self, pr: &Product, (target_cb, target): (&str, &str)) -> Stmt {
        let sc = &self.scale;
        with(
            vec![
                (wait(&pr.acc.cb), pr.acc.v.clone()),
                (wait(&sc.cb), sc.v.clone()),
                (reserve(target_cb), target.to_string()),
            ],
            vec![
                self.scale_bcast(target),
                store(
                    target,
                    Expr::bin(BinOp::Mul, name(&pr.acc.v), name(&self.scale_bcast_name())),
                ),
            ],
        )
    }

    /// The rows' scale broadcast across the columns of block `out`, as its own statement (a
    /// broadcast starts its fusion chain).
    pub(super) fn scale_bcast(&self, out: &str) -> Stmt {
        assign(
            &self.scale_bcast_name(),
            math_dims("broadcast", vec![name(&self.scale.v), name(out)], &[1]),
        )
    }

    pub(super) fn scale_bcast_name(&self) -> String {
        format!("{}_bcast", self.scale.v)
    }
}

/// What one K chunk of a product does for a left operand the kernel normalizes.
#[derive(Clone, Copy)]
pub(super) enum NormPart<'n> {
    /// Nothing: A is not normalized, or a later product's chunk before its last.
    Plain,
    /// The first product's chunk: also squares A and adds the squares' row sums to the running
    /// mean square.
    Squares(&'n RowNormNames),
    /// A later product's last chunk: the sum scaled by the rows' scale.
    Scaled(&'n RowNormNames),
}
