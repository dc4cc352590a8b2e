//! The compute body of one kernel as a small dataflow of tile-level values.
//!
//! Graph nodes of a kernel are translated into values whose operations map one to one onto
//! TT-Lang (`ttl.math.exp`, `+`, `ttl.math.reduce_max(..., dims=[0])`, `ttl.math.broadcast`),
//! each with a [`Class`] saying which part of the kernel's iteration space it covers. Composite
//! ops (softmax, norms, GELU) expand here. Values that must live in a circular buffer (reads
//! from DRAM, reductions and their operands, a broadcast's operand, outputs, values needed by
//! several stages) are marked *materialized*; every other value is computed inline in the
//! expression of the materialized value that uses it. A broadcast is computed inline too, as the
//! first op of the one stage that uses it (the guide's fusion with broadcast), when that stage
//! writes a block of its shape and takes no other block-argument op.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::NodeIndex;

use super::concat::{self, ConcatPart};
use super::group::{is_last_two_swap, resolve};
use super::heads::{read_in_place, HeadView, HeadWrite};
use super::layout::{flat2d, is_padded, layout_of, Class};
use super::names::Stems;
use super::stream::Stream;
use super::{Partition, PlanError};
use crate::graph::{BinaryOp, Graph, Op, ReduceOp, UnaryOp};
use ttfuse_runtime::ttl::ops::UnaryFn;

/// TT-Lang elementwise functions of two blocks of the same shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TtBinary {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `ttl.math.max(a, b)`
    Max,
    /// `ttl.math.min(a, b)`
    Min,
}

/// Row reductions (`dims=[0]`: one result per row, in column 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowReduce {
    /// `ttl.math.reduce_sum`
    Sum,
    /// `ttl.math.reduce_max`
    Max,
}

/// What a value computes.
#[derive(Clone, Debug, PartialEq)]
pub enum ValueOp {
    /// Read from DRAM by the reader thread: `Body::loads[i]`.
    Load(usize),
    /// The accumulated product of the kernel's matmul (matmul kernels only).
    MatMul,
    /// `ttl.math.matmul(args[0], args[1], out)`: a block spanning whole rows (class `Full`)
    /// times a whole matrix read from DRAM (class [`Class::Matrix`]), giving the block's rows
    /// of a product of another width (class [`Class::Wide`]). A matmul chained after a
    /// row-wise epilogue, e.g. attention's `softmax(q k^T) @ v`.
    Product,
    /// An elementwise function.
    Unary(UnaryFn),
    /// An elementwise function of two operands of the same class.
    Binary(TtBinary),
    /// `ttl.power(x, n)`.
    Power(u32),
    /// A row reduction of `args[0]` scaled by the scaler tile `args[1]`.
    Reduce(RowReduce),
    /// `ttl.math.broadcast` of `args[0]` to this value's class.
    Broadcast,
    /// A plain store of `args[0]` (an output that is also used inside the kernel).
    Copy,
}

/// One tile-level value.
#[derive(Clone, Debug, PartialEq)]
pub struct Value {
    /// The operation.
    pub op: ValueOp,
    /// Operand values (indices into `Body::values`, always smaller than this value's index).
    pub args: Vec<usize>,
    /// The part of the iteration space the value covers.
    pub class: Class,
    /// Whether it is cut to its block's chunk of a chained product's columns
    /// ([`super::wide::split`]): its blocks sit at the chunk's column.
    pub chunked: bool,
    /// A unique identifier stem for its circular buffer and local names.
    pub stem: String,
}

/// Where a DRAM read comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum LoadSource {
    /// A graph tensor produced outside the kernel (or a graph input or constant).
    Tensor(NodeIndex),
    /// A constant tile filled with this value (scalars and reduce scalers).
    Scalar(f32),
    /// The additive mask of a `Where(constant condition, +-inf, x)` node (see [`where_mask`]):
    /// a constant tensor of the node's shape, built by the lowering.
    WhereMask(NodeIndex),
    /// Constant `constant` broadcast over leading (batch) axes to node `like`'s shape (see
    /// [`expanded_constant`]), built by the lowering.
    Expanded {
        /// The constant node.
        constant: NodeIndex,
        /// The elementwise node whose shape it is expanded to.
        like: NodeIndex,
    },
    /// The right operand of a chained product ([`ValueOp::Product`]): a whole matrix per block.
    Matrix(MatrixRead),
    /// A concatenation read in place ([`super::concat`]): each block from the part holding its
    /// rows.
    Concat(Vec<ConcatPart>),
    /// A constant row vector over the kernel's `cols` columns (device-padded to whole tiles):
    /// `valid` in the real columns, `pad` in the padding. It masks the padding of a last axis
    /// that is not a multiple of 32 before a row reduction.
    Mask {
        /// The real number of columns.
        cols: usize,
        /// The value in real columns.
        valid: f32,
        /// The value in padded columns.
        pad: f32,
    },
}

impl LoadSource {
    /// The graph tensor read, for reads of one ([`LoadSource::Tensor`], [`LoadSource::Matrix`]).
    pub fn tensor(&self) -> Option<NodeIndex> {
        match self {
            LoadSource::Tensor(n) => Some(*n),
            LoadSource::Matrix(m) => Some(m.tensor),
            _ => None,
        }
    }

    /// The graph tensors read: the one of [`LoadSource::tensor`], or a concatenation's parts.
    pub fn tensors(&self) -> Vec<NodeIndex> {
        match self {
            LoadSource::Concat(parts) => parts.iter().map(|p| p.tensor).collect(),
            other => other.tensor().into_iter().collect(),
        }
    }
}

/// Where a chained product's right operand comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MatrixRead {
    /// The tensor read (a head view's source when `head` is set).
    pub tensor: NodeIndex,
    /// Batch `h` is the column range of `tensor` at `col0 + h * head_tiles` ([`HeadView`]).
    pub head: Option<HeadView>,
    /// Whether the tensor holds one matrix per batch, stacked by rows (otherwise one matrix
    /// for every batch).
    pub batched: bool,
}

/// One tensor the kernel reads.
#[derive(Clone, Debug, PartialEq)]
pub struct Load {
    /// What is read.
    pub source: LoadSource,
    /// The value that holds it.
    pub value: usize,
    /// The kernel parameter it is read from (shared by loads of the same tensor).
    pub param: String,
    /// Whether the tensor holds one batch's rows, the same for every batch of a batched matmul
    /// kernel, and is read at the block's row within its batch (a causal mask over heads).
    pub batch_shared: bool,
}

