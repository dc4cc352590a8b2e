//! The TT-Lang parser: reads Python files written in the style of the TT-Lang guide into the
//! program model.
//!
//! Python's grammar is handled by `rustpython-parser`; this module maps its AST onto
//! [`crate::ttl::ast`]. At module level it keeps constant assignments (`COORDINATOR = 0`) and
//! `@ttl.kernel` functions, and ignores everything that is not kernel-related (docstrings,
//! imports, host code such as `ttnn = pytest.importorskip(...)` and test functions). Inside a
//! kernel it reads a docstring, setup statements and `@ttl.compute()` / `@ttl.datamovement()`
//! threads. Anything outside the subset is an error naming the file, the line, the construct
//! and what is supported.

mod body;
mod consts;
mod source;

use rustpython_parser::ast::{self as py, Ranged};
use rustpython_parser::Mode;

use crate::ttl::ast::{Kernel, Line, Module, StmtKind, Thread, ThreadKind};
use consts::Constants;
use source::Source;

/// Why a TT-Lang file could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The file is not valid Python.
    #[error("{file}:{line}: Python syntax error: {message}")]
    Syntax {
        /// The file name.
        file: String,
        /// 1-based line of the error.
        line: Line,
        /// The Python parser's description.
        message: String,
    },
    /// Valid Python that is outside the TT-Lang subset.
    #[error(
        "{file}:{line}: {construct} is not supported in TT-Lang kernels; supported: {supported}"
    )]
    Unsupported {
        /// The file name.
        file: String,
        /// 1-based line of the construct.
        line: Line,
        /// What was found.
        construct: String,
        /// What the subset offers instead.
        supported: String,
    },
    /// A kernel, thread or constant written in a way TT-Lang does not accept (a kernel without
    /// `grid`, a nested function without a thread decorator, a non-integer grid entry...).
    #[error("{file}:{line}: {message}")]
    Malformed {
        /// The file name.
        file: String,
        /// 1-based line of the problem.
        line: Line,
        /// What is wrong and how to write it.
        message: String,
    },
}

impl ParseError {
    /// The 1-based source line the error refers to.
    pub fn line(&self) -> Line {
        match self {
            ParseError::Syntax { line, .. }
            | ParseError::Unsupported { line, .. }
            | ParseError::Malformed { line, .. } => *line,
        }
    }
}

/// Parse a TT-Lang source file. `file` names it in error messages.
pub fn parse_module(src: &str, file: &str) -> Result<Module, ParseError> {
    let source = Source::new(file, src);
    let stmts = match rustpython_parser::parse(src, Mode::Module, file) {
        Ok(py::Mod::Module(m)) => m.body,
        Ok(_) => return Err(source.malformed(0.into(), "expected a module")),
        Err(e) => {
            return Err(ParseError::Syntax {
                file: file.to_string(),
                line: source.line(e.offset),
                message: e.error.to_string(),
            })
        }
    };
    let mut constants = Constants::default();
    let mut module = Module {
        constants: Vec::new(),
        kernels: Vec::new(),
    };
    for s in &stmts {
        match s {
            py::Stmt::FunctionDef(f) => match role(&source, &f.decorator_list)? {
                Role::Kernel => module.kernels.push(kernel(&source, f, &constants)?),
                Role::Thread(_) => {
                    return Err(source.malformed(
                        f.start(),
                        format!(
                            "thread function `{}` is outside a kernel; define it inside an \
                             @ttl.kernel(grid=(X, Y)) function",
                            f.name
                        ),
                    ))
                }
                Role::Plain => {}
            },
            py::Stmt::AsyncFunctionDef(f) if role(&source, &f.decorator_list)? != Role::Plain => {
                return Err(source.unsupported(f.start(), "`async def`", "`def`"))
            }
            py::Stmt::Assign(a) if is_constant_assign(a, &constants) => {
                let stmt = body::stmt(&source, s)?;
                if let StmtKind::Assign { targets, value } = &stmt.kind {
                    constants.define(targets, value);
                }
                module.constants.push(stmt);
            }
            _ => {}
        }
    }
    Ok(module)
}

