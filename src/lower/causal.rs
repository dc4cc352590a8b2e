//! The causal attention template ([`crate::plan::causal`]): per row block, the key chunks up
//! to its diagonal with the online softmax, the last chunk masked, the keys and values of a
//! chunk read by one core of the grid row and sent to the others that take it.

use ttfuse_runtime::ttl::ast::{BinOp, BoolOp, CmpOp, Expr, IndexItem, Kernel, Stmt};

use super::blocks::{
    block_loop, constants, coords, group_position, pair_row_block, pair_unit, row_block_stmts,
    Coords,
};
use super::body_kernel::{kernel, matrix_index, params};
use super::compute::Naming;
use super::emit::{
    add, assign, compare, for_range, for_range_from, if_else, index, int, make_cb, math, math_dims,
    mul, name, read_into, reserve, span, store, wait, with,
};
use super::matmul::{block_writes, NAMES};
use super::multicast::{send_along, Along};
use crate::plan::body::{Body, LoadSource};
use crate::plan::causal::{Causal, Names};
use crate::plan::matmul_info::MatmulInfo;
use crate::plan::schedule::Schedule;
use crate::plan::{Partition, PlannedKernel};

/// Lowers planned causal attention kernel `k`.
pub fn lower(
    k: &PlannedKernel,
    body: &Body,
    sched: &Schedule,
    info: &MatmulInfo,
    causal: &Causal,
) -> Kernel {
    let p = &k.partition;
    let names = Names::new(&body.values[causal.out].stem);
    let mut setup = constants(p, &NAMES, info.mt);
    setup.push(assign("BLOCK_K", int(info.kt)));
    setup.push(assign("KEY_CHUNK", int(causal.key_chunk)));
    if info.b_batched && info.b_heads.is_none() {
        setup.push(assign("N_TILES", int(info.nt)));
    }
    setup.extend(sched.cbs.iter().map(make_cb));
    let c = coords(p, &NAMES);
    let chunks = assign("chunks", add(last_chunk(name("rem")), int(1)));
    let parts = Parts {
        body,
        info,
        causal,
        names,
        c,
        chunks,
        p,
    };
    let (compute, read) = (parts.compute_thread(), parts.reader());
    let naming = Naming::new(body, sched);
    let mut inner = parts.c.stmts.clone();
    inner.extend(block_writes(body, &naming, &parts.c, p));
    let write = block_loop(p, true, inner);
    let mut operands = vec![info.a_param.clone()];
    if info.b_param != info.a_param {
        operands.push(info.b_param.clone());
    }
    kernel(k, params(body, &operands), setup, [compute, read, write])
}

/// A `with` block waiting for `waits` and reserving `reserves` (part names) around `body`.
fn stage(names: &Names, waits: &[&str], reserves: &[&str], body: Vec<Stmt>) -> Stmt {
    let mut items: Vec<(Expr, String)> = waits
        .iter()
        .map(|w| (wait(&names.cb(w)), names.block(w, "_v")))
        .collect();
    items.extend(
        reserves
            .iter()
            .map(|r| (reserve(&names.cb(r)), names.block(r, "_o"))),
    );
    with(items, body)
}

/// What the threads of a causal attention kernel are built from.
struct Parts<'a> {
    body: &'a Body,
    info: &'a MatmulInfo,
    causal: &'a Causal,
    names: Names,
    /// The block's coordinates.
    c: Coords,
    /// `chunks = ...`: the key chunks of the block's row block.
    chunks: Stmt,
    p: &'a Partition,
}

