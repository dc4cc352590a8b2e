//! Resolves a TT-Lang AST once before it runs: names become slots (module constant, kernel-level
//! variable or thread local), `ttl.*` call paths become [`Builtin`]s with their arguments in
//! parameter order, and methods become [`Method`]s. Unknown names and ops, and blocking calls in
//! positions the executor cannot resume from, are rejected here with the line; uses of ops the
//! guide calls broken (`ttl.where`) are recorded as warnings.

use std::collections::BTreeMap;
use std::rc::Rc;

use super::block::{ReduceKind, UnaryFn};
use super::error::{fault, Fault, FaultKind};
use super::value::Value;
use crate::ttl::ast::{BinOp, BoolOp, CmpOp, Expr, IndexItem, Line, Stmt, StmtKind, UnaryOp};

/// Where a name lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Var {
    /// A module-level constant.
    Module(usize),
    /// A kernel parameter or kernel-level (setup) variable of the current core.
    Kernel(usize),
    /// A local of the running code.
    Local(usize),
}

/// TT-Lang functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Builtin {
    Core,
    MakeCb,
    Pipe,
    Copy,
    Unary(UnaryFn),
    Max,
    Min,
    Power,
    Transpose,
    Matmul,
    Reduce(ReduceKind),
    Broadcast,
    Where,
}

/// Methods of circular buffers, blocks and transfers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Method {
    Wait,
    Reserve,
    Pop,
    Push,
    Store,
}

/// A resolved expression.
#[derive(Clone, Debug)]
pub(crate) enum CExpr {
    Lit(Value),
    Var(Var, Rc<str>),
    Bin(BinOp, Box<CExpr>, Box<CExpr>),
    Unary(UnaryOp, Box<CExpr>),
    Cmp(CmpOp, Box<CExpr>, Box<CExpr>),
    Logic(BoolOp, Box<CExpr>, Box<CExpr>),
    Tuple(Vec<CExpr>),
    Index(Box<CExpr>, Vec<CIndex>),
    Call(Builtin, Vec<CExpr>),
    Method(Box<CExpr>, Method, Vec<CExpr>),
}

/// A resolved subscript.
#[derive(Clone, Debug)]
pub(crate) enum CIndex {
    At(CExpr),
    Slice(Option<CExpr>, Option<CExpr>),
}

/// A resolved statement.
#[derive(Clone, Debug)]
pub(crate) struct CStmt {
    pub kind: CStmtKind,
    pub line: Line,
    /// The statement issues a `ttl.copy` (a shared-resource access the scheduler orders by time).
    pub sync: bool,
}

/// A resolved `with` statement.
#[derive(Clone, Debug)]
pub(crate) struct CWith {
    /// Context expressions and the local slot each binds.
    pub items: Vec<(CExpr, Option<usize>)>,
    pub body: Vec<CStmt>,
}

/// Resolved statement forms.
#[derive(Clone, Debug)]
pub(crate) enum CStmtKind {
    Assign {
        targets: Vec<usize>,
        value: CExpr,
    },
    Expr(CExpr),
    With(CWith),
    For {
        var: usize,
        start: CExpr,
        stop: CExpr,
        step: CExpr,
        body: Vec<CStmt>,
    },
    If {
        cond: CExpr,
        then: Vec<CStmt>,
        orelse: Vec<CStmt>,
    },
    Pass,
}

/// A compiled body with its local slots.
#[derive(Clone, Debug)]
pub(crate) struct CBody {
    pub stmts: Vec<CStmt>,
    /// Local names by slot.
    pub locals: Vec<String>,
    /// Constructs that run but deserve a warning, with their lines.
    pub warnings: Vec<(Line, String)>,
}

/// The guide calls `ttl.where` broken ("DO NOT USE - has simulator issues") without saying how.
/// Its meaning is clear (the TT-Lang specification: per element, `true_value` where the condition
/// is true, else `false_value`) and a plain select on blocks, so the runtime runs it and warns.
const WHERE_WARNING: &str = "`ttl.where` is called broken by the TT-Lang guide (\"has simulator \
     issues\"); the runtime runs it as an elementwise select (true_value where condition != 0, \
     else false_value), but real TT-Lang may not, so prefer arithmetic on blocks";

/// One builtin's signature: path, builtin, parameter names, defaults for trailing parameters.
struct Signature {
    builtin: Builtin,
    params: &'static [&'static str],
    defaults: Vec<(&'static str, Value)>,
}

