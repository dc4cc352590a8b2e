//! The TT-Lang program model: a typed AST of the Python subset that TT-Lang kernels are written in.
//!
//! One model serves three parties: the optimizer's lowering builds it, the printer renders it as
//! a `.py` file in the style of the TT-Lang guide, and the parser reads such files back into it
//! (`parse(print(m)) == m`). The executor runs it. The AST is deliberately close to Python's own
//! (names, calls, attributes, `with`, `for`, `if`) so that hand-written kernels fit it as well as
//! emitted ones; the meaning of `ttl.*` calls is given by the executor, not by this module.

use serde::{Deserialize, Serialize};

/// A source position (1-based line) kept for error messages; `0` means "not from a file".
pub type Line = u32;

/// One TT-Lang source file: module-level constants followed by kernels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Module {
    /// Module-level assignments such as `ROWS_PER_CORE = 2`, in source order.
    pub constants: Vec<Stmt>,
    /// The `@ttl.kernel` functions, in source order.
    pub kernels: Vec<Kernel>,
}

/// A `@ttl.kernel(grid=(X, Y))` function.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Kernel {
    /// The function name, e.g. `fused_mlp_kernel`.
    pub name: String,
    /// The grid as written: `(x extent, y extent)`, i.e. (columns, rows) of cores. `ttl.core`
    /// returns `(x, y)` with `0 <= x < grid.0` and `0 <= y < grid.1`.
    pub grid: (u32, u32),
    /// Tensor parameters, in call order.
    pub params: Vec<String>,
    /// An optional docstring (printed as the first statement of the function).
    pub doc: Option<String>,
    /// Kernel-level statements other than thread definitions: constants, circular buffers,
    /// pipes, in source order.
    pub setup: Vec<Stmt>,
    /// The thread functions (one compute and two data-movement threads in well-formed kernels).
    pub threads: Vec<Thread>,
    /// Source line of the `def`.
    pub line: Line,
}

/// Which kind of thread a nested function is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ThreadKind {
    /// `@ttl.compute()`: math on tiles in L1.
    Compute,
    /// `@ttl.datamovement()`: copies between DRAM (or pipes) and circular buffers.
    DataMovement,
}

/// A thread function inside a kernel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    /// Compute or data movement.
    pub kind: ThreadKind,
    /// The function name, e.g. `dm_read`.
    pub name: String,
    /// The function body.
    pub body: Vec<Stmt>,
    /// Source line of the `def`.
    pub line: Line,
}

/// A statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stmt {
    /// What the statement does.
    pub kind: StmtKind,
    /// Source line (0 when built by the optimizer).
    pub line: Line,
}

/// The statement forms of the subset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum StmtKind {
    /// `a = e` or `a, b = e` (tuple unpacking of a call such as `ttl.core(dims=2)`).
    Assign {
        /// One name, or several for tuple unpacking.
        targets: Vec<String>,
        /// The right-hand side.
        value: Expr,
    },
    /// An expression evaluated for its effect: `tx.wait()`, `o.store(x)`, `cb.pop()`.
    Expr(Expr),
    /// `with e1 as a, e2 as b: body`. Items are entered left to right and exited right to left.
    With {
        /// The context managers and the names they bind.
        items: Vec<WithItem>,
        /// The block.
        body: Vec<Stmt>,
    },
    /// `for var in range(start, stop, step): body`.
    For {
        /// The loop variable (`_` allowed).
        var: String,
        /// `range` start (0 when written as `range(n)`).
        start: Expr,
        /// `range` stop.
        stop: Expr,
        /// `range` step (1 when not written).
        step: Expr,
        /// The loop body.
        body: Vec<Stmt>,
    },
    /// `if cond: then else: orelse`; `elif` is an `If` alone in `orelse`.
    If {
        /// The condition.
        cond: Expr,
        /// Taken when the condition holds.
        then: Vec<Stmt>,
        /// Taken otherwise (possibly empty).
        orelse: Vec<Stmt>,
    },
    /// `pass`.
    Pass,
}

/// One `expr as name` item of a `with` statement.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WithItem {
    /// The context manager expression, e.g. `x_cb.wait()`.
    pub context: Expr,
    /// The bound name, if any.
    pub name: Option<String>,
}

/// An expression.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Expr {
    /// An integer literal.
    Int(i64),
    /// A float literal (printed so that it parses back to the same value).
    Float(f64),
    /// `True` / `False`.
    Bool(bool),
    /// A string literal.
    Str(String),
    /// A name: a variable, parameter, constant or the module `ttl`.
    Name(String),
    /// `obj.attr`.
    Attr(Box<Expr>, String),
    /// `func(args..., key=value...)`.
    Call {
        /// The callee, e.g. `Attr(Attr(Name("ttl"), "math"), "exp")`.
        func: Box<Expr>,
        /// Positional arguments.
        args: Vec<Expr>,
        /// Keyword arguments in source order.
        kwargs: Vec<(String, Expr)>,
    },
    /// `base[i, j]` or `base[a:b, c:d]`: tile indexing of a tensor.
    Index(Box<Expr>, Vec<IndexItem>),
    /// A binary arithmetic operation.
    Bin(BinOp, Box<Expr>, Box<Expr>),
    /// A unary operation.
    Unary(UnaryOp, Box<Expr>),
    /// A comparison `a < b` (chains are not part of the subset).
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `a and b` / `a or b`.
    Bool2(BoolOp, Box<Expr>, Box<Expr>),
    /// `(a, b, ...)`.
    Tuple(Vec<Expr>),
    /// `[a, b, ...]`.
    List(Vec<Expr>),
}

