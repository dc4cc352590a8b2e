//! Which graph ops share a kernel.
//!
//! Fused mode walks the graph in topological order and lets each elementwise or row-wise op join
//! the kernel of one of its producers when that is legal: a matmul kernel takes a chain of
//! elementwise ops as its epilogue (when each link has a single consumer), an elementwise or
//! row-wise kernel takes further elementwise ops, row reductions over the last axis and the
//! row-wise composites (softmax, norms) on the same iteration space, as long as the kernel's
//! circular buffers still fit in L1 and no path leaves kernels and comes back. A matmul whose
//! left operand is the row-wise result of a kernel (a matmul with a softmax or norm epilogue,
//! or a norm's own kernel) continues that kernel as a chained product, and so do the other
//! products of that result (q, k and v; a gated MLP's two projections); chained products take
//! elementwise epilogues and further chained products of their own, and the kernel may cut
//! their columns over the grid ([`super::wide`]). Afterwards kernels are split again at chained
//! products where the planner's estimate ([`super::estimate`]) finds them faster apart.
//! Last, an RMSNorm or LayerNorm kernel whose result only feeds one matmul kernel's products,
//! as their left operand, joins that kernel where the estimate finds it faster: the kernel then
//! normalizes A itself. Then a matmul kernel whose result, after its bias and residual adds, is
//! such a norm's input (a block's attention projection before its MLP's norm) joins it too
//! where that is faster, with the norm from wherever it was: each core of the joined kernel
//! computes the chunk of A it multicasts. A transpose that only feeds matmuls as their B
//! operand becomes a transposed read inside those matmuls.
//! Unfused mode gives every op its own kernel, as TTNN runs them; in both modes an op that no
//! graph output depends on gets none. Every producer/consumer pair
//! that ends up in different kernels is recorded with the reason.

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::NodeIndex;
use serde::Serialize;

use super::body::BodyBuilder;
use super::layout::{flat2d, Class};
use super::splits::Splits;
use super::{concat, gather, heads};
use super::{FusionMode, PlanError};
use crate::graph::{Graph, Op};

/// Why a producer and its consumer are in different kernels.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub enum BreakReason {
    /// Fusion is off: one kernel per op.
    FusionOff,
    /// The producer's value is used by several ops, so it is written to DRAM anyway and a
    /// matmul epilogue cannot absorb the consumer.
    SeveralConsumers {
        /// How many ops use the producer.
        consumers: usize,
    },
    /// The producer is a graph output, which a matmul kernel must write before its epilogue.
    GraphOutput,
    /// The two op kinds do not share a kernel template.
    OpKind {
        /// What the templates cannot combine.
        detail: String,
    },
    /// The consumer iterates over a different space than the producer's kernel.
    Shape {
        /// The shapes involved.
        detail: String,
    },
    /// Fusing would make the kernel depend on its own output through another kernel.
    Cycle {
        /// The other producer that depends on the kernel.
        via: String,
    },
    /// The fused kernel's circular buffers would not fit the core.
    Budget {
        /// What did not fit.
        detail: String,
    },
    /// The planner's estimate ([`super::estimate`]) finds the fused kernel slower than the two
    /// kernels apart (fewer blocks in parallel outweigh the launch and traffic saved).
    Slower {
        /// Estimated cycles of the fused kernel.
        fused_cycles: f64,
        /// Estimated cycles of the two kernels.
        separate_cycles: f64,
    },
    /// The consumer joined the kernel of another of its producers.
    JoinedOtherProducer {
        /// The producer whose kernel the consumer joined.
        joined: String,
    },
}

/// A producer/consumer pair split across kernels.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FusionBreak {
    /// The producing node.
    pub producer: String,
    /// The consuming node.
    pub consumer: String,
    /// Why they are not fused.
    pub reason: BreakReason,
}

/// An op that needs no kernel.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FreeOp {
    /// The node.
    pub node: String,
    /// Its op name.
    pub op: String,
    /// Why it costs nothing.
    pub reason: String,
}

/// What kind of kernel a group becomes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum GroupKind {
    /// Elementwise and row-wise ops over one iteration space.
    Body,
    /// A matmul (node `mm`) with its elementwise epilogue (the other nodes).
    Matmul {
        /// The matmul node.
        mm: NodeIndex,
        /// Whether B is read transposed from the input of a transpose node.
        b_transposed: bool,
        /// Whether head-view operands ([`super::heads`]) are read in place.
        heads: bool,
        /// More products of the same left operand (their nodes are among the group's nodes),
        /// computed in the same kernel: a gated MLP's `act(x @ W1) * (x @ W3)`, attention's
        /// q, k and v projections.
        siblings: Vec<NodeIndex>,
        /// The RMSNorm or LayerNorm the products' left operand is, normalized in the kernel
        /// (where the estimate finds that faster than the norm's own kernel): the kernel reads
        /// the norm's input as A, sums it per row (centering it first for a LayerNorm), and
        /// scales each product's rows.
        norm: Option<NodeIndex>,
        /// The matmul whose result, after the adds that follow it among the group's nodes, is
        /// the normalized A's input (a block's attention projection and residual before its
        /// MLP's norm): each core computes the K chunk of it that it multicasts, and
        /// writes it for the kernels that read it after.
        norm_input: Option<NodeIndex>,
    },
    /// A standalone transpose of the last two axes.
    Transpose,
    /// An op without a TT-Lang template, run by the host as a TTNN op.
    Host,
}

/// A set of nodes that become one kernel.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Group {
    /// The template.
    pub kind: GroupKind,
    /// The nodes, in topological order.
    pub nodes: Vec<NodeIndex>,
    /// The iteration space (2-D view) of body groups and matmul epilogues.
    pub space: (usize, usize),
}