fn signature(path: &str) -> Option<Signature> {
    let sig = |builtin, params| Signature {
        builtin,
        params,
        defaults: Vec::new(),
    };
    let s = match path {
        "ttl.core" => Signature {
            builtin: Builtin::Core,
            params: &["dims"],
            defaults: vec![("dims", Value::Int(2))],
        },
        "ttl.make_circular_buffer_like" => Signature {
            builtin: Builtin::MakeCb,
            params: &["tensor", "shape", "buffer_factor"],
            defaults: vec![("buffer_factor", Value::Int(2))],
        },
        "ttl.Pipe" => sig(Builtin::Pipe, &["src", "dst"]),
        "ttl.copy" => sig(Builtin::Copy, &["src", "dst"]),
        "ttl.math.max" => sig(Builtin::Max, &["a", "b"]),
        "ttl.math.min" => sig(Builtin::Min, &["a", "b"]),
        "ttl.power" => sig(Builtin::Power, &["x", "n"]),
        "ttl.transpose" => sig(Builtin::Transpose, &["x", "out"]),
        "ttl.math.matmul" => sig(Builtin::Matmul, &["a", "b", "c"]),
        "ttl.math.reduce_sum" => sig(
            Builtin::Reduce(ReduceKind::Sum),
            &["x", "scaler", "out", "dims"],
        ),
        "ttl.math.reduce_max" => sig(
            Builtin::Reduce(ReduceKind::Max),
            &["x", "scaler", "out", "dims"],
        ),
        "ttl.math.broadcast" => sig(Builtin::Broadcast, &["x", "out", "dims"]),
        // The guide's spelling and the TT-Lang specification's.
        "ttl.where" | "ttl.math.where" => {
            sig(Builtin::Where, &["condition", "true_value", "false_value"])
        }
        _ => {
            let f = path.strip_prefix("ttl.math.")?;
            sig(Builtin::Unary(UnaryFn::from_name(f)?), &["x"])
        }
    };
    Some(s)
}

/// The names visible from enclosing scopes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Outer {
    /// Kernel-level names (parameters and setup variables) by slot.
    pub kernel: BTreeMap<String, usize>,
    /// Module constants by slot.
    pub module: BTreeMap<String, usize>,
}

struct Compiler<'a> {
    locals: BTreeMap<String, usize>,
    names: Vec<String>,
    outer: &'a Outer,
    /// Line of the statement being compiled.
    line: Line,
    warnings: Vec<(Line, String)>,
}

/// Compiles a body whose assigned names are locals (in slots after `preset`, which are
/// pre-bound locals such as kernel parameters).
pub(crate) fn compile_body(
    stmts: &[Stmt],
    preset: &[String],
    outer: &Outer,
) -> Result<CBody, (Line, Fault)> {
    let mut c = Compiler {
        locals: BTreeMap::new(),
        names: Vec::new(),
        outer,
        line: 0,
        warnings: Vec::new(),
    };
    for p in preset {
        c.local(p);
    }
    c.collect(stmts);
    let stmts = c.stmts(stmts)?;
    Ok(CBody {
        stmts,
        locals: c.names,
        warnings: c.warnings,
    })
}

