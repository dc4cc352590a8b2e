//! Convolution windows gathered by a matmul kernel's reader: an `Im2Col` whose only users are
//! matmuls reading it as their left operand, with a whole-tile gather ([`TileGather`]), needs no
//! kernel of its own. The matmul reads the pixel matrix instead, two row tiles per window
//! offset, and selects the window's rows with the gather table (`lower::matmul`).

use petgraph::graph::NodeIndex;

use crate::graph::im2col::TileGather;
use crate::graph::{Graph, Op};

/// The whole-tile gather of `Im2Col` node `n`.
pub fn tile_gather(graph: &Graph, n: NodeIndex) -> Option<TileGather> {
    let x = *graph.inputs_of(n).first()?;
    let channels = *graph.node(x).ty.shape.last()?;
    TileGather::of(&graph.node(n).op, channels)
}

/// Whether `Im2Col` node `n` is gathered in place by the matmuls that read it: a whole-tile
/// gather, not a graph output, read only as the left operand of matmuls by 2-D matrices.
pub fn gathered_in_place(graph: &Graph, n: NodeIndex) -> bool {
    let is_out = graph.outputs.iter().any(|(_, o)| *o == n);
    let users = graph.users_of(n);
    let by_matmuls = !users.is_empty()
        && users.iter().all(|&u| {
            let ins = graph.inputs_of(u);
            matches!(graph.node(u).op, Op::MatMul)
                && ins.first() == Some(&n)
                && ins.get(1) != Some(&n)
                && ins
                    .get(1)
                    .is_some_and(|&b| graph.node(b).ty.shape.len() == 2)
        });
    !is_out && by_matmuls && tile_gather(graph, n).is_some()
}