/// The grouping of a whole graph.
#[derive(Clone, Debug)]
pub struct Grouping {
    /// The groups in an order in which their kernels can run.
    pub groups: Vec<Group>,
    /// Producer/consumer pairs in different kernels.
    pub breaks: Vec<FusionBreak>,
    /// Ops that need no kernel.
    pub free: Vec<FreeOp>,
}

/// Whether node `n` only relabels its input's data (a reshape keeping the 2-D view, a
/// transpose that moves only axes of size one and keeps the 2-D view, identity, a
/// float-to-float cast).
pub fn is_view(graph: &Graph, n: NodeIndex) -> bool {
    let node = graph.node(n);
    let input_shape = || {
        graph
            .inputs_of(n)
            .first()
            .map(|&i| graph.node(i).ty.shape.clone())
    };
    match &node.op {
        Op::Reshape { .. } => input_shape().is_some_and(|s| flat2d(&s) == flat2d(&node.ty.shape)),
        Op::Transpose { perm } => input_shape().is_some_and(|s| {
            // The axes longer than one stay in order: the elements do too.
            let moved: Vec<usize> = perm.iter().copied().filter(|&a| s[a] != 1).collect();
            moved.windows(2).all(|w| w[0] < w[1]) && flat2d(&s) == flat2d(&node.ty.shape)
        }),
        Op::Unary(crate::graph::UnaryOp::Identity) => true,
        Op::Cast { to } => {
            to.is_float()
                && graph
                    .inputs_of(n)
                    .first()
                    .is_some_and(|&i| graph.node(i).ty.dtype.is_float())
        }
        _ => false,
    }
}

/// The node whose data `n` denotes, looking through views.
pub fn resolve(graph: &Graph, mut n: NodeIndex) -> NodeIndex {
    while is_view(graph, n) {
        match graph.inputs_of(n).first() {
            Some(&i) => n = i,
            None => break,
        }
    }
    n
}

/// Whether `n` transposes the last two axes and nothing else.
pub fn is_last_two_swap(graph: &Graph, n: NodeIndex) -> bool {
    match &graph.node(n).op {
        Op::Transpose { perm } => {
            let r = perm.len();
            r >= 2
                && perm[r - 1] == r - 2
                && perm[r - 2] == r - 1
                && perm[..r - 2].iter().enumerate().all(|(i, &p)| i == p)
        }
        _ => false,
    }
}

/// The consumers of `n`'s data, looking through views, and whether the data is a graph output.
pub fn real_users(graph: &Graph, n: NodeIndex) -> (Vec<NodeIndex>, bool) {
    let mut users = BTreeSet::new();
    let mut is_output = graph.outputs.iter().any(|(_, o)| *o == n);
    for u in graph.users_of(n) {
        if is_view(graph, u) {
            let (inner, out) = real_users(graph, u);
            users.extend(inner);
            is_output |= out;
        } else {
            users.insert(u);
        }
    }
    (users.into_iter().collect(), is_output)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Source,
    View,
    Absorbed,
    Gathered,
    ConcatRead,
    HeadView,
    Eltwise,
    Row,
    MatMul,
    Transpose,
    Host,
}

/// Whether the body templates can compute `n` (checked on a kernel of its own).
fn body_supports(graph: &Graph, n: NodeIndex, r: Role) -> bool {
    let space = row_space(graph, n, r).unwrap_or_else(|| flat2d(&graph.node(n).ty.shape));
    BodyBuilder::new(graph, space).node(n).is_ok()
}

pub(super) fn role(graph: &Graph, n: NodeIndex, mode: FusionMode) -> Role {
    match &graph.node(n).op {
        Op::Input | Op::Constant(_) => Role::Source,
        _ if is_view(graph, n) => Role::View,
        _ if mode == FusionMode::Fused && heads::absorbed(graph, n) => Role::HeadView,
        Op::Im2Col { .. } if mode == FusionMode::Fused && gather::gathered_in_place(graph, n) => {
            Role::Gathered
        }
        Op::Concat { .. } if mode == FusionMode::Fused && concat::read_in_place(graph, n) => {
            Role::ConcatRead
        }
        Op::MatMul => Role::MatMul,
        Op::Transpose { .. } if is_last_two_swap(graph, n) => {
            let (users, is_out) = real_users(graph, n);
            let only_b = !users.is_empty()
                && users.iter().all(|&u| {
                    matches!(graph.node(u).op, Op::MatMul)
                        && graph.inputs_of(u).get(1) == Some(&n)
                        && graph.inputs_of(u).first() != Some(&n)
                });
            if mode == FusionMode::Fused && only_b && !is_out {
                Role::Absorbed
            } else {
                Role::Transpose
            }
        }
        Op::Unary(_)
        | Op::Binary(_)
        | Op::Clip { .. }
        | Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Cast { .. } => {
            if body_supports(graph, n, Role::Eltwise) {
                Role::Eltwise
            } else {
                Role::Host
            }
        }
        Op::Where => {
            if body_supports(graph, n, Role::Eltwise) {
                Role::Eltwise
            } else {
                Role::Host
            }
        }
        Op::Reduce { .. } | Op::Softmax { .. } | Op::LayerNorm { .. } | Op::RmsNorm { .. } => {
            if body_supports(graph, n, Role::Row) {
                Role::Row
            } else {
                Role::Host
            }
        }
        _ => Role::Host,
    }
}

/// Whether the matmul `mm` reads its B operand transposed (fused mode, B is a last-two-axes
/// transpose absorbed into it).
pub fn b_is_transposed(graph: &Graph, mm: NodeIndex, mode: FusionMode) -> bool {
    mode == FusionMode::Fused
        && graph
            .inputs_of(mm)
            .get(1)
            .is_some_and(|&b| is_last_two_swap(graph, b))
}

