//! Graph <-> e-graph: loading a [`Graph`] into an e-graph (inputs and constants become `%k`
//! leaves of the side table) and building a [`Graph`] from an extraction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use egg::Id;
use petgraph::graph::NodeIndex;

use crate::graph::{DType, Graph, Op, TensorData, TensorType};

use super::analysis::{TGraph, TableEntry, TensorAnalysis};
use super::extract::Extraction;
use super::language::{Attr, TNode, TOp};
use super::mapping::{enode_parts, graph_op, Slot};
use super::typing::ClassData;

/// A graph loaded into an e-graph.
pub struct Loaded {
    /// The e-graph (analysis holds the side table).
    pub egraph: TGraph,
    /// Graph outputs: (name, e-class).
    pub outputs: Vec<(String, Id)>,
    /// E-class -> name of the first graph node in it (to keep names stable).
    pub names: BTreeMap<Id, String>,
    /// E-class (at load time) -> names of all graph nodes loaded into it, in topological order.
    pub members: BTreeMap<Id, Vec<String>>,
    /// The graph inputs' table keys, in declaration order.
    pub input_keys: Vec<String>,
}

/// Why a graph could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("node `{node}` ({op}): {reason}")]
pub struct LoadError {
    /// The node name.
    pub node: String,
    /// The op name.
    pub op: String,
    /// What is wrong.
    pub reason: String,
}

/// Loads `graph` into a new e-graph, checking every node's declared type against inference.
pub fn load(graph: &Graph) -> Result<Loaded, LoadError> {
    let order = graph.topo_order();
    if order.len() != graph.dag.node_count() {
        let reason = "the graph has a cycle".to_string();
        return Err(LoadError {
            node: "(graph)".into(),
            op: "-".into(),
            reason,
        });
    }
    let mut table = BTreeMap::new();
    for &idx in &order {
        let n = graph.node(idx);
        let data = match &n.op {
            Op::Input => None,
            Op::Constant(d) => Some(d.clone()),
            _ => continue,
        };
        table.insert(
            key(idx),
            TableEntry {
                name: n.name.clone(),
                ty: n.ty.clone(),
                data,
            },
        );
    }
    let mut egraph = TGraph::new(TensorAnalysis::new(table));
    let mut ids: BTreeMap<NodeIndex, Id> = BTreeMap::new();
    let mut names = BTreeMap::new();
    let mut members: BTreeMap<Id, Vec<String>> = BTreeMap::new();
    for &idx in &order {
        let n = graph.node(idx);
        let err = |reason: String| LoadError {
            node: n.name.clone(),
            op: n.op.name(),
            reason,
        };
        let id = match &n.op {
            Op::Input | Op::Constant(_) => egraph.add(TNode::leaf(Attr::Ref(key(idx)))),
            op => {
                let srcs = graph.inputs_of(idx);
                let (top, slots) = enode_parts(op, srcs.len()).map_err(err)?;
                let mut children = Vec::with_capacity(slots.len());
                for s in slots {
                    children.push(match s {
                        Slot::Attr(a) => egraph.add(TNode::leaf(a)),
                        Slot::Input(i) => {
                            let src = srcs
                                .get(i)
                                .ok_or_else(|| err(format!("missing input {i}")))?;
                            ids[src]
                        }
                    });
                }
                egraph.add(TNode::new(top, children))
            }
        };
        match &egraph[id].data {
            ClassData::Tensor(t) if t.ty == n.ty && !t.weak => {}
            ClassData::Tensor(t) => {
                return Err(err(format!(
                    "declared type {:?} {:?}, but the op gives {:?} {:?}",
                    n.ty.shape, n.ty.dtype, t.ty.shape, t.ty.dtype
                )))
            }
            other => return Err(err(other.describe())),
        }
        ids.insert(idx, id);
        names.entry(id).or_insert_with(|| n.name.clone());
        members.entry(id).or_default().push(n.name.clone());
    }
    let outputs = graph
        .outputs
        .iter()
        .map(|(name, idx)| (name.clone(), ids[idx]))
        .collect();
    let input_keys = graph.inputs.iter().map(|&i| key(i)).collect();
    egraph.rebuild();
    Ok(Loaded {
        egraph,
        outputs,
        names,
        members,
        input_keys,
    })
}

fn key(idx: NodeIndex) -> String {
    format!("%{}", idx.index())
}

/// Builds the graph that `ext` chose. Graph inputs keep their order, names and types; outputs
/// keep their names.
pub fn build(egraph: &TGraph, loaded: &Loaded, ext: &Extraction) -> Result<Graph, String> {
    build_named(egraph, loaded, ext).map(|(g, _)| g)
}

