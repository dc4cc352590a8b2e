//! Where rules fired: maps the rule applications recorded during the run (rule, stage, root
//! e-class) onto the nodes of the extracted graph, naming the input-graph nodes that were loaded
//! into the same e-class.

use std::collections::BTreeMap;

use egg::Id;
use serde::Serialize;

use crate::graph::Graph;

use super::analysis::TGraph;
use super::run::Application;

/// Applications of one rule, in one stage, at the e-class of one node of the optimized graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Rewrite {
    /// The rule's name.
    pub rule: String,
    /// The stage (rule file) it belongs to.
    pub stage: String,
    /// The optimized-graph node computed for the e-class the rule's match was rooted at.
    pub node: String,
    /// The input-graph nodes that were loaded into that e-class (empty if rules created it).
    pub from: Vec<String>,
    /// How many applications of the rule changed that e-class in that stage.
    pub applications: usize,
}

/// Where the rules fired, as far as the extraction kept it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Located {
    /// Rewrites whose e-class has a node in the output graph, ordered by stage, then the node's
    /// topological position, then rule name.
    pub rewrites: Vec<Rewrite>,
    /// Applications whose e-class has no node in the output graph (extraction did not need it,
    /// or constant folding replaced it).
    pub not_extracted: usize,
}

/// Locates `applications` in `out`. `members` maps load-time e-classes to the input nodes
/// loaded into them; `class_nodes` maps canonical e-classes to the node built for them (before
/// constant folding and merging, which may drop nodes: those count as not extracted).
pub fn locate(
    egraph: &TGraph,
    applications: &[Application],
    stages: &[String],
    members: &BTreeMap<Id, Vec<String>>,
    class_nodes: &BTreeMap<Id, String>,
    out: &Graph,
) -> Located {
    let mut from: BTreeMap<Id, Vec<String>> = BTreeMap::new();
    // Load-time ids ascend in the input graph's topological order.
    for (&id, names) in members {
        from.entry(egraph.find(id))
            .or_default()
            .extend(names.iter().cloned());
    }
    let position: BTreeMap<&str, usize> = out
        .topo_order()
        .into_iter()
        .enumerate()
        .map(|(pos, idx)| (out.node(idx).name.as_str(), pos))
        .collect();
    let mut groups: BTreeMap<(usize, usize, String, String), (Id, usize)> = BTreeMap::new();
    let mut not_extracted = 0;
    for a in applications {
        let class = egraph.find(a.class);
        let Some((node, &pos)) = class_nodes
            .get(&class)
            .and_then(|n| position.get_key_value(n.as_str()))
        else {
            not_extracted += 1;
            continue;
        };
        let key = (a.stage, pos, node.to_string(), a.rule.clone());
        groups.entry(key).or_insert((class, 0)).1 += 1;
    }
    let rewrites = groups
        .into_iter()
        .map(|((stage, _, node, rule), (class, applications))| Rewrite {
            rule,
            stage: stages.get(stage).cloned().unwrap_or_default(),
            node,
            from: from.get(&class).cloned().unwrap_or_default(),
            applications,
        })
        .collect();
    Located {
        rewrites,
        not_extracted,
    }
}
