//! The TT-Lang guide's complete kernels: extracted from the guide, parsed, round-tripped through
//! the printer, and run on the runtime against independent plain-Rust computations.
//!
//! The guide is read from `../../shared/reference/ttlang-guide.md` (relative to this crate) when
//! it is there; copies of the extracted kernels live in `tests/guide/` and are used when it is
//! not. When the guide is present the copies must equal what is extracted now; after a guide
//! change, refresh them with `TTFUSE_BLESS_GUIDE=1 cargo test -p ttfuse-runtime --test
//! guide_kernels`.

use std::path::{Path, PathBuf};

use ttfuse_runtime::ttl::ast::{Module, ThreadKind};
use ttfuse_runtime::ttl::parse::parse_module;
use ttfuse_runtime::ttl::print::print_module;

/// The kernels of the guide's complete examples, in guide order.
const EXPECTED: [&str; 11] = [
    "add_kernel",
    "large_tensor_kernel",
    "gather_kernel",
    "multicore_kernel",
    "add_kernel",
    "full_reduce_bcast_matmul_kernel",
    "fused_mlp_kernel",
    "fused_block_kernel",
    "streaming_mlp_kernel",
    "softmax_kernel",
    "rmsnorm_kernel",
];

/// The guide's location; `TTFUSE_GUIDE` overrides it (point it at a missing file to exercise
/// the stored copies).
fn guide_path() -> PathBuf {
    match std::env::var_os("TTFUSE_GUIDE") {
        Some(p) => PathBuf::from(p),
        None => {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/reference/ttlang-guide.md")
        }
    }
}

fn stored_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guide")
}

/// The guide text, if this checkout has it.
fn guide() -> Option<String> {
    std::fs::read_to_string(guide_path()).ok()
}

/// The contents of every fenced ```python block.
fn python_blocks(md: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match &mut current {
            None if line.trim() == "```python" => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some(text) => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    blocks
}

/// Why a block with a kernel is not a complete, runnable kernel, or `None` when it is one: it
/// parses and every kernel has one compute and two data-movement threads.
fn incomplete_reason(block: &str) -> Option<String> {
    let m = match parse_module(block, "block.py") {
        Ok(m) => m,
        Err(e) => return Some(e.to_string()),
    };
    if m.kernels.is_empty() {
        return Some("no kernel".into());
    }
    m.kernels.iter().find_map(|k| {
        let compute = k
            .threads
            .iter()
            .filter(|t| t.kind == ThreadKind::Compute)
            .count();
        let dm = k.threads.len() - compute;
        (compute != 1 || dm != 2).then(|| {
            format!(
                "`{}` has {compute} compute and {dm} data-movement threads",
                k.name
            )
        })
    })
}

/// The stored file name of the `i`-th complete block.
fn file_name(i: usize, kernel: &str) -> String {
    format!("{:02}_{kernel}.py", i + 1)
}

/// The complete kernel blocks of the guide text, with their stored file names.
fn extract(md: &str) -> Vec<(String, String)> {
    python_blocks(md)
        .into_iter()
        .filter(|b| b.contains("@ttl.kernel") && incomplete_reason(b).is_none())
        .enumerate()
        .map(|(i, b)| {
            let name = parse_module(&b, "block.py")
                .expect("complete blocks parse")
                .kernels[0]
                .name
                .clone();
            (file_name(i, &name), b)
        })
        .collect()
}

/// The stored copies, sorted by file name.
fn stored() -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(stored_dir())
        .expect("tests/guide exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .map(|p| {
            let name = p
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&p).expect("readable stored kernel");
            (name, text)
        })
        .collect();
    files.sort();
    files
}

/// The guide kernels: extracted from the guide when present, else the stored copies.
fn sources() -> Vec<(String, String)> {
    match guide() {
        Some(md) => {
            let extracted = extract(&md);
            if std::env::var_os("TTFUSE_BLESS_GUIDE").is_some() {
                for (name, text) in &extracted {
                    std::fs::write(stored_dir().join(name), text).expect("write stored kernel");
                }
            }
            extracted
        }
        None => stored(),
    }
}

