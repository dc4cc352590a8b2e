//! Where rules fired (`OptimizeReport::rewrites`): on the exported models, the expected rules are
//! reported at the optimized-graph nodes that replaced the input nodes they rewrote, the report
//! is deterministic, and `ttfuse explain` prints the same lines.

use std::path::Path;
use std::process::Command;

use ttfuse::graph::{BinaryOp, Graph, Op, UnaryOp};
use ttfuse::import::ImportOptions;
use ttfuse::optimize::{optimize, Composite, OptimizeOptions, Optimized, Rewrite};
use ttfuse::pipeline;

fn path(rel: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models")
        .join(rel)
        .to_string_lossy()
        .into_owned()
}

fn load(rel: &str) -> Graph {
    pipeline::load_model(Some(Path::new(&path(rel))), &ImportOptions::default())
        .expect("model imports")
        .graph
}

/// Names of the nodes of `g` whose op satisfies `pred`, in topological order.
fn nodes(g: &Graph, pred: impl Fn(&Op) -> bool) -> Vec<String> {
    g.topo_order()
        .into_iter()
        .filter(|&i| pred(&g.node(i).op))
        .map(|i| g.node(i).name.clone())
        .collect()
}

fn op_of<'a>(g: &'a Graph, name: &str) -> &'a Op {
    let i = g
        .dag
        .node_indices()
        .find(|&i| g.node(i).name == name)
        .unwrap_or_else(|| panic!("no node `{name}`"));
    &g.node(i).op
}

/// Names of the inputs of node `name` of `g`.
fn inputs_of(g: &Graph, name: &str) -> Vec<String> {
    let i = g
        .dag
        .node_indices()
        .find(|&i| g.node(i).name == name)
        .unwrap_or_else(|| panic!("no node `{name}`"));
    g.inputs_of(i)
        .iter()
        .map(|&s| g.node(s).name.clone())
        .collect()
}

/// The rewrites of `rule` whose e-class held input node `original`.
fn at<'a>(out: &'a Optimized, rule: &str, original: &str) -> Vec<&'a Rewrite> {
    out.report
        .rewrites
        .iter()
        .filter(|w| w.rule == rule && w.from.iter().any(|f| f == original))
        .collect()
}

/// Properties every report has: nodes are in the output graph, `from` names are input nodes,
/// and located plus unlocated applications are all the applications counted per rule.
fn consistent(before: &Graph, out: &Optimized) {
    let r = &out.report;
    assert!(!r.rewrites.is_empty());
    for w in &r.rewrites {
        op_of(&out.graph, &w.node);
        for f in &w.from {
            op_of(before, f);
        }
        assert!(w.applications >= 1);
        assert!(r.stages.iter().any(|s| s.name == w.stage), "{w:?}");
    }
    let located: usize = r.rewrites.iter().map(|w| w.applications).sum();
    let counted: usize = r.rules_fired.values().sum();
    assert_eq!(located + r.rewrites_not_extracted, counted);
    let mut sorted = r.rewrites.clone();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        r.rewrites.len(),
        "one entry per stage, node and rule"
    );
}

#[test]
fn conv_bn_fold_and_conv_relu_are_reported_at_the_nodes_they_replaced() {
    let g = load("resnet_block/model.onnx");
    let out = optimize(&g, &OptimizeOptions::default()).expect("optimizes");
    consistent(&g, &out);
    let bns = nodes(&g, |op| matches!(op, Op::BatchNorm { .. }));
    assert_eq!(bns.len(), 2);
    // The first BatchNorm's only user is a ReLU: the folded convolution and the ReLU are one
    // `conv_relu`, computed for the ReLU's class (the BatchNorm's class is not extracted). The
    // second feeds the residual add: its folded convolution is computed for its own class.
    let relus = nodes(&g, |op| matches!(op, Op::Unary(UnaryOp::Relu)));
    let after_bn1 = relus
        .iter()
        .find(|r| inputs_of(&g, r)[0] == bns[0])
        .expect("a ReLU reads the first BatchNorm");
    for (bn, rule, replaced) in [
        (&bns[0], "conv-bias-relu", after_bn1),
        (&bns[1], "conv-bn-fold", &bns[1]),
    ] {
        let ws = at(&out, rule, replaced);
        assert_eq!(ws.len(), 1, "{replaced}: {:?}", out.report.rewrites);
        let w = ws[0];
        assert_eq!(w.stage, "fuse");
        assert_eq!(
            w.from,
            vec![replaced.clone()],
            "the class holds only its own node"
        );
        // The node computed is the convolution with folded weights and bias (kept a
        // convolution by optimize::conv's cost model), with the ReLU fused where it follows,
        // over the same data input as the convolution that fed the BatchNormalization.
        let relu = replaced != bn;
        assert!(
            matches!(op_of(&out.graph, &w.node), Op::Conv { relu: r, .. } if *r == relu),
            "{replaced}: {:?}",
            op_of(&out.graph, &w.node)
        );
        let conv = &inputs_of(&g, bn)[0];
        assert!(matches!(op_of(&g, conv), Op::Conv { .. }));
        let data = &inputs_of(&g, conv)[0];
        let folded_input = &inputs_of(&out.graph, &w.node)[0];
        assert_eq!(folded_input, data, "{bn}");
    }
}

