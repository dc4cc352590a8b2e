//! The e-graph language: one e-node kind per graph [`Op`](crate::graph::Op), attributes as leaf children.
//!
//! An e-node is a [`TOp`] with child e-class ids. Attributes that are plain data (axes, perms,
//! shapes, flags, dtypes) are leaf children ([`Attr`]), so patterns can bind them as variables
//! and reuse them (`(softmax ?ax ?x) => (div ... (rsum ?ax true ...))`). Numbers are leaves too;
//! a number used as an operand is a 0-d, weakly typed scalar tensor (it takes the dtype of the
//! other operand). Graph inputs and constants are `%key` leaves referring to the side table in
//! [`super::analysis::TensorAnalysis`]: tensor data never enters an e-node.
//!
//! Written forms (the rule files use them):
//!
//! | op | form |
//! |---|---|
//! | unary | `(exp x)`, `(gelu_tanh x)`, ... ([`UnaryOp`] in snake case) |
//! | binary | `(add a b)`, `(sub a b)`, `(mul a b)`, `(div a b)`, `(max a b)`, `(min a b)`, `(pow a b)` |
//! | matmul | `(matmul a b)` |
//! | reduce | `(rsum axes keep x)`, `rmean`, `rmax`, `rmin`; e.g. `(rmax [1] true x)` |
//! | softmax | `(softmax [axis] x)` |
//! | norms | `(rmsnorm x g eps)`, `(layernorm x g b eps)`, `(layernorm_nobias x g eps)` |
//! | attention | `(attention scale q kt v)`, `(attention_add scale q kt v m)`, `(attention_select scale q kt v c fill)`, `(attention_fill scale q kt v c fill)` |
//! | MLP | `(mlp_<act> x w1 w2)`, `(mlp_bias_<act> x w1 b1 w2)`, `(gated_mlp_<act> x w1 w3 w2)`, `<act>` a unary op's name |
//! | shape ops | `(transpose [perm] x)`, `(reshape [shape] x)`, `(expand [shape] x)`, `(cast dtype x)` |
//! | pointwise | `(clip min max x)`, `(leaky_relu alpha x)`, `(hard_sigmoid alpha beta x)` |
//! | others | `(concat [axis] x...)`, `(slice [axes] [starts] [ends] [steps] x)`, `(gather [axis] d i)`, `(where c a b)`, `(equal a b)`, `(conv [kh,kw,sh,sw,pt,pl,pb,pr,dh,dw,groups] x w [b])` (`conv_relu`: with its ReLU), `(batchnorm eps x s b m v)`, `(pool_max [kh,kw,sh,sw,pt,pl,pb,pr] count_include_pad x)` |
//!
//! The norms take `eps` as a scalar tensor child (not an attribute) so that recognition rules can
//! bind the constant an exporter wrote.

use std::fmt;
use std::str::FromStr;

use egg::{FromOp, Id, Language};

use crate::graph::{AttentionMask, BinaryOp, DType, MlpHidden, ReduceOp, UnaryOp};

/// A 32-bit float compared and hashed by its bits, so it can be an e-node leaf.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Num(u32);

impl Num {
    /// The number `v`.
    pub fn new(v: f32) -> Self {
        Num(v.to_bits())
    }

    /// The value.
    pub fn get(self) -> f32 {
        f32::from_bits(self.0)
    }
}

/// Leaf data of an e-node.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Attr {
    /// A number: an attribute such as `eps` or `alpha`, or a 0-d scalar operand. Written as
    /// Rust prints an `f32` (`0.5`, `-1`, `0.00001`, `inf`), which round-trips exactly.
    Num(Num),
    /// A list of non-negative integers (axes, permutation, shape): `[0,2,1]`, `[]`.
    Ints(Vec<usize>),
    /// A flag (`keep_dims`, `count_include_pad`): `true` / `false`.
    Bool(bool),
    /// An element type: `f32`, `f16`, `bf16`, `i64`, `i32`, `bool`.
    DType(DType),
    /// A graph input or constant in the side table: `%key`.
    Ref(String),
}

const DTYPES: [(&str, DType); 6] = [
    ("f32", DType::F32),
    ("f16", DType::F16),
    ("bf16", DType::BF16),
    ("i64", DType::I64),
    ("i32", DType::I32),
    ("bool", DType::Bool),
];

