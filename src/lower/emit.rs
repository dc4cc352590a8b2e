//! Small builders for the TT-Lang AST in the style of the guide's kernels.

use ttfuse_runtime::ttl::ast::{BinOp, CmpOp, Expr, IndexItem, Stmt, StmtKind, WithItem};

use crate::plan::Cb;

/// `name`.
pub fn name(n: &str) -> Expr {
    Expr::name(n)
}

/// An integer literal.
pub fn int(i: usize) -> Expr {
    Expr::Int(i as i64)
}

/// `a + b`, folding `0 + b` and `a + 0`.
pub fn add(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Int(0), _) => b,
        (_, Expr::Int(0)) => a,
        _ => Expr::bin(BinOp::Add, a, b),
    }
}

/// `a * b`, folding multiplications by 0 and 1.
pub fn mul(a: Expr, b: Expr) -> Expr {
    match (&a, &b) {
        (Expr::Int(0), _) | (_, Expr::Int(0)) => Expr::Int(0),
        (Expr::Int(1), _) => b,
        (_, Expr::Int(1)) => a,
        _ => Expr::bin(BinOp::Mul, a, b),
    }
}

/// `name = value`.
pub fn assign(target: &str, value: Expr) -> Stmt {
    Stmt::new(StmtKind::Assign {
        targets: vec![target.to_string()],
        value,
    })
}

/// An expression statement.
pub fn expr(e: Expr) -> Stmt {
    Stmt::new(StmtKind::Expr(e))
}

/// `with e1 as n1, e2 as n2: body`.
pub fn with(items: Vec<(Expr, String)>, body: Vec<Stmt>) -> Stmt {
    let items = items
        .into_iter()
        .map(|(context, n)| WithItem {
            context,
            name: Some(n),
        })
        .collect();
    Stmt::new(StmtKind::With { items, body })
}

/// `for var in range(stop): body`.
pub fn for_range(var: &str, stop: Expr, body: Vec<Stmt>) -> Stmt {
    Stmt::new(StmtKind::For {
        var: var.to_string(),
        start: Expr::Int(0),
        stop,
        step: Expr::Int(1),
        body,
    })
}

/// `for var in range(start, stop): body`.
pub fn for_range_from(var: &str, start: Expr, stop: Expr, body: Vec<Stmt>) -> Stmt {
    Stmt::new(StmtKind::For {
        var: var.to_string(),
        start,
        stop,
        step: Expr::Int(1),
        body,
    })
}

/// `if a < b: body`.
pub fn if_less(a: Expr, b: Expr, body: Vec<Stmt>) -> Stmt {
    if_else(compare(CmpOp::Lt, a, b), body, vec![])
}

/// `if cond: then else: orelse`.
pub fn if_else(cond: Expr, then: Vec<Stmt>, orelse: Vec<Stmt>) -> Stmt {
    Stmt::new(StmtKind::If { cond, then, orelse })
}

/// `a <op> b`.
pub fn compare(op: CmpOp, a: Expr, b: Expr) -> Expr {
    Expr::Cmp(op, Box::new(a), Box::new(b))
}

/// `ttl.Pipe(src=(x, y), dst=(x, y))`.
pub fn pipe(src: (Expr, Expr), dst: (Expr, Expr)) -> Expr {
    Expr::path("ttl.Pipe").call_kw(
        vec![],
        vec![
            ("src", Expr::Tuple(vec![src.0, src.1])),
            ("dst", Expr::Tuple(vec![dst.0, dst.1])),
        ],
    )
}

/// `cb.wait()`.
pub fn wait(cb: &str) -> Expr {
    name(cb).method("wait", vec![])
}

/// `cb.pop()`: releases the block a bare `cb.wait()` took.
pub fn pop(cb: &str) -> Stmt {
    expr(name(cb).method("pop", vec![]))
}

/// `cb.reserve()`.
pub fn reserve(cb: &str) -> Expr {
    name(cb).method("reserve", vec![])
}

/// `block.store(value)`.
pub fn store(block: &str, value: Expr) -> Stmt {
    expr(name(block).method("store", vec![value]))
}

/// `ttl.math.<f>(args...)`.
pub fn math(f: &str, args: Vec<Expr>) -> Expr {
    Expr::path(&format!("ttl.math.{f}")).call(args)
}

/// `ttl.math.<f>(args..., dims=[...])`.
pub fn math_dims(f: &str, args: Vec<Expr>, dims: &[i64]) -> Expr {
    let dims = Expr::List(dims.iter().map(|&d| Expr::Int(d)).collect());
    Expr::path(&format!("ttl.math.{f}")).call_kw(args, vec![("dims", dims)])
}

/// `lo:lo + len` as a subscript.
pub fn span(lo: Expr, len: Expr) -> IndexItem {
    let hi = add(lo.clone(), len);
    IndexItem::Slice(Some(lo), Some(hi))
}

/// `tensor[items]`.
pub fn index(tensor: &str, items: Vec<IndexItem>) -> Expr {
    name(tensor).index(items)
}

/// `with cb.reserve() as blk: tx = ttl.copy(src, blk); tx.wait()`.
pub fn read_into(cb: &str, src: Expr) -> Stmt {
    with(vec![(reserve(cb), "blk".into())], copy(src, name("blk")))
}

/// `with cb.wait() as blk: tx = ttl.copy(blk, dst); tx.wait()`.
pub fn write_from(cb: &str, dst: Expr) -> Stmt {
    with(vec![(wait(cb), "blk".into())], copy(name("blk"), dst))
}

/// `tx = ttl.copy(src, dst); tx.wait()`.
pub fn copy(src: Expr, dst: Expr) -> Vec<Stmt> {
    vec![
        assign("tx", Expr::path("ttl.copy").call(vec![src, dst])),
        expr(name("tx").method("wait", vec![])),
    ]
}

/// `name = ttl.make_circular_buffer_like(like, shape=(r, c), buffer_factor=n)`.
pub fn make_cb(cb: &Cb) -> Stmt {
    let shape = Expr::Tuple(vec![int(cb.shape.0), int(cb.shape.1)]);
    let call = Expr::path("ttl.make_circular_buffer_like").call_kw(
        vec![name(&cb.like)],
        vec![("shape", shape), ("buffer_factor", int(cb.buffer_factor))],
    );
    assign(&cb.name, call)
}
