//! Graphviz DOT renderings of a graph for `explain --dot`: every op with its shape, and for the
//! optimized graph one cluster per planned kernel.

use std::collections::BTreeMap;
use std::fmt::Write;

use petgraph::visit::EdgeRef;

use crate::graph::{Graph, Op};
use crate::plan::KernelPlan;

/// A DOT string literal for `s` (backslashes, quotes and newlines escaped).
fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

/// One node's label: its name, op and shape.
fn label(graph: &Graph, i: petgraph::graph::NodeIndex) -> String {
    let n = graph.node(i);
    format!("{}\n{} {:?}", n.name, n.op.name(), n.ty.shape)
}

/// The graph as DOT; with `plan`, the nodes of each kernel are drawn inside one cluster.
pub fn graph_dot(name: &str, graph: &Graph, plan: Option<&KernelPlan>) -> String {
    let mut kernel_of = BTreeMap::new();
    if let Some(plan) = plan {
        for (k, kernel) in plan.kernels.iter().enumerate() {
            for node in &kernel.nodes {
                kernel_of.insert(node.as_str(), k);
            }
        }
    }
    let mut s = String::new();
    let _ = writeln!(s, "digraph {} {{", quote(name));
    s += "  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\", fontsize=10];\n";
    let mut clusters: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for i in graph.dag.node_indices() {
        let n = graph.node(i);
        let style = match n.op {
            Op::Input => ", shape=oval, style=filled, fillcolor=\"#dbe9f7\"",
            Op::Constant(_) => ", shape=note, style=filled, fillcolor=\"#f2f2f2\"",
            _ => "",
        };
        let line = format!("n{} [label={}{style}];", i.index(), quote(&label(graph, i)));
        match kernel_of.get(n.name.as_str()) {
            Some(&k) => clusters.entry(k).or_default().push(line),
            None => {
                let _ = writeln!(s, "  {line}");
            }
        }
    }
    if let Some(plan) = plan {
        for (k, lines) in &clusters {
            let kernel = &plan.kernels[*k];
            let _ = writeln!(s, "  subgraph cluster_{k} {{");
            let _ = writeln!(
                s,
                "    label={}; style=filled; fillcolor=\"#fff4e0\"; color=\"#d8743b\";",
                quote(&format!("kernel {k}: {}", kernel.name))
            );
            for line in lines {
                let _ = writeln!(s, "    {line}");
            }
            s += "  }\n";
        }
    }
    for (j, (name, i)) in graph.outputs.iter().enumerate() {
        let _ = writeln!(
            s,
            "  out_{j} [label={}, shape=oval, style=filled, fillcolor=\"#dff2e1\"];\n  n{} -> out_{j};",
            quote(name),
            i.index()
        );
    }
    let mut edges: Vec<(usize, usize, usize)> = graph
        .dag
        .edge_references()
        .map(|e| (e.source().index(), e.target().index(), *e.weight()))
        .collect();
    edges.sort_unstable();
    for (a, b, _) in edges {
        let _ = writeln!(s, "  n{a} -> n{b};");
    }
    s += "}\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(quote("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