impl Load {
    /// Whether a core of a kernel planned as `p` reads this load once and keeps it for all its
    /// blocks: a load every batch shares, in a layout whose cores take one row block of
    /// successive batches ([`Partition::keeps_batch_shared`]).
    pub fn kept_by_core(&self, p: &Partition) -> bool {
        self.batch_shared && p.keeps_batch_shared()
    }
}

/// A kernel body.
#[derive(Clone, Debug, PartialEq)]
pub struct Body {
    /// The iteration space as a 2-D view in elements.
    pub space: (usize, usize),
    /// The values in topological order.
    pub values: Vec<Value>,
    /// The DRAM reads, in order of first appearance.
    pub loads: Vec<Load>,
    /// The graph nodes the kernel writes, each with the value stored into its output buffer.
    pub outputs: Vec<(NodeIndex, usize)>,
    /// Which values live in circular buffers (see the module docs).
    pub materialized: Vec<bool>,
    /// Approximations made while expanding ops, for the plan.
    pub notes: Vec<String>,
    /// How the one output is written when attention heads are merged or split on the way.
    pub head_write: Option<HeadWrite>,
    /// The hidden layer streamed chunk by chunk, if any ([`super::stream`]).
    pub stream: Option<Stream>,
}

impl Body {
    /// The block heights, in tiles, that the body's reads allow among `choices`: with a
    /// concatenation read in place, those whose blocks each lie within one of its parts.
    pub fn row_choices(&self, choices: Vec<usize>) -> Vec<usize> {
        match self.row_alignment() {
            Some(a) => choices
                .into_iter()
                .filter(|&b| a.is_multiple_of(b))
                .collect(),
            None => choices,
        }
    }

    /// With a concatenation read in place, the largest block height, in tiles, whose blocks
    /// each lie within one of its parts (a block height must divide it); `None` without one.
    pub fn row_alignment(&self) -> Option<usize> {
        self.loads
            .iter()
            .filter_map(|l| match &l.source {
                LoadSource::Concat(parts) => concat::row_alignment(parts),
                _ => None,
            })
            .reduce(concat::gcd)
    }

    /// The values that use each value.
    pub fn users(&self) -> Vec<Vec<usize>> {
        let mut users = vec![Vec::new(); self.values.len()];
        for (i, v) in self.values.iter().enumerate() {
            for &a in &v.args {
                if !users[a].contains(&i) {
                    users[a].push(i);
                }
            }
        }
        users
    }

    /// Whether value `v` belongs to a streamed hidden layer ([`super::stream`]).
    pub fn is_streamed(&self, v: usize) -> bool {
        self.stream
            .as_ref()
            .is_some_and(|st| st.values.contains(&v))
    }

    /// Whether the body has a row reduction (its blocks must then span whole rows).
    pub fn is_rowwise(&self) -> bool {
        self.values
            .iter()
            .any(|v| matches!(v.op, ValueOp::Reduce(_)))
    }

    /// The output nodes' values that are stored straight into an output buffer.
    pub fn output_values(&self) -> BTreeSet<usize> {
        self.outputs.iter().map(|&(_, v)| v).collect()
    }
}

/// What a max reduction's mask adds to padded columns: far below any real value, yet finite in
/// bf16 so that `exp(x - max)` stays 0 there.
pub const PAD_MAX: f32 = -1.0e30;

/// Builds a [`Body`] from graph nodes.
pub struct BodyBuilder<'g> {
    graph: &'g Graph,
    space: (usize, usize),
    body: Body,
    of_node: BTreeMap<NodeIndex, usize>,
    tensor_loads: BTreeMap<NodeIndex, usize>,
    scalar_loads: BTreeMap<u32, usize>,
    mask_loads: BTreeMap<(u32, u32), usize>,
    broadcasts: BTreeMap<(usize, Class), usize>,
    params: BTreeMap<NodeIndex, String>,
    stems: Stems,
    /// The width in tiles of the chained product whose epilogue the current node is in (its
    /// classes are relative to `(space rows, width)`), if any.
    wide: Option<usize>,
    /// Softmaxes whose only use is a chained product of this kernel: normalized after it.
    defer: BTreeSet<NodeIndex>,
    /// Each deferred softmax's reciprocal row sums, which scale its product.
    deferred: BTreeMap<NodeIndex, usize>,
    /// Whether concatenations are read in place from their inputs ([`super::concat`]): in
    /// fused kernels, where they have no kernel of their own.
    concats_in_place: bool,
}

impl<'g> BodyBuilder<'g> {
    /// A builder for a kernel whose iteration space is the 2-D view `space`.
    pub fn new(graph: &'g Graph, space: (usize, usize)) -> Self {
        BodyBuilder {
            graph,
            space,
            body: Body {
                space,
                values: Vec::new(),
                loads: Vec::new(),
                outputs: Vec::new(),
                materialized: Vec::new(),
                notes: Vec::new(),
                head_write: None,
                stream: None,
            },
            of_node: BTreeMap::new(),
            tensor_loads: BTreeMap::new(),
            scalar_loads: BTreeMap::new(),
            mask_loads: BTreeMap::new(),
            broadcasts: BTreeMap::new(),
            params: BTreeMap::new(),
            stems: Stems::new(),
            wide: None,
            defer: BTreeSet::new(),
            deferred: BTreeMap::new(),
            concats_in_place: false,
        }
    }

    /// Reads the concatenations that [`super::concat::read_in_place`] allows from their
    /// inputs, as fused kernels do.
    pub fn read_concats_in_place(&mut self) {
        self.concats_in_place = true;
    }

    /// Computes each softmax of `nodes` unnormalized, `exp(x - max)`, and divides the chained
    /// product that is its only use by the row sums instead: `softmax(s) @ v` as
    /// `(exp(s - max) @ v) / sum`, the division over the product's columns rather than the
    /// scores', and one block of scores fewer in L1.
    pub fn defer_normalization(&mut self, nodes: BTreeSet<NodeIndex>) {
        self.defer = nodes;
    }

    /// Reserves a stem (e.g. a kernel parameter that is not a body value).
    pub fn reserve_stem(&mut self, raw: &str) -> String {
        self.stems.alloc(raw)
    }

    fn push(&mut self, op: ValueOp, args: Vec<usize>, class: Class, stem_raw: &str) -> usize {
        let stem = self.stems.alloc(stem_raw);
        self.body.values.push(Value {
            op,
            args,
            class,
            chunked: false,
            stem,
        });
        self.body.values.len() - 1
    }

