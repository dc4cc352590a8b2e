//! The elementwise / row-wise kernel template: each core streams its blocks of the iteration
//! space through the compute body; row vectors and constants are read once.

use ttfuse_runtime::ttl::ast::{BinOp, CmpOp, Expr, IndexItem, Kernel, Stmt, Thread, ThreadKind};

use super::blocks::{block_loop, constants, coords, on_busy_cores, Coords, Names};
use super::compute::{compute_thread, Naming};
use super::emit::{
    add, assign, compare, for_range, if_else, if_less, index, int, make_cb, mul, name, read_into,
    span, write_from,
};
use super::multicast::group_shared_read;
use super::{exchange, grid_axes};
use crate::plan::body::{Body, LoadSource, MatrixRead, Value};
use crate::plan::concat::ConcatPart;
use crate::plan::heads::HeadWrite;
use crate::plan::layout::Class;
use crate::plan::schedule::Schedule;
use crate::plan::segments::kernel_exchanges;
use crate::plan::{Partition, PlannedKernel};

/// Block geometry names of body kernels.
pub const NAMES: Names = Names {
    block_rows: "BLOCK_ROWS",
    block_cols: "BLOCK_COLS",
    col_blocks: "COL_BLOCKS",
    batch_rows: None,
};

/// The kernel parameters of a body after `first` (the matmul operands): the tensors its loads
/// read (each once), then its outputs.
pub fn params(body: &Body, first: &[String]) -> Vec<String> {
    let mut out: Vec<String> = first.to_vec();
    for l in &body.loads {
        let read = match &l.source {
            LoadSource::Concat(parts) => parts.iter().map(|p| p.param.clone()).collect(),
            _ => vec![l.param.clone()],
        };
        for p in read {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out.extend(
        body.outputs
            .iter()
            .map(|&(_, v)| body.values[v].stem.clone()),
    );
    out
}

/// The subscript of a block of a value of class `class` at tile (`row`, `col`).
pub fn block_index(class: Class, row: Expr, col: Expr, names: &Names) -> Vec<IndexItem> {
    let rows = || span(row.clone(), name(names.block_rows));
    let cols = || span(col.clone(), name(names.block_cols));
    match class {
        Class::Full => vec![rows(), cols()],
        Class::Row => vec![span(int(0), int(1)), cols()],
        Class::Col => vec![rows(), span(int(0), int(1))],
        Class::Scalar => vec![IndexItem::At(int(0)), IndexItem::At(int(0))],
        Class::Wide(n) => vec![rows(), span(col, int(n))],
        Class::WideRow(n) => vec![span(int(0), int(1)), span(col, int(n))],
        Class::Matrix(k, n) => vec![span(int(0), int(k)), span(int(0), int(n))],
    }
}

/// The first tile column of a value's block: its chunk's (`wide_col`) for a value cut to a chunk
/// of a chained product's columns, the block's own (`col`) otherwise.
fn column_of<'e>(value: &Value, col: &'e Expr, wide_col: &'e Expr) -> &'e Expr {
    if value.chunked {
        wide_col
    } else {
        col
    }
}

/// The subscript of batch `batch`'s matrix of `(k, n)` tiles for a chained product, from
/// column `col` on (0 unless the product's columns are split), its rows `rows` (first and
/// count; all `k` of them, or a chunk of keys).
pub fn matrix_index(
    m: &MatrixRead,
    (k, n): (usize, usize),
    batch: &Expr,
    col: &Expr,
    (first, count): (Expr, Expr),
) -> Vec<IndexItem> {
    match (m.head, m.batched) {
        (Some(v), _) => vec![
            span(first, count),
            span(
                add(
                    add(int(v.col0), mul(batch.clone(), int(v.head_tiles))),
                    col.clone(),
                ),
                int(n),
            ),
        ],
        (None, true) => vec![
            span(add(mul(batch.clone(), int(k)), first), count),
            span(col.clone(), int(n)),
        ],
        (None, false) => vec![span(first, count), span(col.clone(), int(n))],
    }
}

/// Reads of the body's loads: the loop-invariant ones (to run before the loop) and the
/// per-block ones (inside it, at the block's coordinates `c`). `matrix_read` reads a block's
/// whole right operand of a chained product into its buffer (a plain [`read_into`], or a
/// read shared with other cores). A load the core keeps for all its blocks of partition `p`
/// ([`crate::plan::body::Load::kept_by_core`]) is read at its first block only, once per grid
/// column group ([`group_shared_read`]).
pub fn load_reads(
    body: &Body,
    sched: &Schedule,
    naming: &Naming,
    c: &Coords,
    names: &Names,
    matrix_read: &dyn Fn(&str, Expr) -> Stmt,
    p: &Partition,
) -> (Vec<Stmt>, Vec<Stmt>) {
    let (row, col) = (&c.row, &c.col);
    let mut hoisted = Vec::new();
    let mut per_block = Vec::new();
    let mut per_chunk = Vec::new();
    for load in &body.loads {
        let v = load.value;
        let value = &body.values[v];
        if let Some(st) = body.stream.as_ref().filter(|_| body.is_streamed(v)) {
            // A streamed read: chunk `chunk` of the hidden layer's columns, or of the summed
            // product's right operand's rows.
            let at = name("chunk");
            let src = match value.class {
                Class::Matrix(k, n) if st.by_rows(body, v) => {
                    vec![span(at, int(k)), span(int(0), int(n))]
                }
                Class::Matrix(k, n) => vec![span(int(0), int(k)), span(at, int(n))],
                class => block_index(class, row.clone(), at, names),
            };
            per_chunk.push(read_into(&naming.cb(v), index(&load.param, src)));
        } else if let (LoadSource::Matrix(m), Class::Matrix(k, n)) = (&load.source, value.class) {
            let col = column_of(value, &c.col, &c.wide_col);
            let rows = (int(0), int(k));
            let src = index(&load.param, matrix_index(m, (k, n), &c.batch, col, rows));
            if sched.hoisted[v] {
                hoisted.push(read_into(&naming.cb(v), src));
            } else {
                per_block.push(matrix_read(&naming.cb(v), src));
            }
        } else if sched.hoisted[v] {
            let src = index(&load.param, block_index(value.class, int(0), int(0), names));
            hoisted.push(read_into(&naming.cb(v), src));
        } else {
            let row = match names.batch_rows {
                Some(rows) if load.batch_shared => {
                    Expr::bin(BinOp::Sub, row.clone(), mul(c.batch.clone(), name(rows)))
                }
                _ => row.clone(),
            };
            let col = column_of(value, col, &c.wide_col).clone();
            if let LoadSource::Concat(parts) = &load.source {
                per_block.push(concat_read(
                    &naming.cb(v),
                    parts,
                    (&row, &col),
                    value,
                    names,
                ));
                continue;
            }
            let src = index(&load.param, block_index(value.class, row, col, names));
            per_block.push(if load.kept_by_core(p) {
                // Read at the core's first block and kept for the others.
                if_else(
                    compare(CmpOp::Eq, name("i"), int(0)),
                    vec![group_shared_read(&naming.cb(v), src)],
                    vec![],
                )
            } else {
                read_into(&naming.cb(v), src)
            });
        }
    }
    if !per_chunk.is_empty() {
        let mut chunk = vec![assign("chunk", mul(name("sc"), name("STREAM_TILES")))];
        chunk.extend(per_chunk);
        per_block.push(for_range("sc", name("STREAM_CHUNKS"), chunk));
    }
    (hoisted, per_block)
}

/// Reads the block at (`row`, `col`) of a concatenation read in place into `cb`: from the part
/// holding its rows (the planner's block heights keep a block within one part), at its row
/// within the part.
fn concat_read(
    cb: &str,
    parts: &[ConcatPart],
    (row, col): (&Expr, &Expr),
    value: &Value,
    names: &Names,
) -> Stmt {
    let read = |p: &ConcatPart| {
        let at = match p.first_row {
            0 => row.clone(),
            first => Expr::bin(BinOp::Sub, row.clone(), int(first)),
        };
        let src = index(&p.param, block_index(value.class, at, col.clone(), names));
        read_into(cb, src)
    };
    let (last, rest) = parts.split_last().expect("a concatenation has parts");
    rest.iter().rev().fold(read(last), |orelse, p| {
        if_else(
            compare(CmpOp::Lt, row.clone(), int(p.first_row + p.rows)),
            vec![read(p)],
            vec![orelse],
        )
    })
}

/// The constants of a streamed hidden layer: tiles per chunk and chunks.
pub fn stream_constants(body: &Body) -> Vec<Stmt> {
    match &body.stream {
        Some(st) => vec![
            assign("STREAM_TILES", int(st.chunk)),
            assign("STREAM_CHUNKS", int(st.chunks)),
        ],
        None => Vec::new(),
    }
}

/// Writes of the body's outputs at the block's coordinates (`row`, `col`, and `wide_col` for
/// values cut to a chunk of a chained product's columns). With the product's columns split
/// (`split`), only the first chunk's blocks compute and write the other outputs
/// ([`super::compute::first_chunk_outputs`]).
pub fn output_writes(
    body: &Body,
    naming: &Naming,
    (row, col, wide_col): (&Expr, &Expr, &Expr),
    split: bool,
    names: &Names,
) -> Vec<Stmt> {
    body.outputs
        .iter()
        .map(|&(_, v)| {
            let value = &body.values[v];
            let col = column_of(value, col, wide_col).clone();
            let at = block_index(value.class, row.clone(), col, names);
            let write = write_from(&naming.cb(v), index(&value.stem, at));
            if split && !value.chunked {
                if_less(wide_col.clone(), int(1), vec![write])
            } else {
                write
            }
        })
        .collect()
}

/// Assembles planned kernel `k` from its parameters, setup and the bodies of its compute,
/// reader and writer threads, on the device's grid ([`grid_axes`]).
pub fn kernel(
    k: &PlannedKernel,
    params: Vec<String>,
    setup: Vec<Stmt>,
    threads: [Vec<Stmt>; 3],
) -> Kernel {
    let [compute, read, write] = threads;
    let (compute, read) = (
        on_busy_cores(&k.partition, compute),
        on_busy_cores(&k.partition, read),
    );
    let thread = |kind, n: &str, body| Thread {
        kind,
        name: n.to_string(),
        body,
        line: 0,
    };
    let mut kernel = Kernel {
        name: k.name.clone(),
        grid: k.partition.kernel_grid(),
        params,
        doc: Some(doc(k)),
        setup,
        threads: vec![
            thread(ThreadKind::Compute, "compute", compute),
            thread(ThreadKind::DataMovement, "dm_read", read),
            thread(ThreadKind::DataMovement, "dm_write", write),
        ],
        line: 0,
    };
    if k.partition.across {
        grid_axes::swap_axes(&mut kernel);
    }
    kernel
}

/// The docstring of a planned kernel.
fn doc(k: &PlannedKernel) -> String {
    format!(
        "{}: {}. {}.",
        k.name,
        k.nodes.join(", "),
        k.partition_summary
    )
}

/// Lowers an elementwise or row-wise planned kernel.
pub fn lower(k: &PlannedKernel, body: &Body, sched: &Schedule) -> Kernel {
    let p = &k.partition;
    let naming = Naming::new(body, sched);
    let mut setup = constants(p, &NAMES, 0);
    setup.extend(stream_constants(body));
    setup.extend(sched.cbs.iter().map(make_cb));
    let c = coords(p, &NAMES);
    let compute = compute_thread(body, sched, p, &|_| Vec::new(), &c, &Default::default());
    let (hoisted, mut per_block) = load_reads(body, sched, &naming, &c, &NAMES, &read_into, p);
    // Segments of a block row exchange their partial reductions: the reader receives the
    // others', the writer sends its own, reduction by reduction.
    let exchanged = kernel_exchanges(body, sched, p);
    per_block.extend(exchange::receives(&exchanged));
    let mut read = hoisted;
    if !per_block.is_empty() {
        let mut inner = c.stmts.clone();
        inner.extend(per_block);
        read.extend(block_loop(p, true, inner));
    }
    let mut inner = c.stmts.clone();
    inner.extend(exchange::sends(&exchanged));
    let (out_row, out_col, out_wide) = output_coords(body.head_write, &c, &mut inner);
    let at = (&out_row, &out_col, &out_wide);
    inner.extend(output_writes(body, &naming, at, p.wide.is_some(), &NAMES));
    let write = block_loop(p, true, inner);
    kernel(k, params(body, &[]), setup, [compute, read, write])
}

/// Where the block at `c` is written, as (row, column, column of values cut to a chunk of a
/// chained product's columns): its own tiles, or with heads merged or split on the way
/// ([`HeadWrite`], the one output, a product's) the tile computed by the statements pushed onto
/// `stmts`.
pub fn output_coords(
    head_write: Option<HeadWrite>,
    c: &Coords,
    stmts: &mut Vec<Stmt>,
) -> (Expr, Expr, Expr) {
    // The output's own columns: its chunk's when the product's columns are split (`wide_col`
    // is `col` otherwise).
    let col = &c.wide_col;
    match head_write {
        // A head merge: batch `h` goes to the rows of one batch, columns `h * head` on.
        Some(HeadWrite::Merge { head_tiles }) => {
            stmts.push(assign("o_row", c.row_in_batch()));
            stmts.push(assign(
                "o_col",
                add(mul(c.batch.clone(), int(head_tiles)), col.clone()),
            ));
            (name("o_row"), name("o_col"), name("o_col"))
        }
        // A head split: columns `h * head` on go to the rows of batch `h`.
        Some(HeadWrite::Split {
            head_tiles,
            seq_tiles,
        }) => {
            let head = Expr::bin(BinOp::FloorDiv, col.clone(), int(head_tiles));
            stmts.push(assign(
                "o_row",
                add(mul(head, int(seq_tiles)), c.row.clone()),
            ));
            stmts.push(assign(
                "o_col",
                Expr::bin(BinOp::Mod, col.clone(), int(head_tiles)),
            ));
            (name("o_row"), name("o_col"), name("o_col"))
        }
        None => (c.row.clone(), c.col.clone(), c.wide_col.clone()),
    }
}
