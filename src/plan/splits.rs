//! The second grouping pass: kernels split where the planner's estimate finds them faster
//! apart, and merged where it finds them faster together (products of one operand, a norm in
//! the kernel of its products, the norm's input computed by that kernel). [`Splits`] holds the
//! grouping while it changes; [`super::group::group`] runs its passes in order.

use std::collections::BTreeMap;

use petgraph::graph::NodeIndex;

use super::group::{
    can_join, has_chained_product, is_chained_product, is_rowwise_group, is_rowwise_op,
    matmul_group, merge_siblings_where_faster, no_kernel_cycle, real_users, resolve, role,
    row_space, sibling_union, BreakReason, FusionBreak, Group, GroupKind, Role,
};
use super::heads;
use super::FusionMode;
use crate::graph::{BinaryOp, Graph, Op};

/// The planner's groups while kernels are split where its estimate finds them faster apart.
pub(super) struct Splits<'a> {
    /// The graph grouped.
    pub(super) graph: &'a Graph,
    /// The groups (an emptied one is a kernel merged away).
    pub(super) groups: &'a mut Vec<Group>,
    /// Each grouped node's group.
    pub(super) group_of: &'a mut BTreeMap<NodeIndex, usize>,
    /// The producer/consumer pairs in different kernels, with the reason.
    pub(super) breaks: &'a mut Vec<FusionBreak>,
    /// Whether a group fits the core (the planner's budget check).
    pub(super) fits: &'a dyn Fn(&Group) -> Result<(), BreakReason>,
    /// A group's estimated cycles, if it plans.
    pub(super) cost: &'a dyn Fn(&Group) -> Option<f64>,
}

