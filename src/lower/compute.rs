//! The compute thread of body-based kernels: one `with` block per materialized value, values
//! needed by several blocks held in enclosing `with` scopes (the guide's pattern 3), and the
//! loop-invariant values (constant tiles, row vectors, their broadcasts) computed once before the
//! block loop.

use std::collections::BTreeMap;

use ttfuse_runtime::ttl::ast::{BinOp, CmpOp, Expr, Stmt};

use super::blocks::{block_loop, Coords};
use super::emit::{
    assign, compare, for_range, if_else, if_less, int, math, math_dims, name, pop, reserve, store,
    wait, with,
};
use crate::plan::body::{Body, RowReduce, TtBinary, ValueOp};
use crate::plan::schedule::{stream_region, Schedule};
use crate::plan::segments::{kernel_exchanges, Exchange};
use crate::plan::stream::Stream;
use crate::plan::Partition;

/// Names of a value's buffer and blocks.
pub struct Naming<'a> {
    body: &'a Body,
    sched: &'a Schedule,
}

impl<'a> Naming<'a> {
    /// Naming for a body and its schedule.
    pub fn new(body: &'a Body, sched: &'a Schedule) -> Self {
        Naming { body, sched }
    }

    /// The buffer of materialized value `v`.
    pub fn cb(&self, v: usize) -> String {
        self.sched
            .cb_of
            .get(&v)
            .map(|&i| self.sched.cbs[i].name.clone())
            .unwrap_or_default()
    }

    /// The name a waited block of `v` is bound to.
    pub fn waited(&self, v: usize) -> String {
        format!("{}_v", self.body.values[v].stem)
    }

    /// The name a reserved block of `v` is bound to.
    pub fn reserved(&self, v: usize) -> String {
        format!("{}_o", self.body.values[v].stem)
    }
}

