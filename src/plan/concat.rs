//! Concatenations read in place. A concatenation along an axis before the last, with only
//! axes of size one before it (a batch-1 CNN's channel concat), stacks its inputs' 2-D views
//! row range after row range. When each input's rows are whole tiles, a kernel's reader can read
//! a block of the concatenation from the input that holds its rows, so the concatenation
//! needs no kernel (DenseNet concatenates every layer's features onto the block's input and
//! reads the result only in the next layer's BatchNorm and ReLU). Inputs that are themselves
//! such concatenations are read through to their own inputs.

use petgraph::graph::NodeIndex;

use super::group::{real_users, resolve};
use super::layout::flat2d;
use crate::graph::{Graph, Op};

/// Rows of a tile.
const TILE: usize = 32;

/// One input of a concatenation read in place: the tile rows of the concatenation's 2-D view
/// that it holds.
#[derive(Clone, Debug, PartialEq)]
pub struct ConcatPart {
    /// The input tensor.
    pub tensor: NodeIndex,
    /// Its first tile row in the concatenation.
    pub first_row: usize,
    /// Its tile rows.
    pub rows: usize,
    /// The kernel parameter it is read from.
    pub param: String,
}

/// The inputs of concatenation `n` with their rows of its 2-D view, when it stacks them by
/// rows in whole tiles: along an axis before the last with only axes of size one before it.
fn row_stack(graph: &Graph, n: NodeIndex) -> Option<Vec<(NodeIndex, usize)>> {
    let Op::Concat { axis } = graph.node(n).op else {
        return None;
    };
    let shape = &graph.node(n).ty.shape;
    let leading: usize = shape.get(..axis)?.iter().product();
    if axis + 1 >= shape.len() || leading != 1 || !graph.node(n).ty.dtype.is_float() {
        return None;
    }
    graph
        .inputs_of(n)
        .into_iter()
        .map(|i| {
            let rows = flat2d(&graph.node(i).ty.shape).0;
            rows.is_multiple_of(TILE)
                .then_some((resolve(graph, i), rows / TILE))
        })
        .collect()
}

/// Whether concatenation `n` is read in place: it stacks its inputs by rows in whole tiles,
/// it is not a graph output, and every op that uses it is an elementwise op of its shape
/// (whose kernel reads it block by block) or a concatenation read in place.
pub fn read_in_place(graph: &Graph, n: NodeIndex) -> bool {
    if row_stack(graph, n).is_none() {
        return false;
    }
    let (users, is_output) = real_users(graph, n);
    let shape = &graph.node(n).ty.shape;
    !is_output
        && !users.is_empty()
        && users.iter().all(|&u| match &graph.node(u).op {
            Op::Unary(_) | Op::Binary(_) => &graph.node(u).ty.shape == shape,
            Op::Concat { .. } => read_in_place(graph, u),
            _ => false,
        })
}

/// The tensors a kernel reads concatenation `n` (read in place) from, with their tile rows:
/// its inputs, and the inputs of those inputs that are concatenations read in place.
pub fn sources(graph: &Graph, n: NodeIndex) -> Vec<(NodeIndex, usize, usize)> {
    let mut out = Vec::new();
    let mut first = 0;
    for (input, rows) in row_stack(graph, n).unwrap_or_default() {
        if read_in_place(graph, input) {
            for (t, at, r) in sources(graph, input) {
                out.push((t, first + at, r));
            }
        } else {
            out.push((input, first, rows));
        }
        first += rows;
    }
    out
}

/// The largest block height, in tiles, whose blocks each lie within one part of `parts`: the
/// greatest common divisor of their first rows and heights (`None` without parts).
pub fn row_alignment(parts: &[ConcatPart]) -> Option<usize> {
    parts.iter().flat_map(|p| [p.first_row, p.rows]).reduce(gcd)
}

/// The greatest common divisor of `a` and `b`.
pub fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}