/// Groups the graph's ops into kernels. `fits` says whether a candidate group still fits a core
/// (`Err(reason)` when it does not); `cost` estimates a group's kernel in cycles (`None` when
/// it cannot be built), for the choices where fusing can be slower.
pub fn group(
    graph: &Graph,
    mode: FusionMode,
    fits: &dyn Fn(&Group) -> Result<(), BreakReason>,
    cost: &dyn Fn(&Group) -> Option<f64>,
) -> Result<Grouping, PlanError> {
    let order = graph.topo_order();
    let mut pass = FirstPass {
        graph,
        mode,
        fits,
        position: order.iter().enumerate().map(|(i, &n)| (n, i)).collect(),
        groups: Vec::new(),
        group_of: BTreeMap::new(),
        breaks: Vec::new(),
    };
    let mut free = Vec::new();
    let live = live_nodes(graph);
    for &n in &order {
        let node = graph.node(n);
        let r = role(graph, n, mode);
        let reason = match r {
            Role::Source => continue,
            _ if !live.contains(&n) => "no graph output depends on it: not computed",
            _ => match free_reason(r) {
                Some(reason) => reason,
                None => {
                    pass.place(n, r);
                    continue;
                }
            },
        };
        free.push(FreeOp {
            node: node.name.clone(),
            op: node.op.name(),
            reason: reason.into(),
        });
    }
    let FirstPass {
        position,
        mut groups,
        mut group_of,
        mut breaks,
        ..
    } = pass;
    if mode == FusionMode::Fused {
        let mut splits = Splits {
            graph,
            groups: &mut groups,
            group_of: &mut group_of,
            breaks: &mut breaks,
            fits,
            cost,
        };
        splits.merge_siblings(&position);
        splits.unchain_where_slower();
        splits.split_rowwise_where_slower();
        // A product split off a row-wise kernel may join its siblings now.
        splits.merge_siblings(&position);
        splits.normalize_in_products(&position);
        splits.compute_norm_inputs();
    }
    let mut groups = order_groups(graph, groups, &group_of)?;
    groups.retain(|g| !g.nodes.is_empty());
    Ok(Grouping {
        groups,
        breaks,
        free,
    })
}

/// Why an op of role `r` needs no kernel of its own, if it does not.
fn free_reason(r: Role) -> Option<&'static str> {
    Some(match r {
        Role::View => "keeps the 2-D view of its input: the same DRAM tensor, no kernel",
        Role::Absorbed => "read transposed (ttl.transpose on tiles) by the matmuls that use it",
        Role::Gathered => "convolution windows gathered tile by tile by the reader of the matmul that uses them",
        Role::ConcatRead => "read in place: the kernels that use it read each block from the input that holds its rows",
        Role::HeadView => "splits or merges attention heads: matmuls read or write each head's columns in place",
        _ => return None,
    })
}

/// A producer an op could not join, and why.
type Rejected = (NodeIndex, BreakReason);

/// The first grouping pass, in topological order: each op joins the kernel of one of its
/// producers where it can ([`FirstPass::place`]), or starts its own.
struct FirstPass<'a> {
    graph: &'a Graph,
    mode: FusionMode,
    fits: &'a dyn Fn(&Group) -> Result<(), BreakReason>,
    /// Each node's place in topological order.
    position: BTreeMap<NodeIndex, usize>,
    groups: Vec<Group>,
    group_of: BTreeMap<NodeIndex, usize>,
    breaks: Vec<FusionBreak>,
}