/// [`build`], also returning the name of the graph node built for each (canonical) e-class.
pub fn build_named(
    egraph: &TGraph,
    loaded: &Loaded,
    ext: &Extraction,
) -> Result<(Graph, BTreeMap<Id, String>), String> {
    let mut b = Builder {
        egraph,
        ext,
        names: &loaded.names,
        graph: Graph::new(),
        done: BTreeMap::new(),
        consts: BTreeMap::new(),
        used: BTreeSet::new(),
        visiting: BTreeSet::new(),
        generated: BTreeSet::new(),
    };
    for k in &loaded.input_keys {
        let entry = &egraph.analysis.table[k];
        let idx = b.graph.add_input(entry.name.clone(), entry.ty.clone());
        b.used.insert(entry.name.clone());
        if let Some(id) = egraph.lookup(TNode::leaf(Attr::Ref(k.clone()))) {
            b.done.insert(egraph.find(id), idx);
        }
    }
    for (name, id) in &loaded.outputs {
        let idx = b.node(egraph.find(*id))?;
        b.graph.outputs.push((name.clone(), idx));
    }
    name_after_consumers(&mut b.graph, &b.generated, &mut b.used);
    let class_nodes = b
        .done
        .iter()
        .map(|(&id, &idx)| (id, b.graph.node(idx).name.clone()))
        .collect();
    Ok((b.graph, class_nodes))
}

struct Builder<'a> {
    egraph: &'a TGraph,
    ext: &'a Extraction,
    names: &'a BTreeMap<Id, String>,
    graph: Graph,
    done: BTreeMap<Id, NodeIndex>,
    consts: BTreeMap<(u32, DType), NodeIndex>,
    used: BTreeSet<String>,
    visiting: BTreeSet<Id>,
    /// Op nodes whose e-class had no node of the input graph to take a name from.
    generated: BTreeSet<NodeIndex>,
}

/// Renames each op node in `generated` (named `matmul_7` for want of an input node behind it)
/// after the first of its consumers that has a name of its own, as a path below it: a folded
/// product feeding `/attn/c_attn/Gemm_output_0` becomes `/attn/c_attn/Gemm_output_0/matmul`.
/// Consumers go first (reverse topological order), so a chain of new nodes nests; a name
/// already taken leaves the node as it is.
fn name_after_consumers(
    graph: &mut Graph,
    generated: &BTreeSet<NodeIndex>,
    used: &mut BTreeSet<String>,
) {
    let mut renamed = BTreeSet::new();
    for n in graph.topo_order().into_iter().rev() {
        if !generated.contains(&n) {
            continue;
        }
        let Some(user) = graph
            .users_of(n)
            .into_iter()
            .find(|u| !generated.contains(u) || renamed.contains(u))
        else {
            continue;
        };
        let name = format!(
            "{}/{}",
            graph.node(user).name,
            graph.node(n).op.name().to_lowercase()
        );
        if used.insert(name.clone()) {
            graph.dag[n].name = name;
            renamed.insert(n);
        }
    }
}

