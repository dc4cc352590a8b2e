//! What the analysis knows about an e-class: an attribute, or a tensor's type plus constant
//! facts. Types come from [`crate::graph::infer::infer`] (the same inference the importers use)
//! through the op mapping, so a rewritten node is typed exactly as an imported one.

use crate::graph::infer::infer;
use crate::graph::{BinaryOp, DType, Op, TensorType, UnaryOp};

use super::language::{Attr, TOp};
use super::mapping::{graph_op, tensor_types};

/// Facts about a tensor-valued e-class.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorFacts {
    /// Shape and dtype.
    pub ty: TensorType,
    /// A weakly typed scalar literal (a number in a rule): it takes the dtype of the tensor it
    /// is combined with. Its `ty.dtype` is F32 until then.
    pub weak: bool,
    /// Every element is known to equal this value (a splat constant).
    pub splat: Option<f32>,
    /// The value is computable from constants alone (graph constants and numbers), so the
    /// extracted graph folds it (`crate::graph::fold`) and it costs nothing at run time.
    pub constant: bool,
}

/// The analysis data of one e-class.
#[derive(Clone, Debug, PartialEq)]
pub enum ClassData {
    /// A non-numeric attribute leaf (list, flag, dtype).
    Attr(Attr),
    /// A tensor.
    Tensor(TensorFacts),
    /// The e-node cannot be typed (only ever made while checking a rule's right-hand side,
    /// which is then not applied).
    Invalid(String),
}

impl ClassData {
    /// The tensor facts, if this is a tensor.
    pub fn tensor(&self) -> Option<&TensorFacts> {
        match self {
            ClassData::Tensor(t) => Some(t),
            _ => None,
        }
    }

    /// The value of a one-element splat constant.
    pub fn scalar(&self) -> Option<f32> {
        self.tensor()
            .filter(|t| t.ty.numel() == 1)
            .and_then(|t| t.splat)
    }

    /// A short description for error messages.
    pub fn describe(&self) -> String {
        match self {
            ClassData::Attr(a) => format!("attribute {a}"),
            ClassData::Tensor(t) => format!("tensor {:?} {:?}", t.ty.shape, t.ty.dtype),
            ClassData::Invalid(r) => format!("an ill-typed expression ({r})"),
        }
    }

    /// Whether two data describe the same value type (attributes equal, tensors of equal shape,
    /// dtype and weakness).
    pub fn same_type(&self, other: &ClassData) -> bool {
        match (self, other) {
            (ClassData::Attr(a), ClassData::Attr(b)) => a == b,
            (ClassData::Tensor(a), ClassData::Tensor(b)) => a.ty == b.ty && a.weak == b.weak,
            _ => false,
        }
    }
}

/// The data of a number leaf: a weak 0-d scalar.
pub fn number(v: f32) -> ClassData {
    ClassData::Tensor(TensorFacts {
        ty: TensorType::new(vec![], DType::F32),
        weak: true,
        splat: Some(v),
        constant: true,
    })
}

fn fold_unary(u: UnaryOp, v: f32) -> Option<f32> {
    match u {
        UnaryOp::Neg => Some(-v),
        UnaryOp::Sqrt => Some(v.sqrt()),
        UnaryOp::Rsqrt => Some(1.0 / v.sqrt()),
        UnaryOp::Recip => Some(1.0 / v),
        UnaryOp::Abs => Some(v.abs()),
        UnaryOp::Identity => Some(v),
        _ => None,
    }
}

fn fold_binary(b: BinaryOp, x: f32, y: f32) -> Option<f32> {
    match b {
        BinaryOp::Add => Some(x + y),
        BinaryOp::Sub => Some(x - y),
        BinaryOp::Mul => Some(x * y),
        BinaryOp::Div => Some(x / y),
        _ => None,
    }
}

/// Gives weak scalars among `ts` the dtype of the first strong tensor.
fn adapt_weak(ts: &[&TensorFacts]) -> Vec<TensorType> {
    let strong = ts.iter().find(|t| !t.weak).map(|t| t.ty.dtype);
    ts.iter()
        .map(|t| match (t.weak, strong) {
            (true, Some(d)) => TensorType::new(t.ty.shape.clone(), d),
            _ => t.ty.clone(),
        })
        .collect()
}