impl FirstPass<'_> {
    /// Places op `n` of role `r` (one that needs a kernel): a matmul continues the row-wise
    /// kernel of its left operand as a chained product ([`Self::chain`]), an elementwise or
    /// row-wise op joins a producer's kernel ([`Self::join`]), anything else (or one that
    /// joins nothing) starts a kernel; every producer left in another kernel is recorded
    /// with the reason.
    fn place(&mut self, n: NodeIndex, r: Role) {
        let graph = self.graph;
        let mut producers: Vec<NodeIndex> = Vec::new();
        for p in graph.inputs_of(n).into_iter().map(|p| resolve(graph, p)) {
            if !matches!(graph.node(p).op, Op::Input | Op::Constant(_)) && !producers.contains(&p) {
                producers.push(p);
            }
        }
        let fused = self.mode == FusionMode::Fused;
        let (mut joined, chain_rejected) = match fused && r == Role::MatMul {
            true => self.chain(n),
            false => (None, None),
        };
        let mut rejected = Vec::new();
        if fused && matches!(r, Role::Eltwise | Role::Row) {
            rejected = self.join(n, r, &producers, &mut joined);
        }
        if joined.is_none() {
            let kind = match r {
                Role::MatMul => matmul_group(graph, n, self.mode).kind,
                Role::Transpose => GroupKind::Transpose,
                Role::Host => GroupKind::Host,
                _ => GroupKind::Body,
            };
            let shape = &graph.node(n).ty.shape;
            let space = row_space(graph, n, r).unwrap_or_else(|| flat2d(shape));
            self.group_of.insert(n, self.groups.len());
            self.groups.push(Group {
                kind,
                nodes: vec![n],
                space,
            });
        }
        if fused {
            self.record(
                n,
                r,
                &producers,
                (joined.is_some(), rejected, chain_rejected),
            );
        } else {
            for &p in &producers {
                if self.group_of.contains_key(&p) {
                    self.breaks
                        .push(self.fusion_break(p, n, BreakReason::FusionOff));
                }
            }
        }
    }

    /// Matmul `n` as a chained product of the kernel holding its left operand, when that is
    /// the kernel's row-wise result: the kernel and the operand it joined through, or the
    /// operand and why it could not.
    fn chain(&mut self, n: NodeIndex) -> (Option<(usize, NodeIndex)>, Option<Rejected>) {
        let graph = self.graph;
        let a = graph.inputs_of(n).first().map(|&a| resolve(graph, a));
        let Some((a, g)) = a.and_then(|a| self.group_of.get(&a).map(|&g| (a, g))) else {
            return (None, None);
        };
        let outcome = can_chain(graph, &self.groups[g], n, a).and_then(|()| {
            no_kernel_cycle(graph, &self.groups, &self.group_of, g, n)?;
            let mut candidate = self.groups[g].clone();
            candidate.nodes.push(n);
            (self.fits)(&candidate)?;
            Ok(candidate)
        });
        match outcome {
            Ok(candidate) => {
                self.groups[g] = candidate;
                self.group_of.insert(n, g);
                (Some((g, a)), None)
            }
            Err(reason) => (None, Some((a, reason))),
        }
    }

    /// Elementwise or row-wise op `n` (role `r`) into the kernel of one of its `producers`
    /// (`joined`, the kernel and producer it joined through), merging the other producers'
    /// kernels into it where they can be; returns the producers left apart, with the reasons.
    fn join(
        &mut self,
        n: NodeIndex,
        r: Role,
        producers: &[NodeIndex],
        joined: &mut Option<(usize, NodeIndex)>,
    ) -> Vec<Rejected> {
        let graph = self.graph;
        let mut rejected = Vec::new();
        for &p in producers {
            let Some(&g) = self.group_of.get(&p) else {
                // An absorbed transpose feeding an elementwise op cannot happen (its users
                // are matmuls only).
                continue;
            };
            if joined.is_some_and(|(jg, _)| jg == g) {
                continue;
            }
            if let Some((jg, jp)) = *joined {
                if merge_into(graph, &mut self.groups, jg, g, &self.position, self.fits) {
                    for (_, slot) in self.group_of.iter_mut().filter(|(_, slot)| **slot == g) {
                        *slot = jg;
                    }
                    continue;
                }
                let joined = graph.node(jp).name.clone();
                rejected.push((p, BreakReason::JoinedOtherProducer { joined }));
                continue;
            }
            let joinable = can_join(graph, &self.groups[g], n, p, r)
                .and_then(|()| no_kernel_cycle(graph, &self.groups, &self.group_of, g, n));
            if let Err(reason) = joinable {
                rejected.push((p, reason));
                continue;
            }
            let mut candidate = self.groups[g].clone();
            candidate.nodes.push(n);
            if let Some(space) = row_space(graph, n, r) {
                if candidate.kind == GroupKind::Body {
                    candidate.space = space;
                }
            }
            match (self.fits)(&candidate) {
                Ok(()) => {
                    self.groups[g] = candidate;
                    self.group_of.insert(n, g);
                    *joined = Some((g, p));
                }
                Err(reason) => rejected.push((p, reason)),
            }
        }
        rejected
    }

    /// Records why op `n` (role `r`) is apart from each of its `producers` in a kernel: the
    /// rejected joins and chain, and for an op that starts its own kernel (`joined` false)
    /// because of its kind, every other producer.
    fn record(
        &mut self,
        n: NodeIndex,
        r: Role,
        producers: &[NodeIndex],
        (joined, rejected, chain_rejected): (bool, Vec<Rejected>, Option<Rejected>),
    ) {
        let chain_producer = chain_rejected.as_ref().map(|(p, _)| *p);
        for (p, reason) in rejected.into_iter().chain(chain_rejected) {
            self.breaks.push(self.fusion_break(p, n, reason));
        }
        if joined || !matches!(r, Role::MatMul | Role::Transpose | Role::Host) {
            return;
        }
        let op = self.graph.node(n).op.name();
        let detail = match r {
            Role::Host => {
                format!("{op} has no TT-Lang template and runs as a host (TTNN) fallback")
            }
            _ => format!("{op} starts its own kernel"),
        };
        for &p in producers {
            if self.group_of.contains_key(&p) && chain_producer != Some(p) {
                let reason = BreakReason::OpKind {
                    detail: detail.clone(),
                };
                self.breaks.push(self.fusion_break(p, n, reason));
            }
        }
    }

    /// The break between `producer` and `consumer`, for `reason`.
    fn fusion_break(
        &self,
        producer: NodeIndex,
        consumer: NodeIndex,
        reason: BreakReason,
    ) -> FusionBreak {
        FusionBreak {
            producer: self.graph.node(producer).name.clone(),
            consumer: self.graph.node(consumer).name.clone(),
            reason,
        }
    }
}

