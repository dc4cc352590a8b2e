//! The TTNN Python importer: reads a straight-line `ttnn.*` program, such as the TT-Lang
//! guide's key use case, into a [`Graph`].
//!
//! The program is parsed with `rustpython-parser` and interpreted symbolically:
//!
//! - **Inputs** are tensors created from random data: `torch.randn/rand/empty(...)` and
//!   `ttnn.rand/randn(...)`, directly or through `ttnn.from_torch(...)`. Each becomes a graph
//!   input named after the variable it is assigned to; its shape comes from the call (or from
//!   `ImportOptions::input_shapes`, which wins), its dtype from a `dtype=` argument (default f32).
//!   Shape arguments may be names bound to numbers in the program or in `ImportOptions::dims`.
//! - **Constants** are tensors with known values: `ttnn/torch.ones/zeros/full(...)`.
//! - **Ops** are `ttnn.<op>(...)` calls from the table in [`ops`], and the operators
//!   `+ - * / @ **` between tensors and numbers. Device and layout calls (`ttnn.open_device`,
//!   `ttnn.to_device`, `ttnn.to_layout`, `ttnn.to_torch`, ...) pass their tensor through.
//! - **Functions** defined in the program run when called; `if __name__ == "__main__":` runs.
//!   A program that only defines one function takes its parameters as inputs (their shapes must
//!   be given in `ImportOptions::input_shapes`).
//! - **Outputs** are the op results never used as an operand afterwards, in program order, each
//!   named after the first variable it was assigned to.

pub mod ops;
pub mod value;

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::NodeIndex;
use rustpython_parser::ast::{self, Constant, Expr, Ranged, Stmt};
use rustpython_parser::{parse, Mode};

use self::ops::{OpCx, TtnnOp};
use self::value::{Args, Val};
use super::builder::GraphBuilder;
use super::{ImportError, ImportOptions};
use crate::graph::{BinaryOp, DType, Graph, Op, TensorData, UnaryOp};

/// How deep user-defined functions may call each other.
const MAX_CALL_DEPTH: usize = 32;

/// Imports a TTNN Python program; `file` names it in errors.
pub fn import(file: &str, text: &str, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let module = parse(text, Mode::Module, file).map_err(|e| ImportError::Line {
        file: file.to_string(),
        line: line_of(&line_starts, u32::from(e.offset) as usize),
        reason: format!("Python syntax error: {}", e.error),
    })?;
    let ast::Mod::Module(module) = module else {
        return Err(ImportError::Malformed {
            file: file.into(),
            format: "TTNN Python",
            reason: "not a module".into(),
        });
    };
    let mut p = Program {
        file,
        opts,
        line_starts,
        line: 1,
        b: GraphBuilder::new(),
        table: ops::table(),
        funcs: BTreeMap::new(),
        consumed: BTreeSet::new(),
        results: Vec::new(),
        created: BTreeSet::new(),
        depth: 0,
    };
    let mut env = Env::new();
    p.exec_block(&module.body, &mut env, true)?;
    if p.results.is_empty() && p.funcs.len() == 1 {
        p.call_lone_function(&mut env)?;
    }
    p.finish()
}

fn line_of(line_starts: &[usize], offset: usize) -> usize {
    line_starts.partition_point(|&s| s <= offset).max(1)
}

type Env = BTreeMap<String, Val>;

struct Program<'a> {
    file: &'a str,
    opts: &'a ImportOptions,
    line_starts: Vec<usize>,
    line: usize,
    b: GraphBuilder,
    table: BTreeMap<&'static str, TtnnOp>,
    funcs: BTreeMap<String, &'a ast::StmtFunctionDef>,
    consumed: BTreeSet<NodeIndex>,
    /// Op results bound to a variable: (first variable name, node), in program order.
    results: Vec<(String, NodeIndex)>,
    /// Inputs and constants made by creation calls (never outputs by themselves).
    created: BTreeSet<NodeIndex>,
    depth: usize,
}

impl<'a> Program<'a> {
    fn err(&self, reason: impl Into<String>) -> ImportError {
        ImportError::Line {
            file: self.file.to_string(),
            line: self.line,
            reason: reason.into(),
        }
    }

    fn set_line(&mut self, node: &impl Ranged) {
        self.line = line_of(&self.line_starts, u32::from(node.start()) as usize);
    }