impl Splits<'_> {
    /// [`merge_siblings_where_faster`] over the current groups (`position`: each node's place
    /// in topological order).
    pub(super) fn merge_siblings(&mut self, position: &BTreeMap<NodeIndex, usize>) {
        let (graph, fits, cost) = (self.graph, self.fits, self.cost);
        merge_siblings_where_faster(graph, self.groups, self.group_of, position, fits, cost);
    }

    /// Splits kernels at chained products where the two kernels apart are faster: a chained
    /// product and its epilogue run on the few whole-row blocks of the kernel they join, which
    /// can cost more than the launch and DRAM round trip they save. Works from each kernel's
    /// last chained product back; the split-off product starts a matmul kernel with its
    /// epilogue, and takes back the elementwise kernel after it ([`Self::absorb_epilogue`]).
    pub(super) fn unchain_where_slower(&mut self) {
        let graph = self.graph;
        for gi in 0..self.groups.len() {
            while let Some(at) = {
                let g = &self.groups[gi];
                g.nodes
                    .iter()
                    .skip(1)
                    .rposition(|&m| is_chained_product(graph, g, m))
                    .map(|i| i + 1)
            } {
                let tail = matmul_group(graph, self.groups[gi].nodes[at], FusionMode::Fused);
                let ti = self.groups.len();
                if !self.where_slower(gi, at, tail.kind, tail.space) {
                    break;
                }
                self.absorb_epilogue(ti);
            }
        }
    }

    /// Gives matmul kernel `ti`, a product just split off a kernel it was chained into, the
    /// elementwise kernel that starts at its product's only consumer. The first pass may have
    /// cut that epilogue off for the budget of the kernel the product then belonged to (its
    /// bias and residual, say); apart from that kernel it may fit. Merges when every op joins,
    /// the merged kernel fits, and the estimate finds it no slower than the two apart.
    fn absorb_epilogue(&mut self, ti: usize) {
        let graph = self.graph;
        let t = &self.groups[ti];
        let Some(&last) = t.nodes.last() else {
            return;
        };
        let (users, is_out) = real_users(graph, last);
        let ([u], false) = (users.as_slice(), is_out) else {
            return;
        };
        let Some(&ei) = self.group_of.get(u) else {
            return;
        };
        let e = &self.groups[ei];
        if ei == ti
            || e.kind != GroupKind::Body
            || e.nodes.first() != Some(u)
            || is_rowwise_group(graph, e)
            || can_join(graph, t, *u, last, role(graph, *u, FusionMode::Fused)).is_err()
        {
            return;
        }
        // The grouping as it would be, so that only the merged kernel's outside inputs are
        // checked for a cycle.
        let mut groups = self.groups.clone();
        let mut group_of = self.group_of.clone();
        groups[ti].nodes.extend(&e.nodes);
        groups[ei].nodes.clear();
        for &n in &e.nodes {
            group_of.insert(n, ti);
        }
        let merged = &groups[ti];
        if merged
            .nodes
            .iter()
            .any(|&n| no_kernel_cycle(graph, &groups, &group_of, ti, n).is_err())
            || (self.fits)(merged).is_err()
        {
            return;
        }
        let cost = self.cost;
        let (Some(one), Some(a), Some(b)) = (cost(merged), cost(t), cost(e)) else {
            return;
        };
        if one > a + b {
            return;
        }
        let (producer, consumer) = (&graph.node(last).name, &graph.node(*u).name);
        self.breaks
            .retain(|b| !(&b.producer == producer && &b.consumer == consumer));
        *self.groups = groups;
        *self.group_of = group_of;
    }

    /// Splits matmul kernels before their first row-wise epilogue op where the two kernels
    /// apart are faster: a row-wise epilogue needs blocks spanning whole output rows, which
    /// leaves a product of few rows (a classifier's last layer) on few cores. The split-off
    /// part starts a row-wise kernel.
    pub(super) fn split_rowwise_where_slower(&mut self) {
        let graph = self.graph;
        for gi in 0..self.groups.len() {
            let g = &self.groups[gi];
            if !matches!(g.kind, GroupKind::Matmul { .. }) || has_chained_product(graph, g) {
                continue;
            }
            let Some(at) = g.nodes.iter().position(|&n| is_rowwise_op(graph, n)) else {
                continue;
            };
            if let Some(space) = row_space(graph, g.nodes[at], Role::Row) {
                self.where_slower(gi, at, GroupKind::Body, space);
            }
        }
    }

    /// Moves each RMSNorm or LayerNorm kernel into the matmul kernel that takes its result as
    /// every product's left operand, when the estimate finds the one kernel faster: the matmul
    /// kernel then reads the norm's input and normalizes it itself
    /// ([`GroupKind::Matmul::norm`]), instead of a norm kernel writing the normalized rows for
    /// the matmul kernel to read back. Products of the norm in several kernels join in one
    /// ([`sibling_union`]) to take it: each apart may be faster than together, but not than
    /// together with the norm (LLaMA's q and k with their rotations, and v, at 128 rows: a
    /// v kernel with K split takes 12.19 us and the q and k kernel 59.46, after a norm
    /// kernel's 9.56; the one kernel, 72.19). The norm's gain must be one and a LayerNorm's
    /// bias zero (the optimizer folds them into the weights and the products' bias), since the
    /// kernel scales the products' rows, not A's columns. `position`: each node's place in
    /// topological order.
    pub(super) fn normalize_in_products(&mut self, position: &BTreeMap<NodeIndex, usize>) {
        let graph = self.graph;
        for ni in 0..self.groups.len() {
            let Some(nrm) = normalized_operand(graph, &self.groups[ni]) else {
                continue;
            };
            let (users, is_out) = real_users(graph, nrm);
            let mut parts: Vec<usize> = users
                .iter()
                .filter_map(|u| self.group_of.get(u).copied())
                .collect();
            parts.sort_unstable();
            parts.dedup();
            let Some((&mi, others)) = parts.split_first() else {
                continue;
            };
            let joined = others.iter().try_fold(self.groups[mi].clone(), |m, &oi| {
                sibling_union(graph, &m, &self.groups[oi], position)
            });
            let Some(m) = joined else {
                continue;
            };
            let GroupKind::Matmul { mm, norm: None, .. } = m.kind else {
                continue;
            };
            if is_out || !read_by_products_only(graph, &m, nrm) {
                continue;
            }
            let mut merged = m;
            if let GroupKind::Matmul { norm, .. } = &mut merged.kind {
                *norm = Some(nrm);
            }
            merged.nodes.insert(0, nrm);
            let apart: Vec<usize> = std::iter::once(ni).chain(parts.iter().copied()).collect();
            if !self.faster_merged(&merged, &apart, (nrm, mm)) {
                continue;
            }
            let producer = &graph.node(nrm).name;
            self.breaks.retain(|b| &b.producer != producer);
            for &gi in std::iter::once(&ni).chain(others) {
                for n in std::mem::take(&mut self.groups[gi].nodes) {
                    self.group_of.insert(n, mi);
                }
            }
            self.groups[mi] = merged;
        }
    }

    /// Moves each matmul kernel whose result (after its bias and residual adds) is a norm's
    /// input into the kernel that normalizes it in its products, when the estimate
    /// finds the one kernel faster: each core of that kernel computes the K chunk it
    /// multicasts ([`GroupKind::Matmul::norm_input`]) instead of reading it, and writes it for
    /// the kernels that read it after (the block's last residual).
    pub(super) fn compute_norm_inputs(&mut self) {
        let graph = self.graph;
        for mi in 0..self.groups.len() {
            // The norm the products' kernel applies, or one that ends the kernel before it (in
            // the row-wise epilogue of the product computing its input).
            let (nrm, norm_apart) = match &self.groups[mi].kind {
                GroupKind::Matmul {
                    norm: Some(nrm),
                    norm_input: None,
                    ..
                } => (*nrm, false),
                GroupKind::Matmul {
                    mm,
                    norm: None,
                    norm_input: None,
                    ..
                } => {
                    let a = resolve(graph, graph.inputs_of(*mm)[0]);
                    let m = &self.groups[mi];
                    let is_out = real_users(graph, a).1;
                    if is_out || !unit_norm(graph, a) || !read_by_products_only(graph, m, a) {
                        continue;
                    }
                    (a, true)
                }
                _ => continue,
            };
            let h = resolve(graph, graph.inputs_of(nrm)[0]);
            let (Some(&pi), Some(&ni)) = (self.group_of.get(&h), self.group_of.get(&nrm)) else {
                continue;
            };
            // The norm in the epilogue of the product's kernel, or a kernel of its own.
            let nodes = &self.groups[pi].nodes;
            let (computing, alone) = match norm_apart {
                true if ni == pi && nodes.last() == Some(&nrm) => (&nodes[..nodes.len() - 1], None),
                true if self.groups[ni].nodes == [nrm] => (&nodes[..], Some(ni)),
                true => continue,
                false => (&nodes[..], None),
            };
            let Some(mm) = product_then_adds(graph, &self.groups[pi].kind, computing, h) else {
                continue;
            };
            let mut merged = self.groups[mi].clone();
            if let GroupKind::Matmul {
                norm, norm_input, ..
            } = &mut merged.kind
            {
                *norm = Some(nrm);
                *norm_input = Some(mm);
            }
            let parts: Vec<usize> = [Some(pi), alone, Some(mi)].into_iter().flatten().collect();
            let leading: Vec<NodeIndex> = parts[..parts.len() - 1]
                .iter()
                .flat_map(|&gi| self.groups[gi].nodes.clone())
                .collect();
            merged.nodes.splice(0..0, leading);
            if !self.faster_merged(&merged, &parts, (h, nrm)) {
                continue;
            }
            let producer = &graph.node(nrm).name;
            self.breaks.retain(|b| &b.producer != producer);
            for &gi in &parts[..parts.len() - 1] {
                for n in std::mem::take(&mut self.groups[gi].nodes) {
                    self.group_of.insert(n, mi);
                }
            }
            self.groups[mi] = merged;
        }
    }

    /// Whether `merged`, groups `parts` in one kernel, fits and is faster by the estimate than
    /// the kernels apart; records why not when it is slower (`producer`'s result read by
    /// `consumer` across the kernels).
    fn faster_merged(
        &mut self,
        merged: &Group,
        parts: &[usize],
        (producer, consumer): (NodeIndex, NodeIndex),
    ) -> bool {
        if (self.fits)(merged).is_err() {
            return false;
        }
        let cost = self.cost;
        let apart: Option<f64> = parts.iter().map(|&gi| cost(&self.groups[gi])).sum();
        let (Some(one), Some(apart)) = (cost(merged), apart) else {
            return false;
        };
        if one >= apart {
            self.breaks.push(FusionBreak {
                producer: self.graph.node(producer).name.clone(),
                consumer: self.graph.node(consumer).name.clone(),
                reason: BreakReason::Slower {
                    fused_cycles: one,
                    separate_cycles: apart,
                },
            });
        }
        one < apart
    }

    /// Splits group `gi` before its node `at`, the tail a new group of `kind` over `space`,
    /// when the estimate finds the two apart faster; records the break. Returns whether it
    /// split.
    fn where_slower(
        &mut self,
        gi: usize,
        at: usize,
        kind: GroupKind,
        space: (usize, usize),
    ) -> bool {
        let g = &self.groups[gi];
        let head = Group {
            nodes: g.nodes[..at].to_vec(),
            ..g.clone()
        };
        let tail = Group {
            kind,
            nodes: g.nodes[at..].to_vec(),
            space,
        };
        let cost = self.cost;
        let (Some(merged), Some(a), Some(b)) = (cost(g), cost(&head), cost(&tail)) else {
            return false;
        };
        if merged <= a + b {
            return false;
        }
        self.breaks.push(FusionBreak {
            producer: self.graph.node(g.nodes[at - 1]).name.clone(),
            consumer: self.graph.node(g.nodes[at]).name.clone(),
            reason: BreakReason::Slower {
                fused_cycles: merged,
                separate_cycles: a + b,
            },
        });
        for &n in &tail.nodes {
            self.group_of.insert(n, self.groups.len());
        }
        self.groups[gi] = head;
        self.groups.push(tail);
        true
    }
}