    /// The class of graph tensor `n` in the current node's space: the kernel's, or the rows of
    /// a chained product's epilogue ([`Class::Wide`]).
    fn class_of(&self, n: NodeIndex) -> Result<Class, PlanError> {
        let node = self.graph.node(n);
        let space = match self.wide {
            Some(w) => (self.space.0, w * 32),
            None => self.space,
        };
        let class = Class::of(flat2d(&node.ty.shape), space).ok_or_else(|| PlanError::Unsupported {
            node: node.name.clone(),
            op: node.op.name(),
            reason: format!(
                "shape {:?} broadcasts against the kernel's {}x{} space in a way other than rows, columns or a scalar",
                node.ty.shape, space.0, space.1
            ),
        })?;
        Ok(match (self.wide, class) {
            (Some(w), Class::Full) => Class::Wide(w),
            (Some(w), Class::Row) => Class::WideRow(w),
            (_, c) => c,
        })
    }

    /// The width of the chained product whose epilogue node `n` is in: the width of any of its
    /// in-kernel operands of a [`Class::Wide`] or [`Class::WideRow`] class.
    fn wide_of(&self, n: NodeIndex) -> Option<usize> {
        self.graph.inputs_of(n).into_iter().find_map(|i| {
            let v = *self.of_node.get(&resolve(self.graph, i))?;
            match self.body.values[v].class {
                Class::Wide(w) | Class::WideRow(w) => Some(w),
                _ => None,
            }
        })
    }

    /// The kernel parameter graph tensor `t` is read from (one per tensor).
    fn param_of(&mut self, t: NodeIndex) -> String {
        if let Some(p) = self.params.get(&t) {
            return p.clone();
        }
        let p = self.stems.alloc(&self.graph.node(t).name);
        self.params.insert(t, p.clone());
        p
    }

    /// A new value read from DRAM by the reader thread from `source`. Every read of one graph
    /// tensor uses one kernel parameter (a launch binds a tensor to one parameter): the one
    /// [`Self::share_param`] set, or the first read's stem. Other reads use their own stem.
    fn load(&mut self, source: LoadSource, class: Class, stem: &str) -> usize {
        let v = self.push(ValueOp::Load(self.body.loads.len()), vec![], class, stem);
        let own = self.body.values[v].stem.clone();
        let param = match (&source, source.tensor()) {
            // A concatenation's buffer is made like its first part.
            (LoadSource::Concat(parts), _) => parts.first().map_or(own, |p| p.param.clone()),
            (_, Some(t)) => self.params.entry(t).or_insert(own).clone(),
            (_, None) => own,
        };
        self.body.loads.push(Load {
            source,
            value: v,
            param,
            batch_shared: false,
        });
        v
    }

    /// A read of constant `q` expanded to node `n`'s shape (see [`expanded_constant`]).
    fn expanded(&mut self, n: NodeIndex, q: NodeIndex) -> Result<usize, PlanError> {
        let class = self.class_of(n)?;
        let stem = format!("{}_expanded", self.graph.node(q).name);
        let source = LoadSource::Expanded {
            constant: q,
            like: n,
        };
        Ok(self.load(source, class, &stem))
    }

    /// Makes every read of graph tensor `n` use kernel parameter `param` (a matmul operand
    /// that its epilogue reads too).
    pub fn share_param(&mut self, n: NodeIndex, param: String) {
        self.params.insert(resolve(self.graph, n), param);
    }

    /// Binds graph node `n` (computed elsewhere) to `value`, e.g. the matmul result.
    pub fn bind(&mut self, n: NodeIndex, value: usize) {
        self.of_node.insert(n, value);
    }

    /// The matmul result value of a matmul kernel.
    pub fn matmul(&mut self, n: NodeIndex) -> usize {
        self.matmul_reading(n, vec![])
    }

    /// The matmul result value of a matmul kernel whose stage also reads `constants` (the
    /// scaler and epsilon tiles of a left operand the kernel normalizes).
    pub fn matmul_reading(&mut self, n: NodeIndex, constants: Vec<usize>) -> usize {
        let stem = self.graph.node(n).name.clone();
        let v = self.push(ValueOp::MatMul, constants, Class::Full, &stem);
        self.bind(n, v);
        v
    }

    /// The chained product of matmul node `n`, whose left operand is already a value of the
    /// kernel spanning whole rows of the space, and whose right operand is read whole from DRAM
    /// per block (in place when it is a head view).
    pub fn product(&mut self, n: NodeIndex) -> Result<usize, PlanError> {
        let graph = self.graph;
        let node = graph.node(n);
        let unsupported = |reason: String| PlanError::Unsupported {
            node: node.name.clone(),
            op: node.op.name(),
            reason,
        };
        let ins = graph.inputs_of(n);
        let (Some(&a_raw), Some(&b_raw)) = (ins.first(), ins.get(1)) else {
            return Err(unsupported("a matmul needs two inputs".into()));
        };
        let a = *self.of_node.get(&resolve(graph, a_raw)).ok_or_else(|| {
            unsupported("a chained product's left operand must be computed in its kernel".into())
        })?;
        let a_cols = match self.body.values[a].class {
            Class::Full => self.space.1,
            Class::Wide(w) => w * 32,
            _ => {
                return Err(unsupported(
                    "a chained product's left operand must span whole rows of the kernel".into(),
                ))
            }
        };
        let a_shape = &graph.node(a_raw).ty.shape;
        let b_shape = &graph.node(b_raw).ty.shape;
        let [.., k, cols] = b_shape[..] else {
            return Err(unsupported(format!(
                "chained product {a_shape:?} @ {b_shape:?}: a vector right operand is not lowered"
            )));
        };
        if a_cols != k || !k.is_multiple_of(32) || !cols.is_multiple_of(32) {
            return Err(unsupported(format!(
                "chained product {a_shape:?} @ {b_shape:?}: K and N must be whole tiles"
            )));
        }
        let head = read_in_place(graph, b_raw);
        if head.is_some_and(|v| v.transposed) || is_last_two_swap(graph, b_raw) {
            return Err(unsupported(
                "a chained product reads its right operand untransposed".into(),
            ));
        }
        let batched = head.is_none()
            && b_shape.len() > 2
            && b_shape[..b_shape.len() - 2].iter().product::<usize>() > 1;
        let tensor = head.map_or_else(|| resolve(graph, b_raw), |v| v.source);
        let class = Class::Matrix(k / 32, cols / 32);
        let stem = graph.node(tensor).name.clone();
        let source = LoadSource::Matrix(MatrixRead {
            tensor,
            head,
            batched,
        });
        let b = self.load(source, class, &stem);
        // A product as wide as the kernel's space covers it.
        let class = if cols == self.space.1 {
            Class::Full
        } else {
            Class::Wide(cols / 32)
        };
        let v = match self.deferred.get(&resolve(graph, a_raw)).copied() {
            // A deferred softmax: the product of its unnormalized rows, times the reciprocals
            // of their sums.
            Some(inverse_sums) => {
                let stem = format!("{}_unnormalized", node.name);
                let p = self.push(ValueOp::Product, vec![a, b], class, &stem);
                self.binary(TtBinary::Mul, p, inverse_sums, &node.name.clone())
            }
            None => self.push(ValueOp::Product, vec![a, b], class, &node.name.clone()),
        };
        self.bind(n, v);
        Ok(v)
    }

