//! The matmul kernel template: output blocks over the grid, K streamed through the operand
//! buffers in chunks (each chunk's product added to a running sum, the guide's pattern 4 with
//! the add fused after the matmul), B optionally read as `(N, K)` tiles and transposed in L1, and
//! the elementwise epilogue applied to each finished block before it is written. A left operand
//! the kernel normalizes ([`RowNorm`]) has its squares summed per row as the first product's K
//! chunks pass (on the cores of a grid row that take the same rows, each core the chunks it
//! multicasts, or with fewer chunks than cores the last chunk on every core past it, the
//! partial sums then exchanged through pipes by the reader), and every product's rows scaled
//! by the resulting `rsqrt`.

use ttfuse_runtime::ttl::ast::{BinOp, BoolOp, CmpOp, Expr, IndexItem, Kernel, Stmt};

use super::blocks::{
    block_loop, block_loop_after, constants, coords, coords_of, this_core, Coords, Names,
};
use super::body_kernel::{
    kernel, load_reads, output_coords, output_writes, params, stream_constants,
};
use super::compute::{compute_thread, Buffer, Naming};
use super::emit::{
    add, assign, compare, copy, for_range, for_range_from, if_else, if_less, index, int, make_cb,
    math, math_dims, mul, name, pipe, pop, read_into, reserve, span, store, wait, with,
};
use super::exchange;
use super::multicast::{send_along, shared_read, Along};
use crate::plan::body::Body;
use crate::plan::heads::HeadView;
use crate::plan::matmul_info::{
    row_norm_sharers, GatherInfo, MatmulInfo, NormInput, OtherProduct, RowNorm,
};
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
    let p = &k.partition;
    let naming = Naming::new(body, sched);
    let kc = p.k_chunks;
    let bk = p.k_block.unwrap_or(info.kt);

    let mut setup = constants(p, &NAMES, info.mt);
    setup.push(assign("BLOCK_K", int(bk)));
    let norm_input = info
        .norm
        .as_ref()
        .and_then(|rn| rn.kept.as_ref())
        .and_then(|ce| ce.input.as_ref());
    if let Some(input) = norm_input {
        setup.push(assign("IN_BLOCK_K", int(input.bk)));
        setup.push(assign("IN_K_CHUNKS", int(input.kt / input.bk)));
    }
    if kc > 1 {
        setup.push(assign("K_CHUNKS", int(kc)));
    }
    let b_rows_name = if info.b_transposed {
        "N_TILES"
    } else {
        "K_TILES"
    };
    if info.b_batched && info.b_heads.is_none() {
        setup.push(assign(
            b_rows_name,
            int(if info.b_transposed { info.nt } else { info.kt }),
        ));
    }
    setup.extend(stream_constants(body));
    setup.extend(sched.cbs.iter().map(make_cb));

    let a_cb = format!("{}_cb", info.a_stem);
    let a_v = format!("{}_v", info.a_stem);
    let first = Product::new(&info.b_stem, &info.acc_stem);
    let others: Vec<(usize, Product)> = info
        .others
        .iter()
        .map(|op| {
            let names = Product::new(&op.b_param, &op.acc_stem);
            (op.value, names)
        })
        .collect();

    let sharers = row_norm_sharers(info, p, kc);
    let norm = info
        .norm
        .as_ref()
        .map(|rn| RowNormNames::new(rn, &naming, 1 + info.others.len(), sharers, p.grid.0));
    // One K chunk's product into `dst_cb` (reserved as `dst`), after the first chunk added to
    // the running sum in the same stage; only the first product reads B transposed. `part`:
    // what the chunk does for a normalized A.
    let chunk = |pr: &Product,
                 transposed: bool,
                 summed: bool,
                 (dst_cb, dst): (&str, &str),
                 part: NormPart| {
        let mut out = Vec::new();
        if let Some(g) = &info.a_gather {
            out.push(gather_stage(g, &a_cb, &info.a_stem));
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
            let sq = store(&n.squares.o, Expr::bin(BinOp::Mul, name(&a_v), name(&a_v)));
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
        let a_wait = (wait(&a_cb), a_v.clone());
        let from_buffer = with(
            [vec![a_wait], items.clone()].concat(),
            [stores.clone(), vec![product(&a_v)], squares].concat(),
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
    };
    let matmul_stage = |v: usize| -> Vec<Stmt> {
        let (pr, transposed, is_first) = match others.iter().find(|(ov, _)| *ov == v) {
            Some((_, pr)) => (pr, false, false),
            None => (&first, info.b_transposed, true),
        };
        let target_cb = naming.cb(v);
        let target = naming.reserved(v);
        let acc = (pr.acc.cb.as_str(), pr.acc.o.as_str());
        // A normalized A: the first product's chunks also sum squares, and its sum is scaled
        // once the rows' scale is known; the later products scale their last chunk. A
        // kept chunk's scale is known before the products ([`RowNormNames::prologue`]), so
        // every product scales its last chunk.
        let kept = norm.as_ref().is_some_and(|n| n.kept.is_some());
        let (each, last, last_part) = match &norm {
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
        let at = |stmts: Vec<Stmt>, kc: Expr| match indexed {
            true => [vec![assign("kc", kc)], stmts].concat(),
            false => stmts,
        };
        let mut out = if kc == 1 {
            at(chunk(pr, transposed, false, last, last_part), int(0))
        } else {
            let mut out = at(chunk(pr, transposed, false, acc, each), int(0));
            let middle = chunk(pr, transposed, true, acc, each);
            let last_kc = last_chunk();
            if kc > 2 {
                out.push(match indexed {
                    true => for_range_from("kc", int(1), last_kc.clone(), middle),
                    false => {
                        for_range("_", Expr::bin(BinOp::Sub, name("K_CHUNKS"), int(2)), middle)
                    }
                });
            }
            out.extend(at(chunk(pr, transposed, true, last, last_part), last_kc));
            out
        };
        if let (Some(n), true, false) = (&norm, is_first, kept) {
            out.extend(n.shared_sums_stages());
            out.extend(n.scales_stage(n.products));
            out.push(n.scaled_stage(pr, (&target_cb, &target)));
        }
        out
    };
    let c = coords(p, &NAMES);
    let around = norm
        .as_ref()
        .map_or_else(Default::default, |n| n.prologue(p.blocks_per_core));
    let mut compute = compute_thread(body, sched, p, &matmul_stage, &c, &around);
    if let Some(n) = norm.as_ref().filter(|n| n.sharers.is_some()) {
        compute.splice(0..0, [vec![this_core()], n.own_binding()].concat());
    }

    // Shared batches: the cores of a grid row work on one batch per step `i`, and take turns
    // to read its right operands.
    let shared_batches = p.multicast && p.batches > 1;
    let shared_matrix = |cb: &str, src: Expr| shared_read(cb, src, Along::Row, Some(name("i")));
    let matrix_read: &dyn Fn(&str, Expr) -> Stmt = if shared_batches {
        &shared_matrix
    } else {
        &read_into
    };
    let (hoisted, per_block) = load_reads(body, sched, &naming, &c, &NAMES, matrix_read, p);
    let mut read = hoisted;
    let mut inner = c.stmts.clone();
    let b_row = if info.b_batched && info.b_heads.is_none() {
        inner.push(assign("b_row", mul(c.batch.clone(), name(b_rows_name))));
        name("b_row")
    } else {
        int(0)
    };
    // Head views: batch `h` is the column range starting at `col0 + h * head_tiles` of the
    // source, whose rows are one batch's rows.
    let head_col = |v: &HeadView| add(int(v.col0), mul(c.batch.clone(), int(v.head_tiles)));
    let k_at = if kc > 1 { name("k") } else { int(0) };
    let a_src = match &info.a_heads {
        Some(v) => {
            inner.push(assign("a_row", c.row_in_batch()));
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
    let b_src = if let Some(v) = &info.b_heads {
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
    let mut operands = vec![info.a_param.clone()];
    if info.b_param != info.a_param {
        operands.push(info.b_param.clone());
    }
    if let Some(g) = &info.a_gather {
        operands.push(g.table_param.clone());
    }
    operands.extend(info.others.iter().map(|op| op.b_param.clone()));
    if let Some(input) = norm_input {
        operands.extend([input.a_param.clone(), input.b_param.clone()]);
        operands.extend(input.adds.iter().map(|add| add.param.clone()));
    }
    let all_params = params(body, &operands);

    // A further product's B chunk: a 2-D matrix read as it is.
    let other_b_src = |op: &OtherProduct| {
        index(
            &op.b_param,
            vec![
                span(k_at.clone(), name("BLOCK_K")),
                span(c.col.clone(), name("BLOCK_N")),
            ],
        )
    };
    if p.multicast && !shared_batches {
        // A's chunks along the grid row in the reader, B's down the column in the writer
        // (before it writes the block), each thread waiting only on its own transfers. Every
        // further product streams A again with its own B, after the per-block loads its
        // epilogue needs (as below). With several (narrower) blocks per core, the reader
        // writes each block's results once it has sent the next block's first A chunks, while
        // the core computes that block, and the last block's after the loop: the writer, busy
        // with B, would hold up the next block's B chunks.
        let several = p.blocks_per_core > 1;
        let kc_at = (kc > 1).then(|| name("kc"));
        let products = 1 + info.others.len();
        let mut a_reads = Vec::new();
        for product in 0..products {
            let a_read = match norm.as_ref().filter(|n| n.kept.is_some()) {
                Some(n) => n.kept_chunk_read(&a_cb),
                None => shared_read(&a_cb, a_src.clone(), Along::Row, kc_at.clone()),
            };
            let mut reads = vec![a_read];
            if several && product == 0 {
                reads.insert(0, earlier_block_writes(body, &naming, p, kc));
            }
            a_reads.extend(k_chunk_loop(kc, reads));
            // This core's partial row sums of a normalized A to the grid row's other cores, and
            // theirs, once the first product's chunks have passed: the thread that sends A
            // along the grid row sends them too, so that each pipe carries its blocks in the
            // order of one thread's program.
            if let (0, Some(n), Some(_)) = (product, &norm, sharers) {
                if n.kept.is_none() {
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
                &naming,
                p,
                add(
                    mul(name("core"), name("BLOCKS_PER_CORE")),
                    Expr::bin(BinOp::Sub, name("BLOCKS_PER_CORE"), int(1)),
                ),
            ));
        }
        let other_bs = info
            .others
            .iter()
            .map(|op| (format!("{}_cb", op.b_param), other_b_src(op)));
        // A block row's segments over several grid rows share no column of B: each core
        // reads its own ([`Partition::segments_over_rows`]).
        let own_b = p.segment_rows() > 1;
        let mut inner = c.stmts.clone();
        let bs = std::iter::once((first.b.cb.clone(), b_src)).chain(other_bs);
        for (cb, src) in bs {
            let read = match own_b {
                true => read_into(&cb, src),
                false => shared_read(&cb, src, Along::Column, kc_at.clone()),
            };
            inner.extend(k_chunk_loop(kc, vec![read]));
        }
        inner.extend(exchange::sends(&exchanged));
        if !several {
            inner.extend(block_writes(body, &naming, &c, p));
        }
        let before = norm
            .as_ref()
            .map_or_else(Vec::new, |n| n.writer_prologue(&info.a_param));
        let write = block_loop_after(p, true, before, inner);
        return kernel(k, all_params, setup, [compute, read, write]);
    }

    let mut reads = match &info.a_gather {
        Some(g) => {
            let kc_at = if kc > 1 { name("kc") } else { int(0) };
            gather_reads(g, &info.a_param, &c.row, kc_at, p.block.0)
        }
        None => vec![read_into(&a_cb, a_src.clone())],
    };
    reads.push(if shared_batches {
        shared_matrix(&first.b.cb, b_src)
    } else {
        read_into(&first.b.cb, b_src)
    });
    // Every further product streams A again, with its own B (a 2-D matrix), in the order the
    // compute thread takes them. Their kernel's per-block loads come first: an epilogue op
    // between two products waits for them while the next product's chunks stream in.
    let other_reads = info.others.iter().map(|op| {
        vec![
            read_into(&a_cb, a_src.clone()),
            read_into(&format!("{}_cb", op.b_param), other_b_src(op)),
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
    inner.extend(block_writes(body, &naming, &c, p));
    let write = block_loop(p, true, inner);
    kernel(k, all_params, setup, [compute, read, write])
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

/// The buffer names of a left operand the kernel normalizes ([`RowNorm`]).
struct RowNormNames {
    squares: Buffer,
    mean_square: Buffer,
    rstd: Buffer,
    scale: Buffer,
    /// The waited scaler (`1 / K`) and epsilon tiles.
    scaler_v: String,
    eps_v: String,
    /// Products, each scaled by its own block of the rows' scale.
    products: usize,
    /// Cores of the grid row sharing the row sums ([`row_norm_sharers`]), if they do, and the
    /// buffers they share them through.
    sharers: Option<usize>,
    /// The grid row has more cores than K chunks: the cores from the last chunk's on all sum
    /// the last chunk, and only the first `K_CHUNKS` send ([`RowNormNames::own`]).
    spare_cores: bool,
    send: Buffer,
    peers: Buffer,
    total: Buffer,
    /// The buffers of a chunk kept in L1 ([`RowNorm::kept`]).
    kept: Option<KeptNames>,
}

/// The buffer names of a chunk kept in L1 ([`crate::plan::matmul_info::KeptChunk`]).
struct KeptNames {
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
    /// statistics read) and into the chunk the writer writes.
    fn stages(&self, own: &Buffer) -> Vec<Stmt> {
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
        items.push((reserve(&written.cb), written.o.clone()));
        stores.push(store(&own.o, sum.clone()));
        stores.push(store(&written.o, sum));
        out.push(with(items, stores));
        out
    }

    /// The reader's part: the product's chunks of `a` (this grid row's rows), multicast along
    /// the grid row, then the adds' columns of this core's chunk (at `col`).
    fn reads(&self, col: &Expr) -> Vec<Stmt> {
        let rows = grid_row_rows();
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
    /// multicast down the grid column, then the core's chunk written to `a` (A's tensor).
    fn writes(&self, a: &str, col: &Expr) -> Vec<Stmt> {
        let b = index(
            &self.b_param,
            vec![
                span(name("k"), name("IN_BLOCK_K")),
                span(col.clone(), name("BLOCK_K")),
            ],
        );
        let dst = index(a, vec![grid_row_rows(), span(col.clone(), name("BLOCK_K"))]);
        vec![
            in_chunk_loop(shared_read(&self.b.cb, b, Along::Column, Some(name("kc")))),
            with(
                vec![(wait(&self.written.cb), "blk".into())],
                copy(name("blk"), dst),
            ),
        ]
    }
}

/// The row tiles of A that the blocks of this core's grid row take (each grid row one block
/// row, as kept chunks need: `core_y * BLOCK_M` on).
fn grid_row_rows() -> IndexItem {
    span(mul(name("core_y"), name("BLOCK_M")), name("BLOCK_M"))
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
    fn new(
        rn: &RowNorm,
        naming: &Naming,
        products: usize,
        sharers: Option<usize>,
        grid_x: u32,
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
            spare_cores: sharers.is_some_and(|s| s < grid_x as usize),
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
    fn prologue(&self, blocks: usize) -> (Vec<Stmt>, Vec<Stmt>) {
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
            Some(input) => input.stages(own),
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
    fn kept_chunk(&self) -> Option<(Expr, &str)> {
        let ce = self.kept.as_ref()?;
        Some((self.own(), ce.kept.v.as_str()))
    }

    /// The reader's statements around the core's blocks for a kept chunk
    /// ([`RowNormNames::prologue`]); nothing otherwise. Before: the chunk this core multicasts
    /// (of its grid row's row block of `a`; on the cores past the last chunk's, that one, from
    /// its core; or the operands of the product computing it), a LayerNorm's mean's partial
    /// sums exchanged, the chunk waited for (by the cores that send it), and the variance's or
    /// mean square's partial sums exchanged. After: the chunk released.
    fn reader_prologue(&self, a: &str) -> (Vec<Stmt>, Vec<Stmt>) {
        let Some(ce) = &self.kept else {
            return Default::default();
        };
        let col = mul(self.own(), name("BLOCK_K"));
        let chunk = index(a, vec![grid_row_rows(), span(col.clone(), name("BLOCK_K"))]);
        // With spare cores, the last chunk's core passes its chunk on to the cores past it,
        // which sum it too: each chunk is read from DRAM once.
        let own_read = match (&ce.input, self.spare_cores) {
            (Some(input), _) => input.reads(&col),
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
    /// its part of the product and the core's chunk written to `a` (A's tensor); nothing
    /// otherwise.
    fn writer_prologue(&self, a: &str) -> Vec<Stmt> {
        match self.kept.as_ref().and_then(|ce| ce.input.as_ref()) {
            Some(input) => input.writes(a, &mul(self.own(), name("BLOCK_K"))),
            None => Vec::new(),
        }
    }

    /// The reader's K chunk `kc` with kept chunks: the core's own multicast from the
    /// chunk it holds to the grid row's other cores (the last chunk's core to those before it,
    /// the cores past it keeping that chunk themselves); any other received into `a_cb` from
    /// its core's pipe.
    fn kept_chunk_read(&self, a_cb: &str) -> Stmt {
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
    fn own_binding(&self) -> Vec<Stmt> {
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
    fn mine(&self) -> Expr {
        let chunk = match self.spare_cores {
            true => name("kc"),
            false => Expr::bin(BinOp::Mod, name("kc"), name("GRID_X")),
        };
        compare(CmpOp::Eq, chunk, self.own())
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
    fn shared_sums_stages(&self) -> Vec<Stmt> {
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
    fn exchange(&self) -> Vec<Stmt> {
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
    fn mean_square_stage(&self, summed: bool) -> Stmt {
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
    fn scales_stage(&self, copies: usize) -> Vec<Stmt> {
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
    fn scaled_stage(&self, pr: &Product, (target_cb, target): (&str, &str)) -> Stmt {
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
    fn scale_bcast(&self, out: &str) -> Stmt {
        assign(
            &self.scale_bcast_name(),
            math_dims("broadcast", vec![name(&self.scale.v), name(out)], &[1]),
        )
    }

    fn scale_bcast_name(&self) -> String {
        format!("{}_bcast", self.scale.v)
    }
}

/// `K_CHUNKS - 1`, the last K chunk.
fn last_chunk() -> Expr {
    Expr::bin(BinOp::Sub, name("K_CHUNKS"), int(1))
}

/// What one K chunk of a product does for a left operand the kernel normalizes.
#[derive(Clone, Copy)]
enum NormPart<'n> {
    /// Nothing: A is not normalized, or a later product's chunk before its last.
    Plain,
    /// The first product's chunk: also squares A and adds the squares' row sums to the running
    /// mean square.
    Squares(&'n RowNormNames),
    /// A later product's last chunk: the sum scaled by the rows' scale.
    Scaled(&'n RowNormNames),
}

/// The buffers and block names of one product of a matmul kernel: its B's and its K chunks'
/// running sum.
struct Product {
    b: Buffer,
    acc: Buffer,
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
