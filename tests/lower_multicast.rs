//! Matmuls whose output blocks lay out as the core grid share their operands core to core:
//! each K chunk of A is read from DRAM once per grid row, each of B once per grid column, and
//! sent through pipes to the rest of the row or column.

mod lower_common;

use lower_common::*;
use ttfuse::graph::{BinaryOp, Graph};
use ttfuse::lower::FusionMode;
use ttfuse_runtime::device::{Device, Grid};
use ttfuse_runtime::timing::report::KernelReport;

/// `x [256, 768] @ w [768, 512] + b`: 8 x 16 output tiles over K = 24 tiles.
fn projection() -> Graph {
    linear(256, 768, 512)
}

/// `x [m, k] @ w [k, n] + b`.
fn linear(m: usize, k: usize, n: usize) -> Graph {
    let mut g = Graph::new();
    let x = g.add_input("x", f32t(&[m, k]));
    let w = constant(&mut g, "w", &[k, n], 7, 0.05);
    let b = constant(&mut g, "b", &[n], 8, 0.1);
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

    let report = run_kernel(&g, k);
    // A (8 x 24 tiles) and B (24 x 16) once each, and every block its 1 x 2 tiles of bias.
    let operands = (8 * 24 + 24 * 16) * TILE;
    let bias = 64 * 2 * TILE;
    assert_eq!(report.dram_read_bytes, operands + bias);
    // Each chunk reaches the other seven cores of its row (A) or column (B) as one multicast:
    // the NoC carries every operand tile once.
    assert_eq!(report.noc_bytes, operands);
}

#[test]
fn a_core_s_narrower_blocks_are_written_while_it_computes_the_next() {
    // x [1024, 256] @ w [256, 3072] + b (an MLP's first layer): 32 x 96 output tiles, 48 per
    // core.
    let g = linear(1024, 256, 3072);
    let compiled = run_checked(&g, &device(), FusionMode::Fused);
    let k = &compiled.plan.kernels[0];
    let p = &k.partition;
    assert!(p.multicast, "{}", k.partition_summary);
    assert_eq!(p.grid, (8, 8));
    let per_core = p.blocks_per_core;
    assert!(per_core > 1, "{}", k.partition_summary);
    assert_eq!(
        p.block.1 * per_core * 8,
        96,
        "a core's blocks are one block row's columns"
    );

    let source = ttfuse_runtime::ttl::print::print_kernel(&compiled.program.kernels[0]);
    let (reader, writer) = source.split_at(source.find("def dm_write").expect("writer"));
    // The reader writes a block once it has sent the next block's first two A chunks (here K is
    // in two chunks: before the second), and the last block after its loop; the writer only
    // sends B.
    assert_eq!(p.k_chunks, 2, "{}", k.partition_summary);
    assert!(reader.contains("if i > 0 and kc == 1:"), "{source}");
    assert!(reader.contains("w_block = block - 1"), "{source}");
    assert!(
        reader.contains("w_block = core * BLOCKS_PER_CORE + (BLOCKS_PER_CORE - 1)"),
        "{source}"
    );
    assert!(reader.contains("with y_cb.wait() as blk:"), "{source}");
    assert!(!writer.contains("y_cb.wait()"), "{source}");

    let report = run_kernel(&g, k);
    // A (32 x 8 tiles) once per block of a core, B (8 x 96) once, and every block its bias.
    let a = 32 * 8 * per_core as u64;
    let bias = (p.blocks * p.block.1) as u64;
    assert_eq!(report.dram_read_bytes, (a + 8 * 96 + bias) * TILE);
}