#[test]
fn softmax_and_division_rewrites_are_reported_at_their_nodes() {
    let g = load("attention_mlp/model.onnx");
    let softmaxes = nodes(&g, |op| matches!(op, Op::Softmax { .. }));
    assert_eq!(softmaxes.len(), 1);
    let sm = &softmaxes[0];
    // By default the softmax is inside the attention composite, recognized at the product
    // that consumes it.
    let out = optimize(&g, &OptimizeOptions::default()).expect("optimizes");
    consistent(&g, &out);
    let context = nodes(&g, |op| matches!(op, Op::MatMul))
        .into_iter()
        .find(|m| inputs_of(&g, m).contains(sm))
        .expect("the softmax feeds a matmul");
    let attention = at(&out, "attention", &context);
    assert_eq!(attention.len(), 1, "{:?}", out.report.rewrites);
    assert_eq!(attention[0].stage, "recognize");
    assert!(matches!(
        op_of(&out.graph, &attention[0].node),
        Op::Attention { .. }
    ));
    // A backend without an attention kernel gets the softmax expanded.
    let mut opts = OptimizeOptions::default();
    opts.cost.composite_kernels.remove(&Composite::Attention);
    let out = optimize(&g, &opts).expect("optimizes");
    consistent(&g, &out);
    let expand = at(&out, "softmax-expand", sm);
    assert_eq!(expand.len(), 1, "{:?}", out.report.rewrites);
    assert_eq!(expand[0].stage, "decompose");
    // The expansion divides by the row sum; the fuse stage turns that into a reciprocal.
    let recip = at(&out, "div-recip", sm);
    assert_eq!(recip.len(), 1, "{:?}", out.report.rewrites);
    assert_eq!(recip[0].stage, "fuse");
    assert_eq!(recip[0].node, expand[0].node);
    // x / c (the attention scale): a division whose divisor is a constant.
    let divs = nodes(&g, |op| matches!(op, Op::Binary(BinaryOp::Div)));
    let by_const: Vec<&String> = divs
        .iter()
        .filter(|d| matches!(op_of(&g, &inputs_of(&g, d)[1]), Op::Constant(_)))
        .collect();
    assert_eq!(by_const.len(), 1, "{divs:?}");
    let w = at(&out, "div-recip", by_const[0]);
    assert_eq!(w.len(), 1, "{:?}", out.report.rewrites);
    assert_eq!(w[0].stage, "simplify");
    assert_eq!(w[0].from, vec![by_const[0].clone()]);
}

#[test]
fn the_rewrite_report_is_deterministic() {
    for model in ["attention_mlp/model.onnx", "resnet_block/model.onnx"] {
        let g = load(model);
        let a = optimize(&g, &OptimizeOptions::default()).expect("optimizes");
        let b = optimize(&g, &OptimizeOptions::default()).expect("optimizes");
        let ja = serde_json::to_string(&a.report).expect("serializes");
        let jb = serde_json::to_string(&b.report).expect("serializes");
        assert_eq!(ja, jb, "{model}");
        assert!(ja.contains("\"rewrites\""));
    }
}

fn explain(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_ttfuse"))
        .arg("explain")
        .args(args)
        .output()
        .expect("the binary runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn explain_prints_where_rules_fired_in_text_and_json() {
    for model in ["resnet_block/model.onnx", "attention_mlp/model.onnx"] {
        let g = load(model);
        let out = optimize(&g, &OptimizeOptions::default()).expect("optimizes");
        let text = explain(&[&path(model)]);
        let json = explain(&["--json", &path(model)]);
        let parsed: serde_json::Value = serde_json::from_str(&json).expect("explain JSON parses");
        let listed = parsed["optimizer"]["rewrites"]
            .as_array()
            .expect("the JSON lists rewrites");
        assert_eq!(listed.len(), out.report.rewrites.len(), "{model}");
        for (w, j) in out.report.rewrites.iter().zip(listed) {
            assert_eq!(j["rule"], w.rule.as_str());
            assert_eq!(j["node"], w.node.as_str());
            assert_eq!(j["stage"], w.stage.as_str());
        }
        // Every rewrite's line follows its stage's header.
        for w in &out.report.rewrites {
            let line = format!("{} → {} (from: ", w.rule, w.node);
            let header = format!("    stage {}:\n", w.stage);
            let h = text
                .find(&header)
                .unwrap_or_else(|| panic!("{header}\n{text}"));
            assert!(text[h..].contains(&line), "{line}\n{text}");
        }
        if model.starts_with("resnet") {
            // The BatchNorm that feeds the residual add is folded at its own node (the other
            // is folded into the conv_relu computed for the ReLU after it).
            let folded: Vec<&Rewrite> = nodes(&g, |op| matches!(op, Op::BatchNorm { .. }))
                .iter()
                .flat_map(|bn| at(&out, "conv-bn-fold", bn))
                .collect();
            assert_eq!(folded.len(), 1, "{:?}", out.report.rewrites);
            let (node, bn) = (&folded[0].node, &folded[0].from[0]);
            let line = format!("conv-bn-fold → {node} (from: {bn})\n");
            assert!(text.contains(&line), "{line}\n{text}");
        }
    }
}
