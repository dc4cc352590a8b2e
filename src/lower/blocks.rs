//! The block loop every thread of a kernel runs, and the tile coordinates of a block.

use ttfuse_runtime::ttl::ast::{BinOp, BoolOp, CmpOp, Expr, Stmt, StmtKind};

use super::emit::{add, assign, compare, for_range, if_else, if_less, int, mul, name};
use crate::plan::Partition;

/// The constant names a template uses for its block geometry.
#[derive(Clone, Copy, Debug)]
pub struct Names {
    /// Block rows in tiles (`BLOCK_ROWS`, `BLOCK_M`).
    pub block_rows: &'static str,
    /// Block columns in tiles (`BLOCK_COLS`, `BLOCK_N`).
    pub block_cols: &'static str,
    /// Column blocks (`COL_BLOCKS`, `N_BLOCKS`).
    pub col_blocks: &'static str,
    /// Rows per batch in tiles, folded into the row coordinate (`M_TILES`), if any.
    pub batch_rows: Option<&'static str>,
}

/// The constants the loop and the coordinates refer to, as kernel-level assignments.
pub fn constants(p: &Partition, names: &Names, batch_rows: usize) -> Vec<Stmt> {
    let mut out = vec![
        assign(names.block_rows, int(p.block.0)),
        assign(names.block_cols, int(p.block.1)),
    ];
    if p.row_blocks > 1 && p.col_blocks > 1 {
        out.push(assign(names.col_blocks, int(p.col_blocks)));
    }
    if p.batches > 1 {
        out.push(assign("BLOCKS_PER_BATCH", int(p.row_blocks * p.col_blocks)));
        if let Some(n) = names.batch_rows {
            out.push(assign(n, int(batch_rows)));
        }
    }
    if let Some(w) = p.wide {
        out.push(assign("WIDE_TILES", int(w)));
    }
    // Where the last block row (column) would start, and how far back it starts instead
    // ([`Partition::overlap`]).
    let (over_rows, over_cols) = p.overlap;
    if over_rows > 0 {
        out.push(assign("LAST_ROW", int((p.row_blocks - 1) * p.block.0)));
        out.push(assign("ROW_OVERLAP", int(over_rows)));
    }
    if over_cols > 0 {
        out.push(assign("LAST_COL", int((p.col_blocks - 1) * p.block.1)));
        out.push(assign("COL_OVERLAP", int(over_cols)));
    }
    out.push(assign("TOTAL_BLOCKS", int(p.blocks)));
    if p.cores_used > 1 {
        out.push(assign("BLOCKS_PER_CORE", int(p.blocks_per_core)));
        if p.grid.1 > 1 || p.multicast || p.segments.is_some() {
            out.push(assign("GRID_X", int(p.grid.0 as usize)));
        }
        if let Some(s) = p.segments {
            out.push(assign("SEGMENTS", int(s)));
        }
        if p.pair_cores.is_none() && (p.segments.is_some() || has_idle_cores(p)) {
            out.push(assign("CORES", int(p.cores_used)));
        }
        if let Some(cores) = p.pair_cores {
            out.push(assign("CORES", int(cores)));
            out.push(assign("PAIRS", int(p.row_blocks / 2)));
            out.push(assign("UNITS", int(p.batches * p.row_blocks / 2)));
        } else if p.multicast {
            out.push(assign("GRID_Y", int(p.grid.1 as usize)));
            if p.k_split > 1 {
                out.push(assign("K_SPLIT", int(p.k_split)));
            }
            if p.batches > 1 {
                out.push(assign("GROUP_ROWS", int(p.group_rows())));
            }
        }
    }
    out
}

/// Whether some cores of the kernel's grid get no block: the blocks (or the pairs of row
/// blocks, [`Partition::pairs_over_cores`]) fill the grid's last row only in part.
pub fn has_idle_cores(p: &Partition) -> bool {
    let grid = (p.grid.0 * p.grid.1) as usize;
    match p.pair_cores {
        Some(cores) => grid > cores,
        None => !p.multicast && p.cores_used > 1 && grid > p.cores_used,
    }
}

