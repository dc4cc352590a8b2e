//! Splitting a chained product's columns over cores.
//!
//! A kernel that chains a product after a row-wise part (a norm, a softmax) needs whole rows of
//! its left operand in L1, so it has as many blocks as row blocks: a few rows of tokens leave
//! most of the grid idle. Its product's columns need not stay together: cut them into chunks,
//! and give each core one row block and one chunk; every core recomputes the row-wise part of
//! its rows (cheap next to the product) and multiplies by its chunk's columns of the right
//! operand. This is how a norm fuses into the projection after it without giving up the grid.

use std::collections::BTreeSet;

use super::body::{Body, ValueOp};
use super::heads::HeadWrite;
use super::layout::Class;

/// The kernel's chained products whose columns can be split, and their width in tiles: the
/// body's last chained product and every other product of its left operand as wide (a gated
/// MLP's two projections; q, k and v), followed by elementwise work alone.
fn splittable_products(body: &Body) -> Option<(BTreeSet<usize>, usize)> {
    if body.stream.is_some() {
        return None;
    }
    let width_of = |i: usize| match body.values[i].class {
        Class::Wide(w) => Some(w),
        Class::Full if body.space.1.is_multiple_of(32) => Some(body.space.1 / 32),
        _ => None,
    };
    let is_product = |i: usize| body.values[i].op == ValueOp::Product;
    let last = (0..body.values.len()).rfind(|&i| is_product(i))?;
    let (a, width) = (*body.values[last].args.first()?, width_of(last)?);
    let products: BTreeSet<usize> = (0..body.values.len())
        .filter(|&i| {
            is_product(i) && body.values[i].args.first() == Some(&a) && width_of(i) == Some(width)
        })
        .collect();
    let after = downstream(body, &products);
    let elementwise = after.iter().all(|&i| {
        products.contains(&i)
            || !matches!(
                body.values[i].op,
                ValueOp::Reduce(_) | ValueOp::Product | ValueOp::MatMul
            )
    });
    elementwise.then_some((products, width))
}

/// The width in tiles of the chained products whose columns [`split`] can cut, if any.
pub fn splittable_width(body: &Body) -> Option<usize> {
    splittable_products(body).map(|(_, w)| w)
}

/// `products` and every value computed from them.
fn downstream(body: &Body, products: &BTreeSet<usize>) -> BTreeSet<usize> {
    let mut out = products.clone();
    let first = products.first().copied().unwrap_or(0);
    for (i, v) in body.values.iter().enumerate().skip(first + 1) {
        if v.args.iter().any(|a| out.contains(a)) {
            out.insert(i);
        }
    }
    out
}

