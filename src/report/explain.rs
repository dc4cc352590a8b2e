//! `explain`: what the optimizer and the planner decided: the rules that fired per stage, which
//! ops ended up in which kernel, and for every producer/consumer pair that did not fuse, why
//! (TTNN fallback op, L1 or circular-buffer budget, several consumers, a search limit, ...).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;
use ttfuse_runtime::program::Step;

use crate::graph::{Graph, Op};
use crate::lower::Compiled;
use crate::optimize::{OptimizeReport, Optimized};
use crate::plan::explain::reason_text;
use crate::plan::{BreakReason, FreeOp};

/// Why a producer and consumer are in different kernels, grouped as the user thinks of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakCategory {
    /// One side is a TTNN fallback op (no TT-Lang template), which runs between kernels.
    Fallback,
    /// The L1 or circular-buffer budget of a core.
    Budget,
    /// The producer feeds several ops, or is a graph output.
    SeveralConsumers,
    /// The op kinds or iteration spaces do not share a kernel template.
    Template,
    /// Fusing would create a cycle, or the consumer joined another producer's kernel.
    Structure,
    /// Fusion is off.
    FusionOff,
    /// The planner's estimate finds the fused kernel slower.
    Cost,
}

impl BreakCategory {
    fn of(r: &BreakReason) -> BreakCategory {
        match r {
            BreakReason::Budget { .. } => BreakCategory::Budget,
            BreakReason::SeveralConsumers { .. } | BreakReason::GraphOutput => {
                BreakCategory::SeveralConsumers
            }
            BreakReason::OpKind { .. } | BreakReason::Shape { .. } => BreakCategory::Template,
            BreakReason::Cycle { .. } | BreakReason::JoinedOtherProducer { .. } => {
                BreakCategory::Structure
            }
            BreakReason::FusionOff => BreakCategory::FusionOff,
            BreakReason::Slower { .. } => BreakCategory::Cost,
        }
    }

    fn name(self) -> &'static str {
        match self {
            BreakCategory::Fallback => "fallback op",
            BreakCategory::Budget => "L1/CB budget",
            BreakCategory::SeveralConsumers => "several consumers",
            BreakCategory::Template => "no shared template",
            BreakCategory::Structure => "graph structure",
            BreakCategory::FusionOff => "fusion off",
            BreakCategory::Cost => "slower fused",
        }
    }
}

/// One kernel of the fused plan.
#[derive(Clone, Debug, Serialize)]
pub struct KernelEntry {
    /// The kernel's name.
    pub name: String,
    /// Its template.
    pub kind: String,
    /// `(graph node, op)` pairs it computes, in order.
    pub ops: Vec<(String, String)>,
    /// The partition summary (blocks, cores, grid).
    pub partition: String,
    /// L1 bytes its circular buffers use per core.
    pub l1_bytes: u64,
    /// L1 bytes available per core.
    pub l1_limit: u64,
    /// Circular buffers per core.
    pub cbs: usize,
}

/// A producer/consumer pair split across kernels.
#[derive(Clone, Debug, Serialize)]
pub struct NotFused {
    /// The producing node.
    pub producer: String,
    /// The consuming node.
    pub consumer: String,
    /// The kind of reason.
    pub category: BreakCategory,
    /// The planner's reason in words.
    pub reason: String,
}

/// A step that runs as a TTNN op instead of a TT-Lang kernel.
#[derive(Clone, Debug, Serialize)]
pub struct Fallback {
    /// The TTNN op.
    pub op: String,
    /// Its input tensors.
    pub inputs: Vec<String>,
    /// Its output tensors.
    pub outputs: Vec<String>,
}