/// Moves group `from` into slot `into` together with that slot's group (which has just taken a
/// consumer of both), when both compute element by element over the same space, no third kernel
/// lies between them, and the merged group still fits. One of the two may be a plain matmul
/// kernel (no row-wise epilogue, no chained product) whose product the other group does not
/// feed: the elementwise group's ops become more of its epilogue. Or both are plain matmul
/// kernels of the same left operand ([`siblings`]): one kernel computes both products. `from`
/// is left empty.
fn merge_into(
    graph: &Graph,
    groups: &mut [Group],
    into: usize,
    from: usize,
    position: &BTreeMap<NodeIndex, usize>,
    fits: &dyn Fn(&Group) -> Result<(), BreakReason>,
) -> bool {
    let (a, b) = (&groups[into], &groups[from]);
    if into == from || a.space != b.space {
        return false;
    }
    let eltwise = |g: &Group| g.kind == GroupKind::Body && !is_rowwise_group(graph, g);
    let plain_matmul = |g: &Group, other: &Group| {
        matches!(g.kind, GroupKind::Matmul { .. })
            && !is_rowwise_group(graph, g)
            && !has_chained_product(graph, g)
            && !graph
                .inputs_of(g.nodes[0])
                .into_iter()
                .any(|x| depends_on(graph, x, &other.nodes))
    };
    let (kind, lead) = if eltwise(a) && eltwise(b) {
        (GroupKind::Body, None)
    } else if eltwise(b) && plain_matmul(a, b) {
        (a.kind.clone(), Some(a.nodes[0]))
    } else if eltwise(a) && plain_matmul(b, a) {
        (b.kind.clone(), Some(b.nodes[0]))
    } else if let Some(kind) = siblings(graph, a, b) {
        (kind, Some(a.nodes[0]))
    } else {
        return false;
    };
    let nodes: Vec<NodeIndex> = a.nodes.iter().chain(&b.nodes).copied().collect();
    // A path from one group to the other through a node outside both would become a cycle.
    let through_outside = |x: &Group, y: &Group| {
        x.nodes.iter().flat_map(|&n| graph.inputs_of(n)).any(|q| {
            let q = resolve(graph, q);
            !nodes.contains(&q) && depends_on(graph, q, &y.nodes)
        })
    };
    if through_outside(a, b) || through_outside(b, a) {
        return false;
    }
    let candidate = united(a, b, kind, lead, position);
    if fits(&candidate).is_err() {
        return false;
    }
    groups[into] = candidate;
    groups[from].nodes.clear();
    true
}

/// Groups `a` and `b` as one group of `kind` over `a`'s space: their nodes in topological
/// order, with `lead` (a matmul kernel's own product) first.
fn united(
    a: &Group,
    b: &Group,
    kind: GroupKind,
    lead: Option<NodeIndex>,
    position: &BTreeMap<NodeIndex, usize>,
) -> Group {
    let mut nodes: Vec<NodeIndex> = a.nodes.iter().chain(&b.nodes).copied().collect();
    nodes.sort_by_key(|n| position.get(n).copied().unwrap_or(usize::MAX));
    if let Some(mm) = lead {
        nodes.retain(|&n| n != mm);
        nodes.insert(0, mm);
    }
    Group {
        kind,
        nodes,
        space: a.space,
    }
}

/// Merges plain matmul kernels of one left operand that share no consumer (attention's q, k and
/// v projections) where the estimate finds one kernel computing all their products faster: it
/// saves launches, while each product still streams A ([`sibling_union`]). The merged-away
/// groups are left empty.
pub(super) fn merge_siblings_where_faster(
    graph: &Graph,
    groups: &mut [Group],
    group_of: &mut BTreeMap<NodeIndex, usize>,
    position: &BTreeMap<NodeIndex, usize>,
    fits: &dyn Fn(&Group) -> Result<(), BreakReason>,
    cost: &dyn Fn(&Group) -> Option<f64>,
) {
    for i in 0..groups.len() {
        for j in i + 1..groups.len() {
            let Some(merged) = sibling_union(graph, &groups[i], &groups[j], position) else {
                continue;
            };
            if fits(&merged).is_err() {
                continue;
            }
            let (Some(together), Some(x), Some(y)) =
                (cost(&merged), cost(&groups[i]), cost(&groups[j]))
            else {
                continue;
            };
            if together >= x + y {
                continue;
            }
            for &n in &groups[j].nodes {
                group_of.insert(n, i);
            }
            groups[i] = merged;
            groups[j].nodes.clear();
        }
    }
}

/// Plain matmul groups `a` and `b` of one left operand as one kernel computing all their
/// products, if they can be: kernels with a path between them stay apart, but for a lone
/// product that the other's epilogue reads itself (a rotary embedding's `x @ W`, which its cos
/// term multiplies): the kernel computes it first.
pub(super) fn sibling_union(
    graph: &Graph,
    a: &Group,
    b: &Group,
    position: &BTreeMap<NodeIndex, usize>,
) -> Option<Group> {
    // Whether one of `x`'s nodes reads, directly or not, one of `y`'s.
    let reads = |x: &Group, y: &Group| {
        x.nodes
            .iter()
            .flat_map(|&n| graph.inputs_of(n))
            .any(|q| !x.nodes.contains(&q) && depends_on(graph, q, &y.nodes))
    };
    // Whether `x` is one product whose output `y`'s nodes read directly, and `y` depends on `x`
    // no other way.
    let feeds_epilogue = |x: &Group, y: &Group| {
        let [product] = x.nodes[..] else {
            return false;
        };
        let outside = y
            .nodes
            .iter()
            .flat_map(|&n| graph.inputs_of(n))
            .filter(|q| !y.nodes.contains(q));
        let mut direct = false;
        for q in outside {
            match q == product {
                true => direct = true,
                false if depends_on(graph, q, &x.nodes) => return false,
                false => {}
            }
        }
        direct && !reads(x, y)
    };
    if a.nodes.is_empty() || b.nodes.is_empty() || a.space != b.space {
        return None;
    }
    let a_first = siblings(graph, a, b)?;
    // The lone product an epilogue reads leads the kernel.
    let (lead, kind) = if feeds_epilogue(b, a) {
        (b.nodes[0], siblings(graph, b, a)?)
    } else if feeds_epilogue(a, b) || !(reads(a, b) || reads(b, a)) {
        (a.nodes[0], a_first)
    } else {
        return None;
    };
    Some(united(a, b, kind, Some(lead), position))
}

