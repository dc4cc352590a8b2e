//! Expression evaluation of the TTNN Python importer: names, numbers, operators and calls.

use petgraph::graph::NodeIndex;
use rustpython_parser::ast::{self, Constant, Expr};

use super::create::is_creation;
use super::ops::OpCx;
use super::value::{Args, Val};
use super::{Env, Program};
use crate::graph::{BinaryOp, DType, Op, TensorData, TensorType, UnaryOp};
use crate::import::ImportError;

impl<'a> Program<'a> {
    pub(super) fn lookup(&mut self, name: &str, env: &Env) -> Result<Val, ImportError> {
        if let Some(v) = env.get(name) {
            return Ok(v.clone());
        }
        match name {
            "ttnn" | "torch" => return Ok(Val::Path(name.to_string())),
            "True" => return Ok(Val::Bool(true)),
            "False" => return Ok(Val::Bool(false)),
            "None" => return Ok(Val::None),
            _ => {}
        }
        if let Some(&d) = self.opts.dims.get(name) {
            return Ok(Val::Num(d as f64));
        }
        if let Some(shape) = self.opts.input_shapes.get(name) {
            let idx = self
                .b
                .input(name, TensorType::new(shape.clone(), DType::F32));
            self.created.insert(idx);
            return Ok(Val::Tensor(idx));
        }
        Err(self.err(format!(
            "`{name}` is not defined; create it (e.g. ttnn.from_torch(torch.randn(64, 64))) or give its shape as an input shape"
        )))
    }

    /// Evaluates an expression; `hint` names the tensor it produces.
    pub(super) fn eval(
        &mut self,
        e: &'a Expr,
        env: &mut Env,
        hint: &str,
    ) -> Result<Val, ImportError> {
        match e {
            Expr::Constant(c) => match &c.value {
                Constant::Int(i) => i
                    .to_string()
                    .parse::<i64>()
                    .map(|v| Val::Num(v as f64))
                    .map_err(|_| self.err("integer too large")),
                Constant::Float(f) => Ok(Val::Num(*f)),
                Constant::Bool(b) => Ok(Val::Bool(*b)),
                Constant::Str(s) => Ok(Val::Str(s.clone())),
                Constant::None => Ok(Val::None),
                other => Err(self.err(format!("unsupported constant {other:?}"))),
            },
            Expr::Name(n) => self.lookup(n.id.as_str(), env),
            Expr::Tuple(t) => Ok(Val::Seq(self.eval_all(&t.elts, env, hint)?)),
            Expr::List(l) => Ok(Val::Seq(self.eval_all(&l.elts, env, hint)?)),
            Expr::Attribute(a) => {
                let base = self.eval(&a.value, env, hint)?;
                self.attribute(base, a.attr.as_str())
            }
            Expr::Subscript(s) => {
                let base = self.eval(&s.value, env, hint)?;
                let index = self.eval(&s.slice, env, hint)?;
                match (base, index.as_int()) {
                    (Val::Seq(items), Some(i)) => {
                        let k = if i < 0 { i + items.len() as i64 } else { i };
                        usize::try_from(k)
                            .ok()
                            .and_then(|k| items.get(k).cloned())
                            .ok_or_else(|| self.err(format!("index {i} out of range")))
                    }
                    _ => {
                        Err(self
                            .err("only integer indexing of tuples (e.g. x.shape[0]) is supported"))
                    }
                }
            }
            Expr::UnaryOp(u) => {
                let v = self.eval(&u.operand, env, hint)?;
                match (u.op, v) {
                    (ast::UnaryOp::USub, Val::Num(n)) => Ok(Val::Num(-n)),
                    (ast::UnaryOp::UAdd, v @ Val::Num(_)) => Ok(v),
                    (ast::UnaryOp::USub, Val::Tensor(t)) => {
                        self.op(hint, "-", Op::Unary(UnaryOp::Neg), &[t])
                    }
                    (op, v) => {
                        Err(self.err(format!("unsupported unary {op:?} on {}", v.describe())))
                    }
                }
            }
            Expr::BinOp(b) => {
                let l = self.eval(&b.left, env, &format!("{hint}/lhs"))?;
                let r = self.eval(&b.right, env, &format!("{hint}/rhs"))?;
                self.binop(b.op, l, r, hint)
            }
            Expr::Call(c) => self.call(c, env, hint),
            _ => Err(self.err("unsupported expression")),
        }
    }

    pub(super) fn eval_all(
        &mut self,
        items: &'a [Expr],
        env: &mut Env,
        hint: &str,
    ) -> Result<Vec<Val>, ImportError> {
        items
            .iter()
            .enumerate()
            .map(|(k, e)| self.eval(e, env, &format!("{hint}/{k}")))
            .collect()
    }

    pub(super) fn attribute(&self, base: Val, attr: &str) -> Result<Val, ImportError> {
        match base {
            Val::Path(p) => Ok(match (p.as_str(), attr) {
                (_, "bfloat16") => Val::DType(DType::BF16),
                (_, "float32") | (_, "float") => Val::DType(DType::F32),
                (_, "float16") => Val::DType(DType::F16),
                (_, "int32") | (_, "uint32") => Val::DType(DType::I32),
                (_, "int64") => Val::DType(DType::I64),
                (_, "bool") => Val::DType(DType::Bool),
                _ => Val::Path(format!("{p}.{attr}")),
            }),
            Val::Tensor(t) if attr == "shape" => Ok(Val::Seq(
                self.b
                    .ty(t)
                    .shape
                    .iter()
                    .map(|&d| Val::Num(d as f64))
                    .collect(),
            )),
            other => Err(self.err(format!(
                "attribute `{attr}` of {} is not supported",
                other.describe()
            ))),
        }
    }