/// `stmts` (a thread's whole body) on the cores that get a block, the first `CORES` of the
/// grid in row order, when some get none ([`has_idle_cores`]); `stmts` as they are otherwise.
/// A core without blocks then neither reads nor waits on the buffers a thread fills once per
/// core (constants, row vectors), which it would otherwise fill and release unread.
pub fn on_busy_cores(p: &Partition, stmts: Vec<Stmt>) -> Vec<Stmt> {
    if !has_idle_cores(p) {
        return stmts;
    }
    let core = add(mul(name("core_y"), name("GRID_X")), name("core_x"));
    vec![
        this_core(),
        if_less(core, name("CORES"), without_core_binding(stmts)),
    ]
}

/// `stmts` without the block loop's own `core_x, core_y = ttl.core(dims=2)`, at their top level
/// or inside the `with` blocks that hold once-per-core buffers around the loop: a guard around
/// them (the busy cores', a split K's part) has bound both names already.
pub fn without_core_binding(stmts: Vec<Stmt>) -> Vec<Stmt> {
    let binding = this_core();
    stmts
        .into_iter()
        .filter(|s| s.kind != binding.kind)
        .map(|s| match s.kind {
            StmtKind::With { items, body } => Stmt {
                kind: StmtKind::With {
                    items,
                    body: without_core_binding(body),
                },
                line: s.line,
            },
            _ => s,
        })
        .collect()
}

/// `core_x, core_y = ttl.core(dims=2)`.
pub fn this_core() -> Stmt {
    Stmt::new(StmtKind::Assign {
        targets: vec!["core_x".into(), "core_y".into()],
        value: Expr::path("ttl.core").call_kw(vec![], vec![("dims", int(2))]),
    })
}

/// `for ...` over this core's blocks with `inner` as the body. When `uses_index` the body sees
/// `block`, the global block number.
pub fn block_loop(p: &Partition, uses_index: bool, inner: Vec<Stmt>) -> Vec<Stmt> {
    block_loop_after(p, uses_index, Vec::new(), inner)
}

/// [`block_loop`], with `before` run once per core before its blocks, where the core's
/// coordinates (`core_x`, `core_y`) are bound.
pub fn block_loop_after(
    p: &Partition,
    uses_index: bool,
    before: Vec<Stmt>,
    inner: Vec<Stmt>,
) -> Vec<Stmt> {
    if p.cores_used <= 1 && before.is_empty() {
        let var = if uses_index { "block" } else { "_" };
        return vec![for_range(var, name("TOTAL_BLOCKS"), inner)];
    }
    if !uses_index && !p.guarded && before.is_empty() {
        return vec![for_range("_", name("BLOCKS_PER_CORE"), inner)];
    }
    let mut out = vec![this_core()];
    out.extend(before);
    if p.pair_cores.is_some() {
        out.push(assign(
            "core",
            add(mul(name("core_y"), name("GRID_X")), name("core_x")),
        ));
        out.push(for_range("i", name("BLOCKS_PER_CORE"), pair_step(inner)));
        return out;
    }
    if p.multicast && p.batches > 1 {
        // Shared batches: the cores of a grid row take the same batch at step `i`, its row
        // blocks across the group's `GROUP_ROWS` grid rows.
        let floordiv = |a: Expr, b: Expr| Expr::bin(BinOp::FloorDiv, a, b);
        let group = floordiv(name("core_y"), name("GROUP_ROWS"));
        let batch = add(mul(group, name("BLOCKS_PER_CORE")), name("i"));
        let row_block = group_position(name("core_x"));
        let mut body = Vec::new();
        let row_block = if p.mirrored {
            body.push(assign("base", row_block));
            body.extend(row_block_stmts(p, "base", "rem_block"));
            name("rem_block")
        } else {
            row_block
        };
        let block = add(mul(batch, name("BLOCKS_PER_BATCH")), row_block);
        out.push(for_range("i", name("BLOCKS_PER_CORE"), {
            body.push(assign("block", block));
            body.extend(inner);
            body
        }));
        return out;
    }
    let core = if p.grid.1 > 1 {
        add(mul(name("core_y"), name("GRID_X")), name("core_x"))
    } else {
        name("core_x")
    };
    out.push(assign("core", core));
    // Segments take their blocks in rounds over the cores (round `i` on core `core` is block
    // `i * CORES + core`), so that the segments of a block row are on different cores at the
    // same step, and the cores past `CORES` take none; other kernels take consecutive blocks.
    let (block, guard) = match p.segments {
        Some(_) => (
            add(mul(name("i"), name("CORES")), name("core")),
            (name("core"), name("CORES")),
        ),
        None => (
            add(mul(name("core"), name("BLOCKS_PER_CORE")), name("i")),
            (name("block"), name("TOTAL_BLOCKS")),
        ),
    };
    let mut body = vec![assign("block", block)];
    if p.guarded {
        body.push(if_less(guard.0, guard.1, inner));
    } else {
        body.extend(inner);
    }
    out.push(for_range("i", name("BLOCKS_PER_CORE"), body));
    out
}

