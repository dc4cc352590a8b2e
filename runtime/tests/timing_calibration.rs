//! The timing model against published measurements (runtime/calibration/*.json): every
//! calibration row small enough to simulate quickly must land within 15% of its published
//! figure, except the rows listed in `KNOWN_OFF` with the reason the model cannot reach them.
//! Larger GEMM rows run in `ttfuse calibrate` and the `exec` bench only.

use ttfuse_runtime::calibrate::{run, within_tolerance, Calibration, Options};
use ttfuse_runtime::device::Device;

/// Rows the model misses by more than 15%, with the widest ratio band they must stay in (so a
/// change that moves them further is still seen) and why.
const KNOWN_OFF: &[(&str, &str, f64, f64, &str)] = &[
    (
        "wormhole_b0",
        "matmul 512x1024x1024 bf16 HiFi4 traced TFLOPS",
        0.75,
        0.85,
        "small GEMMs: in0 is L1-sharded in the published run but a TT-Lang kernel reads it from DRAM, and per-K-step multicast latency is not hidden by two buffers",
    ),
    (
        "wormhole_b0",
        "matmul 512x1024x2048 bf16 HiFi4 traced TFLOPS",
        0.75,
        0.85,
        "as above",
    ),
    (
        "wormhole_b0",
        "matmul 512x1024x1024 bf16 HiFi2 traced TFLOPS",
        0.75,
        0.85,
        "as above",
    ),
    (
        "wormhole_b0",
        "matmul 512x1024x2048 bf16 HiFi2 traced TFLOPS",
        0.72,
        0.85,
        "as above",
    ),
    (
        "wormhole_b0",
        "matmul 1024x1024x2048 bf16 HiFi2 traced TFLOPS",
        0.76,
        0.85,
        "as above",
    ),
    (
        "blackhole",
        "matmul 640x1408x1408 bf16 HiFi2 traced TFLOPS",
        0.74,
        0.85,
        "as above",
    ),
];

/// GEMMs up to 1024 x 1024 x 2048 simulate in about a second per target.
const TEST_MACS: u64 = 1024 * 1024 * 2048;

#[test]
fn every_simulated_calibration_row_is_within_15_percent_or_known_off() {
    for target in Device::names() {
        let rows = run(
            target,
            Options {
                max_gemm_macs: TEST_MACS,
            },
        )
        .unwrap();
        let mut checked = 0;
        for r in &rows {
            let (Some(modeled), Some(ratio)) = (r.modeled, r.ratio) else {
                continue;
            };
            assert!((modeled / r.published - ratio).abs() < 1e-12, "{}", r.name);
            checked += 1;
            assert_eq!(
                r.note.is_some(),
                !within_tolerance(ratio),
                "{target} {}: a row outside the tolerance, and only such a row, carries a note",
                r.name
            );
            match KNOWN_OFF.iter().find(|k| k.0 == target && k.1 == r.name) {
                Some((_, _, lo, hi, why)) => assert!(
                    (*lo..=*hi).contains(&ratio),
                    "{target} {}: ratio {ratio:.3} left its known band [{lo}, {hi}] ({why})",
                    r.name
                ),
                None => assert!(
                    (0.85..=1.15).contains(&ratio),
                    "{target} {}: modeled {modeled:.2} vs published {:.2}, ratio {ratio:.3}",
                    r.name,
                    r.published
                ),
            }
        }
        // GEMMs of both fidelities, the DRAM read and three add rows ran.
        assert!(checked >= 8, "{target}: only {checked} rows simulated");
        for k in KNOWN_OFF.iter().filter(|k| k.0 == target) {
            assert!(
                rows.iter().any(|r| r.name == k.1 && r.modeled.is_some()),
                "known-off row {} was not simulated",
                k.1
            );
        }
    }
}

#[test]
fn rows_above_the_size_limit_are_listed_but_not_simulated() {
    let cal = Calibration::load("wormhole_b0").unwrap();
    let rows = run("wormhole_b0", Options { max_gemm_macs: 0 }).unwrap();
    assert_eq!(rows.len(), cal.gemm.len() + 1 + cal.eltwise_add.len());
    for (r, g) in rows.iter().zip(&cal.gemm) {
        assert_eq!((r.published, r.modeled, r.ratio), (g.tflops, None, None));
    }
}

#[test]
fn every_calibration_row_names_its_source() {
    for target in Device::names() {
        let cal = Calibration::load(target).unwrap();
        assert_eq!(cal.target, target);
        assert!(!cal.gemm.is_empty());
        for g in &cal.gemm {
            assert!(g.source.contains("GEMM_FLOPS"), "{}", g.source);
            assert!(g.source.contains(&format!("m={} k={} n={}", g.m, g.k, g.n)));
        }
        assert!(!cal.dram_read.source.is_empty());
        for a in &cal.eltwise_add {
            assert!(a.source.contains("tt-llk issue 316"));
        }
    }
}
