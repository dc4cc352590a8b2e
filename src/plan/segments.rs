//! Row-wise kernels on few rows, their columns cut into segments over cores.
//!
//! A row-wise kernel (a norm, a softmax) needs whole rows in a block, so it has as many blocks
//! as row blocks: 32 row tiles leave half of Wormhole's 64 cores idle, and a single row (a
//! classifier's softmax) all but one. Cut each row block's columns into `S` segments instead,
//! one per core. Every core reduces its segment's part of each row to a partial (a sum, a
//! maximum), sends it through pipes to the other cores of its block row, and combines the `S`
//! partials into the row's reduction before it goes on; everything else it computes on its own
//! segment. A mean needs nothing more: its scaler is one over the whole row's length, so the
//! partial means add up to the mean.
//!
//! A matmul on a single block row with an elementwise epilogue runs in segments too, with
//! nothing to exchange: its columns over several grid rows, A multicast along each, so that
//! every core reads its own columns of the weights once (a classifier's or a gated MLP's
//! products on few rows).
//!
//! The lowering (`lower::body_kernel`, `lower::compute`) emits, per reduction and block: the
//! partial into its own buffer, copied into the buffer the writer sends from and the one the
//! combination reads; the reader receives the other cores' partials; the compute thread adds
//! (or takes the maximum of) them one by one into the reduction's own buffer, which the rest of
//! the body reads as before.

use super::body::{Body, RowReduce, ValueOp};
use super::layout::Class;
use super::schedule::{Cb, Schedule};
use super::Partition;

/// Whether `body` can run in column segments: without a chained product, a streamed layer or
/// a head write, and writing only blocks of its whole iteration space (a reduction written as
/// an output would be written by every segment). A matmul kernel's own product (its `MatMul`
/// value) is a block like any other: its epilogue can run in segments, and an elementwise one
/// exchanges nothing.
pub fn segmentable(body: &Body) -> bool {
    let chained = body.values.iter().any(|v| v.op == ValueOp::Product);
    !chained
        && body.stream.is_none()
        && body.head_write.is_none()
        && body
            .outputs
            .iter()
            .all(|&(_, v)| body.values[v].class == Class::Full)
}

/// The buffers through which the segments of a block row exchange reduction `value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Exchange {
    /// The reduction value.
    pub value: usize,
    /// Sum or maximum.
    pub reduce: RowReduce,
    /// This core's partial.
    pub partial: String,
    /// The copy of the partial the writer sends to the other cores.
    pub send: String,
    /// The copy of the partial the combination starts from.
    pub kept: String,
    /// The other cores' partials, as the reader receives them.
    pub peers: String,
    /// The running combination when there are more than two segments.
    pub running: String,
}

impl Exchange {
    /// The exchange of reduction value `v` of `body` (its buffers named after the value).
    fn of(body: &Body, v: usize, reduce: RowReduce) -> Exchange {
        let stem = &body.values[v].stem;
        let cb = |part: &str| format!("{stem}_{part}_cb");
        Exchange {
            value: v,
            reduce,
            partial: cb("partial"),
            send: cb("send"),
            kept: cb("kept"),
            peers: cb("peers"),
            running: cb("running"),
        }
    }

    /// Its buffers for blocks of `rows` row tiles in `segments` segments, made like `like`: the
    /// peers' buffer holds every other segment's partial, so that no sender waits on a
    /// receiver.
    fn cbs(&self, like: &str, rows: usize, segments: usize) -> Vec<Cb> {
        let cb = |name: &str, buffer_factor: usize| Cb {
            name: name.to_string(),
            like: like.to_string(),
            shape: (rows, 1),
            buffer_factor,
        };
        let mut out = vec![
            cb(&self.partial, 1),
            cb(&self.send, 1),
            cb(&self.kept, 1),
            cb(&self.peers, segments - 1),
        ];
        if segments > 2 {
            out.push(cb(&self.running, 2));
        }
        out
    }
}

/// The exchanges of `body` scheduled as `sched`, one per reduction in stage order; `None` when
/// a reduction is loop-invariant (computed once per core, before any block).
pub fn exchanges(body: &Body, sched: &Schedule) -> Option<Vec<Exchange>> {
    let mut out = Vec::new();
    for &v in &sched.stages {
        if let ValueOp::Reduce(r) = body.values[v].op {
            if sched.hoisted[v] {
                return None;
            }
            out.push(Exchange::of(body, v, r));
        }
    }
    Some(out)
}

/// The exchanges of a kernel planned as `p`: none unless it runs in segments.
pub fn kernel_exchanges(body: &Body, sched: &Schedule, p: &Partition) -> Vec<Exchange> {
    match p.segments {
        Some(_) => exchanges(body, sched).unwrap_or_default(),
        None => Vec::new(),
    }
}

/// Adds the exchange buffers of `body`'s reductions to `sched` for `segments` segments;
/// returns the exchanges, or `None` when the body cannot be segmented so.
pub fn add_exchange_cbs(
    body: &Body,
    sched: &mut Schedule,
    segments: usize,
) -> Option<Vec<Exchange>> {
    let exchanges = exchanges(body, sched)?;
    for ex in &exchanges {
        let like = sched.cbs[*sched.cb_of.get(&ex.value)?].like.clone();
        let cbs = ex.cbs(&like, sched.block.0, segments);
        sched.cbs.extend(cbs);
    }
    Some(exchanges)
}