/// The body of step `i` of core `core`'s blocks with pairs over the cores
/// ([`Partition::pairs_over_cores`]): `inner` for the block of its pair, when it has one.
fn pair_step(inner: Vec<Stmt>) -> Vec<Stmt> {
    let floordiv = |a: Expr, b: Expr| Expr::bin(BinOp::FloorDiv, a, b);
    let mut body = pair_row_block("unit", "base", "rem_block");
    body.push(assign(
        "block",
        add(
            mul(
                floordiv(name("unit"), name("PAIRS")),
                name("BLOCKS_PER_BATCH"),
            ),
            name("rem_block"),
        ),
    ));
    body.extend(inner);
    let unit = pair_unit(name("core"));
    // A core past `CORES` (the last grid row's) takes none, though its `unit` may be another's.
    let busy = Expr::Bool2(
        BoolOp::And,
        Box::new(compare(CmpOp::Lt, name("core"), name("CORES"))),
        Box::new(compare(CmpOp::Lt, name("unit"), name("UNITS"))),
    );
    vec![assign("unit", unit), if_else(busy, body, vec![])]
}

/// Statements binding `out` to the row block of pair `unit` (a variable) at step `i` with
/// pairs over the cores ([`Partition::pairs_over_cores`]): the pair's first on even steps, its
/// mirror on odd ones; `base` is bound to the pair's place in its batch.
pub fn pair_row_block(unit: &str, base: &str, out: &str) -> Vec<Stmt> {
    let flip = Expr::bin(
        BinOp::Sub,
        Expr::bin(BinOp::Sub, name("BLOCKS_PER_BATCH"), int(1)),
        mul(int(2), name(base)),
    );
    vec![
        assign(base, Expr::bin(BinOp::Mod, name(unit), name("PAIRS"))),
        assign(
            out,
            add(
                name(base),
                mul(Expr::bin(BinOp::Mod, name("i"), int(2)), flip),
            ),
        ),
    ]
}

/// Block coordinates.
pub struct Coords {
    /// Statements computing them from `block`.
    pub stmts: Vec<Stmt>,
    /// The batch (0 when there is one).
    pub batch: Expr,
    /// The first tile row of the block (including the batch offset when `Names::batch_rows`).
    pub row: Expr,
    /// The first tile column of the block.
    pub col: Expr,
    /// The first tile column of the block's part of a chained product's result: its chunk's
    /// when the product's columns are split over cores ([`Partition::wide`]), else `col`.
    pub wide_col: Expr,
}

