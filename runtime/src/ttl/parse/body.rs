//! Conversion of Python statements and expressions (rustpython's AST) into the TT-Lang model.

use rustpython_parser::ast::{self as py, Ranged};

use super::source::{Source, EXPR_SUPPORTED, STMT_SUPPORTED};
use super::ParseError;
use crate::ttl::ast::{BinOp, BoolOp, CmpOp, Expr, IndexItem, Stmt, StmtKind, UnaryOp, WithItem};

/// Convert a block of statements. A block that is a lone `pass` is the empty block (Python
/// cannot write an empty block any other way, and the printer writes empty blocks so).
pub fn block(src: &Source, stmts: &[py::Stmt]) -> Result<Vec<Stmt>, ParseError> {
    if is_lone_pass(stmts) {
        return Ok(Vec::new());
    }
    stmts.iter().map(|s| stmt(src, s)).collect()
}

/// Whether a block is exactly `pass`.
pub fn is_lone_pass(stmts: &[py::Stmt]) -> bool {
    matches!(stmts, [py::Stmt::Pass(_)])
}

/// Convert one statement of a kernel or thread body.
pub fn stmt(src: &Source, s: &py::Stmt) -> Result<Stmt, ParseError> {
    let line = src.line(s.start());
    let kind = match s {
        py::Stmt::Assign(a) => {
            let [target] = a.targets.as_slice() else {
                return Err(src.unsupported(
                    s.start(),
                    "chained assignment `a = b = e`",
                    STMT_SUPPORTED,
                ));
            };
            StmtKind::Assign {
                targets: assign_targets(src, target)?,
                value: expr(src, &a.value)?,
            }
        }
        py::Stmt::Expr(e) => StmtKind::Expr(expr(src, &e.value)?),
        py::Stmt::With(w) => {
            let items = w
                .items
                .iter()
                .map(|item| {
                    let name = match item.optional_vars.as_deref() {
                        None => None,
                        Some(py::Expr::Name(n)) => Some(n.id.to_string()),
                        Some(other) => {
                            return Err(src.unsupported(
                                other.start(),
                                "a `with ... as` target that is not a single name",
                                "`with e as name, ...:`",
                            ))
                        }
                    };
                    Ok(WithItem {
                        context: expr(src, &item.context_expr)?,
                        name,
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            StmtKind::With {
                items,
                body: block(src, &w.body)?,
            }
        }
        py::Stmt::For(f) => for_loop(src, f)?,
        py::Stmt::If(i) => StmtKind::If {
            cond: expr(src, &i.test)?,
            then: block(src, &i.body)?,
            orelse: block(src, &i.orelse)?,
        },
        py::Stmt::Pass(_) => StmtKind::Pass,
        other => {
            return Err(src.unsupported(other.start(), stmt_name(other), STMT_SUPPORTED));
        }
    };
    Ok(Stmt { kind, line })
}

/// `for var in range(...)` with its bounds; `range(n)` starts at 0 and `range(a, b)` steps by 1.
fn for_loop(src: &Source, f: &py::StmtFor) -> Result<StmtKind, ParseError> {
    let py::Expr::Name(var) = f.target.as_ref() else {
        return Err(src.unsupported(
            f.target.start(),
            "a `for` target that is not a single name",
            "`for i in range(...):`",
        ));
    };
    if !f.orelse.is_empty() {
        return Err(src.unsupported(f.start(), "`for ... else`", "`for i in range(...):`"));
    }
    const RANGE_FORMS: &str =
        "`for i in range(stop)`, `range(start, stop)` and `range(start, stop, step)`";
    let args = match f.iter.as_ref() {
        py::Expr::Call(c)
            if matches!(c.func.as_ref(), py::Expr::Name(n) if n.id.as_str() == "range")
                && c.keywords.is_empty() =>
        {
            c.args.as_slice()
        }
        other => {
            return Err(src.unsupported(
                other.start(),
                "a `for` loop over something other than `range(...)`",
                RANGE_FORMS,
            ))
        }
    };
    let (start, stop, step) = match args {
        [stop] => (Expr::Int(0), expr(src, stop)?, Expr::Int(1)),
        [start, stop] => (expr(src, start)?, expr(src, stop)?, Expr::Int(1)),
        [start, stop, step] => (expr(src, start)?, expr(src, stop)?, expr(src, step)?),
        _ => {
            return Err(src.unsupported(
                f.iter.start(),
                "`range` with other than 1 to 3 positional arguments",
                RANGE_FORMS,
            ))
        }
    };
    Ok(StmtKind::For {
        var: var.id.to_string(),
        start,
        stop,
        step,
        body: block(src, &f.body)?,
    })
}

/// The names bound by an assignment: `a` or `a, b` (also `(a, b)` and `[a, b]`).
fn assign_targets(src: &Source, target: &py::Expr) -> Result<Vec<String>, ParseError> {
    const SUPPORTED: &str = "assignment to a name (`a = e`) or unpacking into two or more names \
                             (`a, b = e`)";
    match target {
        py::Expr::Name(n) => Ok(vec![n.id.to_string()]),
        py::Expr::Tuple(py::ExprTuple { elts, .. }) | py::Expr::List(py::ExprList { elts, .. })
            if elts.len() >= 2 =>
        {
            elts.iter()
                .map(|e| match e {
                    py::Expr::Name(n) => Ok(n.id.to_string()),
                    other => Err(src.unsupported(
                        other.start(),
                        "unpacking into something other than a name",
                        SUPPORTED,
                    )),
                })
                .collect()
        }
        py::Expr::Tuple(_) | py::Expr::List(_) => Err(src.unsupported(
            target.start(),
            "unpacking into fewer than two names",
            SUPPORTED,
        )),
        py::Expr::Attribute(_) => {
            Err(src.unsupported(target.start(), "assignment to an attribute", SUPPORTED))
        }
        py::Expr::Subscript(_) => Err(src.unsupported(
            target.start(),
            "assignment to a subscript (write tiles with `ttl.copy(blk, t[i, j])`)",
            SUPPORTED,
        )),
        other => Err(src.unsupported(other.start(), "this assignment target", SUPPORTED)),
    }
}

/// Convert an expression.
pub fn expr(src: &Source, e: &py::Expr) -> Result<Expr, ParseError> {
    Ok(match e {
        py::Expr::Constant(c) => constant(src, c, false)?,
        py::Expr::Name(n) => Expr::Name(n.id.to_string()),
        py::Expr::Attribute(a) => Expr::Attr(Box::new(expr(src, &a.value)?), a.attr.to_string()),
        py::Expr::Call(c) => call(src, c)?,
        py::Expr::Subscript(s) => {
            let items = match s.slice.as_ref() {
                py::Expr::Tuple(t) => t
                    .elts
                    .iter()
                    .map(|i| index_item(src, i))
                    .collect::<Result<_, _>>()?,
                single => vec![index_item(src, single)?],
            };
            Expr::Index(Box::new(expr(src, &s.value)?), items)
        }
        py::Expr::BinOp(b) => {
            let op = match b.op {
                py::Operator::Add => BinOp::Add,
                py::Operator::Sub => BinOp::Sub,
                py::Operator::Mult => BinOp::Mul,
                py::Operator::Div => BinOp::Div,
                py::Operator::FloorDiv => BinOp::FloorDiv,
                py::Operator::Mod => BinOp::Mod,
                py::Operator::MatMult => {
                    return Err(src.unsupported(
                        e.start(),
                        "the `@` operator",
                        "matrix products written as `ttl.math.matmul(a, b, c)`",
                    ))
                }
                py::Operator::Pow => {
                    return Err(src.unsupported(
                        e.start(),
                        "the `**` operator",
                        "`ttl.power(x, n)` or repeated multiplication",
                    ))
                }
                _ => return Err(src.unsupported(e.start(), "bitwise operators", EXPR_SUPPORTED)),
            };
            Expr::Bin(
                op,
                Box::new(expr(src, &b.left)?),
                Box::new(expr(src, &b.right)?),
            )
        }
        py::Expr::UnaryOp(u) => match u.op {
            py::UnaryOp::USub => match u.operand.as_ref() {
                // `-1.0` written with the minus touching the digits is a negative literal (so
                // that printing and re-parsing is the identity); `-(1.0)` or `- 1.0` negates.
                py::Expr::Constant(c)
                    if src.slice(u.start(), u.operand.start()) == "-"
                        && matches!(c.value, py::Constant::Int(_) | py::Constant::Float(_)) =>
                {
                    constant(src, c, true)?
                }
                operand => Expr::Unary(UnaryOp::Neg, Box::new(expr(src, operand)?)),
            },
            py::UnaryOp::Not => Expr::Unary(UnaryOp::Not, Box::new(expr(src, &u.operand)?)),
            py::UnaryOp::UAdd => {
                return Err(src.unsupported(e.start(), "unary `+`", EXPR_SUPPORTED))
            }
            py::UnaryOp::Invert => {
                return Err(src.unsupported(e.start(), "unary `~`", EXPR_SUPPORTED))
            }
        },
        py::Expr::Compare(c) => {
            let ([op], [right]) = (c.ops.as_slice(), c.comparators.as_slice()) else {
                return Err(src.unsupported(
                    e.start(),
                    "a chained comparison such as `a < b < c`",
                    "single comparisons joined with `and`",
                ));
            };
            let op = match op {
                py::CmpOp::Eq => CmpOp::Eq,
                py::CmpOp::NotEq => CmpOp::Ne,
                py::CmpOp::Lt => CmpOp::Lt,
                py::CmpOp::LtE => CmpOp::Le,
                py::CmpOp::Gt => CmpOp::Gt,
                py::CmpOp::GtE => CmpOp::Ge,
                _ => {
                    return Err(src.unsupported(
                        e.start(),
                        "`in`, `not in`, `is` and `is not`",
                        "`==`, `!=`, `<`, `<=`, `>`, `>=`",
                    ))
                }
            };
            Expr::Cmp(
                op,
                Box::new(expr(src, &c.left)?),
                Box::new(expr(src, right)?),
            )
        }
        py::Expr::BoolOp(b) => {
            let op = match b.op {
                py::BoolOp::And => BoolOp::And,
                py::BoolOp::Or => BoolOp::Or,
            };
            let mut values = b.values.iter();
            let first = match values.next() {
                Some(v) => expr(src, v)?,
                None => return Err(src.malformed(e.start(), "empty boolean operation")),
            };
            values.try_fold(first, |acc, v| {
                Ok::<_, ParseError>(Expr::Bool2(op, Box::new(acc), Box::new(expr(src, v)?)))
            })?
        }
        py::Expr::Tuple(t) => Expr::Tuple(list(src, &t.elts)?),
        py::Expr::List(l) => Expr::List(list(src, &l.elts)?),
        other => return Err(src.unsupported(other.start(), expr_name(other), EXPR_SUPPORTED)),
    })
}

fn list(src: &Source, elts: &[py::Expr]) -> Result<Vec<Expr>, ParseError> {
    elts.iter().map(|e| expr(src, e)).collect()
}

/// A call; `float("inf")`, `float("-inf")` and `float("nan")` are float literals (the printer
/// writes non-finite floats that way).
fn call(src: &Source, c: &py::ExprCall) -> Result<Expr, ParseError> {
    if let (py::Expr::Name(f), [py::Expr::Constant(arg)], true) =
        (c.func.as_ref(), c.args.as_slice(), c.keywords.is_empty())
    {
        if f.id.as_str() == "float" {
            if let py::Constant::Str(s) = &arg.value {
                match s.as_str() {
                    "inf" => return Ok(Expr::Float(f64::INFINITY)),
                    "-inf" => return Ok(Expr::Float(f64::NEG_INFINITY)),
                    "nan" => return Ok(Expr::Float(f64::NAN)),
                    _ => {}
                }
            }
        }
    }
    let mut args = Vec::with_capacity(c.args.len());
    for a in &c.args {
        if let py::Expr::Starred(_) = a {
            return Err(src.unsupported(a.start(), "`*args` in a call", EXPR_SUPPORTED));
        }
        args.push(expr(src, a)?);
    }
    let mut kwargs = Vec::with_capacity(c.keywords.len());
    for k in &c.keywords {
        let Some(name) = &k.arg else {
            return Err(src.unsupported(k.value.start(), "`**kwargs` in a call", EXPR_SUPPORTED));
        };
        kwargs.push((name.to_string(), expr(src, &k.value)?));
    }
    Ok(Expr::Call {
        func: Box::new(expr(src, &c.func)?),
        args,
        kwargs,
    })
}

fn index_item(src: &Source, e: &py::Expr) -> Result<IndexItem, ParseError> {
    match e {
        py::Expr::Slice(s) => {
            if s.step.is_some() {
                return Err(src.unsupported(
                    e.start(),
                    "a slice with a step `a:b:c`",
                    "indices `t[i, j]` and slices `t[a:b, c:d]`",
                ));
            }
            let bound = |b: &Option<Box<py::Expr>>| b.as_deref().map(|b| expr(src, b)).transpose();
            Ok(IndexItem::Slice(bound(&s.lower)?, bound(&s.upper)?))
        }
        other => Ok(IndexItem::At(expr(src, other)?)),
    }
}

/// A literal; `negate` when it is written with a touching minus sign (`-1`).
fn constant(src: &Source, c: &py::ExprConstant, negate: bool) -> Result<Expr, ParseError> {
    Ok(match &c.value {
        py::Constant::Int(v) => {
            let wide: Option<i128> = v.to_string().parse().ok();
            let value = wide
                .map(|w| if negate { -w } else { w })
                .and_then(|w| i64::try_from(w).ok());
            match value {
                Some(v) => Expr::Int(v),
                None => {
                    return Err(src.malformed(
                        c.start(),
                        format!("integer literal {v} does not fit in 64 bits"),
                    ))
                }
            }
        }
        py::Constant::Float(v) => Expr::Float(if negate { -v } else { *v }),
        py::Constant::Bool(b) => Expr::Bool(*b),
        py::Constant::Str(s) => Expr::Str(s.clone()),
        py::Constant::Ellipsis => {
            return Err(src.unsupported(
                c.start(),
                "`...` (a placeholder: the kernel is incomplete)",
                EXPR_SUPPORTED,
            ))
        }
        py::Constant::None => return Err(src.unsupported(c.start(), "`None`", EXPR_SUPPORTED)),
        py::Constant::Bytes(_) => {
            return Err(src.unsupported(c.start(), "bytes literals", EXPR_SUPPORTED))
        }
        py::Constant::Complex { .. } => {
            return Err(src.unsupported(c.start(), "complex literals", EXPR_SUPPORTED))
        }
        py::Constant::Tuple(_) => {
            return Err(src.unsupported(c.start(), "constant tuples", EXPR_SUPPORTED))
        }
    })
}

/// A readable name for a statement outside the subset.
pub fn stmt_name(s: &py::Stmt) -> &'static str {
    match s {
        py::Stmt::FunctionDef(_) => "a function definition here",
        py::Stmt::AsyncFunctionDef(_) => "`async def`",
        py::Stmt::ClassDef(_) => "a class definition",
        py::Stmt::Return(_) => "`return`",
        py::Stmt::Delete(_) => "`del`",
        py::Stmt::AugAssign(_) => "augmented assignment such as `a += b` (write `a = a + b`)",
        py::Stmt::AnnAssign(_) => "an annotated assignment",
        py::Stmt::AsyncFor(_) => "`async for`",
        py::Stmt::While(_) => "a `while` loop (use `for i in range(n):`)",
        py::Stmt::AsyncWith(_) => "`async with`",
        py::Stmt::Match(_) => "`match`",
        py::Stmt::Raise(_) => "`raise`",
        py::Stmt::Try(_) | py::Stmt::TryStar(_) => "`try`",
        py::Stmt::Assert(_) => "`assert`",
        py::Stmt::Import(_) | py::Stmt::ImportFrom(_) => "an import inside a kernel",
        py::Stmt::Global(_) => "`global`",
        py::Stmt::Nonlocal(_) => "`nonlocal`",
        py::Stmt::Break(_) => "`break`",
        py::Stmt::Continue(_) => "`continue`",
        py::Stmt::TypeAlias(_) => "a `type` alias",
        _ => "this statement",
    }
}

/// A readable name for an expression outside the subset.
fn expr_name(e: &py::Expr) -> &'static str {
    match e {
        py::Expr::Lambda(_) => "`lambda`",
        py::Expr::IfExp(_) => "a conditional expression `a if c else b`",
        py::Expr::Dict(_) | py::Expr::DictComp(_) => "a dict",
        py::Expr::Set(_) | py::Expr::SetComp(_) => "a set",
        py::Expr::ListComp(_) | py::Expr::GeneratorExp(_) => "a comprehension",
        py::Expr::NamedExpr(_) => "an assignment expression `:=`",
        py::Expr::Await(_) => "`await`",
        py::Expr::Yield(_) | py::Expr::YieldFrom(_) => "`yield`",
        py::Expr::JoinedStr(_) | py::Expr::FormattedValue(_) => "an f-string",
        py::Expr::Starred(_) => "a starred expression",
        py::Expr::Slice(_) => "a slice outside a subscript",
        _ => "this expression",
    }
}
