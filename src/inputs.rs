//! Deterministic input data: seeded random tensors for graph inputs the user gave no file for.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use petgraph::graph::NodeIndex;

use crate::graph::{Graph, Op, TensorData};

/// How to fill a tensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fill {
    /// Standard normal values from a seed.
    Randn(u64),
    /// Uniform values in [0, 1) from a seed.
    Rand(u64),
    /// Every element the same value.
    Full(f32),
}

/// `n` f32 values filled as `fill` says; the same arguments always give the same values.
pub fn values(n: usize, fill: Fill) -> Vec<f32> {
    match fill {
        Fill::Randn(seed) => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..n)
                .map(|_| rng.sample::<f32, _>(StandardNormal))
                .collect()
        }
        Fill::Rand(seed) => {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..n).map(|_| rng.random::<f32>()).collect()
        }
        Fill::Full(v) => vec![v; n],
    }
}

/// Seeded standard-normal data for every graph input not already in `given`; input `i` (in
/// declaration order) uses seed `seed + i`, so adding a file for one input leaves the others
/// unchanged. Integer inputs get seeded valid indices (see [`index_bound`]).
pub fn complete_inputs(
    graph: &Graph,
    given: BTreeMap<String, TensorData>,
    seed: u64,
) -> BTreeMap<String, TensorData> {
    let mut all = given;
    for (i, &idx) in graph.inputs.iter().enumerate() {
        let node = graph.node(idx);
        if all.contains_key(&node.name) {
            continue;
        }
        let shape = node.ty.shape.clone();
        let n = node.ty.numel();
        let data = if node.ty.dtype.is_float() {
            TensorData::F32 {
                shape,
                values: values(n, Fill::Randn(seed + i as u64)),
            }
        } else {
            let bound = index_bound(graph, idx);
            let mut rng = ChaCha8Rng::seed_from_u64(seed + i as u64);
            TensorData::I64 {
                shape,
                values: (0..n).map(|_| rng.random_range(0..bound)).collect(),
            }
        };
        all.insert(node.name.clone(), data);
    }
    all
}

/// Values of an integer input are drawn from `[0, bound)`, this many when no Gather reads it.
pub const SMALL_INDEX_BOUND: i64 = 4;

/// The exclusive upper bound for seeded values of integer input `input`: the smallest size of
/// the indexed axis over the Gathers (embedding lookups) that take it as indices, else
/// [`SMALL_INDEX_BOUND`]; never below 1.
pub fn index_bound(graph: &Graph, input: NodeIndex) -> i64 {
    graph
        .users_of(input)
        .into_iter()
        .filter_map(|user| {
            let node = graph.node(user);
            let Op::Gather { axis } = node.op else {
                return None;
            };
            let operands = graph.inputs_of(user);
            if operands.get(1) != Some(&input) {
                return None;
            }
            let table = graph.node(*operands.first()?);
            table.ty.shape.get(axis).map(|&size| size as i64)
        })
        .min()
        .unwrap_or(SMALL_INDEX_BOUND)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_values_and_another_differs() {
        assert_eq!(values(64, Fill::Randn(7)), values(64, Fill::Randn(7)));
        assert_ne!(values(64, Fill::Randn(7)), values(64, Fill::Randn(8)));
    }

    #[test]
    fn randn_looks_standard_normal() {
        let v = values(20_000, Fill::Randn(1));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "variance {var}");
    }

    #[test]
    fn rand_stays_in_the_unit_interval() {
        assert!(values(1000, Fill::Rand(3))
            .iter()
            .all(|&x| (0.0..1.0).contains(&x)));
    }

    #[test]
    fn integer_inputs_get_valid_indices_into_the_table_they_gather_from() {
        use crate::graph::{DType, TensorType};
        let mut g = Graph::new();
        let table = g.add_input("table", TensorType::new(vec![7, 16], DType::F32));
        let ids = g.add_input("ids", TensorType::new(vec![200], DType::I64));
        let other = g.add_input("other", TensorType::new(vec![200], DType::I64));
        let out = g.add(
            "emb",
            Op::Gather { axis: 0 },
            TensorType::new(vec![200, 16], DType::F32),
            &[table, ids],
        );
        g.outputs.push(("emb".into(), out));
        assert_eq!(index_bound(&g, ids), 7);
        assert_eq!(index_bound(&g, other), SMALL_INDEX_BOUND);
        let all = complete_inputs(&g, BTreeMap::new(), 3);
        let TensorData::I64 { values, .. } = &all["ids"] else {
            panic!("ids is not integer data");
        };
        assert!(values.iter().all(|v| (0..7).contains(v)));
        assert!(values.contains(&6), "the whole range is used");
        let TensorData::I64 { values, .. } = &all["other"] else {
            panic!("other is not integer data");
        };
        assert!(values.iter().all(|v| (0..SMALL_INDEX_BOUND).contains(v)));
        assert_eq!(all, complete_inputs(&g, BTreeMap::new(), 3));
    }
}
