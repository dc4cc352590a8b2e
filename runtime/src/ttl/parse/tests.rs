//! Unit tests of the parser: what it reads, what it ignores, and the errors it gives.

use super::{parse_module, ParseError};
use crate::ttl::ast::{BinOp, Expr, IndexItem, StmtKind, ThreadKind, UnaryOp};

/// A kernel around `body` (indented 8 spaces by the caller) in a compute thread, with the two
/// data-movement threads empty.
fn with_compute(body: &str) -> String {
    format!(
        "import ttl\n\n@ttl.kernel(grid=(1, 1))\ndef k(a, out):\n    @ttl.compute()\n    def compute():\n{body}\n\n    @ttl.datamovement()\n    def dm_read():\n        pass\n"
    )
}

fn err(src: &str) -> ParseError {
    match parse_module(src, "t.py") {
        Ok(m) => panic!("expected an error, parsed {m:?}"),
        Err(e) => e,
    }
}

/// Assert that `src` fails at `line` with a message containing every one of `parts`.
fn assert_err(src: &str, line: u32, parts: &[&str]) {
    let e = err(src);
    let msg = e.to_string();
    assert_eq!(e.line(), line, "wrong line in: {msg}");
    assert!(
        msg.starts_with(&format!("t.py:{line}: ")),
        "message must start with file:line: {msg}"
    );
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} should mention {p:?}");
    }
}

#[test]
fn reads_module_structure_and_ignores_host_code() {
    let src = r#""""A test module."""

import pytest
import torch
from ttlang_test_utils import assert_allclose

import ttl

ttnn = pytest.importorskip("ttnn", exc_type=ImportError)

ROWS = 2
COLS = ROWS * 3 + 1
NAME, SCALE = "x", -0.5
device_count = len([1, 2])


@ttl.kernel(grid=(COLS, ROWS - 1))
def k(a, out):
    """Doc."""
    a_cb = ttl.make_circular_buffer_like(a, shape=(1, 1), buffer_factor=2)  # comment

    @ttl.compute()
    def compute():
        x, y = ttl.core(dims=2)
        pass

    @ttl.datamovement()
    def dm():
        pass


def test_it(device):
    A = torch.full((32, 32), 0.01)
    k(A, A)


print("done")
"#;
    let m = parse_module(src, "t.py").expect("parses");
    let names: Vec<_> = m
        .constants
        .iter()
        .map(|s| match &s.kind {
            StmtKind::Assign { targets, .. } => targets.join(","),
            other => panic!("constant is not an assignment: {other:?}"),
        })
        .collect();
    assert_eq!(
        names,
        ["ROWS", "COLS", "NAME,SCALE"],
        "only constant assignments are kept"
    );
    assert_eq!(m.constants[0].line, 11);
    assert_eq!(m.kernels.len(), 1);
    let k = &m.kernels[0];
    assert_eq!(k.name, "k");
    assert_eq!(
        k.grid,
        (7, 1),
        "grid entries are evaluated from module constants"
    );
    assert_eq!(k.params, ["a", "out"]);
    assert_eq!(k.doc.as_deref(), Some("Doc."));
    assert_eq!(k.line, 18, "kernel line is the `def` line");
    assert_eq!(k.setup.len(), 1);
    assert_eq!(k.setup[0].line, 20);
    assert_eq!(k.threads.len(), 2);
    assert_eq!(k.threads[0].kind, ThreadKind::Compute);
    assert_eq!(k.threads[0].line, 23);
    assert_eq!(k.threads[1].kind, ThreadKind::DataMovement);
    assert_eq!(k.threads[1].name, "dm");
    let body = &k.threads[0].body;
    assert_eq!(body[0].line, 24);
    match &body[0].kind {
        StmtKind::Assign { targets, value } => {
            assert_eq!(targets, &["x", "y"]);
            assert_eq!(
                value,
                &Expr::path("ttl.core").call_kw(vec![], vec![("dims", Expr::Int(2))])
            );
        }
        other => panic!("expected tuple assignment, got {other:?}"),
    }
    assert_eq!(body[1].kind, StmtKind::Pass);
}

