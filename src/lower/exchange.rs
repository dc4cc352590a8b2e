//! The pipes through which the column segments of a block row ([`crate::plan::segments`])
//! exchange their partial row reductions: the reader receives every other segment's partial,
//! the writer sends its own to each of them, reduction by reduction. A segment's core is found
//! from its block, as the block loop deals blocks in rounds over the cores
//! (`i * CORES + core`, [`super::blocks::block_loop`]), so the segments of a block row may sit
//! on one grid row or on several.

use ttfuse_runtime::ttl::ast::{BinOp, CmpOp, Expr, Stmt};

use super::emit::{
    add, assign, compare, copy, for_range, if_else, name, pipe, reserve, wait, with,
};
use crate::plan::segments::Exchange;

/// The reader's statements for one block: every other segment's partial of each reduction,
/// received into the reduction's peers buffer.
pub fn receives(exchanged: &[Exchange]) -> Vec<Stmt> {
    exchanged
        .iter()
        .flat_map(|ex| {
            each_peer(vec![with(
                vec![(reserve(&ex.peers), "blk".into())],
                copy(pipe(peer_core(), this_core()), name("blk")),
            )])
        })
        .collect()
}

/// The writer's statements for one block: this segment's partial of each reduction, sent to
/// every other segment.
pub fn sends(exchanged: &[Exchange]) -> Vec<Stmt> {
    exchanged
        .iter()
        .map(|ex| {
            let sends = each_peer(copy(name("blk"), pipe(this_core(), peer_core())));
            with(vec![(wait(&ex.send), "blk".into())], sends)
        })
        .collect()
}

/// This core's grid coordinates.
fn this_core() -> (Expr, Expr) {
    (name("core_x"), name("core_y"))
}

/// The grid coordinates of the core of block `peer`.
fn peer_core() -> (Expr, Expr) {
    let core = Expr::bin(BinOp::Mod, name("peer"), name("CORES"));
    (
        Expr::bin(BinOp::Mod, core.clone(), name("GRID_X")),
        Expr::bin(BinOp::FloorDiv, core, name("GRID_X")),
    )
}

/// `stmts` for every other segment of this block's row (`peer` its block), in segment order.
fn each_peer(stmts: Vec<Stmt>) -> Vec<Stmt> {
    let first = Expr::bin(
        BinOp::Sub,
        name("block"),
        Expr::bin(BinOp::Mod, name("block"), name("SEGMENTS")),
    );
    vec![for_range(
        "j",
        name("SEGMENTS"),
        vec![
            assign("peer", add(first, name("j"))),
            if_else(
                compare(CmpOp::Ne, name("peer"), name("block")),
                stmts,
                vec![],
            ),
        ],
    )]
}