/// A module-level assignment of names to a constant expression.
fn is_constant_assign(a: &py::StmtAssign, constants: &Constants) -> bool {
    let names_only = |t: &py::Expr| match t {
        py::Expr::Name(_) => true,
        py::Expr::Tuple(py::ExprTuple { elts, .. }) => {
            elts.len() >= 2 && elts.iter().all(|e| matches!(e, py::Expr::Name(_)))
        }
        _ => false,
    };
    matches!(a.targets.as_slice(), [t] if names_only(t)) && constants.is_constant(&a.value)
}

/// What a function's decorators make it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// `@ttl.kernel(...)`.
    Kernel,
    /// `@ttl.compute()` or `@ttl.datamovement()`.
    Thread(ThreadKind),
    /// No `ttl` decorator: host code.
    Plain,
}

const DECORATORS: &str = "`@ttl.kernel(grid=(X, Y))` on module-level functions, and \
                          `@ttl.compute()` / `@ttl.datamovement()` on functions nested in a kernel";

/// The role given by a decorator list; a `ttl` decorator must be the only decorator.
fn role(src: &Source, decorators: &[py::Expr]) -> Result<Role, ParseError> {
    let mut found = Role::Plain;
    for d in decorators {
        if let Some(bare) = bare_thread_or_kernel_decorator(d) {
            return Err(src.unsupported(
                d.start(),
                &format!("the decorator `@{bare}` without the `ttl.` prefix"),
                DECORATORS,
            ));
        }
        let Some(name) = ttl_decorator_name(d) else {
            continue;
        };
        let r = match name {
            "kernel" => Role::Kernel,
            "compute" => Role::Thread(ThreadKind::Compute),
            "datamovement" => Role::Thread(ThreadKind::DataMovement),
            other => {
                return Err(src.unsupported(
                    d.start(),
                    &format!("the decorator `@ttl.{other}`"),
                    DECORATORS,
                ))
            }
        };
        if decorators.len() > 1 {
            return Err(src.unsupported(
                d.start(),
                "other decorators next to a TT-Lang decorator",
                DECORATORS,
            ));
        }
        found = r;
    }
    Ok(found)
}

/// `kernel`, `compute` or `datamovement` written as a bare decorator name (as after
/// `from ttl import kernel`), which would otherwise be mistaken for host code and dropped.
fn bare_thread_or_kernel_decorator(d: &py::Expr) -> Option<&str> {
    let target = match d {
        py::Expr::Call(c) => c.func.as_ref(),
        other => other,
    };
    match target {
        py::Expr::Name(n) if matches!(n.id.as_str(), "kernel" | "compute" | "datamovement") => {
            Some(n.id.as_str())
        }
        _ => None,
    }
}

/// `x` for a decorator `@ttl.x` or `@ttl.x(...)`.
fn ttl_decorator_name(d: &py::Expr) -> Option<&str> {
    let target = match d {
        py::Expr::Call(c) => c.func.as_ref(),
        other => other,
    };
    match target {
        py::Expr::Attribute(a) if matches!(a.value.as_ref(), py::Expr::Name(n) if n.id.as_str() == "ttl") => {
            Some(a.attr.as_str())
        }
        _ => None,
    }
}

fn kernel(
    src: &Source,
    f: &py::StmtFunctionDef,
    constants: &Constants,
) -> Result<Kernel, ParseError> {
    let name = f.name.to_string();
    let grid = grid(src, f, constants)?;
    let params = params(src, f, &format!("kernel `{name}`"))?;
    let mut doc = None;
    let mut setup = Vec::new();
    let mut threads = Vec::new();
    let stmts = if body::is_lone_pass(&f.body) {
        &[][..]
    } else {
        &f.body[..]
    };
    for (i, s) in stmts.iter().enumerate() {
        match s {
            // A leading string literal is the docstring, unless written in parentheses: the
            // printer writes a leading string statement of a kernel without docstring that way.
            py::Stmt::Expr(e) if i == 0 && s.start() == e.value.start() => match e.value.as_ref() {
                py::Expr::Constant(py::ExprConstant {
                    value: py::Constant::Str(text),
                    ..
                }) => doc = Some(text.clone()),
                _ => setup.push(body::stmt(src, s)?),
            },
            py::Stmt::FunctionDef(t) => threads.push(thread(src, t, &name)?),
            _ => setup.push(body::stmt(src, s)?),
        }
    }
    Ok(Kernel {
        name,
        grid,
        params,
        doc,
        setup,
        threads,
        line: src.line(f.start()),
    })
}