impl FromStr for Attr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(list) = s.strip_prefix('[') {
            let body = list
                .strip_suffix(']')
                .ok_or_else(|| format!("unclosed list `{s}`"))?;
            if body.is_empty() {
                return Ok(Attr::Ints(vec![]));
            }
            let ints = body
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("`{p}` in `{s}` is not a non-negative integer"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Attr::Ints(ints));
        }
        if let Some(key) = s.strip_prefix('%') {
            if key.is_empty() {
                return Err("`%` needs a key, e.g. `%x`".into());
            }
            return Ok(Attr::Ref(s.to_string()));
        }
        match s {
            "true" => return Ok(Attr::Bool(true)),
            "false" => return Ok(Attr::Bool(false)),
            _ => {}
        }
        if let Some((_, d)) = DTYPES.iter().find(|(n, _)| *n == s) {
            return Ok(Attr::DType(*d));
        }
        s.parse::<f32>()
            .map(|v| Attr::Num(Num::new(v)))
            .map_err(|_| format!("`{s}` is not an operator, number, list, flag, dtype or %ref"))
    }
}

impl fmt::Display for Attr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attr::Num(n) => write!(f, "{}", n.get()),
            Attr::Ints(v) => {
                let parts: Vec<String> = v.iter().map(|i| i.to_string()).collect();
                write!(f, "[{}]", parts.join(","))
            }
            Attr::Bool(b) => write!(f, "{b}"),
            Attr::DType(d) => {
                let name = DTYPES
                    .iter()
                    .find(|(_, x)| x == d)
                    .map(|(n, _)| *n)
                    .unwrap_or("?");
                write!(f, "{name}")
            }
            Attr::Ref(r) => write!(f, "{r}"),
        }
    }
}

/// The operator of an e-node (the graph [`crate::graph::Op`] without tensor inputs; attributes
/// are leaf children).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TOp {
    /// A leaf.
    Leaf(Attr),
    /// `(unary x)`.
    Unary(UnaryOp),
    /// `(binary a b)`.
    Binary(BinaryOp),
    /// `(matmul a b)`.
    MatMul,
    /// `(transpose [perm] x)`.
    Transpose,
    /// `(reshape [shape] x)`.
    Reshape,
    /// `(expand [shape] x)`.
    Expand,
    /// `(cast dtype x)`.
    Cast,
    /// `(rsum [axes] keep x)` etc.
    Reduce(ReduceOp),
    /// `(softmax [axis] x)`.
    Softmax,
    /// `(layernorm x g b eps)`.
    LayerNorm,
    /// `(layernorm_nobias x g eps)`.
    LayerNormNoBias,
    /// `(rmsnorm x g eps)`.
    RmsNorm,
    /// `(clip min max x)`.
    Clip,
    /// `(leaky_relu alpha x)`.
    LeakyRelu,
    /// `(hard_sigmoid alpha beta x)`.
    HardSigmoid,
    /// `(concat [axis] x...)`.
    Concat,
    /// `(slice [axes] [starts] [ends] [steps] x)`.
    Slice,
    /// `(gather [axis] data indices)`.
    Gather,
    /// `(where c a b)`.
    Where,
    /// `(equal a b)`.
    Equal,
    /// `(conv [params] x w [b])`, or with its ReLU fused, `(conv_relu [params] x w [b])`.
    Conv {
        /// Whether the ReLU is fused.
        relu: bool,
    },
    /// `(batchnorm eps x scale bias mean var)`.
    BatchNorm,
    /// `(pool_max [params] count_include_pad x)` etc.
    Pool(ReduceOp),
    /// `(attention scale q kt v)`, `(attention_add scale q kt v m)`,
    /// `(attention_select scale q kt v c fill)`, `(attention_fill scale q kt v c fill)`.
    Attention(AttentionMask),
    /// `(mlp_gelu x w1 w2)`, `(mlp_bias_gelu x w1 b1 w2)`, `(gated_mlp_silu x w1 w3 w2)`: the
    /// form's prefix, then the activation's name.
    Mlp(UnaryOp, MlpHidden),
}

const ATTENTION: [(&str, AttentionMask); 4] = [
    ("attention", AttentionMask::None),
    ("attention_add", AttentionMask::Add),
    ("attention_select", AttentionMask::Select),
    ("attention_fill", AttentionMask::Fill),
];

const MLP: [(&str, MlpHidden); 3] = [
    ("mlp_", MlpHidden::Plain),
    ("mlp_bias_", MlpHidden::Biased),
    ("gated_mlp_", MlpHidden::Gated),
];

const UNARY: [(&str, UnaryOp); 17] = [
    ("exp", UnaryOp::Exp),
    ("log", UnaryOp::Log),
    ("sqrt", UnaryOp::Sqrt),
    ("rsqrt", UnaryOp::Rsqrt),
    ("recip", UnaryOp::Recip),
    ("tanh", UnaryOp::Tanh),
    ("sigmoid", UnaryOp::Sigmoid),
    ("relu", UnaryOp::Relu),
    ("abs", UnaryOp::Abs),
    ("neg", UnaryOp::Neg),
    ("floor", UnaryOp::Floor),
    ("erf", UnaryOp::Erf),
    ("gelu", UnaryOp::Gelu),
    ("gelu_tanh", UnaryOp::GeluTanh),
    ("silu", UnaryOp::Silu),
    ("softplus", UnaryOp::Softplus),
    ("identity", UnaryOp::Identity),
];