/// Builds the compute thread. `custom` emits the stage of a `MatMul` value. With a chained
/// product's columns split ([`Partition::wide`]), `c` gives the block's coordinates: only the
/// first chunk's blocks compute the outputs that are not cut to a chunk (every chunk would
/// compute them alike), and their writer writes them. A load a core keeps for all its blocks
/// ([`crate::plan::body::Load::kept_by_core`]) is waited for by the first block where it is first
/// used, so that block's earlier stages run while it arrives, and released after the last.
/// `before` and `after` run once per core around its blocks, inside the scopes of the values
/// the blocks hold (a kernel's constant tiles).
pub fn compute_thread(
    body: &Body,
    sched: &Schedule,
    p: &Partition,
    custom: &dyn Fn(usize) -> Vec<Stmt>,
    c: &Coords,
    (before, after): &(Vec<Stmt>, Vec<Stmt>),
) -> Vec<Stmt> {
    let naming = Naming::new(body, sched);
    let first_chunk_only = first_chunk_outputs(body, p);
    let hs = sched.hoisted_stages;
    let mut uses: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (pos, s) in sched.stages.iter().enumerate() {
        for &leaf in &sched.leaves[s] {
            uses.entry(leaf).or_default().push(pos);
        }
    }
    let kept = kept_loads(body, p);
    // The stage each kept load is first used by, and the kept loads it waits for.
    let mut first_use: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &v in &kept {
        if let Some(&q) = uses.get(&v).and_then(|ps| ps.first()) {
            first_use.entry(sched.stages[q]).or_default().push(v);
        }
    }
    // A streamed hidden layer: loop stages `r0..=r1` run once per chunk; the block loop's
    // nesting sees them as one position, `r0`.
    let loop_stages = &sched.stages[hs..];
    let region = stream_region(body, loop_stages);
    let Scopes {
        inline,
        inner: inner_scoped,
        outer: outer_scoped,
        region: region_scoped,
    } = Scopes::of(body, sched, (&uses, &kept), region, &first_chunk_only);
    let exchanged = kernel_exchanges(body, sched, p);
    let first_waits = |v: usize| -> Vec<Stmt> {
        first_use.get(&v).map_or_else(Vec::new, |loads| {
            let waits = loads
                .iter()
                .map(|&l| assign(&naming.waited(l), wait(&naming.cb(l))))
                .collect();
            vec![if_else(
                compare(CmpOp::Eq, name("i"), int(0)),
                waits,
                vec![],
            )]
        })
    };
    let stage_body = |v: usize| -> Vec<Stmt> {
        if matches!(body.values[v].op, ValueOp::MatMul) {
            return custom(v);
        }
        if let (Some(segments), Some(ex)) = (p.segments, exchanged.iter().find(|ex| ex.value == v))
        {
            return exchanged_reduction(body, &naming, sched, &inline, ex, segments);
        }
        let s = stage_with(body, &naming, sched, v, &inline);
        if first_chunk_only.contains(&v) {
            vec![if_less(c.wide_col.clone(), int(1), vec![s])]
        } else {
            vec![s]
        }
    };
    let stage = |v: usize| -> Vec<Stmt> {
        let mut out = first_waits(v);
        out.extend(stage_body(v));
        out
    };
    let mut inner = match (region, &body.stream) {
        (Some((r0, r1)), Some(st)) => {
            let streamed_stages = &loop_stages[r0..=r1];
            let chunk_loop = || {
                chunk_loop(st, |part| {
                    nest(streamed_stages.len(), &region_scoped, &naming, &mut |pos| {
                        match streamed_stages[pos] {
                            v if v == st.product => {
                                summed_stage(body, &naming, sched, st, part, &inline)
                            }
                            v => stage(v),
                        }
                    })
                })
            };
            let n = loop_stages.len() - (r1 - r0);
            nest(n, &inner_scoped, &naming, &mut |pos| match pos {
                p if p < r0 => stage(loop_stages[p]),
                p if p == r0 => chunk_loop(),
                p => stage(loop_stages[p + (r1 - r0)]),
            })
        }
        _ => nest(loop_stages.len(), &inner_scoped, &naming, &mut |pos| {
            stage(loop_stages[pos])
        }),
    };
    // The guarded stages need the block's chunk.
    let indexed = p.guarded || !first_chunk_only.is_empty();
    if !first_chunk_only.is_empty() {
        inner.splice(0..0, c.stmts.iter().cloned());
    }
    let mut emit_outer = |pos: usize| {
        if pos < hs {
            stage(sched.stages[pos])
        } else if kept.is_empty() {
            [
                before.clone(),
                block_loop(p, indexed, inner.clone()),
                after.clone(),
            ]
            .concat()
        } else {
            // Shared batches: no guard, and the block's index is not needed, only the step's.
            let mut out = before.clone();
            out.push(for_range("i", name("BLOCKS_PER_CORE"), inner.clone()));
            out.extend(after.iter().cloned());
            out.extend(kept.iter().map(|&v| pop(&naming.cb(v))));
            out
        }
    };
    nest(hs + 1, &outer_scoped, &naming, &mut emit_outer)
}

/// Where the compute thread holds each value its stages read, by the stages that read it
/// (`uses`, positions in the schedule; `kept`, the loads a core keeps, are held apart): in
/// one stage alone, or in a scope around the stages from its first use to its last, in the
/// block loop, around it (hoisted values) or in a streamed hidden layer's chunk loop.
struct Scopes {
    /// Values read by one stage only: waited for and released there.
    inline: Vec<usize>,
    /// `(value, first, last)` positions in the block loop's body.
    inner: Vec<(usize, usize, usize)>,
    /// `(value, first, last)` positions before the block loop (hoisted stages).
    outer: Vec<(usize, usize, usize)>,
    /// `(value, first, last)` positions in the chunk loop of a streamed hidden layer.
    region: Vec<(usize, usize, usize)>,
}