/// The data of e-node `op` whose children have data `kids`. Leaves are typed by the analysis
/// (they need the side table), except numbers.
pub fn infer_enode(op: &TOp, kids: &[&ClassData]) -> ClassData {
    match infer_inner(op, kids) {
        Ok(d) => d,
        Err(e) => ClassData::Invalid(e),
    }
}

fn infer_inner(op: &TOp, kids: &[&ClassData]) -> Result<ClassData, String> {
    if let TOp::Leaf(a) = op {
        return Ok(match a {
            Attr::Num(n) => number(n.get()),
            Attr::Ref(r) => return Err(format!("`{r}` is not in the table")),
            other => ClassData::Attr(other.clone()),
        });
    }
    if let Some(ClassData::Invalid(r)) = kids.iter().find(|k| matches!(k, ClassData::Invalid(_))) {
        return Err(r.clone());
    }
    let g = graph_op(op, kids)?;
    let facts: Vec<&TensorFacts> = g
        .inputs
        .iter()
        .map(|&i| {
            kids[i]
                .tensor()
                .ok_or_else(|| format!("input {i} of `{}` is not a tensor", op.name()))
        })
        .collect::<Result<_, _>>()?;
    let elementwise = matches!(g.op, Op::Unary(_) | Op::Binary(_) | Op::Where);
    let types: Vec<TensorType> = if elementwise {
        let data = if matches!(g.op, Op::Where) {
            &facts[1..]
        } else {
            &facts[..]
        };
        let mut t = adapt_weak(data);
        if matches!(g.op, Op::Where) {
            t.insert(0, facts[0].ty.clone());
        }
        t
    } else {
        tensor_types(kids, &g.inputs)?
            .into_iter()
            .cloned()
            .collect()
    };
    let refs: Vec<&TensorType> = types.iter().collect();
    let ty = infer(&g.op, &refs).map_err(|e| e.to_string())?;
    let weak = elementwise && facts.iter().all(|f| f.weak) && !matches!(g.op, Op::Where);
    let splat = match (&g.op, facts.as_slice()) {
        (Op::Unary(u), [x]) => x.splat.and_then(|v| fold_unary(*u, v)),
        (Op::Binary(b), [x, y]) => x
            .splat
            .zip(y.splat)
            .and_then(|(a, c)| fold_binary(*b, a, c)),
        // Layout changes keep every value: a splat stays one.
        (Op::Expand { .. } | Op::Reshape { .. }, [x]) => x.splat,
        _ => None,
    };
    let constant = facts.iter().all(|f| f.constant);
    Ok(ClassData::Tensor(TensorFacts {
        ty,
        weak,
        splat,
        constant,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::ReduceOp;

    fn t(shape: &[usize]) -> ClassData {
        ClassData::Tensor(TensorFacts {
            ty: TensorType::new(shape.to_vec(), DType::BF16),
            weak: false,
            splat: None,
            constant: false,
        })
    }

    #[test]
    fn weak_scalars_take_the_other_dtype() {
        let d = infer_enode(&TOp::Binary(BinaryOp::Mul), &[&t(&[2, 3]), &number(0.5)]);
        assert_eq!(
            d.tensor().unwrap().ty,
            TensorType::new(vec![2, 3], DType::BF16)
        );
        assert!(!d.tensor().unwrap().weak);
    }

    #[test]
    fn constants_fold_into_splats() {
        let d = infer_enode(&TOp::Unary(UnaryOp::Recip), &[&number(4.0)]);
        assert_eq!(d.scalar(), Some(0.25));
        let d = infer_enode(&TOp::Binary(BinaryOp::Sub), &[&number(1.0), &number(4.0)]);
        assert_eq!(d.scalar(), Some(-3.0));
    }

    #[test]
    fn reduce_is_typed_by_graph_inference() {
        let axes = ClassData::Attr(Attr::Ints(vec![1]));
        let keep = ClassData::Attr(Attr::Bool(true));
        let d = infer_enode(&TOp::Reduce(ReduceOp::Max), &[&axes, &keep, &t(&[4, 8])]);
        assert_eq!(d.tensor().unwrap().ty.shape, vec![4, 1]);
        let bad = ClassData::Attr(Attr::Ints(vec![2]));
        assert!(matches!(
            infer_enode(&TOp::Reduce(ReduceOp::Max), &[&bad, &keep, &t(&[4, 8])]),
            ClassData::Invalid(_)
        ));
    }
}
