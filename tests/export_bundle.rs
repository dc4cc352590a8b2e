//! `ttfuse export` and `ttfuse run DIR`: the bundle re-runs on the runtime with the outputs
//! `compare` computes, stores the reference interpreter's outputs, is byte-identical across
//! runs, and a damaged bundle is a clear error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ttfuse::import::ImportOptions;
use ttfuse::lower::fallback::GraphHostOps;
use ttfuse::optimize::OptimizeOptions;
use ttfuse::{inputs, npy, pipeline};
use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::Dispatch;

fn ttfuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttfuse"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("stdout is JSON")
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ttfuse-export-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn export(model: Option<&str>, dir: &Path) {
    let mut args = vec!["export", "-o", dir.to_str().unwrap()];
    args.extend(model);
    let out = ttfuse(&args);
    assert!(out.status.success(), "export failed: {}", stderr(&out));
}

#[test]
fn the_bundle_reruns_with_compares_outputs() {
    check_rerun("rerun_default", None);
}

/// The GPT-2 block has TTNN fallback steps (slices, reshapes, where) between its kernels.
#[test]
fn a_bundle_with_fallback_ops_reruns_with_compares_outputs() {
    check_rerun("rerun_gpt2", Some("models/gpt2_block/model.onnx"));
}

fn check_rerun(name: &str, model_path: Option<&str>) {
    let dir = tempdir(name);
    let bundle = dir.join("bundle");
    export(model_path, &bundle);
    let results = dir.join("results");
    let run = json(&ttfuse(&[
        "run",
        bundle.to_str().unwrap(),
        "--json",
        "--out",
        results.to_str().unwrap(),
    ]));
    let mut compare = vec!["compare", "--json"];
    compare.extend(model_path);
    let cmp = json(&ttfuse(&compare));
    // Same agreement with the reference, same modeled time and traffic as compare's fused run.
    assert_eq!(run["pcc"], cmp["pcc"]);
    assert_eq!(run["max_abs_err"], cmp["max_abs_err"]);
    assert_eq!(run["time_us"], cmp["fused"]["time_us"]);
    assert_eq!(run["dram_bytes"], cmp["fused"]["dram_bytes"]);
    assert_eq!(run["launches"], cmp["fused"]["launches"]);

    // The outputs are bit for bit those of the fused program run in process, and the stored
    // reference outputs are the reference interpreter's.
    let path = model_path.map(|p| Path::new(env!("CARGO_MANIFEST_DIR")).join(p));
    let model = pipeline::load_model(path.as_deref(), &ImportOptions::default()).unwrap();
    let device = Device::load("wormhole_b0").unwrap();
    let compiled = pipeline::compile(&model, &device, &OptimizeOptions::default()).unwrap();
    let data = inputs::complete_inputs(&model.graph, BTreeMap::new(), 0);
    let fused = pipeline::execute(
        &compiled.fused,
        &device,
        &data,
        &GraphHostOps,
        Dispatch::Traced,
    )
    .unwrap();
    let expected = pipeline::reference_outputs(&model.graph, &data).unwrap();
    assert!(!compiled.fused.outputs.is_empty());
    for b in &compiled.fused.outputs {
        let got = npy::read(&results.join(format!("{}.npy", b.tensor))).unwrap();
        assert_eq!(got.shape(), b.shape.as_slice());
        assert_eq!(
            got.to_f32(),
            fused.outputs[&b.name].to_f32(),
            "output {}",
            b.name
        );
        let stored =
            npy::read(&bundle.join("reference").join(format!("{}.npy", b.tensor))).unwrap();
        assert_eq!(
            stored.to_f32(),
            expected[&b.name].to_f32(),
            "reference {}",
            b.name
        );
    }

    // A program with host steps ships their numpy implementation, and the driver compiles.
    let host_ops = bundle.join("ttfuse_host_ops.py");
    let has_host = compiled
        .fused
        .program
        .steps
        .iter()
        .any(|s| matches!(s, ttfuse_runtime::program::Step::Host { .. }));
    assert_eq!(host_ops.exists(), has_host);
    let status = Command::new("python3")
        .args(["-m", "py_compile"])
        .arg(bundle.join("run.py"))
        .args(has_host.then_some(&host_ops))
        .status()
        .expect("python3 runs");
    assert!(status.success(), "run.py does not compile");

    // The text form names every output with its agreement.
    let text = ttfuse(&["run", bundle.to_str().unwrap()]);
    assert!(text.status.success(), "{}", stderr(&text));
    let text = String::from_utf8_lossy(&text.stdout);
    for b in &compiled.fused.outputs {
        assert!(text.contains(&format!("{}: max |err|", b.name)), "{text}");
    }
}