impl Scopes {
    /// The scopes of `body`'s values scheduled as `sched`, with its hidden layer streamed in
    /// loop stages `region` (if it is) and `first_chunk_only` the stages only the first
    /// column chunk runs.
    fn of(
        body: &Body,
        sched: &Schedule,
        (uses, kept): (&BTreeMap<usize, Vec<usize>>, &[usize]),
        region: Option<(usize, usize)>,
        first_chunk_only: &[usize],
    ) -> Scopes {
        let hs = sched.hoisted_stages;
        let collapse = |q: usize| match region {
            Some((r0, r1)) if q > r1 => q - (r1 - r0),
            Some((r0, _)) if q >= r0 => r0,
            _ => q,
        };
        let in_region = |q: usize| region.is_some_and(|(r0, r1)| (r0..=r1).contains(&q));
        // Inner region: loop stages, positions relative to the loop body.
        let mut inner_scoped = Vec::new();
        let mut outer_scoped = Vec::new();
        let mut region_scoped = Vec::new();
        let mut inline = Vec::new();
        for (&v, ps) in uses {
            if kept.contains(&v) {
                continue;
            }
            if body.is_streamed(v) && !sched.hoisted[v] {
                // Produced and used within one chunk: positions relative to the chunk's first.
                let r0 = region.map_or(0, |r| r.0);
                let mut inner: Vec<usize> = ps.iter().map(|&q| q - hs - r0).collect();
                inner.dedup();
                if inner.len() == 1 {
                    inline.push(v);
                } else {
                    region_scoped.push((v, inner[0], *inner.last().unwrap_or(&0)));
                }
            } else if sched.hoisted[v] {
                let mut outer: Vec<usize> = ps.iter().map(|&q| q.min(hs)).collect();
                outer.dedup();
                if outer.len() == 1 && outer[0] < hs {
                    inline.push(v);
                } else {
                    outer_scoped.push((v, outer[0], *outer.last().unwrap_or(&hs)));
                }
            } else {
                let mut inner: Vec<usize> = ps.iter().map(|&q| collapse(q - hs)).collect();
                inner.dedup();
                // A stage the other chunks skip waits for nothing itself: its operands are held
                // in scopes that every block opens and closes. A value the streamed layer reads
                // is held around the whole chunk loop.
                let skipped = ps
                    .iter()
                    .any(|&q| first_chunk_only.contains(&sched.stages[q]));
                let streamed_in = ps.iter().any(|&q| in_region(q - hs));
                if inner.len() == 1 && !skipped && !streamed_in {
                    inline.push(v);
                } else {
                    inner_scoped.push((v, inner[0], *inner.last().unwrap_or(&0)));
                }
            }
        }
        Scopes {
            inline,
            inner: inner_scoped,
            outer: outer_scoped,
            region: region_scoped,
        }
    }
}

/// The load values a core reads once and keeps for all its blocks
/// ([`crate::plan::body::Load::kept_by_core`]).
fn kept_loads(body: &Body, p: &Partition) -> Vec<usize> {
    body.loads
        .iter()
        .filter(|l| l.kept_by_core(p))
        .map(|l| l.value)
        .collect()
}

/// Which chunk of a streamed hidden layer a copy of the chunk loop's body computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    /// The first: its product starts the running sum.
    First,
    /// A middle one: its product is added to the running sum.
    Middle,
    /// The last: its product plus the running sum is the summed product.
    Last,
}

/// The chunk loop of a streamed hidden layer (the guide's pattern 4): the first chunk, the
/// middle ones in a `for` loop, the last; `iteration` emits one chunk's stages.
fn chunk_loop(st: &Stream, iteration: impl Fn(Part) -> Vec<Stmt>) -> Vec<Stmt> {
    let mut out = iteration(Part::First);
    if st.chunks > 2 {
        let middle = iteration(Part::Middle);
        out.push(for_range(
            "_",
            Expr::bin(BinOp::Sub, name("STREAM_CHUNKS"), int(2)),
            middle,
        ));
    }
    out.extend(iteration(Part::Last));
    out
}