    /// Runs statements; returns the value of a `return`, if one ran.
    fn exec_block(
        &mut self,
        body: &'a [Stmt],
        env: &mut Env,
        top: bool,
    ) -> Result<Option<Val>, ImportError> {
        for stmt in body {
            self.set_line(stmt);
            match stmt {
                Stmt::Import(_) | Stmt::ImportFrom(_) | Stmt::Pass(_) => {}
                Stmt::FunctionDef(f) => {
                    self.funcs.insert(f.name.to_string(), f);
                }
                Stmt::Assign(a) => {
                    let [target] = a.targets.as_slice() else {
                        return Err(self.err("only single-target assignments are supported"));
                    };
                    self.assign(target, &a.value, env)?;
                }
                Stmt::Expr(e) => self.expr_stmt(&e.value, env)?,
                Stmt::Return(r) if !top => {
                    let v = match &r.value {
                        Some(v) => self.eval(v, env, "return")?,
                        None => Val::None,
                    };
                    return Ok(Some(v));
                }
                Stmt::If(s) if top && is_main_guard(&s.test) => {
                    if let Some(v) = self.exec_block(&s.body, env, top)? {
                        return Ok(Some(v));
                    }
                }
                other => {
                    return Err(self.err(format!(
                        "unsupported statement ({}); ttfuse reads straight-line ttnn programs",
                        stmt_kind(other)
                    )))
                }
            }
        }
        Ok(None)
    }

    fn assign(
        &mut self,
        target: &'a Expr,
        value: &'a Expr,
        env: &mut Env,
    ) -> Result<(), ImportError> {
        match target {
            Expr::Name(n) => {
                let name = n.id.to_string();
                let v = self.eval(value, env, &name)?;
                self.bind(&name, &v);
                env.insert(name, v);
                Ok(())
            }
            Expr::Tuple(t) => {
                let v = self.eval(value, env, "tuple")?;
                let Val::Seq(items) = v else {
                    return Err(self.err(format!("cannot unpack {}", v.describe())));
                };
                if items.len() != t.elts.len() {
                    return Err(self.err(format!(
                        "cannot unpack {} values into {}",
                        items.len(),
                        t.elts.len()
                    )));
                }
                for (elt, item) in t.elts.iter().zip(items) {
                    let Expr::Name(n) = elt else {
                        return Err(self.err("only names can be unpacked into"));
                    };
                    self.bind(n.id.as_str(), &item);
                    env.insert(n.id.to_string(), item);
                }
                Ok(())
            }
            _ => Err(self.err("only assignments to names are supported")),
        }
    }

    /// Records the first variable name of an op result.
    fn bind(&mut self, name: &str, v: &Val) {
        if let Val::Tensor(t) = v {
            if !self.created.contains(t) && !self.results.iter().any(|(_, r)| r == t) {
                self.results.push((name.to_string(), *t));
            }
        }
    }

    fn expr_stmt(&mut self, e: &'a Expr, env: &mut Env) -> Result<(), ImportError> {
        match e {
            // Docstrings and other bare constants.
            Expr::Constant(_) => Ok(()),
            Expr::Call(_) => match self.eval(e, env, "_")? {
                Val::Tensor(_) => {
                    Err(self.err("the result of this call is discarded; assign it to a name"))
                }
                _ => Ok(()),
            },
            _ => Err(self.err("expression statement has no effect")),
        }
    }

