//! The command line as a user meets it: the README's commands, JSON output, and error paths.

use std::path::Path;
use std::process::{Command, Output};

fn ttfuse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ttfuse"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn compare_json_has_the_documented_schema() {
    let out = ttfuse(&["compare", "--json"]);
    assert!(
        out.status.success(),
        "compare --json failed: {}",
        stderr(&out)
    );
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&out)).expect("stdout is one JSON object");
    assert_eq!(v["model"], "attention_mlp");
    assert_eq!(v["target"], "wormhole_b0");
    for side in ["unfused", "fused"] {
        for key in ["kernels", "launches", "dram_bytes"] {
            assert!(
                v[side][key].is_u64(),
                "{side}.{key} is not an integer: {}",
                v[side]
            );
        }
        assert!(
            v[side]["time_us"].as_f64().is_some_and(|t| t > 0.0),
            "{side}.time_us: {}",
            v[side]
        );
    }
    let speedup = v["speedup"].as_f64().expect("speedup is a number");
    let expected =
        v["unfused"]["time_us"].as_f64().unwrap() / v["fused"]["time_us"].as_f64().unwrap();
    assert!(
        (speedup - expected).abs() < 1e-9 * expected,
        "speedup {speedup} != {expected}"
    );
    assert!(
        v["pcc"].as_f64().is_some_and(|p| p >= 0.999),
        "pcc {}",
        v["pcc"]
    );
    assert!(v["max_abs_err"].as_f64().is_some_and(|e| e >= 0.0));
}

