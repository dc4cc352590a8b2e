//! The reference interpreter: evaluates a [`Graph`] in f32 (integers in i64) on the host.
//!
//! It is the numerical oracle of ttfuse: the runtime's bf16 results, the optimizer's rewrites
//! and the importers are all checked against it, and it is itself checked against onnxruntime
//! outputs stored with the example models. Reductions and matmuls accumulate in f64.

mod elementwise;
mod layout;
mod linalg;
mod nn;
mod reduce;
mod strides;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use thiserror::Error;

use crate::graph::composite;
use crate::graph::infer::ShapeError;
use crate::graph::{DType, Graph, Op, TensorData, TensorType};

/// Why the interpreter could not evaluate a graph or an op.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum RefError {
    /// An op could not be evaluated on its inputs.
    #[error("{op}: {reason}")]
    Op {
        /// The op name.
        op: String,
        /// What went wrong.
        reason: String,
    },
    /// Evaluating a node failed.
    #[error("node `{node}`: {source}")]
    Node {
        /// The node name.
        node: String,
        /// The failure.
        #[source]
        source: Box<RefError>,
    },
    /// A graph input was not supplied.
    #[error("no value given for graph input `{0}`; supply a tensor with that name")]
    MissingInput(String),
    /// A supplied input does not fit the graph input.
    #[error("graph input `{name}` expects shape {expected:?} ({dtype:?}), got {got:?}")]
    InputMismatch {
        /// The input name.
        name: String,
        /// The graph's shape for it.
        expected: Vec<usize>,
        /// The graph's dtype for it.
        dtype: crate::graph::DType,
        /// The supplied shape.
        got: Vec<usize>,
    },
    /// The graph is not a DAG.
    #[error("the graph has a cycle; {0} node(s) cannot be ordered")]
    Cycle(usize),
}

pub(crate) fn op_error(op: &Op, reason: impl Into<String>) -> RefError {
    RefError::Op {
        op: op.name(),
        reason: reason.into(),
    }
}

/// Evaluates `graph` on `inputs` (keyed by graph input name) and returns its outputs keyed by
/// graph output name.
pub fn run(
    graph: &Graph,
    inputs: &BTreeMap<String, TensorData>,
) -> Result<BTreeMap<String, TensorData>, RefError> {
    let order = graph.topo_order();
    if order.len() != graph.dag.node_count() {
        return Err(RefError::Cycle(graph.dag.node_count() - order.len()));
    }
    let mut values: Vec<Option<TensorData>> = vec![None; graph.dag.node_count()];
    for idx in order {
        let node = graph.node(idx);
        let value = if node.op == Op::Input {
            bind_input(&node.name, &node.ty, inputs)?
        } else {
            let srcs = graph.inputs_of(idx);
            let args: Vec<&TensorData> = srcs
                .iter()
                .filter_map(|s| values[s.index()].as_ref())
                .collect();
            if args.len() != srcs.len() {
                return Err(RefError::Cycle(1));
            }
            eval_op(&node.op, &args, &node.ty).map_err(|e| RefError::Node {
                node: node.name.clone(),
                source: Box::new(e),
            })?
        };
        values[idx.index()] = Some(value);
    }
    let mut outputs = BTreeMap::new();
    for (name, idx) in &graph.outputs {
        if let Some(v) = &values[idx.index()] {
            outputs.insert(name.clone(), v.clone());
        }
    }
    Ok(outputs)
}

fn bind_input(
    name: &str,
    ty: &TensorType,
    inputs: &BTreeMap<String, TensorData>,
) -> Result<TensorData, RefError> {
    let given = inputs
        .get(name)
        .ok_or_else(|| RefError::MissingInput(name.to_string()))?;
    let mismatch = || RefError::InputMismatch {
        name: name.to_string(),
        expected: ty.shape.clone(),
        dtype: ty.dtype,
        got: given.shape().to_vec(),
    };
    if given.shape() != ty.shape.as_slice() {
        return Err(mismatch());
    }
    match (given, ty.dtype.is_float()) {
        (TensorData::I64 { shape, values }, true) => Ok(TensorData::f32(
            shape.clone(),
            values.iter().map(|&v| v as f32).collect(),
        )),
        (TensorData::F32 { .. }, false) => Err(mismatch()),
        _ => Ok(given.clone()),
    }
}

