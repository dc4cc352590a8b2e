//! Causal attention in key chunks ([`ttfuse::plan::causal`]): each row block takes the keys up
//! to its diagonal, with the online softmax, a core's odd steps take the mirrored row block, and
//! with an odd number of steps the last three are balanced by class; where the heads do not
//! divide over the grid rows, the mirrored pairs spread over the cores in row order.

mod lower_common;

use lower_common::*;
use ttfuse::lower::FusionMode;
use ttfuse_runtime::device::Grid;
use ttfuse_runtime::timing::report::KernelReport;

/// Whether kernel summary `summary` says the kernel takes its keys in chunks.
fn in_key_chunks(summary: &str) -> bool {
    summary.contains("keys in chunks")
}

/// Each core's compute thread's busy cycles in `report`.
fn compute_busy(report: &KernelReport) -> Vec<f64> {
    report
        .cores
        .iter()
        .map(|c| {
            c.threads
                .iter()
                .find(|t| t.name == "compute")
                .expect("compute")
                .busy_cycles
        })
        .collect()
}

#[test]
fn causal_attention_takes_each_row_block_s_keys_up_to_its_diagonal() {
    // 4 heads of 1024 rows: 32 row blocks of 1 tile per head fill four grid rows, the two
    // groups of four grid rows take two heads each, one per step.
    let g = attention_heads_masked(4, 1024, true);
    let compiled = run_checked(&g, &device(), FusionMode::Fused);
    let k = &compiled.plan.kernels[0];
    let p = &k.partition;
    assert!(
        in_key_chunks(&k.partition_summary),
        "{}",
        k.partition_summary
    );
    assert!(p.mirrored, "{}", k.partition_summary);
    assert_eq!((p.batches, p.block, p.grid), (4, (1, 32), (8, 8)));
    assert_eq!((p.group_rows(), p.blocks_per_core), (4, 2));

    let source = ttfuse_runtime::ttl::print::print_kernel(&compiled.program.kernels[0]);
    assert!(source.contains("KEY_CHUNK = 8"), "{source}");
    assert!(
        source.contains("chunks = ((rem + 1) * BLOCK_M - 1) // KEY_CHUNK + 1"),
        "{source}"
    );
    assert!(source.contains("for j in range(1, chunks):"), "{source}");

    let report = run_kernel(&g, k);
    // Grid row `y` holds row blocks 8q..8q+7 of its head (q = y % 4), which take q + 1 key
    // chunks of 8 tiles; at the mirrored step its rows are 24-8q..31-8q, which take 4 - q. Its
    // sender reads the keys and values of the most chunks any of its cores takes: 5 per grid
    // row over the two steps, 16 tiles of keys and 16 of values each.
    let keys_and_values = 8 * 5 * 2 * 16;
    // Every block reads its query (1 x 2 tiles) and the mask's tiles of its last chunk (1 x 8),
    // and every core the scale and the reductions' one.
    let queries = 128 * 2;
    let masks = 128 * 8;
    let constants = 64 * 2;
    assert_eq!(
        report.dram_read_bytes,
        (keys_and_values + queries + masks + constants) * TILE
    );
    // Every core takes 5 chunks in all (q + 1 and 4 - q): the same compute on each, but for
    // the last chunk's new maximum, which a block of one chunk stores as its first chunk's
    // maximum rather than as the maximum of two, so the cores with such a block (q = 0, 3)
    // differ from the others by that.
    let busy = compute_busy(&report);
    let (least, most) = busy
        .iter()
        .fold((f64::MAX, 0f64), |(l, m), &b| (l.min(b), m.max(b)));
    assert!(
        most - least <= 0.005 * most,
        "balanced cores: {least} to {most}"
    );
}

#[test]
fn an_odd_number_of_steps_ends_in_three_steps_balanced_by_class() {
    // 16 row blocks of 2 tiles per head at 1024 tokens, on 64 cores: 12 heads (GPT-2) take 3
    // steps per core, 20 heads 5. Mirrored pairs balance two steps; a last step alone would
    // give the cores of the far classes (rows that reach 4 key chunks) 3 chunks more than the
    // near ones. The last three steps balanced by class give every core 7 or 8 chunks over
    // them.
    for (heads, steps) in [(12, 3), (20, 5)] {
        let g = attention_heads_masked(heads, 1024, true);
        let compiled = run_checked(&g, &device(), FusionMode::Fused);
        let k = &compiled.plan.kernels[0];
        let layout = format!("{} block(s) of 2x32 tiles over {heads} batches", heads * 16);
        assert!(
            k.partition_summary.contains(&layout)
                && k.partition_summary.contains(&format!("{steps} per core"))
                && k.partition_summary
                    .contains("the last three balanced by class"),
            "{}",
            k.partition_summary
        );
        let report = run_kernel(&g, k);
        let busy = compute_busy(&report);
        let mean = busy.iter().sum::<f64>() / busy.len() as f64;
        let most = busy.iter().copied().fold(0f64, f64::max);
        // 3 steps: 8 chunks against a mean of 7.5, the busiest core within 7% of the mean
        // (9 chunks would be 20% over it); 5 steps: 13 against 12.5.
        assert!(
            most <= 1.08 * mean,
            "{heads} heads: busiest core {most} against a mean of {mean}"
        );
    }
}

