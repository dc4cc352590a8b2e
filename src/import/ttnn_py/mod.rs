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

mod create;
mod eval;
pub mod ops;
pub mod value;

use std::collections::{BTreeMap, BTreeSet};

use petgraph::graph::NodeIndex;
use rustpython_parser::ast::{self, Constant, Expr, Ranged, Stmt};
use rustpython_parser::{parse, Mode};

use self::ops::TtnnOp;
use self::value::{Args, Val};
use super::builder::GraphBuilder;
use super::{ImportError, ImportOptions};
use crate::graph::{DType, Graph, TensorType};

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
            let idx = self.b.input(name, TensorType::new(shape, DType::F32));
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