/// The kind of one matmul kernel computing the products of plain matmul groups `a` and `b`
/// (elementwise epilogues, no chained product), when they multiply the same left operand by 2-D
/// right operands, read as they are, into outputs of one shape. The kernel reads A once per
/// product and shares its blocks and epilogue.
fn siblings(graph: &Graph, a: &Group, b: &Group) -> Option<GroupKind> {
    let products = |g: &Group| match &g.kind {
        GroupKind::Matmul {
            b_transposed: false,
            mm,
            siblings,
            ..
        } if !is_rowwise_group(graph, g) && !has_chained_product(graph, g) => Some(
            std::iter::once(*mm)
                .chain(siblings.iter().copied())
                .collect::<Vec<_>>(),
        ),
        _ => None,
    };
    let (pa, pb) = (products(a)?, products(b)?);
    let a_of = |m: NodeIndex| graph.inputs_of(m).first().copied();
    let left = a_of(pa[0])?;
    let plain = |m: NodeIndex| {
        let ins = graph.inputs_of(m);
        a_of(m) == Some(left)
            && ins
                .get(1)
                .is_some_and(|&w| w != left && graph.node(w).ty.shape.len() == 2)
            && graph.node(m).ty.shape == graph.node(pa[0]).ty.shape
            && heads::split_into(graph, m).is_none()
    };
    let rights: BTreeSet<Option<NodeIndex>> = pa
        .iter()
        .chain(&pb)
        .map(|&m| graph.inputs_of(m).get(1).copied())
        .collect();
    let same = pa.iter().chain(&pb).all(|&m| plain(m))
        && rights.len() == pa.len() + pb.len()
        && heads::read_in_place(graph, left).is_none()
        && !matches!(graph.node(left).op, Op::Im2Col { .. });
    let GroupKind::Matmul {
        mm,
        b_transposed,
        heads,
        ..
    } = &a.kind
    else {
        return None;
    };
    same.then(|| GroupKind::Matmul {
        mm: *mm,
        b_transposed: *b_transposed,
        heads: *heads,
        siblings: pa[1..].iter().chain(&pb).copied().collect(),
        norm: None,
        norm_input: None,
    })
}

/// The iteration space a row-wise op needs: its main input's 2-D view.
pub(super) fn row_space(graph: &Graph, n: NodeIndex, r: Role) -> Option<(usize, usize)> {
    if r != Role::Row {
        return None;
    }
    graph
        .inputs_of(n)
        .first()
        .map(|&x| flat2d(&graph.node(x).ty.shape))
}

/// Whether matmul `n` can continue the matmul kernel `g` as a chained product of `a`, a value
/// of the kernel with nothing row-wise after it: `g` has a row-wise epilogue (its blocks span
/// whole rows, which are the product's K), and `a` is used by `n` alone or by products of 2-D
/// matrices only, which chain alike; `n`'s right operand comes from outside the kernel.
fn can_chain(graph: &Graph, g: &Group, n: NodeIndex, a: NodeIndex) -> Result<(), BreakReason> {
    let op_kind = |detail: &str| {
        Err(BreakReason::OpKind {
            detail: detail.to_string(),
        })
    };
    if heads::split_into(graph, n).is_some() {
        return op_kind("MatMul starts its own kernel: it splits attention heads as it writes them, which only a matmul kernel's writer does");
    }
    if !matches!(g.kind, GroupKind::Matmul { .. } | GroupKind::Body) || !is_rowwise_group(graph, g)
    {
        return op_kind("MatMul starts its own kernel: only a row-wise kernel (whole rows in L1) takes a chained product");
    }
    let Some(&b) = graph.inputs_of(n).get(1) else {
        return op_kind("a matmul needs two inputs");
    };
    // A row-wise body kernel's rows run over every batch: its products need one matrix.
    let b_shape = &graph.node(b).ty.shape;
    if g.kind == GroupKind::Body
        && b_shape[..b_shape.len().saturating_sub(2)]
            .iter()
            .product::<usize>()
            > 1
    {
        return op_kind(
            "MatMul starts its own kernel: a batched product does not chain into a row-wise kernel",
        );
    }
    // The product reads whole rows of `a`: nothing row-wise may follow `a` in the kernel.
    let at = g.nodes.iter().position(|&m| m == a);
    if at.is_none_or(|i| g.nodes[i + 1..].iter().any(|&m| is_rowwise_op(graph, m))) {
        return op_kind("the chained product must read the kernel's row-wise result");
    }
    let (users, is_out) = real_users(graph, a);
    if is_out {
        return Err(BreakReason::GraphOutput);
    }
    // Several products of `a` chain alike (a gated MLP's two projections; q, k and v).
    if users.len() > 1 && !users.iter().all(|&u| is_product_of(graph, u, a)) {
        return Err(BreakReason::SeveralConsumers {
            consumers: users.len(),
        });
    }
    let a_raw = graph.inputs_of(n)[0];
    if flat2d(&graph.node(a_raw).ty.shape).0 != g.space.0 {
        return Err(BreakReason::Shape {
            detail: format!(
                "the product's left operand {:?} does not have the kernel's rows ({}x{} space)",
                graph.node(a_raw).ty.shape,
                g.space.0,
                g.space.1
            ),
        });
    }
    Ok(())
}

/// Whether `u` multiplies `a` (its left operand) by one 2-D matrix, which a chained product
/// reads whole.
fn is_product_of(graph: &Graph, u: NodeIndex, a: NodeIndex) -> bool {
    let ins = graph.inputs_of(u);
    matches!(graph.node(u).op, Op::MatMul)
        && ins.first().map(|&x| resolve(graph, x)) == Some(a)
        && ins
            .get(1)
            .is_some_and(|&b| graph.node(b).ty.shape.len() == 2)
}

