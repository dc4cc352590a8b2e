//! A channel shuffle folded into the convolution before it (ShuffleNet).
//!
//! A channel shuffle of `g` groups reshapes `[n, g * c, h, w]` to `[n, g, c, h, w]`, swaps the
//! two channel axes and reshapes back: output channel `j * g + i` is input channel `i * c + j`.
//! When the input is a convolution that nothing else reads, the shuffle is the convolution with
//! its output channels (weight rows and bias) permuted, and costs no kernel. A grouped
//! convolution's output channels would no longer be grouped after the permutation, so it
//! becomes a dense convolution with block-diagonal weights, which is how TTNN's conv2d runs a
//! grouped convolution anyway (it expands the weights to that layout before running it).
//! A pass over the extracted graph: the e-graph language does not build new weights.

use petgraph::graph::NodeIndex;

use crate::graph::fold::rebuild;
use crate::graph::{Graph, Op, TensorData};
use crate::import::builder::BuildError;

/// A shuffle to fold: the convolution, its groups of output channels, and the reshape that ends
/// the shuffle.
struct Shuffle {
    conv: NodeIndex,
    groups: usize,
    end: NodeIndex,
}

/// The shuffle that convolution `conv` starts: `Reshape` to `[n, g, c, h, w]`, `Transpose`
/// swapping axes 1 and 2, `Reshape` back to the convolution's shape, each read only by the
/// next.
fn shuffle_after(graph: &Graph, conv: NodeIndex) -> Option<Shuffle> {
    let Op::Conv { pixels: None, .. } = graph.node(conv).op else {
        return None;
    };
    let shape = &graph.node(conv).ty.shape;
    let split = graph.only_user(conv)?;
    let swap = graph.only_user(split)?;
    let end = graph.only_user(swap)?;
    let (Op::Reshape { .. }, Op::Transpose { perm }, Op::Reshape { .. }) = (
        &graph.node(split).op,
        &graph.node(swap).op,
        &graph.node(end).op,
    ) else {
        return None;
    };
    let &[n, g, c, h, w] = graph.node(split).ty.shape.as_slice() else {
        return None;
    };
    let folds = shape.as_slice() == [n, g * c, h, w]
        && perm.as_slice() == [0, 2, 1, 3, 4]
        && &graph.node(end).ty.shape == shape;
    folds.then_some(Shuffle {
        conv,
        groups: g,
        end,
    })
}

/// Convolution weights `[o, c / groups, kh, kw]` (and bias `[o]`) with output channel
/// `j * g + i` taken from channel `i * (o / g) + j`, as a dense convolution's
/// `[o, c, kh, kw]`: each output channel's weights at its group's input channels, zeros
/// elsewhere.
fn shuffled(
    weights: &TensorData,
    bias: Option<&TensorData>,
    in_channels: usize,
    conv_groups: usize,
    g: usize,
) -> (TensorData, Option<TensorData>) {
    let shape = weights.shape();
    let (o, per_group, window) = (shape[0], shape[1], shape[2] * shape[3]);
    let w = weights.to_f32();
    let out_per_group = o / conv_groups;
    let source = |oc: usize| (oc % g) * (o / g) + oc / g;
    let mut dense = vec![0.0f32; o * in_channels * window];
    for oc in 0..o {
        let from = source(oc);
        let first_in = from / out_per_group * per_group;
        for ci in 0..per_group {
            let dst = (oc * in_channels + first_in + ci) * window;
            let src = (from * per_group + ci) * window;
            dense[dst..dst + window].copy_from_slice(&w[src..src + window]);
        }
    }
    let weights = TensorData::f32(vec![o, in_channels, shape[2], shape[3]], dense);
    let bias = bias.map(|b| {
        let b = b.to_f32();
        TensorData::f32(vec![o], (0..o).map(|oc| b[source(oc)]).collect())
    });
    (weights, bias)
}

