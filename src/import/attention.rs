//! TTNN's scaled dot-product attention (`ttnn.transformer.scaled_dot_product_attention`, the
//! TTNN dialect's `ttnn.scaled_dot_product_attention`) as one [`Op::Attention`], for both TTNN
//! importers.

use petgraph::graph::NodeIndex;

use super::builder::GraphBuilder;
use crate::graph::{AttentionMask, Op, TensorData};

/// The operands of one TTNN attention call.
pub struct Sdpa {
    /// Queries `[.., heads, s, d]`.
    pub q: NodeIndex,
    /// Keys `[.., heads, sk, d]` (not transposed).
    pub k: NodeIndex,
    /// Values `[.., heads, sk, dv]`.
    pub v: NodeIndex,
    /// An additive mask broadcast over the scores `[.., s, sk]`.
    pub mask: Option<NodeIndex>,
    /// Whether query `i` sees only keys `j <= i`.
    pub causal: bool,
    /// The scores' factor; `1 / sqrt(d)` when absent.
    pub scale: Option<f32>,
}

/// Adds the attention named `name`; errors are reasons (the caller adds file and line).
pub fn build(b: &mut GraphBuilder, name: &str, a: Sdpa) -> Result<NodeIndex, String> {
    let (q, k) = (b.ty(a.q).clone(), b.ty(a.k).clone());
    let (rq, rk) = (q.shape.len(), k.shape.len());
    let Some(swap) = Op::transpose_last_two(rk).filter(|_| rq >= 2) else {
        return Err(format!(
            "queries {:?} and keys {:?} need at least 2 dims",
            q.shape, k.shape
        ));
    };
    if rq == 4 && rk == 4 && q.shape[1] != k.shape[1] && k.shape[1] != 1 {
        return Err(format!(
            "grouped-query attention ({} query heads, {} key heads) is not supported: repeat \
             the keys and values to {} heads first",
            q.shape[1], k.shape[1], q.shape[1]
        ));
    }
    let (s, d, sk) = (q.shape[rq - 2], q.shape[rq - 1], k.shape[rk - 2]);
    let mask = match (a.causal, a.mask) {
        (true, Some(_)) => {
            return Err("is_causal and attn_mask together are not supported: pass one".into())
        }
        (true, None) if s != sk => {
            return Err(format!(
                "is_causal needs as many queries as keys, got {s} and {sk}"
            ))
        }
        (true, None) => {
            let values = (0..s * sk)
                .map(|i| {
                    if i % sk <= i / sk {
                        0.0
                    } else {
                        f32::NEG_INFINITY
                    }
                })
                .collect();
            let data = TensorData::f32(vec![s, sk], values);
            Some(b.constant(&format!("{name}/causal_mask"), data, q.dtype))
        }
        (false, m) => m,
    };
    let kt = b
        .add(&format!("{name}/keys_t"), swap, &[a.k])
        .map_err(|e| e.to_string())?;
    let scale = a.scale.unwrap_or(1.0 / (d as f32).sqrt());
    let (mask, inputs) = match mask {
        Some(m) => (AttentionMask::Add, vec![a.q, kt, a.v, m]),
        None => (AttentionMask::None, vec![a.q, kt, a.v]),
    };
    b.add(name, Op::Attention { scale, mask }, &inputs)
        .map_err(|e| e.to_string())
}