const BINARY: [(&str, BinaryOp); 7] = [
    ("add", BinaryOp::Add),
    ("sub", BinaryOp::Sub),
    ("mul", BinaryOp::Mul),
    ("div", BinaryOp::Div),
    ("max", BinaryOp::Max),
    ("min", BinaryOp::Min),
    ("pow", BinaryOp::Pow),
];

const REDUCE: [(&str, &str, ReduceOp); 4] = [
    ("rsum", "pool_sum", ReduceOp::Sum),
    ("rmean", "pool_mean", ReduceOp::Mean),
    ("rmax", "pool_max", ReduceOp::Max),
    ("rmin", "pool_min", ReduceOp::Min),
];

const FIXED: [(&str, TOp, usize); 18] = [
    ("matmul", TOp::MatMul, 2),
    ("transpose", TOp::Transpose, 2),
    ("reshape", TOp::Reshape, 2),
    ("expand", TOp::Expand, 2),
    ("cast", TOp::Cast, 2),
    ("softmax", TOp::Softmax, 2),
    ("layernorm", TOp::LayerNorm, 4),
    ("layernorm_nobias", TOp::LayerNormNoBias, 3),
    ("rmsnorm", TOp::RmsNorm, 3),
    ("clip", TOp::Clip, 3),
    ("leaky_relu", TOp::LeakyRelu, 2),
    ("hard_sigmoid", TOp::HardSigmoid, 3),
    ("slice", TOp::Slice, 5),
    ("gather", TOp::Gather, 3),
    ("where", TOp::Where, 3),
    ("equal", TOp::Equal, 2),
    ("batchnorm", TOp::BatchNorm, 6),
    ("concat", TOp::Concat, 0),
];

impl TOp {
    /// The operator's written name (a leaf writes its data).
    pub fn name(&self) -> String {
        match self {
            TOp::Leaf(a) => a.to_string(),
            TOp::Unary(u) => UNARY
                .iter()
                .find(|(_, x)| x == u)
                .map(|(n, _)| *n)
                .unwrap_or("?")
                .into(),
            TOp::Binary(b) => BINARY
                .iter()
                .find(|(_, x)| x == b)
                .map(|(n, _)| *n)
                .unwrap_or("?")
                .into(),
            TOp::Reduce(r) => REDUCE
                .iter()
                .find(|(_, _, x)| x == r)
                .map(|(n, _, _)| *n)
                .unwrap_or("?")
                .into(),
            TOp::Pool(r) => REDUCE
                .iter()
                .find(|(_, _, x)| x == r)
                .map(|(_, n, _)| *n)
                .unwrap_or("?")
                .into(),
            TOp::Conv { relu: false } => "conv".into(),
            TOp::Conv { relu: true } => "conv_relu".into(),
            TOp::Attention(m) => ATTENTION
                .iter()
                .find(|(_, x)| x == m)
                .map(|(n, _)| *n)
                .unwrap_or("?")
                .into(),
            TOp::Mlp(act, h) => {
                let prefix = MLP.iter().find(|(_, x)| x == h).map_or("?", |(n, _)| *n);
                format!("{prefix}{}", TOp::Unary(*act).name())
            }
            other => FIXED
                .iter()
                .find(|(_, x, _)| x == other)
                .map(|(n, _, _)| *n)
                .unwrap_or("?")
                .into(),
        }
    }

    /// Whether `n` children fit this operator.
    pub fn arity_ok(&self, n: usize) -> bool {
        match self {
            TOp::Leaf(_) => n == 0,
            TOp::Unary(_) => n == 1,
            TOp::Binary(_) => n == 2,
            TOp::Reduce(_) | TOp::Pool(_) => n == 3,
            TOp::Concat => n >= 2,
            TOp::Conv { .. } => n == 3 || n == 4,
            TOp::Attention(m) => n == m.inputs() + 1,
            TOp::Mlp(_, h) => n == h.inputs(),
            other => FIXED.iter().any(|(_, x, a)| x == other && *a == n),
        }
    }

