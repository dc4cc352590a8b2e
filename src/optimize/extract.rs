//! Cost-based extraction that counts a shared sub-expression once.
//!
//! A DAG-aware greedy extractor: every e-class keeps its best e-node together with the set of
//! e-classes that choice pulls in (each with its own cost); a candidate's cost is the sum over
//! the union of its children's sets plus its own cost, so a class shared by two children is
//! paid once. Passes over all classes repeat until no class improves. The union also detects
//! cycles (a candidate whose children already need its own class is skipped).
//!
//! Greedy choices are made per class, so a parent may keep a set built from a child's older
//! choice; [`Extraction::acyclic`] checks the final choice and, if it is not a DAG, the caller
//! uses [`extract_tree`], the classic tree-cost extractor (own cost + 1 + children), which
//! cannot choose a cycle.

use std::collections::BTreeMap;
use std::rc::Rc;

use egg::{Id, Language};

use super::analysis::TGraph;
use super::cost::CostModel;
use super::language::{TNode, TOp};
use super::mapping::graph_op;
use super::typing::ClassData;

/// The chosen e-node of each needed e-class.
#[derive(Clone, Debug)]
pub struct Extraction {
    /// E-class -> chosen e-node (children are canonical class ids).
    pub choice: BTreeMap<Id, TNode>,
    /// The DAG cost of the choice for the roots (each class counted once).
    pub cost: f64,
}

/// The cost of e-node `node` alone (its children are paid separately).
pub fn own_cost(egraph: &TGraph, model: &CostModel, class: Id, node: &TNode) -> f64 {
    if matches!(node.op, TOp::Leaf(_)) {
        return 0.0;
    }
    let out = match &egraph[class].data {
        ClassData::Tensor(t) if t.weak => return 0.0,
        ClassData::Tensor(t) => &t.ty,
        _ => return 0.0,
    };
    let kids: Vec<&ClassData> = node.children.iter().map(|&c| &egraph[c].data).collect();
    let Ok(g) = graph_op(&node.op, &kids) else {
        return f64::INFINITY;
    };
    // A node over constants only is folded into a constant after extraction.
    if g.inputs
        .iter()
        .all(|&i| kids[i].tensor().is_some_and(|t| t.constant))
    {
        return 0.0;
    }
    // Weak scalar operands are constant tiles: not read from DRAM.
    let inputs: Vec<&crate::graph::TensorType> = g
        .inputs
        .iter()
        .filter_map(|&i| kids[i].tensor())
        .filter(|t| !t.weak)
        .map(|t| &t.ty)
        .collect();
    // TT-Lang raises to integer powers (ttl.power) and the planner maps +-0.5 to (r)sqrt.
    let tt_exponent = kids
        .get(1)
        .and_then(|d| d.tensor())
        .and_then(|t| t.splat)
        .is_some_and(|v| (v.fract() == 0.0 && v.abs() <= 16.0) || v.abs() == 0.5);
    model.node_cost(&g.op, &inputs, out, tt_exponent)
}

struct Best {
    total: f64,
    node: usize,
    set: Rc<BTreeMap<Id, f64>>,
}