    pub(super) fn binop(
        &mut self,
        op: ast::Operator,
        l: Val,
        r: Val,
        hint: &str,
    ) -> Result<Val, ImportError> {
        use ast::Operator as O;
        if let (Val::Num(a), Val::Num(b)) = (&l, &r) {
            return match op {
                O::Add => Ok(Val::Num(a + b)),
                O::Sub => Ok(Val::Num(a - b)),
                O::Mult => Ok(Val::Num(a * b)),
                O::Div => Ok(Val::Num(a / b)),
                O::FloorDiv if *b != 0.0 => Ok(Val::Num((a / b).floor())),
                O::Pow => Ok(Val::Num(a.powf(*b))),
                _ => Err(self.err(format!("unsupported operator {op:?} on numbers"))),
            };
        }
        let graph_op = match op {
            O::Add => Op::Binary(BinaryOp::Add),
            O::Sub => Op::Binary(BinaryOp::Sub),
            O::Mult => Op::Binary(BinaryOp::Mul),
            O::Div => Op::Binary(BinaryOp::Div),
            O::Pow => Op::Binary(BinaryOp::Pow),
            O::MatMult => Op::MatMul,
            _ => return Err(self.err(format!("unsupported operator {op:?} on tensors"))),
        };
        let dtype = [&l, &r]
            .iter()
            .find_map(|v| {
                if let Val::Tensor(t) = v {
                    Some(self.b.ty(*t).dtype)
                } else {
                    None
                }
            })
            .ok_or_else(|| {
                self.err(format!(
                    "unsupported operands {} and {}",
                    l.describe(),
                    r.describe()
                ))
            })?;
        let mut ins = Vec::with_capacity(2);
        for (k, v) in [l, r].into_iter().enumerate() {
            ins.push(match v {
                Val::Tensor(t) => t,
                Val::Num(n) => {
                    let name = format!("{hint}/scalar{k}");
                    self.b
                        .constant(&name, TensorData::f32(vec![], vec![n as f32]), dtype)
                }
                other => return Err(self.err(format!("unsupported operand {}", other.describe()))),
            });
        }
        self.op(hint, &format!("{op:?}"), graph_op, &ins)
    }

    /// Adds an op for an operator expression.
    pub(super) fn op(
        &mut self,
        hint: &str,
        what: &str,
        op: Op,
        ins: &[NodeIndex],
    ) -> Result<Val, ImportError> {
        self.consumed.extend(ins.iter().copied());
        let idx = self
            .b
            .add(hint, op, ins)
            .map_err(|e| self.err(format!("operator {what}: {e}")))?;
        Ok(Val::Tensor(idx))
    }

    pub(super) fn call(
        &mut self,
        c: &'a ast::ExprCall,
        env: &mut Env,
        hint: &str,
    ) -> Result<Val, ImportError> {
        let func = match &*c.func {
            Expr::Name(n) if self.funcs.contains_key(n.id.as_str()) => {
                let f = self.funcs[n.id.as_str()];
                let args = self.eval_args(c, env, hint)?;
                return self.call_user(f, args, env);
            }
            Expr::Name(n) => n.id.to_string(),
            other => match self.eval(other, env, hint)? {
                Val::Path(p) => p,
                v => return Err(self.err(format!("cannot call {}", v.describe()))),
            },
        };
        let name = func.as_str();
        if let Some(op) = name
            .strip_prefix("ttnn.")
            .and_then(|n| self.table.get(n))
            .copied()
        {
            let args = self.eval_args(c, env, hint)?;
            let mut cx = OpCx {
                b: &mut self.b,
                name: hint.to_string(),
                func: func.clone(),
                file: self.file,
                line: self.line,
                consumed: &mut self.consumed,
            };
            return op(&mut cx, &args).map(Val::Tensor);
        }
        match name {
            "ttnn.open_device" | "ttnn.CreateDevice" | "ttnn.GetDefaultDevice" => {
                Ok(Val::Opaque("a device".into()))
            }
            "ttnn.close_device"
            | "ttnn.CloseDevice"
            | "ttnn.synchronize_device"
            | "ttnn.deallocate"
            | "ttnn.SetDefaultDevice"
            | "ttnn.enable_program_cache"
            | "torch.manual_seed"
            | "print" => Ok(Val::None),
            "ttnn.from_torch"
            | "ttnn.to_device"
            | "ttnn.to_layout"
            | "ttnn.from_device"
            | "ttnn.to_torch"
            | "ttnn.to_memory_config"
            | "ttnn.clone"
            | "ttnn.reallocate" => self.pass_through(c, env, hint, &func),
            _ if is_creation(name) => self.create(c, env, hint, &func, None),
            _ if name.starts_with("ttnn.") => {
                Err(self.err(format!("`{name}` is not supported by ttfuse")))
            }
            _ => Err(self.err(format!(
                "call to `{name}` is not supported; ttfuse reads ttnn programs"
            ))),
        }
    }

    pub(super) fn eval_args(
        &mut self,
        c: &'a ast::ExprCall,
        env: &mut Env,
        hint: &str,
    ) -> Result<Args, ImportError> {
        let mut args = Args::default();
        for (k, e) in c.args.iter().enumerate() {
            if matches!(e, Expr::Starred(_)) {
                return Err(self.err("*args are not supported"));
            }
            args.pos.push(self.eval(e, env, &format!("{hint}/arg{k}"))?);
        }
        for kw in &c.keywords {
            let Some(name) = &kw.arg else {
                return Err(self.err("**kwargs are not supported"));
            };
            let v = self.eval(&kw.value, env, &format!("{hint}/{name}"))?;
            args.kw.insert(name.to_string(), v);
        }
        Ok(args)
    }
}
