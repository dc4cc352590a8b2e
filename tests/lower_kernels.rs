//! Every emitted kernel is valid Python, parses back to the same AST, and compiling twice gives
//! byte-identical kernels, plan and host driver.

mod lower_common;

use std::process::Command;

use lower_common::*;
use ttfuse::lower::{compile, FusionMode};
use ttfuse_runtime::ttl::parse::parse_module;
use ttfuse_runtime::ttl::print::print_kernel;

fn all_programs() -> Vec<(String, ttfuse::lower::Compiled)> {
    let dev = device();
    let mut out = Vec::new();
    for (name, g) in all_graphs() {
        for mode in [FusionMode::Fused, FusionMode::Unfused] {
            let c = compile(&g, &dev, mode).unwrap_or_else(|e| panic!("{name} {mode:?}: {e}"));
            out.push((format!("{name}_{mode:?}").to_lowercase(), c));
        }
    }
    out
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ttfuse_lower_{tag}_{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[test]
fn printed_kernels_and_host_drivers_compile_as_python() {
    let dir = temp_dir("pycompile");
    let mut files = Vec::new();
    for (tag, c) in all_programs() {
        let mut modules = Vec::new();
        for k in &c.program.kernels {
            let module = format!("{tag}_{}", k.name);
            let path = dir.join(format!("{module}.py"));
            std::fs::write(&path, print_kernel(k)).expect("write kernel");
            files.push(path);
            modules.push(module);
        }
        let driver = dir.join(format!("{tag}_host.py"));
        std::fs::write(&driver, ttfuse::bundle::driver::driver(&c)).expect("write driver");
        files.push(driver);
    }
    let status = Command::new("python3")
        .arg("-m")
        .arg("py_compile")
        .args(&files)
        .status()
        .expect("python3 runs");
    assert!(
        status.success(),
        "py_compile failed on one of {} files in {}",
        files.len(),
        dir.display()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn printed_kernels_parse_back_to_the_same_ast() {
    for (tag, c) in all_programs() {
        for k in &c.program.kernels {
            let text = print_kernel(k);
            let module = parse_module(&text, &format!("{}.py", k.name))
                .unwrap_or_else(|e| panic!("{tag} {}: {e}\n{text}", k.name));
            assert_eq!(module.kernels.len(), 1, "{tag} {}", k.name);
            assert_eq!(module.without_lines().kernels[0], *k, "{tag} {}", k.name);
        }
    }
}

#[test]
fn compiling_twice_gives_identical_output() {
    let first = all_programs();
    let second = all_programs();
    for ((tag, a), (_, b)) in first.iter().zip(&second) {
        assert_eq!(a.program, b.program, "{tag}");
        let ja = serde_json::to_string(&a.plan).expect("plan serializes");
        let jb = serde_json::to_string(&b.plan).expect("plan serializes");
        assert_eq!(ja, jb, "{tag}");
        assert_eq!(
            ttfuse::bundle::driver::driver(a),
            ttfuse::bundle::driver::driver(b),
            "{tag}"
        );
    }
}

#[test]
fn kernels_have_one_compute_and_two_data_movement_threads_and_unique_names() {
    for (tag, c) in all_programs() {
        let mut names: Vec<&str> = c.program.kernels.iter().map(|k| k.name.as_str()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "{tag}: kernel names repeat");
        for k in &c.program.kernels {
            let threads: Vec<&str> = k.threads.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(
                threads,
                ["compute", "dm_read", "dm_write"],
                "{tag} {}",
                k.name
            );
        }
    }
}

/// Block-argument ops (reduce, matmul, broadcast, transpose) as they are printed.
const BLOCK_OPS: [&str; 5] = [
    "ttl.math.reduce_",
    "ttl.math.matmul(",
    "ttl.math.broadcast(",
    "ttl.transpose(",
    "ttl.math.transpose(",
];

#[test]
fn an_inline_broadcast_is_the_first_op_of_its_stage() {
    // The guide fuses an op taking a block argument only as the first op of a chain: a
    // broadcast computed inside the stage that uses it is bound first, and nothing else in that
    // stage takes a block.
    let (mut inline, mut stored) = (0, 0);
    for (tag, c) in all_programs() {
        for k in &c.program.kernels {
            let text = print_kernel(k);
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for (i, line) in lines.iter().enumerate() {
                if line.contains(".store(ttl.math.broadcast(") {
                    stored += 1;
                }
                let bound = line.contains(" = ttl.math.broadcast(") && !line.contains(".store(");
                if !bound {
                    continue;
                }
                inline += 1;
                let before = lines[i - 1];
                assert!(
                    before.starts_with("with ") && before.ends_with(':'),
                    "{tag} {}: the broadcast is not its stage's first op:\n{before}\n{line}",
                    k.name
                );
                // The stage's other statements: locals, then its store.
                let end = (i + 1..lines.len())
                    .find(|&j| lines[j].contains(".store("))
                    .expect("a stage ends with its store");
                for rest in &lines[i + 1..=end] {
                    assert!(
                        !BLOCK_OPS.iter().any(|op| rest.contains(op)),
                        "{tag} {}: another block op shares the broadcast's stage:\n{line}\n{rest}",
                        k.name
                    );
                }
            }
        }
    }
    // The norms' last stage scales by the inverse deviation and gamma and shifts by beta: one
    // of its three broadcasts is inline, the others have stages of their own.
    assert!(inline > 0 && stored > 0, "{inline} inline, {stored} stored");
}