/// The RMSNorm or LayerNorm that body group `g` consists of, when a matmul kernel could
/// normalize it: unit gain and no bias, an input that is neither a constant nor a head view,
/// and whole tiles of columns (the kernel sums over every column of A's K chunks, padding
/// included).
fn normalized_operand(graph: &Graph, g: &Group) -> Option<NodeIndex> {
    let [nrm] = g.nodes[..] else {
        return None;
    };
    (g.kind == GroupKind::Body && unit_norm(graph, nrm)).then_some(nrm)
}

/// Whether every reader of norm `nrm`'s result is one of matmul group `m`'s products, reading
/// it as its left operand only, and `m` holds no chained product: the kernel `m` becomes can
/// apply the norm to A itself.
fn read_by_products_only(graph: &Graph, m: &Group, nrm: NodeIndex) -> bool {
    let GroupKind::Matmul {
        mm, ref siblings, ..
    } = m.kind
    else {
        return false;
    };
    let operand =
        |u: NodeIndex, slot: usize| graph.inputs_of(u).get(slot).map(|&x| resolve(graph, x));
    let reads_a = |&u: &NodeIndex| {
        (u == mm || siblings.contains(&u))
            && operand(u, 0) == Some(nrm)
            && operand(u, 1) != Some(nrm)
    };
    real_users(graph, nrm).0.iter().all(reads_a) && !has_chained_product(graph, m)
}