#[test]
fn the_bundle_holds_kernels_driver_readme_and_manifest() {
    let dir = tempdir("contents");
    export(Some("models/mlp/model.onnx"), &dir);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("program.json")).unwrap()).unwrap();
    let kernels = manifest["kernels"].as_array().unwrap();
    assert!(!kernels.is_empty());
    let mut py = vec![dir.join("run.py")];
    for k in kernels {
        let file = dir
            .join("kernels")
            .join(format!("{}.py", k.as_str().unwrap()));
        assert!(file.exists(), "{} missing", file.display());
        py.push(file);
    }
    let status = Command::new("python3")
        .args(["-m", "py_compile"])
        .args(&py)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "the bundle's Python does not compile");
    let driver = std::fs::read_to_string(dir.join("run.py")).unwrap();
    for k in kernels {
        let k = k.as_str().unwrap();
        assert!(
            driver.contains(&format!("from {k} import {k}")),
            "run.py does not import {k}"
        );
        assert!(
            driver.contains(&format!("        {k}(")),
            "run.py does not call {k}"
        );
    }
    for t in manifest["tensors"].as_array().unwrap() {
        let init = t["init"].as_str().unwrap();
        if init.starts_with("weights/") {
            assert!(dir.join(init).exists(), "{init} missing");
            assert!(driver.contains(init), "run.py does not load {init}");
        }
    }
    for o in manifest["outputs"].as_array().unwrap() {
        let f = dir
            .join("reference")
            .join(format!("{}.npy", o["tensor"].as_str().unwrap()));
        assert!(f.exists(), "{} missing", f.display());
    }
    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(
        readme.contains("python run.py") && readme.contains("ttfuse run"),
        "{readme}"
    );
}

#[test]
fn export_is_byte_identical_across_runs() {
    let dir = tempdir("identical");
    let (a, b) = (dir.join("a"), dir.join("b"));
    export(None, &a);
    export(None, &b);
    let mut files = Vec::new();
    collect(&a, &a, &mut files);
    files.sort();
    assert!(files.len() > 5);
    for f in &files {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).expect("same file in both"),
            "{} differs",
            f.display()
        );
    }
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            collect(root, &p, out);
        } else {
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
        }
    }
}

#[test]
fn a_damaged_bundle_is_a_clear_error() {
    let dir = tempdir("damaged");
    let fresh = |name: &str| {
        let d = dir.join(name);
        export(Some("models/mlp/model.onnx"), &d);
        d
    };
    let run_err = |d: &Path, extra: &[&str]| {
        let mut args = vec!["run", d.to_str().unwrap()];
        args.extend(extra);
        let out = ttfuse(&args);
        assert!(!out.status.success(), "{} ran", d.display());
        let err = stderr(&out);
        assert!(!err.contains("panicked"), "{err}");
        err
    };

    let d = fresh("no_weight");
    let weight = std::fs::read_dir(d.join("weights"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::remove_file(&weight).unwrap();
    let err = run_err(&d, &[]);
    assert!(
        err.contains(weight.file_name().unwrap().to_str().unwrap()),
        "{err}"
    );

    let d = fresh("bad_manifest");
    std::fs::write(d.join("program.json"), "{ not json").unwrap();
    assert!(run_err(&d, &[]).contains("program.json"));

    let d = fresh("escape");
    let text = std::fs::read_to_string(d.join("program.json")).unwrap();
    std::fs::write(
        d.join("program.json"),
        text.replacen("\"weights/", "\"../weights/", 1),
    )
    .unwrap();
    assert!(run_err(&d, &[]).contains(".."));

    let d = fresh("bad_kernel");
    let kernel = std::fs::read_dir(d.join("kernels"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&kernel, "import ttl\n\ndef broken(:\n").unwrap();
    assert!(run_err(&d, &[]).contains(kernel.file_name().unwrap().to_str().unwrap()));

    let d = fresh("other_target");
    let err = run_err(&d, &["--target", "blackhole"]);
    assert!(err.contains("wormhole_b0"), "{err}");

    let d = fresh("kernel_flag");
    assert!(run_err(&d, &["--kernel", "x"]).contains("bundle"));

    // A `fuse` bundle stores no inputs to run on.
    let d = dir.join("fused_only");
    let out = ttfuse(&["fuse", "models/mlp/model.onnx", "-o", d.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(run_err(&d, &[]).contains("ttfuse export"));

    assert!(run_err(&dir.join("nothing_here"), &[]).contains("nothing_here"));
}