/// One subscript position: a single index or a slice.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum IndexItem {
    /// `i`.
    At(Expr),
    /// `lo:hi` (either bound may be omitted).
    Slice(Option<Expr>, Option<Expr>),
}

/// Binary arithmetic operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `//`
    FloorDiv,
    /// `%`
    Mod,
}

/// Unary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `not x`
    Not,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Boolean connectives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BoolOp {
    /// `and`
    And,
    /// `or`
    Or,
}

impl Stmt {
    /// A statement with no source line, as the optimizer builds them.
    pub fn new(kind: StmtKind) -> Self {
        Stmt { kind, line: 0 }
    }
}

impl Expr {
    /// `name`.
    pub fn name(n: impl Into<String>) -> Self {
        Expr::Name(n.into())
    }

    /// A dotted path such as `ttl.math.exp`.
    pub fn path(dotted: &str) -> Self {
        let mut parts = dotted.split('.');
        let first = Expr::Name(parts.next().unwrap_or_default().to_string());
        parts.fold(first, |acc, p| Expr::Attr(Box::new(acc), p.to_string()))
    }

    /// `self.attr`.
    pub fn attr(self, a: impl Into<String>) -> Self {
        Expr::Attr(Box::new(self), a.into())
    }

    /// `self(args...)`.
    pub fn call(self, args: Vec<Expr>) -> Self {
        Expr::Call {
            func: Box::new(self),
            args,
            kwargs: Vec::new(),
        }
    }

    /// `self(args..., kw=...)`.
    pub fn call_kw(self, args: Vec<Expr>, kwargs: Vec<(&str, Expr)>) -> Self {
        Expr::Call {
            func: Box::new(self),
            args,
            kwargs: kwargs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }
    }

    /// `self.method(args...)`.
    pub fn method(self, m: &str, args: Vec<Expr>) -> Self {
        self.attr(m).call(args)
    }

    /// `self[items...]`.
    pub fn index(self, items: Vec<IndexItem>) -> Self {
        Expr::Index(Box::new(self), items)
    }

    /// `a op b`.
    pub fn bin(op: BinOp, a: Expr, b: Expr) -> Self {
        Expr::Bin(op, Box::new(a), Box::new(b))
    }

    /// The dotted path of a name/attribute chain (`ttl.math.exp`), if the expression is one.
    pub fn dotted(&self) -> Option<String> {
        match self {
            Expr::Name(n) => Some(n.clone()),
            Expr::Attr(base, a) => base.dotted().map(|b| format!("{b}.{a}")),
            _ => None,
        }
    }
}

impl Module {
    /// A copy with every source line set to 0, as the optimizer builds modules: parsed and
    /// built modules compare equal with it (`parse(print(m)).without_lines() == m`).
    pub fn without_lines(&self) -> Module {
        Module {
            constants: stmts_without_lines(&self.constants),
            kernels: self.kernels.iter().map(Kernel::without_lines).collect(),
        }
    }
}

impl Kernel {
    /// A copy with every source line (of the kernel, its threads and statements) set to 0.
    pub fn without_lines(&self) -> Kernel {
        Kernel {
            setup: stmts_without_lines(&self.setup),
            threads: self
                .threads
                .iter()
                .map(|t| Thread {
                    body: stmts_without_lines(&t.body),
                    line: 0,
                    ..t.clone()
                })
                .collect(),
            line: 0,
            ..self.clone()
        }
    }
}

fn stmts_without_lines(stmts: &[Stmt]) -> Vec<Stmt> {
    stmts
        .iter()
        .map(|s| {
            let kind = match &s.kind {
                StmtKind::With { items, body } => StmtKind::With {
                    items: items.clone(),
                    body: stmts_without_lines(body),
                },
                StmtKind::For {
                    var,
                    start,
                    stop,
                    step,
                    body,
                } => StmtKind::For {
                    var: var.clone(),
                    start: start.clone(),
                    stop: stop.clone(),
                    step: step.clone(),
                    body: stmts_without_lines(body),
                },
                StmtKind::If { cond, then, orelse } => StmtKind::If {
                    cond: cond.clone(),
                    then: stmts_without_lines(then),
                    orelse: stmts_without_lines(orelse),
                },
                other => other.clone(),
            };
            Stmt { kind, line: 0 }
        })
        .collect()
}
