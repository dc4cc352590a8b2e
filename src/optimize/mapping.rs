//! The one mapping between graph [`Op`]s and e-node operators ([`TOp`] with leaf children), in
//! both directions, so that a graph round-trips through the e-graph exactly.

use crate::graph::{Op, TensorType};

use super::language::{Attr, Num, TOp};
use super::typing::ClassData;

/// One child of an e-node built from a graph op.
#[derive(Clone, Debug, PartialEq)]
pub enum Slot {
    /// A leaf holding an attribute.
    Attr(Attr),
    /// The graph op's input number `n` (in slot order).
    Input(usize),
}

fn ints(v: &[usize]) -> Slot {
    Slot::Attr(Attr::Ints(v.to_vec()))
}

fn num(v: f32) -> Slot {
    Slot::Attr(Attr::Num(Num::new(v)))
}

fn inputs(range: std::ops::Range<usize>) -> impl Iterator<Item = Slot> {
    range.map(Slot::Input)
}

/// The e-node operator and children for graph op `op` with `n` inputs. `Input` and `Constant`
/// are leaves made by the caller (they refer to the side table).
pub fn enode_parts(op: &Op, n: usize) -> Result<(TOp, Vec<Slot>), String> {
    let x = Slot::Input(0);
    let parts = match op {
        Op::Input | Op::Constant(_) => return Err("inputs and constants are table leaves".into()),
        Op::Im2Col { .. }
        | Op::Conv {
            pixels: Some(_), ..
        } => {
            return Err(format!(
                "{} is made after the e-graph (optimize::conv) and has no e-node form",
                op.name()
            ))
        }
        Op::Unary(u) => (TOp::Unary(*u), vec![x]),
        Op::Binary(b) => (TOp::Binary(*b), inputs(0..2).collect()),
        Op::MatMul => (TOp::MatMul, inputs(0..2).collect()),
        Op::Transpose { perm } => (TOp::Transpose, vec![ints(perm), x]),
        Op::Reshape { shape } => (TOp::Reshape, vec![ints(shape), x]),
        Op::Expand { shape } => (TOp::Expand, vec![ints(shape), x]),
        Op::Cast { to } => (TOp::Cast, vec![Slot::Attr(Attr::DType(*to)), x]),
        Op::Reduce {
            op,
            axes,
            keep_dims,
        } => (
            TOp::Reduce(*op),
            vec![ints(axes), Slot::Attr(Attr::Bool(*keep_dims)), x],
        ),
        Op::Softmax { axis } => (TOp::Softmax, vec![ints(&[*axis]), x]),
        Op::Attention { scale, mask } => (
            TOp::Attention(*mask),
            std::iter::once(num(*scale)).chain(inputs(0..n)).collect(),
        ),
        Op::Mlp { act, hidden } => (TOp::Mlp(*act, *hidden), inputs(0..n).collect()),
        Op::LayerNorm { eps } if n == 3 => {
            (TOp::LayerNorm, inputs(0..3).chain([num(*eps)]).collect())
        }
        Op::LayerNorm { eps } => (
            TOp::LayerNormNoBias,
            inputs(0..2).chain([num(*eps)]).collect(),
        ),
        Op::RmsNorm { eps } => (TOp::RmsNorm, inputs(0..2).chain([num(*eps)]).collect()),
        Op::Clip { min, max } => (TOp::Clip, vec![num(*min), num(*max), x]),
        Op::LeakyRelu { alpha } => (TOp::LeakyRelu, vec![num(*alpha), x]),
        Op::HardSigmoid { alpha, beta } => (TOp::HardSigmoid, vec![num(*alpha), num(*beta), x]),
        Op::Concat { axis } => (
            TOp::Concat,
            std::iter::once(ints(&[*axis]))
                .chain(inputs(0..n))
                .collect(),
        ),
        Op::Slice {
            axes,
            starts,
            ends,
            steps,
        } => (
            TOp::Slice,
            vec![ints(axes), ints(starts), ints(ends), ints(steps), x],
        ),
        Op::Gather { axis } => (
            TOp::Gather,
            std::iter::once(ints(&[*axis]))
                .chain(inputs(0..2))
                .collect(),
        ),
        Op::Where => (TOp::Where, inputs(0..3).collect()),
        Op::Equal => (TOp::Equal, inputs(0..2).collect()),
        Op::Conv {
            kernel,
            stride,
            pads,
            dilation,
            groups,
            relu,
            pixels: None,
        } => {
            let mut p = vec![kernel[0], kernel[1], stride[0], stride[1]];
            p.extend_from_slice(pads);
            p.extend_from_slice(&[dilation[0], dilation[1], *groups]);
            (
                TOp::Conv { relu: *relu },
                std::iter::once(ints(&p)).chain(inputs(0..n)).collect(),
            )
        }
        Op::BatchNorm { eps } => (
            TOp::BatchNorm,
            std::iter::once(num(*eps)).chain(inputs(0..5)).collect(),
        ),
        Op::Pool {
            op,
            kernel,
            stride,
            pads,
            count_include_pad,
        } => {
            let mut p = vec![kernel[0], kernel[1], stride[0], stride[1]];
            p.extend_from_slice(pads);
            (
                TOp::Pool(*op),
                vec![ints(&p), Slot::Attr(Attr::Bool(*count_include_pad)), x],
            )
        }
    };
    Ok(parts)
}

