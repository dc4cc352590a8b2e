//! The composites that are fixed chains of other graph ops: scaled dot-product attention
//! ([`Op::Attention`]) and the MLP ([`Op::Mlp`]).
//!
//! Each is defined once, by [`expand`], as the chain of primitive ops it stands for. That one
//! definition gives its shape inference ([`crate::graph::infer`]), its reference semantics
//! ([`crate::reference`]) and the graph the planner fuses ([`expand_all`]): an [`Emitter`]
//! decides what "emitting an op" means (inferring a type, computing a value, adding a node).

use serde::{Deserialize, Serialize};

use super::fold::rebuild;
use super::infer::{infer, ShapeError};
use super::{BinaryOp, DType, Graph, Op, TensorData, TensorType};
use crate::import::builder::{BuildError, GraphBuilder};

/// How attention scores are masked before the softmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AttentionMask {
    /// No mask: inputs `q, kt, v`.
    None,
    /// An additive mask `m` (`-inf` or a large negative number where a key is hidden): inputs
    /// `q, kt, v, m`.
    Add,
    /// A selection `where(c, scores, fill)` (keys where `c` holds are kept): inputs
    /// `q, kt, v, c, fill`.
    Select,
    /// A fill `where(c, fill, scores)` (PyTorch's `masked_fill`: keys where `c` holds are
    /// hidden): inputs `q, kt, v, c, fill`.
    Fill,
}

impl AttentionMask {
    /// The number of tensor inputs of an attention with this mask.
    pub fn inputs(self) -> usize {
        match self {
            AttentionMask::None => 3,
            AttentionMask::Add => 4,
            AttentionMask::Select | AttentionMask::Fill => 5,
        }
    }
}

/// What an MLP's hidden layer computes before its activation is multiplied by the second
/// weight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MlpHidden {
    /// `act(x @ w1)`: inputs `x, w1, w2`.
    Plain,
    /// `act(x @ w1 + b1)`: inputs `x, w1, b1, w2`.
    Biased,
    /// `act(x @ w1) * (x @ w3)` (LLaMA's SwiGLU): inputs `x, w1, w3, w2`.
    Gated,
}

impl MlpHidden {
    /// The number of tensor inputs of an MLP with this hidden layer.
    pub fn inputs(self) -> usize {
        match self {
            MlpHidden::Plain => 3,
            MlpHidden::Biased | MlpHidden::Gated => 4,
        }
    }
}

/// What building a composite's chain does with each op of it.
pub trait Emitter {
    /// A value of the chain (a type, a tensor, a node).
    type Value: Clone;
    /// Why emitting failed.
    type Error: From<ShapeError>;

    /// The type of `v`.
    fn ty(&self, v: &Self::Value) -> TensorType;
    /// Emits `op` on `inputs`; `part` names the intermediate (empty for the composite's own
    /// result).
    fn emit(
        &mut self,
        op: Op,
        inputs: &[Self::Value],
        part: &str,
    ) -> Result<Self::Value, Self::Error>;
    /// A 0-d constant `value` of type `dtype`.
    fn scalar(&mut self, value: f32, dtype: DType, part: &str) -> Result<Self::Value, Self::Error>;
}

/// Whether `op` is a composite that [`expand`] defines.
pub fn is_chain(op: &Op) -> bool {
    matches!(op, Op::Attention { .. } | Op::Mlp { .. })
}

/// Emits the chain of primitive ops that `op` (a composite of [`is_chain`]) stands for, on
/// `inputs`, and returns its result. Any other op is emitted as it is.
pub fn expand<E: Emitter>(e: &mut E, op: &Op, inputs: &[E::Value]) -> Result<E::Value, E::Error> {
    let want = match op {
        Op::Attention { mask, .. } => mask.inputs(),
        Op::Mlp { hidden, .. } => hidden.inputs(),
        other => return e.emit(other.clone(), inputs, ""),
    };
    if inputs.len() != want {
        return Err(ShapeError::Arity {
            op: op.name(),
            expected: want.to_string(),
            got: inputs.len(),
        }
        .into());
    }
    match *op {
        Op::Attention { scale, mask } => {
            let (q, kt, v) = (&inputs[0], &inputs[1], &inputs[2]);
            let scores = e.emit(Op::MatMul, &[q.clone(), kt.clone()], "scores")?;
            let s = e.scalar(scale, e.ty(&scores).dtype, "scale")?;
            let scaled = e.emit(Op::Binary(BinaryOp::Mul), &[scores, s], "scaled")?;
            let masked = match mask {
                AttentionMask::None => scaled,
                AttentionMask::Add => e.emit(
                    Op::Binary(BinaryOp::Add),
                    &[scaled, inputs[3].clone()],
                    "masked",
                )?,
                AttentionMask::Select => e.emit(
                    Op::Where,
                    &[inputs[3].clone(), scaled, inputs[4].clone()],
                    "masked",
                )?,
                AttentionMask::Fill => e.emit(
                    Op::Where,
                    &[inputs[3].clone(), inputs[4].clone(), scaled],
                    "masked",
                )?,
            };
            let axis = e.ty(&masked).shape.len().saturating_sub(1);
            let probs = e.emit(Op::Softmax { axis }, &[masked], "probs")?;
            e.emit(Op::MatMul, &[probs, v.clone()], "")
        }
        Op::Mlp { act, hidden } => {
            let x = &inputs[0];
            let up = e.emit(Op::MatMul, &[x.clone(), inputs[1].clone()], "hidden")?;
            let pre = match hidden {
                MlpHidden::Biased => e.emit(
                    Op::Binary(BinaryOp::Add),
                    &[up, inputs[2].clone()],
                    "biased",
                )?,
                MlpHidden::Plain | MlpHidden::Gated => up,
            };
            let mut h = e.emit(Op::Unary(act), &[pre], "act")?;
            if hidden == MlpHidden::Gated {
                let gate = e.emit(Op::MatMul, &[x.clone(), inputs[2].clone()], "up")?;
                h = e.emit(Op::Binary(BinaryOp::Mul), &[h, gate], "gated")?;
            }
            let w2 = inputs[hidden.inputs() - 1].clone();
            e.emit(Op::MatMul, &[h, w2], "")
        }
        _ => unreachable!("the match above returned for every other op"),
    }
}