    /// The value of graph tensor `n`: its in-kernel value, or a DRAM read of it (a scalar
    /// constant becomes a constant tile).
    pub fn operand(&mut self, n: NodeIndex) -> Result<usize, PlanError> {
        let n = resolve(self.graph, n);
        if let Some(&v) = self.of_node.get(&n) {
            return Ok(v);
        }
        let node = self.graph.node(n);
        if let Op::Constant(data) = &node.op {
            if data.len() == 1 {
                let value = data.to_f32()[0];
                return Ok(self.scalar(value));
            }
        }
        if let Some(&v) = self.tensor_loads.get(&n) {
            return Ok(v);
        }
        if layout_of(&node.ty.shape).is_none() {
            return Err(PlanError::shape(self.graph, n));
        }
        let class = self.class_of(n)?;
        let source = if self.concats_in_place && concat::read_in_place(self.graph, n) {
            let parts = concat::sources(self.graph, n)
                .into_iter()
                .map(|(tensor, first_row, rows)| ConcatPart {
                    tensor,
                    first_row,
                    rows,
                    param: self.param_of(tensor),
                })
                .collect();
            LoadSource::Concat(parts)
        } else {
            LoadSource::Tensor(n)
        };
        let v = self.load(source, class, &node.name.clone());
        self.tensor_loads.insert(n, v);
        Ok(v)
    }

    /// A constant tile filled with `value` (shared by every use of the same value).
    pub fn scalar(&mut self, value: f32) -> usize {
        if let Some(&v) = self.scalar_loads.get(&value.to_bits()) {
            return v;
        }
        let stem = scalar_stem(value);
        let v = self.load(LoadSource::Scalar(value), Class::Scalar, &stem);
        self.scalar_loads.insert(value.to_bits(), v);
        v
    }

    /// `v` expanded to class `to` (a materialized broadcast, shared per target class).
    fn widen(&mut self, v: usize, to: Class) -> usize {
        let from = self.body.values[v].class;
        if from == to {
            return v;
        }
        if let Some(&b) = self.broadcasts.get(&(v, to)) {
            return b;
        }
        let stem = format!("{}_bcast", self.body.values[v].stem);
        let b = self.push(ValueOp::Broadcast, vec![v], to, &stem);
        self.broadcasts.insert((v, to), b);
        b
    }

    fn unary(&mut self, f: UnaryFn, a: usize, stem: &str) -> usize {
        let class = self.body.values[a].class;
        self.push(ValueOp::Unary(f), vec![a], class, stem)
    }

    /// `x` through `ops` in order, each `(op, right operand, stem)`: every intermediate value
    /// is named by its stem, the last by `name` (a norm's optional scale and shift).
    fn chain(&mut self, x: usize, ops: &[(TtBinary, usize, String)], name: &str) -> usize {
        let mut v = x;
        for (i, (f, operand, stem)) in ops.iter().enumerate() {
            let stem = if i + 1 == ops.len() { name } else { stem };
            v = self.binary(*f, v, *operand, stem);
        }
        v
    }

    fn binary(&mut self, f: TtBinary, a: usize, b: usize, stem: &str) -> usize {
        let class = Class::join(self.body.values[a].class, self.body.values[b].class);
        let a = self.widen(a, class);
        let b = self.widen(b, class);
        self.push(ValueOp::Binary(f), vec![a, b], class, stem)
    }

    /// A row vector holding `valid` in the space's real columns and `pad` in the padding.
    fn mask(&mut self, valid: f32, pad: f32) -> usize {
        let key = (valid.to_bits(), pad.to_bits());
        if let Some(&v) = self.mask_loads.get(&key) {
            return v;
        }
        let stem = if pad == 0.0 {
            "col_mask"
        } else {
            "col_mask_neg"
        };
        let source = LoadSource::Mask {
            cols: self.space.1,
            valid,
            pad,
        };
        let v = self.load(source, Class::Row, stem);
        self.mask_loads.insert(key, v);
        v
    }

    /// A row reduction of `x`. When the last axis is padded on the device, the padding is
    /// masked first: multiplied by 0 for a sum, pushed to -1e30 for a max (the padding holds
    /// whatever the ops before computed from zeros, e.g. `exp(0) = 1`).
    fn reduce(&mut self, f: RowReduce, x: usize, scale: f32, stem: &str) -> usize {
        let cols = self.space.1;
        let x = if cols > 1 && is_padded(cols) {
            match f {
                RowReduce::Sum => {
                    let m = self.mask(1.0, 0.0);
                    self.binary(TtBinary::Mul, x, m, &format!("{stem}_masked"))
                }
                RowReduce::Max => {
                    let m = self.mask(0.0, PAD_MAX);
                    self.binary(TtBinary::Add, x, m, &format!("{stem}_masked"))
                }
            }
        } else {
            x
        };
        let s = self.scalar(scale);
        self.push(ValueOp::Reduce(f), vec![x, s], Class::Col, stem)
    }