impl Parts<'_> {
    /// The compute thread: per block, the query scaled once, then every key chunk up to the
    /// diagonal, then the running product divided by the running sum.
    fn compute_thread(&self) -> Vec<Stmt> {
        let Parts {
            body,
            causal,
            names,
            c,
            chunks,
            p,
            ..
        } = self;
        let v = |part: &str| name(&names.block(part, "_v"));
        let o = |part: &str| names.block(part, "_o");
        let mut inner = c.stmts.clone();
        inner.push(chunks.clone());
        let query = if causal.scale.is_some() {
            let bcast = math_dims("broadcast", vec![v("scale"), name(&o("qs"))], &[0, 1]);
            inner.push(stage(
                names,
                &["q"],
                &["qs"],
                vec![store(&o("qs"), Expr::bin(BinOp::Mul, v("q"), bcast))],
            ));
            "qs"
        } else {
            "q"
        };
        let mut steps = chunk_step(names, query, true);
        steps.push(for_range_from(
            "j",
            int(1),
            name("chunks"),
            chunk_step(names, query, false),
        ));
        inner.push(stage(names, &[query], &[], steps));
        inner.push(stage(
            names,
            &["l"],
            &["inv"],
            vec![store(&o("inv"), math("recip", vec![v("l")]))],
        ));
        let out_stem = &body.values[causal.out].stem;
        let (out_cb, out_o) = (format!("{out_stem}_cb"), format!("{out_stem}_o"));
        let bcast = math_dims("broadcast", vec![v("inv"), name(&out_o)], &[1]);
        inner.push(with(
            vec![
                (wait(&names.cb("o")), names.block("o", "_v")),
                (wait(&names.cb("inv")), names.block("inv", "_v")),
                (reserve(&out_cb), out_o.clone()),
            ],
            vec![store(&out_o, Expr::bin(BinOp::Mul, v("o"), bcast))],
        ));
        let mut constants = vec![(wait(&names.cb("one")), names.block("one", "_v"))];
        if causal.scale.is_some() {
            constants.push((wait(&names.cb("scale")), names.block("scale", "_v")));
        }
        vec![with(constants, block_loop(p, true, inner))]
    }

    /// The reader: the constants once, then per block the query, and per key chunk up to the
    /// diagonal the keys, the mask (last chunk only) and the values.
    fn reader(&self) -> Vec<Stmt> {
        let Parts {
            body,
            info,
            causal,
            names,
            c,
            chunks,
            p,
        } = self;
        let param = |l: usize| body.loads[l].param.clone();
        let scalar = |l: usize, part: &str| {
            read_into(
                &names.cb(part),
                index(
                    &param(l),
                    vec![IndexItem::At(int(0)), IndexItem::At(int(0))],
                ),
            )
        };
        let mut out = vec![scalar(causal.one, "one")];
        if let Some(s) = causal.scale {
            out.push(scalar(s, "scale"));
        }
        let key = || name("key");
        let key_rows = || span(key(), name("KEY_CHUNK"));
        let head_col =
            |col0: usize, head_tiles: usize| add(int(col0), mul(c.batch.clone(), int(head_tiles)));
        let mut inner = c.stmts.clone();
        inner.push(chunks.clone());
        let q_src = match &info.a_heads {
            Some(v) => index(
                &info.a_param,
                vec![
                    span(c.row_in_batch(), name("BLOCK_M")),
                    span(head_col(v.col0, v.head_tiles), name("BLOCK_K")),
                ],
            ),
            None => index(
                &info.a_param,
                vec![
                    span(c.row.clone(), name("BLOCK_M")),
                    span(int(0), name("BLOCK_K")),
                ],
            ),
        };
        inner.push(read_into(&names.cb("q"), q_src));
        let k_src = match (&info.b_heads, info.b_batched) {
            (Some(v), _) => index(
                &info.b_param,
                vec![
                    key_rows(),
                    span(head_col(v.col0, v.head_tiles), name("BLOCK_K")),
                ],
            ),
            (None, true) => index(
                &info.b_param,
                vec![
                    span(
                        add(mul(c.batch.clone(), name("N_TILES")), key()),
                        name("KEY_CHUNK"),
                    ),
                    span(int(0), name("BLOCK_K")),
                ],
            ),
            (None, false) => index(
                &info.b_param,
                vec![key_rows(), span(int(0), name("BLOCK_K"))],
            ),
        };
        let v_src = match &body.loads[causal.values].source {
            LoadSource::Matrix(m) => index(
                &param(causal.values),
                matrix_index(
                    m,
                    (info.nt, info.kt),
                    &c.batch,
                    &int(0),
                    (key(), name("KEY_CHUNK")),
                ),
            ),
            _ => unreachable!("the values are a matrix load (plan::causal::recognize)"),
        };
        let mask_row = if body.loads[causal.mask].batch_shared {
            c.row_in_batch()
        } else {
            c.row.clone()
        };
        let mask_src = index(
            &param(causal.mask),
            vec![span(mask_row, name("BLOCK_M")), key_rows()],
        );
        let mut chunk = vec![assign("key", mul(name("j"), name("KEY_CHUNK")))];
        chunk.push(shared_chunk(&names.cb("k"), k_src, p));
        chunk.push(if_else(
            compare(
                CmpOp::Eq,
                name("j"),
                Expr::bin(BinOp::Sub, name("chunks"), int(1)),
            ),
            vec![read_into(&names.cb("mask"), mask_src)],
            vec![],
        ));
        chunk.push(shared_chunk(&names.cb("v"), v_src, p));
        inner.extend(sender(p));
        inner.push(for_range("j", name("chunks"), chunk));
        out.extend(block_loop(p, true, inner));
        out
    }
}

