//! Matmuls whose output blocks lay out as the core grid share their operands core to core:
//! each K chunk of A is read from DRAM once per grid row, each of B once per grid column, and
//! sent through pipes to the rest of the row or column.

mod lower_common;

use lower_common::*;
use ttfuse::graph::{BinaryOp, Graph};
use ttfuse::lower::FusionMode;

/// `x [256, 768] @ w [768, 512] + b`: 8 x 16 output tiles over K = 24 tiles.
fn projection() -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[256, 768]));
    let w = constant(&mut g, "w", &[768, 512], 7, 0.05);
    let b = constant(&mut g, "b", &[512], 8, 0.1);
    let h = matmul(&mut g, "h", x, w);
    let y = binary(&mut g, "y", BinaryOp::Add, h, b);
    output(&mut g, "y", y);
    g
}

#[test]
fn a_matmul_whose_blocks_form_the_grid_reads_each_operand_once() {
    let g = projection();
    let compiled = run_checked(&g, &device(), FusionMode::Fused);
    let k = &compiled.plan.kernels[0];
    let p = &k.partition;
    // 8 block rows of 1 tile and 8 block columns of 2: one block per core, laid out as the grid.
    assert!(p.multicast, "{}", k.partition_summary);
    assert_eq!((p.block, p.grid, p.blocks_per_core), ((1, 2), (8, 8), 1));

    let (_, run, _) = run(&g, FusionMode::Fused);
    let report = &run.report.kernels[0];
    let tile = 32 * 32 * 2;
    // A (8 x 24 tiles) and B (24 x 16) once each, and every block its 1 x 2 tiles of bias.
    let operands = (8 * 24 + 24 * 16) * tile;
    let bias = 64 * 2 * tile;
    assert_eq!(report.dram_read_bytes, operands + bias);
    assert_eq!(
        k.dram_read_bytes, report.dram_read_bytes,
        "the plan counts what runs"
    );
    // Each chunk reaches the other seven cores of its row (A) or column (B) as one multicast:
    // the NoC carries every operand tile once.
    assert_eq!(report.noc_bytes, operands);
}

#[test]
fn multicast_chunks_are_sent_by_the_cores_in_turn() {
    let g = projection();
    let compiled = ttfuse::lower::compile(&g, &device(), FusionMode::Fused).expect("compiles");
    let source = ttfuse_runtime::ttl::print::print_kernel(&compiled.program.kernels[0]);
    // A's sender moves along the row and B's down the column with the K chunk.
    assert!(source.contains("sender = kc % GRID_X"), "{source}");
    assert!(source.contains("sender = kc % GRID_Y"), "{source}");
    assert!(source.contains("ttl.Pipe(src=(sender, core_y), dst=(core_x, core_y))"));
    assert!(source.contains("ttl.Pipe(src=(core_x, core_y), dst=(core_x, peer))"));
}

#[test]
fn blocks_that_do_not_form_the_grid_read_their_operands_themselves() {
    // [32, 2048] @ [2048, 32]: one output tile, one block, nothing to share.
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[32, 2048]));
    let w = constant(&mut g, "w", &[2048, 32], 9, 0.02);
    let y = matmul(&mut g, "y", x, w);
    output(&mut g, "y", y);
    let compiled = run_checked(&g, &device(), FusionMode::Fused);
    assert!(!compiled.plan.kernels[0].partition.multicast);
}

#[test]
fn attention_heads_share_their_keys_and_values_along_grid_rows() {
    // 4 heads of 512 rows: 16 row blocks of 1 tile per head fill two grid rows of 8 cores,
    // and the four heads the eight grid rows.
    let g = attention_heads(4, 512);
    let compiled = run_checked(&g, &device(), FusionMode::Fused);
    let k = &compiled.plan.kernels[0];
    let p = &k.partition;
    assert!(p.multicast, "{}", k.partition_summary);
    assert_eq!((p.batches, p.block, p.grid), (4, (1, 16), (8, 8)));
    assert_eq!(p.group_rows(), 2);
    assert!(
        k.partition_summary
            .contains("each batch's right operands multicast along its grid row"),
        "{}",
        k.partition_summary
    );

    let (_, run, _) = run(&g, FusionMode::Fused);
    let report = &run.report.kernels[0];
    let tile = 32 * 32 * 2;
    assert_eq!(
        k.dram_read_bytes, report.dram_read_bytes,
        "the plan counts what runs"
    );
    // Each grid row reads its head's keys and values (16 x 2 tiles each) once and multicasts
    // them to its other seven cores.
    assert_eq!(report.noc_bytes, 8 * 2 * 16 * 2 * tile);
    // Q once (4 heads x 16 x 2 tiles), K and V once per grid row, and the kernel's constants
    // on every core: far from every block reading all of K and V.
    let shared = (4 * 16 * 2 + 8 * 2 * 16 * 2) * tile;
    let per_core = report.dram_read_bytes - shared;
    assert!(
        per_core.is_multiple_of(64 * tile) && per_core <= 64 * 2 * tile,
        "{} bytes beyond the operands",
        per_core
    );
}
