//! Checks of printed TT-Lang with the system's `python3`, shared by the printer and guide tests.

use std::path::PathBuf;
use std::process::Command;

/// Whether `python3` is on PATH; when it is not, says that `what` was not run.
pub fn python3_available(what: &str) -> bool {
    let ok = Command::new("python3").arg("--version").output().is_ok();
    if !ok {
        eprintln!("python3 is not on PATH: {what} not run");
    }
    ok
}

/// Writes each `(file name, text)` into `dir` under the test temp dir and asserts that
/// `python3 -m py_compile` accepts it.
pub fn assert_py_compiles(dir: &str, files: &[(String, String)]) {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write printed file");
        let out = Command::new("python3")
            .args(["-m", "py_compile"])
            .arg(&path)
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "{} is not valid Python: {}\n{text}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