    /// Translates graph node `n` (whose inputs are already bound or external).
    pub fn node(&mut self, n: NodeIndex) -> Result<usize, PlanError> {
        let node = self.graph.node(n).clone();
        let name = node.name.as_str();
        let ins = self.graph.inputs_of(n);
        let arg = |b: &mut Self, i: usize| -> Result<usize, PlanError> {
            let src = *ins.get(i).ok_or_else(|| PlanError::Unsupported {
                node: name.to_string(),
                op: node.op.name(),
                reason: format!("input {i} is missing"),
            })?;
            b.operand(src)
        };
        let unsupported = |reason: &str| PlanError::Unsupported {
            node: name.to_string(),
            op: node.op.name(),
            reason: reason.to_string(),
        };
        let rank = node.ty.shape.len();
        self.wide = self.wide_of(n);
        if self.wide.is_some()
            && matches!(
                node.op,
                Op::Reduce { .. } | Op::Softmax { .. } | Op::LayerNorm { .. } | Op::RmsNorm { .. }
            )
        {
            return Err(unsupported(
                "row reductions after a chained product are not lowered",
            ));
        }
        let v = match &node.op {
            Op::MatMul => return self.product(n),
            Op::Unary(u) => {
                let x = arg(self, 0)?;
                match u {
                    UnaryOp::Identity => x,
                    UnaryOp::Silu => {
                        let s = self.unary(UnaryFn::Sigmoid, x, &format!("{name}_sigmoid"));
                        self.binary(TtBinary::Mul, x, s, name)
                    }
                    UnaryOp::Softplus => {
                        let e = self.unary(UnaryFn::Exp, x, &format!("{name}_exp"));
                        let one = self.scalar(1.0);
                        let p = self.binary(TtBinary::Add, e, one, &format!("{name}_1p"));
                        self.unary(UnaryFn::Log, p, name)
                    }
                    UnaryOp::Gelu | UnaryOp::GeluTanh => {
                        if *u == UnaryOp::Gelu {
                            self.body.notes.push(format!(
                                "{name}: exact GELU lowered as its tanh approximation x*sigmoid(1.5958*(x + 0.044715*x^3)) (TT-Lang has no erf)"
                            ));
                        }
                        // 0.5 * (1 + tanh(z)) == sigmoid(2z), z = sqrt(2/pi) * (x + 0.044715 x^3)
                        let sq = self.binary(TtBinary::Mul, x, x, &format!("{name}_sq"));
                        let slope = std::f32::consts::FRAC_2_SQRT_PI * std::f32::consts::SQRT_2;
                        let b = self.scalar(0.044_715 * slope);
                        let t = self.binary(TtBinary::Mul, sq, b, &format!("{name}_cubic"));
                        let a = self.scalar(slope);
                        let s = self.binary(TtBinary::Add, t, a, &format!("{name}_slope"));
                        let z = self.binary(TtBinary::Mul, x, s, &format!("{name}_z"));
                        let g = self.unary(UnaryFn::Sigmoid, z, &format!("{name}_gate"));
                        self.binary(TtBinary::Mul, x, g, name)
                    }
                    UnaryOp::Erf => return Err(unsupported("TT-Lang has no erf function")),
                    UnaryOp::Exp => self.unary(UnaryFn::Exp, x, name),
                    UnaryOp::Log => self.unary(UnaryFn::Log, x, name),
                    UnaryOp::Sqrt => self.unary(UnaryFn::Sqrt, x, name),
                    UnaryOp::Rsqrt => self.unary(UnaryFn::Rsqrt, x, name),
                    UnaryOp::Recip => self.unary(UnaryFn::Recip, x, name),
                    UnaryOp::Tanh => self.unary(UnaryFn::Tanh, x, name),
                    UnaryOp::Sigmoid => self.unary(UnaryFn::Sigmoid, x, name),
                    UnaryOp::Relu => self.unary(UnaryFn::Relu, x, name),
                    UnaryOp::Abs => self.unary(UnaryFn::Abs, x, name),
                    UnaryOp::Neg => self.unary(UnaryFn::Neg, x, name),
                    UnaryOp::Floor => self.unary(UnaryFn::Floor, x, name),
                }
            }
            Op::Binary(BinaryOp::Pow) => {
                let x = arg(self, 0)?;
                let e = scalar_constant(self.graph, ins.get(1).copied())
                    .ok_or_else(|| unsupported("the exponent must be a scalar constant"))?;
                if e == 0.5 {
                    self.unary(UnaryFn::Sqrt, x, name)
                } else if e == -0.5 {
                    self.unary(UnaryFn::Rsqrt, x, name)
                } else if e.fract() == 0.0 && e.abs() <= 16.0 {
                    let p = e.abs() as u32;
                    let class = self.body.values[x].class;
                    if e >= 0.0 {
                        self.push(ValueOp::Power(p), vec![x], class, name)
                    } else {
                        let pw =
                            self.push(ValueOp::Power(p), vec![x], class, &format!("{name}_pow"));
                        self.unary(UnaryFn::Recip, pw, name)
                    }
                } else {
                    return Err(unsupported(&format!(
                        "exponent {e}: only integers up to 16 and +-0.5 have a TT-Lang form"
                    )));
                }
            }
            Op::Binary(b) => {
                let mut xy = [0; 2];
                for (i, v) in xy.iter_mut().enumerate() {
                    *v = match ins.get(i) {
                        Some(&q) if is_expanded_constant(self.graph, n, q) => {
                            self.expanded(n, q)?
                        }
                        _ => arg(self, i)?,
                    };
                }
                let [x, y] = xy;
                let f = match b {
                    BinaryOp::Add => TtBinary::Add,
                    BinaryOp::Sub => TtBinary::Sub,
                    BinaryOp::Mul => TtBinary::Mul,
                    BinaryOp::Div => TtBinary::Div,
                    BinaryOp::Max => TtBinary::Max,
                    BinaryOp::Min => TtBinary::Min,
                    BinaryOp::Pow => return Err(unsupported("power is lowered above")),
                };
                self.binary(f, x, y, name)
            }
            Op::Clip { min, max } => {
                let x = arg(self, 0)?;
                let hi = self.scalar(*max);
                let lo = self.scalar(*min);
                let c = self.binary(TtBinary::Min, x, hi, &format!("{name}_hi"));
                self.binary(TtBinary::Max, c, lo, name)
            }
            Op::LeakyRelu { alpha } => {
                let x = arg(self, 0)?;
                let a = self.scalar(*alpha);
                let ax = self.binary(TtBinary::Mul, x, a, &format!("{name}_scaled"));
                let f = if *alpha <= 1.0 {
                    TtBinary::Max
                } else {
                    TtBinary::Min
                };
                self.binary(f, x, ax, name)
            }
            Op::HardSigmoid { alpha, beta } => {
                let x = arg(self, 0)?;
                let a = self.scalar(*alpha);
                let b = self.scalar(*beta);
                let one = self.scalar(1.0);
                let zero = self.scalar(0.0);
                let ax = self.binary(TtBinary::Mul, x, a, &format!("{name}_scaled"));
                let l = self.binary(TtBinary::Add, ax, b, &format!("{name}_lin"));
                let c = self.binary(TtBinary::Min, l, one, &format!("{name}_hi"));
                self.binary(TtBinary::Max, c, zero, name)
            }
            Op::Cast { to } if to.is_float() => arg(self, 0)?,
            Op::Reduce {
                op,
                axes,
                keep_dims,
            } => {
                if rank == 0 || axes.as_slice() != [rank - 1] || !*keep_dims {
                    return Err(unsupported(
                        "only reductions over the last axis with keep_dims are lowered",
                    ));
                }
                let x = arg(self, 0)?;
                let cols = self.space.1 as f32;
                match op {
                    ReduceOp::Sum => self.reduce(RowReduce::Sum, x, 1.0, name),
                    ReduceOp::Mean => self.reduce(RowReduce::Sum, x, 1.0 / cols, name),
                    ReduceOp::Max => self.reduce(RowReduce::Max, x, 1.0, name),
                    ReduceOp::Min => {
                        let nx = self.unary(UnaryFn::Neg, x, &format!("{name}_neg"));
                        let m = self.reduce(RowReduce::Max, nx, 1.0, &format!("{name}_max"));
                        self.unary(UnaryFn::Neg, m, name)
                    }
                }
            }
            Op::Softmax { axis } => {
                if rank == 0 || *axis != rank - 1 {
                    return Err(unsupported("only softmax over the last axis is lowered"));
                }
                let x = arg(self, 0)?;
                let m = self.reduce(RowReduce::Max, x, 1.0, &format!("{name}_max"));
                let d = self.binary(TtBinary::Sub, x, m, &format!("{name}_shifted"));
                let e = self.unary(UnaryFn::Exp, d, &format!("{name}_exp"));
                let s = self.reduce(RowReduce::Sum, e, 1.0, &format!("{name}_sum"));
                // One reciprocal per row and a multiply per element, as TTNN's softmax
                // normalizes (and as the cost model prices it): a division per element would
                // cost the SFPU's divide on every tile.
                let r = self.unary(UnaryFn::Recip, s, &format!("{name}_inverse_sum"));
                if self.defer.contains(&n) {
                    self.deferred.insert(n, r);
                    e
                } else {
                    self.binary(TtBinary::Mul, e, r, name)
                }
            }
            Op::LayerNorm { eps } => {
                let x = arg(self, 0)?;
                let gamma = match ins.get(1) {
                    Some(&g) if is_ones(self.graph, g) => None,
                    _ => Some(arg(self, 1)?),
                };
                let beta = if ins.len() > 2 {
                    Some(arg(self, 2)?)
                } else {
                    None
                };
                let inv_n = 1.0 / self.space.1 as f32;
                let mean = self.reduce(RowReduce::Sum, x, inv_n, &format!("{name}_mean"));
                let xc = self.binary(TtBinary::Sub, x, mean, &format!("{name}_centered"));
                let sq = self.binary(TtBinary::Mul, xc, xc, &format!("{name}_sq"));
                let var = self.reduce(RowReduce::Sum, sq, inv_n, &format!("{name}_var"));
                let e = self.scalar(*eps);
                let ve = self.binary(TtBinary::Add, var, e, &format!("{name}_var_eps"));
                let r = self.unary(UnaryFn::Rsqrt, ve, &format!("{name}_rstd"));
                let mut tail = vec![(TtBinary::Mul, r, format!("{name}_normed"))];
                tail.extend(gamma.map(|g| (TtBinary::Mul, g, format!("{name}_scaled"))));
                tail.extend(beta.map(|b| (TtBinary::Add, b, String::new())));
                self.chain(xc, &tail, name)
            }
            Op::RmsNorm { eps } => {
                let x = arg(self, 0)?;
                let gamma = match ins.get(1) {
                    Some(&g) if is_ones(self.graph, g) => None,
                    _ => Some(arg(self, 1)?),
                };
                let inv_n = 1.0 / self.space.1 as f32;
                let sq = self.binary(TtBinary::Mul, x, x, &format!("{name}_sq"));
                let ms = self.reduce(RowReduce::Sum, sq, inv_n, &format!("{name}_ms"));
                let e = self.scalar(*eps);
                let me = self.binary(TtBinary::Add, ms, e, &format!("{name}_ms_eps"));
                let r = self.unary(UnaryFn::Rsqrt, me, &format!("{name}_rrms"));
                let mut tail = vec![(TtBinary::Mul, r, format!("{name}_normed"))];
                tail.extend(gamma.map(|g| (TtBinary::Mul, g, String::new())));
                self.chain(x, &tail, name)
            }
            Op::Where => {
                let x = where_mask_operand(self.graph, n).ok_or_else(|| {
                    unsupported(
                        "only Where(constant condition, +-inf, x) and Where(constant condition, x, +-inf) are lowered (as an added mask)",
                    )
                })?;
                let xv = self.operand(x)?;
                let class = self.class_of(n)?;
                let m = self.load(LoadSource::WhereMask(n), class, &format!("{name}_mask"));
                self.binary(TtBinary::Add, xv, m, name)
            }
            _ => return Err(unsupported("no TT-Lang kernel template for this op")),
        };
        let want = self.class_of(n)?;
        if self.body.values[v].class != want {
            return Err(unsupported(&format!(
                "its result covers {:?} of the kernel's space but its shape {:?} says {:?}",
                self.body.values[v].class, node.ty.shape, want
            )));
        }
        self.bind(n, v);
        Ok(v)
    }