/// Everything `explain` reports.
#[derive(Clone, Debug, Serialize)]
pub struct Explanation {
    /// The model's name.
    pub model: String,
    /// The target.
    pub target: String,
    /// Op histogram of the imported graph (inputs and constants excluded).
    pub ops_before: BTreeMap<String, usize>,
    /// Op histogram of the optimized graph.
    pub ops_after: BTreeMap<String, usize>,
    /// Op histogram of the graph the kernels compute: the optimized graph with its attention
    /// and MLP composites expanded into their chains (`graph::composite`).
    pub ops_planned: BTreeMap<String, usize>,
    /// What the e-graph optimizer did (rules fired per rule and where, stages, limits).
    pub optimizer: OptimizeReport,
    /// The fused kernels in launch order.
    pub kernels: Vec<KernelEntry>,
    /// Ops that need no kernel (free reshapes and the like).
    pub free: Vec<FreeOp>,
    /// Every producer/consumer pair that did not fuse.
    pub not_fused: Vec<NotFused>,
    /// Steps that run as TTNN fallback ops.
    pub fallbacks: Vec<Fallback>,
}

/// The op histogram of `graph`, inputs and constants excluded.
pub fn op_histogram(graph: &Graph) -> BTreeMap<String, usize> {
    let mut h = BTreeMap::new();
    for i in graph.dag.node_indices() {
        let op = &graph.node(i).op;
        if !matches!(op, Op::Input | Op::Constant(_)) {
            *h.entry(op.name()).or_default() += 1;
        }
    }
    h
}

impl Explanation {
    /// The explanation of compiling `before` (optimized into `optimized`) to `fused`.
    pub fn new(
        model: &str,
        target: &str,
        before: &Graph,
        optimized: &Optimized,
        fused: &Compiled,
    ) -> Explanation {
        let plan = &fused.plan;
        let kernels = plan
            .kernels
            .iter()
            .map(|k| KernelEntry {
                name: k.name.clone(),
                kind: format!("{:?}", k.kind),
                ops: k.nodes.iter().cloned().zip(k.ops.iter().cloned()).collect(),
                partition: k.partition_summary.clone(),
                l1_bytes: k.l1_bytes,
                l1_limit: k.l1_limit,
                cbs: k.cbs.len(),
            })
            .collect();
        // Nodes the planner sent to the host (kernels of the `Host` kind).
        let host_nodes: BTreeSet<&str> = plan
            .kernels
            .iter()
            .filter(|k| format!("{:?}", k.kind) == "Host")
            .flat_map(|k| k.nodes.iter().map(String::as_str))
            .collect();
        let not_fused = plan
            .breaks
            .iter()
            .map(|b| NotFused {
                producer: b.producer.clone(),
                consumer: b.consumer.clone(),
                category: if host_nodes.contains(b.producer.as_str())
                    || host_nodes.contains(b.consumer.as_str())
                {
                    BreakCategory::Fallback
                } else {
                    BreakCategory::of(&b.reason)
                },
                reason: reason_text(&b.reason),
            })
            .collect();
        let fallbacks = fused
            .program
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Host {
                    op,
                    inputs,
                    outputs,
                    ..
                } => Some(Fallback {
                    op: op.clone(),
                    inputs: inputs.clone(),
                    outputs: outputs.clone(),
                }),
                Step::Launch { .. } => None,
            })
            .collect();
        Explanation {
            model: model.to_string(),
            target: target.to_string(),
            ops_before: op_histogram(before),
            ops_after: op_histogram(&optimized.graph),
            ops_planned: op_histogram(fused.planned_graph(&optimized.graph)),
            optimizer: optimized.report.clone(),
            kernels,
            free: plan.free.clone(),
            not_fused,
            fallbacks,
        }
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("an explanation always serializes")
    }

    /// The text a person reads.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{} on {}\n", self.model, self.target);
        let count = |h: &BTreeMap<String, usize>| h.values().sum::<usize>();
        let _ = writeln!(
            s,
            "graph: {} ops before, {} after optimization",
            count(&self.ops_before),
            count(&self.ops_after)
        );
        let _ = writeln!(s, "  before: {}", histogram_text(&self.ops_before));
        let _ = writeln!(s, "  after:  {}", histogram_text(&self.ops_after));
        if self.ops_planned != self.ops_after {
            let _ = writeln!(
                s,
                "  planned (attention and MLP as the chains the kernels fuse): {}",
                histogram_text(&self.ops_planned)
            );
        }

        let r = &self.optimizer;
        let _ = writeln!(
            s,
            "\noptimizer: {} e-nodes at the start, modeled cost {:.0} -> {:.0} cycles",
            r.initial_nodes, r.cost_before, r.cost_after
        );
        for st in &r.stages {
            let _ = writeln!(
                s,
                "  stage {:<12} {:>3} iteration(s), {:>6} e-nodes, stopped: {}",
                st.name, st.iterations, st.egraph_nodes, st.stop_reason
            );
        }
        if r.hit_limit {
            s += "  a search limit was hit: the program was extracted from the partial e-graph (still correct, maybe less fused)\n";
        }
        if let Some(why) = &r.kept_input {
            let _ = writeln!(
                s,
                "  the e-graph's result was not used (the input graph went through the graph passes alone): {why}"
            );
        }
        if r.rules_fired.is_empty() {
            s += "  no rule changed the graph\n";
        } else {
            s += "  rules fired (applications that changed the e-graph):\n";
            for (rule, n) in &r.rules_fired {
                let _ = writeln!(s, "    {rule:<40} {n:>5}");
            }
            s += &rewrites_text(r);
        }

        let _ = writeln!(s, "\nkernels: {}", self.kernels.len());
        for (i, k) in self.kernels.iter().enumerate() {
            let _ = writeln!(s, "  [{i}] {} ({})", k.name, k.kind);
            let ops: Vec<String> = k.ops.iter().map(|(n, o)| format!("{n} ({o})")).collect();
            let _ = writeln!(s, "      ops: {}", ops.join(", "));
            let _ = writeln!(
                s,
                "      {}; L1 {} of {} B in {} circular buffer(s)",
                k.partition, k.l1_bytes, k.l1_limit, k.cbs
            );
        }
        if !self.free.is_empty() {
            s += "\nops without a kernel:\n";
            for f in &self.free {
                let _ = writeln!(s, "  {} ({}): {}", f.node, f.op, f.reason);
            }
        }
        if !self.fallbacks.is_empty() {
            s += "\nTTNN fallback ops (no TT-Lang kernel; they break fusion around them):\n";
            for f in &self.fallbacks {
                let _ = writeln!(
                    s,
                    "  {}: {} -> {}",
                    f.op,
                    f.inputs.join(", "),
                    f.outputs.join(", ")
                );
            }
        }
        if self.not_fused.is_empty() {
            s += "\nevery producer/consumer pair shares a kernel\n";
        } else {
            let _ = writeln!(
                s,
                "\nnot fused: {} producer/consumer pair(s)",
                self.not_fused.len()
            );
            for b in &self.not_fused {
                let _ = writeln!(
                    s,
                    "  {} -> {} [{}]: {}",
                    b.producer,
                    b.consumer,
                    b.category.name(),
                    b.reason
                );
            }
        }
        s
    }
}