/// A graph op read back from an e-node, with the child positions that are its tensor inputs
/// (in slot order).
#[derive(Clone, Debug)]
pub struct GraphOp {
    /// The op.
    pub op: Op,
    /// Child positions of the tensor inputs.
    pub inputs: Vec<usize>,
}

fn want_ints<'a>(d: &'a ClassData, what: &str) -> Result<&'a [usize], String> {
    match d {
        ClassData::Attr(Attr::Ints(v)) => Ok(v),
        other => Err(format!(
            "{what} must be an integer list, got {}",
            other.describe()
        )),
    }
}

fn want_one(d: &ClassData, what: &str) -> Result<usize, String> {
    match want_ints(d, what)? {
        [a] => Ok(*a),
        v => Err(format!("{what} must be one integer, got {v:?}")),
    }
}

fn want_bool(d: &ClassData, what: &str) -> Result<bool, String> {
    match d {
        ClassData::Attr(Attr::Bool(b)) => Ok(*b),
        other => Err(format!(
            "{what} must be true or false, got {}",
            other.describe()
        )),
    }
}

fn want_num(d: &ClassData, what: &str) -> Result<f32, String> {
    d.scalar()
        .ok_or_else(|| format!("{what} must be a known scalar, got {}", d.describe()))
}

fn want_array<const N: usize>(v: &[usize], at: usize) -> [usize; N] {
    let mut out = [0; N];
    out.copy_from_slice(&v[at..at + N]);
    out
}