/// The last key chunk row block `row_block` (an expression) takes, the one holding its last
/// row: `((row_block + 1) * BLOCK_M - 1) // KEY_CHUNK` ([`crate::plan::causal::chunks_of`]).
fn last_chunk(row_block: Expr) -> Expr {
    let last_row = Expr::bin(
        BinOp::Sub,
        mul(add(row_block, int(1)), name("BLOCK_M")),
        int(1),
    );
    Expr::bin(BinOp::FloorDiv, last_row, name("KEY_CHUNK"))
}

/// One key chunk's stages: the scores (the last chunk masked), the new running maximum, the
/// exponentials, their row sums and their product with the values; the first chunk starts the
/// running sum and product, the others rescale them by `exp(old max - new max)` and add.
fn chunk_step(names: &Names, query: &str, first: bool) -> Vec<Stmt> {
    let v = |part: &str| name(&names.block(part, "_v"));
    let o = |part: &str| names.block(part, "_o");
    let matmul = |a: Expr, b: Expr, out: &str| math("matmul", vec![a, b, name(out)]);
    let is_last = if first {
        compare(CmpOp::Eq, name("chunks"), int(1))
    } else {
        compare(
            CmpOp::Eq,
            name("j"),
            Expr::bin(BinOp::Sub, name("chunks"), int(1)),
        )
    };
    let mut out = vec![stage(
        names,
        &["k"],
        &["kt"],
        vec![store(
            &o("kt"),
            Expr::path("ttl.transpose").call(vec![v("k"), name(&o("kt"))]),
        )],
    )];
    out.push(if_else(
        is_last.clone(),
        vec![
            stage(
                names,
                &["kt"],
                &["s"],
                vec![store(&o("s"), matmul(v(query), v("kt"), &o("s")))],
            ),
            stage(
                names,
                &["s", "mask"],
                &["x"],
                vec![store(&o("x"), add(v("s"), v("mask")))],
            ),
        ],
        vec![stage(
            names,
            &["kt"],
            &["x"],
            vec![store(&o("x"), matmul(v(query), v("kt"), &o("x")))],
        )],
    ));
    let reduce = |f: &str, x: &str, out: &str| math_dims(f, vec![v(x), v("one"), name(out)], &[0]);
    let mut softmax = vec![stage(
        names,
        &[],
        &["mj"],
        vec![store(&o("mj"), reduce("reduce_max", "x", &o("mj")))],
    )];
    // The new running maximum, for the exponentials (`mu`) and, but on the last chunk, for the
    // next chunk (`m`): no block is left in `m` unread.
    let max_stage = |keep: bool| {
        let new_max = match first {
            true => v("mj"),
            false => math("max", vec![v("m"), v("mj")]),
        };
        let mut waits = vec!["mj"];
        let mut reserves = vec!["mu"];
        let mut stores = vec![store(&o("mu"), new_max.clone())];
        if keep {
            reserves.insert(0, "m");
            stores.insert(0, store(&o("m"), new_max.clone()));
        }
        if !first {
            waits.insert(0, "m");
            reserves.push("corr");
            let old_less_new = Expr::bin(BinOp::Sub, v("m"), new_max);
            stores.push(store(&o("corr"), math("exp", vec![old_less_new])));
        }
        stage(names, &waits, &reserves, stores)
    };
    softmax.push(if_else(
        is_last,
        vec![max_stage(false)],
        vec![max_stage(true)],
    ));
    let bcast = math_dims("broadcast", vec![v("mu"), name(&o("p"))], &[1]);
    softmax.push(stage(
        names,
        &["mu"],
        &["p"],
        vec![store(
            &o("p"),
            math("exp", vec![Expr::bin(BinOp::Sub, v("x"), bcast)]),
        )],
    ));
    out.push(stage(names, &["x"], &[], softmax));
    let (sum, product) = if first { ("l", "o") } else { ("ps", "pv") };
    out.push(stage(
        names,
        &["p"],
        &[],
        vec![
            stage(
                names,
                &[],
                &[sum],
                vec![store(&o(sum), reduce("reduce_sum", "p", &o(sum)))],
            ),
            stage(
                names,
                &["v"],
                &[product],
                vec![store(&o(product), matmul(v("p"), v("v"), &o(product)))],
            ),
        ],
    ));
    if !first {
        let bcast = math_dims("broadcast", vec![v("corr"), name(&o("o"))], &[1]);
        out.push(stage(
            names,
            &["corr", "l", "ps", "o", "pv"],
            &["l", "o"],
            vec![
                store(&o("o"), add(Expr::bin(BinOp::Mul, v("o"), bcast), v("pv"))),
                store(
                    &o("l"),
                    add(Expr::bin(BinOp::Mul, v("l"), v("corr")), v("ps")),
                ),
            ],
        ));
    }
    out
}