/// `body` with its chained products' results, their right operands and everything read or
/// computed only for their epilogue cut to chunks of `chunk` tiles of columns
/// (placed by the block's `wide_col`), and the number of chunks; or `None` when the product
/// cannot be split there: a value the epilogue shares with the rest of the kernel would need
/// both widths.
pub fn split(body: &Body, chunk: usize) -> Option<(Body, usize)> {
    let (products, width) = splittable_products(body)?;
    if chunk == 0 || chunk >= width || !width.is_multiple_of(chunk) {
        return None;
    }
    // A head split needs each chunk within one head.
    if let Some(HeadWrite::Split { head_tiles, .. }) = body.head_write {
        if !head_tiles.is_multiple_of(chunk) {
            return None;
        }
    }
    let first = *products.first()?;
    let was_full = body.values[first].class == Class::Full;
    // Classes measured against the products' columns (the kernel's own when the products are
    // as wide as the kernel).
    let relative = |c: Class| match c {
        Class::Full | Class::Row => was_full,
        Class::Wide(w) | Class::WideRow(w) | Class::Matrix(_, w) => w == width,
        Class::Col | Class::Scalar => false,
    };
    let users = body.users();
    let mut cut = downstream(body, &products);
    // The products' right operands, and what is read or broadcast for the epilogue alone.
    let a = body.values[first].args[0];
    for &p in &products {
        cut.insert(*body.values[p].args.get(1)?);
    }
    for i in (0..body.values.len()).rev() {
        let only_epilogue = !users[i].is_empty() && users[i].iter().all(|u| cut.contains(u));
        if i != a && !cut.contains(&i) && relative(body.values[i].class) && only_epilogue {
            cut.insert(i);
        }
    }
    // The products read their left operand whole; everything else cut reads only cut values
    // or values of the rows' own classes.
    let shared = cut.iter().filter(|i| !products.contains(i)).any(|&i| {
        body.values[i]
            .args
            .iter()
            .any(|x| !cut.contains(x) && relative(body.values[*x].class))
    });
    // Only the first chunk computes and writes the other outputs, each in a stage of its own:
    // not the kernel's own product, which every block accumulates.
    let own_product_out = body
        .outputs
        .iter()
        .any(|&(_, v)| !cut.contains(&v) && body.values[v].op == ValueOp::MatMul);
    if shared || own_product_out {
        return None;
    }
    let mut out = body.clone();
    for &i in &cut {
        let v = &mut out.values[i];
        v.chunked = true;
        v.class = match v.class {
            Class::Full | Class::Wide(_) => Class::Wide(chunk),
            Class::Row | Class::WideRow(_) => Class::WideRow(chunk),
            Class::Matrix(k, _) => Class::Matrix(k, chunk),
            c => c,
        };
    }
    Some((out, width / chunk))
}

#[cfg(test)]
mod tests {
    use crate::graph::{BinaryOp, Graph, Op};
    use crate::plan::group::{Group, GroupKind};
    use crate::plan::kernel::{self, Cut};
    use crate::plan::testing::{constant, f32t, output_pccs, small_grid};
    use crate::plan::FusionMode;

    #[test]
    fn every_block_of_a_core_takes_its_own_chunk() {
        // layernorm(x) @ w + b and the norm, x [640, 128], w [128, 384], on 2 cores: 5 row blocks times the
        // chunks, so each core runs several blocks of different rows and chunks.
        let mut graph = Graph::new();
        let x = graph.add_input("x", f32t(&[640, 128]));
        let gamma = constant(&mut graph, "gamma", &[128], 1);
        let beta = constant(&mut graph, "beta", &[128], 2);
        let ln = graph.add(
            "ln",
            Op::LayerNorm { eps: 1e-5 },
            f32t(&[640, 128]),
            &[x, gamma, beta],
        );
        let w = constant(&mut graph, "w", &[128, 384], 3);
        let b = constant(&mut graph, "b", &[384], 4);
        let p = graph.add("p", Op::MatMul, f32t(&[640, 384]), &[ln, w]);
        let y = graph.add("y", Op::Binary(BinaryOp::Add), f32t(&[640, 384]), &[p, b]);
        graph.outputs.push(("y".into(), y));
        // The norm leaves the kernel too: only the first chunk's blocks compute and write it.
        graph.outputs.push(("ln".into(), ln));

        let (device, target) = small_grid(2, 1);
        let group = Group {
            kind: GroupKind::Body,
            nodes: vec![ln, p, y],
            space: (640, 128),
        };
        for chunk in [1, 3, 4] {
            let k = kernel::build_cut(&graph, &target, &group, FusionMode::Fused, Cut::Wide(chunk))
                .expect("splits");
            assert_eq!(k.partition.wide, Some(chunk));
            assert!(k.partition.blocks_per_core > 1, "{}", k.partition_summary);
            assert!(k.partition.row_blocks > 1, "{}", k.partition_summary);
            for (name, pcc) in output_pccs(&graph, &device, k) {
                assert!(pcc >= 0.999, "{name} with chunks of {chunk}: pcc {pcc}");
            }
        }
    }
}
