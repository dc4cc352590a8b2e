//! Import speed on a GPT-2-small-sized ONNX graph (12 layers, d = 768, sequence 1024, ~346 MB
//! of f32 weights in the file): reading and decoding the protobuf, decoding the weights,
//! shape inference of every node and constant folding. The target is under 300 ms.
//!
//! Make the model once: `/work/pyenv/bin/python models/make_gpt2_small.py`
//! (writes `target/bench-models/gpt2_small.onnx`), then run `cargo bench --bench import`.

use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use ttfuse::import::{load, ImportOptions};

fn import_gpt2_small(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-models/gpt2_small.onnx");
    assert!(
        path.is_file(),
        "{} is missing; make it with `/work/pyenv/bin/python models/make_gpt2_small.py` \
         (needs torch and onnx) and run the bench again",
        path.display()
    );
    let opts = ImportOptions::default();
    let graph = load(&path, &opts).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "gpt2_small: {} nodes after import and folding",
        graph.dag.node_count()
    );
    let mut group = c.benchmark_group("import");
    group.sample_size(10);
    group.bench_function("gpt2_small", |b| {
        b.iter(|| load(&path, &opts).unwrap_or_else(|e| panic!("{e}")))
    });
    group.finish();
}

criterion_group!(benches, import_gpt2_small);
criterion_main!(benches);