/// The `grid=(X, Y)` of a kernel decorator, with module constants evaluated.
fn grid(
    src: &Source,
    f: &py::StmtFunctionDef,
    constants: &Constants,
) -> Result<(u32, u32), ParseError> {
    let usage = format!(
        "kernel `{}` needs its grid: write @ttl.kernel(grid=(X, Y)) with X, Y positive integers \
         (literals or module constants)",
        f.name
    );
    let Some(py::Expr::Call(call)) = f.decorator_list.first() else {
        return Err(src.malformed(f.start(), usage));
    };
    if !call.args.is_empty()
        || call
            .keywords
            .iter()
            .any(|k| k.arg.as_deref() != Some("grid"))
    {
        return Err(src.malformed(call.start(), format!("{usage}; no other arguments")));
    }
    let Some(value) = call.keywords.first().map(|k| &k.value) else {
        return Err(src.malformed(call.start(), usage));
    };
    let py::Expr::Tuple(t) = value else {
        return Err(src.malformed(value.start(), usage));
    };
    let [x, y] = t.elts.as_slice() else {
        return Err(src.malformed(value.start(), usage));
    };
    let extent = |e: &py::Expr| -> Result<u32, ParseError> {
        let v = constants.eval_int(&body::expr(src, e)?);
        match v.and_then(|v| u32::try_from(v).ok()).filter(|&v| v > 0) {
            Some(v) => Ok(v),
            None => Err(src.malformed(e.start(), usage.clone())),
        }
    };
    Ok((extent(x)?, extent(y)?))
}

/// The plain positional parameter names of a function.
fn params(src: &Source, f: &py::StmtFunctionDef, what: &str) -> Result<Vec<String>, ParseError> {
    let a = &f.args;
    let plain = a.posonlyargs.is_empty()
        && a.vararg.is_none()
        && a.kwonlyargs.is_empty()
        && a.kwarg.is_none()
        && a.args
            .iter()
            .all(|p| p.default.is_none() && p.def.annotation.is_none())
        && f.returns.is_none();
    if !plain {
        return Err(src.unsupported(
            f.start(),
            &format!("parameters of {what} other than plain names"),
            "`def name(a, b, c):` without defaults, annotations, `*args` or `**kwargs`",
        ));
    }
    Ok(a.args.iter().map(|p| p.def.arg.to_string()).collect())
}

fn thread(src: &Source, f: &py::StmtFunctionDef, kernel: &str) -> Result<Thread, ParseError> {
    let kind = match role(src, &f.decorator_list)? {
        Role::Thread(kind) => kind,
        Role::Kernel => {
            return Err(src.malformed(
                f.start(),
                format!(
                    "kernel `{}` is nested in kernel `{kernel}`; kernels are module-level",
                    f.name
                ),
            ))
        }
        Role::Plain => {
            return Err(src.malformed(
                f.start(),
                format!(
                    "function `{}` in kernel `{kernel}` has no thread decorator; mark it \
                     @ttl.compute() or @ttl.datamovement()",
                    f.name
                ),
            ))
        }
    };
    if !params(src, f, &format!("thread `{}`", f.name))?.is_empty() {
        return Err(src.malformed(
            f.start(),
            format!(
                "thread `{}` takes parameters; thread functions take none",
                f.name
            ),
        ));
    }
    Ok(Thread {
        kind,
        name: f.name.to_string(),
        body: body::block(src, &f.body)?,
        line: src.line(f.start()),
    })
}

#[cfg(test)]
mod tests;