/// The kernel of matmul `n` on its own.
pub(super) fn matmul_group(graph: &Graph, n: NodeIndex, mode: FusionMode) -> Group {
    Group {
        kind: GroupKind::Matmul {
            mm: n,
            b_transposed: b_is_transposed(graph, n, mode),
            heads: mode == FusionMode::Fused,
            siblings: Vec::new(),
            norm: None,
            norm_input: None,
        },
        nodes: vec![n],
        space: flat2d(&graph.node(n).ty.shape),
    }
}

/// Whether node `m` of group `g` is a chained product: a matmul other than the group's own
/// product and its siblings.
pub(super) fn is_chained_product(graph: &Graph, g: &Group, m: NodeIndex) -> bool {
    let own = match g.kind {
        GroupKind::Matmul {
            mm, ref siblings, ..
        } => m == mm || siblings.contains(&m),
        _ => false,
    };
    matches!(graph.node(m).op, Op::MatMul) && !own
}

/// Whether the matmul group `g` holds a matmul besides its own (a chained product).
pub(super) fn has_chained_product(graph: &Graph, g: &Group) -> bool {
    g.nodes
        .iter()
        .skip(1)
        .any(|&m| is_chained_product(graph, g, m))
}

pub(super) fn can_join(
    graph: &Graph,
    g: &Group,
    n: NodeIndex,
    p: NodeIndex,
    r: Role,
) -> Result<(), BreakReason> {
    let node = graph.node(n);
    // A kernel that splits heads as it writes needs blocks within one head; a row-wise one
    // spans whole rows.
    let splits = |n: NodeIndex| heads::split_into(graph, n).is_some();
    if (r == Role::Row && g.nodes.iter().any(|&m| splits(m)))
        || (splits(n) && is_rowwise_group(graph, g))
    {
        return Err(BreakReason::OpKind {
            detail: "a kernel that splits attention heads as it writes them has blocks within one head, and a row-wise kernel spans whole rows".into(),
        });
    }
    let shape_err = |what: &str| BreakReason::Shape {
        detail: format!(
            "{what} {:?} does not fit the kernel's {}x{} space",
            node.ty.shape, g.space.0, g.space.1
        ),
    };
    match &g.kind {
        GroupKind::Host => {
            return Err(BreakReason::OpKind {
                detail: "a host fallback takes no epilogue".into(),
            })
        }
        GroupKind::Transpose => {
            return Err(BreakReason::OpKind {
                detail: "a transpose kernel takes no epilogue".into(),
            })
        }
        _ if has_chained_product(graph, g) => return chained_epilogue(graph, g, n, p, r),
        GroupKind::Matmul { .. } => {
            // A row-wise op joins when it reads the matmul's whole output rows: the matmul then
            // computes blocks spanning all columns, and the epilogue reduces them in L1.
            if r == Role::Row && row_space(graph, n, r) != Some(g.space) {
                return Err(BreakReason::OpKind {
                    detail: format!(
                        "{} after a matmul needs whole rows of its input; it starts a row-wise kernel",
                        node.op.name()
                    ),
                });
            }
            // Other consumers of the matmul's result read it from DRAM; a row-wise epilogue
            // writes it as well as its own result.
            epilogue_link(graph, g, p, r == Role::Row)?;
            if flat2d(&node.ty.shape) != g.space {
                return Err(shape_err("output"));
            }
        }
        GroupKind::Body => {
            let out = flat2d(&node.ty.shape);
            let ok = match r {
                Role::Row => {
                    graph.inputs_of(n).first().is_some_and(|&x| {
                        Class::of(flat2d(&graph.node(x).ty.shape), g.space) == Some(Class::Full)
                    }) && (!is_rowwise_group(graph, g) || row_space(graph, n, r) == Some(g.space))
                }
                _ => Class::of(out, g.space).is_some(),
            };
            if !ok {
                return Err(shape_err("output"));
            }
            if r == Role::Row && !is_rowwise_group(graph, g) && g.space.1 == 1 {
                return Err(shape_err("input"));
            }
        }
    }
    operands_fit(graph, n, g.space, r)
}

/// Whether an epilogue op can extend matmul kernel `g` from `p`: `p` is the kernel's last value,
/// not a graph output, and (unless `several_ok`) used by that op alone.
fn epilogue_link(
    graph: &Graph,
    g: &Group,
    p: NodeIndex,
    several_ok: bool,
) -> Result<(), BreakReason> {
    let (users, is_out) = real_users(graph, p);
    if users.len() > 1 && !several_ok {
        return Err(BreakReason::SeveralConsumers {
            consumers: users.len(),
        });
    }
    if is_out {
        return Err(BreakReason::GraphOutput);
    }
    if g.nodes.last() != Some(&p) {
        return Err(BreakReason::OpKind {
            detail: "the epilogue is a chain from the matmul".into(),
        });
    }
    Ok(())
}

/// Whether elementwise `n` can join kernel `g` after its chained products, from `p`, a value of
/// the kernel used by `n` alone: its values there are whole rows of their own width.
fn chained_epilogue(
    graph: &Graph,
    g: &Group,
    n: NodeIndex,
    p: NodeIndex,
    r: Role,
) -> Result<(), BreakReason> {
    let node = graph.node(n);
    if r == Role::Row {
        return Err(BreakReason::OpKind {
            detail: format!(
                "{} after a chained product starts a row-wise kernel",
                node.op.name()
            ),
        });
    }
    // The body holds every value of the kernel: an epilogue op may read any of them, not only
    // the last, as long as nothing else needs it.
    let (users, is_out) = real_users(graph, p);
    if users.len() > 1 {
        return Err(BreakReason::SeveralConsumers {
            consumers: users.len(),
        });
    }
    if is_out {
        return Err(BreakReason::GraphOutput);
    }
    let out = flat2d(&node.ty.shape);
    if out.0 != g.space.0 {
        return Err(BreakReason::Shape {
            detail: format!(
                "output {:?} does not have the kernel's {} rows",
                node.ty.shape, g.space.0
            ),
        });
    }
    operands_fit(graph, n, out, r)
}

