//! The e-graph optimizer: rewrites a [`Graph`] with the rules in `rules/*.rules` and extracts the
//! cheapest equivalent graph under the device cost model.
//!
//! Pipeline: [`convert::load`] the graph into an e-graph (shape/dtype [`analysis`]), run the
//! stages `simplify -> recognize -> decompose -> fuse` ([`run`]) over that one e-graph, extract
//! by [`cost`] ([`extract`]), [`convert::build`] the result and [`trace`] where each rule
//! application landed in it (the e-class its match was rooted at). The stage order: simplification
//! first puts exporter variants into canonical forms (`x / sqrt(y)` also as `x * rsqrt(y)`,
//! `pow(x, 2)` also as `x * x`), so recognition needs one pattern per op rather than one per
//! exporter; decomposition then adds primitive forms of every composite, recognized or
//! imported, and the fuse stage adds the cheaper arrangements of those primitives (a division by
//! a row reduction becomes a multiply by its reciprocal). Extraction chooses among all of them.
//! The extracted graph is constant-folded (so rules such as `conv-bn-fold` can write new weights
//! as graph ops over constants), rotary embeddings' `rotate_half` becomes a matmul by a signed
//! permutation ([`rotate`]).
//!
//! The result is never worse than the input by the cost model and always correct: every rule is
//! an equivalence checked for types before it fires; when a limit stops the search early, the
//! e-graph built so far is extracted; if anything is inconsistent, the input is returned and the
//! report says why.

pub mod analysis;
pub mod conditions;
pub mod conv;
pub mod convert;
pub mod cost;
pub mod extract;
pub mod language;
pub mod mapping;
pub mod rotary;
pub mod rotate;
pub mod rules;
pub mod run;
pub mod shuffle;
pub mod trace;
pub mod transposes;
pub mod typing;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

use crate::graph::Graph;

pub use cost::{Composite, CostModel};
pub use run::StageReport;
pub use trace::Rewrite;

/// Options of [`optimize`].
#[derive(Clone, Debug)]
pub struct OptimizeOptions {
    /// Maximum e-nodes in the e-graph (holds exactly).
    pub node_limit: usize,
    /// Maximum iterations per stage.
    pub iter_limit: usize,
    /// Wall time for all stages together.
    pub time_limit: Duration,
    /// Read `<stage>.rules` from this directory instead of the copies built into the binary.
    pub rules_dir: Option<PathBuf>,
    /// Allow rules guarded by `approx()` (e.g. exact GELU as its tanh approximation, which
    /// differs by up to ~1e-3).
    pub approximate: bool,
    /// The device cost model.
    pub cost: CostModel,
    /// Passes of the DAG extractor before it settles for its current choice.
    pub extract_passes: usize,
}

impl Default for OptimizeOptions {
    fn default() -> Self {
        OptimizeOptions {
            node_limit: 50_000,
            iter_limit: 30,
            time_limit: Duration::from_secs(10),
            rules_dir: None,
            approximate: false,
            cost: CostModel::default(),
            extract_passes: 64,
        }
    }
}

/// What the optimizer did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct OptimizeReport {
    /// Rule name -> applications that changed the e-graph (over all stages).
    pub rules_fired: BTreeMap<String, usize>,
    /// Where those applications landed in the output graph: per stage, node and rule
    /// ([`trace`]); only e-classes the extracted graph computes.
    pub rewrites: Vec<Rewrite>,
    /// Applications whose e-class the output graph does not compute (extraction chose other
    /// forms, or the input graph was kept).
    pub rewrites_not_extracted: usize,
    /// One entry per stage, in run order.
    pub stages: Vec<StageReport>,
    /// Whether any stage stopped at a node, iteration or time limit.
    pub hit_limit: bool,
    /// E-nodes in the e-graph of the input graph, before any rule ran.
    pub initial_nodes: usize,
    /// Cost-model estimate of the input graph, in cycles.
    pub cost_before: f64,
    /// Cost-model estimate of the output graph, in cycles.
    pub cost_after: f64,
    /// Why the e-graph's result was not used, if it was not: the input graph then went through
    /// the graph passes alone.
    pub kept_input: Option<String>,
}

/// An optimized graph and its report.
#[derive(Clone, Debug)]
pub struct Optimized {
    /// The graph: same inputs and outputs (names, types) as the input, numerically equivalent.
    pub graph: Graph,
    /// What happened.
    pub report: OptimizeReport,
}

