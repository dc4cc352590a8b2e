//! Assembling the host program: one DRAM tensor per graph tensor that crosses a kernel boundary
//! (plus constant tiles), one TT-Lang kernel per planned kernel, launched in plan order.

use std::collections::BTreeMap;

use petgraph::graph::NodeIndex;
use ttfuse_runtime::program::{Program, Step, TensorDecl, TensorInit};
use ttfuse_runtime::tensor::TILE;
use ttfuse_runtime::ttl::ast::Kernel;

use super::binding::{device_values, Binding};
use super::{body_kernel, fallback, matmul, transpose, Compiled, LowerError};
use crate::graph::im2col::TileGather;
use crate::graph::{Graph, Op};
use crate::plan::body::{expanded_constant, where_mask, Body, LoadSource};
use crate::plan::group::resolve;
use crate::plan::layout::{device_dims, layout_of, padded};
use crate::plan::names::Stems;
use crate::plan::{KernelDetail, KernelPlan, PlanError};

/// The program's tensors, created on first use.
struct Tensors<'g> {
    graph: &'g Graph,
    decls: Vec<TensorDecl>,
    of_node: BTreeMap<NodeIndex, String>,
    of_scalar: BTreeMap<u32, String>,
    of_mask: BTreeMap<(usize, u32, u32), String>,
    of_gather: Vec<((TileGather, usize), String)>,
    stems: Stems,
}

impl<'g> Tensors<'g> {
    fn node(&mut self, n: NodeIndex) -> Result<String, LowerError> {
        let n = resolve(self.graph, n);
        if let Some(t) = self.of_node.get(&n) {
            return Ok(t.clone());
        }
        let node = self.graph.node(n);
        let layout = layout_of(&node.ty.shape).ok_or_else(|| PlanError::shape(self.graph, n))?;
        let (rows, cols) = device_dims(&node.ty.shape, layout);
        let init = match &node.op {
            Op::Input => TensorInit::Input,
            Op::Constant(data) => {
                TensorInit::Const(device_values(data.to_f32(), &node.ty.shape, layout))
            }
            _ => TensorInit::Zeros,
        };
        let name = self.stems.alloc(&node.name);
        self.decls.push(TensorDecl {
            name: name.clone(),
            rows,
            cols,
            init,
            is_output: false,
        });
        self.of_node.insert(n, name.clone());
        Ok(name)
    }

    /// A `[32, cols]` row-vector mask: `valid` in the first `cols` columns, `pad` after.
    fn mask(&mut self, cols: usize, valid: f32, pad: f32) -> String {
        let key = (cols, valid.to_bits(), pad.to_bits());
        if let Some(t) = self.of_mask.get(&key) {
            return t.clone();
        }
        let width = padded(cols);
        let row: Vec<f32> = (0..width)
            .map(|j| if j < cols { valid } else { pad })
            .collect();
        let name = self.stems.alloc(if pad == 0.0 {
            "col_mask"
        } else {
            "col_mask_neg"
        });
        self.decls.push(TensorDecl {
            name: name.clone(),
            rows: TILE,
            cols: width,
            init: TensorInit::Const(row.repeat(TILE)),
            is_output: false,
        });
        self.of_mask.insert(key, name.clone());
        name
    }

    /// The gather table of a convolution's windows for blocks of `rows` row tiles
    /// ([`TileGather::table`]), one per geometry and block height.
    fn gather_table(&mut self, gather: &TileGather, rows: usize) -> String {
        let key = (gather.clone(), rows);
        if let Some((_, t)) = self.of_gather.iter().find(|(k, _)| *k == key) {
            return t.clone();
        }
        let name = self.stems.alloc("gather_table");
        self.decls.push(TensorDecl {
            name: name.clone(),
            rows: gather.row_tiles() * TILE,
            cols: gather.table_cols(rows),
            init: TensorInit::Const(gather.table(rows)),
            is_output: false,
        });
        self.of_gather.push((key, name.clone()));
        name
    }