impl Builder<'_> {
    fn fresh_name(&mut self, id: Option<Id>, base: &str) -> String {
        if let Some(n) = id.and_then(|id| self.names.get(&id)) {
            if self.used.insert(n.clone()) {
                return n.clone();
            }
        }
        let mut k = self.used.len();
        loop {
            let n = format!("{base}_{k}");
            if !self.names.values().any(|v| *v == n) && self.used.insert(n.clone()) {
                return n;
            }
            k += 1;
        }
    }

    fn scalar(&mut self, v: f32, dtype: DType) -> NodeIndex {
        if let Some(&i) = self.consts.get(&(v.to_bits(), dtype)) {
            return i;
        }
        let name = self.fresh_name(None, "scalar");
        let data = TensorData::F32 {
            shape: vec![],
            values: vec![v],
        };
        let idx = self.graph.add(
            name,
            Op::Constant(Arc::new(data)),
            TensorType::new(vec![], dtype),
            &[],
        );
        self.consts.insert((v.to_bits(), dtype), idx);
        idx
    }

    fn node(&mut self, id: Id) -> Result<NodeIndex, String> {
        if let Some(&i) = self.done.get(&id) {
            return Ok(i);
        }
        if !self.visiting.insert(id) {
            return Err(format!("the extraction has a cycle through e-class {id}"));
        }
        let enode = self
            .ext
            .choice
            .get(&id)
            .ok_or_else(|| format!("e-class {id} has no extracted node"))?
            .clone();
        let data = &self.egraph[id].data;
        let ty = match data {
            ClassData::Tensor(t) => t.ty.clone(),
            other => {
                return Err(format!(
                    "e-class {id} is not a tensor but {}",
                    other.describe()
                ))
            }
        };
        let idx = match &enode.op {
            TOp::Leaf(Attr::Ref(k)) => {
                let entry = self
                    .egraph
                    .analysis
                    .table
                    .get(k)
                    .ok_or_else(|| format!("`{k}` is not in the table"))?;
                let data = entry.data.clone().ok_or_else(|| {
                    format!("graph input `{}` is not declared as an input", entry.name)
                })?;
                let name = self.fresh_name(Some(id), &entry.name);
                self.graph
                    .add(name, Op::Constant(data), entry.ty.clone(), &[])
            }
            TOp::Leaf(other) => return Err(format!("leaf `{other}` cannot be a graph node")),
            op => {
                let kids: Vec<&ClassData> = enode
                    .children
                    .iter()
                    .map(|&c| &self.egraph[c].data)
                    .collect();
                let g = graph_op(op, &kids)?;
                let mut inputs = Vec::with_capacity(g.inputs.len());
                for &pos in &g.inputs {
                    let child = enode.children[pos];
                    let input = match self.egraph[child].data.tensor() {
                        Some(t) if t.weak => {
                            let v = t.splat.ok_or_else(|| {
                                format!(
                                    "e-class {child} is a scalar expression with no known value"
                                )
                            })?;
                            let dtype = if ty.dtype.is_float() {
                                ty.dtype
                            } else {
                                DType::F32
                            };
                            self.scalar(v, dtype)
                        }
                        _ => self.node(child)?,
                    };
                    inputs.push(input);
                }
                let name = self.fresh_name(Some(id), &g.op.name().to_lowercase());
                let generated = self.names.get(&id) != Some(&name);
                let idx = self.graph.add(name, g.op, ty, &inputs);
                if generated {
                    self.generated.insert(idx);
                }
                idx
            }
        };
        self.visiting.remove(&id);
        self.done.insert(id, idx);
        Ok(idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::infer::infer;
    use egg::RecExpr;

    /// Builds the graph of a concrete expression over bf16 input `%x` of shape [2, 4].
    fn graph_of(expr: &str) -> Graph {
        let table = BTreeMap::from([(
            "%x".to_string(),
            TableEntry {
                name: "x".into(),
                ty: TensorType::new(vec![2, 4], DType::BF16),
                data: None,
            },
        )]);
        let mut egraph = TGraph::new(TensorAnalysis::new(table));
        let root = egraph.add_expr(&expr.parse::<RecExpr<TNode>>().unwrap());
        egraph.rebuild();
        let choice = egraph
            .classes()
            .map(|c| (c.id, c.nodes[0].clone()))
            .collect();
        let loaded = Loaded {
            egraph: TGraph::default(),
            outputs: vec![("y".into(), root)],
            names: BTreeMap::new(),
            members: BTreeMap::new(),
            input_keys: vec!["%x".into()],
        };
        build(&egraph, &loaded, &Extraction { choice, cost: 0.0 }).unwrap()
    }

    #[test]
    fn number_operands_become_constants_of_the_tensor_dtype() {
        let g = graph_of("(add (mul %x 0.5) (mul %x 0.5))");
        let consts: Vec<&crate::graph::Node> = g
            .dag
            .node_weights()
            .filter(|n| matches!(n.op, Op::Constant(_)))
            .collect();
        assert_eq!(consts.len(), 1, "one shared constant for both uses");
        assert_eq!(consts[0].ty, TensorType::new(vec![], DType::BF16));
        for idx in g.dag.node_indices() {
            let n = g.node(idx);
            // Constants carry f32 data under their declared dtype, as the importers make them.
            if !matches!(n.op, Op::Input | Op::Constant(_)) {
                let tys: Vec<TensorType> = g
                    .inputs_of(idx)
                    .iter()
                    .map(|&i| g.node(i).ty.clone())
                    .collect();
                assert_eq!(
                    infer(&n.op, &tys.iter().collect::<Vec<_>>()).unwrap(),
                    n.ty,
                    "{}",
                    n.name
                );
            }
        }
    }

    #[test]
    fn attributes_come_back_as_op_fields() {
        let g =
            graph_of("(rmsnorm (transpose [1,0] (transpose [1,0] %x)) (rmax [0] false %x) 0.001)");
        let ops: Vec<&Op> = g.dag.node_weights().map(|n| &n.op).collect();
        assert!(ops.contains(&&Op::RmsNorm { eps: 0.001 }), "{ops:?}");
        assert!(ops.contains(&&Op::Reduce {
            op: crate::graph::ReduceOp::Max,
            axes: vec![0],
            keep_dims: false
        }));
        assert!(ops.contains(&&Op::Transpose { perm: vec![1, 0] }));
    }
}
