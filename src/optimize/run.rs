//! Running the rule stages over one shared e-graph, in order, each with egg's
//! [`BackoffScheduler`] and hard limits.
//!
//! Limits that hold exactly:
//! - **nodes**: before every single rule application, [`TensorAnalysis::admit`] refuses it if the
//!   e-graph could then exceed its cap (an application adds at most its right-hand side's
//!   e-nodes plus one leaf per binding). Stage `i` of `n` may grow the e-graph to
//!   `start + (limit - start) * (i + 1) / n`, so a later stage (decompose, fuse) always has room
//!   even if an earlier one runs into its cap.
//! - **iterations**: egg's iteration limit, per stage.
//! - **time**: one deadline for all stages; no rule is applied after it (checked before every
//!   application, and by egg between rules and iterations).
//!
//! Every application is sound, so the e-graph at any stopping point is a correct starting
//! point for extraction.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use egg::{BackoffScheduler, Runner, StopReason};
use serde::Serialize;

use super::analysis::{LimitHit, TGraph, TensorAnalysis};
use super::rules::{to_rewrite, RuleError, Stage};

/// What one stage did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StageReport {
    /// The stage (rule file) name.
    pub name: String,
    /// Iterations run.
    pub iterations: usize,
    /// E-nodes in the e-graph when the stage stopped.
    pub egraph_nodes: usize,
    /// Why it stopped: `saturated`, `node limit`, `iteration limit` or `time limit`.
    pub stop_reason: String,
}

/// The stages' combined outcome.
pub struct StagesRun {
    /// The saturated (or limited) e-graph.
    pub egraph: TGraph,
    /// One report per stage.
    pub stages: Vec<StageReport>,
    /// Rule name -> applications that changed the e-graph.
    pub applied: BTreeMap<String, usize>,
    /// Whether any stage stopped at a limit.
    pub hit_limit: bool,
    /// Every rule application that changed the e-graph, in order.
    pub applications: Vec<Application>,
}

/// One rule application that changed the e-graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Application {
    /// The rule's name.
    pub rule: String,
    /// Index of its stage in the run order.
    pub stage: usize,
    /// The e-class its match was rooted at (when it was applied; canonicalize with `find`).
    pub class: egg::Id,
}

/// The limits of a run.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Maximum e-nodes in the e-graph.
    pub nodes: usize,
    /// Maximum iterations per stage.
    pub iterations: usize,
    /// Wall time for all stages together.
    pub time: Duration,
}

fn limit_name(hit: LimitHit) -> &'static str {
    match hit {
        LimitHit::Nodes => "node limit",
        LimitHit::Time => "time limit",
    }
}

/// Runs `stages` in order over `egraph`.
pub fn run_stages(
    mut egraph: TGraph,
    stages: &[Stage],
    limits: Limits,
) -> Result<StagesRun, RuleError> {
    let start = Instant::now();
    let deadline = start + limits.time;
    let base = egraph.total_size();
    let room = limits.nodes.saturating_sub(base);
    let mut reports = vec![];
    let mut applied: BTreeMap<String, usize> = BTreeMap::new();
    let mut hit_limit = false;
    let mut applications = vec![];
    for (i, stage) in stages.iter().enumerate() {
        let rewrites = stage
            .rules
            .iter()
            .map(to_rewrite)
            .collect::<Result<Vec<_>, _>>()?;
        let cap = base + room * (i + 1) / stages.len();
        egraph.analysis.node_cap = cap;
        egraph.analysis.deadline = Some(deadline);
        egraph.analysis.limit_hit = None;
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() || egraph.total_size() >= cap {
            let reason = if remaining.is_zero() {
                "time limit"
            } else {
                "node limit"
            };
            reports.push(StageReport {
                name: stage.name.clone(),
                iterations: 0,
                egraph_nodes: egraph.total_size(),
                stop_reason: reason.into(),
            });
            hit_limit = true;
            continue;
        }
        let runner = Runner::<_, TensorAnalysis, ()>::new(TensorAnalysis::default())
            .with_egraph(egraph)
            .with_scheduler(BackoffScheduler::default())
            .with_node_limit(cap)
            .with_iter_limit(limits.iterations)
            .with_time_limit(remaining)
            .with_hook(|r| match r.egraph.analysis.limit_hit {
                Some(hit) => Err(limit_name(hit).to_string()),
                None => Ok(()),
            })
            .run(&rewrites);
        for it in &runner.iterations {
            for (name, n) in &it.applied {
                *applied.entry(name.to_string()).or_default() += n;
            }
        }
        let reason = match (runner.egraph.analysis.limit_hit, &runner.stop_reason) {
            (Some(hit), _) => limit_name(hit).to_string(),
            (None, Some(StopReason::Saturated)) => "saturated".to_string(),
            (None, Some(StopReason::IterationLimit(_))) => "iteration limit".to_string(),
            (None, Some(StopReason::NodeLimit(_))) => "node limit".to_string(),
            (None, Some(StopReason::TimeLimit(_))) => "time limit".to_string(),
            (None, Some(StopReason::Other(s))) => s.clone(),
            (None, None) => "not run".to_string(),
        };
        hit_limit |= reason != "saturated";
        reports.push(StageReport {
            name: stage.name.clone(),
            iterations: runner.iterations.len(),
            egraph_nodes: runner.egraph.total_size(),
            stop_reason: reason,
        });
        egraph = runner.egraph;
        let fired = std::mem::take(&mut egraph.analysis.fired);
        applications.extend(fired.into_iter().map(|(rule, class)| Application {
            rule,
            stage: i,
            class,
        }));
    }
    egraph.analysis.deadline = None;
    Ok(StagesRun {
        egraph,
        stages: reports,
        applied,
        hit_limit,
        applications,
    })
}