    fn lookup(&mut self, name: &str, env: &Env) -> Result<Val, ImportError> {
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
            let idx = self.b.input(
                name,
                crate::graph::TensorType::new(shape.clone(), DType::F32),
            );
            self.created.insert(idx);
            return Ok(Val::Tensor(idx));
        }
        Err(self.err(format!(
            "`{name}` is not defined; create it (e.g. ttnn.from_torch(torch.randn(64, 64))) or give its shape as an input shape"
        )))
    }

    /// Evaluates an expression; `hint` names the tensor it produces.
    fn eval(&mut self, e: &'a Expr, env: &mut Env, hint: &str) -> Result<Val, ImportError> {
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

    fn eval_all(
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

    fn attribute(&self, base: Val, attr: &str) -> Result<Val, ImportError> {
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

    fn binop(&mut self, op: ast::Operator, l: Val, r: Val, hint: &str) -> Result<Val, ImportError> {
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
    fn op(
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

    fn call(
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

    fn eval_args(
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

    /// `ttnn.from_torch(t, dtype=...)` and other transfers: the tensor itself. A creation call
    /// as the argument takes the transfer's dtype.
    fn pass_through(
        &mut self,
        c: &'a ast::ExprCall,
        env: &mut Env,
        hint: &str,
        func: &str,
    ) -> Result<Val, ImportError> {
        let dtype = match c
            .keywords
            .iter()
            .find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == "dtype"))
        {
            Some(k) => match self.eval(&k.value, env, hint)? {
                Val::DType(d) => Some(d),
                other => {
                    return Err(self.err(format!(
                        "{func}: dtype must be a dtype, got {}",
                        other.describe()
                    )))
                }
            },
            None => None,
        };
        let Some(first) = c.args.first() else {
            return Err(self.err(format!("{func}: a tensor argument is required")));
        };
        if let Expr::Call(inner) = first {
            if let Expr::Attribute(_) = &*inner.func {
                if let Val::Path(p) = self.eval(&inner.func, env, hint)? {
                    if is_creation(&p) {
                        return self.create(inner, env, hint, &p, dtype);
                    }
                }
            }
        }
        let v = self.eval(first, env, hint)?;
        match (v, dtype) {
            (Val::Tensor(t), Some(d))
                if self.b.ty(t).dtype != d && d.is_float() && self.b.ty(t).dtype.is_float() =>
            {
                self.op(hint, func, Op::Cast { to: d }, &[t])
            }
            (v @ Val::Tensor(_), _) => Ok(v),
            (v, _) => Err(self.err(format!("{func}: expected a tensor, got {}", v.describe()))),
        }
    }

    /// A tensor creation call: random data makes a graph input, ones/zeros/full a constant.
    fn create(
        &mut self,
        c: &'a ast::ExprCall,
        env: &mut Env,
        hint: &str,
        func: &str,
        dtype: Option<DType>,
    ) -> Result<Val, ImportError> {
        let args = self.eval_args(c, env, hint)?;
        let fill = func.ends_with(".full");
        let shape_args = if fill {
            &args.pos[..args.pos.len().min(1)]
        } else {
            &args.pos[..]
        };
        let dims: Option<Vec<i64>> = match shape_args {
            [one @ Val::Seq(_)] => one.as_ints(),
            [] => args
                .kw
                .get("size")
                .or_else(|| args.kw.get("shape"))
                .and_then(Val::as_ints),
            many => many.iter().map(Val::as_int).collect(),
        };
        let shape = dims
            .filter(|d| !d.is_empty() && d.iter().all(|&x| x >= 0))
            .map(|d| d.into_iter().map(|x| x as usize).collect::<Vec<usize>>())
            .ok_or_else(|| {
                self.err(format!(
                    "{func}: the shape must be integers, e.g. {func}(64, 64) or {func}((64, 64))"
                ))
            })?;
        let dtype = match (dtype, args.kw.get("dtype")) {
            (Some(d), _) => d,
            (None, Some(Val::DType(d))) => *d,
            _ => DType::F32,
        };
        let value = if func.ends_with(".ones") {
            Some(1.0)
        } else if func.ends_with(".zeros") {
            Some(0.0)
        } else if fill {
            match args.get(1, "fill_value") {
                Some(Val::Num(n)) => Some(*n as f32),
                _ => return Err(self.err(format!("{func}: a numeric fill value is required"))),
            }
        } else {
            None
        };
        let idx = match value {
            Some(v) => {
                let n = shape.iter().product();
                self.b
                    .constant(hint, TensorData::f32(shape, vec![v; n]), dtype)
            }
            None => {
                let shape = self.opts.input_shapes.get(hint).cloned().unwrap_or(shape);
                self.b
                    .input(hint, crate::graph::TensorType::new(shape, dtype))
            }
        };
        self.created.insert(idx);
        Ok(Val::Tensor(idx))
    }

    fn call_user(
        &mut self,
        f: &'a ast::StmtFunctionDef,
        args: Args,
        env: &Env,
    ) -> Result<Val, ImportError> {
        if self.depth >= MAX_CALL_DEPTH {
            return Err(self.err(format!(
                "calls nest deeper than {MAX_CALL_DEPTH} (recursion?)"
            )));
        }
        let params: Vec<&ast::ArgWithDefault> =
            f.args.posonlyargs.iter().chain(&f.args.args).collect();
        if args.pos.len() > params.len() {
            return Err(self.err(format!(
                "`{}` takes {} arguments, got {}",
                f.name,
                params.len(),
                args.pos.len()
            )));
        }
        let mut local = env.clone();
        let call_line = self.line;
        for (k, p) in params.iter().enumerate() {
            let name = p.def.arg.as_str();
            let v = match args.pos.get(k).or_else(|| args.kw.get(name)) {
                Some(v) => v.clone(),
                None => match &p.default {
                    Some(d) => self.eval(d, &mut local, name)?,
                    None => {
                        return Err(self.err(format!("`{}` is missing argument `{name}`", f.name)))
                    }
                },
            };
            local.insert(name.to_string(), v);
        }
        self.depth += 1;
        let result = self.exec_block(&f.body, &mut local, false);
        self.depth -= 1;
        self.line = call_line;
        Ok(result?.unwrap_or(Val::None))
    }

    /// Runs the program's only function with its parameters as graph inputs.
    fn call_lone_function(&mut self, env: &mut Env) -> Result<(), ImportError> {
        let Some((_, &f)) = self.funcs.iter().next() else {
            return Ok(());
        };
        self.set_line(f);
        let mut args = Args::default();
        for p in f.args.posonlyargs.iter().chain(&f.args.args) {
            let name = p.def.arg.as_str();
            let shape = self.opts.input_shapes.get(name).cloned().ok_or_else(|| {
                self.err(format!(
                    "parameter `{name}` of `{}` needs a shape: give it as an input shape",
                    f.name
                ))
            })?;
            let idx = self
                .b
                .input(name, crate::graph::TensorType::new(shape, DType::F32));
            self.created.insert(idx);
            args.pos.push(Val::Tensor(idx));
        }
        let out = self.call_user(f, args, env)?;
        self.bind(f.name.as_str(), &out);
        Ok(())
    }

    fn finish(self) -> Result<Graph, ImportError> {
        let mut names = BTreeSet::new();
        let mut outputs = Vec::new();
        for (name, idx) in &self.results {
            if self.consumed.contains(idx) {
                continue;
            }
            let mut unique = name.clone();
            let mut k = 1;
            while !names.insert(unique.clone()) {
                unique = format!("{name}_{k}");
                k += 1;
            }
            outputs.push((unique, *idx));
        }
        if outputs.is_empty() {
            return Err(ImportError::Malformed {
                file: self.file.to_string(),
                format: "TTNN Python",
                reason: "the program computes nothing: no ttnn op result is left unused".into(),
            });
        }
        Ok(self.b.finish(outputs))
    }
}

fn is_creation(path: &str) -> bool {
    matches!(
        path,
        "torch.randn"
            | "torch.rand"
            | "torch.empty"
            | "ttnn.rand"
            | "ttnn.randn"
            | "torch.ones"
            | "torch.zeros"
            | "torch.full"
            | "ttnn.ones"
            | "ttnn.zeros"
            | "ttnn.full"
    )
}

/// `if __name__ == "__main__":`
fn is_main_guard(test: &Expr) -> bool {
    let Expr::Compare(c) = test else { return false };
    let is_name = matches!(&*c.left, Expr::Name(n) if n.id.as_str() == "__name__");
    let is_main = matches!(c.comparators.as_slice(), [Expr::Constant(k)] if k.value == Constant::Str("__main__".into()));
    is_name && is_main && matches!(c.ops.as_slice(), [ast::CmpOp::Eq])
}

fn stmt_kind(s: &Stmt) -> &'static str {
    match s {
        Stmt::For(_) | Stmt::AsyncFor(_) => "a for loop",
        Stmt::While(_) => "a while loop",
        Stmt::If(_) => "an if statement",
        Stmt::With(_) | Stmt::AsyncWith(_) => "a with block",
        Stmt::ClassDef(_) => "a class",
        Stmt::AugAssign(_) => "an augmented assignment",
        Stmt::Try(_) | Stmt::TryStar(_) => "a try block",
        Stmt::Return(_) => "a return outside a function",
        _ => "this kind of statement",
    }
}