#[test]
fn the_chunked_kernel_is_faster_than_the_whole_rows() {
    // The same attention with a mask that lets row 0 see key 1: not causal, so every block
    // takes all keys. Its run is the plain kernel's. At 512 tokens (GPT-2's 12 heads) the
    // chunks save less, and the estimate has to see the keys' transposes of the whole rows and
    // that the chunks' reads stream under the compute to take them.
    for (heads, seq, saving) in [(4, 1024, 0.9), (12, 512, 0.95)] {
        let g = attention_heads_masked(heads, seq, true);
        let almost = |row: usize, key: usize| key <= row || (row, key) == (0, 1);
        let plain = attention_heads_with(heads, seq, Some(Mask::Where(&almost)));
        let (chunked, chunked_run, _) = run(&g, FusionMode::Fused);
        let (whole, whole_run, _) = run(&plain, FusionMode::Fused);
        assert!(in_key_chunks(&chunked.plan.kernels[0].partition_summary));
        assert!(!in_key_chunks(&whole.plan.kernels[0].partition_summary));
        let (fast, slow) = (
            chunked_run.report.kernels[0].time_us,
            whole_run.report.kernels[0].time_us,
        );
        assert!(fast < saving * slow, "{seq}: {fast} us against {slow} us");
    }
}

#[test]
fn an_added_causal_mask_takes_key_chunks_too() {
    // LLaMA's export adds a constant of zeros and minus infinities to the scores.
    let below = |row: usize, key: usize| key <= row;
    let g = attention_heads_with(4, 1024, Some(Mask::Added(&below)));
    let compiled = run_checked(&g, &device(), FusionMode::Fused);
    let k = &compiled.plan.kernels[0];
    assert!(
        in_key_chunks(&k.partition_summary),
        "{}",
        k.partition_summary
    );
    run_kernel(&g, k);
}

#[test]
fn attention_with_more_than_a_masked_softmax_keeps_whole_rows() {
    // The probabilities halved before the values: not the online softmax's form, so every
    // block takes all keys, and the numbers still match the reference.
    let below = |row: usize, key: usize| key <= row;
    let g = attention_heads_scaled(4, 1024, Some(Mask::Where(&below)), Some(0.5));
    let compiled = run_checked(&g, &device(), FusionMode::Fused);
    let k = &compiled.plan.kernels[0];
    assert!(
        !in_key_chunks(&k.partition_summary),
        "{}",
        k.partition_summary
    );
}

#[test]
fn short_or_unmasked_attention_keeps_whole_rows() {
    // Without a mask every key counts; at 256 rows the planner keeps whole rows.
    for g in [
        attention_heads(4, 1024),
        attention_heads_masked(2, 256, true),
    ] {
        let compiled = ttfuse::lower::compile(&g, &device(), FusionMode::Fused).expect("compiles");
        let k = &compiled.plan.kernels[0];
        assert!(
            !in_key_chunks(&k.partition_summary),
            "{}",
            k.partition_summary
        );
    }
}

#[test]
fn heads_that_do_not_divide_over_the_grid_rows_spread_as_mirrored_pairs_over_the_cores() {
    // 12 heads of 1024 rows, 16 row blocks of 2 tiles each, on an 11x10 grid: shared over
    // grid rows they fill 8x8 cores in 3 steps (12 heads do not divide over 5 groups of 2 grid
    // rows); as the pairs (r, 15 - r) of all heads, 96 pairs, one per core, fill 96 cores in 2
    // steps of equal work.
    let mut dev = device();
    dev.grid = Grid { x: 11, y: 10 };
    let g = attention_heads_masked(12, 1024, true);
    let compiled = run_checked(&g, &dev, FusionMode::Fused);
    let k = &compiled.plan.kernels[0];
    let p = &k.partition;
    assert!(
        in_key_chunks(&k.partition_summary) && k.partition_summary.contains("mirrored pairs"),
        "{}",
        k.partition_summary
    );
    assert_eq!(
        (p.pair_cores, p.blocks_per_core, p.block),
        (Some(96), 2, (2, 32))
    );
    let report = run_kernel_on(&g, &dev, k);
    // Pair u (core u) is head u / 8's row blocks u % 8 and 15 - u % 8. A grid row of 11 cores
    // (10 across) holds parts of two or three heads; per step, each part's sender reads the
    // keys and values of the most chunks (of 8 tiles) any of its cores takes.
    let (gx, gy) = (p.grid.0 as usize, p.grid.1 as usize);
    let chunks = |rem: usize| (2 * rem + 1) / 8 + 1;
    let mut senders_chunks = 0;
    for y in 0..gy {
        for step in 0..2 {
            let mut most = std::collections::BTreeMap::new();
            for core in (y * gx..(y + 1) * gx).filter(|&c| c < 96) {
                let rem = if step == 0 { core % 8 } else { 15 - core % 8 };
                let m = most.entry(core / 8).or_insert(0);
                *m = chunks(rem).max(*m);
            }
            senders_chunks += most.values().sum::<usize>();
        }
    }
    // Each chunk: 8 key tiles by 2 head tiles, keys and values. Every block reads its query
    // (2 x 2 tiles) and its last chunk's mask (2 x 8), every busy core the constants.
    let keys_and_values = senders_chunks * 2 * 16;
    let (queries, masks, constants) = (192 * 4, 192 * 16, 96 * 2);
    assert_eq!(
        report.dram_read_bytes,
        (keys_and_values + queries + masks + constants) as u64 * TILE
    );
    // Every busy core takes 5 chunks (chunks(r) + chunks(15 - r) = 5 for every r).
    let busy: Vec<f64> = compute_busy(&report)
        .into_iter()
        .filter(|&b| b > 0.0)
        .collect();
    assert_eq!(busy.len(), 96);
    let (least, most) = busy
        .iter()
        .fold((f64::MAX, 0f64), |(l, m), &b| (l.min(b), m.max(b)));
    assert!(most - least <= 0.005 * most, "balanced: {least} to {most}");
}
