//! Printer/parser round trip: `parse(print(m)) == m` (up to source lines) for hand-built modules
//! covering every expression and statement form, Python precedence, float formats and literal
//! edge cases; and the printed text is valid Python for `python3 -m py_compile`.

mod py_util;

use std::process::Command;

use ttfuse_runtime::ttl::ast::{
    BinOp, BoolOp, CmpOp, Expr, IndexItem, Kernel, Module, Stmt, StmtKind, Thread, ThreadKind,
    UnaryOp, WithItem,
};
use ttfuse_runtime::ttl::parse::parse_module;
use ttfuse_runtime::ttl::print::{print_expr, print_kernel, print_module};

fn n(s: &str) -> Expr {
    Expr::name(s)
}
fn b(e: Expr) -> Box<Expr> {
    Box::new(e)
}
fn bin(op: BinOp, a: Expr, c: Expr) -> Expr {
    Expr::bin(op, a, c)
}
fn neg(e: Expr) -> Expr {
    Expr::Unary(UnaryOp::Neg, b(e))
}
fn not(e: Expr) -> Expr {
    Expr::Unary(UnaryOp::Not, b(e))
}
fn cmp(op: CmpOp, a: Expr, c: Expr) -> Expr {
    Expr::Cmp(op, b(a), b(c))
}
fn and(a: Expr, c: Expr) -> Expr {
    Expr::Bool2(BoolOp::And, b(a), b(c))
}
fn or(a: Expr, c: Expr) -> Expr {
    Expr::Bool2(BoolOp::Or, b(a), b(c))
}
fn assign(t: &str, v: Expr) -> Stmt {
    Stmt::new(StmtKind::Assign {
        targets: vec![t.to_string()],
        value: v,
    })
}
fn expr_stmt(e: Expr) -> Stmt {
    Stmt::new(StmtKind::Expr(e))
}
fn with(items: Vec<(Expr, Option<&str>)>, body: Vec<Stmt>) -> Stmt {
    Stmt::new(StmtKind::With {
        items: items
            .into_iter()
            .map(|(context, name)| WithItem {
                context,
                name: name.map(str::to_string),
            })
            .collect(),
        body,
    })
}
fn for_range(var: &str, start: Expr, stop: Expr, step: Expr, body: Vec<Stmt>) -> Stmt {
    Stmt::new(StmtKind::For {
        var: var.to_string(),
        start,
        stop,
        step,
        body,
    })
}
fn if_(cond: Expr, then: Vec<Stmt>, orelse: Vec<Stmt>) -> Stmt {
    Stmt::new(StmtKind::If { cond, then, orelse })
}
fn at(e: Expr) -> IndexItem {
    IndexItem::At(e)
}
fn slice(lo: Option<Expr>, hi: Option<Expr>) -> IndexItem {
    IndexItem::Slice(lo, hi)
}

