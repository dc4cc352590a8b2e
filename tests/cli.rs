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

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ttfuse-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