/// Evaluates one op on `inputs` (in slot order); `out` is the node's inferred type.
///
/// The inputs are checked first: their values must fill their shapes, and shape inference over
/// them must give `out`'s shape.
pub fn eval_op(op: &Op, inputs: &[&TensorData], out: &TensorType) -> Result<TensorData, RefError> {
    check_inputs(op, inputs, out)?;
    let result = match op {
        Op::Input => Err(op_error(
            op,
            "a graph input has no value of its own; supply it to run()",
        )),
        Op::Constant(data) => Ok(data.as_ref().clone()),
        Op::Unary(u) => elementwise::unary(op, *u, arg(op, inputs, 0)?),
        Op::Binary(b) => elementwise::binary(op, *b, inputs, out),
        Op::Clip { min, max } => {
            elementwise::map_f32(op, arg(op, inputs, 0)?, |x| x.max(*min).min(*max))
        }
        Op::LeakyRelu { alpha } => elementwise::map_f32(op, arg(op, inputs, 0)?, |x| {
            if x >= 0.0 {
                x
            } else {
                alpha * x
            }
        }),
        Op::HardSigmoid { alpha, beta } => elementwise::map_f32(op, arg(op, inputs, 0)?, |x| {
            (alpha * x + beta).clamp(0.0, 1.0)
        }),
        Op::Cast { to } => Ok(elementwise::cast(arg(op, inputs, 0)?, *to)),
        Op::Equal => elementwise::equal(op, inputs, out),
        Op::Where => elementwise::select(op, inputs, out),
        Op::MatMul => linalg::matmul(op, inputs, out),
        Op::Transpose { perm } => Ok(layout::transpose(arg(op, inputs, 0)?, perm)),
        Op::Reshape { shape } => Ok(arg(op, inputs, 0)?.clone().with_shape(shape.clone())),
        Op::Expand { shape } => Ok(layout::broadcast_to(arg(op, inputs, 0)?, shape)),
        Op::Slice {
            axes,
            starts,
            steps,
            ..
        } => Ok(layout::slice(arg(op, inputs, 0)?, axes, starts, steps, out)),
        Op::Concat { axis } => layout::concat(op, inputs, *axis, out),
        Op::Gather { axis } => layout::gather(op, inputs, *axis, out),
        Op::Reduce { op: kind, axes, .. } => {
            reduce::reduce(op, *kind, arg(op, inputs, 0)?, axes, out)
        }
        Op::Attention { .. } | Op::Mlp { .. } => {
            let values: Vec<Cow<TensorData>> = inputs.iter().map(|&t| Cow::Borrowed(t)).collect();
            composite::expand(&mut ChainValues(PhantomData), op, &values).map(Cow::into_owned)
        }
        Op::Softmax { axis } => reduce::softmax(op, arg(op, inputs, 0)?, *axis),
        Op::LayerNorm { eps } => reduce::layer_norm(op, inputs, *eps, true),
        Op::RmsNorm { eps } => reduce::layer_norm(op, inputs, *eps, false),
        Op::Conv {
            stride,
            pads,
            dilation,
            groups,
            pixels: None,
            ..
        } => nn::conv(op, inputs, *stride, *pads, *dilation, *groups, out),
        Op::Conv {
            pixels: Some(image),
            ..
        } => nn::conv_pixels(op, inputs, *image, out),
        Op::BatchNorm { eps } => nn::batch_norm(op, inputs, *eps),
        Op::Im2Col {
            image,
            kernel,
            stride,
            pads,
            dilation,
        } => Ok(nn::im2col(
            arg(op, inputs, 0)?,
            *image,
            *kernel,
            *stride,
            *pads,
            *dilation,
            out,
        )),
        Op::Pool {
            op: kind,
            kernel,
            stride,
            pads,
            count_include_pad,
        } => nn::pool(
            op,
            arg(op, inputs, 0)?,
            *kind,
            *kernel,
            *stride,
            *pads,
            *count_include_pad,
            out,
        ),
    }?;
    if result.shape() != out.shape.as_slice() {
        return Err(op_error(
            op,
            format!(
                "computed shape {:?} differs from the node's type {:?}",
                result.shape(),
                out.shape
            ),
        ));
    }
    Ok(result)
}

/// Evaluates a composite's chain ([`composite::expand`]) op by op. The composite's inputs are
/// borrowed, not copied (the chain uses some of them twice).
struct ChainValues<'a>(PhantomData<&'a TensorData>);

impl<'a> composite::Emitter for ChainValues<'a> {
    type Value = Cow<'a, TensorData>;
    type Error = RefError;

    fn ty(&self, v: &Self::Value) -> TensorType {
        TensorType::new(v.shape().to_vec(), v.dtype())
    }

    fn emit(&mut self, op: Op, inputs: &[Self::Value], _: &str) -> Result<Self::Value, RefError> {
        let refs: Vec<&TensorData> = inputs.iter().map(|t| t.as_ref()).collect();
        let types: Vec<TensorType> = inputs.iter().map(|t| self.ty(t)).collect();
        let type_refs: Vec<&TensorType> = types.iter().collect();
        let out = crate::graph::infer::infer(&op, &type_refs)?;
        eval_op(&op, &refs, &out).map(Cow::Owned)
    }

    fn scalar(&mut self, value: f32, _: DType, _: &str) -> Result<Self::Value, RefError> {
        Ok(Cow::Owned(TensorData::f32(vec![], vec![value])))
    }
}