#[test]
fn compare_says_when_a_reference_output_is_constant() {
    // SqueezeNet from onnx's light models: its weights are one value per tensor, so its
    // softmax is uniform whatever the network computes, and PCC 1 says nothing.
    let light = "models/onnx_light/package/light_squeezenet.onnx";
    let json = ttfuse(&["compare", light, "--json", "-q"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    assert_eq!(
        v["constant_references"],
        serde_json::json!(["softmaxout_1"])
    );
    let text = stdout(&ttfuse(&["compare", light, "-q"]));
    assert!(
        text.contains("note: every value of the reference's softmaxout_1 is the same"),
        "{text}"
    );
    // The default model's outputs vary: no note.
    let v: serde_json::Value =
        serde_json::from_str(&stdout(&ttfuse(&["compare", "--json", "-q"]))).unwrap();
    assert_eq!(v["constant_references"], serde_json::json!([]));
}

#[test]
fn compare_json_is_byte_identical_across_runs() {
    let a = ttfuse(&["compare", "--json"]);
    let b = ttfuse(&["compare", "--json"]);
    assert!(a.status.success(), "{}", stderr(&a));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn compare_prints_a_table() {
    let out = ttfuse(&["compare"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for word in ["unfused", "fused", "speedup", "PCC"] {
        assert!(text.contains(word), "table lacks '{word}':\n{text}");
    }
}

#[test]
fn fuse_writes_kernels_that_compile_as_python_and_a_host_driver() {
    let dir = tempdir("fuse_writes");
    let out = ttfuse(&["fuse", "models/mlp/model.onnx", "-o", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let kernels: Vec<_> = std::fs::read_dir(dir.join("kernels"))
        .expect("kernels/ written")
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!kernels.is_empty());
    assert!(dir.join("run.py").exists(), "no host driver");
    let mut files: Vec<_> = kernels
        .iter()
        .map(|p| p.to_str().unwrap().to_string())
        .collect();
    files.push(dir.join("run.py").to_str().unwrap().to_string());
    let status = Command::new("python3")
        .args(["-m", "py_compile"])
        .args(&files)
        .status()
        .expect("python3 runs");
    assert!(status.success(), "emitted Python does not compile");
}

#[test]
fn a_misspelled_path_is_a_clear_error() {
    let out = ttfuse(&["compare", "models/mlp/modle.onnx"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("modle.onnx"),
        "error does not name the file: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_malformed_onnx_file_is_a_clear_error() {
    let dir = tempdir("malformed");
    let bad = dir.join("bad.onnx");
    std::fs::write(&bad, b"this is not a protobuf \xff\xff\xff").unwrap();
    let out = ttfuse(&[
        "fuse",
        bad.to_str().unwrap(),
        "-o",
        dir.join("o").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("bad.onnx"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_unknown_op_is_a_clear_error() {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/errors/unknown_op.onnx");
    let out = ttfuse(&["compare", model.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("unsupported") || err.contains("unknown"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn an_unknown_target_is_a_clear_error() {
    let out = ttfuse(&["compare", "--target", "grayskull"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("grayskull") && err.contains("wormhole_b0"),
        "{err}"
    );
}

#[test]
fn every_subcommand_has_help() {
    let cases: &[(&str, &[&str])] = &[
        (
            "fuse",
            &["--out", "--target", "--dispatch", "--seed", "--input"],
        ),
        (
            "compare",
            &[
                "--json",
                "--html",
                "--target",
                "--dispatch",
                "--seed",
                "--input",
                "--outputs",
            ],
        ),
        (
            "export",
            &["--out", "--target", "--dispatch", "--seed", "--input"],
        ),
        ("explain", &["--json", "--dot", "--target"]),
        ("inspect", &["--json", "--dim", "--shape"]),
        ("run", &["--kernel", "--arg", "--out", "--json", "--target"]),
    ];
    for (cmd, flags) in cases {
        let out = ttfuse(&[cmd, "--help"]);
        assert!(out.status.success(), "{cmd} --help: {}", stderr(&out));
        let text = stdout(&out);
        for flag in *flags {
            assert!(text.contains(flag), "{cmd} --help lacks {flag}:\n{text}");
        }
        for global in ["--quiet", "--verbose"] {
            assert!(text.contains(global), "{cmd} --help lacks {global}");
        }
    }
    let top = stdout(&ttfuse(&["--help"]));
    for cmd in ["fuse", "compare", "export", "explain", "inspect", "run"] {
        assert!(top.contains(cmd), "--help does not list {cmd}:\n{top}");
    }
}

#[test]
fn bad_flags_are_usage_errors() {
    for args in [
        &["compare", "--bogus"][..],
        &["export"][..],
        &["compare", "--dispatch", "sometimes"][..],
        &["compare", "--quiet", "--verbose"][..],
        &["frobnicate"][..],
    ] {
        let out = ttfuse(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.starts_with("error:") && err.contains("--help"),
            "{args:?}: not a usage error: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn every_model_command_rejects_an_unknown_target_and_a_missing_file() {
    let dir = tempdir("unknown_target");
    let out_dir = dir.join("o");
    let o = out_dir.to_str().unwrap();
    for cmd in [
        &["fuse", "-o", o][..],
        &["compare"][..],
        &["export", "-o", o][..],
        &["explain"][..],
    ] {
        let mut args = cmd.to_vec();
        args.extend(["--target", "grayskull"]);
        let out = ttfuse(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(
            err.contains("grayskull") && err.contains("blackhole"),
            "{args:?}: {err}"
        );

        let mut args = cmd.to_vec();
        args.push("no/such/model.onnx");
        let out = ttfuse(&args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(err.contains("no/such/model.onnx"), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let out = ttfuse(&["inspect", "no/such/model.onnx"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no/such/model.onnx"),
        "{}",
        stderr(&out)
    );
    let out = ttfuse(&["run", "no/such/kernel.py"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no/such/kernel.py"),
        "{}",
        stderr(&out)
    );
    assert!(
        !out_dir.exists(),
        "a failed command wrote its output directory"
    );
}

#[test]
fn compare_json_steps_add_up_to_the_totals() {
    let out = ttfuse(&["compare", "--json", "models/mlp/model.onnx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    for side in ["unfused", "fused"] {
        let p = &v[side];
        let steps = p["steps"].as_array().expect("steps listed");
        assert_eq!(
            steps.len() as u64,
            p["launches"].as_u64().unwrap(),
            "{side}"
        );
        let time: f64 = steps.iter().map(|s| s["time_us"].as_f64().unwrap()).sum();
        let total = p["time_us"].as_f64().unwrap();
        assert!(
            (time - total).abs() < 1e-6 * total,
            "{side}: {time} vs {total}"
        );
        let bytes: u64 = steps
            .iter()
            .map(|s| s["dram_bytes"].as_u64().unwrap())
            .sum();
        assert_eq!(bytes, p["dram_bytes"].as_u64().unwrap(), "{side}");
        let mut start = 0.0;
        for s in steps {
            let t = s["start_us"].as_f64().unwrap();
            assert!(
                (t - start).abs() < 1e-9 * total.max(1.0),
                "{side}: steps overlap"
            );
            start += s["time_us"].as_f64().unwrap();
            let bound = s["bound"].as_str().unwrap();
            assert!(
                ["dram", "compute", "dispatch", "waiting"].contains(&bound),
                "{bound}"
            );
            // modeled time / roofline time, as documented.
            if let Some(m) = s["roofline_multiple"].as_f64() {
                let want = s["time_us"].as_f64().unwrap() / s["roofline_us"].as_f64().unwrap();
                assert!((m - want).abs() < 1e-9 * want, "{m} vs {want}");
                assert!(m >= 1.0, "a step faster than its roofline: {s}");
            }
        }
    }
    // Two linear layers: 2 * M * K * N FLOPs each (x[128,256], hidden 512). Beyond them, at
    // most one FLOP per output element for each bias add and the ReLU, and one per output
    // element for each K tile after the first (a running sum over K chunks of one tile each).
    let matmul_flops = 2.0 * (2.0 * 128.0 * 256.0 * 512.0);
    let elementwise = 2.0 * 128.0 * 512.0 + 128.0 * 256.0;
    let running_sums = 128.0 * 512.0 * (256.0 / 32.0 - 1.0) + 128.0 * 256.0 * (512.0 / 32.0 - 1.0);
    for side in ["unfused", "fused"] {
        let flops = v[side]["flops"].as_f64().unwrap();
        assert!(flops >= matmul_flops, "{side}: {flops} < {matmul_flops}");
        let most = matmul_flops + elementwise + running_sums;
        assert!(flops <= most, "{side}: {flops} > {most}");
    }
}

#[test]
fn eager_dispatch_costs_the_device_figure_per_launch() {
    let json = |dispatch: &str| -> serde_json::Value {
        let out = ttfuse(&["compare", "--json", "--dispatch", dispatch]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let (traced, eager) = (json("traced"), json("eager"));
    let device = ttfuse_runtime::device::Device::load("wormhole_b0").unwrap();
    let per_launch = device.dispatch.eager_us - device.dispatch.traced_us;
    assert_eq!(eager["dispatch"], "eager");
    for side in ["unfused", "fused"] {
        let launches = traced[side]["launches"].as_f64().unwrap();
        let extra =
            eager[side]["time_us"].as_f64().unwrap() - traced[side]["time_us"].as_f64().unwrap();
        assert!(
            (extra - launches * per_launch).abs() < 1e-6 * extra,
            "{side}: eager adds {extra} us over {launches} launches, expected {per_launch} each"
        );
    }
}

#[test]
fn blackhole_is_a_target() {
    let out = ttfuse(&[
        "compare",
        "--json",
        "--target",
        "blackhole",
        "models/mlp/model.onnx",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["target"], "blackhole");
    assert!(v["pcc"].as_f64().unwrap() >= 0.999);
}

#[test]
fn fuse_writes_byte_identical_bundles() {
    let dir = tempdir("fuse_identical");
    let (a, b) = (dir.join("a"), dir.join("b"));
    for d in [&a, &b] {
        let out = ttfuse(&["fuse", "-o", d.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    assert_same_tree(&a, &b);
}

#[test]
fn inspect_reports_the_mlp() {
    let out = ttfuse(&["inspect", "--json", "models/mlp/model.onnx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(v["inputs"][0]["name"], "x");
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([128, 256]));
    assert_eq!(v["outputs"][0]["shape"], serde_json::json!([128, 256]));
    // Linear(256, 512) and Linear(512, 256): weights and biases (models/make_models.py).
    assert_eq!(v["parameters"], 256 * 512 + 512 + 512 * 256 + 256);
    assert_eq!(v["ops"]["MatMul"], 2);
    let text = stdout(&ttfuse(&["inspect", "models/mlp/model.onnx"]));
    assert!(text.contains("parameters: 262912"), "{text}");
}

#[test]
fn explain_accounts_for_every_kernel_and_writes_dot() {
    let dir = tempdir("explain");
    let out = ttfuse(&["explain", "--json", "--dot", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let c: serde_json::Value =
        serde_json::from_str(&stdout(&ttfuse(&["compare", "--json"]))).unwrap();
    let kernels: Vec<&str> = e["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    let launched: Vec<&str> = c["fused"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        kernels, launched,
        "explain's kernels are not the ones compare launched"
    );
    // Every op of the optimized graph is in exactly one kernel or needs none.
    let mut placed = std::collections::BTreeMap::<String, usize>::new();
    for k in e["kernels"].as_array().unwrap() {
        for op in k["ops"].as_array().unwrap() {
            *placed
                .entry(op[1].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    for f in e["free"].as_array().unwrap() {
        *placed
            .entry(f["op"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    // The kernels compute the optimized graph with its composites expanded.
    let after: std::collections::BTreeMap<String, usize> =
        serde_json::from_value(e["ops_after"].clone()).unwrap();
    let planned: std::collections::BTreeMap<String, usize> =
        serde_json::from_value(e["ops_planned"].clone()).unwrap();
    assert_eq!(placed, planned);
    assert_eq!(after.get("Attention"), Some(&1), "{after:?}");
    assert_eq!(after.get("Mlp"), Some(&1), "{after:?}");
    assert!(!planned.contains_key("Attention") && !planned.contains_key("Mlp"));
    for b in e["not_fused"].as_array().unwrap() {
        assert!(!b["reason"].as_str().unwrap().is_empty());
    }
    let text = stdout(&ttfuse(&["explain"]));
    for word in ["rules fired", "kernels:", "not fused"] {
        assert!(text.contains(word), "explain lacks '{word}':\n{text}");
    }
    for (file, clusters) in [("before.dot", 0), ("after.dot", kernels.len())] {
        let dot = std::fs::read_to_string(dir.join(file)).expect("dot written");
        assert!(dot.starts_with("digraph "), "{file}");
        assert_eq!(dot.matches('{').count(), dot.matches('}').count(), "{file}");
        assert_eq!(dot.matches("subgraph cluster_").count(), clusters, "{file}");
        let declared: std::collections::BTreeSet<&str> = dot
            .lines()
            .filter_map(|l| l.trim().split_once(" [label=").map(|(id, _)| id))
            .collect();
        for line in dot.lines().filter(|l| l.contains(" -> ")) {
            let (a, b) = line
                .trim()
                .trim_end_matches(';')
                .split_once(" -> ")
                .unwrap();
            assert!(
                declared.contains(a) && declared.contains(b),
                "{file}: {line}"
            );
        }
    }
}

#[test]
fn explain_names_fallback_ops() {
    let out = ttfuse(&["explain", "--json", "models/resnet_block/model.onnx"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let fallbacks = e["fallbacks"].as_array().unwrap();
    assert!(
        !fallbacks.is_empty(),
        "the ResNet block's convolutions run as fallbacks"
    );
    // The nodes of the planner's host kernels.
    let host_nodes: Vec<&str> = e["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "Host")
        .flat_map(|k| k["ops"].as_array().unwrap())
        .map(|op| op[0].as_str().unwrap())
        .collect();
    assert_eq!(
        host_nodes.len(),
        fallbacks.len(),
        "one host kernel per fallback step"
    );
    // Every break next to a host node, and only those, is reported as a fallback.
    let mut fallback_breaks = 0;
    for b in e["not_fused"].as_array().unwrap() {
        let touches = ["producer", "consumer"]
            .iter()
            .any(|k| host_nodes.contains(&b[*k].as_str().unwrap()));
        assert_eq!(touches, b["category"] == "fallback", "{b}");
        fallback_breaks += usize::from(touches);
    }
    assert!(fallback_breaks > 0);
    let text = stdout(&ttfuse(&["explain", "models/resnet_block/model.onnx"]));
    assert!(
        text.contains("TTNN fallback ops") && text.contains("[fallback op]"),
        "{text}"
    );
}

/// Asserts that two directories hold the same files with the same bytes.
fn assert_same_tree(a: &Path, b: &Path) {
    fn files(root: &Path, dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                files(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_path_buf());
            }
        }
    }
    let (mut fa, mut fb) = (Vec::new(), Vec::new());
    files(a, a, &mut fa);
    files(b, b, &mut fb);
    fa.sort();
    fb.sort();
    assert_eq!(fa, fb);
    assert!(!fa.is_empty());
    for f in &fa {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{} differs",
            f.display()
        );
    }
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ttfuse-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Pearson correlation of two equally long slices.
fn pcc(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let ma = a.iter().map(|&x| x as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&x| x as f64).sum::<f64>() / n;
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64 - ma, y as f64 - mb);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

fn read_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    match ttfuse::npy::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
        ttfuse::graph::TensorData::F32 { shape, values } => (shape, values),
        other => panic!("{} is not f32: {other:?}", path.display()),
    }
}

#[test]
fn compare_with_a_stored_input_reproduces_the_stored_onnxruntime_outputs() {
    let dir = tempdir("outputs");
    let out = ttfuse(&[
        "compare",
        "models/mlp/model.onnx",
        "--input",
        "x=models/mlp/inputs/x.npy",
        "--outputs",
        dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let want_dir = Path::new("models/mlp/outputs");
    let mut checked = 0;
    for entry in std::fs::read_dir(want_dir).unwrap() {
        let file = entry.unwrap().file_name();
        let (want_shape, want) = read_f32(&want_dir.join(&file));
        let (ref_shape, reference) = read_f32(&dir.join("reference").join(&file));
        assert_eq!(ref_shape, want_shape);
        let worst = reference
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst <= 1e-4, "reference differs by {worst}");
        for side in ["unfused", "fused"] {
            let (shape, got) = read_f32(&dir.join(side).join(&file));
            assert_eq!(shape, want_shape, "{side}");
            let p = pcc(&got, &want);
            assert!(p >= 0.999, "{side} PCC {p}");
        }
        checked += 1;
    }
    assert!(checked > 0, "models/mlp/outputs holds no outputs");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempdir("bad-inputs");
    let wrong_shape = dir.join("wrong.npy");
    ttfuse::npy::write(
        &wrong_shape,
        &ttfuse::graph::TensorData::f32(vec![3, 5], vec![0.5; 15]),
    )
    .unwrap();
    let wrong = format!("x={}", wrong_shape.display());
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["--input", "nope=models/mlp/inputs/x.npy"],
            &["nope", "x ["],
        ),
        (
            &["--input", "x=models/mlp/inputs/missing.npy"],
            &["missing.npy"],
        ),
        (&["--input", &wrong], &["wrong.npy", "[3, 5]"]),
        (
            &[
                "--input",
                "x=models/mlp/inputs/x.npy",
                "--input",
                "x=models/mlp/inputs/x.npy",
            ],
            &["more than once"],
        ),
    ];
    let model_shape = {
        let out = ttfuse(&["inspect", "--json", "models/mlp/model.onnx"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        format!("{}", v["inputs"][0]["shape"]).replace(',', ", ")
    };
    for (cmd, extra) in [("compare", &[][..]), ("fuse", &["-o", "unused"][..])] {
        for (flags, words) in cases {
            let mut args = vec![cmd, "models/mlp/model.onnx"];
            args.extend_from_slice(extra);
            args.extend_from_slice(flags);
            let out = ttfuse(&args);
            assert_eq!(out.status.code(), Some(1), "{args:?} did not fail cleanly");
            let err = stderr(&out);
            assert!(!err.contains("panicked"), "{args:?}: {err}");
            for w in *words {
                assert!(err.contains(w), "{args:?}: error lacks '{w}':\n{err}");
            }
            if flags.contains(&wrong.as_str()) {
                assert!(err.contains(&model_shape), "lacks {model_shape}:\n{err}");
            }
        }
    }
    assert!(!Path::new("unused").exists());
}

/// `ConvRelu` as `conv_relu`: a graph op's name as TTNN op names write it.
fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// What `fuse` should print about fallbacks, from the planner's host kernels in `explain --json`.
fn expected_fallback_line(model: &str) -> String {
    let out = ttfuse(&["explain", "--json", model]);
    assert!(out.status.success(), "{}", stderr(&out));
    let e: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ops: Vec<String> = e["kernels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["kind"] == "Host")
        .flat_map(|k| k["ops"].as_array().unwrap())
        .map(|op| {
            format!(
                "ttnn.{} ({})",
                snake_case(op[1].as_str().unwrap()),
                op[0].as_str().unwrap()
            )
        })
        .collect();
    match ops.len() {
        0 => "no TTNN fallback ops".to_string(),
        1 => format!("1 TTNN fallback op: {}", ops[0]),
        n => format!("{n} TTNN fallback ops: {}", ops.join(", ")),
    }
}

#[test]
fn fuse_lists_every_fallback_op_with_its_node() {
    let dir = tempdir("fallbacks");
    let mut listed = 0;
    for model in [
        "models/gpt2_block/model.onnx",
        "models/llama_block/model.onnx",
        "models/resnet_block/model.onnx",
        "models/mlp/model.onnx",
    ] {
        let out = ttfuse(&["fuse", model, "-o", dir.to_str().unwrap()]);
        assert!(out.status.success(), "{model}: {}", stderr(&out));
        let text = stdout(&out);
        let want = expected_fallback_line(model);
        assert!(
            text.lines().any(|l| l == want),
            "{model}: fuse does not print\n{want}\nbut\n{text}"
        );
        if model.contains("mlp") {
            assert_eq!(want, "no TTNN fallback ops");
        } else if want.contains(": ttnn.") {
            listed += 1;
        }
    }
    assert!(listed > 0, "no block lists a fallback op");
}