/// The graph op an e-node stands for, given its children's data.
pub fn graph_op(op: &TOp, kids: &[&ClassData]) -> Result<GraphOp, String> {
    if !op.arity_ok(kids.len()) {
        return Err(format!(
            "`{}` cannot take {} children",
            op.name(),
            kids.len()
        ));
    }
    let last = kids.len() - 1;
    let (op, inputs): (Op, Vec<usize>) = match op {
        TOp::Leaf(a) => return Err(format!("leaf `{a}` is not an op")),
        TOp::Unary(u) => (Op::Unary(*u), vec![0]),
        TOp::Binary(b) => (Op::Binary(*b), vec![0, 1]),
        TOp::MatMul => (Op::MatMul, vec![0, 1]),
        TOp::Where => (Op::Where, vec![0, 1, 2]),
        TOp::Equal => (Op::Equal, vec![0, 1]),
        TOp::Transpose => (
            Op::Transpose {
                perm: want_ints(kids[0], "perm")?.to_vec(),
            },
            vec![1],
        ),
        TOp::Reshape => (
            Op::Reshape {
                shape: want_ints(kids[0], "shape")?.to_vec(),
            },
            vec![1],
        ),
        TOp::Expand => (
            Op::Expand {
                shape: want_ints(kids[0], "shape")?.to_vec(),
            },
            vec![1],
        ),
        TOp::Cast => match kids[0] {
            ClassData::Attr(Attr::DType(d)) => (Op::Cast { to: *d }, vec![1]),
            other => return Err(format!("cast needs a dtype, got {}", other.describe())),
        },
        TOp::Reduce(r) => (
            Op::Reduce {
                op: *r,
                axes: want_ints(kids[0], "axes")?.to_vec(),
                keep_dims: want_bool(kids[1], "keep")?,
            },
            vec![2],
        ),
        TOp::Softmax => (
            Op::Softmax {
                axis: want_one(kids[0], "axis")?,
            },
            vec![1],
        ),
        TOp::Attention(mask) => (
            Op::Attention {
                scale: want_num(kids[0], "scale")?,
                mask: *mask,
            },
            (1..=last).collect(),
        ),
        TOp::Mlp(act, hidden) => (
            Op::Mlp {
                act: *act,
                hidden: *hidden,
            },
            (0..=last).collect(),
        ),
        TOp::LayerNorm => (
            Op::LayerNorm {
                eps: want_num(kids[3], "eps")?,
            },
            vec![0, 1, 2],
        ),
        TOp::LayerNormNoBias => (
            Op::LayerNorm {
                eps: want_num(kids[2], "eps")?,
            },
            vec![0, 1],
        ),
        TOp::RmsNorm => (
            Op::RmsNorm {
                eps: want_num(kids[2], "eps")?,
            },
            vec![0, 1],
        ),
        TOp::Clip => (
            Op::Clip {
                min: want_num(kids[0], "min")?,
                max: want_num(kids[1], "max")?,
            },
            vec![2],
        ),
        TOp::LeakyRelu => (
            Op::LeakyRelu {
                alpha: want_num(kids[0], "alpha")?,
            },
            vec![1],
        ),
        TOp::HardSigmoid => (
            Op::HardSigmoid {
                alpha: want_num(kids[0], "alpha")?,
                beta: want_num(kids[1], "beta")?,
            },
            vec![2],
        ),
        TOp::Concat => (
            Op::Concat {
                axis: want_one(kids[0], "axis")?,
            },
            (1..=last).collect(),
        ),
        TOp::Slice => (
            Op::Slice {
                axes: want_ints(kids[0], "axes")?.to_vec(),
                starts: want_ints(kids[1], "starts")?.to_vec(),
                ends: want_ints(kids[2], "ends")?.to_vec(),
                steps: want_ints(kids[3], "steps")?.to_vec(),
            },
            vec![4],
        ),
        TOp::Gather => (
            Op::Gather {
                axis: want_one(kids[0], "axis")?,
            },
            vec![1, 2],
        ),
        TOp::Conv { relu } => {
            let p = want_ints(kids[0], "conv parameters")?;
            if p.len() != 11 {
                return Err(format!("conv parameters need 11 integers, got {p:?}"));
            }
            let op = Op::Conv {
                kernel: want_array(p, 0),
                stride: want_array(p, 2),
                pads: want_array(p, 4),
                dilation: want_array(p, 8),
                groups: p[10],
                relu: *relu,
                pixels: None,
            };
            (op, (1..=last).collect())
        }
        TOp::BatchNorm => (
            Op::BatchNorm {
                eps: want_num(kids[0], "eps")?,
            },
            (1..=5).collect(),
        ),
        TOp::Pool(r) => {
            let p = want_ints(kids[0], "pool parameters")?;
            if p.len() != 8 {
                return Err(format!("pool parameters need 8 integers, got {p:?}"));
            }
            let op = Op::Pool {
                op: *r,
                kernel: want_array(p, 0),
                stride: want_array(p, 2),
                pads: want_array(p, 4),
                count_include_pad: want_bool(kids[1], "count_include_pad")?,
            };
            (op, vec![2])
        }
    };
    Ok(GraphOp { op, inputs })
}

/// The tensor type of each of `kids`, or an error naming the first child that is no tensor.
pub fn tensor_types<'a>(
    kids: &[&'a ClassData],
    at: &[usize],
) -> Result<Vec<&'a TensorType>, String> {
    at.iter()
        .map(|&i| match kids[i] {
            ClassData::Tensor(t) => Ok(&t.ty),
            other => Err(format!(
                "input {i} must be a tensor, got {}",
                other.describe()
            )),
        })
        .collect()
}