impl Compiler<'_> {
    fn local(&mut self, name: &str) -> usize {
        if let Some(&i) = self.locals.get(name) {
            return i;
        }
        let i = self.names.len();
        self.locals.insert(name.to_string(), i);
        self.names.push(name.to_string());
        i
    }

    /// Python scoping: every name assigned anywhere in the body is a local of the body.
    fn collect(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            match &s.kind {
                StmtKind::Assign { targets, .. } => targets.iter().for_each(|t| {
                    self.local(t);
                }),
                StmtKind::With { items, body } => {
                    for it in items {
                        if let Some(n) = &it.name {
                            self.local(n);
                        }
                    }
                    self.collect(body);
                }
                StmtKind::For { var, body, .. } => {
                    self.local(var);
                    self.collect(body);
                }
                StmtKind::If { then, orelse, .. } => {
                    self.collect(then);
                    self.collect(orelse);
                }
                StmtKind::Expr(_) | StmtKind::Pass => {}
            }
        }
    }

    fn stmts(&mut self, stmts: &[Stmt]) -> Result<Vec<CStmt>, (Line, Fault)> {
        stmts.iter().map(|s| self.stmt(s)).collect()
    }

    fn stmt(&mut self, s: &Stmt) -> Result<CStmt, (Line, Fault)> {
        let at = |f: Fault| (s.line, f);
        self.line = s.line;
        let mut sync = false;
        let kind = match &s.kind {
            StmtKind::Assign { targets, value } => {
                let value = self.expr(value, true).map_err(at)?;
                sync = matches!(value, CExpr::Call(Builtin::Copy, _));
                let targets = targets.iter().map(|t| self.locals[t.as_str()]).collect();
                CStmtKind::Assign { targets, value }
            }
            StmtKind::Expr(e) => {
                let e = self.expr(e, true).map_err(at)?;
                sync = matches!(e, CExpr::Call(Builtin::Copy, _));
                CStmtKind::Expr(e)
            }
            StmtKind::With { items, body } => {
                let mut citems = Vec::new();
                for it in items {
                    let e = self.expr(&it.context, true).map_err(at)?;
                    if !matches!(e, CExpr::Method(_, Method::Wait | Method::Reserve, _)) {
                        return Err(at(Fault::new(
                            FaultKind::Unsupported,
                            "a `with` item must be `cb.wait()` or `cb.reserve()`",
                        )));
                    }
                    citems.push((e, it.name.as_ref().map(|n| self.locals[n.as_str()])));
                }
                let body = self.stmts(body)?;
                CStmtKind::With(CWith {
                    items: citems,
                    body,
                })
            }
            StmtKind::For {
                var,
                start,
                stop,
                step,
                body,
            } => CStmtKind::For {
                var: self.locals[var.as_str()],
                start: self.expr(start, false).map_err(at)?,
                stop: self.expr(stop, false).map_err(at)?,
                step: self.expr(step, false).map_err(at)?,
                body: self.stmts(body)?,
            },
            StmtKind::If { cond, then, orelse } => CStmtKind::If {
                cond: self.expr(cond, false).map_err(at)?,
                then: self.stmts(then)?,
                orelse: self.stmts(orelse)?,
            },
            StmtKind::Pass => CStmtKind::Pass,
        };
        Ok(CStmt {
            kind,
            line: s.line,
            sync,
        })
    }

    fn name(&self, n: &str) -> Result<CExpr, Fault> {
        let var = if let Some(&i) = self.locals.get(n) {
            Var::Local(i)
        } else if let Some(&i) = self.outer.kernel.get(n) {
            Var::Kernel(i)
        } else if let Some(&i) = self.outer.module.get(n) {
            Var::Module(i)
        } else if n == "ttl" {
            return fault(
                FaultKind::Unsupported,
                "`ttl` can only be used to call its functions, e.g. `ttl.math.exp(x)`",
            );
        } else {
            return fault(
                FaultKind::Unsupported,
                format!("unknown name `{n}`: not a local, kernel parameter, kernel-level variable or module constant"),
            );
        };
        Ok(CExpr::Var(var, n.into()))
    }

    /// `top` is true where a blocking call (`wait`, `reserve`, `ttl.copy`) may appear: as the
    /// whole right-hand side, expression statement or `with` item.
    fn expr(&mut self, e: &Expr, top: bool) -> Result<CExpr, Fault> {
        let sub = |c: &mut Self, e: &Expr| c.expr(e, false).map(Box::new);
        Ok(match e {
            Expr::Int(i) => CExpr::Lit(Value::Int(*i)),
            Expr::Float(f) => CExpr::Lit(Value::Float(*f)),
            Expr::Bool(b) => CExpr::Lit(Value::Bool(*b)),
            Expr::Str(s) => CExpr::Lit(Value::Str(s.as_str().into())),
            Expr::Name(n) => self.name(n)?,
            Expr::Attr(_, a) => {
                return fault(
                    FaultKind::Unsupported,
                    format!(
                        "attribute `{}` is not supported outside a call",
                        e.dotted().unwrap_or_else(|| a.clone())
                    ),
                )
            }
            Expr::Bin(op, a, b) => CExpr::Bin(*op, sub(self, a)?, sub(self, b)?),
            Expr::Unary(op, a) => CExpr::Unary(*op, sub(self, a)?),
            Expr::Cmp(op, a, b) => CExpr::Cmp(*op, sub(self, a)?, sub(self, b)?),
            Expr::Bool2(op, a, b) => CExpr::Logic(*op, sub(self, a)?, sub(self, b)?),
            Expr::Tuple(xs) | Expr::List(xs) => CExpr::Tuple(
                xs.iter()
                    .map(|x| self.expr(x, false))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Index(base, items) => {
                let base = sub(self, base)?;
                let mut out = Vec::new();
                for it in items {
                    out.push(match it {
                        IndexItem::At(x) => CIndex::At(self.expr(x, false)?),
                        IndexItem::Slice(lo, hi) => CIndex::Slice(
                            lo.as_ref().map(|x| self.expr(x, false)).transpose()?,
                            hi.as_ref().map(|x| self.expr(x, false)).transpose()?,
                        ),
                    });
                }
                CExpr::Index(base, out)
            }
            Expr::Call { func, args, kwargs } => self.call(func, args, kwargs, top)?,
        })
    }

    fn call(
        &mut self,
        func: &Expr,
        args: &[Expr],
        kwargs: &[(String, Expr)],
        top: bool,
    ) -> Result<CExpr, Fault> {
        let path = func.dotted();
        if let Some(p) = path.as_deref().filter(|p| p.starts_with("ttl.")) {
            let sig = signature(p).ok_or_else(|| {
                Fault::new(
                    FaultKind::Unsupported,
                    format!("unknown TT-Lang function `{p}`"),
                )
            })?;
            if sig.builtin == Builtin::Copy && !top {
                return fault(
                    FaultKind::Unsupported,
                    "`ttl.copy` must be a statement of its own: `tx = ttl.copy(src, dst)`",
                );
            }
            if sig.builtin == Builtin::Where {
                self.warnings.push((self.line, WHERE_WARNING.into()));
            }
            let args = self.bind(p, &sig, args, kwargs)?;
            return Ok(CExpr::Call(sig.builtin, args));
        }
        let (recv, m) = match func {
            Expr::Attr(recv, m) => (recv, m.as_str()),
            _ => {
                return fault(
                    FaultKind::Unsupported,
                    format!(
                    "unknown function `{}`; only `ttl.*` functions and block methods are supported",
                    path.unwrap_or_else(|| "<expression>".into())
                ),
                )
            }
        };
        let method = match m {
            "wait" => Method::Wait,
            "reserve" => Method::Reserve,
            "pop" => Method::Pop,
            "push" => Method::Push,
            "store" => Method::Store,
            _ => {
                return fault(
                    FaultKind::Unsupported,
                    format!("unknown method `.{m}()`; supported: wait, reserve, pop, push, store"),
                )
            }
        };
        if matches!(method, Method::Wait | Method::Reserve) && !top {
            return fault(
                FaultKind::Unsupported,
                format!(
                    "`.{m}()` must be a statement of its own, a whole assignment or a `with` item"
                ),
            );
        }
        if !kwargs.is_empty() {
            return fault(
                FaultKind::Unsupported,
                format!("`.{m}()` takes no keyword arguments"),
            );
        }
        let want = usize::from(method == Method::Store);
        if args.len() != want {
            return fault(
                FaultKind::Type,
                format!("`.{m}()` takes {want} argument(s), {} given", args.len()),
            );
        }
        let recv = self.expr(recv, false)?;
        let args = args
            .iter()
            .map(|a| self.expr(a, false))
            .collect::<Result<_, _>>()?;
        Ok(CExpr::Method(Box::new(recv), method, args))
    }

    /// Orders positional and keyword arguments by the signature, filling defaults.
    fn bind(
        &mut self,
        path: &str,
        sig: &Signature,
        args: &[Expr],
        kwargs: &[(String, Expr)],
    ) -> Result<Vec<CExpr>, Fault> {
        if args.len() > sig.params.len() {
            return fault(
                FaultKind::Type,
                format!(
                    "`{path}` takes at most {} arguments ({}), {} given",
                    sig.params.len(),
                    sig.params.join(", "),
                    args.len()
                ),
            );
        }
        let mut slots: Vec<Option<CExpr>> = vec![None; sig.params.len()];
        for (i, a) in args.iter().enumerate() {
            slots[i] = Some(self.expr(a, false)?);
        }
        for (k, v) in kwargs {
            let i = sig.params.iter().position(|p| p == k).ok_or_else(|| {
                Fault::new(
                    FaultKind::Type,
                    format!(
                        "`{path}` has no argument `{k}`; its arguments are {}",
                        sig.params.join(", ")
                    ),
                )
            })?;
            if slots[i].is_some() {
                return fault(
                    FaultKind::Type,
                    format!("`{path}` got argument `{k}` twice"),
                );
            }
            slots[i] = Some(self.expr(v, false)?);
        }
        let mut out = Vec::new();
        for (i, s) in slots.into_iter().enumerate() {
            let p = sig.params[i];
            match s {
                Some(e) => out.push(e),
                None => match sig.defaults.iter().find(|(d, _)| *d == p) {
                    Some((_, v)) => out.push(CExpr::Lit(v.clone())),
                    None => {
                        return fault(
                            FaultKind::Type,
                            format!("`{path}` is missing argument `{p}`"),
                        )
                    }
                },
            }
        }
        Ok(out)
    }
}
