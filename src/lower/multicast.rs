//! Operands shared core to core ([`crate::plan::Partition::multicast`]): a K chunk of an
//! operand that a whole grid row (or column) needs is read from DRAM by one core of it, its
//! sender, and sent through a pipe to each of the others, which the timing model sees as one
//! NoC multicast. The senders take turns by chunk, so reading and sending are spread over the
//! row.

use ttfuse_runtime::ttl::ast::{BinOp, CmpOp, Expr, Stmt};

use super::emit::{
    add, assign, compare, copy, for_range, for_range_from, if_else, int, mul, name, pipe, reserve,
    with,
};

/// The grid axis along which the cores share a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Along {
    /// The cores of one grid row (`core_y` fixed) share it: A's block rows.
    Row,
    /// The cores of one grid column (`core_x` fixed) share it: B's block columns.
    Column,
}

impl Along {
    /// The coordinate that varies along the axis, and the grid's extent in it.
    fn names(self) -> (&'static str, &'static str) {
        match self {
            Along::Row => ("core_x", "GRID_X"),
            Along::Column => ("core_y", "GRID_Y"),
        }
    }

    /// The core at position `at` along the axis, on this core's row or column.
    fn core(self, at: Expr) -> (Expr, Expr) {
        match self {
            Along::Row => (at, name("core_y")),
            Along::Column => (name("core_x"), at),
        }
    }
}

/// Reads `src` into a reserved block of `cb` at step `turn` (the K chunk, or the block;
/// `None` when there is one): the step's sender reads it from DRAM and sends it to every
/// other core along `along`; the others receive it from the sender's pipe.
pub fn shared_read(cb: &str, src: Expr, along: Along, turn: Option<Expr>) -> Stmt {
    let (me, extent) = along.names();
    let sender = match turn {
        Some(turn) => Expr::bin(BinOp::Mod, turn, name(extent)),
        None => int(0),
    };
    let every_other = compare(CmpOp::Ne, name("peer"), name(me));
    send_along(
        cb,
        src,
        along,
        vec![assign("sender", sender)],
        (vec![], every_other),
    )
}

/// Reads `src` into a reserved block of `cb` at K chunk `turn` on a kernel with K split
/// ([`crate::plan::Partition::k_split`]), shared down the grid column within this core's part
/// of the grid, whose first row is `part_y0` and which is `GRID_Y` rows high: the chunk's
/// sender reads it from DRAM and sends it to the part's other cores of the column.
pub fn part_shared_read(cb: &str, src: Expr, turn: Expr) -> Stmt {
    let sender = add(name("part_y0"), Expr::bin(BinOp::Mod, turn, name("GRID_Y")));
    let every_other = compare(CmpOp::Ne, name("peer"), name("core_y"));
    let peers = (add(name("part_y0"), name("GRID_Y")), Some(name("part_y0")));
    let prelude = vec![assign("sender", sender)];
    send_to(
        cb,
        src,
        Along::Column,
        prelude,
        (vec![], every_other),
        peers,
    )
}

/// Reads `src` into a reserved block of `cb`, after `prelude` (which, or the code before,
/// binds `sender`): the core `sender` along `along` reads it from DRAM and sends it to each
/// `peer` for which `takes` holds (after `per_peer`, which may bind names `takes` reads); the
/// others receive it from the sender's pipe.
pub fn send_along(
    cb: &str,
    src: Expr,
    along: Along,
    prelude: Vec<Stmt>,
    peer_sends: (Vec<Stmt>, Expr),
) -> Stmt {
    let extent = name(along.names().1);
    send_to(cb, src, along, prelude, peer_sends, (extent, None))
}

/// [`send_along`] with the peers at positions `first..end` along `along` (`(end, first)`,
/// from 0 when `first` is `None`).
fn send_to(
    cb: &str,
    src: Expr,
    along: Along,
    prelude: Vec<Stmt>,
    (per_peer, takes): (Vec<Stmt>, Expr),
    (end, first): (Expr, Option<Expr>),
) -> Stmt {
    let me = along.names().0;
    let send = if_else(
        takes,
        copy(
            name("blk"),
            pipe(along.core(name(me)), along.core(name("peer"))),
        ),
        vec![],
    );
    let mut peer_body = per_peer;
    peer_body.push(send);
    let mut read = copy(src, name("blk"));
    read.push(match first {
        Some(first) => for_range_from("peer", first, end, peer_body),
        None => for_range("peer", end, peer_body),
    });
    let receive = copy(
        pipe(along.core(name("sender")), along.core(name(me))),
        name("blk"),
    );
    let mut body = prelude;
    body.push(if_else(
        compare(CmpOp::Eq, name(me), name("sender")),
        read,
        receive,
    ));
    with(vec![(reserve(cb), "blk".into())], body)
}

/// Reads `src` into a reserved block of `cb` for the cores of a grid column that take the
/// same row block in a shared-batches layout ([`crate::plan::Partition::share_batches`]), one
/// in each group of `GROUP_ROWS` grid rows: the first group's core reads it from DRAM and sends
/// it down the column to the others, which receive it from that core's pipe.
pub fn group_shared_read(cb: &str, src: Expr) -> Stmt {
    let groups = Expr::bin(BinOp::FloorDiv, name("GRID_Y"), name("GROUP_ROWS"));
    let peer_y = add(
        name("core_y"),
        mul(add(name("g"), int(1)), name("GROUP_ROWS")),
    );
    let mut read = copy(src, name("blk"));
    read.push(for_range(
        "g",
        Expr::bin(BinOp::Sub, groups, int(1)),
        copy(
            name("blk"),
            pipe((name("core_x"), name("core_y")), (name("core_x"), peer_y)),
        ),
    ));
    let sender = Expr::bin(BinOp::Mod, name("core_y"), name("GROUP_ROWS"));
    let receive = copy(
        pipe((name("core_x"), sender), (name("core_x"), name("core_y"))),
        name("blk"),
    );
    with(
        vec![(reserve(cb), "blk".into())],
        vec![if_else(
            compare(CmpOp::Lt, name("core_y"), name("GROUP_ROWS")),
            read,
            receive,
        )],
    )
}
