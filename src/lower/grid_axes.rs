//! A kernel laid out across the device's grid ([`crate::plan::Partition::across`]) on the
//! device's coordinates.
//!
//! The templates write every kernel on its own grid: block rows along `core_y`, block columns
//! along `core_x`, A's chunks multicast along a grid row and B's down a grid column. For a
//! kernel whose grid lies across the device's, the only places where the device's own
//! coordinates appear are swapped afterwards, and nothing else changes: the grid in the
//! kernel's decorator, the `ttl.core(dims=2)` bindings (the device's `x` is the kernel's
//! `core_y`) and the endpoints of every `ttl.Pipe`.

use ttfuse_runtime::ttl::ast::{Expr, IndexItem, Kernel, Stmt, StmtKind};

use super::emit::int;

/// Puts kernel `k`, written on its own grid, on the device's grid with the axes swapped.
pub fn swap_axes(k: &mut Kernel) {
    k.grid = (k.grid.1, k.grid.0);
    swap_in_stmts(&mut k.setup);
    for thread in &mut k.threads {
        swap_in_stmts(&mut thread.body);
    }
}

fn swap_in_stmts(stmts: &mut [Stmt]) {
    for s in stmts {
        match &mut s.kind {
            StmtKind::Assign { targets, value } => {
                if is_core_query(value) && targets.len() == 2 {
                    targets.swap(0, 1);
                }
                swap_in_expr(value);
            }
            StmtKind::Expr(e) => swap_in_expr(e),
            StmtKind::With { items, body } => {
                for item in items {
                    swap_in_expr(&mut item.context);
                }
                swap_in_stmts(body);
            }
            StmtKind::For {
                start,
                stop,
                step,
                body,
                ..
            } => {
                for e in [start, stop, step] {
                    swap_in_expr(e);
                }
                swap_in_stmts(body);
            }
            StmtKind::If { cond, then, orelse } => {
                swap_in_expr(cond);
                swap_in_stmts(then);
                swap_in_stmts(orelse);
            }
            StmtKind::Pass => {}
        }
    }
}

/// Swaps the coordinates of the `ttl.Pipe` endpoints in `e`.
fn swap_in_expr(e: &mut Expr) {
    match e {
        Expr::Call { func, args, kwargs } => {
            let pipe = **func == Expr::path("ttl.Pipe");
            for arg in args.iter_mut() {
                swap_in_expr(arg);
            }
            for (key, value) in kwargs.iter_mut() {
                match value {
                    Expr::Tuple(xy) if pipe && (key == "src" || key == "dst") && xy.len() == 2 => {
                        xy.swap(0, 1)
                    }
                    _ => swap_in_expr(value),
                }
            }
        }
        Expr::Attr(base, _) | Expr::Unary(_, base) => swap_in_expr(base),
        Expr::Index(base, items) => {
            swap_in_expr(base);
            for item in items {
                match item {
                    IndexItem::At(i) => swap_in_expr(i),
                    IndexItem::Slice(lo, hi) => {
                        lo.iter_mut().chain(hi.iter_mut()).for_each(swap_in_expr)
                    }
                }
            }
        }
        Expr::Bin(_, a, b) | Expr::Cmp(_, a, b) | Expr::Bool2(_, a, b) => {
            swap_in_expr(a);
            swap_in_expr(b);
        }
        Expr::Tuple(items) | Expr::List(items) => items.iter_mut().for_each(swap_in_expr),
        Expr::Int(_) | Expr::Float(_) | Expr::Bool(_) | Expr::Str(_) | Expr::Name(_) => {}
    }
}

/// Whether `e` is `ttl.core(dims=2)`.
fn is_core_query(e: &Expr) -> bool {
    let Expr::Call { func, kwargs, .. } = e else {
        return false;
    };
    **func == Expr::path("ttl.core") && kwargs.iter().any(|(k, v)| k == "dims" && *v == int(2))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lower::blocks::this_core;
    use crate::lower::emit::{copy, name, pipe};
    use ttfuse_runtime::ttl::ast::{Thread, ThreadKind};

    #[test]
    fn the_grid_the_core_binding_and_pipe_endpoints_swap_and_nothing_else() {
        let send = copy(
            name("blk"),
            pipe(
                (name("core_x"), name("core_y")),
                (name("peer"), name("core_y")),
            ),
        );
        let mut k = Kernel {
            name: "k".into(),
            grid: (8, 11),
            params: vec![],
            doc: None,
            setup: vec![],
            threads: vec![Thread {
                kind: ThreadKind::DataMovement,
                name: "dm_read".into(),
                body: [vec![this_core()], send].concat(),
                line: 0,
            }],
            line: 0,
        };
        swap_axes(&mut k);
        let text = ttfuse_runtime::ttl::print::print_kernel(&k);
        assert!(text.contains("@ttl.kernel(grid=(11, 8))"), "{text}");
        assert!(text.contains("core_y, core_x = ttl.core(dims=2)"), "{text}");
        assert!(
            text.contains("ttl.copy(blk, ttl.Pipe(src=(core_y, core_x), dst=(core_y, peer)))"),
            "{text}"
        );
    }
}