/// Why [`optimize`] failed.
#[derive(Debug, Error)]
pub enum OptimizeError {
    /// A rule file is missing or malformed.
    #[error(transparent)]
    Rules(#[from] rules::RuleError),
    /// The input graph is malformed.
    #[error("cannot optimize the graph: {0}")]
    Graph(#[from] convert::LoadError),
}

/// The passes over the extracted graph that build new constants or layouts, which the e-graph
/// language does not: rotate_half as a matmul, rotary embeddings before the head split (and
/// the transposes that leaves back to back composed), channel shuffles folded into the
/// convolutions before them, and convolutions as im2col + matmul. (Shared-input matmuls need
/// no pass: the planner computes products of one operand in one kernel that reads it once.)
fn graph_passes(g: Graph, opts: &OptimizeOptions) -> Result<Graph, String> {
    let (g, _) =
        rotate::rotate_half_as_matmul(&g).map_err(|e| format!("rotate_half as a matmul: {e}"))?;
    let (g, _) = rotary::rotary_before_head_split(&g)
        .map_err(|e| format!("rotary embeddings before the head split: {e}"))?;
    let (g, _) = transposes::compose_transposes(&g)
        .map_err(|e| format!("consecutive transposes as one: {e}"))?;
    let (g, _) = shuffle::fold_shuffles(&g)
        .map_err(|e| format!("channel shuffles into convolutions: {e}"))?;
    conv::convs_as_matmuls(&g, conv::ConvChoice::ByCost(&opts.cost))
        .map(|(g, _)| g)
        .map_err(|e| format!("convolutions as im2col + matmul: {e}"))
}

/// Optimizes `graph`: same inputs and outputs, fewer and cheaper kernels.
pub fn optimize(graph: &Graph, opts: &OptimizeOptions) -> Result<Optimized, OptimizeError> {
    let stages = rules::load_stages(opts.rules_dir.as_deref())?;
    let mut loaded = convert::load(graph)?;
    let roots: Vec<egg::Id> = loaded.outputs.iter().map(|(_, id)| *id).collect();
    let cost_before = extract::extract_tree(&loaded.egraph, &roots, &opts.cost);
    let cost_before = cost_before.cost;
    let mut egraph = std::mem::take(&mut loaded.egraph);
    let initial_nodes = egraph.total_size();
    egraph.analysis.allow_approx = opts.approximate;
    let limits = run::Limits {
        nodes: opts.node_limit,
        iterations: opts.iter_limit,
        time: opts.time_limit,
    };
    let ran = run::run_stages(egraph, &stages, limits)?;
    let mut report = OptimizeReport {
        rules_fired: ran.applied,
        rewrites: vec![],
        rewrites_not_extracted: ran.applications.len(),
        stages: ran.stages,
        hit_limit: ran.hit_limit,
        initial_nodes,
        cost_before,
        cost_after: cost_before,
        kept_input: None,
    };
    // The input graph, when the e-graph's result is not used, still goes through the graph
    // passes (they need no e-graph); if those fail too, it is returned as it is.
    let keep = |mut report: OptimizeReport, why: String| {
        report.kept_input = Some(why);
        let graph = graph_passes(graph.clone(), opts).unwrap_or_else(|_| graph.clone());
        Ok(Optimized { graph, report })
    };
    let egraph = ran.egraph;
    if let Some(c) = egraph.analysis.conflicts.first() {
        return keep(
            report,
            format!("internal type conflict in the e-graph ({c})"),
        );
    }
    let roots: Vec<egg::Id> = loaded
        .outputs
        .iter()
        .map(|(_, id)| egraph.find(*id))
        .collect();
    let mut ext = extract::extract_dag(&egraph, &roots, &opts.cost, opts.extract_passes);
    if !ext.acyclic(&roots) {
        ext = extract::extract_tree(&egraph, &roots, &opts.cost);
    }
    if ext.cost > cost_before {
        return keep(
            report,
            format!(
                "no cheaper form found ({:.0} vs {cost_before:.0} cycles)",
                ext.cost
            ),
        );
    }
    let mut class_nodes = BTreeMap::new();
    match convert::build_named(&egraph, &loaded, &ext)
        .map(|(g, names)| {
            class_nodes = names;
            g
        })
        .and_then(|g| {
            crate::graph::fold::fold_constants(&g).map_err(|e| format!("constant folding: {e}"))
        })
        .and_then(|g| graph_passes(g, opts))
    {
        Ok(out) => {
            report.cost_after = ext.cost;
            let stage_names: Vec<String> = report.stages.iter().map(|s| s.name.clone()).collect();
            let located = trace::locate(
                &egraph,
                &ran.applications,
                &stage_names,
                &loaded.members,
                &class_nodes,
                &out,
            );
            report.rewrites = located.rewrites;
            report.rewrites_not_extracted = located.not_extracted;
            Ok(Optimized { graph: out, report })
        }
        Err(e) => keep(report, format!("could not rebuild the graph: {e}")),
    }
}