impl Coords {
    /// The block's first tile row within its batch (`row - batch * M_TILES`): where a batched
    /// kernel's block sits in a tensor holding one batch's rows.
    pub fn row_in_batch(&self) -> Expr {
        Expr::bin(
            BinOp::Sub,
            self.row.clone(),
            mul(self.batch.clone(), name("M_TILES")),
        )
    }
}

/// The position in its batch group, with shared batches, of the core in grid column `x` of
/// this grid row: `core_y % GROUP_ROWS * GRID_X + x`.
pub fn group_position(x: Expr) -> Expr {
    add(
        mul(
            Expr::bin(BinOp::Mod, name("core_y"), name("GROUP_ROWS")),
            name("GRID_X"),
        ),
        x,
    )
}

/// Statements binding `out` to the row block that the core at position `base` (a variable) of
/// its batch group takes at step `i` ([`Partition::row_block_at`]): with mirrored odd steps
/// `base + i % 2 * (BLOCKS_PER_BATCH - 1 - 2 * base)`, and on the last three steps balanced by
/// class ([`Partition::class_steps`]) the block of the same place in the step's class.
pub fn row_block_stmts(p: &Partition, base: &str, out: &str) -> Vec<Stmt> {
    let flip = Expr::bin(
        BinOp::Sub,
        Expr::bin(BinOp::Sub, name("BLOCKS_PER_BATCH"), int(1)),
        mul(int(2), name(base)),
    );
    let mirrored = add(
        name(base),
        mul(Expr::bin(BinOp::Mod, name("i"), int(2)), flip),
    );
    let Some(cs) = p.class_steps else {
        return vec![assign(out, mirrored)];
    };
    let class = format!("{out}_class");
    let step = |t: usize| compare(CmpOp::Eq, name("i"), int(cs.from + t));
    let (k, m) = cs.third();
    let second = Expr::bin(
        BinOp::Mod,
        add(name(&class), int(cs.classes / 2)),
        int(cs.classes),
    );
    let third = Expr::bin(
        BinOp::Mod,
        Expr::bin(BinOp::Sub, int(k), mul(int(2), name(&class))),
        int(m),
    );
    let rows = int(cs.rows);
    let by_class = vec![
        assign(&class, Expr::bin(BinOp::FloorDiv, name(base), rows.clone())),
        if_else(step(1), vec![assign(&class, second)], vec![]),
        if_else(step(2), vec![assign(&class, third)], vec![]),
        assign(
            out,
            add(
                mul(name(&class), rows.clone()),
                Expr::bin(BinOp::Mod, name(base), rows),
            ),
        ),
    ];
    // With three steps in all, every step is one of the three.
    if cs.from == 0 {
        return by_class;
    }
    vec![
        assign(out, mirrored),
        if_else(
            compare(CmpOp::Ge, name("i"), int(cs.from)),
            by_class,
            vec![],
        ),
    ]
}

/// The coordinates of block `block`.
pub fn coords(p: &Partition, names: &Names) -> Coords {
    coords_of(p, names, name("block"), "")
}

