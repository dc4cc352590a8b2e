//! The TT-Lang printer: renders the program model as a Python file in the style of the TT-Lang
//! guide (`import ttl`, module constants, `@ttl.kernel` functions with nested thread functions).
//!
//! The output is deterministic, valid Python, and reads back through
//! [`parse_module`](super::parse::parse_module) to the same model (up to source lines). Blocks
//! that are empty in the model print as `pass` (Python has no empty block), and a lone `pass`
//! reads back as the empty block; so a block holding only `StmtKind::Pass` is the one model that
//! does not survive the round trip unchanged (it comes back empty, which means the same).

mod expr;

use crate::ttl::ast::{Expr, Kernel, Module, Stmt, StmtKind, Thread, ThreadKind};

const INDENT: &str = "    ";

/// Render a whole module: `import ttl`, the module constants, then every kernel.
pub fn print_module(m: &Module) -> String {
    let mut out = String::from("import ttl\n");
    if !m.constants.is_empty() {
        out.push_str("\n\n");
        write_block(&mut out, &m.constants, 0);
    }
    for k in &m.kernels {
        out.push_str("\n\n");
        write_kernel(&mut out, k);
    }
    out
}

/// Render one kernel as a standalone file: the `import ttl` header and the kernel.
pub fn print_kernel(k: &Kernel) -> String {
    let mut out = String::from("import ttl\n\n\n");
    write_kernel(&mut out, k);
    out
}

/// Render an expression as Python source (minimal parentheses), e.g. for error messages.
pub fn print_expr(e: &Expr) -> String {
    expr::expr(e)
}

/// Render statements at the given indentation depth (4 spaces per level).
pub fn print_stmts(stmts: &[Stmt], depth: usize) -> String {
    let mut out = String::new();
    write_block(&mut out, stmts, depth);
    out
}

fn write_kernel(out: &mut String, k: &Kernel) {
    out.push_str(&format!("@ttl.kernel(grid=({}, {}))\n", k.grid.0, k.grid.1));
    out.push_str(&format!("def {}({}):\n", k.name, k.params.join(", ")));
    if let Some(doc) = &k.doc {
        indent(out, 1);
        out.push_str(&expr::docstring_literal(doc));
        out.push('\n');
    }
    for (i, s) in k.setup.iter().enumerate() {
        match &s.kind {
            // Not the docstring: parenthesized, it reads back as a statement.
            StmtKind::Expr(e @ Expr::Str(_)) if i == 0 && k.doc.is_none() => {
                indent(out, 1);
                out.push_str(&format!("({})\n", expr::expr(e)));
            }
            _ => write_stmt(out, s, 1),
        }
    }
    let mut first = k.doc.is_none() && k.setup.is_empty();
    for t in &k.threads {
        if !first {
            out.push('\n');
        }
        first = false;
        write_thread(out, t);
    }
    if k.doc.is_none() && k.setup.is_empty() && k.threads.is_empty() {
        indent(out, 1);
        out.push_str("pass\n");
    }
}

fn write_thread(out: &mut String, t: &Thread) {
    indent(out, 1);
    out.push_str(match t.kind {
        ThreadKind::Compute => "@ttl.compute()\n",
        ThreadKind::DataMovement => "@ttl.datamovement()\n",
    });
    indent(out, 1);
    out.push_str(&format!("def {}():\n", t.name));
    write_block(out, &t.body, 2);
}

/// Statements of a block; `pass` when there are none.
fn write_block(out: &mut String, stmts: &[Stmt], depth: usize) {
    if stmts.is_empty() {
        indent(out, depth);
        out.push_str("pass\n");
    }
    for s in stmts {
        write_stmt(out, s, depth);
    }
}

fn write_stmt(out: &mut String, s: &Stmt, depth: usize) {
    indent(out, depth);
    match &s.kind {
        StmtKind::Assign { targets, value } => {
            out.push_str(&targets.join(", "));
            out.push_str(" = ");
            out.push_str(&expr::bare_tuple(value));
            out.push('\n');
        }
        StmtKind::Expr(e) => {
            out.push_str(&expr::expr(e));
            out.push('\n');
        }
        StmtKind::With { items, body } => {
            out.push_str("with ");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match (&item.context, &item.name) {
                    // `with (a, b):` would be two items; `with ((a, b)):` is one tuple.
                    (c @ Expr::Tuple(_), None) => out.push_str(&format!("({})", expr::expr(c))),
                    (c, _) => out.push_str(&expr::expr(c)),
                }
                if let Some(name) = &item.name {
                    out.push_str(" as ");
                    out.push_str(name);
                }
            }
            out.push_str(":\n");
            write_block(out, body, depth + 1);
        }
        StmtKind::For {
            var,
            start,
            stop,
            step,
            body,
        } => {
            let zero = matches!(start, Expr::Int(0));
            let one = matches!(step, Expr::Int(1));
            let args = match (zero, one) {
                (true, true) => expr::expr(stop),
                (_, true) => format!("{}, {}", expr::expr(start), expr::expr(stop)),
                _ => format!(
                    "{}, {}, {}",
                    expr::expr(start),
                    expr::expr(stop),
                    expr::expr(step)
                ),
            };
            out.push_str(&format!("for {var} in range({args}):\n"));
            write_block(out, body, depth + 1);
        }
        StmtKind::If { cond, then, orelse } => {
            out.push_str(&format!("if {}:\n", expr::expr(cond)));
            write_block(out, then, depth + 1);
            write_else(out, orelse, depth);
        }
        StmtKind::Pass => out.push_str("pass\n"),
    }
}

/// The `elif` / `else` tail of an `if`: an `If` alone in `orelse` prints as `elif`.
fn write_else(out: &mut String, orelse: &[Stmt], depth: usize) {
    match orelse {
        [] => {}
        [Stmt {
            kind: StmtKind::If { cond, then, orelse },
            ..
        }] => {
            indent(out, depth);
            out.push_str(&format!("elif {}:\n", expr::expr(cond)));
            write_block(out, then, depth + 1);
            write_else(out, orelse, depth);
        }
        _ => {
            indent(out, depth);
            out.push_str("else:\n");
            write_block(out, orelse, depth + 1);
        }
    }
}

fn indent(out: &mut String, depth: usize) {
    for _ in 0..depth {
        out.push_str(INDENT);
    }
}