    fn scalar(&mut self, value: f32) -> String {
        if let Some(t) = self.of_scalar.get(&value.to_bits()) {
            return t.clone();
        }
        let text = format!("{value}").replace('-', "neg").replace('.', "_");
        let name = self.stems.alloc(&format!("const_{text}"));
        self.decls.push(TensorDecl {
            name: name.clone(),
            rows: TILE,
            cols: TILE,
            init: TensorInit::Const(vec![value; TILE * TILE]),
            is_output: false,
        });
        self.of_scalar.insert(value.to_bits(), name.clone());
        name
    }

    /// The constant additive mask of the lowered `Where` node `n`; with `one_batch`, of one
    /// batch ([`crate::plan::body::Load::batch_shared`]).
    fn where_mask(&mut self, n: NodeIndex, one_batch: bool) -> Result<String, LowerError> {
        let node = self.graph.node(n);
        let unsupported = || PlanError::Unsupported {
            node: node.name.clone(),
            op: node.op.name(),
            reason: "the condition is not a constant with an infinite alternative".into(),
        };
        let (_, mask) = where_mask(self.graph, n, one_batch).ok_or_else(unsupported)?;
        let shape = if one_batch {
            node.ty.shape[node.ty.shape.len() - 2..].to_vec()
        } else {
            node.ty.shape.clone()
        };
        let layout = layout_of(&shape).ok_or_else(|| PlanError::shape(self.graph, n))?;
        let (rows, cols) = device_dims(&shape, layout);
        let name = self.stems.alloc(&format!("{}_mask", node.name));
        self.decls.push(TensorDecl {
            name: name.clone(),
            rows,
            cols,
            init: TensorInit::Const(device_values(mask, &shape, layout)),
            is_output: false,
        });
        Ok(name)
    }

    /// Constant `constant` expanded to node `like`'s shape; with `one_batch`, to one batch's
    /// matrix ([`crate::plan::body::Load::batch_shared`]).
    fn expanded(
        &mut self,
        constant: NodeIndex,
        like: NodeIndex,
        one_batch: bool,
    ) -> Result<String, LowerError> {
        let node = self.graph.node(like);
        let values = expanded_constant(self.graph, like, constant, one_batch).ok_or_else(|| {
            PlanError::Unsupported {
                node: node.name.clone(),
                op: node.op.name(),
                reason: format!(
                    "operand `{}` is not a constant broadcast over batch axes",
                    self.graph.node(constant).name
                ),
            }
        })?;
        let shape = if one_batch {
            node.ty.shape[node.ty.shape.len() - 2..].to_vec()
        } else {
            node.ty.shape.clone()
        };
        let layout = layout_of(&shape).ok_or_else(|| PlanError::shape(self.graph, like))?;
        let (rows, cols) = device_dims(&shape, layout);
        let name = self
            .stems
            .alloc(&format!("{}_expanded", self.graph.node(constant).name));
        self.decls.push(TensorDecl {
            name: name.clone(),
            rows,
            cols,
            init: TensorInit::Const(device_values(values, &shape, layout)),
            is_output: false,
        });
        Ok(name)
    }

    /// `(parameter, program tensor)` for every tensor a body reads or writes.
    fn body_args(&mut self, body: &Body) -> Result<Vec<(String, String)>, LowerError> {
        let mut args = Vec::new();
        for load in &body.loads {
            let tensor = match &load.source {
                // Each part of a concatenation read in place is a parameter of its own.
                LoadSource::Concat(parts) => {
                    for part in parts {
                        args.push((part.param.clone(), self.node(part.tensor)?));
                    }
                    continue;
                }
                &LoadSource::Tensor(n) => self.node(n)?,
                LoadSource::Matrix(m) => self.node(m.tensor)?,
                &LoadSource::Scalar(v) => self.scalar(v),
                &LoadSource::WhereMask(n) => self.where_mask(n, load.batch_shared)?,
                &LoadSource::Expanded { constant, like } => {
                    self.expanded(constant, like, load.batch_shared)?
                }
                &LoadSource::Mask { cols, valid, pad } => self.mask(cols, valid, pad),
            };
            args.push((load.param.clone(), tensor));
        }
        for &(n, v) in &body.outputs {
            args.push((body.values[v].stem.clone(), self.node(n)?));
        }
        Ok(args)
    }
}