#[test]
fn blocks_that_do_not_divide_the_product_fill_more_of_the_grid() {
    let blackhole = Device::load("blackhole").expect("blackhole data file loads");
    // x [704, 256] @ w [256, 3072] + b on Wormhole (8 x 8 cores): 22 x 96 output tiles.
    // Block rows that divide 22 fill at most 2 grid rows (11 would be more than the grid
    // has); blocks of 4 rows fill 6, the last overlapping the one before by 2 tiles.
    let g = linear(704, 256, 3072);
    let k = overlapping_matmul(&g, &device());
    assert_eq!((k.partition.block.0, k.partition.overlap.0), (4, 2));
    assert_eq!(k.partition.grid.1, 6);
    // On Blackhole (11 x 10 cores) 11 block rows of 2 fit across the grid, on its 11 columns.
    let compiled = run_checked(&g, &blackhole, FusionMode::Fused);
    let p = &compiled.plan.kernels[0].partition;
    assert!(p.across, "{}", compiled.plan.kernels[0].partition_summary);
    assert_eq!((p.block.0, p.overlap.0, p.grid.1), (2, 0, 11));
    // x [256, 256] @ w [256, 704] + b on Wormhole: 8 x 22 output tiles. Block columns that
    // divide 22 fill at most 2 grid columns; blocks of 3 fill 8, the last overlapping the one
    // before by 2 tiles.
    let g = linear(256, 256, 704);
    let k = overlapping_matmul(&g, &device());
    assert_eq!((k.partition.block.1, k.partition.overlap.1), (3, 2));
    assert_eq!(k.partition.grid, (8, 8));
    // x [1024, 768] @ w [768, 3072] + b (GPT-2's MLP up-projection) on Blackhole: 32 x 96
    // output tiles. Across the grid, blocks of 3 rows fill the device's 11 columns, the last
    // overlapping the one before by 1 tile (on the grid as it is, blocks of 9 columns fill
    // them, the last overlapping by 3: 65.16 us against 56.61 in the runtime).
    let g = linear(1024, 768, 3072);
    let k = overlapping_matmul(&g, &blackhole);
    assert!(k.partition.across, "{}", k.partition_summary);
    assert_eq!((k.partition.block.0, k.partition.overlap.0), (3, 1));
    assert_eq!(k.partition.grid, (8, 11));
}

#[test]
fn a_product_with_more_block_rows_than_grid_rows_lies_across_a_grid_that_is_not_square() {
    let blackhole = Device::load("blackhole").expect("blackhole data file loads");
    // x [352, 256] @ w [256, 256] + b on Blackhole (11 x 10 cores): 11 x 8 output tiles. On
    // the device's grid as it is, 11 block rows are one more than it has rows; across it
    // (the kernel's rows along the device's 11 columns) every output tile has its own core.
    let g = linear(352, 256, 256);
    let compiled = run_checked(&g, &blackhole, FusionMode::Fused);
    let k = &compiled.plan.kernels[0];
    let p = &k.partition;
    assert!(p.multicast && p.across, "{}", k.partition_summary);
    assert_eq!((p.block, p.grid, p.cores_used), ((1, 1), (8, 11), 88));
    assert!(
        k.partition_summary
            .contains("(grid 8x11, across the device's grid as 11x8)"),
        "{}",
        k.partition_summary
    );
    // The kernel is written on its own grid; the device's coordinates swap axes.
    let kernel = &compiled.program.kernels[0];
    assert_eq!((kernel.grid, p.device_grid()), ((11, 8), (11, 8)));
    let source = ttfuse_runtime::ttl::print::print_kernel(kernel);
    assert!(
        source.contains("core_y, core_x = ttl.core(dims=2)"),
        "{source}"
    );
    assert!(!source.contains("core_x, core_y = ttl.core"), "{source}");
    assert!(
        source.contains("ttl.Pipe(src=(core_y, sender), dst=(core_y, core_x))"),
        "A's chunks travel along the kernel's rows, the device's columns: {source}"
    );
    // A once per kernel grid row, B once per kernel grid column, each block its bias.
    let report = run_kernel_on(&g, &blackhole, k);
    assert_eq!(report.dram_read_bytes, (11 * 8 + 8 * 8 + 88) * TILE);
    assert_eq!(report.noc_bytes, (11 * 8 + 8 * 8) * TILE);

    // On a square grid nothing lies across it.
    let compiled = run_checked(&g, &device(), FusionMode::Fused);
    assert!(!compiled.plan.kernels[0].partition.across);
}

