//! Rotary embeddings before the head split (issue 6, LLaMA blocks).
//!
//! After [`super::rotate`], a rotary embedding reads
//! `t * cos + (t @ R) * sin` with `t = Transpose(Reshape(x @ W, [seq, heads, hd]), [1, 0, 2])`
//! the projection's heads, `cos` and `sin` constant `[seq, hd]` tables and `R` a constant
//! `[hd, hd]` matrix. Head by head that is the same arithmetic on `x @ W`'s column blocks, so it
//! can run before the split: `(x @ W) * cos' + (x @ W') * sin'`, with the tables repeated once per
//! head (`cos'`, `sin'`) and `W' = W @ diag(R, ..., R)` folded here column block by column block.
//! The two products share their left operand, so one matmul kernel computes both with the
//! rotary as its epilogue and writes the heads split ([`crate::plan::heads::split_into`]):
//! one kernel instead of a projection and a rotary kernel.
//!
//! A pass over the extracted graph like [`super::rotate`]: the e-graph builds no new constants.

use petgraph::graph::NodeIndex;

use crate::graph::fold::rebuild;
use crate::graph::{BinaryOp, Graph, Op, TensorData};
use crate::import::builder::{BuildError, GraphBuilder};

/// A rotary embedding found in the graph: `t * cos + (t @ r) * sin` over the heads of `x @ w`.
struct Rotary {
    /// The `Add` node.
    add: NodeIndex,
    /// The projection's left operand.
    x: NodeIndex,
    /// The projection's constant weights `[d, heads * hd]`.
    w: NodeIndex,
    /// The constant `[hd, hd]` matrix multiplying `t`.
    r: NodeIndex,
    /// The table multiplying `t`.
    cos: NodeIndex,
    /// The table multiplying `t @ r`.
    sin: NodeIndex,
    /// `[seq, heads, hd]`.
    dims: [usize; 3],
}

fn constant(graph: &Graph, n: NodeIndex) -> Option<&TensorData> {
    match &graph.node(n).op {
        Op::Constant(d) => Some(d),
        _ => None,
    }
}

/// `(t, c)` when `n` is `t * c` (either order) with `c` a constant.
fn times_constant(graph: &Graph, n: NodeIndex) -> Option<(NodeIndex, NodeIndex)> {
    if !matches!(graph.node(n).op, Op::Binary(BinaryOp::Mul)) {
        return None;
    }
    let &[a, b] = graph.inputs_of(n).as_slice() else {
        return None;
    };
    match (constant(graph, a), constant(graph, b)) {
        (None, Some(_)) => Some((a, b)),
        (Some(_), None) => Some((b, a)),
        _ => None,
    }
}

/// `(x2d, [seq, heads, hd])` when `t` is `Transpose(Reshape(x2d, [seq, heads, hd]), [1, 0, 2])`.
fn head_split(graph: &Graph, t: NodeIndex) -> Option<(NodeIndex, [usize; 3])> {
    if !matches!(&graph.node(t).op, Op::Transpose { perm } if perm.as_slice() == [1, 0, 2]) {
        return None;
    }
    let r = *graph.inputs_of(t).first()?;
    let &[seq, heads, hd] = graph.node(r).ty.shape.as_slice() else {
        return None;
    };
    if !matches!(graph.node(r).op, Op::Reshape { .. }) {
        return None;
    }
    let x2d = *graph.inputs_of(r).first()?;
    (graph.node(x2d).ty.shape.as_slice() == [seq, heads * hd]).then_some((x2d, [seq, heads, hd]))
}