#[test]
fn negative_literals_versus_negation() {
    let src = with_compute(
        "        a = -1.0\n        b = -(1.0)\n        c = - 2\n        d = -x\n        e = 3 - -4",
    );
    let m = parse_module(&src, "t.py").expect("parses");
    let values: Vec<Expr> = m.kernels[0].threads[0]
        .body
        .iter()
        .map(|s| match &s.kind {
            StmtKind::Assign { value, .. } => value.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    let neg = |e: Expr| Expr::Unary(UnaryOp::Neg, Box::new(e));
    assert_eq!(values[0], Expr::Float(-1.0));
    assert_eq!(values[1], neg(Expr::Float(1.0)));
    assert_eq!(values[2], neg(Expr::Int(2)));
    assert_eq!(values[3], neg(Expr::name("x")));
    assert_eq!(
        values[4],
        Expr::bin(BinOp::Sub, Expr::Int(3), Expr::Int(-4))
    );
}

#[test]
fn reads_loops_slices_and_branches() {
    let src = with_compute(
        "        for i in range(4):\n            pass\n        for j in range(1, n):\n            pass\n        for _ in range(0, 8, 2):\n            t = a[i * 2:(i + 1) * 2, :]\n        if x == 0:\n            pass\n        elif x == 1 and not y:\n            pass\n        else:\n            pass",
    );
    let m = parse_module(&src, "t.py").expect("parses");
    let body = &m.kernels[0].threads[0].body;
    let bounds: Vec<(Expr, Expr, Expr)> = body[..3]
        .iter()
        .map(|s| match &s.kind {
            StmtKind::For {
                start, stop, step, ..
            } => (start.clone(), stop.clone(), step.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(bounds[0], (Expr::Int(0), Expr::Int(4), Expr::Int(1)));
    assert_eq!(bounds[1], (Expr::Int(1), Expr::name("n"), Expr::Int(1)));
    assert_eq!(bounds[2], (Expr::Int(0), Expr::Int(8), Expr::Int(2)));
    let StmtKind::For { body: inner, .. } = &body[2].kind else {
        unreachable!()
    };
    let StmtKind::Assign {
        value: Expr::Index(_, items),
        ..
    } = &inner[0].kind
    else {
        panic!("{:?}", inner[0])
    };
    assert_eq!(items.len(), 2);
    assert!(matches!(&items[0], IndexItem::Slice(Some(_), Some(_))));
    assert_eq!(items[1], IndexItem::Slice(None, None));
    let StmtKind::If { orelse, .. } = &body[3].kind else {
        panic!("{:?}", body[3])
    };
    assert_eq!(orelse.len(), 1, "elif is an If alone in orelse");
    let StmtKind::If { orelse: last, .. } = &orelse[0].kind else {
        panic!("{:?}", orelse[0])
    };
    assert!(
        last.is_empty(),
        "a lone `pass` is the empty block: {last:?}"
    );
}

#[test]
fn rejects_constructs_outside_the_subset() {
    // Line 7 is the first body line of the compute thread in `with_compute`.
    let cases: &[(&str, &[&str])] = &[
        (
            "        while x:\n            pass",
            &["`while` loop", "supported:"],
        ),
        ("        f = lambda v: v", &["`lambda`"]),
        ("        a += b", &["augmented assignment", "a = a + b"]),
        ("        y = ...", &["`...`", "placeholder"]),
        ("        y = a < b < c", &["chained comparison"]),
        ("        y = a ** 2", &["`**`", "ttl.power"]),
        ("        y = a @ b", &["`@`", "ttl.math.matmul"]),
        ("        a[0] = b", &["assignment to a subscript"]),
        ("        a = b = c", &["chained assignment"]),
        (
            "        for i in items:\n            pass",
            &["`range(...)`"],
        ),
        (
            "        for i in range(1, 2, 3, 4):\n            pass",
            &["1 to 3"],
        ),
        (
            "        for i in range(3):\n            pass\n        else:\n            pass",
            &["`for ... else`"],
        ),
        (
            "        with a as (b, c):\n            pass",
            &["single name"],
        ),
        ("        y = t[0:4:2]", &["step"]),
        ("        return x", &["`return`"]),
        ("        y = None", &["`None`"]),
        ("        y = a if c else b", &["conditional expression"]),
        ("        y = f(*xs)", &["`*args`"]),
        ("        y = x in xs", &["`in`"]),
        (
            "        def helper():\n            pass",
            &["function definition"],
        ),
    ];
    for (body, parts) in cases {
        assert_err(&with_compute(body), 7, parts);
    }
}

#[test]
fn rejects_malformed_kernels() {
    let thread = "    @ttl.compute()\n    def c():\n        pass\n";
    let cases: Vec<(String, u32, Vec<&str>)> = vec![
        (format!("import ttl\n@ttl.kernel()\ndef k(a):\n{thread}"), 2, vec!["kernel `k` needs its grid", "grid=(X, Y)"]),
        (format!("import ttl\n@ttl.kernel\ndef k(a):\n{thread}"), 3, vec!["needs its grid"]),
        (format!("import ttl\n@ttl.kernel(grid=(2, 2, 2))\ndef k(a):\n{thread}"), 2, vec!["needs its grid"]),
        (format!("import ttl\nG = 0.5\n@ttl.kernel(grid=(G, 1))\ndef k(a):\n{thread}"), 3, vec!["positive integers"]),
        (format!("import ttl\n@ttl.kernel(grid=(UNKNOWN, 1))\ndef k(a):\n{thread}"), 2, vec!["positive integers"]),
        (format!("import ttl\n@ttl.kernel(grid=(0, 1))\ndef k(a):\n{thread}"), 2, vec!["positive integers"]),
        (
            "import ttl\n@ttl.kernel(grid=(1, 1))\ndef k(a):\n    def c():\n        pass\n".into(),
            4,
            vec!["function `c` in kernel `k` has no thread decorator", "@ttl.compute()"],
        ),
        ("import ttl\n@ttl.compute()\ndef c():\n    pass\n".into(), 3, vec!["outside a kernel"]),
        (
            "import ttl\n@ttl.kernel(grid=(1, 1))\ndef k(a):\n    @ttl.compute()\n    def c(x):\n        pass\n".into(),
            5,
            vec!["thread `c` takes parameters"],
        ),
        (format!("import ttl\n@ttl.kernel(grid=(1, 1))\ndef k(a=1):\n{thread}"), 3, vec!["plain names"]),
        (format!("import ttl\n@ttl.kern(grid=(1, 1))\ndef k(a):\n{thread}"), 2, vec!["`@ttl.kern`"]),
        (
            format!("from ttl import kernel\n@kernel(grid=(1, 1))\ndef k(a):\n{thread}"),
            2,
            vec!["`@kernel` without the `ttl.` prefix"],
        ),
        (
            "import ttl\n@ttl.kernel(grid=(1, 1))\ndef k(a):\n    @compute()\n    def c():\n        pass\n".into(),
            4,
            vec!["`@compute` without the `ttl.` prefix"],
        ),
        (
            format!("import ttl\n@other\n@ttl.kernel(grid=(1, 1))\ndef k(a):\n{thread}"),
            3,
            vec!["other decorators"],
        ),
    ];
    for (src, line, parts) in &cases {
        assert_err(src, *line, parts);
    }
}

#[test]
fn syntax_errors_name_the_line() {
    let e = err("import ttl\n\nX = 1\ny = (2,\nz = ]\n");
    assert!(matches!(e, ParseError::Syntax { .. }), "{e:?}");
    assert!(e.line() >= 4, "syntax error reported at line {}", e.line());
    assert!(e.to_string().starts_with("t.py:"), "{e}");
}

#[test]
fn integer_literals_beyond_64_bits_are_errors_and_i64_min_is_not() {
    let m = parse_module("X = -9223372036854775808\n", "t.py").expect("parses");
    let StmtKind::Assign { value, .. } = &m.constants[0].kind else {
        panic!()
    };
    assert_eq!(value, &Expr::Int(i64::MIN));
    assert_err("X = 9223372036854775808\n", 1, &["does not fit in 64 bits"]);
}

#[test]
fn non_finite_float_spellings_read_as_floats() {
    let m = parse_module(
        "A = float(\"inf\")\nB = float(\"-inf\")\nC = float(\"nan\")\n",
        "t.py",
    );
    // `float(...)` is a call, so these are not module constants; inside a kernel they are.
    assert!(m.expect("parses").constants.is_empty());
    let src = with_compute(
        "        a = float(\"inf\")\n        b = float(\"-inf\")\n        c = float(\"nan\")",
    );
    let m = parse_module(&src, "t.py").expect("parses");
    let v: Vec<f64> = m.kernels[0].threads[0]
        .body
        .iter()
        .map(|s| match &s.kind {
            StmtKind::Assign {
                value: Expr::Float(v),
                ..
            } => *v,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(v[0], f64::INFINITY);
    assert_eq!(v[1], f64::NEG_INFINITY);
    assert!(v[2].is_nan());
}

#[test]
fn windows_line_endings_keep_line_numbers() {
    let src = "import ttl\r\n\r\nX = 1\r\n\r\n@ttl.kernel(grid=(X, 1))\r\ndef k(a):\r\n    \"\"\"Two\r\n    lines.\"\"\"\r\n    @ttl.compute()\r\n    def c():\r\n        y = a\r\n";
    let m = parse_module(src, "t.py").expect("parses");
    assert_eq!(m.constants[0].line, 3);
    let k = &m.kernels[0];
    assert_eq!((k.line, k.grid), (6, (1, 1)));
    assert_eq!(k.threads[0].line, 10);
    assert_eq!(k.threads[0].body[0].line, 11);
    assert!(k
        .doc
        .as_deref()
        .is_some_and(|d| d.starts_with("Two") && d.ends_with("lines.")));
}
