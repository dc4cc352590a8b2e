//! The e-graph analysis: a [`ClassData`] per e-class (type and constant facts), the side table of
//! graph inputs and constants that `%key` leaves refer to, and the run's growth budget.
//!
//! Merging two e-classes checks that their types agree. Rules are type-checked before they are
//! applied (see [`super::rules`]), so a disagreement means a bug; it is recorded in
//! [`TensorAnalysis::conflicts`] and the optimizer then returns its input unchanged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use egg::{Analysis, DidMerge, EGraph, Id};

use crate::graph::{TensorData, TensorType};

use super::language::{Attr, TNode, TOp};
use super::typing::{infer_enode, ClassData, TensorFacts};

/// The e-graph type used throughout the optimizer.
pub type TGraph = EGraph<TNode, TensorAnalysis>;

/// A graph input or constant that a `%key` leaf refers to.
#[derive(Clone, Debug)]
pub struct TableEntry {
    /// The graph node's name.
    pub name: String,
    /// Its declared type.
    pub ty: TensorType,
    /// The constant's data; `None` for a graph input.
    pub data: Option<Arc<TensorData>>,
}

/// Why a rule application was refused for the run's limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitHit {
    /// Applying would have grown the e-graph past its node cap.
    Nodes,
    /// The time limit passed.
    Time,
}

/// The analysis state: side table, budget and diagnostics.
#[derive(Debug, Default)]
pub struct TensorAnalysis {
    /// `%key` -> input or constant.
    pub table: BTreeMap<String, TableEntry>,
    /// The e-graph may not hold more e-nodes than this (checked before every rule application).
    pub node_cap: usize,
    /// No rule is applied after this instant.
    pub deadline: Option<Instant>,
    /// Set when a rule application was refused for a limit.
    pub limit_hit: Option<LimitHit>,
    /// Merges of e-classes whose types disagreed (should stay empty).
    pub conflicts: Vec<String>,
    /// Whether rules guarded by `approx()` may fire (rewrites that are close, not exact).
    pub allow_approx: bool,
    /// Rule applications that changed the e-graph, in order: (rule name, e-class the match was
    /// rooted at). [`super::run`] drains it after every stage.
    pub fired: Vec<(String, Id)>,
}

impl TensorAnalysis {
    /// An analysis over `table` with no node cap.
    pub fn new(table: BTreeMap<String, TableEntry>) -> Self {
        TensorAnalysis {
            table,
            node_cap: usize::MAX,
            ..Default::default()
        }
    }

    /// Whether `extra` more e-nodes fit in `egraph` within the cap and time remains; records
    /// the limit that stops it otherwise.
    pub fn admit(egraph: &mut TGraph, extra: usize) -> bool {
        if egraph
            .analysis
            .deadline
            .is_some_and(|d| Instant::now() >= d)
        {
            egraph.analysis.limit_hit = Some(LimitHit::Time);
            return false;
        }
        if egraph.total_size().saturating_add(extra) > egraph.analysis.node_cap {
            egraph.analysis.limit_hit = Some(LimitHit::Nodes);
            return false;
        }
        true
    }

    fn leaf_data(&self, r: &str) -> ClassData {
        match self.table.get(r) {
            Some(e) => ClassData::Tensor(TensorFacts {
                ty: e.ty.clone(),
                weak: false,
                splat: e.data.as_deref().and_then(TensorData::splat),
                constant: e.data.is_some(),
            }),
            None => ClassData::Invalid(format!("`{r}` is not in the table")),
        }
    }
}

impl Analysis<TNode> for TensorAnalysis {
    type Data = ClassData;

    fn make(egraph: &mut TGraph, enode: &TNode, _id: Id) -> ClassData {
        if let TOp::Leaf(Attr::Ref(r)) = &enode.op {
            return egraph.analysis.leaf_data(r);
        }
        let kids: Vec<&ClassData> = enode.children.iter().map(|&c| &egraph[c].data).collect();
        infer_enode(&enode.op, &kids)
    }

    fn merge(&mut self, to: &mut ClassData, from: ClassData) -> DidMerge {
        if !to.same_type(&from) {
            self.conflicts
                .push(format!("merged {} with {}", to.describe(), from.describe()));
            return DidMerge(false, true);
        }
        match (to, from) {
            (ClassData::Tensor(a), ClassData::Tensor(b)) => {
                let (splat_a, splat_b) = (a.splat.is_some(), b.splat.is_some());
                if !splat_a {
                    a.splat = b.splat;
                }
                let (const_a, const_b) = (a.constant, b.constant);
                a.constant |= const_b;
                DidMerge(
                    (splat_b && !splat_a) || (const_b && !const_a),
                    (splat_a && !splat_b) || (const_a && !const_b),
                )
            }
            _ => DidMerge(false, false),
        }
    }
}