/// Whether node `nrm` is an RMSNorm or LayerNorm that a matmul kernel could apply to its left
/// operand ([`normalized_operand`]).
fn unit_norm(graph: &Graph, nrm: NodeIndex) -> bool {
    let ins = graph.inputs_of(nrm);
    let norm = matches!(
        graph.node(nrm).op,
        Op::RmsNorm { .. } | Op::LayerNorm { .. }
    );
    let (true, [x, gain, bias @ ..]) = (norm, &ins[..]) else {
        return false;
    };
    let all = |n: NodeIndex, value: f32| match &graph.node(resolve(graph, n)).op {
        Op::Constant(data) => data.to_f32().iter().all(|&v| v == value),
        _ => false,
    };
    // A LayerNorm's bias, if it has one, is zero (the optimizer folds it into the products).
    let unit_gain = all(*gain, 1.0) && bias.iter().all(|&b| all(b, 0.0));
    let x = graph.node(resolve(graph, *x));
    let plain = !matches!(x.op, Op::Constant(_))
        && heads::read_in_place(graph, resolve(graph, ins[0])).is_none();
    let whole_tiles = x.ty.shape.last().is_some_and(|c| c.is_multiple_of(32));
    unit_gain && plain && whole_tiles
}

/// The matmul of a plain matmul group of `kind` whose result `h` is, when its `nodes` are that
/// matmul and then adds of `h`'s shape ending in `h`, each of the chain so far and a constant
/// row vector (a bias) or a tensor of `h`'s shape computed before (a residual): a norm's input
/// that a kernel normalizing it in its products can compute chunk by chunk
/// ([`GroupKind::Matmul::norm_input`]).
fn product_then_adds(
    graph: &Graph,
    kind: &GroupKind,
    nodes: &[NodeIndex],
    h: NodeIndex,
) -> Option<NodeIndex> {
    let GroupKind::Matmul {
        mm,
        b_transposed: false,
        ref siblings,
        norm: None,
        norm_input: None,
        ..
    } = *kind
    else {
        return None;
    };
    let ([first, adds @ ..], true) = (nodes, siblings.is_empty()) else {
        return None;
    };
    let shape = &graph.node(h).ty.shape;
    let [a, b] = graph.inputs_of(mm)[..] else {
        return None;
    };
    let plain = |n: NodeIndex| {
        let node = graph.node(n);
        node.ty.shape.len() == 2
            && !matches!(node.op, Op::Constant(_))
            && heads::read_in_place(graph, n).is_none()
    };
    let weights = matches!(graph.node(resolve(graph, b)).op, Op::Constant(_));
    if *first != mm || adds.last() != Some(&h) || !(plain(a) && weights && shape.len() == 2) {
        return None;
    }
    let mut chain = mm;
    for &add in adds {
        let ins = graph.inputs_of(add);
        let other = match ins[..] {
            [x, y] if x == chain => y,
            [x, y] if y == chain => x,
            _ => return None,
        };
        let other_shape = &graph.node(resolve(graph, other)).ty.shape;
        let row_vector = matches!(graph.node(resolve(graph, other)).op, Op::Constant(_))
            && other_shape.len() == 1
            && other_shape[0] == shape[1];
        let same = other_shape == shape && !nodes.contains(&resolve(graph, other));
        let is_add = matches!(graph.node(add).op, Op::Binary(BinaryOp::Add));
        if !(is_add && graph.node(add).ty.shape == *shape && (row_vector || same)) {
            return None;
        }
        chain = add;
    }
    Some(mm)
}
