//! The TT-Lang guide's complete kernels: extracted from the guide, parsed, round-tripped through
//! the printer, and run on the runtime against independent plain-Rust computations.
//!
//! The guide is read from `../../shared/reference/ttlang-guide.md` (relative to this crate) when
//! it is there; copies of the extracted kernels live in `tests/guide/` and are used when it is
//! not. When the guide is present the copies must equal what is extracted now; after a guide
//! change, refresh them with `TTFUSE_BLESS_GUIDE=1 cargo test -p ttfuse-runtime --test
//! guide_kernels`.

mod py_util;

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
fn printed_guide_kernels_are_valid_python() {
    if !py_util::python3_available("py_compile check") {
        return;
    }
    let printed: Vec<(String, String)> = sources()
        .into_iter()
        .map(|(name, text)| {
            let m = parse_module(&text, &name).unwrap_or_else(|e| panic!("{e}"));
            (name, print_module(&m))
        })
        .collect();
    py_util::assert_py_compiles("guide_printed", &printed);
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

// ---------------------------------------------------------------------------------------------
// Running the kernels: each output against an independent f32 computation of what the guide's
// semantics say the kernel produces.
// ---------------------------------------------------------------------------------------------

use ttfuse_runtime::device::Device;
use ttfuse_runtime::exec::{run_kernel, KernelReport};
use ttfuse_runtime::tensor::{Tensor, TILE};

/// A row-major f32 matrix for the expected values.
#[derive(Clone, Debug)]
struct Mat {
    rows: usize,
    cols: usize,
    data: Vec<f32>,
}

impl Mat {
    fn of(t: &Tensor) -> Mat {
        Mat {
            rows: t.rows,
            cols: t.cols,
            data: t.to_f32(),
        }
    }

    fn zeros(rows: usize, cols: usize) -> Mat {
        Mat {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.cols + c]
    }

    fn map(&self, f: impl Fn(f32) -> f32) -> Mat {
        Mat {
            data: self.data.iter().map(|&v| f(v)).collect(),
            ..self.clone()
        }
    }

    fn zip(&self, o: &Mat, f: impl Fn(f32, f32) -> f32) -> Mat {
        assert_eq!((self.rows, self.cols), (o.rows, o.cols));
        Mat {
            data: self
                .data
                .iter()
                .zip(&o.data)
                .map(|(&a, &b)| f(a, b))
                .collect(),
            ..self.clone()
        }
    }

    /// The matrix product, accumulated in f64.
    fn matmul(&self, o: &Mat) -> Mat {
        assert_eq!(self.cols, o.rows);
        let mut out = Mat::zeros(self.rows, o.cols);
        for i in 0..self.rows {
            for j in 0..o.cols {
                let s: f64 = (0..self.cols)
                    .map(|k| self.at(i, k) as f64 * o.at(k, j) as f64)
                    .sum();
                out.data[i * o.cols + j] = s as f32;
            }
        }
        out
    }

    /// Rows `r0..r0+h`, columns `c0..c0+w` (in elements).
    fn sub(&self, r0: usize, c0: usize, h: usize, w: usize) -> Mat {
        let mut out = Mat::zeros(h, w);
        for i in 0..h {
            for j in 0..w {
                out.data[i * w + j] = self.at(r0 + i, c0 + j);
            }
        }
        out
    }

    fn sum(&self) -> f64 {
        self.data.iter().map(|&v| v as f64).sum()
    }

    fn max(&self) -> f32 {
        self.data.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

/// Deterministic pseudo-random values in `[lo, hi)` (splitmix64).
fn values(seed: u64, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

fn random(seed: u64, rows: usize, cols: usize, lo: f32, hi: f32) -> Tensor {
    Tensor::from_f32(rows, cols, &values(seed, rows * cols, lo, hi))
}

fn constant(rows: usize, cols: usize, v: f32) -> Tensor {
    Tensor::from_f32(rows, cols, &vec![v; rows * cols])
}

/// Runs guide kernel `kernel` (the `nth` of that name) on Wormhole with `args`, in place.
fn run_report(kernel: &str, nth: usize, args: &mut [Tensor]) -> KernelReport {
    let m = module(kernel, nth);
    let device = Device::load("wormhole_b0").expect("wormhole_b0 device");
    run_kernel(&m, kernel, &device, args)
        .unwrap_or_else(|e| panic!("{kernel} failed on the runtime: {e}"))
}

/// Like [`run_report`] for a kernel that must run without warnings.
fn run(kernel: &str, nth: usize, args: &mut [Tensor]) -> KernelReport {
    let r = run_report(kernel, nth, args);
    assert!(r.warnings.is_empty(), "{kernel}: {:#?}", r.warnings);
    r
}

/// `got` is exactly `want` rounded to bf16 (for results of one f32 op stored once).
fn assert_exact(what: &str, got: &Tensor, want: &Mat) {
    let want = Tensor::from_f32(want.rows, want.cols, &want.data);
    assert!(
        *got == want,
        "{what}: not the bf16 rounding of the f32 result"
    );
}

/// `got` is within `rtol * max|want|` (plus a tiny absolute slack) of `want` everywhere, as
/// bf16 storage allows, and correlates with it (PCC >= 0.999) when `want` varies.
fn assert_close(what: &str, got: &Tensor, want: &Mat, rtol: f32) {
    assert_eq!(
        (got.rows, got.cols),
        (want.rows, want.cols),
        "{what}: shape"
    );
    let got = got.to_f32();
    let scale = want.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let tol = rtol * scale + 1e-6;
    let (worst, err) = got
        .iter()
        .zip(&want.data)
        .map(|(g, w)| (g - w).abs())
        .enumerate()
        .fold((0, 0.0f32), |(bi, be), (i, e)| {
            if e > be || e.is_nan() {
                (i, e)
            } else {
                (bi, be)
            }
        });
    assert!(
        err <= tol,
        "{what}: element ({}, {}) is {} but should be {} (|diff| {err} > {tol} = {rtol} * max|want| {scale})",
        worst / want.cols,
        worst % want.cols,
        got[worst],
        want.data[worst]
    );
    let n = got.len() as f64;
    let (mg, mw) = (
        got.iter().map(|&v| v as f64).sum::<f64>() / n,
        want.sum() / n,
    );
    let (mut sgw, mut sgg, mut sww) = (0.0, 0.0, 0.0);
    for (&g, &w) in got.iter().zip(&want.data) {
        let (dg, dw) = (g as f64 - mg, w as f64 - mw);
        sgw += dg * dw;
        sgg += dg * dg;
        sww += dw * dw;
    }
    if sww > 0.0 {
        let pcc = sgw / (sgg.sqrt() * sww.sqrt());
        assert!(pcc >= 0.999, "{what}: PCC {pcc} < 0.999");
    }
}

/// Relative tolerance for results that went through a few bf16 stores.
const RTOL: f32 = 0.02;

fn relu_squared(m: &Mat) -> Mat {
    m.map(|v| v.max(0.0) * v.max(0.0))
}

#[test]
fn runs_add_kernel_template() {
    let (lhs, rhs) = (random(1, 32, 32, -4.0, 4.0), random(2, 32, 32, -4.0, 4.0));
    let want = Mat::of(&lhs).zip(&Mat::of(&rhs), |a, b| a + b);
    let mut args = [lhs, rhs, Tensor::zeros(32, 32)];
    run("add_kernel", 0, &mut args);
    assert_exact("add_kernel (template)", &args[2], &want);
}

#[test]
fn runs_add_kernel_cuda_translation() {
    let (a, b) = (random(3, 32, 32, -4.0, 4.0), random(4, 32, 32, 0.0, 1.0));
    let want = Mat::of(&a).zip(&Mat::of(&b), |x, y| x + y);
    let mut args = [a, b, Tensor::zeros(32, 32)];
    run("add_kernel", 1, &mut args);
    assert_exact("add_kernel (CUDA translation)", &args[2], &want);
}

#[test]
fn runs_multicore_kernel() {
    // 8x8 grid, one tile per core: core (x, y) adds tile [y, x].
    let (lhs, rhs) = (
        random(5, 256, 256, -2.0, 2.0),
        random(6, 256, 256, -2.0, 2.0),
    );
    let want = Mat::of(&lhs).zip(&Mat::of(&rhs), |a, b| a + b);
    let mut args = [lhs, rhs, Tensor::zeros(256, 256)];
    let r = run("multicore_kernel", 0, &mut args);
    assert_exact("multicore_kernel", &args[2], &want);
    assert_eq!(
        r.cores.len(),
        64,
        "one core report per core of the 8x8 grid"
    );
}

#[test]
fn runs_large_tensor_kernel() {
    // 2048x2048 on an 8x8 grid. Core (x, y) streams BLOCKS_PER_CORE = 4 blocks of 2x2 tiles at
    // tile row y*8 + (b // 4)*2 = y*8 and tile column x*8 + (b % 4)*2: tile rows y*8..y*8+2,
    // tile columns x*8..x*8+8, through exp. Everything else of `out` stays zero.
    let n = 2048;
    let inp = random(7, n, n, -2.0, 2.0);
    let x = Mat::of(&inp);
    let mut want = Mat::zeros(n, n);
    for cy in 0..8 {
        for cx in 0..8 {
            for r in (cy * 8) * TILE..(cy * 8 + 2) * TILE {
                for c in (cx * 8) * TILE..(cx * 8 + 8) * TILE {
                    want.data[r * n + c] = x.at(r, c).exp();
                }
            }
        }
    }
    let mut args = [inp, Tensor::zeros(n, n)];
    run("large_tensor_kernel", 0, &mut args);
    assert_close("large_tensor_kernel", &args[1], &want, 0.01);
}

#[test]
fn runs_gather_kernel() {
    // Grid 4x1: worker x (1..3) computes exp of tile [0, x] and sends it through pipe x to the
    // coordinator, which receives pipe1, pipe2, pipe3 in that order into gather_cb; its compute
    // copies each gathered block to out_cb, and its writer writes the first one it takes from
    // out_cb (worker 1's) to out[0, 0].
    //
    // As written, the kernel ends with blocks left in two CBs of the coordinator: its reader
    // fills inp_cb, which its compute never reads, and its compute pushes three blocks to out_cb,
    // of which its writer takes one. That is harmless (no thread waits for them) and the guide
    // presents the kernel as working, so the runtime finishes it and reports each as a warning.
    let inp = random(8, 32, 4 * 32, -2.0, 2.0);
    let want = Mat::of(&inp).sub(0, 32, 32, 32).map(f32::exp);
    let mut args = [inp, Tensor::zeros(32, 32)];
    let r = run_report("gather_kernel", 0, &mut args);
    assert_close("gather_kernel", &args[1], &want, 0.01);
    let at = "kernel `gather_kernel`, core (0, 0): ";
    assert_eq!(r.warnings.len(), 2, "{:#?}", r.warnings);
    for (w, cb, n) in [(&r.warnings[0], "inp_cb", 1), (&r.warnings[1], "out_cb", 2)] {
        assert!(
            w.starts_with(&format!("{at}CB `{cb}`"))
                && w.contains(&format!(
                    "ends the kernel with {n} block(s) pushed but never consumed"
                )),
            "{w}"
        );
    }
    assert_eq!(r.noc_bytes, 3 * 2048, "three one-tile blocks through pipes");
}

#[test]
fn runs_full_reduce_bcast_matmul_kernel() {
    // A is 256x256 (8x8 tiles). Core c reads, for row in 0..2 and col in 0..2, the 4x1-tile
    // block at tile rows row*4.., tile column c*2 + col, reduces each to a scalar (times the
    // scaler value), and keeps |s0| + s1 + s2 + s3. That scalar, broadcast over 4x4 tiles, is
    // multiplied by B: m_c[i, j] = local_c * sum_k B[k, j]. The coordinator writes
    // | |m_0| + |m_1| + |m_2| + |m_3| | (workers send |m_c|) to out[0:4, 0:4].
    // The first row of blocks (tile rows 0..4) sums negative and the second positive, so the
    // abs() of the first block and of the gathered products matter.
    let s = 0.25;
    let a_vals: Vec<f32> = values(9, 256 * 256, -0.5, 0.5)
        .iter()
        .enumerate()
        .map(|(i, v)| v + if i / 256 < 4 * TILE { -0.3 } else { 0.2 })
        .collect();
    let a = Tensor::from_f32(256, 256, &a_vals);
    let b = random(10, 128, 128, -0.1, 0.1);
    let (am, bm) = (Mat::of(&a), Mat::of(&b));
    let locals: Vec<f64> = (0..4)
        .map(|c| {
            let mut blocks = Vec::new();
            for row in 0..2 {
                for col in 0..2 {
                    let blk = am.sub(row * 4 * TILE, (c * 2 + col) * TILE, 4 * TILE, TILE);
                    blocks.push(blk.sum() * s as f64);
                }
            }
            blocks[0].abs() + blocks[1] + blocks[2] + blocks[3]
        })
        .collect();
    let colsum: Vec<f64> = (0..128)
        .map(|j| (0..128).map(|k| bm.at(k, j) as f64).sum())
        .collect();
    let row: Vec<f32> = colsum
        .iter()
        .map(|cs| locals.iter().map(|l| (l * cs).abs()).sum::<f64>() as f32)
        .collect();
    let want = Mat {
        rows: 128,
        cols: 128,
        data: row.repeat(128),
    };
    let mut args = [a, b, constant(32, 32, s), Tensor::zeros(128, 128)];
    let r = run("full_reduce_bcast_matmul_kernel", 0, &mut args);
    assert_close("full_reduce_bcast_matmul_kernel", &args[3], &want, 0.03);
    assert_eq!(
        r.noc_bytes,
        3 * 16 * 2048,
        "three 4x4-tile blocks through pipes"
    );
}

/// x (128x128), w_fc (128x512), w_proj (512x128) with moderate activations.
fn mlp_inputs(seed: u64) -> (Tensor, Tensor, Tensor) {
    (
        random(seed, 128, 128, -1.0, 1.0),
        random(seed + 1, 128, 512, -0.15, 0.15),
        random(seed + 2, 512, 128, -0.1, 0.1),
    )
}

#[test]
fn runs_fused_mlp_kernel() {
    // out = relu(x @ w_fc)^2 @ w_proj.
    let (x, w_fc, w_proj) = mlp_inputs(11);
    let want = relu_squared(&Mat::of(&x).matmul(&Mat::of(&w_fc))).matmul(&Mat::of(&w_proj));
    let mut args = [x, w_fc, w_proj, Tensor::zeros(128, 128)];
    run("fused_mlp_kernel", 0, &mut args);
    assert_close("fused_mlp_kernel", &args[3], &want, RTOL);
}

#[test]
fn runs_streaming_mlp_kernel() {
    // out = |sum over 4 chunks of relu(x @ w_fc[:, chunk])^2 @ w_proj[chunk, :]|
    //     = |relu(x @ w_fc)^2 @ w_proj|.
    let (x, w_fc, w_proj) = mlp_inputs(14);
    let want = relu_squared(&Mat::of(&x).matmul(&Mat::of(&w_fc)))
        .matmul(&Mat::of(&w_proj))
        .map(f32::abs);
    let mut args = [x, w_fc, w_proj, Tensor::zeros(128, 128)];
    run("streaming_mlp_kernel", 0, &mut args);
    assert_close("streaming_mlp_kernel", &args[3], &want, RTOL);
}

#[test]
fn runs_fused_block_kernel() {
    // h1 = attn @ wo + x; n = h1 * rsqrt(s * sum(h1^2)) * ln2_w (s = 1/16384 makes it the
    // mean); out = relu(n @ w_fc)^2 @ w_proj + h1.
    let s = 1.0 / 16384.0;
    let attn = random(17, 128, 128, -1.0, 1.0);
    let x = random(18, 128, 128, -1.0, 1.0);
    let wo = random(19, 128, 128, -0.1, 0.1);
    let ln2_w = random(20, 128, 128, 0.5, 1.5);
    let (_, w_fc, w_proj) = mlp_inputs(21);
    let h1 = Mat::of(&attn)
        .matmul(&Mat::of(&wo))
        .zip(&Mat::of(&x), |a, b| a + b);
    let r = 1.0 / ((h1.map(|v| v * v).sum() * s) as f32).sqrt();
    let normed = h1.map(|v| v * r).zip(&Mat::of(&ln2_w), |a, b| a * b);
    let mlp = relu_squared(&normed.matmul(&Mat::of(&w_fc))).matmul(&Mat::of(&w_proj));
    let want = mlp.zip(&h1, |a, b| a + b);
    let mut args = [
        attn,
        x,
        wo,
        ln2_w,
        w_fc,
        w_proj,
        constant(32, 32, s as f32),
        Tensor::zeros(128, 128),
    ];
    run("fused_block_kernel", 0, &mut args);
    assert_close("fused_block_kernel", &args[7], &want, RTOL);
}

#[test]
fn runs_softmax_kernel() {
    // reduce over dims=[0, 1] covers the whole 128x128 block: softmax over all its elements.
    let x = random(22, 128, 128, -3.0, 3.0);
    let xm = Mat::of(&x);
    let mx = xm.max();
    let e = xm.map(|v| (v - mx).exp());
    let total = e.sum() as f32;
    let want = e.map(|v| v / total);
    let mut args = [x, constant(32, 32, 1.0), Tensor::zeros(128, 128)];
    run("softmax_kernel", 0, &mut args);
    assert_close("softmax_kernel", &args[2], &want, RTOL);
}

#[test]
fn runs_rmsnorm_kernel() {
    // out = x * rsqrt(s * sum(x^2)) * weight, with s = 1/16384 the scaler value (the mean).
    let s = 1.0 / 16384.0;
    let x = random(23, 128, 128, -2.0, 2.0);
    let w = random(24, 128, 128, 0.5, 1.5);
    let xm = Mat::of(&x);
    let r = 1.0 / ((xm.map(|v| v * v).sum() * s) as f32).sqrt();
    let want = xm.map(|v| v * r).zip(&Mat::of(&w), |a, b| a * b);
    let mut args = [x, w, constant(32, 32, s as f32), Tensor::zeros(128, 128)];
    run("rmsnorm_kernel", 0, &mut args);
    assert_close("rmsnorm_kernel", &args[3], &want, RTOL);
}