/// The coordinates of block `block` (an expression), bound to names ending in `suffix`
/// (`row{suffix}`, `col{suffix}`, ...).
pub fn coords_of(p: &Partition, names: &Names, block: Expr, suffix: &str) -> Coords {
    let var = |v: &str| format!("{v}{suffix}");
    let mut stmts = Vec::new();
    let floordiv = |a: Expr, b: Expr| Expr::bin(BinOp::FloorDiv, a, b);
    let modulo = |a: Expr, b: Expr| Expr::bin(BinOp::Mod, a, b);
    let (batch, rem) = if p.batches > 1 {
        stmts.push(assign(
            &var("batch"),
            floordiv(block.clone(), name("BLOCKS_PER_BATCH")),
        ));
        stmts.push(assign(
            &var("rem"),
            modulo(block.clone(), name("BLOCKS_PER_BATCH")),
        ));
        (name(&var("batch")), name(&var("rem")))
    } else {
        (int(0), block)
    };
    let row_in_batch = match (p.row_blocks > 1, p.col_blocks > 1) {
        (false, _) => int(0),
        (true, false) => mul(rem.clone(), name(names.block_rows)),
        (true, true) => mul(
            floordiv(rem.clone(), name(names.col_blocks)),
            name(names.block_rows),
        ),
    };
    // The block's column index times its width: the block's own, or with the product's
    // columns split, its chunk's (the rest of the block spans whole rows from column 0).
    let width = match p.wide {
        Some(_) => name("WIDE_TILES"),
        None => name(names.block_cols),
    };
    let col_at = match (p.row_blocks > 1, p.col_blocks > 1) {
        (_, false) => int(0),
        (false, true) => mul(rem.clone(), width),
        (true, true) => mul(modulo(rem, name(names.col_blocks)), width),
    };
    let row = match names.batch_rows {
        Some(n) if p.batches > 1 => add(mul(batch.clone(), name(n)), row_in_batch),
        _ => row_in_batch,
    };
    let row = bind(&mut stmts, &var("row"), row);
    let row = shift_last_block(&mut stmts, &var("row"), row, p.overlap.0, "ROW");
    let (col, wide_col) = match p.wide {
        Some(_) => (int(0), bind(&mut stmts, &var("wide_col"), col_at)),
        None => {
            let col = bind(&mut stmts, &var("col"), col_at);
            let col = shift_last_block(&mut stmts, &var("col"), col, p.overlap.1, "COL");
            (col.clone(), col)
        }
    };
    Coords {
        stmts,
        batch,
        row,
        col,
        wide_col,
    }
}

/// With the last block row or column (`axis`, `ROW` or `COL`) overlapping the one before by
/// `overlap` tiles ([`Partition::overlap`]), the coordinate `e` in variable `var`, moved back
/// by the overlap for the last block: `var - var // LAST_{axis} * {axis}_OVERLAP`, without a
/// branch (`e` is a multiple of the block size, so the quotient is 1 for the last block and 0
/// before it); `e` as it is without an overlap.
fn shift_last_block(stmts: &mut Vec<Stmt>, var: &str, e: Expr, overlap: usize, axis: &str) -> Expr {
    if overlap == 0 {
        return e;
    }
    if e != name(var) {
        stmts.push(assign(var, e));
    }
    stmts.push(assign(var, last_block_shifted(name(var), axis)));
    name(var)
}

/// `e`, a block's first row or column (`axis`, `ROW` or `COL`), moved back by the overlap
/// for the last block ([`Partition::overlap`]): `e - e // LAST_{axis} * {axis}_OVERLAP`.
pub fn last_block_shifted(e: Expr, axis: &str) -> Expr {
    let last = Expr::bin(BinOp::FloorDiv, e.clone(), name(&format!("LAST_{axis}")));
    Expr::bin(BinOp::Sub, e, mul(last, name(&format!("{axis}_OVERLAP"))))
}

/// The pair that core `core` (an expression) takes at step `i` with pairs over the cores
/// ([`Partition::pairs_over_cores`]): `i // 2 * CORES + core`, a pair's two row blocks on
/// consecutive steps.
pub fn pair_unit(core: Expr) -> Expr {
    add(
        mul(Expr::bin(BinOp::FloorDiv, name("i"), int(2)), name("CORES")),
        core,
    )
}

/// Assigns a non-trivial expression to `var` and returns the name; literals stay inline.
fn bind(stmts: &mut Vec<Stmt>, var: &str, e: Expr) -> Expr {
    match e {
        Expr::Int(_) | Expr::Name(_) => e,
        other => {
            stmts.push(assign(var, other));
            name(var)
        }
    }
}
