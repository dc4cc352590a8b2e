//! Rule tests in egg's `test_fn!` style: a start expression and the goal its e-class must reach
//! with the real rule files; plus cases where a rule must not fire.
//!
//! Leaves `%name` are declared per test: `x:4x8` is an f32 input of shape [4, 8], `c=0.5` a 0-d
//! f32 constant, `c=1:4x8` a constant of shape [4, 8] filled with 1, `g~8` a constant of shape
//! [8] whose elements differ (so that a rule that mixes up its axes changes the value).

use std::collections::BTreeMap;
use std::sync::Arc;

use egg::{Id, Pattern, RecExpr, Rewrite, Runner, Searcher};
use ttfuse::graph::{DType, TensorData, TensorType};
use ttfuse::optimize::analysis::{TGraph, TableEntry, TensorAnalysis};
use ttfuse::optimize::convert::{build, Loaded};
use ttfuse::optimize::extract::Extraction;
use ttfuse::optimize::language::TNode;
use ttfuse::optimize::rules::{load_stages, to_rewrite};
use ttfuse::reference;

fn rules() -> Vec<Rewrite<TNode, TensorAnalysis>> {
    load_stages(None)
        .unwrap()
        .iter()
        .flat_map(|s| {
            s.rules[..s.own]
                .iter()
                .map(|r| to_rewrite(r).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn shape(s: &str) -> Vec<usize> {
    s.split('x').map(|d| d.parse().unwrap()).collect()
}

fn table(decl: &str) -> BTreeMap<String, TableEntry> {
    let mut t = BTreeMap::new();
    for item in decl.split_whitespace() {
        let (name, entry) = if let Some((name, sh)) = item.split_once('~') {
            let sh = shape(sh);
            let values = (0..sh.iter().product())
                .map(|j: usize| 0.5 + (j % 7) as f32 * 0.25 - (j % 3) as f32 * 0.3)
                .collect();
            let data = TensorData::F32 {
                shape: sh.clone(),
                values,
            };
            (
                name,
                TableEntry {
                    name: name.into(),
                    ty: TensorType::new(sh, DType::F32),
                    data: Some(Arc::new(data)),
                },
            )
        } else if let Some((name, rest)) = item.split_once('=') {
            let (v, sh) = rest.split_once(':').unwrap_or((rest, ""));
            let sh = if sh.is_empty() { vec![] } else { shape(sh) };
            let v: f32 = v.parse().unwrap();
            let n = sh.iter().product();
            let data = TensorData::F32 {
                shape: sh.clone(),
                values: vec![v; n],
            };
            (
                name,
                TableEntry {
                    name: name.into(),
                    ty: TensorType::new(sh, DType::F32),
                    data: Some(Arc::new(data)),
                },
            )
        } else {
            let (name, sh) = item.split_once(':').unwrap();
            (
                name,
                TableEntry {
                    name: name.into(),
                    ty: TensorType::new(shape(sh), DType::F32),
                    data: None,
                },
            )
        };
        t.insert(format!("%{name}"), entry);
    }
    t
}

fn runner(decl: &str) -> Runner<TNode, TensorAnalysis> {
    Runner::new(TensorAnalysis::new(table(decl)))
        .with_iter_limit(12)
        .with_node_limit(20_000)
}

/// Runs every rule from `start` and says whether `goal` is in the start's e-class.
fn reaches(decl: &str, start: &str, goal: &str) -> bool {
    let start: RecExpr<TNode> = start.parse().unwrap();
    let goal: Pattern<TNode> = goal.parse().unwrap();
    let r = runner(decl).with_expr(&start).run(&rules());
    assert!(
        r.egraph.analysis.conflicts.is_empty(),
        "{:?}",
        r.egraph.analysis.conflicts
    );
    let root = r.egraph.find(r.roots[0]);
    goal.search_eclass(&r.egraph, root).is_some()
}

// ---- simplify ----

egg::test_fn! { mul_one, rules(), runner = runner("x:4x8"), "(mul %x 1)" => "%x" }
egg::test_fn! { add_zero_either_side, rules(), runner = runner("x:4x8"), "(add 0 %x)" => "%x" }
egg::test_fn! { neg_neg, rules(), runner = runner("x:4x8"), "(neg (neg %x))" => "%x" }
egg::test_fn! { div_sqrt_is_mul_rsqrt, rules(), runner = runner("x:4x8 y:4x8"),
"(div %x (sqrt %y))" => "(mul %x (rsqrt %y))" }
egg::test_fn! { mul_recip_is_div, rules(), runner = runner("x:4x8 y:4x8"),
"(mul (recip %y) %x)" => "(div %x %y)" }
egg::test_fn! { pow_two_is_square, rules(), runner = runner("x:4x8"), "(pow %x 2)" => "(mul %x %x)" }
egg::test_fn! { pow_half_is_sqrt, rules(), runner = runner("x:4x8 h=0.5"), "(pow %x %h)" => "(sqrt %x)" }
egg::test_fn! { transposes_cancel, rules(), runner = runner("x:2x3x4"),
"(transpose [1,2,0] (transpose [2,0,1] %x))" => "%x" }
egg::test_fn! { transposes_merge, rules(), runner = runner("x:2x3x4"),
"(transpose [1,0,2] (transpose [0,2,1] %x))" => "(transpose [2,0,1] %x)" }
egg::test_fn! { reshapes_merge, rules(), runner = runner("x:2x6"),
"(reshape [3,4] (reshape [12] %x))" => "(reshape [3,4] %x)" }
egg::test_fn! { reshape_round_trip_vanishes, rules(), runner = runner("x:2x6"),
"(reshape [2,6] (reshape [12] %x))" => "%x" }

#[test]
fn mul_one_does_not_drop_a_broadcast() {
    // x * ones(4, 8) has shape [4, 8], not x's [8].
    assert!(!reaches("x:8 c=1:4x8", "(mul %x %c)", "%x"));
    assert!(reaches("x:4x8 c=1:4x8", "(mul %x %c)", "%x"));
}

#[test]
fn affine_maps_fold_only_by_constants() {
    // A graph input as the second scale: its product with the first is not a constant.
    let folded = "(add (mul %x (mul %a %c)) (add (mul %b %c) %d))";
    assert!(!reaches(
        "x:1x3x4x4 a~3x1x1 b~3x1x1 c:3x1x1 d~3x1x1",
        "(add (mul (add (mul %x %a) %b) %c) %d)",
        folded
    ));
    assert!(reaches(
        "x:1x3x4x4 a~3x1x1 b~3x1x1 c~3x1x1 d~3x1x1",
        "(add (mul (add (mul %x %a) %b) %c) %d)",
        folded
    ));
}

#[test]
fn transposes_of_equal_dims_do_not_cancel_unless_inverse() {
    assert!(!reaches(
        "x:4x4x4",
        "(transpose [0,2,1] (transpose [1,0,2] %x))",
        "%x"
    ));
}

// ---- recognize ----

egg::test_fn! { softmax_stable_form, rules(), runner = runner("x:4x8"),
"(div (exp (sub %x (rmax [1] true %x))) (rsum [1] true (exp (sub %x (rmax [1] true %x)))))"
=> "(softmax [1] %x)" }
egg::test_fn! { softmax_plain_form, rules(), runner = runner("x:2x4x8"),
"(div (exp %x) (rsum [2] true (exp %x)))" => "(softmax [2] %x)" }
egg::test_fn! { rmsnorm_pow_sqrt_reciprocal_form, rules(), runner = runner("x:4x8 g:8 eps=0.00001"),
"(mul (mul %x (recip (sqrt (add (rmean [1] true (pow %x 2)) %eps)))) %g)" => "(rmsnorm %x %g %eps)" }
egg::test_fn! { rmsnorm_llama_form, rules(), runner = runner("x:2x4x8 g:8"),
"(mul %g (mul %x (rsqrt (add (rmean [2] true (pow %x 2)) 0.000001))))" => "(rmsnorm %x %g 0.000001)" }
egg::test_fn! { layernorm_expanded_form, rules(), runner = runner("x:4x8 g:8 b:8 eps=0.00001"),
"(add (mul (div (sub %x (rmean [1] true %x)) (sqrt (add (rmean [1] true (pow (sub %x (rmean [1] true %x)) 2)) %eps))) %g) %b)"
=> "(layernorm %x %g %b %eps)" }
egg::test_fn! { gelu_erf_torch_form, rules(), runner = runner("x:4x8 s=1.4142135"),
"(mul (mul %x (add (erf (div %x %s)) 1)) 0.5)" => "(gelu %x)" }
egg::test_fn! { gelu_erf_written_form, rules(), runner = runner("x:4x8"),
"(mul (mul 0.5 %x) (add 1 (erf (mul %x 0.70710677))))" => "(gelu %x)" }
egg::test_fn! { gelu_tanh_form, rules(), runner = runner("x:4x8"),
"(mul (mul 0.5 %x) (add 1 (tanh (mul 0.7978846 (add %x (mul 0.044715 (pow %x 3)))))))" => "(gelu_tanh %x)" }
egg::test_fn! { silu_form, rules(), runner = runner("x:4x8"), "(mul (sigmoid %x) %x)" => "(silu %x)" }
egg::test_fn! { silu_exp_form, rules(), runner = runner("x:4x8"),
"(div %x (add 1 (exp (neg %x))))" => "(silu %x)" }

#[test]
fn rmsnorm_needs_the_last_axis_and_a_scalar_eps() {
    assert!(!reaches(
        "x:4x8 g:8",
        "(mul (mul %x (rsqrt (add (rmean [0] true (mul %x %x)) 0.00001))) %g)",
        "(rmsnorm ?a ?b ?c)"
    ));
    assert!(!reaches(
        "x:4x8 g:8 e=0.1:4x1",
        "(mul (mul %x (rsqrt (add (rmean [1] true (mul %x %x)) %e))) %g)",
        "(rmsnorm ?a ?b ?c)"
    ));
}

#[test]
fn attention_needs_the_scores_last_axis_and_a_scalar_scale() {
    // A softmax over the queries is not attention.
    assert!(!reaches(
        ATTENTION,
        "(matmul (softmax [1] (mul (matmul %q %kt) 0.125)) %v)",
        "(attention ?s ?q ?k ?v)"
    ));
    // Nor is a per-element factor.
    assert!(!reaches(
        &format!("{ATTENTION} e=0.5:4x4"),
        "(matmul (softmax [2] (mul (matmul %q %kt) %e)) %v)",
        "(attention ?s ?q ?k ?v)"
    ));
    // A scale on the queries moves to the scores.
    assert!(reaches(
        ATTENTION,
        "(matmul (softmax [2] (matmul (mul %q 0.125) %kt)) %v)",
        "(attention 0.125 %q %kt %v)"
    ));
}

#[test]
fn gelu_needs_its_constants() {
    assert!(!reaches(
        "x:4x8",
        "(mul (mul 0.5 %x) (add 1 (erf (mul %x 0.8))))",
        "(gelu %x)"
    ));
}

#[test]
fn layernorm_is_recognized_with_the_single_pass_variance() {
    // (x - E[x]) * rsqrt(E[x^2] - E[x]^2 + eps) * g + b, torch's pow form.
    assert!(reaches(
        "x:4x8 g:8 b:8",
        "(add (mul (mul (sub %x (rmean [1] true %x)) (rsqrt (add (sub (rmean [1] true (pow %x 2)) (pow (rmean [1] true %x) 2)) 0.00001))) %g) %b)",
        "(layernorm %x %g %b 0.00001)"
    ));
}

#[test]
fn norms_without_gamma_need_the_last_axis() {
    assert!(!reaches(
        "x:4x8",
        "(mul %x (rsqrt (add (rmean [0] true (mul %x %x)) 0.00001)))",
        "(rmsnorm ?a ?b ?c)"
    ));
}

#[test]
fn layernorm_takes_a_bias_only_of_row_size() {
    // A [4, 8] addend is not a LayerNorm beta.
    assert!(!reaches(
        "x:4x8 g:8 b:4x8",
        "(add (layernorm_nobias %x %g 0.00001) %b)",
        "(layernorm ?x ?g ?b ?e)"
    ));
}

#[test]
fn a_scale_or_shift_folds_into_a_convolution_only_per_output_channel() {
    let conv = "(conv [3,3,1,1,1,1,1,1,1,1,1] %x %w)";
    // The scaled convolution (no bias) and the shifted one (with one).
    let cases = [
        (
            format!("(mul {conv} %s)"),
            "(conv [3,3,1,1,1,1,1,1,1,1,1] %x ?w)",
        ),
        (
            format!("(add {conv} %s)"),
            "(conv [3,3,1,1,1,1,1,1,1,1,1] %x ?w ?b)",
        ),
    ];
    for (start, folded) in &cases {
        let fold = |decl: &str| reaches(decl, start, folded);
        assert!(fold("x:1x2x5x5 w~3x2x3x3 s~3x1x1"), "{start}");
        // A vector of image-width size broadcasts along the rows, not the channels.
        assert!(!fold("x:1x2x5x5 w~3x2x3x3 s~5"), "{start}");
        // As many values as input channels, not output channels.
        assert!(!fold("x:1x2x5x5 w~3x2x3x3 s~2x1x1"), "{start}");
        // Not a constant: nothing to fold into the weights.
        assert!(!fold("x:1x2x5x5 w~3x2x3x3 s:3x1x1"), "{start}");
    }
}

#[test]
fn only_fractional_powers_become_exp_log() {
    // An integer power of a negative base is real, exp(c * log(x)) is not; +-0.5 have their
    // own instructions.
    for c in ["2", "-3", "0.5", "-0.5"] {
        let start = format!("(pow %x {c})");
        let goal = format!("(exp (mul (log %x) {c}))");
        assert!(!reaches("x:4x8", &start, &goal), "{c}");
    }
    assert!(reaches("x:4x8", "(pow %x 1.5)", "(exp (mul (log %x) 1.5))"));
}

#[test]
fn batchnorm_expands_only_with_constant_statistics() {
    let bn = "(batchnorm 0.00001 %x %g %b %m %v)";
    let expanded = "(add (mul %x ?s) ?t)";
    assert!(reaches("x:2x3x4x5 g~3 b~3 m~3 v=0.8:3", bn, expanded));
    assert!(!reaches("x:2x3x4x5 g~3 b~3 m:3 v=0.8:3", bn, expanded));
    // [N, C]: one value per column.
    let flat = "(add (mul %x (reshape [3] ?s)) (reshape [3] ?t))";
    assert!(reaches("x:4x3 g~3 b~3 m~3 v=0.8:3", bn, flat));
}

#[test]
fn batchnorm_folds_only_into_constant_convolutions() {
    let bn = "(batchnorm 0.00001 (conv [3,3,1,1,1,1,1,1,1,1,1] %x %w) %g %b %m %v)";
    let folded = "(conv [3,3,1,1,1,1,1,1,1,1,1] %x ?w ?b)";
    // Weights that are a graph input cannot be folded.
    assert!(!reaches(
        "x:1x2x5x5 w:3x2x3x3 g=1.5:3 b=0.2:3 m=0.1:3 v=0.8:3",
        bn,
        folded
    ));
    // Nor can statistics that are inputs.
    assert!(!reaches(
        "x:1x2x5x5 w=0.5:3x2x3x3 g=1.5:3 b=0.2:3 m:3 v=0.8:3",
        bn,
        folded
    ));
    assert!(reaches(
        "x:1x2x5x5 w=0.5:3x2x3x3 g=1.5:3 b=0.2:3 m=0.1:3 v=0.8:3",
        bn,
        folded
    ));
}

#[test]
fn norms_fold_only_into_constant_layers_and_only_once() {
    let fold = "(matmul (rmsnorm %x (expand [8] 1) 0.00001) ?w)";
    // A weight that is a graph input cannot take gamma.
    assert!(!reaches(
        "x:4x8 g~8 w:8x16",
        "(matmul (rmsnorm %x %g 0.00001) %w)",
        fold
    ));
    assert!(reaches(
        "x:4x8 g~8 w~8x16",
        "(matmul (rmsnorm %x %g 0.00001) %w)",
        fold
    ));
    // Nor can a gamma that is an input fold into a constant weight.
    assert!(!reaches(
        "x:4x8 g:8 w~8x16",
        "(matmul (rmsnorm %x %g 0.00001) %w)",
        fold
    ));
    // A gamma of ones is already folded: the rule does not fire again, so the e-graph saturates.
    let start: RecExpr<TNode> = "(matmul (rmsnorm %x (expand [8] 1) 0.00001) %w)"
        .parse()
        .unwrap();
    let r = runner("x:4x8 w~8x16").with_expr(&start).run(&rules());
    assert!(
        matches!(r.stop_reason, Some(egg::StopReason::Saturated)),
        "{:?}",
        r.stop_reason
    );
    assert!(r.iterations.iter().all(|it| !it
        .applied
        .contains_key(&egg::Symbol::from("rmsnorm-fold-matmul"))));
}

#[test]
fn a_layernorm_bias_folds_only_into_a_matrix() {
    // Batched weights, as many batches as rows: b @ w has a row per batch, which added to the
    // [4, 4, 16] product would land on its rows, not its batches. Only gamma may fold.
    let decl = "x:4x8 g~8 b~8 w~4x8x16";
    let start = "(matmul (layernorm %x %g %b 0.00001) %w)";
    assert!(!reaches(decl, start, "(add ?p (matmul %b %w))"));
    assert!(reaches(
        "x:4x8 g~8 b~8 w~8x16",
        start,
        "(add ?p (matmul %b %w))"
    ));
}

#[test]
fn a_layernorm_bias_folds_only_with_a_constant_layer_bias() {
    // The residual added after the layer is not its bias: only the matmul folds.
    let start = "(add (matmul (layernorm %x %g %b 0.00001) %w) %r)";
    let whole =
        "(add (matmul (layernorm_nobias %x (expand [8] 1) 0.00001) ?w) (add (matmul %b %w) %r))";
    assert!(!reaches("x:4x8 g~8 b~8 w~8x16 r:4x16", start, whole));
    assert!(reaches(
        "x:4x8 g~8 b~8 w~8x16 r:4x16",
        start,
        "(add (add (matmul (layernorm_nobias %x (expand [8] 1) 0.00001) ?w) (matmul %b %w)) %r)"
    ));
}

// ---- decompose ----

egg::test_fn! { softmax_decomposes_stably, rules(), runner = runner("x:4x8"),
"(softmax [1] %x)" => "(div (exp (sub %x (rmax [1] true %x))) (rsum [1] true (exp (sub %x (rmax [1] true %x)))))" }
egg::test_fn! { rmsnorm_decomposes, rules(), runner = runner("x:2x4x8 g:8"),
"(rmsnorm %x %g 0.00001)" => "(mul (mul %x (rsqrt (add (rmean [2] true (mul %x %x)) 0.00001))) %g)" }
egg::test_fn! { layernorm_nobias_decomposes, rules(), runner = runner("x:4x8 g:8"),
"(layernorm_nobias %x %g 0.00001)"
=> "(mul (mul (sub %x (rmean [1] true %x)) (rsqrt (add (rmean [1] true (mul (sub %x (rmean [1] true %x)) (sub %x (rmean [1] true %x)))) 0.00001))) %g)" }
egg::test_fn! { silu_decomposes, rules(), runner = runner("x:4x8"), "(silu %x)" => "(mul %x (sigmoid %x))" }
egg::test_fn! { gelu_tanh_decomposes, rules(), runner = runner("x:4x8"),
"(gelu_tanh %x)" => "(mul (mul %x 0.5) (add (tanh (mul 0.7978846 (add %x (mul 0.044715 (mul %x (mul %x %x)))))) 1))" }

#[test]
fn exact_gelu_becomes_tanh_gelu_only_when_approximation_is_allowed() {
    assert!(!reaches("x:4x8", "(gelu %x)", "(gelu_tanh %x)"));
    let start: RecExpr<TNode> = "(gelu %x)".parse().unwrap();
    let mut analysis = TensorAnalysis::new(table("x:4x8"));
    analysis.allow_approx = true;
    let r = Runner::<TNode, TensorAnalysis, ()>::new(analysis)
        .with_expr(&start)
        .run(&rules());
    let goal: Pattern<TNode> = "(gelu_tanh %x)".parse().unwrap();
    assert!(goal
        .search_eclass(&r.egraph, r.egraph.find(r.roots[0]))
        .is_some());
}

// ---- fuse ----

egg::test_fn! { row_division_becomes_reciprocal, rules(), runner = runner("x:4x8"),
"(div (exp %x) (rsum [1] true (exp %x)))" => "(mul (exp %x) (recip (rsum [1] true (exp %x))))" }
egg::test_fn! { scalar_factors_fold, rules(), runner = runner("x:4x8"), "(mul (mul %x 2) 3)" => "(mul %x (mul 2 3))" }

/// One example per rule: (rule, leaves, start, goal). The rule must fire on the start, the goal
/// must be in the start's e-class, and the reference interpreter must give start and goal the
/// same values.
const EXAMPLES: &[(&str, &str, &str, &str)] = &[
    ("mul-comm", "x:4x8 y:4x8", "(mul %x %y)", "(mul %y %x)"),
    ("add-comm", "x:4x8 y:4x8", "(add %x %y)", "(add %y %x)"),
    ("mul-one", "x:4x8", "(mul %x 1)", "%x"),
    ("mul-neg-one", "x:4x8", "(mul %x -1)", "(neg %x)"),
    ("add-zero", "x:4x8", "(add %x 0)", "%x"),
    ("sub-zero", "x:4x8", "(sub %x 0)", "%x"),
    ("div-one", "x:4x8", "(div %x 1)", "%x"),
    ("neg-neg", "x:4x8", "(neg (neg %x))", "%x"),
    ("recip-recip", "x:4x8", "(recip (recip %x))", "%x"),
    ("identity-drop", "x:4x8", "(identity %x)", "%x"),
    ("cast-noop", "x:4x8", "(cast f32 %x)", "%x"),
    ("add-neg", "x:4x8 y:4x8", "(add %x (neg %y))", "(sub %x %y)"),
    ("neg-sub", "x:4x8 y:4x8", "(neg (sub %x %y))", "(sub %y %x)"),
    ("div-recip", "x:4x8 y:4x8", "(div %x %y)", "(mul %x (recip %y))"),
    ("div-recip-rev", "x:4x8 y:4x8", "(mul %x (recip %y))", "(div %x %y)"),
    ("one-div", "x:4x8", "(div 1 %x)", "(recip %x)"),
    ("recip-sqrt", "x:4x8", "(recip (sqrt %x))", "(rsqrt %x)"),
    ("recip-rsqrt", "x:4x8", "(recip (rsqrt %x))", "(sqrt %x)"),
    ("pow-one", "x:4x8", "(pow %x 1)", "%x"),
    ("pow-two", "x:4x8", "(pow %x 2)", "(mul %x %x)"),
    ("pow-three", "x:4x8", "(pow %x 3)", "(mul %x (mul %x %x))"),
    ("pow-half", "x:4x8", "(pow %x 0.5)", "(sqrt %x)"),
    ("pow-neg-half", "x:4x8", "(pow %x -0.5)", "(rsqrt %x)"),
    ("pow-neg-one", "x:4x8", "(pow %x -1)", "(recip %x)"),
    ("transpose-cancel", "x:2x3x4", "(transpose [1,0,2] (transpose [1,0,2] %x))", "%x"),
    ("transpose-merge", "x:2x3x4", "(transpose [1,0,2] (transpose [0,2,1] %x))", "(transpose [2,0,1] %x)"),
    ("reshape-reshape", "x:2x6", "(reshape [3,4] (reshape [12] %x))", "(reshape [3,4] %x)"),
    ("reshape-noop", "x:2x6", "(reshape [2,6] %x)", "%x"),
    ("expand-noop", "x:2x6", "(expand [2,6] %x)", "%x"),
    (
        "softmax-stable",
        "x:4x8",
        "(div (exp (sub %x (rmax [1] true %x))) (rsum [1] true (exp (sub %x (rmax [1] true %x)))))",
        "(softmax [1] %x)",
    ),
    ("softmax-plain", "x:4x8", "(div (exp %x) (rsum [0] true (exp %x)))", "(softmax [0] %x)"),
    ("rmsnorm-a", "x:4x8 g:8", "(mul (mul %x (rsqrt (add (rmean [1] true (mul %x %x)) 0.00001))) %g)", "(rmsnorm %x %g 0.00001)"),
    ("rmsnorm-b", "x:4x8 g:8", "(mul %x (mul (rsqrt (add (rmean [1] true (mul %x %x)) 0.00001)) %g))", "(rmsnorm %x %g 0.00001)"),
    (
        "layernorm",
        "x:4x8 g:8 b:8",
        "(add (mul (mul (sub %x (rmean [1] true %x)) (rsqrt (add (rmean [1] true (mul (sub %x (rmean [1] true %x)) (sub %x (rmean [1] true %x)))) 0.00001))) %g) %b)",
        "(layernorm %x %g %b 0.00001)",
    ),
    (
        "layernorm-nobias",
        "x:4x8 g:8",
        "(mul (mul (sub %x (rmean [1] true %x)) (rsqrt (add (rmean [1] true (mul (sub %x (rmean [1] true %x)) (sub %x (rmean [1] true %x)))) 0.00001))) %g)",
        "(layernorm_nobias %x %g 0.00001)",
    ),
    ("gelu-erf-a", "x:4x8", "(mul (mul %x 0.5) (add (erf (mul %x 0.70710677)) 1))", "(gelu %x)"),
    ("gelu-erf-b", "x:4x8", "(mul (mul %x (add (erf (mul %x 0.70710677)) 1)) 0.5)", "(gelu %x)"),
    ("gelu-erf-c", "x:4x8", "(mul %x (mul (add (erf (mul %x 0.70710677)) 1) 0.5))", "(gelu %x)"),
    (
        "gelu-tanh-a",
        "x:4x8",
        "(mul (mul %x 0.5) (add (tanh (mul 0.7978846 (add %x (mul 0.044715 (mul %x (mul %x %x)))))) 1))",
        "(gelu_tanh %x)",
    ),
    (
        "gelu-tanh-b",
        "x:4x8",
        "(mul (mul %x (add (tanh (mul 0.7978846 (add %x (mul 0.044715 (mul %x (mul %x %x)))))) 1)) 0.5)",
        "(gelu_tanh %x)",
    ),
    (
        "gelu-tanh-c",
        "x:4x8",
        "(mul %x (mul (add (tanh (mul 0.7978846 (add %x (mul 0.044715 (mul %x (mul %x %x)))))) 1) 0.5))",
        "(gelu_tanh %x)",
    ),
    (
        "variance-centered",
        "x:4x8",
        "(sub (rmean [1] true (mul %x %x)) (mul (rmean [1] true %x) (rmean [1] true %x)))",
        "(rmean [1] true (mul (sub %x (rmean [1] true %x)) (sub %x (rmean [1] true %x))))",
    ),
    (
        "rmsnorm-nogamma",
        "x:4x8",
        "(mul %x (rsqrt (add (rmean [1] true (mul %x %x)) 0.00001)))",
        "(rmsnorm %x (expand [8] 1) 0.00001)",
    ),
    (
        "layernorm-nogamma",
        "x:4x8",
        "(mul (sub %x (rmean [1] true %x)) (rsqrt (add (rmean [1] true (mul (sub %x (rmean [1] true %x)) (sub %x (rmean [1] true %x)))) 0.00001)))",
        "(layernorm_nobias %x (expand [8] 1) 0.00001)",
    ),
    ("layernorm-add-bias", "x:4x8 g:8 b:8", "(add (layernorm_nobias %x %g 0.00001) %b)", "(layernorm %x %g %b 0.00001)"),
    (
        "layernorm-fold-linear",
        NORM_LINEAR,
        "(add (matmul (layernorm %x %g %b 0.00001) %w) %c)",
        "(add (matmul (layernorm_nobias %x (expand [8] 1) 0.00001) (mul %w (reshape [8,1] %g))) (add (matmul %b %w) %c))",
    ),
    (
        "layernorm-fold-matmul",
        NORM_LINEAR,
        "(matmul (layernorm %x %g %b 0.00001) %w)",
        "(add (matmul (layernorm_nobias %x (expand [8] 1) 0.00001) (mul %w (reshape [8,1] %g))) (matmul %b %w))",
    ),
    (
        "layernorm-nobias-fold-matmul",
        NORM_LINEAR,
        "(matmul (layernorm_nobias %x %g 0.00001) %w)",
        "(matmul (layernorm_nobias %x (expand [8] 1) 0.00001) (mul %w (reshape [8,1] %g)))",
    ),
    (
        "rmsnorm-fold-matmul",
        "x:2x4x8 g~8 w~8x16",
        "(matmul (rmsnorm %x %g 0.00001) %w)",
        "(matmul (rmsnorm %x (expand [8] 1) 0.00001) (mul %w (reshape [8,1] %g)))",
    ),
    ("silu", "x:4x8", "(mul %x (sigmoid %x))", "(silu %x)"),
    ("silu-exp", "x:4x8", "(div %x (add (exp (neg %x)) 1))", "(silu %x)"),
    (
        "softmax-expand",
        "x:4x8",
        "(softmax [0] %x)",
        "(div (exp (sub %x (rmax [0] true %x))) (rsum [0] true (exp (sub %x (rmax [0] true %x)))))",
    ),
    ("rmsnorm-expand", "x:4x8 g:8", "(rmsnorm %x %g 0.1)", "(mul (mul %x (rsqrt (add (rmean [1] true (mul %x %x)) 0.1))) %g)"),
    (
        "layernorm-expand",
        "x:4x8 g:8 b:8",
        "(layernorm %x %g %b 0.1)",
        "(add (mul (mul (sub %x (rmean [1] true %x)) (rsqrt (add (rmean [1] true (mul (sub %x (rmean [1] true %x)) (sub %x (rmean [1] true %x)))) 0.1))) %g) %b)",
    ),
    (
        "layernorm-nobias-expand",
        "x:4x8 g:8",
        "(layernorm_nobias %x %g 0.1)",
        "(mul (mul (sub %x (rmean [1] true %x)) (rsqrt (add (rmean [1] true (mul (sub %x (rmean [1] true %x)) (sub %x (rmean [1] true %x)))) 0.1))) %g)",
    ),
    ("silu-expand", "x:4x8", "(silu %x)", "(mul %x (sigmoid %x))"),
    (
        "gelu-tanh-expand",
        "x:4x8",
        "(gelu_tanh %x)",
        "(mul (mul %x 0.5) (add (tanh (mul 0.7978846 (add %x (mul 0.044715 (mul %x (mul %x %x)))))) 1))",
    ),
    ("gelu-erf-expand", "x:4x8", "(gelu %x)", "(mul (mul %x 0.5) (add (erf (mul %x 0.70710677)) 1))"),
    ("scale-fold", "x:4x8", "(mul (mul %x 2) 3)", "(mul %x (mul 2 3))"),
    ("exp-mul", "x:4x8 y:4x8", "(mul (exp %x) (exp %y))", "(exp (add %x %y))"),
    ("neg-scale", "x:4x8", "(mul (neg %x) 3)", "(mul %x (neg 3))"),
    (
        "affine-fold",
        "x:1x3x4x4 a~3x1x1 b~3x1x1 c~1x3x1x1 d~3x1x1",
        "(add (mul (add (mul %x %a) %b) %c) %d)",
        "(add (mul %x (mul %a %c)) (add (mul %b %c) %d))",
    ),
    (
        "conv-bn-fold",
        "x:1x2x5x5 w=0.5:3x2x3x3 g=1.5:3 b=0.2:3 m=0.1:3 v=0.8:3",
        "(batchnorm 0.00001 (conv [3,3,1,1,1,1,1,1,1,1,1] %x %w) %g %b %m %v)",
        "(conv [3,3,1,1,1,1,1,1,1,1,1] %x (mul %w (reshape [3,1,1,1] (div %g (sqrt (add %v 0.00001))))) (sub %b (mul %m (div %g (sqrt (add %v 0.00001))))))",
    ),
    (
        "conv-bias-bn-fold",
        "x:1x2x5x5 w=0.5:3x2x3x3 c=0.3:3 g=1.5:3 b=0.2:3 m=0.1:3 v=0.8:3",
        "(batchnorm 0.00001 (conv [3,3,2,2,0,0,0,0,1,1,1] %x %w %c) %g %b %m %v)",
        "(conv [3,3,2,2,0,0,0,0,1,1,1] %x (mul %w (reshape [3,1,1,1] (div %g (sqrt (add %v 0.00001))))) (add (mul (sub %c %m) (div %g (sqrt (add %v 0.00001)))) %b))",
    ),
    (
        "conv-relu",
        "x:1x2x5x5 w=0.5:3x2x3x3",
        "(relu (conv [3,3,1,1,1,1,1,1,1,1,1] %x %w))",
        "(conv_relu [3,3,1,1,1,1,1,1,1,1,1] %x %w)",
    ),
    (
        "conv-bias-relu",
        "x:1x2x5x5 w=-0.5:3x2x3x3 c=0.3:3",
        "(relu (conv [3,3,2,2,0,0,0,0,1,1,1] %x %w %c))",
        "(conv_relu [3,3,2,2,0,0,0,0,1,1,1] %x %w %c)",
    ),
    (
        "conv-scale-fold",
        "x:1x2x5x5 w~3x2x3x3 s~3x1x1",
        "(mul (conv [3,3,1,1,1,1,1,1,1,1,1] %x %w) %s)",
        "(conv [3,3,1,1,1,1,1,1,1,1,1] %x (mul %w (reshape [3,1,1,1] %s)))",
    ),
    (
        "conv-bias-scale-fold",
        "x:1x2x5x5 w~3x2x3x3 c=0.3:3 s~1x3x1x1",
        "(mul (conv [3,3,2,2,0,0,0,0,1,1,1] %x %w %c) %s)",
        "(conv [3,3,2,2,0,0,0,0,1,1,1] %x (mul %w (reshape [3,1,1,1] %s)) (mul %c (reshape [3] %s)))",
    ),
    (
        "conv-shift-fold",
        "x:1x2x5x5 w~3x2x3x3 t~3x1x1",
        "(add (conv [3,3,1,1,1,1,1,1,1,1,1] %x %w) %t)",
        "(conv [3,3,1,1,1,1,1,1,1,1,1] %x %w (reshape [3] %t))",
    ),
    (
        "conv-bias-shift-fold",
        "x:1x2x5x5 w~3x2x3x3 c=0.3:3 t~3x1x1",
        "(add (conv [3,3,1,1,1,1,1,1,1,1,1] %x %w %c) %t)",
        "(conv [3,3,1,1,1,1,1,1,1,1,1] %x %w (add %c (reshape [3] %t)))",
    ),
    ("pow-exp-log", "x:4x8", "(pow %x -0.75)", "(exp (mul (log %x) -0.75))"),
    (
        "batchnorm-expand",
        "x:2x3x4x5 g~3 b=0.2:3 m=-0.1:3 v=0.8:3",
        "(batchnorm 0.00001 %x %g %b %m %v)",
        "(add (mul %x (reshape [3,1,1] (div %g (sqrt (add %v 0.00001))))) (reshape [3,1,1] (sub %b (mul %m (div %g (sqrt (add %v 0.00001)))))))",
    ),
    ("relu-before-transpose", "x:4x8x2", "(relu (transpose [2,0,1] %x))", "(transpose [2,0,1] (relu %x))"),
    ("relu-before-reshape", "x:4x8", "(relu (reshape [2,16] %x))", "(reshape [2,16] (relu %x))"),
    (
        "conv-relu-expand",
        "x:1x2x5x5 w=0.5:3x2x3x3",
        "(conv_relu [3,3,1,1,1,1,1,1,1,1,1] %x %w)",
        "(relu (conv [3,3,1,1,1,1,1,1,1,1,1] %x %w))",
    ),
    (
        "conv-bias-relu-expand",
        "x:1x2x5x5 w=-0.5:3x2x3x3 c=0.3:3",
        "(conv_relu [3,3,2,2,0,0,0,0,1,1,1] %x %w %c)",
        "(relu (conv [3,3,2,2,0,0,0,0,1,1,1] %x %w %c))",
    ),
    ("scale-out-left", "a:4x8 b:8x4", "(matmul (mul %a 0.5) %b)", "(mul (matmul %a %b) 0.5)"),
    ("scale-out-right", "a:4x8 b:8x4", "(matmul %a (mul %b 0.5))", "(mul (matmul %a %b) 0.5)"),
    (
        "attention",
        ATTENTION,
        "(matmul (softmax [2] (mul (matmul %q %kt) 0.125)) %v)",
        "(attention 0.125 %q %kt %v)",
    ),
    (
        "attention-add",
        ATTENTION,
        "(matmul (softmax [2] (add (mul (matmul %q %kt) 0.125) %m)) %v)",
        "(attention_add 0.125 %q %kt %v %m)",
    ),
    (
        "attention-select",
        ATTENTION,
        "(matmul (softmax [2] (where %c (mul (matmul %q %kt) 0.125) %f)) %v)",
        "(attention_select 0.125 %q %kt %v %c %f)",
    ),
    (
        "attention-fill",
        ATTENTION,
        "(matmul (softmax [2] (where %c %f (mul (matmul %q %kt) 0.125))) %v)",
        "(attention_fill 0.125 %q %kt %v %c %f)",
    ),
    (
        "attention-unscaled",
        ATTENTION,
        "(matmul (softmax [2] (matmul %q %kt)) %v)",
        "(attention 1 %q %kt %v)",
    ),
    ("mlp-gelu", MLP, "(matmul (gelu (matmul %x %w1)) %w2)", "(mlp_gelu %x %w1 %w2)"),
    ("mlp-gelu-tanh", MLP, "(matmul (gelu_tanh (matmul %x %w1)) %w2)", "(mlp_gelu_tanh %x %w1 %w2)"),
    ("mlp-relu", MLP, "(matmul (relu (matmul %x %w1)) %w2)", "(mlp_relu %x %w1 %w2)"),
    ("mlp-silu", MLP, "(matmul (silu (matmul %x %w1)) %w2)", "(mlp_silu %x %w1 %w2)"),
    ("mlp-bias-gelu", MLP, "(matmul (gelu (add (matmul %x %w1) %b)) %w2)", "(mlp_bias_gelu %x %w1 %b %w2)"),
    (
        "mlp-bias-gelu-tanh",
        MLP,
        "(matmul (gelu_tanh (add (matmul %x %w1) %b)) %w2)",
        "(mlp_bias_gelu_tanh %x %w1 %b %w2)",
    ),
    ("mlp-bias-relu", MLP, "(matmul (relu (add (matmul %x %w1) %b)) %w2)", "(mlp_bias_relu %x %w1 %b %w2)"),
    ("mlp-bias-silu", MLP, "(matmul (silu (add (matmul %x %w1) %b)) %w2)", "(mlp_bias_silu %x %w1 %b %w2)"),
    (
        "gated-mlp-silu",
        MLP,
        "(matmul (mul (silu (matmul %x %w1)) (matmul %x %w3)) %w2)",
        "(gated_mlp_silu %x %w1 %w3 %w2)",
    ),
    (
        "gated-mlp-gelu",
        MLP,
        "(matmul (mul (gelu (matmul %x %w1)) (matmul %x %w3)) %w2)",
        "(gated_mlp_gelu %x %w1 %w3 %w2)",
    ),
    (
        "attention-expand",
        ATTENTION,
        "(attention 0.125 %q %kt %v)",
        "(matmul (softmax [2] (mul (matmul %q %kt) 0.125)) %v)",
    ),
    (
        "attention-add-expand",
        ATTENTION,
        "(attention_add 0.125 %q %kt %v %m)",
        "(matmul (softmax [2] (add (mul (matmul %q %kt) 0.125) %m)) %v)",
    ),
    (
        "attention-select-expand",
        ATTENTION,
        "(attention_select 0.125 %q %kt %v %c %f)",
        "(matmul (softmax [2] (where %c (mul (matmul %q %kt) 0.125) %f)) %v)",
    ),
    (
        "attention-fill-expand",
        ATTENTION,
        "(attention_fill 0.125 %q %kt %v %c %f)",
        "(matmul (softmax [2] (where %c %f (mul (matmul %q %kt) 0.125))) %v)",
    ),
    ("mlp-gelu-expand", MLP, "(mlp_gelu %x %w1 %w2)", "(matmul (gelu (matmul %x %w1)) %w2)"),
    ("mlp-gelu-tanh-expand", MLP, "(mlp_gelu_tanh %x %w1 %w2)", "(matmul (gelu_tanh (matmul %x %w1)) %w2)"),
    ("mlp-relu-expand", MLP, "(mlp_relu %x %w1 %w2)", "(matmul (relu (matmul %x %w1)) %w2)"),
    ("mlp-silu-expand", MLP, "(mlp_silu %x %w1 %w2)", "(matmul (silu (matmul %x %w1)) %w2)"),
    ("mlp-bias-gelu-expand", MLP, "(mlp_bias_gelu %x %w1 %b %w2)", "(matmul (gelu (add (matmul %x %w1) %b)) %w2)"),
    (
        "mlp-bias-gelu-tanh-expand",
        MLP,
        "(mlp_bias_gelu_tanh %x %w1 %b %w2)",
        "(matmul (gelu_tanh (add (matmul %x %w1) %b)) %w2)",
    ),
    ("mlp-bias-relu-expand", MLP, "(mlp_bias_relu %x %w1 %b %w2)", "(matmul (relu (add (matmul %x %w1) %b)) %w2)"),
    ("mlp-bias-silu-expand", MLP, "(mlp_bias_silu %x %w1 %b %w2)", "(matmul (silu (add (matmul %x %w1) %b)) %w2)"),
    (
        "gated-mlp-silu-expand",
        MLP,
        "(gated_mlp_silu %x %w1 %w3 %w2)",
        "(matmul (mul (silu (matmul %x %w1)) (matmul %x %w3)) %w2)",
    ),
    (
        "gated-mlp-gelu-expand",
        MLP,
        "(gated_mlp_gelu %x %w1 %w3 %w2)",
        "(matmul (mul (gelu (matmul %x %w1)) (matmul %x %w3)) %w2)",
    ),
];

/// The leaves of the attention examples: two heads of 4 queries and keys, head size 8, a mask
/// and a condition over the scores, a fill value.
const ATTENTION: &str = "q:2x4x8 kt:2x8x4 v:2x4x8 m:4x4 c:4x4 f=-3";

/// The leaves of the norm-folding examples: a norm over 8 features feeding a constant linear
/// layer to 16, every parameter's elements different.
const NORM_LINEAR: &str = "x:4x8 g~8 b~8 w~8x16 c~16";

/// The leaves of the MLP examples: hidden width 16.
const MLP: &str = "x:4x8 w1:8x16 w3:8x16 b:16 w2:16x8";

/// Rules whose example needs options the plain runner does not set (tested above).
const ELSEWHERE: &[&str] = &["gelu-approx"];

#[test]
fn every_rule_fires_on_its_example() {
    let all = rules();
    for (rule, decl, start, goal) in EXAMPLES {
        let start_expr: RecExpr<TNode> = start.parse().unwrap();
        let r = runner(decl).with_expr(&start_expr).run(&all);
        let fired = r
            .iterations
            .iter()
            .any(|it| it.applied.keys().any(|k| k.as_str() == *rule));
        assert!(fired, "{rule} did not fire on {start}");
        let g: Pattern<TNode> = goal.parse().unwrap();
        assert!(
            g.search_eclass(&r.egraph, r.egraph.find(r.roots[0]))
                .is_some(),
            "{rule}: {start} did not reach {goal}"
        );
        assert!(
            r.egraph.analysis.conflicts.is_empty(),
            "{rule}: {:?}",
            r.egraph.analysis.conflicts
        );
        let (a, b) = (evaluate(decl, start), evaluate(decl, goal));
        assert_eq!(a.len(), b.len(), "{rule}");
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * x.abs().max(1.0),
                "{rule}: element {i}: {x} vs {y}"
            );
        }
    }
}

/// Evaluates a concrete expression with the reference interpreter, on inputs in [0.1, 2].
fn evaluate(decl: &str, expr: &str) -> Vec<f32> {
    let expr: RecExpr<TNode> = expr.parse().unwrap();
    let mut egraph = TGraph::new(TensorAnalysis::new(table(decl)));
    let root = egraph.add_expr(&expr);
    egraph.rebuild();
    let choice: BTreeMap<Id, TNode> = egraph
        .classes()
        .map(|c| (c.id, c.nodes[0].clone()))
        .collect();
    let input_keys: Vec<String> = egraph
        .analysis
        .table
        .iter()
        .filter(|(_, e)| e.data.is_none())
        .map(|(k, _)| k.clone())
        .collect();
    let loaded = Loaded {
        egraph: TGraph::default(),
        outputs: vec![("out".into(), root)],
        names: BTreeMap::new(),
        members: BTreeMap::new(),
        input_keys,
    };
    let graph = build(&egraph, &loaded, &Extraction { choice, cost: 0.0 }).unwrap();
    let inputs: BTreeMap<String, TensorData> = graph
        .inputs
        .iter()
        .enumerate()
        .map(|(k, &i)| {
            let n = graph.node(i);
            let values = (0..n.ty.numel())
                .map(|j| 0.1 + ((j * 7 + k * 13) % 20) as f32 * 0.095)
                .collect();
            (
                n.name.clone(),
                TensorData::F32 {
                    shape: n.ty.shape.clone(),
                    values,
                },
            )
        })
        .collect();
    reference::run(&graph, &inputs).unwrap()["out"].to_f32()
}

#[test]
fn every_rule_in_the_files_has_an_example() {
    for stage in load_stages(None).unwrap() {
        for rule in &stage.rules[..stage.own] {
            let covered = EXAMPLES.iter().any(|e| e.0 == rule.name)
                || ELSEWHERE.contains(&rule.name.as_str());
            assert!(
                covered,
                "rule {} ({}:{}) has no example in EXAMPLES",
                rule.name, rule.file, rule.line
            );
        }
    }
}

#[test]
fn the_evaluator_tells_different_expressions_apart() {
    // The value check above is only worth something if near-identities differ.
    assert_ne!(
        evaluate(
            "x:4x8",
            "(mul (mul %x 0.5) (add (erf (mul %x 0.70710677)) 1))"
        ),
        evaluate("x:4x8", "(gelu_tanh %x)")
    );
    assert_ne!(
        evaluate("x:4x8 y:4x8", "(sub %x %y)"),
        evaluate("x:4x8 y:4x8", "(sub %y %x)")
    );
    assert_eq!(evaluate("x:4x8", "(mul %x 2)").len(), 32);
}