/// The one kernel of `g` on `dev`, after checking that it lays out overlapping blocks as the
/// grid, starts the last ones at the product's end, computes the reference's numbers, and
/// reads and writes what its layout says.
fn overlapping_matmul(g: &Graph, dev: &Device) -> ttfuse::plan::PlannedKernel {
    let compiled = run_checked(g, dev, FusionMode::Fused);
    let k = compiled.plan.kernels[0].clone();
    let p = &k.partition;
    assert!(p.multicast, "{}", k.partition_summary);
    let source = ttfuse_runtime::ttl::print::print_kernel(&compiled.program.kernels[0]);
    let tiles = |idx, axis| g.node(idx).ty.shape[axis] / 32;
    let (m, kt, n) = (
        tiles(g.inputs[0], 0),
        tiles(g.inputs[0], 1),
        tiles(g.outputs[0].1, 1),
    );
    let (bm, bn) = p.block;
    // The last block row (column) starts `overlap` tiles before its place, at the product's
    // last `bm` (`bn`) tiles.
    for (overlap, blocks, size, tiles, axis) in [
        (p.overlap.0, p.row_blocks, bm, m, "ROW"),
        (p.overlap.1, p.col_blocks, bn, n, "COL"),
    ] {
        if overlap > 0 {
            let last = (blocks - 1) * size;
            assert_eq!(last - overlap, tiles - size);
            for line in [
                format!("LAST_{axis} = {last}\n"),
                format!("{axis}_OVERLAP = {overlap}\n"),
            ] {
                assert!(source.contains(&line), "{source}");
            }
            let v = axis.to_lowercase();
            let moved = format!("{v} = {v} - {v} // LAST_{axis} * {axis}_OVERLAP\n");
            assert!(source.contains(&moved), "{source}");
        }
    }
    let report = run_kernel_on(g, dev, &k);
    // Each grid row's A (its blocks' rows over K, once per block of a core) and each grid
    // column's B, the overlapped tiles twice; every block its bias and its result.
    let (rows, cols) = (p.row_blocks * bm, p.col_blocks * bn);
    let a = (rows * kt * p.blocks_per_core) as u64;
    let (b, bias) = ((kt * cols) as u64, (p.blocks * bn) as u64);
    assert_eq!(report.dram_read_bytes, (a + b + bias) * TILE);
    assert_eq!(report.dram_write_bytes, (p.blocks * bm * bn) as u64 * TILE);
    k
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

    let report = run_kernel(&g, k);
    // Each grid row reads its head's keys and values (16 x 2 tiles each) once and multicasts
    // them to its other seven cores.
    assert_eq!(report.noc_bytes, 8 * 2 * 16 * 2 * TILE);
    // Q once (4 heads x 16 x 2 tiles), K and V once per grid row, and the kernel's constants
    // on every core: far from every block reading all of K and V.
    assert_constants_beyond(&report, (4 * 16 * 2 + 8 * 2 * 16 * 2) * TILE);
}

#[test]
fn a_causal_mask_shared_by_the_heads_is_read_once_per_row_block_and_kept() {
    // 8 heads of 512 rows: a head's 16 row blocks fill two grid rows, the four groups of two
    // grid rows take two heads each, one per step. A core's two blocks are the same row block
    // of two heads, which add the same rows of the [512, 512] mask. The mask also lets row 0
    // see key 1: not causal, so the blocks take whole rows of keys (`lower_causal` has the
    // causal mask's kernel).
    let almost_causal = |row: usize, key: usize| key <= row || (row, key) == (0, 1);
    let g = attention_heads_with(8, 512, Some(Mask::Where(&almost_causal)));
    let compiled = run_checked(&g, &device(), FusionMode::Fused);
    let k = &compiled.plan.kernels[0];
    let p = &k.partition;
    assert!(p.keeps_batch_shared(), "{}", k.partition_summary);
    assert_eq!((p.batches, p.block, p.grid), (8, (1, 16), (8, 8)));
    assert_eq!((p.group_rows(), p.blocks_per_core), (2, 2));
    assert!(k.ops.iter().any(|o| o == "Where"), "{:?}", k.ops);
    let mask_cb = k
        .cbs
        .iter()
        .find(|cb| cb.name.ends_with("_mask_cb"))
        .expect("the mask's buffer");
    assert_eq!((mask_cb.shape, mask_cb.buffer_factor), ((1, 16), 1));

    let source = ttfuse_runtime::ttl::print::print_kernel(&compiled.program.kernels[0]);
    // The reader reads it at the core's first block, from DRAM in the first group and from
    // that group's core in the others; the compute thread waits for it at its first use and
    // releases it after the last block.
    assert!(source.contains("if core_y < GROUP_ROWS:"), "{source}");
    assert!(
        source.contains("ttl.Pipe(src=(core_x, core_y % GROUP_ROWS), dst=(core_x, core_y))"),
        "{source}"
    );
    assert!(source.contains("_mask_cb.pop()"), "{source}");

    let report = run_kernel(&g, k);
    // Q once (8 heads x 16 x 2 tiles), K and V once per grid row and step, the mask once (16 x
    // 16 tiles), and the kernel's constants on every core.
    let kv = 8 * 2 * 2 * 16 * 2;
    let mask = 16 * 16;
    assert_constants_beyond(&report, (8 * 16 * 2 + kv + mask) * TILE);
    // The keys, values and mask each cross the NoC once, as multicasts.
    assert_eq!(report.noc_bytes, (kv + mask) * TILE);
}