/// The launch arguments of `kernel`: the program tensor bound to each parameter.
fn launch_args(kernel: &Kernel, bound: Vec<(String, String)>) -> Result<Vec<String>, LowerError> {
    let by_param: BTreeMap<String, String> = bound.into_iter().collect();
    kernel
        .params
        .iter()
        .map(|p| {
            by_param
                .get(p)
                .cloned()
                .ok_or_else(|| LowerError::UnboundParam {
                    kernel: kernel.name.clone(),
                    param: p.clone(),
                })
        })
        .collect()
}

/// Builds the program and bindings for a planned graph.
pub fn assemble(graph: &Graph, plan: KernelPlan) -> Result<Compiled, LowerError> {
    let mut t = Tensors {
        graph,
        decls: Vec::new(),
        of_node: BTreeMap::new(),
        of_scalar: BTreeMap::new(),
        of_mask: BTreeMap::new(),
        of_gather: Vec::new(),
        stems: Stems::new(),
    };
    let mut inputs = Vec::new();
    for &n in &graph.inputs {
        let node = graph.node(n);
        let tensor = t.node(n)?;
        let layout = layout_of(&node.ty.shape).ok_or_else(|| PlanError::shape(graph, n))?;
        inputs.push(Binding {
            name: node.name.clone(),
            tensor,
            shape: node.ty.shape.clone(),
            layout,
        });
    }
    let mut kernels = Vec::new();
    let mut steps = Vec::new();
    for k in &plan.kernels {
        let (kernel, bound) = match &k.detail {
            KernelDetail::Body { body, schedule } => {
                (body_kernel::lower(k, body, schedule), t.body_args(body)?)
            }
            KernelDetail::Matmul {
                body,
                schedule,
                info,
            } => {
                let mut bound = vec![
                    (info.a_param.clone(), t.node(info.a)?),
                    (info.b_param.clone(), t.node(info.b)?),
                ];
                for op in &info.others {
                    bound.push((op.b_param.clone(), t.node(op.b)?));
                }
                if let Some(g) = &info.a_gather {
                    let rows = k.partition.block.0;
                    bound.push((g.table_param.clone(), t.gather_table(&g.gather, rows)));
                }
                if let Some(input) = info.norm_input() {
                    bound.push((input.a_param.clone(), t.node(input.a)?));
                    bound.push((input.b_param.clone(), t.node(input.b)?));
                    for add in &input.adds {
                        bound.push((add.param.clone(), t.node(add.tensor)?));
                    }
                }
                bound.extend(t.body_args(body)?);
                (matmul::lower(k, body, schedule, info), bound)
            }
            KernelDetail::Transpose(info) => (
                transpose::lower(k, info),
                vec![
                    (info.stems.0.clone(), t.node(info.input)?),
                    (info.stems.1.clone(), t.node(info.output)?),
                ],
            ),
            KernelDetail::Host(info) => {
                let mut inputs = Vec::with_capacity(info.inputs.len());
                for &i in &info.inputs {
                    inputs.push(t.node(i)?);
                }
                let output = t.node(info.node)?;
                steps.push(fallback::host_step(graph, info, inputs, output));
                continue;
            }
        };
        let args = launch_args(&kernel, bound)?;
        steps.push(Step::Launch {
            kernel: kernels.len(),
            args,
        });
        kernels.push(kernel);
    }
    let mut outputs = Vec::new();
    for (name, n) in &graph.outputs {
        let node = graph.node(*n);
        let tensor = t.node(*n)?;
        let layout = layout_of(&node.ty.shape).ok_or_else(|| PlanError::shape(graph, *n))?;
        if let Some(d) = t.decls.iter_mut().find(|d| d.name == tensor) {
            d.is_output = true;
        }
        outputs.push(Binding {
            name: name.clone(),
            tensor,
            shape: node.ty.shape.clone(),
            layout,
        });
    }
    let program = Program {
        tensors: t.decls,
        kernels,
        steps,
    };
    Ok(Compiled {
        program,
        plan,
        inputs,
        outputs,
        expanded: None,
    })
}
