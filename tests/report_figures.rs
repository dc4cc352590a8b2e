//! The report figures of a real run: per-core utilization covers the grid, is a share of the
//! kernel cycles, and is zero exactly on cores no kernel used; step figures follow the runtime's
//! per-kernel report in order.

use std::collections::BTreeMap;

use ttfuse::import::ImportOptions;
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::optimize::OptimizeOptions;
use ttfuse::report::figures::{core_utilization, step_figures, Roof};
use ttfuse::{inputs, pipeline};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{Dispatch, ProgramReport};

fn run(target: &str) -> (Device, ProgramReport) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/mlp/model.onnx");
    let model = pipeline::load_model(Some(&path), &ImportOptions::default()).unwrap();
    let device = Device::load(target).unwrap();
    let c = pipeline::compile(&model, &device, &OptimizeOptions::default()).unwrap();
    let data = inputs::complete_inputs(&model.graph, BTreeMap::new(), 0);
    let e = pipeline::execute(&c.fused, &device, &data, &GraphHostOps, Dispatch::Traced).unwrap();
    (device, e.report)
}

#[test]
fn utilization_covers_the_grid_and_is_a_share() {
    for target in ["wormhole_b0", "blackhole"] {
        let (device, report) = run(target);
        let util = core_utilization(&report, &device);
        assert_eq!(util.len(), (device.grid.x * device.grid.y) as usize);
        let used: std::collections::BTreeSet<(u32, u32)> = report
            .kernels
            .iter()
            .flat_map(|k| k.cores.iter().map(|c| (c.x, c.y)))
            .collect();
        for (i, u) in util.iter().enumerate() {
            assert_eq!((u.y * device.grid.x + u.x) as usize, i, "row-major order");
            assert!((0.0..=1.0).contains(&u.compute), "{u:?}");
            assert!((0.0..=1.0).contains(&u.datamovement), "{u:?}");
            if !used.contains(&(u.x, u.y)) {
                assert_eq!((u.compute, u.datamovement), (0.0, 0.0), "{u:?} ran nothing");
            }
        }
        assert!(
            util.iter().any(|u| u.compute > 0.0),
            "{target}: no core computed"
        );
    }
}

#[test]
fn step_figures_follow_the_runtime_report() {
    let (device, report) = run("wormhole_b0");
    let steps = step_figures(&report, &device);
    assert_eq!(steps.len(), report.steps.len());
    let mut start = 0.0;
    for (s, k) in steps.iter().zip(&report.kernels) {
        assert_eq!(s.name, k.name);
        assert_eq!(s.dram_bytes, k.dram_read_bytes + k.dram_write_bytes);
        assert_eq!(s.bound, k.roofline.bound);
        assert!((s.start_us - start).abs() < 1e-9);
        start += s.time_us;
        // The roofline time is at least what the DRAM traffic alone takes at full bandwidth.
        let roof = Roof::of(&device);
        assert!(s.roofline_us + 1e-12 >= roof.time_us(s.dram_bytes, 0.0));
    }
}