impl From<ShapeError> for RefError {
    fn from(e: ShapeError) -> Self {
        let op = match &e {
            ShapeError::Arity { op, .. } | ShapeError::Invalid { op, .. } => op.clone(),
        };
        RefError::Op {
            op,
            reason: e.to_string(),
        }
    }
}

fn check_inputs(op: &Op, inputs: &[&TensorData], out: &TensorType) -> Result<(), RefError> {
    if let Some(bad) = inputs.iter().find(|t| !t.is_consistent()) {
        return Err(op_error(
            op,
            format!("an input's values do not fill its shape {:?}", bad.shape()),
        ));
    }
    if matches!(op, Op::Input | Op::Constant(_)) {
        return Ok(());
    }
    let types: Vec<TensorType> = inputs
        .iter()
        .map(|t| TensorType::new(t.shape().to_vec(), input_dtype(op, t, out)))
        .collect();
    let refs: Vec<&TensorType> = types.iter().collect();
    let inferred =
        crate::graph::infer::infer(op, &refs).map_err(|e| op_error(op, e.to_string()))?;
    if inferred.shape != out.shape {
        return Err(op_error(
            op,
            format!(
                "inputs {:?} give shape {:?}, the node's type says {:?}",
                shapes(inputs),
                inferred.shape,
                out.shape
            ),
        ));
    }
    Ok(())
}

/// The dtype to check an input as: floats as the output's float type (data holds every float
/// width as f32), integers as i64.
fn input_dtype(op: &Op, t: &TensorData, out: &TensorType) -> crate::graph::DType {
    use crate::graph::DType;
    match t {
        TensorData::F32 { .. } if out.dtype.is_float() && !matches!(op, Op::Cast { .. }) => {
            out.dtype
        }
        TensorData::F32 { .. } => DType::F32,
        TensorData::I64 { .. } => DType::I64,
    }
}

fn shapes(inputs: &[&TensorData]) -> Vec<Vec<usize>> {
    inputs.iter().map(|t| t.shape().to_vec()).collect()
}

fn arg<'a>(op: &Op, inputs: &[&'a TensorData], i: usize) -> Result<&'a TensorData, RefError> {
    inputs
        .get(i)
        .copied()
        .ok_or_else(|| op_error(op, format!("missing input {i}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::{BinaryOp, DType, UnaryOp};

    fn f(shape: &[usize], values: &[f32]) -> TensorData {
        TensorData::f32(shape.to_vec(), values.to_vec())
    }

    #[test]
    fn run_evaluates_a_small_graph_and_names_failing_nodes() {
        let mut g = Graph::new();
        let ty = TensorType::new(vec![2, 2], DType::F32);
        let x = g.add_input("x", ty.clone());
        let e = g.add("e", Op::Unary(UnaryOp::Exp), ty.clone(), &[x]);
        let y = g.add("y", Op::Binary(BinaryOp::Add), ty.clone(), &[e, x]);
        g.outputs.push(("y".into(), y));
        let xs = [0.0f32, 1.0, -1.0, 0.5];
        let inputs = BTreeMap::from([("x".to_string(), f(&[2, 2], &xs))]);
        let out = run(&g, &inputs).unwrap();
        let want: Vec<f32> = xs.iter().map(|v| v.exp() + v).collect();
        assert_eq!(out["y"], f(&[2, 2], &want));

        let bad = BTreeMap::from([("x".to_string(), f(&[4], &xs))]);
        assert!(matches!(run(&g, &bad), Err(RefError::InputMismatch { .. })));
        assert_eq!(
            run(&g, &BTreeMap::new()),
            Err(RefError::MissingInput("x".into()))
        );

        // A node whose recorded type disagrees with its op fails with the node's name.
        let mut g2 = g.clone();
        let z = g2.add(
            "z",
            Op::Transpose { perm: vec![1, 0] },
            TensorType::new(vec![4], DType::F32),
            &[x],
        );
        g2.outputs.push(("z".into(), z));
        let err = run(&g2, &inputs).unwrap_err().to_string();
        assert!(err.starts_with("node `z`: Transpose"), "{err}");
    }

    #[test]
    fn eval_op_rejects_inconsistent_arguments_instead_of_panicking() {
        let op = Op::Binary(BinaryOp::Add);
        let a = f(&[2, 3], &[1.0; 6]);
        let out = TensorType::new(vec![4, 3], DType::F32);
        let err = eval_op(&op, &[&a, &a], &out).unwrap_err().to_string();
        assert!(
            err.contains("give shape [2, 3], the node's type says [4, 3]"),
            "{err}"
        );
        let short = TensorData::F32 {
            shape: vec![2, 3],
            values: vec![1.0; 5],
        };
        let out = TensorType::new(vec![2, 3], DType::F32);
        let err = eval_op(&op, &[&a, &short], &out).unwrap_err().to_string();
        assert!(err.contains("do not fill its shape"), "{err}");
        let err = eval_op(&Op::MatMul, &[&a, &a], &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("do not multiply"), "{err}");
    }
}