    /// Marks graph node `n` as written to DRAM by the kernel.
    pub fn output(&mut self, n: NodeIndex) -> Result<(), PlanError> {
        let v = *self.of_node.get(&n).ok_or_else(|| PlanError::Unsupported {
            node: self.graph.node(n).name.clone(),
            op: self.graph.node(n).op.name(),
            reason: "output node is not part of the kernel".into(),
        })?;
        if layout_of(&self.graph.node(n).ty.shape).is_none() {
            return Err(PlanError::shape(self.graph, n));
        }
        self.body.outputs.push((n, v));
        Ok(())
    }

    /// Marks node `n`'s value as written to the tensor of node `target` instead of its own (a
    /// head merge's reshape, which the matmul writes in place: [`super::heads::merged_into`]).
    pub fn output_as(&mut self, n: NodeIndex, target: NodeIndex) -> Result<(), PlanError> {
        self.output(n)?;
        if layout_of(&self.graph.node(target).ty.shape).is_none() {
            return Err(PlanError::shape(self.graph, target));
        }
        if let Some(last) = self.body.outputs.last_mut() {
            last.0 = target;
        }
        Ok(())
    }

    /// Finishes the body: inserts copies for outputs used inside the kernel and decides which
    /// values are materialized.
    pub fn finish(mut self) -> Body {
        let users = self.body.users();
        let mut direct = BTreeSet::new();
        for i in 0..self.body.outputs.len() {
            let (n, v) = self.body.outputs[i];
            let value = &self.body.values[v];
            let needs_copy =
                !users[v].is_empty() || matches!(value.op, ValueOp::Load(_)) || direct.contains(&v);
            if needs_copy {
                let stem = format!("{}_out", self.graph.node(n).name);
                let class = value.class;
                let c = self.push(ValueOp::Copy, vec![v], class, &stem);
                self.body.outputs[i].1 = c;
                direct.insert(c);
            } else {
                direct.insert(v);
            }
        }
        self.body.materialized = materialize(&self.body, &direct);
        self.body
    }
}

