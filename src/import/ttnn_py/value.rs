//! Values of the TTNN Python interpreter and the arguments of a call.

use std::collections::BTreeMap;

use petgraph::graph::NodeIndex;

use crate::graph::DType;

/// A Python value the importer tracks.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// A tensor: a graph node.
    Tensor(NodeIndex),
    /// A Python number.
    Num(f64),
    /// A Python bool.
    Bool(bool),
    /// A string.
    Str(String),
    /// A tuple or list.
    Seq(Vec<Val>),
    /// An element type such as `ttnn.bfloat16`.
    DType(DType),
    /// A module or a dotted path into one, e.g. `ttnn` or `ttnn.exp`.
    Path(String),
    /// Something with no effect on the graph (a device, a layout, a memory config).
    Opaque(String),
    /// `None`.
    None,
}

impl Val {
    /// A short description for errors.
    pub fn describe(&self) -> String {
        match self {
            Val::Tensor(_) => "a tensor".into(),
            Val::Num(n) => format!("the number {n}"),
            Val::Bool(b) => format!("the bool {b}"),
            Val::Str(s) => format!("the string {s:?}"),
            Val::Seq(_) => "a tuple/list".into(),
            Val::DType(d) => format!("the dtype {d:?}"),
            Val::Path(p) => format!("`{p}`"),
            Val::Opaque(what) => what.clone(),
            Val::None => "None".into(),
        }
    }

    /// The value as an integer, if it is an integral number.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Val::Num(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Some(*n as i64),
            Val::Bool(b) => Some(i64::from(*b)),
            _ => None,
        }
    }

    /// The value as a list of integers (a single integer is a list of one).
    pub fn as_ints(&self) -> Option<Vec<i64>> {
        match self {
            Val::Seq(items) => items.iter().map(Val::as_int).collect(),
            other => other.as_int().map(|i| vec![i]),
        }
    }
}

/// The evaluated arguments of a call.
#[derive(Clone, Debug, Default)]
pub struct Args {
    /// Positional arguments.
    pub pos: Vec<Val>,
    /// Keyword arguments.
    pub kw: BTreeMap<String, Val>,
}

impl Args {
    /// Argument `i`, or keyword `name`; `None` for a missing or `None` argument.
    pub fn get(&self, i: usize, name: &str) -> Option<&Val> {
        self.pos
            .get(i)
            .or_else(|| self.kw.get(name))
            .filter(|v| **v != Val::None)
    }
}