/// Where the rules fired, grouped by stage: `rule → node (from: input nodes)` lines.
fn rewrites_text(r: &OptimizeReport) -> String {
    let mut s = String::from("  where they fired (rule → optimized node (from: input nodes)):\n");
    let mut stage: Option<&str> = None;
    for w in &r.rewrites {
        if stage != Some(w.stage.as_str()) {
            let _ = writeln!(s, "    stage {}:", w.stage);
            stage = Some(w.stage.as_str());
        }
        let from = if w.from.is_empty() {
            "no input node".to_string()
        } else {
            w.from.join(", ")
        };
        let times = if w.applications > 1 {
            format!(" x{}", w.applications)
        } else {
            String::new()
        };
        let _ = writeln!(s, "      {} → {} (from: {from}){times}", w.rule, w.node);
    }
    if r.rewrites.is_empty() {
        s += "    at no node of the optimized graph\n";
    }
    if r.rewrites_not_extracted > 0 {
        let _ = writeln!(
            s,
            "    {} application(s) at e-classes the optimized graph does not compute",
            r.rewrites_not_extracted
        );
    }
    s
}

/// `Add x3, MatMul x2`.
fn histogram_text(h: &BTreeMap<String, usize>) -> String {
    h.iter()
        .map(|(op, n)| format!("{op} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