/// Checks that what a kernel read beyond its `shared` bytes of operands is the kernel's
/// constant tiles on each of the 64 cores: one or two per core.
fn assert_constants_beyond(report: &KernelReport, shared: u64) {
    let per_core = report.dram_read_bytes - shared;
    assert!(
        per_core.is_multiple_of(64 * TILE) && per_core <= 64 * 2 * TILE,
        "{per_core} bytes beyond the operands"
    );
}

#[test]
fn a_gated_mlp_on_few_rows_reads_its_weights_once_in_segments_over_the_grid() {
    // The LLaMA MLP's x @ W1 and x @ W3 at 128 rows (4 row tiles, 64 column tiles each). Laid
    // out as the grid (4 grid rows of one row tile), each grid column's writer would pass its
    // B chunks one after the other, each read from DRAM and then multicast, for longer than the
    // blocks' math (77.59 us on the runtime); 16 blocks of 4x4 tiles reading their own
    // operands re-read A per block and leave 48 cores idle (69.06 us). In column segments over
    // the grid rows every core reads its own columns of the weights, once, and A's chunks pass
    // along each grid row (47.18 us).
    let g = gated(128, 768, 2048);
    let c = run_checked(&g, &device(), FusionMode::Fused);
    assert_eq!(c.plan.kernels.len(), 1);
    let k = &c.plan.kernels[0];
    let p = &k.partition;
    assert!(
        p.segments.is_some() && p.row_blocks == 1 && p.segment_rows() > 1,
        "{}",
        k.partition_summary
    );
    assert!(
        !k.partition_summary.contains("exchanging"),
        "an elementwise epilogue exchanges nothing: {}",
        k.partition_summary
    );
    let run = run_kernel(&g, k);
    // Both products' weights (24 x 64 tiles each) once, and A (4 x 24 tiles) once per grid row
    // and product.
    let rows = p.segment_rows() as u64;
    assert_eq!(
        run.dram_read_bytes,
        (2 * 24 * 64 + rows * 2 * 4 * 24) * TILE
    );
}

#[test]
fn kernels_of_every_sharing_lie_across_a_narrow_grid_and_compute_the_reference() {
    // On grids taller than wide (and one wider than tall), products whose blocks form more
    // columns than rows lie across them: plain products (one or several per core, blocks that
    // overlap), an MLP's chained kernels and attention heads sharing their keys and values
    // (with a causal mask). Each runs on the device's coordinates, its pipes swapped, and
    // meets the reference.
    let cases: [((u32, u32), &str, Graph); 6] = [
        ((4, 8), "mlp_block", mlp_block()),
        ((3, 5), "causal heads", attention_heads_masked(6, 512, true)),
        ((4, 8), "heads", attention_heads(4, 512)),
        ((4, 8), "gated", gated(512, 768, 2048)),
        ((8, 5), "overlapping columns", gated(1024, 768, 2048)),
        ((5, 8), "several blocks per core", linear(1024, 768, 3072)),
    ];
    for ((x, y), name, g) in cases {
        let mut dev = device();
        dev.grid = Grid { x, y };
        let compiled = run_checked(&g, &dev, FusionMode::Fused);
        let across = compiled.plan.kernels.iter().zip(&compiled.program.kernels);
        let across: Vec<_> = across.filter(|(k, _)| k.partition.across).collect();
        assert!(
            !across.is_empty(),
            "{name} on {x}x{y}: {:?}",
            compiled.plan.kernels
        );
        for (k, kernel) in across {
            let (kx, ky) = k.partition.grid;
            assert_eq!(kernel.grid, (ky, kx), "{name}: {}", k.partition_summary);
            assert_eq!(kernel.grid, k.partition.device_grid());
            assert!(ky <= x && kx <= y, "{name}: {}", k.partition_summary);
        }
    }
}
