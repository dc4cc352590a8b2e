//! Deterministic input data: seeded random tensors for graph inputs the user gave no file for.

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::graph::{Graph, TensorData};

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
/// unchanged. Integer inputs get zeros, which index validly into any table.
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
            TensorData::I64 {
                shape,
                values: vec![0; n],
            }
        };
        all.insert(node.name.clone(), data);
    }
    all
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
}