/// One chunk's stage of a streamed layer's summed product: the first chunk's product into the
/// running sum; each later chunk's product added to the running sum in the same stage (the
/// matmul first, then the add, one fusion chain), into the running sum again or, for the last
/// chunk, into the product's own buffer.
fn summed_stage(
    body: &Body,
    naming: &Naming,
    sched: &Schedule,
    st: &Stream,
    part: Part,
    inline: &[usize],
) -> Vec<Stmt> {
    let Buffer {
        cb: acc_cb,
        o: acc_o,
        v: acc_v,
    } = Buffer::new(&st.acc_stem);
    let v = st.product;
    let (dst_cb, dst, addend) = match part {
        Part::First => (acc_cb, acc_o, None),
        Part::Last => (naming.cb(v), naming.reserved(v), Some((acc_cb, acc_v))),
        _ => (acc_cb.clone(), acc_o, Some((acc_cb, acc_v))),
    };
    vec![stage_plus(
        body,
        naming,
        sched,
        v,
        inline,
        (&dst_cb, &dst),
        addend,
    )]
}

/// The names of a template buffer: the buffer, its reserved block and its waited block.
pub struct Buffer {
    /// `{stem}_cb`.
    pub cb: String,
    /// `{stem}_o`.
    pub o: String,
    /// `{stem}_v`.
    pub v: String,
}

impl Buffer {
    /// The names of the buffer with stem `stem`.
    pub fn new(stem: &str) -> Buffer {
        Buffer {
            cb: format!("{stem}_cb"),
            o: format!("{stem}_o"),
            v: format!("{stem}_v"),
        }
    }
}

/// The output values that only the first chunk's blocks compute and write: with a chained
/// product's columns split, those not cut to a chunk.
pub fn first_chunk_outputs(body: &Body, p: &Partition) -> Vec<usize> {
    match p.wide {
        Some(_) => body
            .outputs
            .iter()
            .map(|&(_, v)| v)
            .filter(|&v| !body.values[v].chunked)
            .collect(),
        None => Vec::new(),
    }
}

/// Emits positions `0..n`, wrapping them in `with v_cb.wait() as v_v:` scopes that open at a
/// value's first use and close after its last (later, when an inner scope is still open).
fn nest(
    n: usize,
    scoped: &[(usize, usize, usize)],
    naming: &Naming,
    emit: &mut dyn FnMut(usize) -> Vec<Stmt>,
) -> Vec<Stmt> {
    let mut frames = vec![Frame {
        last: usize::MAX,
        items: vec![],
        body: vec![],
    }];
    for pos in 0..n {
        let mut opening: Vec<&(usize, usize, usize)> =
            scoped.iter().filter(|s| s.1 == pos).collect();
        opening.sort_by_key(|s| (usize::MAX - s.2, s.0));
        let mut i = 0;
        while i < opening.len() {
            let last = opening[i].2;
            let mut items = Vec::new();
            while i < opening.len() && opening[i].2 == last {
                let v = opening[i].0;
                items.push((wait(&naming.cb(v)), naming.waited(v)));
                i += 1;
            }
            frames.push(Frame {
                last,
                items,
                body: vec![],
            });
        }
        let stmts = emit(pos);
        if let Some(top) = frames.last_mut() {
            top.body.extend(stmts);
        }
        while frames.len() > 1 && frames.last().is_some_and(|f| f.last <= pos) {
            close(&mut frames);
        }
    }
    while frames.len() > 1 {
        close(&mut frames);
    }
    frames.pop().map(|f| f.body).unwrap_or_default()
}

/// An open `with` scope while nesting.
struct Frame {
    last: usize,
    items: Vec<(Expr, String)>,
    body: Vec<Stmt>,
}

/// Pops the top frame into a `with` statement in its parent.
fn close(frames: &mut Vec<Frame>) {
    if let Some(f) = frames.pop() {
        let stmt = with(f.items, f.body);
        if let Some(parent) = frames.last_mut() {
            parent.body.push(stmt);
        }
    }
}