/// Extracts the roots with the DAG-aware greedy extractor (`max_passes` bounds the passes).
pub fn extract_dag(
    egraph: &TGraph,
    roots: &[Id],
    model: &CostModel,
    max_passes: usize,
) -> Extraction {
    let ids = children_first(egraph);
    let own: BTreeMap<(Id, usize), f64> = ids
        .iter()
        .flat_map(|&id| {
            egraph[id]
                .nodes
                .iter()
                .enumerate()
                .map(move |(i, n)| ((id, i), n))
        })
        .map(|((id, i), n)| ((id, i), own_cost(egraph, model, id, n)))
        .collect();
    let mut best: BTreeMap<Id, Best> = BTreeMap::new();
    for _ in 0..max_passes.max(1) {
        let mut changed = false;
        for &id in &ids {
            for (i, node) in egraph[id].nodes.iter().enumerate() {
                let kids: Vec<Id> = node.children.iter().map(|&c| egraph.find(c)).collect();
                let Some(sets) = kids
                    .iter()
                    .map(|k| best.get(k).map(|b| &b.set))
                    .collect::<Option<Vec<_>>>()
                else {
                    continue;
                };
                if sets.iter().any(|s| s.contains_key(&id)) {
                    continue;
                }
                let mut set: BTreeMap<Id, f64> = match sets.iter().max_by_key(|s| s.len()) {
                    Some(s) => (***s).clone(),
                    None => BTreeMap::new(),
                };
                for s in &sets {
                    for (k, v) in s.iter() {
                        set.entry(*k).or_insert(*v);
                    }
                }
                let cost = own[&(id, i)];
                set.insert(id, cost);
                let total: f64 = set.values().sum();
                if best.get(&id).is_none_or(|b| total < b.total) {
                    best.insert(
                        id,
                        Best {
                            total,
                            node: i,
                            set: Rc::new(set),
                        },
                    );
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    finish(egraph, roots, |id| best.get(&id).map(|b| b.node), &own)
}

/// Every e-class, each after the classes its e-nodes read where the e-graph has no cycle (a
/// depth-first post-order from the classes in id order): a pass of the greedy extractor then
/// sees a class's children's new choices in the same pass, so that rewrites that add classes
/// above older ones (with higher ids) do not cost a pass per layer of the model.
fn children_first(egraph: &TGraph) -> Vec<Id> {
    let mut ids: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    ids.sort();
    let mut order = Vec::with_capacity(ids.len());
    let mut seen = std::collections::BTreeSet::new();
    for &root in &ids {
        if !seen.insert(root) {
            continue;
        }
        // (class, whether its children were pushed)
        let mut stack = vec![(root, false)];
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                order.push(id);
                continue;
            }
            stack.push((id, true));
            for node in egraph[id].nodes.iter().rev() {
                for &c in node.children.iter().rev() {
                    let c = egraph.find(c);
                    if seen.insert(c) {
                        stack.push((c, false));
                    }
                }
            }
        }
    }
    order
}

/// Extracts the roots by tree cost (own cost + 1 + children's), which never picks a cycle.
pub fn extract_tree(egraph: &TGraph, roots: &[Id], model: &CostModel) -> Extraction {
    let mut ids: Vec<Id> = egraph.classes().map(|c| c.id).collect();
    ids.sort();
    let mut own = BTreeMap::new();
    let mut best: BTreeMap<Id, (f64, usize)> = BTreeMap::new();
    loop {
        let mut changed = false;
        for &id in &ids {
            for (i, node) in egraph[id].nodes.iter().enumerate() {
                let c = *own
                    .entry((id, i))
                    .or_insert_with(|| own_cost(egraph, model, id, node));
                let kids: Option<f64> = node
                    .children
                    .iter()
                    .map(|&k| best.get(&egraph.find(k)).map(|b| b.0))
                    .sum();
                let Some(kids) = kids else { continue };
                let total = c + 1.0 + kids;
                if best.get(&id).is_none_or(|b| total < b.0) {
                    best.insert(id, (total, i));
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    finish(egraph, roots, |id| best.get(&id).map(|b| b.1), &own)
}

/// Collects the choice reachable from `roots` and its DAG cost.
fn finish(
    egraph: &TGraph,
    roots: &[Id],
    pick: impl Fn(Id) -> Option<usize>,
    own: &BTreeMap<(Id, usize), f64>,
) -> Extraction {
    let mut choice = BTreeMap::new();
    let mut cost = 0.0;
    let mut stack: Vec<Id> = roots.iter().map(|&r| egraph.find(r)).collect();
    while let Some(id) = stack.pop() {
        if choice.contains_key(&id) {
            continue;
        }
        let Some(i) = pick(id) else {
            cost = f64::INFINITY;
            continue;
        };
        let node = egraph[id].nodes[i].clone().map_children(|c| egraph.find(c));
        cost += own.get(&(id, i)).copied().unwrap_or(f64::INFINITY);
        stack.extend(node.children.iter().copied());
        choice.insert(id, node);
    }
    Extraction { choice, cost }
}

impl Extraction {
    /// Whether the chosen e-nodes form a DAG below `roots`.
    pub fn acyclic(&self, roots: &[Id]) -> bool {
        // 0 = unvisited, 1 = on the stack, 2 = done
        let mut state: BTreeMap<Id, u8> = BTreeMap::new();
        for &r in roots {
            let mut stack = vec![(r, false)];
            while let Some((id, leaving)) = stack.pop() {
                if leaving {
                    state.insert(id, 2);
                    continue;
                }
                match state.get(&id) {
                    Some(2) => continue,
                    Some(1) => return false,
                    _ => {}
                }
                state.insert(id, 1);
                stack.push((id, true));
                if let Some(n) = self.choice.get(&id) {
                    for &c in &n.children {
                        match state.get(&c) {
                            Some(1) => return false,
                            Some(2) => {}
                            _ => stack.push((c, false)),
                        }
                    }
                }
            }
        }
        true
    }
}