/// The rotary embedding computed by `n`, when it has the form the module describes.
fn rotary_at(graph: &Graph, n: NodeIndex) -> Option<Rotary> {
    if !matches!(graph.node(n).op, Op::Binary(BinaryOp::Add)) {
        return None;
    }
    let &[a, b] = graph.inputs_of(n).as_slice() else {
        return None;
    };
    let (p, q) = (times_constant(graph, a)?, times_constant(graph, b)?);
    // One term multiplies t, the other t @ r.
    let rotated = |(m, _): (NodeIndex, NodeIndex)| -> Option<(NodeIndex, NodeIndex)> {
        if !matches!(graph.node(m).op, Op::MatMul) {
            return None;
        }
        let &[t, r] = graph.inputs_of(m).as_slice() else {
            return None;
        };
        constant(graph, r).map(|_| (t, r))
    };
    let ((t, cos), (rt, sin)) = match (rotated(p), rotated(q)) {
        (None, Some(rt)) => ((p.0, p.1), (rt, q.1)),
        (Some(rt), None) => ((q.0, q.1), (rt, p.1)),
        _ => return None,
    };
    let (t_r, r) = rt;
    let (x2d, dims) = head_split(graph, t)?;
    let [seq, _, hd] = dims;
    let table = |c: NodeIndex| {
        let s = &graph.node(c).ty.shape;
        s.iter().product::<usize>() == seq * hd && s.last() == Some(&hd)
    };
    let fits = t_r == t
        && graph.node(r).ty.shape.as_slice() == [hd, hd]
        && table(cos)
        && table(sin)
        && graph.node(n).ty.shape == graph.node(t).ty.shape;
    if !fits || !matches!(graph.node(x2d).op, Op::MatMul) {
        return None;
    }
    let &[x, w] = graph.inputs_of(x2d).as_slice() else {
        return None;
    };
    let w_shape = &graph.node(w).ty.shape;
    (constant(graph, w).is_some() && w_shape.len() == 2).then_some(Rotary {
        add: n,
        x,
        w,
        r,
        cos,
        sin,
        dims,
    })
}

/// `table` (`[seq, hd]` values) repeated across `heads` column blocks: `[seq, heads * hd]`.
fn per_head(table: &TensorData, [seq, heads, hd]: [usize; 3]) -> TensorData {
    let v = table.to_f32();
    let mut out = Vec::with_capacity(seq * heads * hd);
    for row in v.chunks(hd).take(seq) {
        for _ in 0..heads {
            out.extend_from_slice(row);
        }
    }
    TensorData::f32(vec![seq, heads * hd], out)
}

/// `w @ diag(r, ..., r)`: each `hd`-column block of `w` times `r`, over `r`'s nonzeros.
fn times_block_diagonal(w: &TensorData, r: &TensorData, [_, heads, hd]: [usize; 3]) -> TensorData {
    let (wv, rv) = (w.to_f32(), r.to_f32());
    let cols = heads * hd;
    let rows = wv.len() / cols;
    let mut out = vec![0.0f32; rows * cols];
    for (i, j, rij) in (0..hd * hd).filter_map(|k| {
        let v = rv[k];
        (v != 0.0).then_some((k / hd, k % hd, v))
    }) {
        for h in 0..heads {
            let (src, dst) = (h * hd + i, h * hd + j);
            for row in 0..rows {
                out[row * cols + dst] += wv[row * cols + src] * rij;
            }
        }
    }
    TensorData::f32(vec![rows, cols], out)
}

/// The rotary computed before the head split, then split: see the module docs.
fn rebuilt(
    b: &mut GraphBuilder,
    graph: &Graph,
    rot: &Rotary,
    remap: &[Option<NodeIndex>],
) -> Result<NodeIndex, BuildError> {
    let name = &graph.node(rot.add).name;
    let data = |n: NodeIndex| constant(graph, n).expect("matched as a constant");
    let dtype = graph.node(rot.add).ty.dtype;
    let [seq, heads, hd] = rot.dims;
    let new = |n: NodeIndex| remap[n.index()].expect("inputs are rebuilt first");
    let cos = b.constant(
        &format!("{name}/cos"),
        per_head(data(rot.cos), rot.dims),
        dtype,
    );
    let sin = b.constant(
        &format!("{name}/sin"),
        per_head(data(rot.sin), rot.dims),
        dtype,
    );
    let rotated = times_block_diagonal(data(rot.w), data(rot.r), rot.dims);
    let w_rot = b.constant(&format!("{name}/weights_rotated"), rotated, dtype);
    let (x, w) = (new(rot.x), new(rot.w));
    let plain = b.add(&format!("{name}/projection"), Op::MatMul, &[x, w])?;
    let turned = b.add(&format!("{name}/rotated"), Op::MatMul, &[x, w_rot])?;
    let a = b.add(
        &format!("{name}/cos_term"),
        Op::Binary(BinaryOp::Mul),
        &[plain, cos],
    )?;
    let c = b.add(
        &format!("{name}/sin_term"),
        Op::Binary(BinaryOp::Mul),
        &[turned, sin],
    )?;
    let sum = b.add(&format!("{name}/rows"), Op::Binary(BinaryOp::Add), &[a, c])?;
    let split = b.add(
        &format!("{name}/heads"),
        Op::Reshape {
            shape: vec![seq, heads, hd],
        },
        &[sum],
    )?;
    b.add(
        name,
        Op::Transpose {
            perm: vec![1, 0, 2],
        },
        &[split],
    )
}