    /// Parses a written operator name (not a leaf).
    fn parse_op(s: &str) -> Option<TOp> {
        if let Some((_, u)) = UNARY.iter().find(|(n, _)| *n == s) {
            return Some(TOp::Unary(*u));
        }
        if let Some((_, b)) = BINARY.iter().find(|(n, _)| *n == s) {
            return Some(TOp::Binary(*b));
        }
        if let Some((_, _, r)) = REDUCE.iter().find(|(n, _, _)| *n == s) {
            return Some(TOp::Reduce(*r));
        }
        if let Some((_, _, r)) = REDUCE.iter().find(|(_, n, _)| *n == s) {
            return Some(TOp::Pool(*r));
        }
        if s == "conv" || s == "conv_relu" {
            return Some(TOp::Conv {
                relu: s == "conv_relu",
            });
        }
        if let Some((_, m)) = ATTENTION.iter().find(|(n, _)| *n == s) {
            return Some(TOp::Attention(*m));
        }
        // Longest prefix first: `mlp_bias_gelu` is a biased MLP, not an MLP of `bias_gelu`.
        for (prefix, h) in MLP.iter().rev() {
            if let Some((_, u)) = s
                .strip_prefix(prefix)
                .and_then(|act| UNARY.iter().find(|(n, _)| *n == act))
            {
                return Some(TOp::Mlp(*u, *h));
            }
        }
        FIXED
            .iter()
            .find(|(n, _, _)| *n == s)
            .map(|(_, op, _)| op.clone())
    }
}

/// An e-node: an operator and its child e-classes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TNode {
    /// The operator.
    pub op: TOp,
    /// The children, attributes first (see the module docs for each operator's order).
    pub children: Vec<Id>,
}

impl TNode {
    /// A new e-node.
    pub fn new(op: TOp, children: Vec<Id>) -> Self {
        TNode { op, children }
    }

    /// A leaf e-node.
    pub fn leaf(attr: Attr) -> Self {
        TNode {
            op: TOp::Leaf(attr),
            children: vec![],
        }
    }
}

impl Language for TNode {
    type Discriminant = TOp;

    fn discriminant(&self) -> Self::Discriminant {
        self.op.clone()
    }

    fn matches(&self, other: &Self) -> bool {
        self.op == other.op && self.children.len() == other.children.len()
    }

    fn children(&self) -> &[Id] {
        &self.children
    }

    fn children_mut(&mut self) -> &mut [Id] {
        &mut self.children
    }
}

impl fmt::Display for TNode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.op.name())
    }
}

/// Why a written e-node could not be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read `{op}` with {children} child(ren): {reason}")]
pub struct NodeParseError {
    /// The operator as written.
    pub op: String,
    /// The number of children given.
    pub children: usize,
    /// What is wrong.
    pub reason: String,
}

impl FromOp for TNode {
    type Error = NodeParseError;

    fn from_op(op: &str, children: Vec<Id>) -> Result<Self, Self::Error> {
        let err = |reason: String| NodeParseError {
            op: op.to_string(),
            children: children.len(),
            reason,
        };
        let top = match TOp::parse_op(op) {
            Some(t) => t,
            None if children.is_empty() => TOp::Leaf(op.parse::<Attr>().map_err(err)?),
            None => return Err(err("unknown operator".into())),
        };
        if !top.arity_ok(children.len()) {
            return Err(err("wrong number of children".into()));
        }
        Ok(TNode { op: top, children })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use egg::RecExpr;

    #[test]
    fn expressions_round_trip_through_text() {
        for s in [
            "(softmax [1] %x)",
            "(rmsnorm %x %g 0.00001)",
            "(rmax [0,2] true (mul %x -0.5))",
            "(cast bf16 (clip -inf inf %x))",
            "(conv [3,3,1,1,1,1,1,1,1,1,1] %x %w)",
            "(conv_relu [3,3,1,1,1,1,1,1,1,1,1] %x %w %b)",
            "(concat [0] %a %b %c)",
            "(attention_select 0.125 %q %kt %v %c -inf)",
            "(mlp_bias_gelu %x %w1 %b1 %w2)",
            "(gated_mlp_silu %x %w1 %w3 %w2)",
        ] {
            let e: RecExpr<TNode> = s.parse().unwrap();
            let again: RecExpr<TNode> = e.to_string().parse().unwrap();
            assert_eq!(again, e, "{s}");
            assert_eq!(e.to_string().replace('"', ""), s);
        }
    }

    #[test]
    fn numbers_round_trip_exactly() {
        for v in [1e-5f32, 0.70710677, -0.0, f32::MIN_POSITIVE, 3.4028235e38] {
            let a: Attr = Attr::Num(Num::new(v)).to_string().parse().unwrap();
            assert_eq!(a, Attr::Num(Num::new(v)));
        }
    }

    #[test]
    fn bad_nodes_are_rejected() {
        assert!("(exp %x %y)".parse::<RecExpr<TNode>>().is_err());
        assert!("(frobnicate %x)".parse::<RecExpr<TNode>>().is_err());
        assert!("[1,a]".parse::<RecExpr<TNode>>().is_err());
    }
}