/// Expressions exercising every `Expr` variant and the precedence rules.
fn expressions() -> Vec<Expr> {
    use BinOp::*;
    let (a, bb, c) = (n("a"), n("b"), n("c"));
    vec![
        Expr::Int(0),
        Expr::Int(42),
        Expr::Int(-7),
        Expr::Int(i64::MAX),
        Expr::Int(i64::MIN),
        Expr::Float(0.5),
        Expr::Float(1e-5),
        Expr::Float(1e30),
        Expr::Float(0.044715),
        Expr::Float(2.0),
        Expr::Float(-1.0),
        Expr::Float(-2.5e-8),
        Expr::Float(0.1 + 0.2),
        Expr::Float(f64::MAX),
        Expr::Float(f64::MIN_POSITIVE),
        Expr::Float(5e-324),
        Expr::Float(1e16),
        Expr::Float(f64::INFINITY),
        Expr::Float(f64::NEG_INFINITY),
        Expr::Bool(true),
        Expr::Bool(false),
        Expr::Str(String::new()),
        Expr::Str("it's \"quoted\"".into()),
        Expr::Str("back\\slash\nnew line\ttab\r\u{7}bell é ☃".into()),
        Expr::path("ttl.math.exp").call(vec![a.clone()]),
        Expr::path("ttl.make_circular_buffer_like").call_kw(
            vec![a.clone()],
            vec![
                ("shape", Expr::Tuple(vec![Expr::Int(2), Expr::Int(2)])),
                ("buffer_factor", Expr::Int(2)),
            ],
        ),
        Expr::path("ttl.math.reduce_sum").call_kw(
            vec![a.clone(), bb.clone(), c.clone()],
            vec![("dims", Expr::List(vec![Expr::Int(0), Expr::Int(1)]))],
        ),
        Expr::path("ttl.Pipe").call_kw(
            vec![],
            vec![
                ("src", Expr::Tuple(vec![Expr::Int(1), Expr::Int(0)])),
                ("dst", Expr::Tuple(vec![Expr::Int(0), Expr::Int(0)])),
            ],
        ),
        n("f").call(vec![]),
        n("f")
            .call(vec![])
            .call(vec![Expr::Tuple(vec![])])
            .attr("x"),
        // Precedence.
        bin(Sub, a.clone(), bin(Sub, bb.clone(), c.clone())),
        bin(Sub, bin(Sub, a.clone(), bb.clone()), c.clone()),
        bin(Mul, bin(Add, a.clone(), bb.clone()), c.clone()),
        bin(Add, a.clone(), bin(Mul, bb.clone(), c.clone())),
        neg(bin(Mul, a.clone(), bb.clone())),
        bin(Mul, neg(a.clone()), bb.clone()),
        bin(Mod, bin(FloorDiv, a.clone(), bb.clone()), c.clone()),
        bin(FloorDiv, a.clone(), bin(Mod, bb.clone(), c.clone())),
        bin(Div, a.clone(), bin(Div, bb.clone(), c.clone())),
        bin(Div, bin(Mul, a.clone(), bb.clone()), c.clone()),
        bin(Sub, a.clone(), Expr::Int(-4)),
        bin(Mul, Expr::Float(-0.5), a.clone()),
        neg(Expr::Int(3)),
        neg(Expr::Float(1.5)),
        neg(Expr::Int(-3)),
        neg(neg(a.clone())),
        neg(Expr::Float(f64::INFINITY)),
        bin(
            Add,
            bin(Add, a.clone(), bb.clone()),
            bin(Add, c.clone(), Expr::Int(1)),
        ),
        bin(Add, bin(Add, n("a"), n("b")), bin(Add, n("c"), n("d"))).attr("real"),
        Expr::Int(2).attr("bit_length").call(vec![]),
        Expr::Float(-2.0).attr("real"),
        bin(Mul, a.clone(), bb.clone()).method("store", vec![c.clone()]),
        // Comparisons and booleans.
        cmp(CmpOp::Eq, n("x"), Expr::Int(0)),
        cmp(CmpOp::Ne, n("x"), n("y")),
        cmp(CmpOp::Lt, bin(Add, a.clone(), Expr::Int(1)), bb.clone()),
        cmp(CmpOp::Le, cmp(CmpOp::Lt, a.clone(), bb.clone()), c.clone()),
        cmp(CmpOp::Gt, a.clone(), cmp(CmpOp::Ge, bb.clone(), c.clone())),
        and(cmp(CmpOp::Eq, n("x"), Expr::Int(1)), not(n("y"))),
        or(and(a.clone(), bb.clone()), c.clone()),
        and(a.clone(), or(bb.clone(), c.clone())),
        and(and(a.clone(), bb.clone()), c.clone()),
        and(a.clone(), and(bb.clone(), c.clone())),
        not(and(a.clone(), bb.clone())),
        not(not(a.clone())),
        neg(not(a.clone())),
        not(neg(a.clone())),
        cmp(CmpOp::Eq, not(a.clone()), bb.clone()),
        // Tuples, lists and subscripts.
        Expr::Tuple(vec![]),
        Expr::Tuple(vec![a.clone()]),
        Expr::Tuple(vec![a.clone(), Expr::Tuple(vec![bb.clone(), c.clone()])]),
        Expr::List(vec![]),
        Expr::List(vec![
            Expr::Tuple(vec![a.clone(), bb.clone()]),
            Expr::List(vec![c.clone()]),
        ]),
        n("t").index(vec![at(n("y")), at(n("x"))]),
        n("t").index(vec![at(Expr::Int(0))]),
        n("t").index(vec![]),
        n("t").index(vec![at(Expr::Tuple(vec![a.clone(), bb.clone()]))]),
        n("t").index(vec![at(Expr::Tuple(vec![a.clone()])), at(bb.clone())]),
        n("t").index(vec![
            slice(
                Some(bin(Mul, n("row"), Expr::Int(2))),
                Some(bin(Mul, bin(Add, n("row"), Expr::Int(1)), Expr::Int(2))),
            ),
            slice(Some(n("col_start")), Some(n("col_end"))),
        ]),
        n("t").index(vec![slice(None, None)]),
        n("t").index(vec![
            slice(Some(Expr::Int(1)), None),
            slice(None, Some(Expr::Int(-1))),
        ]),
        n("t").index(vec![slice(Some(or(a.clone(), bb.clone())), None)]),
        bin(Add, n("t"), Expr::Int(1)).index(vec![at(Expr::Int(0))]),
    ]
}

