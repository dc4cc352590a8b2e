//! The device targets load from their data files, and every figure cites a source.

use ttfuse_runtime::device::{Device, DeviceError};

#[test]
fn both_targets_load_with_the_facts_figures() {
    assert_eq!(Device::names(), vec!["blackhole", "wormhole_b0"]);
    let wh = Device::load("wormhole_b0").unwrap();
    assert_eq!((wh.grid.x, wh.grid.y, wh.clock_ghz), (8, 8, 1.0));
    assert_eq!(wh.l1.total_bytes, 1_499_136);
    assert_eq!(wh.max_cbs_per_core, 32);
    assert_eq!(wh.dram.measured_gbps, 267.0);
    assert_eq!(wh.core_dm.dram_read_bytes_per_cycle, 22.0);
    assert_eq!(wh.compute.matmul_cycles_per_tile.hifi4, 64.0);
    let bh = Device::load("blackhole").unwrap();
    assert_eq!((bh.grid.x, bh.grid.y, bh.clock_ghz), (11, 10, 1.35));
    assert_eq!(bh.l1.usable_bytes(), 1464 * 1024);
    assert!((bh.dram_bytes_per_cycle() - 500.0 / 1.35).abs() < 1e-9);
}

#[test]
fn every_figure_has_a_source_and_assumptions_say_so() {
    for name in Device::names() {
        let d = Device::load(name).unwrap();
        // Every leaf of the serialized device is a figure with a recorded source.
        fn leaves(v: &serde_json::Value, path: String, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, c) in m {
                        let p = if path.is_empty() {
                            k.clone()
                        } else {
                            format!("{path}.{k}")
                        };
                        leaves(c, p, out);
                    }
                }
                _ => out.push(path),
            }
        }
        let mut paths = Vec::new();
        leaves(
            &serde_json::to_value(&d).unwrap(),
            String::new(),
            &mut paths,
        );
        for p in &paths {
            let s = d
                .sources
                .get(p)
                .unwrap_or_else(|| panic!("{name}: `{p}` has no source"));
            // A figure comes from tensix-facts.md, is an assumption that says so, or is fitted
            // to a published measurement (which timing_calibration.rs checks the model against).
            assert!(
                s.contains("tensix-facts.md")
                    || s.starts_with("assumed")
                    || s.starts_with("fitted:")
                    || s.contains("target name"),
                "{p}: {s}"
            );
        }
        assert_eq!(paths.len(), d.sources.len());
        for f in [
            "exp", "log", "sqrt", "rsqrt", "recip", "tanh", "sigmoid", "relu", "abs", "neg",
            "floor", "division", "max", "min", "power",
        ] {
            assert!(d.sfpu(f).is_some(), "{name} lacks SFPU cost for {f}");
        }
        assert!(d.sources["sfpu_cycles_per_tile.relu"].starts_with("assumed"));
    }
}

#[test]
fn malformed_files_are_rejected_with_the_figure_named() {
    let e = Device::from_json("t", r#"{"name": "x"}"#).unwrap_err();
    assert!(
        matches!(&e, DeviceError::Invalid { reason, .. } if reason.contains("`name`") && reason.contains("needs a source")),
        "{e}"
    );
    let e = Device::from_json("t", r#"{"name": {"value": "x"}}"#).unwrap_err();
    assert!(
        e.to_string().contains("figure `name` has no \"source\""),
        "{e}"
    );
    let e = Device::from_json("t", r#"{"name": {"value": "x", "source": "s"}}"#).unwrap_err();
    assert!(
        e.to_string().contains("t.json") && e.to_string().contains("missing field"),
        "{e}"
    );
}