/// The parsed module of the stored/extracted file whose kernel is `kernel` (the `nth` such
/// file, for the two `add_kernel`s).
fn module(kernel: &str, nth: usize) -> Module {
    let (name, text) = sources()
        .into_iter()
        .filter(|(name, _)| name.ends_with(&format!("_{kernel}.py")))
        .nth(nth)
        .unwrap_or_else(|| panic!("no guide kernel `{kernel}` #{nth}"));
    parse_module(&text, &name).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn guide_has_exactly_the_expected_complete_kernels() {
    let Some(md) = guide() else {
        eprintln!(
            "{} is absent: checked the stored copies only",
            guide_path().display()
        );
        return;
    };
    let names: Vec<String> = extract(&md)
        .iter()
        .map(|(f, _)| f[3..f.len() - 3].to_string())
        .collect();
    assert_eq!(names, EXPECTED);
    // The other kernel blocks are fragments, each for a stated reason.
    let fragments: Vec<String> = python_blocks(&md)
        .iter()
        .filter(|b| b.contains("@ttl.kernel"))
        .filter_map(|b| incomplete_reason(b))
        .collect();
    assert_eq!(fragments.len(), 5, "{fragments:#?}");
    for reason in &fragments {
        assert!(
            reason.contains("`...`") || reason.contains("threads"),
            "unexpected reason: {reason}"
        );
    }
}

#[test]
fn stored_copies_equal_the_guide() {
    let Some(md) = guide() else {
        eprintln!(
            "{} is absent: using the stored copies",
            guide_path().display()
        );
        return;
    };
    let extracted = extract(&md);
    let stored = stored();
    let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&stored),
        names(&extracted),
        "stored files differ from the guide's kernels; refresh with TTFUSE_BLESS_GUIDE=1"
    );
    for ((name, text), (_, want)) in stored.iter().zip(&extracted) {
        assert_eq!(
            text, want,
            "tests/guide/{name} drifted from the guide; refresh with TTFUSE_BLESS_GUIDE=1"
        );
    }
}

#[test]
fn every_guide_kernel_parses_and_round_trips() {
    let sources = sources();
    assert_eq!(sources.len(), EXPECTED.len());
    for (name, text) in &sources {
        let m = parse_module(text, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.kernels.len(), 1, "{name}");
        let k = &m.kernels[0];
        assert!(
            k.line > 0 && k.threads.iter().all(|t| t.line > 0),
            "{name}: lines are set"
        );
        let printed = print_module(&m);
        let back = parse_module(&printed, name).unwrap_or_else(|e| panic!("{e}\n{printed}"));
        assert_eq!(
            back.without_lines(),
            m.without_lines(),
            "{name} round trip:\n{printed}"
        );
        assert_eq!(
            print_module(&back),
            printed,
            "{name}: printing is a fixed point"
        );
    }
}

#[test]
fn guide_kernels_read_as_written() {
    let m = module("full_reduce_bcast_matmul_kernel", 0);
    let consts: Vec<String> = m
        .constants
        .iter()
        .map(|s| ttfuse_runtime::ttl::print::print_stmts(std::slice::from_ref(s), 0))
        .collect();
    assert_eq!(
        consts,
        [
            "COORDINATOR = 0\n",
            "ROWS_PER_CORE = 2\n",
            "COLS_PER_CORE = 2\n",
            "NUM_WORKERS = 3\n"
        ],
        "module constants kept, host code (imports, pytest, test function) ignored"
    );
    let k = &m.kernels[0];
    assert_eq!(k.grid, (4, 1));
    assert_eq!(k.params, ["A", "B", "scaler", "out"]);
    assert_eq!(k.setup.len(), 13, "3 pipes and 10 circular buffers");
    let kinds: Vec<(ThreadKind, &str)> = k
        .threads
        .iter()
        .map(|t| (t.kind, t.name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (ThreadKind::Compute, "compute"),
            (ThreadKind::DataMovement, "dm_read"),
            (ThreadKind::DataMovement, "dm_write")
        ]
    );
    let m = module("fused_mlp_kernel", 0);
    let doc = m.kernels[0].doc.as_deref().unwrap_or_default();
    assert!(
        doc.contains("Fused MLP: out = relu²(x @ w_fc) @ w_proj"),
        "{doc:?}"
    );
    assert_eq!(module("large_tensor_kernel", 0).kernels[0].grid, (8, 8));
}