/// A module containing every statement form, nested, around the expressions above.
fn every_form_module() -> Module {
    let exprs = expressions();
    let assigns: Vec<Stmt> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| assign(&format!("v{i}"), e.clone()))
        .collect();
    let compute_body = vec![
        Stmt::new(StmtKind::Assign {
            targets: vec!["x".into(), "y".into()],
            value: Expr::path("ttl.core").call_kw(vec![], vec![("dims", Expr::Int(2))]),
        }),
        Stmt::new(StmtKind::Assign {
            targets: vec!["p".into(), "q".into()],
            value: Expr::Tuple(vec![Expr::Int(4), Expr::Int(4)]),
        }),
        assign("single", Expr::Tuple(vec![Expr::Int(1)])),
        with(
            vec![
                (n("a_cb").method("wait", vec![]), Some("av")),
                (n("b_cb").method("wait", vec![]), Some("bv")),
                (n("o_cb").method("reserve", vec![]), Some("o")),
            ],
            vec![
                for_range(
                    "i",
                    Expr::Int(0),
                    n("N"),
                    Expr::Int(1),
                    vec![
                        if_(
                            cmp(CmpOp::Eq, n("x"), Expr::Int(0)),
                            vec![expr_stmt(n("o").method("store", vec![n("av")]))],
                            vec![if_(
                                cmp(CmpOp::Eq, n("x"), Expr::Int(1)),
                                vec![Stmt::new(StmtKind::Pass), assign("t", n("x"))],
                                vec![if_(
                                    n("flag"),
                                    vec![expr_stmt(n("f").call(vec![]))],
                                    vec![
                                        expr_stmt(n("g").call(vec![])),
                                        if_(n("z"), vec![], vec![]),
                                    ],
                                )],
                            )],
                        ),
                        with(vec![(n("ctx"), None)], vec![]),
                        with(
                            vec![
                                (Expr::Tuple(vec![n("a"), n("b")]), None),
                                (Expr::Tuple(vec![n("c")]), Some("t")),
                            ],
                            vec![],
                        ),
                        with(vec![(Expr::Tuple(vec![n("a"), n("b")]), None)], vec![]),
                    ],
                ),
                for_range("_", Expr::Int(1), n("N"), Expr::Int(1), vec![]),
                for_range("j", Expr::Int(0), Expr::Int(8), Expr::Int(2), vec![]),
                for_range("k", n("lo"), n("hi"), Expr::Int(-1), vec![]),
            ],
        ),
        if_(
            n("c"),
            vec![],
            vec![Stmt::new(StmtKind::Pass), expr_stmt(n("h").call(vec![]))],
        ),
    ];
    let all_exprs = Kernel {
        name: "all_exprs".into(),
        grid: (8, 8),
        params: vec!["a".into(), "b".into(), "out".into()],
        doc: Some("\n    Everything: a -> b.\n\n    x: (4, 4) tiles\n    ".into()),
        setup: assigns,
        threads: vec![
            Thread {
                kind: ThreadKind::Compute,
                name: "compute".into(),
                body: compute_body,
                line: 0,
            },
            Thread {
                kind: ThreadKind::DataMovement,
                name: "dm_read".into(),
                body: vec![expr_stmt(Expr::Str("not a docstring".into()))],
                line: 0,
            },
            Thread {
                kind: ThreadKind::DataMovement,
                name: "dm_write".into(),
                body: vec![],
                line: 0,
            },
        ],
        line: 0,
    };
    let docs = [
        "one line",
        "ends with a quote \"",
        "has \"\"\" triple quotes",
        "back\\slash",
        "",
        "control \u{1} char",
    ];
    let mut kernels = vec![all_exprs];
    for (i, d) in docs.iter().enumerate() {
        kernels.push(Kernel {
            name: format!("doc{i}"),
            grid: (1, 2),
            params: vec![],
            doc: Some(d.to_string()),
            setup: vec![],
            threads: vec![],
            line: 0,
        });
    }
    kernels.push(Kernel {
        name: "string_first_no_doc".into(),
        grid: (1, 1),
        params: vec![],
        doc: None,
        setup: vec![
            expr_stmt(Expr::Str("not the docstring".into())),
            assign("x", Expr::Int(1)),
        ],
        threads: vec![],
        line: 0,
    });
    kernels.push(Kernel {
        name: "no_doc_no_setup".into(),
        grid: (13, 10),
        params: vec!["x".into()],
        doc: None,
        setup: vec![],
        threads: vec![Thread {
            kind: ThreadKind::Compute,
            name: "c".into(),
            body: vec![],
            line: 0,
        }],
        line: 0,
    });
    Module {
        constants: vec![
            assign("COORDINATOR", Expr::Int(0)),
            assign("ROWS", bin(BinOp::Mul, n("COORDINATOR"), Expr::Int(4))),
            Stmt::new(StmtKind::Assign {
                targets: vec!["A".into(), "B".into()],
                value: Expr::Tuple(vec![Expr::Float(-1.5), Expr::Str("s".into())]),
            }),
        ],
        kernels,
    }
}

