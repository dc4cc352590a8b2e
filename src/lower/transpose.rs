//! The transpose kernel template: each output block is read as the mirrored input block and
//! transposed in L1 with `ttl.transpose`.

use ttfuse_runtime::ttl::ast::{Expr, Kernel};

use super::blocks::{block_loop, constants, coords, Names};
use super::body_kernel::kernel;
use super::emit::{
    add, assign, index, int, make_cb, mul, name, read_into, reserve, span, store, wait, with,
    write_from,
};
use crate::plan::kernel::TransposeInfo;
use crate::plan::PlannedKernel;

const NAMES: Names = Names {
    block_rows: "BLOCK_ROWS",
    block_cols: "BLOCK_COLS",
    col_blocks: "COL_BLOCKS",
    batch_rows: None,
};

/// Lowers a planned transpose kernel.
pub fn lower(k: &PlannedKernel, info: &TransposeInfo) -> Kernel {
    let p = &k.partition;
    let (inp, out) = (&info.stems.0, &info.stems.1);
    let (in_cb, out_cb) = (format!("{inp}_cb"), format!("{out}_cb"));
    let mut setup = constants(p, &NAMES, 0);
    if p.batches > 1 {
        setup.push(assign("IN_ROW_TILES", int(info.in_rows)));
        setup.push(assign("OUT_ROW_TILES", int(info.in_cols)));
    }
    setup.extend(k.cbs.iter().map(make_cb));
    let (x_v, y_o) = (format!("{inp}_v"), format!("{out}_o"));
    let compute = block_loop(
        p,
        p.guarded,
        vec![with(
            vec![(wait(&in_cb), x_v.clone()), (reserve(&out_cb), y_o.clone())],
            vec![store(
                &y_o,
                Expr::path("ttl.transpose").call(vec![name(&x_v), name(&y_o)]),
            )],
        )],
    );
    let c = coords(p, &NAMES);
    let (in_base, out_base) = if p.batches > 1 {
        (
            mul(c.batch.clone(), name("IN_ROW_TILES")),
            mul(c.batch.clone(), name("OUT_ROW_TILES")),
        )
    } else {
        (int(0), int(0))
    };
    let mut inner = c.stmts.clone();
    inner.push(read_into(
        &in_cb,
        index(
            inp,
            vec![
                span(add(in_base, c.col.clone()), name("BLOCK_COLS")),
                span(c.row.clone(), name("BLOCK_ROWS")),
            ],
        ),
    ));
    let read = block_loop(p, true, inner);
    let mut inner = c.stmts;
    inner.push(write_from(
        &out_cb,
        index(
            out,
            vec![
                span(add(out_base, c.row), name("BLOCK_ROWS")),
                span(c.col, name("BLOCK_COLS")),
            ],
        ),
    ));
    let write = block_loop(p, true, inner);
    kernel(
        k,
        vec![inp.clone(), out.clone()],
        setup,
        [compute, read, write],
    )
}