/// Moves every rotary embedding of the module's form before its head split. Returns the graph
/// and how many were moved (the graph unchanged when none).
pub fn rotary_before_head_split(graph: &Graph) -> Result<(Graph, usize), BuildError> {
    let found: Vec<Rotary> = graph
        .topo_order()
        .into_iter()
        .filter_map(|n| rotary_at(graph, n))
        .collect();
    if found.is_empty() {
        return Ok((graph.clone(), 0));
    }
    let out = rebuild(graph, |b, n, remap| {
        match found.iter().find(|r| r.add == n) {
            Some(rot) => rebuilt(b, graph, rot, remap).map(Some),
            None => Ok(None),
        }
    })?;
    Ok((out, found.len()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::graph::{DType, TensorType};

    fn table(seed: usize, n: usize) -> TensorData {
        TensorData::f32(
            vec![n, n],
            (0..n * n)
                .map(|i| (((i * 7 + seed * 13) % 17) as f32 - 8.0) / 8.0)
                .collect(),
        )
    }

    /// `t * cos + (t @ r) * sin` over the 2 heads of `x @ w` (`w` an input when not `fixed`).
    fn rotary(fixed: bool) -> Graph {
        let (seq, heads, hd) = (8, 2, 4);
        let mut b = GraphBuilder::new();
        let t = |s: &[usize]| TensorType::new(s.to_vec(), DType::F32);
        let x = b.input("x", t(&[seq, heads * hd]));
        let w = if fixed {
            b.constant("w", table(1, heads * hd), DType::F32)
        } else {
            b.input("w", t(&[heads * hd, heads * hd]))
        };
        let cos = b.constant(
            "cos",
            TensorData::f32(vec![seq, hd], table(2, 8).to_f32()[..seq * hd].to_vec()),
            DType::F32,
        );
        let sin = b.constant(
            "sin",
            TensorData::f32(vec![seq, hd], table(3, 8).to_f32()[..seq * hd].to_vec()),
            DType::F32,
        );
        let r = b.constant("r", table(4, hd), DType::F32);
        let q = b.add("q", Op::MatMul, &[x, w]).unwrap();
        let split = b
            .add(
                "split",
                Op::Reshape {
                    shape: vec![seq, heads, hd],
                },
                &[q],
            )
            .unwrap();
        let heads_t = b
            .add(
                "heads",
                Op::Transpose {
                    perm: vec![1, 0, 2],
                },
                &[split],
            )
            .unwrap();
        let c = b
            .add("c", Op::Binary(BinaryOp::Mul), &[cos, heads_t])
            .unwrap();
        let turned = b.add("turned", Op::MatMul, &[heads_t, r]).unwrap();
        let s = b
            .add("s", Op::Binary(BinaryOp::Mul), &[turned, sin])
            .unwrap();
        let y = b.add("y", Op::Binary(BinaryOp::Add), &[c, s]).unwrap();
        b.finish(vec![("y".into(), y)])
    }

    #[test]
    fn the_rotary_runs_before_the_head_split_with_the_same_values() {
        let g = rotary(true);
        let (out, n) = rotary_before_head_split(&g).unwrap();
        assert_eq!(n, 1);
        // Both products are of `x` by 2-D matrices; nothing multiplies the split heads.
        for i in out.dag.node_indices() {
            if matches!(out.node(i).op, Op::MatMul) {
                assert_eq!(out.node(i).ty.shape.len(), 2, "{}", out.node(i).name);
            }
        }
        let x: Vec<f32> = (0..64).map(|i| (i % 11) as f32 - 5.0).collect();
        let inputs = BTreeMap::from([("x".to_string(), TensorData::f32(vec![8, 8], x))]);
        let want = crate::reference::run(&g, &inputs).unwrap()["y"].to_f32();
        let got = crate::reference::run(&out, &inputs).unwrap()["y"].to_f32();
        assert_eq!(want.len(), got.len());
        for (w, g) in want.iter().zip(&got) {
            assert!((w - g).abs() <= 1e-4 * w.abs().max(1.0), "{w} vs {g}");
        }
    }

    #[test]
    fn a_rotary_of_weights_that_are_not_constant_stays_after_the_split() {
        assert_eq!(rotary_before_head_split(&rotary(false)).unwrap().1, 0);
    }
}