/// `graph` with each channel shuffle after a convolution with constant weights folded into it.
/// Returns the graph and how many shuffles were folded (the graph unchanged when none).
pub fn fold_shuffles(graph: &Graph) -> Result<(Graph, usize), BuildError> {
    let found: Vec<Shuffle> = graph
        .topo_order()
        .into_iter()
        .filter_map(|n| shuffle_after(graph, n))
        .filter(|s| {
            graph.inputs_of(s.conv)[1..]
                .iter()
                .all(|&p| matches!(graph.node(p).op, Op::Constant(_)))
        })
        .collect();
    if found.is_empty() {
        return Ok((graph.clone(), 0));
    }
    let out = rebuild(graph, |b, idx, rebuilt| {
        let Some(s) = found.iter().find(|s| s.end == idx) else {
            return Ok(None);
        };
        let conv = graph.node(s.conv);
        // The same convolution, dense.
        let mut op = conv.op.clone();
        let Op::Conv { groups, .. } = &mut op else {
            return Ok(None);
        };
        let conv_groups = std::mem::replace(groups, 1);
        let ins = graph.inputs_of(s.conv);
        let data = |i: usize| match ins.get(i).map(|&p| &graph.node(p).op) {
            Some(Op::Constant(d)) => Some(d.as_ref()),
            _ => None,
        };
        let (Some(w), bias) = (data(1), data(2)) else {
            return Ok(None);
        };
        let x = rebuilt[ins[0].index()].expect("the convolution's input is rebuilt first");
        let in_channels = graph.node(ins[0]).ty.shape[1];
        let (w, bias) = shuffled(w, bias, in_channels, conv_groups, s.groups);
        let dtype = graph.node(ins[1]).ty.dtype;
        let mut inputs = vec![
            x,
            b.constant(&format!("{}/shuffled_w", conv.name), w, dtype),
        ];
        if let Some(bias) = bias {
            inputs.push(b.constant(&format!("{}/shuffled_b", conv.name), bias, dtype));
        }
        Ok(Some(b.add(&graph.node(idx).name, op, &inputs)?))
    })?;
    Ok((out, found.len()))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::graph::{DType, TensorType};
    use crate::import::builder::GraphBuilder;
    use crate::inputs::{values, Fill};
    use crate::reference;

    /// `x [2, 6, 4, 4]` through a 3x3 convolution to 12 channels in `conv_groups` groups (with
    /// a bias and its ReLU when `relu`), then a channel shuffle of `g` groups (`perm` the
    /// transpose's), its output read by a ReLU; with `also_read`, the convolution is an output
    /// too.
    fn shuffled_conv(conv_groups: usize, g: usize, perm: Vec<usize>, also_read: bool) -> Graph {
        let mut b = GraphBuilder::new();
        let x = b.input("x", TensorType::new(vec![2, 6, 4, 4], DType::F32));
        let w_shape = vec![12, 6 / conv_groups, 3, 3];
        let w_len = w_shape.iter().product();
        let w = b.constant(
            "w",
            TensorData::f32(w_shape, values(w_len, Fill::Randn(3))),
            DType::F32,
        );
        let bias = b.constant(
            "bias",
            TensorData::f32(vec![12], values(12, Fill::Randn(4))),
            DType::F32,
        );
        let conv = Op::Conv {
            kernel: [3, 3],
            stride: [1, 1],
            pads: [1; 4],
            dilation: [1, 1],
            groups: conv_groups,
            relu: true,
            pixels: None,
        };
        let y = b.add("conv", conv, &[x, w, bias]).unwrap();
        let split = Op::Reshape {
            shape: vec![2, g, 12 / g, 4, 4],
        };
        let s = b.add("split", split, &[y]).unwrap();
        let t = b.add("swap", Op::Transpose { perm }, &[s]).unwrap();
        let back = Op::Reshape {
            shape: vec![2, 12, 4, 4],
        };
        let z = b.add("shuffled", back, &[t]).unwrap();
        let r = b
            .add("out", Op::Unary(crate::graph::UnaryOp::Relu), &[z])
            .unwrap();
        let mut outs = vec![("y".to_string(), r)];
        if also_read {
            outs.push(("conv".to_string(), y));
        }
        b.finish(outs)
    }

    fn ops(g: &Graph) -> Vec<String> {
        g.topo_order()
            .into_iter()
            .filter(|&n| !matches!(g.node(n).op, Op::Input | Op::Constant(_)))
            .map(|n| g.node(n).op.name())
            .collect()
    }

    fn same_outputs(a: &Graph, b: &Graph) {
        let x = TensorData::f32(vec![2, 6, 4, 4], values(192, Fill::Randn(5)));
        let inputs = BTreeMap::from([("x".to_string(), x)]);
        let (ra, rb) = (
            reference::run(a, &inputs).unwrap(),
            reference::run(b, &inputs).unwrap(),
        );
        for (name, want) in &ra {
            let (want, got) = (want.to_f32(), rb[name].to_f32());
            assert!(
                want.iter().zip(&got).all(|(a, b)| (a - b).abs() < 1e-5),
                "{name}: {want:?} vs {got:?}"
            );
        }
    }

    #[test]
    fn a_shuffle_after_a_grouped_convolution_is_the_dense_convolution_permuted() {
        for (conv_groups, g) in [(3, 3), (2, 3), (1, 2), (3, 4)] {
            let graph = shuffled_conv(conv_groups, g, vec![0, 2, 1, 3, 4], false);
            let (out, n) = fold_shuffles(&graph).unwrap();
            assert_eq!(n, 1, "groups {conv_groups}, shuffle {g}");
            let live: Vec<String> = ops(&out)
                .into_iter()
                .filter(|o| o != "Reshape" && o != "Transpose")
                .collect();
            assert!(
                ops(&out).iter().all(|o| o != "Transpose"),
                "{:?}",
                ops(&out)
            );
            assert_eq!(live, ["ConvRelu", "Relu"]);
            same_outputs(&graph, &out);
        }
    }

    #[test]
    fn other_permutations_and_convolutions_read_elsewhere_stay() {
        let swapped_spatial = shuffled_conv(3, 3, vec![0, 1, 2, 4, 3], false);
        assert_eq!(fold_shuffles(&swapped_spatial).unwrap().1, 0);
        let read_elsewhere = shuffled_conv(3, 3, vec![0, 2, 1, 3, 4], true);
        assert_eq!(fold_shuffles(&read_elsewhere).unwrap().1, 0);
    }
}