fn roundtrip(m: &Module) -> Module {
    let text = print_module(m);
    match parse_module(&text, "printed.py") {
        Ok(p) => p,
        Err(e) => panic!("printed module does not parse: {e}\n{text}"),
    }
}

#[test]
fn every_form_round_trips() {
    let m = every_form_module();
    let parsed = roundtrip(&m);
    assert_eq!(parsed.without_lines(), m, "\n{}", print_module(&m));
}

#[test]
fn each_expression_round_trips_alone() {
    for e in expressions() {
        let m = Module {
            constants: vec![],
            kernels: vec![kernel_with(vec![assign("r", e.clone())])],
        };
        let parsed = roundtrip(&m).without_lines();
        assert_eq!(parsed, m, "expression printed as `{}`", print_expr(&e));
    }
}

fn kernel_with(body: Vec<Stmt>) -> Kernel {
    Kernel {
        name: "k".into(),
        grid: (1, 1),
        params: vec![],
        doc: None,
        setup: vec![],
        threads: vec![Thread {
            kind: ThreadKind::Compute,
            name: "c".into(),
            body,
            line: 0,
        }],
        line: 0,
    }
}

#[test]
fn empty_blocks_print_as_pass_and_a_lone_pass_reads_as_empty() {
    let empty = Module {
        constants: vec![],
        kernels: vec![kernel_with(vec![])],
    };
    let text = print_module(&empty);
    assert!(text.ends_with("    def c():\n        pass\n"), "{text}");
    assert_eq!(roundtrip(&empty).without_lines(), empty);
    let lone = Module {
        constants: vec![],
        kernels: vec![kernel_with(vec![Stmt::new(StmtKind::Pass)])],
    };
    assert_eq!(
        print_module(&lone),
        text,
        "a lone pass prints like the empty block"
    );
    assert_eq!(roundtrip(&lone).without_lines(), empty);
}

