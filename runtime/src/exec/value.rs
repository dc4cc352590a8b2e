//! Run-time values of the TT-Lang subset: Python scalars and tuples, and the TT-Lang objects
//! (tensors, tile slices, circular buffers, blocks, pipes, transfers).

use std::rc::Rc;

use super::block::Block;

/// A pipe endpoint pair: `ttl.Pipe(src=(x, y), dst=(x, y))`. Pipes with the same ends are one
/// channel; blocks sent through it are received in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct PipeEnds {
    pub src: (u32, u32),
    pub dst: (u32, u32),
}

/// A tile slice of a DRAM tensor: tile rows `r0..r1`, tile columns `c0..c1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TileSlice {
    pub tensor: usize,
    pub r0: usize,
    pub r1: usize,
    pub c0: usize,
    pub c1: usize,
}

/// A handle on a circular-buffer block returned by `cb.wait()` (front side) or `cb.reserve()`
/// (reserve side). `seq` identifies the block, so a handle used after its pop/push is caught.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BlockHandle {
    pub cb: usize,
    pub seq: u64,
    pub reserved: bool,
}

/// A value.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    /// A name that has not been assigned yet; reading it is an error.
    Unbound,
    /// Python `None` (the result of `cb.pop()`, `o.store(...)`, ...).
    None,
    /// A Python int.
    Int(i64),
    /// A Python float.
    Float(f64),
    /// A Python bool.
    Bool(bool),
    /// A Python string.
    Str(Rc<str>),
    /// A tuple or list of values.
    Tuple(Rc<Vec<Value>>),
    /// Kernel parameter `i`: a DRAM tensor.
    Tensor(usize),
    /// A tile slice of a DRAM tensor.
    Slice(TileSlice),
    /// Circular buffer `i` of the current core.
    Cb(usize),
    /// A block of a circular buffer.
    Block(BlockHandle),
    /// A computed block (the result of block math, not yet stored).
    Data(Rc<Block>),
    /// A pipe.
    Pipe(PipeEnds),
    /// An issued copy; `done` is its completion time in cycles.
    Transfer { done: f64 },
}

impl Value {
    /// A short description of the value's type for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Unbound => "unassigned name",
            Value::None => "None",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Bool(_) => "bool",
            Value::Str(_) => "str",
            Value::Tuple(_) => "tuple",
            Value::Tensor(_) => "tensor",
            Value::Slice(_) => "tensor tile slice",
            Value::Cb(_) => "circular buffer",
            Value::Block(h) if h.reserved => "reserved block",
            Value::Block(_) => "waited block",
            Value::Data(_) => "computed block",
            Value::Pipe(_) => "pipe",
            Value::Transfer { .. } => "transfer",
        }
    }

    /// The value as an integer, if it is an int or bool.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            _ => None,
        }
    }

    /// The value as a float, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Bool(b) => Some(*b as i64 as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// Python truthiness for scalars.
    pub fn truthy(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Int(i) => Some(*i != 0),
            Value::Float(f) => Some(*f != 0.0),
            Value::None => Some(false),
            Value::Str(s) => Some(!s.is_empty()),
            Value::Tuple(t) => Some(!t.is_empty()),
            _ => None,
        }
    }

    /// Whether this value is a block (circular-buffer block or computed block).
    pub fn is_block(&self) -> bool {
        matches!(self, Value::Block(_) | Value::Data(_))
    }
}
