//! Attention heads as column ranges: `Transpose(Reshape(x, [seq, heads, hd]), perm)` with `x` a
//! `[seq, heads * hd]` tensor (or a tile-aligned column slice of one) is, head by head, a
//! column range of `x`'s 2-D view; so it is with a leading batch axis of size one on every
//! tensor, as PyTorch exports a batch-1 model (`[1, seq, heads, hd]`, permutations
//! `[0, 2, 1, 3]` and `[0, 2, 3, 1]`). In fused mode a matmul reads such an operand in place
//! (head `h` at columns `col0 + h * hd`), so the slice, reshape and transpose need no host step.
//! When the split heads feed other kernels (LLaMA's rotary embedding), the matmul that makes
//! `x` writes head `h`'s columns as batch `h` of the transpose instead ([`split_into`]); a
//! batched product's heads are merged back the same way ([`merged_into`]).

use petgraph::graph::NodeIndex;

use super::group::{real_users, resolve};
use crate::graph::{BinaryOp, Graph, Op};

/// How a kernel's writer moves attention heads, so that no host step has to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadWrite {
    /// Batch `h` of the product goes to columns `h * head_tiles` on of a head merge's reshape
    /// ([`merged_into`]).
    Merge {
        /// Columns per head, in tiles.
        head_tiles: usize,
    },
    /// Columns `h * head_tiles` on of the 2-D output go to batch `h`, rows `h * seq_tiles` on,
    /// of a head split's transpose ([`split_into`]).
    Split {
        /// Columns per head, in tiles.
        head_tiles: usize,
        /// Rows per head, in tiles.
        seq_tiles: usize,
    },
}

/// A batched matmul operand whose batch `h` is a column range of a 2-D tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadView {
    /// The tensor whose columns are read.
    pub source: NodeIndex,
    /// The first column of head 0, in tiles.
    pub col0: usize,
    /// Columns per head, in tiles.
    pub head_tiles: usize,
    /// Whether the operand is each head's transpose (`[heads, hd, seq]`), read as `(N, K)`.
    pub transposed: bool,
}

/// `shape` as a tensor of `rank` axes: itself, or without a leading batch axis of size one
/// (PyTorch's exports keep the batch axis: `[1, seq, d]`, heads `[1, heads, seq, hd]`).
fn unbatched(shape: &[usize], rank: usize) -> Option<&[usize]> {
    match shape {
        s if s.len() == rank => Some(s),
        [1, rest @ ..] if rest.len() == rank => Some(rest),
        _ => None,
    }
}

/// The permutation `perm` of a tensor whose unbatched form has `rank` axes, as a permutation
/// of that form (`None` when it moves the batch axis).
fn unbatched_perm(perm: &[usize], rank: usize) -> Option<Vec<usize>> {
    match perm {
        p if p.len() == rank => Some(p.to_vec()),
        [0, rest @ ..] if rest.len() == rank => rest.iter().map(|&a| a.checked_sub(1)).collect(),
        _ => None,
    }
}

/// Whether `n` is a 2-D matrix, or one with a batch axis of size one.
fn matrix(graph: &Graph, n: NodeIndex) -> bool {
    unbatched(&graph.node(n).ty.shape, 2).is_some()
}

/// `(source, first column)` when `x` slices whole tiles of columns out of a 2-D tensor (or one
/// with a batch axis of size one).
fn column_slice(graph: &Graph, x: NodeIndex) -> Option<(NodeIndex, usize)> {
    let Op::Slice {
        axes,
        starts,
        steps,
        ..
    } = &graph.node(x).op
    else {
        return None;
    };
    let src = *graph.inputs_of(x).first()?;
    let last = graph.node(src).ty.shape.len().checked_sub(1)?;
    let aligned = matrix(graph, src)
        && axes.as_slice() == [last]
        && steps.as_slice() == [1]
        && starts.first().is_some_and(|s| s.is_multiple_of(32));
    aligned.then(|| (resolve(graph, src), starts[0] / 32))
}

/// `n` as a head view, when it has that form (seq and hd multiples of 32).
pub fn head_view(graph: &Graph, n: NodeIndex) -> Option<HeadView> {
    let Op::Transpose { perm } = &graph.node(n).op else {
        return None;
    };
    let transposed = match unbatched_perm(perm, 3)?.as_slice() {
        [1, 0, 2] => false,
        [1, 2, 0] => true,
        _ => return None,
    };
    let r = *graph.inputs_of(n).first()?;
    if !matches!(graph.node(r).op, Op::Reshape { .. }) {
        return None;
    }
    let r_shape = &graph.node(r).ty.shape;
    let &[seq, heads, hd] = unbatched(r_shape, 3)? else {
        return None;
    };
    if !seq.is_multiple_of(32) || !hd.is_multiple_of(32) {
        return None;
    }
    let x = *graph.inputs_of(r).first()?;
    let x_shape = &graph.node(x).ty.shape;
    let same_batch = x_shape.len() + 1 == r_shape.len();
    if !same_batch || unbatched(x_shape, 2)? != [seq, heads * hd] {
        return None;
    }
    let (source, col0) = column_slice(graph, x).unwrap_or((resolve(graph, x), 0));
    Some(HeadView {
        source,
        col0,
        head_tiles: hd / 32,
        transposed,
    })
}

/// Whether `u` is a matmul of rank-3 operands with equal batch (or rank-4 ones with a batch
/// axis of size one first).
fn batched_matmul(graph: &Graph, u: NodeIndex) -> bool {
    let ins = graph.inputs_of(u);
    let batch = |i: usize| {
        ins.get(i)
            .and_then(|&x| unbatched(&graph.node(x).ty.shape, 3).map(|s| s[0]))
    };
    matches!(graph.node(u).op, Op::MatMul) && batch(0).is_some() && batch(0) == batch(1)
}