/// Emits types, showing each op of the chain with its input and output types to `visit`.
struct Types<F> {
    visit: F,
}

impl<F: FnMut(&Op, &[&TensorType], &TensorType)> Emitter for Types<F> {
    type Value = TensorType;
    type Error = ShapeError;

    fn ty(&self, v: &TensorType) -> TensorType {
        v.clone()
    }

    fn emit(&mut self, op: Op, inputs: &[TensorType], _: &str) -> Result<TensorType, ShapeError> {
        let refs: Vec<&TensorType> = inputs.iter().collect();
        let out = infer(&op, &refs)?;
        (self.visit)(&op, &refs, &out);
        Ok(out)
    }

    fn scalar(&mut self, _: f32, dtype: DType, _: &str) -> Result<TensorType, ShapeError> {
        Ok(TensorType::new(vec![], dtype))
    }
}

/// The type of composite `op` applied to `inputs` (the type its chain computes), showing each
/// op of the chain with its input and output types to `visit` on the way.
pub fn visit_chain(
    op: &Op,
    inputs: &[&TensorType],
    visit: impl FnMut(&Op, &[&TensorType], &TensorType),
) -> Result<TensorType, ShapeError> {
    let inputs: Vec<TensorType> = inputs.iter().map(|&t| t.clone()).collect();
    expand(&mut Types { visit }, op, &inputs)
}

/// The type of composite `op` applied to `inputs`: the type its chain computes.
pub fn infer_chain(op: &Op, inputs: &[&TensorType]) -> Result<TensorType, ShapeError> {
    visit_chain(op, inputs, |_, _, _| {})
}

/// Emits into a graph under construction: each op of the chain a node named
/// `<composite>/<part>`, the result named as the composite.
struct IntoGraph<'a> {
    builder: &'a mut GraphBuilder,
    name: &'a str,
}

impl IntoGraph<'_> {
    fn name(&self, part: &str) -> String {
        if part.is_empty() {
            self.name.to_string()
        } else {
            format!("{}/{part}", self.name)
        }
    }
}

impl Emitter for IntoGraph<'_> {
    type Value = petgraph::graph::NodeIndex;
    type Error = BuildError;

    fn ty(&self, v: &Self::Value) -> TensorType {
        self.builder.ty(*v).clone()
    }

    fn emit(
        &mut self,
        op: Op,
        inputs: &[Self::Value],
        part: &str,
    ) -> Result<Self::Value, BuildError> {
        let name = self.name(part);
        self.builder.add(&name, op, inputs)
    }

    fn scalar(&mut self, value: f32, dtype: DType, part: &str) -> Result<Self::Value, BuildError> {
        let name = self.name(part);
        Ok(self
            .builder
            .constant(&name, TensorData::f32(vec![], vec![value]), dtype))
    }
}

/// `graph` with every composite of [`is_chain`] replaced by its chain of primitive ops (the
/// form the planner fuses); `None` when it has none.
pub fn expand_all(graph: &Graph) -> Result<Option<Graph>, BuildError> {
    if !graph.dag.node_weights().any(|n| is_chain(&n.op)) {
        return Ok(None);
    }
    let out = rebuild(graph, |b, idx, rebuilt| {
        let node = graph.node(idx);
        if !is_chain(&node.op) {
            return Ok(None);
        }
        let inputs: Vec<_> = graph
            .inputs_of(idx)
            .iter()
            .map(|i| rebuilt[i.index()].expect("topological order visits producers first"))
            .collect();
        let mut into = IntoGraph {
            builder: b,
            name: &node.name,
        };
        expand(&mut into, &node.op, &inputs).map(Some)
    })?;
    Ok(Some(out))
}