#[test]
fn precedence_uses_minimal_parentheses() {
    use BinOp::*;
    let (a, bb, c) = (n("a"), n("b"), n("c"));
    let cases = [
        (
            bin(Sub, a.clone(), bin(Sub, bb.clone(), c.clone())),
            "a - (b - c)",
        ),
        (
            bin(Sub, bin(Sub, a.clone(), bb.clone()), c.clone()),
            "a - b - c",
        ),
        (
            bin(Mul, bin(Add, a.clone(), bb.clone()), c.clone()),
            "(a + b) * c",
        ),
        (
            bin(Add, a.clone(), bin(Mul, bb.clone(), c.clone())),
            "a + b * c",
        ),
        (neg(bin(Mul, a.clone(), bb.clone())), "-(a * b)"),
        (bin(Mul, neg(a.clone()), bb.clone()), "-a * b"),
        (
            bin(Mod, bin(FloorDiv, a.clone(), bb.clone()), c.clone()),
            "a // b % c",
        ),
        (
            bin(FloorDiv, a.clone(), bin(Mod, bb.clone(), c.clone())),
            "a // (b % c)",
        ),
        (neg(Expr::Int(3)), "-(3)"),
        (Expr::Int(-3), "-3"),
        (bin(Sub, a.clone(), Expr::Int(-4)), "a - -4"),
        (Expr::Int(2).attr("real"), "(2).real"),
        (and(a.clone(), or(bb.clone(), c.clone())), "a and (b or c)"),
        (or(and(a.clone(), bb.clone()), c.clone()), "a and b or c"),
        (not(cmp(CmpOp::Eq, a.clone(), bb.clone())), "not a == b"),
        (
            cmp(CmpOp::Lt, cmp(CmpOp::Lt, a.clone(), bb.clone()), c.clone()),
            "(a < b) < c",
        ),
        (
            n("t").index(vec![
                slice(Some(n("r")), Some(bin(Add, n("r"), Expr::Int(2)))),
                at(n("x")),
            ]),
            "t[r:r + 2, x]",
        ),
        (
            n("t").index(vec![at(Expr::Tuple(vec![a.clone(), bb.clone()]))]),
            "t[(a, b),]",
        ),
        (Expr::Tuple(vec![a.clone()]), "(a,)"),
        (Expr::Float(1e-5), "1e-5"),
        (Expr::Float(2.0), "2.0"),
        (Expr::Float(f64::INFINITY), "float(\"inf\")"),
        (Expr::Str("it's \"q\"".into()), r#""it's \"q\"""#),
    ];
    for (e, want) in cases {
        assert_eq!(print_expr(&e), want);
    }
}

#[test]
fn floats_keep_their_exact_value() {
    let values = [
        0.5,
        1e-5,
        1e30,
        1e+30,
        0.044715,
        2.0,
        0.7978845608,
        -1.0,
        1.0 / 3.0,
        0.1 + 0.2,
        123456789012345680.0,
        1e16,
        1e17,
        f64::EPSILON,
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        -0.0,
    ];
    for v in values {
        let text = print_expr(&Expr::Float(v));
        assert!(
            text.contains(['.', 'e']),
            "{text} must read back as a float"
        );
        let m = Module {
            constants: vec![assign("X", Expr::Float(v))],
            kernels: vec![],
        };
        let parsed = roundtrip(&m);
        let StmtKind::Assign {
            value: Expr::Float(back),
            ..
        } = &parsed.constants[0].kind
        else {
            panic!("{text} read back as {:?}", parsed.constants[0]);
        };
        assert_eq!(back.to_bits(), v.to_bits(), "{text}");
    }
    // NaN is not equal to itself, so check it separately.
    let m = Module {
        constants: vec![],
        kernels: vec![kernel_with(vec![assign("r", Expr::Float(f64::NAN))])],
    };
    let parsed = roundtrip(&m);
    let StmtKind::Assign {
        value: Expr::Float(back),
        ..
    } = &parsed.kernels[0].threads[0].body[0].kind
    else {
        panic!("NaN did not read back as a float");
    };
    assert!(back.is_nan());
}

#[test]
fn printing_is_deterministic_and_a_fixed_point() {
    let m = every_form_module();
    let first = print_module(&m);
    assert_eq!(first, print_module(&m.clone()));
    assert_eq!(
        print_module(&roundtrip(&m)),
        first,
        "print(parse(print(m))) == print(m)"
    );
}

#[test]
fn layout_follows_the_guide() {
    let k = Kernel {
        name: "add_kernel".into(),
        grid: (1, 1),
        params: vec!["lhs".into(), "out".into()],
        doc: Some("Add.".into()),
        setup: vec![assign(
            "lhs_cb",
            Expr::path("ttl.make_circular_buffer_like").call_kw(
                vec![n("lhs")],
                vec![
                    ("shape", Expr::Tuple(vec![Expr::Int(1), Expr::Int(1)])),
                    ("buffer_factor", Expr::Int(2)),
                ],
            ),
        )],
        threads: vec![
            Thread {
                kind: ThreadKind::Compute,
                name: "compute".into(),
                body: vec![with(
                    vec![(n("lhs_cb").method("wait", vec![]), Some("l"))],
                    vec![for_range(
                        "i",
                        Expr::Int(0),
                        Expr::Int(4),
                        Expr::Int(1),
                        vec![Stmt::new(StmtKind::Pass)],
                    )],
                )],
                line: 0,
            },
            Thread {
                kind: ThreadKind::DataMovement,
                name: "dm_read".into(),
                body: vec![Stmt::new(StmtKind::Pass)],
                line: 0,
            },
        ],
        line: 0,
    };
    let want = "import ttl


@ttl.kernel(grid=(1, 1))
def add_kernel(lhs, out):
    \"\"\"Add.\"\"\"
    lhs_cb = ttl.make_circular_buffer_like(lhs, shape=(1, 1), buffer_factor=2)

    @ttl.compute()
    def compute():
        with lhs_cb.wait() as l:
            for i in range(4):
                pass

    @ttl.datamovement()
    def dm_read():
        pass
";
    assert_eq!(print_kernel(&k), want);
}

/// Run `python3 -m py_compile` on printed files; CI has python3, other machines may not.
#[test]
fn printed_modules_are_valid_python() {
    if !py_util::python3_available("py_compile check") {
        return;
    }
    let m = every_form_module();
    let mut files = vec![("module.py".to_string(), print_module(&m))];
    for k in &m.kernels {
        files.push((format!("{}.py", k.name), print_kernel(k)));
    }
    py_util::assert_py_compiles("ttl_roundtrip_py", &files);
}

/// The printed literals mean to Python what they mean to us: Python evaluates each printed
/// constant expression to the value it was built from.
#[test]
fn python_reads_printed_literals_as_the_same_values() {
    if !py_util::python3_available("literal check") {
        return;
    }
    let floats = [
        0.5,
        1e-5,
        1e30,
        0.044715,
        -2.5e-8,
        0.1 + 0.2,
        5e-324,
        f64::MAX,
    ];
    let strings = ["it's \"quoted\"", "back\\slash\nnew\ttab\r\u{7}é☃", ""];
    let mut script = String::from("import sys\nok = True\n");
    for v in floats {
        script.push_str(&format!(
            "ok = ok and ({}).hex() == float.fromhex({:?}).hex()\n",
            print_expr(&Expr::Float(v)),
            hex_float(v)
        ));
    }
    for s in strings {
        let codepoints: Vec<String> = s.chars().map(|c| (c as u32).to_string()).collect();
        script.push_str(&format!(
            "ok = ok and [ord(c) for c in {}] == [{}]\n",
            print_expr(&Expr::Str(s.into())),
            codepoints.join(", ")
        ));
    }
    script.push_str(&format!(
        "ok = ok and ({}) == -4\n",
        print_expr(&neg(bin(
            BinOp::Mod,
            bin(
                BinOp::FloorDiv,
                bin(
                    BinOp::Mul,
                    bin(BinOp::Sub, Expr::Int(3), Expr::Int(-4)),
                    Expr::Int(2)
                ),
                Expr::Int(3)
            ),
            Expr::Int(5)
        )))
    ));
    script.push_str("sys.exit(0 if ok else 1)\n");
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "python disagrees:\n{script}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `v` in C99 hexadecimal float notation, an independent exact spelling of its bits.
fn hex_float(v: f64) -> String {
    let bits = v.to_bits();
    let sign = if bits >> 63 == 1 { "-" } else { "" };
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let mant = bits & ((1 << 52) - 1);
    if exp == 0 {
        format!("{sign}0x0.{mant:013x}p-1022")
    } else {
        format!("{sign}0x1.{mant:013x}p{}", exp - 1023)
    }
}