/// The stages of reduction `ex.value` in a kernel of `segments` column segments
/// ([`crate::plan::segments`]): the segment's partial into its own buffer; copied into the buffer
/// the writer sends to the other segments and the one the combination starts from; then the
/// other segments' partials, as the reader receives them, combined one by one into the
/// reduction's own buffer.
fn exchanged_reduction(
    body: &Body,
    naming: &Naming,
    sched: &Schedule,
    inline: &[usize],
    ex: &Exchange,
    segments: usize,
) -> Vec<Stmt> {
    let v = ex.value;
    let stem = &body.values[v].stem;
    let local = |part: &str| format!("{stem}_{part}");
    let partial = local("partial_o");
    let mut out = vec![stage_into(
        body,
        naming,
        sched,
        v,
        inline,
        &ex.partial,
        &partial,
    )];
    let (partial_v, send_o, kept_o) = (local("partial_v"), local("send_o"), local("kept_o"));
    out.push(with(
        vec![
            (wait(&ex.partial), partial_v.clone()),
            (reserve(&ex.send), send_o.clone()),
            (reserve(&ex.kept), kept_o.clone()),
        ],
        vec![
            store(&send_o, name(&partial_v)),
            store(&kept_o, name(&partial_v)),
        ],
    ));
    let peer_v = local("peer_v");
    let combine = |(from_cb, from_v): (&str, String), (to_cb, to_o): (&str, String)| {
        let (a, b) = (name(&from_v), name(&peer_v));
        let combined = match ex.reduce {
            RowReduce::Sum => Expr::bin(BinOp::Add, a, b),
            RowReduce::Max => math("max", vec![a, b]),
        };
        with(
            vec![
                (wait(from_cb), from_v),
                (wait(&ex.peers), peer_v.clone()),
                (reserve(to_cb), to_o.clone()),
            ],
            vec![store(&to_o, combined)],
        )
    };
    let kept = (ex.kept.as_str(), local("kept_v"));
    let own = (naming.cb(v), naming.reserved(v));
    let own = (own.0.as_str(), own.1);
    if segments == 2 {
        out.push(combine(kept, own));
        return out;
    }
    let (running_v, running_o) = (local("running_v"), local("running_o"));
    out.push(combine(kept, (&ex.running, running_o.clone())));
    if segments > 3 {
        out.push(for_range(
            "_",
            int(segments - 3),
            vec![combine(
                (&ex.running, running_v.clone()),
                (&ex.running, running_o),
            )],
        ));
    }
    out.push(combine((&ex.running, running_v), own));
    out
}

/// The `with` block that computes materialized value `v`.
fn stage_with(body: &Body, naming: &Naming, sched: &Schedule, v: usize, inline: &[usize]) -> Stmt {
    let (cb, out) = (naming.cb(v), naming.reserved(v));
    stage_into(body, naming, sched, v, inline, &cb, &out)
}

/// The `with` block that computes value `v` into buffer `cb`, reserved as `out`.
fn stage_into(
    body: &Body,
    naming: &Naming,
    sched: &Schedule,
    v: usize,
    inline: &[usize],
    cb: &str,
    out: &str,
) -> Stmt {
    stage_plus(body, naming, sched, v, inline, (cb, out), None)
}

/// [`stage_into`], with the waited block `addend` (its buffer and name) added to the value.
fn stage_plus(
    body: &Body,
    naming: &Naming,
    sched: &Schedule,
    v: usize,
    inline: &[usize],
    (cb, out): (&str, &str),
    addend: Option<(String, String)>,
) -> Stmt {
    let mut items: Vec<(Expr, String)> = sched.leaves[&v]
        .iter()
        .filter(|l| inline.contains(l))
        .map(|&l| (wait(&naming.cb(l)), naming.waited(l)))
        .collect();
    let out = out.to_string();
    if let Some((addend_cb, addend_v)) = &addend {
        items.push((wait(addend_cb), addend_v.clone()));
    }
    items.push((reserve(cb), out.clone()));
    let mut counts = BTreeMap::new();
    count_uses(body, &body.values[v].args, &mut counts);
    let mut stage = Stage {
        body,
        naming,
        root: v,
        out,
        counts,
        locals: Vec::new(),
        memo: BTreeMap::new(),
    };
    let mut e = stage.expr(v);
    if let Some((_, addend_v)) = addend {
        e = Expr::bin(BinOp::Add, e, name(&addend_v));
    }
    let mut stmts = stage.locals;
    stmts.push(store(&stage.out, e));
    with(items, stmts)
}