/// Decides which values live in circular buffers.
fn materialize(body: &Body, outputs: &BTreeSet<usize>) -> Vec<bool> {
    let n = body.values.len();
    let mut mat = vec![false; n];
    for (i, v) in body.values.iter().enumerate() {
        match v.op {
            ValueOp::Load(_) | ValueOp::MatMul | ValueOp::Copy => mat[i] = true,
            ValueOp::Reduce(_) | ValueOp::Product => {
                mat[i] = true;
                mat[v.args[0]] = true;
            }
            ValueOp::Broadcast => mat[v.args[0]] = true,
            _ => {}
        }
        if outputs.contains(&i) {
            mat[i] = true;
        }
    }
    // A value computed inline must belong to exactly one stage.
    let users = body.users();
    let mut roots: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for i in (0..n).rev() {
        if mat[i] {
            continue;
        }
        let mut r = BTreeSet::new();
        for &u in &users[i] {
            if mat[u] {
                r.insert(u);
            } else {
                r.extend(roots[u].iter().copied());
            }
        }
        if r.len() > 1 {
            mat[i] = true;
        } else {
            roots[i] = r;
        }
    }
    fuse_broadcasts(body, &mut mat, &roots);
    mat
}

/// Materializes the inline broadcasts that cannot be the first op of their stage (TT-Lang fuses
/// an op taking a block argument only as a chain's first op): one whose stage writes a block of
/// another shape (its `out` argument gives the broadcast's shape), whose stage is itself a
/// reduction, product or broadcast, or that is not the first inline broadcast of its stage.
fn fuse_broadcasts(body: &Body, mat: &mut [bool], roots: &[BTreeSet<usize>]) {
    let mut fused: BTreeSet<usize> = BTreeSet::new();
    for (i, v) in body.values.iter().enumerate() {
        if mat[i] || !matches!(v.op, ValueOp::Broadcast) {
            continue;
        }
        let stage = roots[i].first().copied();
        let fits = stage.is_some_and(|r| {
            let root = &body.values[r];
            root.class == v.class
                && !matches!(
                    root.op,
                    ValueOp::Reduce(_) | ValueOp::Product | ValueOp::Broadcast
                )
                && !fused.contains(&r)
        });
        match stage.filter(|_| fits) {
            Some(r) => {
                fused.insert(r);
            }
            None => mat[i] = true,
        }
    }
}

/// Whether node `n` is a constant whose every element is one, looking through views: a norm's
/// gamma folded into the next layer's weights, which its kernel neither reads nor multiplies.
fn is_ones(graph: &Graph, n: NodeIndex) -> bool {
    match &graph.node(resolve(graph, n)).op {
        Op::Constant(d) => d.splat() == Some(1.0),
        _ => false,
    }
}

/// The value of a scalar constant node, looking through views.
fn scalar_constant(graph: &Graph, n: Option<NodeIndex>) -> Option<f32> {
    let node = graph.node(resolve(graph, n?));
    match &node.op {
        Op::Constant(d) if d.len() == 1 => d.to_f32().first().copied(),
        _ => None,
    }
}

/// The form [`where_mask`] lowers, checked on shapes alone (planning asks often; the mask's
/// values are only built for the program): `Where(cond, a, b)` with a constant `cond` that
/// broadcasts to the node's shape and one of `a`, `b` an infinite scalar constant. Returns the
/// other operand `x`, the infinity, and whether it fills where `cond` is true.
pub(crate) fn where_mask_form(graph: &Graph, n: NodeIndex) -> Option<(NodeIndex, f32, bool)> {
    let node = graph.node(n);
    if !matches!(node.op, Op::Where) {
        return None;
    }
    let ins = graph.inputs_of(n);
    let (&c, &a, &b) = (ins.first()?, ins.get(1)?, ins.get(2)?);
    let cond = &graph.node(c).ty.shape;
    match &graph.node(resolve(graph, c)).op {
        Op::Constant(d) if d.len() == cond.iter().product::<usize>() => {}
        _ => return None,
    }
    if !broadcasts(cond, &node.ty.shape) {
        return None;
    }
    let infinite = |m: NodeIndex| scalar_constant(graph, Some(m)).filter(|v| v.is_infinite());
    if let Some(f) = infinite(a) {
        Some((b, f, true))
    } else {
        infinite(b).map(|f| (a, f, false))
    }
}

/// Whether the mask of the lowered `Where` node `n` ([`where_mask`]) is the same for every
/// batch (its condition broadcasts over all axes before the last two, of which there are some).
pub fn where_mask_batch_shared(graph: &Graph, n: NodeIndex) -> bool {
    let cond = graph.inputs_of(n).first().map(|&c| &graph.node(c).ty.shape);
    cond.is_some_and(|c| same_for_every_batch(c, &graph.node(n).ty.shape))
        && where_mask_form(graph, n).is_some()
}

/// Whether the constant operand `q` of binary node `n`, read expanded ([`expanded_constant`]),
/// is the same for every batch of `n` (it broadcasts over all axes before the last two).
pub fn expanded_batch_shared(graph: &Graph, n: NodeIndex, q: NodeIndex) -> bool {
    same_for_every_batch(&graph.node(q).ty.shape, &graph.node(n).ty.shape)
        && is_expanded_constant(graph, n, q)
}

/// Whether an operand of shape `operand` takes the same values in every batch of a result of
/// shape `out` (batches: the axes before the last two, of which there are several).
fn same_for_every_batch(operand: &[usize], out: &[usize]) -> bool {
    out.len() > 2
        && out[..out.len() - 2].iter().product::<usize>() > 1
        && (operand.len() <= 2 || operand[..operand.len() - 2].iter().all(|&d| d == 1))
}

/// The last two axes of `shape` (a batch's matrix).
fn last_two(shape: &[usize]) -> Vec<usize> {
    shape[shape.len().saturating_sub(2)..].to_vec()
}

/// The finite operand `x` of a `Where` that lowers as `x + mask` ([`where_mask`]).
pub fn where_mask_operand(graph: &Graph, n: NodeIndex) -> Option<NodeIndex> {
    where_mask_form(graph, n).map(|(x, _, _)| x)
}