/// Statements binding `sender`, the core of this grid row that takes the most key chunks at
/// step `i`: the last on even steps, the first on odd ones when the odd steps are mirrored;
/// with the last steps balanced by class ([`Partition::class_steps`]) or pairs over the cores
/// ([`Partition::pairs_over_cores`]), the last of the row's cores taking this core's batch
/// whose row block reaches furthest, found by going over them.
fn sender(p: &Partition) -> Vec<Stmt> {
    let last = Expr::bin(BinOp::Sub, name("GRID_X"), int(1));
    if p.class_steps.is_some() || p.pair_cores.is_some() {
        let mut per_peer = peer_row_block(p);
        let furthest = compare(CmpOp::Ge, last_chunk(name("peer_rem")), name("most"));
        per_peer.push(if_else(
            of_same_batch(p, furthest),
            vec![
                assign("most", last_chunk(name("peer_rem"))),
                assign("sender", name("peer")),
            ],
            vec![],
        ));
        return vec![
            assign("sender", int(0)),
            assign("most", int(0)),
            for_range("peer", name("GRID_X"), per_peer),
        ];
    }
    let sender = if p.mirrored {
        mul(
            Expr::bin(BinOp::Sub, int(1), Expr::bin(BinOp::Mod, name("i"), int(2))),
            last,
        )
    } else {
        last
    };
    vec![assign("sender", sender)]
}

/// `a and b`.
fn and(a: Expr, b: Expr) -> Expr {
    Expr::Bool2(BoolOp::And, Box::new(a), Box::new(b))
}

/// `cond`, for a core `peer` of this grid row that takes this core's batch at step `i` (after
/// [`peer_row_block`]): every peer with shared batches, whose grid rows take one batch a step;
/// with pairs over the cores, a peer that has a pair at this step of `batch`.
fn of_same_batch(p: &Partition, cond: Expr) -> Expr {
    if p.pair_cores.is_none() {
        return cond;
    }
    let peer_batch = Expr::bin(BinOp::FloorDiv, name("peer_unit"), name("PAIRS"));
    and(
        and(
            compare(CmpOp::Lt, peer_core(), name("CORES")),
            compare(CmpOp::Lt, name("peer_unit"), name("UNITS")),
        ),
        and(compare(CmpOp::Eq, peer_batch, name("batch")), cond),
    )
}

/// Core `peer` of this grid row, numbered over the grid in row order.
fn peer_core() -> Expr {
    add(mul(name("core_y"), name("GRID_X")), name("peer"))
}

/// Statements binding `peer_rem` to the row block that core `peer` of this grid row takes at
/// step `i` (`peer_base` its position in the batch group, or its pair's in its batch, and
/// `peer_unit` its pair, with pairs over the cores).
fn peer_row_block(p: &Partition) -> Vec<Stmt> {
    if p.pair_cores.is_some() {
        let mut stmts = vec![assign("peer_unit", pair_unit(peer_core()))];
        stmts.extend(pair_row_block("peer_unit", "peer_base", "peer_rem"));
        return stmts;
    }
    let mut stmts = vec![assign("peer_base", group_position(name("peer")))];
    if p.mirrored {
        stmts.extend(row_block_stmts(p, "peer_base", "peer_rem"));
    } else {
        stmts.push(assign("peer_rem", name("peer_base")));
    }
    stmts
}

/// Reads key chunk `j` of `src` into a reserved block of `cb`: the sender reads it from DRAM
/// and sends it to each other core of its grid row taking its batch whose row block reaches
/// chunk `j`; the others that take it receive it from the sender.
fn shared_chunk(cb: &str, src: Expr, p: &Partition) -> Stmt {
    let per_peer = peer_row_block(p);
    let other = compare(CmpOp::Ne, name("peer"), name("core_x"));
    let reaches = compare(CmpOp::Ge, last_chunk(name("peer_rem")), name("j"));
    let takes = and(other, of_same_batch(p, reaches));
    send_along(cb, src, Along::Row, vec![], (per_peer, takes))
}