fn count_uses(body: &Body, args: &[usize], counts: &mut BTreeMap<usize, usize>) {
    for &a in args {
        if body.materialized[a] {
            continue;
        }
        let c = counts.entry(a).or_insert(0);
        *c += 1;
        if *c == 1 {
            count_uses(body, &body.values[a].args, counts);
        }
    }
}

/// The expression of one stage: its root value in terms of waited blocks, with values used more
/// than once bound to locals first.
struct Stage<'a> {
    body: &'a Body,
    naming: &'a Naming<'a>,
    root: usize,
    out: String,
    counts: BTreeMap<usize, usize>,
    locals: Vec<Stmt>,
    memo: BTreeMap<usize, String>,
}

impl Stage<'_> {
    fn expr(&mut self, u: usize) -> Expr {
        let body = self.body;
        if u != self.root && body.materialized[u] {
            return name(&self.naming.waited(u));
        }
        if let Some(n) = self.memo.get(&u) {
            return name(n);
        }
        let value = &body.values[u];
        let e = match &value.op {
            ValueOp::Unary(f) => math(f.name(), vec![self.expr(value.args[0])]),
            ValueOp::Binary(f) => {
                let (a, b) = (self.expr(value.args[0]), self.expr(value.args[1]));
                match f {
                    TtBinary::Add => Expr::bin(BinOp::Add, a, b),
                    TtBinary::Sub => Expr::bin(BinOp::Sub, a, b),
                    TtBinary::Mul => Expr::bin(BinOp::Mul, a, b),
                    TtBinary::Div => Expr::bin(BinOp::Div, a, b),
                    TtBinary::Max => math("max", vec![a, b]),
                    TtBinary::Min => math("min", vec![a, b]),
                }
            }
            ValueOp::Power(n) => {
                Expr::path("ttl.power").call(vec![self.expr(value.args[0]), Expr::Int(*n as i64)])
            }
            ValueOp::Reduce(r) => {
                let f = match r {
                    RowReduce::Sum => "reduce_sum",
                    RowReduce::Max => "reduce_max",
                };
                let (x, s) = (self.expr(value.args[0]), self.expr(value.args[1]));
                math_dims(f, vec![x, s, name(&self.out)], &[0])
            }
            ValueOp::Broadcast => {
                let from = body.values[value.args[0]].class;
                let x = self.expr(value.args[0]);
                let e = math_dims(
                    "broadcast",
                    vec![x, name(&self.out)],
                    &from.broadcast_dims(value.class),
                );
                if u == self.root {
                    e
                } else {
                    // Inline, it is the stage's first op (its operand is a waited block).
                    let local = value.stem.clone();
                    self.locals.insert(0, assign(&local, e));
                    self.memo.insert(u, local.clone());
                    return name(&local);
                }
            }
            ValueOp::Product => {
                let (a, b) = (self.expr(value.args[0]), self.expr(value.args[1]));
                Expr::path("ttl.math.matmul").call(vec![a, b, name(&self.out)])
            }
            ValueOp::Copy => self.expr(value.args[0]),
            // Loads and matmul results are always materialized (handled above).
            ValueOp::Load(_) | ValueOp::MatMul => name(&self.naming.waited(u)),
        };
        if u != self.root && self.counts.get(&u).copied().unwrap_or(0) >= 2 {
            let local = value.stem.clone();
            self.locals.push(assign(&local, e));
            self.memo.insert(u, local.clone());
            name(&local)
        } else {
            e
        }
    }
}