/// Whether every consumer of `n` is a batched matmul reading `n` in a slot its view allows (a
/// transposed head view only as B), and `n` is not an output.
fn only_read_by_batched_matmuls(graph: &Graph, n: NodeIndex, transposed: bool) -> bool {
    let (users, is_out) = real_users(graph, n);
    !is_out
        && !users.is_empty()
        && users.iter().all(|&u| {
            batched_matmul(graph, u) && !(transposed && graph.inputs_of(u).first() == Some(&n))
        })
}

/// Whether the transpose `n` is a head view that its matmuls read in place.
pub fn read_in_place(graph: &Graph, n: NodeIndex) -> Option<HeadView> {
    let v = head_view(graph, n)?;
    only_read_by_batched_matmuls(graph, n, v.transposed).then_some(v)
}

/// Whether the transpose or reshape `n` is part of a head split ([`split_into`]).
fn in_split(graph: &Graph, n: NodeIndex) -> bool {
    let input = |m: NodeIndex| graph.inputs_of(m).first().copied();
    match &graph.node(n).op {
        Op::Transpose { .. } => input(n)
            .and_then(input)
            .is_some_and(|x| split_into(graph, x) == Some(n)),
        Op::Reshape { .. } => input(n).is_some_and(|x| split_into(graph, x).is_some()),
        _ => false,
    }
}

/// Whether the transpose or reshape `n` is part of a head merge ([`merged_into`]).
fn in_merge(graph: &Graph, n: NodeIndex) -> bool {
    let input = |m: NodeIndex| graph.inputs_of(m).first().copied();
    match &graph.node(n).op {
        Op::Transpose { .. } => input(n).is_some_and(|x| merged_into(graph, x).is_some()),
        Op::Reshape { .. } => input(n)
            .and_then(input)
            .is_some_and(|x| merged_into(graph, x) == Some(n)),
        _ => false,
    }
}

/// Whether `n` needs no kernel or host step because matmuls read or write its data in place: a
/// head view's transpose, its reshape, or the column slice feeding only such reshapes; or the
/// transpose and reshape of a head merge (the reshape's tensor is what the matmul writes) or
/// of a head split (the transpose's tensor is).
pub fn absorbed(graph: &Graph, n: NodeIndex) -> bool {
    if in_merge(graph, n) || in_split(graph, n) {
        return true;
    }
    let users = graph.users_of(n);
    let is_out = graph.outputs.iter().any(|(_, o)| *o == n);
    match &graph.node(n).op {
        Op::Transpose { .. } => read_in_place(graph, n).is_some(),
        Op::Reshape { .. } => {
            !is_out
                && !users.is_empty()
                && users.iter().all(|&t| {
                    graph.inputs_of(t).first() == Some(&n) && read_in_place(graph, t).is_some()
                })
        }
        Op::Slice { .. } => {
            !is_out
                && column_slice(graph, n).is_some()
                && !users.is_empty()
                && users
                    .iter()
                    .all(|&r| matches!(graph.node(r).op, Op::Reshape { .. }) && absorbed(graph, r))
        }
        _ => false,
    }
}

/// The transpose `t` of a head split `Transpose(Reshape(x, [seq, heads, hd]), [1, 0, 2])`, when
/// `x` is used by nothing else, is computed by a device kernel over its 2-D view (a product of
/// 2-D matrices, or an add, subtract or multiply: a matmul's bias or a rotary embedding), and
/// `t`'s users do not read it in place (they are not all batched matmuls): `x`'s kernel writes
/// `x`'s columns `h * hd` on as batch `h` of `t` instead of writing `x`.
pub fn split_into(graph: &Graph, x: NodeIndex) -> Option<NodeIndex> {
    let on_device = match &graph.node(x).op {
        Op::MatMul => graph.inputs_of(x).into_iter().all(|i| matrix(graph, i)),
        Op::Binary(BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul) => matrix(graph, x),
        _ => false,
    };
    if !on_device {
        return None;
    }
    let t = graph.only_user(graph.only_user(x)?)?;
    let v = head_view(graph, t)?;
    let splits_x = v.source == x && v.col0 == 0 && !v.transposed;
    (splits_x && read_in_place(graph, t).is_none()).then_some(t)
}

/// The reshape `r` of a head merge `Reshape(Transpose(x, [1, 0, 2]), [seq, heads * hd])`, when
/// `x` is a batched matmul's `[heads, seq, hd]` product used by nothing else: the matmul writes
/// head `h` into columns `h * hd` of `r` instead of writing `x`.
pub fn merged_into(graph: &Graph, x: NodeIndex) -> Option<NodeIndex> {
    let x_shape = &graph.node(x).ty.shape;
    let &[heads, seq, hd] = unbatched(x_shape, 3)? else {
        return None;
    };
    if !batched_matmul(graph, x) || !seq.is_multiple_of(32) || !hd.is_multiple_of(32) {
        return None;
    }
    let t = graph.only_user(x)?;
    let Op::Transpose { perm } = &graph.node(t).op else {
        return None;
    };
    if unbatched_perm(perm, 3)?.as_slice() != [1, 0, 2] {
        return None;
    }
    let r = graph.only_user(t)?;
    let r_shape = &graph.node(r).ty.shape;
    (matches!(graph.node(r).op, Op::Reshape { .. })
        && r_shape.len() + 1 == x_shape.len()
        && unbatched(r_shape, 2) == Some(&[seq, heads * hd][..]))
    .then_some(r)
}