/// `Where(cond, a, b)` with a constant `cond` and one of `a`, `b` an infinite scalar constant,
/// as `x + mask`: the other operand `x` and the mask's values in the node's shape (row-major),
/// the infinity where the condition selects it and 0 elsewhere. Exact for finite `x`
/// (`x + 0 == x`, `x + inf == inf`); `None` for any other `Where`.
/// With `one_batch` ([`where_mask_batch_shared`]), the mask of one batch: the node's last two
/// axes.
pub fn where_mask(graph: &Graph, n: NodeIndex, one_batch: bool) -> Option<(NodeIndex, Vec<f32>)> {
    let (x, fill, when) = where_mask_form(graph, n)?;
    let c = graph.inputs_of(n)[0];
    let cond = match &graph.node(resolve(graph, c)).op {
        Op::Constant(d) => d.to_f32(),
        _ => return None,
    };
    let per_cond: Vec<f32> = cond
        .iter()
        .map(|&v| if (v != 0.0) == when { fill } else { 0.0 })
        .collect();
    let (from, to) = if one_batch {
        if !where_mask_batch_shared(graph, n) {
            return None;
        }
        (
            last_two(&graph.node(c).ty.shape),
            last_two(&graph.node(n).ty.shape),
        )
    } else {
        (
            graph.node(c).ty.shape.clone(),
            graph.node(n).ty.shape.clone(),
        )
    };
    let mask = broadcast_to(&per_cond, &from, &to)?;
    Some((x, mask))
}

/// Whether constant `q`, an operand of the binary node `n`, broadcasts to `n`'s shape over axes
/// that the 2-D view cannot replicate (e.g. a `[seq, d]` table over the heads of
/// `[heads, seq, d]`), so that it is read expanded ([`expanded_constant`]).
pub fn is_expanded_constant(graph: &Graph, n: NodeIndex, q: NodeIndex) -> bool {
    let out = &graph.node(n).ty.shape;
    let shape = &graph.node(q).ty.shape;
    matches!(graph.node(n).op, Op::Binary(_))
        && Class::of(flat2d(shape), flat2d(out)).is_none()
        && matches!(graph.node(resolve(graph, q)).op, Op::Constant(_))
        && broadcasts(shape, out)
}

/// The values of constant `q`, an operand of the binary node `n`, broadcast to `n`'s shape, when
/// [`is_expanded_constant`]; `None` otherwise. With `one_batch` ([`expanded_batch_shared`]),
/// to one batch's matrix: `n`'s last two axes.
pub fn expanded_constant(
    graph: &Graph,
    n: NodeIndex,
    q: NodeIndex,
    one_batch: bool,
) -> Option<Vec<f32>> {
    if !is_expanded_constant(graph, n, q) || (one_batch && !expanded_batch_shared(graph, n, q)) {
        return None;
    }
    let data = match &graph.node(resolve(graph, q)).op {
        Op::Constant(d) => d.to_f32(),
        _ => return None,
    };
    let (from, to) = (&graph.node(q).ty.shape, &graph.node(n).ty.shape);
    if one_batch {
        broadcast_to(&data, &last_two(from), &last_two(to))
    } else {
        broadcast_to(&data, from, to)
    }
}

/// Whether a tensor of shape `input` broadcasts (NumPy rules) to shape `out`.
fn broadcasts(input: &[usize], out: &[usize]) -> bool {
    input.len() <= out.len()
        && input
            .iter()
            .rev()
            .zip(out.iter().rev())
            .all(|(&i, &o)| i == o || i == 1)
}

/// `data` (row-major, shape `input`) broadcast to shape `out` by NumPy rules, row-major; `None`
/// when `input` does not broadcast to `out` or `data` is too short. Works a last-axis row at a
/// time: each output row copies one input row, or repeats its one element.
fn broadcast_to(data: &[f32], input: &[usize], out: &[usize]) -> Option<Vec<f32>> {
    if !broadcasts(input, out) || data.len() < input.iter().product::<usize>() {
        return None;
    }
    let lead = out.len() - input.len();
    // Input strides aligned to `out`'s axes; 0 on broadcast (and missing leading) axes.
    let mut strides = vec![0usize; out.len()];
    let mut s = 1;
    for d in (0..input.len()).rev() {
        if input[d] == out[d + lead] {
            strides[d + lead] = s;
        }
        s *= input[d];
    }
    let Some((&cols, rows_shape)) = out.split_last() else {
        return Some(data[..1].to_vec());
    };
    let col_stride = strides[out.len() - 1];
    let rows: usize = rows_shape.iter().product();
    let mut values = Vec::with_capacity(rows * cols);
    let mut index = vec![0usize; rows_shape.len()];
    for _ in 0..rows {
        let start: usize = index.iter().zip(&strides).map(|(i, st)| i * st).sum();
        if col_stride == 0 {
            values.extend(std::iter::repeat_n(data[start], cols));
        } else {
            values.extend_from_slice(&data[start..start + cols]);
        }
        for d in (0..index.len()).rev() {
            index[d] += 1;
            if index[d] < rows_shape[d] {
                break;
            }
            index[d] = 0;
        }
    }
    Some(values)
}

/// A readable stem for a constant tile of `value`, e.g. `const_0_125`.
fn scalar_stem(value: f32) -> String {
    let text = format!("{value}").replace('-', "neg").replace('.', "_");
    format!("const_{text}")
}

#[cfg(test)]
mod tests {
    use super::broadcast_to;

    #[test]
    fn broadcast_to_follows_numpy() {
        let d: Vec<f32> = (0..6).map(|i| i as f32).collect();
        // [2, 3] over a leading axis of 2
        let want: Vec<f32> = [0., 1., 2., 3., 4., 5., 0., 1., 2., 3., 4., 5.].to_vec();
        assert_eq!(broadcast_to(&d, &[2, 3], &[2, 2, 3]), Some(want));
        // a column [2, 1] across 3 columns, twice
        let col = [7.0, 8.0];
        let want = [7., 7., 7., 8., 8., 8., 7., 7., 7., 8., 8., 8.].to_vec();
        assert_eq!(broadcast_to(&col, &[1, 2, 1], &[2, 2, 3]), Some(want));
        // a middle axis: [2, 1, 3] to [2, 2, 3]
        let want = [0., 1., 2., 0., 1., 2., 3., 4., 5., 3., 4., 5.].to_vec();
        assert_eq!(broadcast_to(&d, &[2, 1, 3], &[2, 2, 3]), Some(want));
        assert_eq!(broadcast_to(&[5.0], &[], &[2, 2]), Some(vec![5.0; 4]));
        assert_eq!(broadcast_to(&d, &[2, 3], &[3, 3]), None);
    }
}