/// Whether every operand of `n` broadcasts over `space` (the kernel's, or a chained product's
/// rows).
fn operands_fit(
    graph: &Graph,
    n: NodeIndex,
    space: (usize, usize),
    r: Role,
) -> Result<(), BreakReason> {
    // A lowered Where reads its condition as a mask built in the node's own shape, and a
    // constant broadcast over batch axes is read expanded to it.
    let mask_cond =
        crate::plan::body::where_mask_operand(graph, n).and(graph.inputs_of(n).first().copied());
    for q in graph.inputs_of(n) {
        if Some(q) == mask_cond || crate::plan::body::is_expanded_constant(graph, n, q) {
            continue;
        }
        let q_shape = flat2d(&graph.node(q).ty.shape);
        if Class::of(q_shape, space).is_none()
            && !(r == Role::Row && Some(q_shape) == row_space(graph, n, r))
        {
            return Err(BreakReason::Shape {
                detail: format!(
                    "operand {} {:?} does not broadcast over the kernel's {}x{} space",
                    graph.node(q).name,
                    graph.node(q).ty.shape,
                    space.0,
                    space.1
                ),
            });
        }
    }
    Ok(())
}

/// Whether node `n` can join kernel `g` without a cycle between kernels: none of its inputs from
/// outside `g` may come from a kernel that (through any of its nodes, or kernels further up)
/// reads `g`. A kernel runs once all of its inputs exist, so its nodes stand or fall together.
pub(super) fn no_kernel_cycle(
    graph: &Graph,
    groups: &[Group],
    group_of: &BTreeMap<NodeIndex, usize>,
    g: usize,
    n: NodeIndex,
) -> Result<(), BreakReason> {
    let inside = &groups[g].nodes;
    for q in graph.inputs_of(n).into_iter().map(|q| resolve(graph, q)) {
        if inside.contains(&q) {
            continue;
        }
        let mut stack = vec![q];
        let mut seen = BTreeSet::new();
        while let Some(x) = stack.pop() {
            if inside.contains(&x) {
                return Err(BreakReason::Cycle {
                    via: graph.node(q).name.clone(),
                });
            }
            if !seen.insert(x) {
                continue;
            }
            stack.extend(graph.inputs_of(x));
            if let Some(&k) = group_of.get(&x).filter(|&&k| k != g) {
                stack.extend(groups[k].nodes.iter().copied());
            }
        }
    }
    Ok(())
}

pub(super) fn is_rowwise_group(graph: &Graph, g: &Group) -> bool {
    g.nodes.iter().any(|&n| is_rowwise_op(graph, n))
}

/// Whether `n` works on whole rows (a reduction, softmax or norm).
pub(super) fn is_rowwise_op(graph: &Graph, n: NodeIndex) -> bool {
    matches!(
        graph.node(n).op,
        Op::Reduce { .. } | Op::Softmax { .. } | Op::LayerNorm { .. } | Op::RmsNorm { .. }
    )
}

/// The nodes some graph output depends on.
fn live_nodes(graph: &Graph) -> BTreeSet<NodeIndex> {
    let mut live = BTreeSet::new();
    let mut stack: Vec<NodeIndex> = graph.outputs.iter().map(|&(_, o)| o).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(graph.inputs_of(n));
        }
    }
    live
}

/// Whether `q` is computed from any of `nodes`.
fn depends_on(graph: &Graph, q: NodeIndex, nodes: &[NodeIndex]) -> bool {
    let mut stack = vec![q];
    let mut seen = BTreeSet::new();
    while let Some(x) = stack.pop() {
        if nodes.contains(&x) {
            return true;
        }
        if seen.insert(x) {
            stack.extend(graph.inputs_of(x));
        }
    }
    false
}

/// Orders groups so that every kernel runs after the kernels it reads from (ties: creation
/// order).
fn order_groups(
    graph: &Graph,
    groups: Vec<Group>,
    group_of: &BTreeMap<NodeIndex, usize>,
) -> Result<Vec<Group>, PlanError> {
    let n = groups.len();
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (gi, g) in groups.iter().enumerate() {
        for &node in &g.nodes {
            let mut stack = graph.inputs_of(node);
            while let Some(p) = stack.pop() {
                match group_of.get(&p) {
                    Some(&pg) if pg != gi => {
                        deps[gi].insert(pg);
                    }
                    Some(_) => {}
                    // Views and absorbed transposes: look further up.
                    None => stack.extend(graph.inputs_of(p)),
                }
            }
        }
    }
    let mut done = vec![false; n];
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let next = (0..n).find(|&i| !done[i] && deps[i].iter().all(|&d| done[d]));
        match next {
            Some(i) => {
                done[i] = true;
                out.push(i);
            }
            None => {
                let stuck = (0..n).find(|&i| !done[i]).map(|i| groups[i].nodes[0]);
                return Err(PlanError::Cycle {
                    node: stuck
                        .map(|s| graph.node(s).name.clone())
                        .unwrap_or_default(),
                });
            }
        }
    }
    let mut slots: Vec<Option<Group>> = groups.into_iter().map(Some).collect();
    Ok(out.into_iter().filter_map(|i| slots[i].take()).collect())
}
