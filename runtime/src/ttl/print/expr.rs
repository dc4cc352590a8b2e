//! Expressions and literals rendered as Python source with minimal parentheses.
//!
//! Parentheses follow Python's precedence table, so that parsing the text gives back the same
//! tree: a negative literal (`Expr::Int(-1)`) prints as `-1`, while negating a literal
//! (`Expr::Unary(Neg, Int(1))`) prints as `-(1)`; the parser tells the two apart by whether the
//! minus sign touches the digits.

use crate::ttl::ast::{BinOp, BoolOp, CmpOp, Expr, IndexItem, UnaryOp};

/// Python precedence levels, lowest binding first.
mod prec {
    /// Anything: the operand position of a call argument, slice bound or statement.
    pub const ANY: u8 = 0;
    /// `a or b`
    pub const OR: u8 = 1;
    /// `a and b`
    pub const AND: u8 = 2;
    /// `not a`
    pub const NOT: u8 = 3;
    /// `a < b`
    pub const CMP: u8 = 4;
    /// `a + b`, `a - b`
    pub const ADD: u8 = 5;
    /// `a * b`, `a / b`, `a // b`, `a % b`
    pub const MUL: u8 = 6;
    /// `-a` (and negative numeric literals, which Python reads as a negation)
    pub const NEG: u8 = 7;
    /// `a.b`, `a(b)`, `a[b]`
    pub const POSTFIX: u8 = 8;
    /// Names, literals, tuple and list displays.
    pub const ATOM: u8 = 9;
}

/// Render `e` as a Python expression.
pub fn expr(e: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, e, prec::ANY);
    out
}

/// Render a tuple without its parentheses (`a, b`) when it has at least two elements, as the
/// right-hand side of an assignment; any other expression as [`expr`].
pub fn bare_tuple(e: &Expr) -> String {
    match e {
        Expr::Tuple(items) if items.len() >= 2 => {
            let mut out = String::new();
            write_list(&mut out, items);
            out
        }
        _ => expr(e),
    }
}

/// A Python string literal for `s` (double-quoted, escapes only where needed).
pub fn string_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => push_escape(&mut out, c),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A docstring literal: `"""text"""` when the text can be written verbatim that way (the
/// guide's style), otherwise an ordinary escaped string literal.
pub fn docstring_literal(s: &str) -> String {
    let verbatim = !s.contains('\\')
        && !s.contains("\"\"\"")
        && !s.ends_with('"')
        && !s.chars().any(|c| c != '\n' && c != '\t' && needs_escape(c));
    if verbatim {
        format!("\"\"\"{s}\"\"\"")
    } else {
        string_literal(s)
    }
}

/// Characters that must not appear raw inside a string literal.
fn needs_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

fn push_escape(out: &mut String, c: char) {
    let v = c as u32;
    if v <= 0xff {
        out.push_str(&format!("\\x{v:02x}"));
    } else if v <= 0xffff {
        out.push_str(&format!("\\u{v:04x}"));
    } else {
        out.push_str(&format!("\\U{v:08x}"));
    }
}

/// A float literal that Python parses back to the same `f64`: Rust's shortest round-trip form,
/// always with a `.` or an exponent so that it stays a float. Infinities and NaN have no
/// literal in Python and print as `float("inf")`, `float("-inf")` and `float("nan")`, which the
/// parser reads back as floats.
fn float_literal(v: f64) -> String {
    if v.is_nan() {
        return "float(\"nan\")".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "float(\"inf\")"
        } else {
            "float(\"-inf\")"
        }
        .to_string();
    }
    let s = format!("{v:?}");
    if s.contains(['.', 'e', 'E']) {
        s
    } else {
        format!("{s}.0")
    }
}

/// The precedence level of `e` as printed.
fn level(e: &Expr) -> u8 {
    match e {
        Expr::Bool2(BoolOp::Or, ..) => prec::OR,
        Expr::Bool2(BoolOp::And, ..) => prec::AND,
        Expr::Unary(UnaryOp::Not, _) => prec::NOT,
        Expr::Cmp(..) => prec::CMP,
        Expr::Bin(BinOp::Add | BinOp::Sub, ..) => prec::ADD,
        Expr::Bin(..) => prec::MUL,
        Expr::Unary(UnaryOp::Neg, _) => prec::NEG,
        Expr::Int(v) if *v < 0 => prec::NEG,
        Expr::Float(v) if v.is_finite() && v.is_sign_negative() => prec::NEG,
        // Non-finite floats print as `float("...")` calls.
        Expr::Float(v) if !v.is_finite() => prec::POSTFIX,
        Expr::Attr(..) | Expr::Call { .. } | Expr::Index(..) => prec::POSTFIX,
        Expr::Int(_)
        | Expr::Float(_)
        | Expr::Bool(_)
        | Expr::Str(_)
        | Expr::Name(_)
        | Expr::Tuple(_)
        | Expr::List(_) => prec::ATOM,
    }
}

/// Whether `e` prints as a plain numeric literal (digits, possibly with a leading minus).
fn is_numeric_literal(e: &Expr) -> bool {
    match e {
        Expr::Int(_) => true,
        Expr::Float(v) => v.is_finite(),
        _ => false,
    }
}

/// Write `e`, parenthesized when it binds more loosely than `min`.
fn write_expr(out: &mut String, e: &Expr, min: u8) {
    if level(e) < min {
        out.push('(');
        write_inner(out, e);
        out.push(')');
    } else {
        write_inner(out, e);
    }
}

fn write_inner(out: &mut String, e: &Expr) {
    match e {
        Expr::Int(v) => out.push_str(&v.to_string()),
        Expr::Float(v) => out.push_str(&float_literal(*v)),
        Expr::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
        Expr::Str(s) => out.push_str(&string_literal(s)),
        Expr::Name(n) => out.push_str(n),
        Expr::Attr(base, attr) => {
            if is_numeric_literal(base) {
                // `2.real` would lex as a float; `(2).real` is the attribute.
                out.push('(');
                write_inner(out, base);
                out.push(')');
            } else {
                write_expr(out, base, prec::POSTFIX);
            }
            out.push('.');
            out.push_str(attr);
        }
        Expr::Call { func, args, kwargs } => {
            write_expr(out, func, prec::POSTFIX);
            out.push('(');
            write_list(out, args);
            for (i, (k, v)) in kwargs.iter().enumerate() {
                if i > 0 || !args.is_empty() {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                write_expr(out, v, prec::OR);
            }
            out.push(')');
        }
        Expr::Index(base, items) => {
            write_expr(out, base, prec::POSTFIX);
            out.push('[');
            write_index_items(out, items);
            out.push(']');
        }
        Expr::Bin(op, a, b) => {
            let p = level(e);
            write_expr(out, a, p);
            out.push_str(match op {
                BinOp::Add => " + ",
                BinOp::Sub => " - ",
                BinOp::Mul => " * ",
                BinOp::Div => " / ",
                BinOp::FloorDiv => " // ",
                BinOp::Mod => " % ",
            });
            write_expr(out, b, p + 1);
        }
        Expr::Unary(UnaryOp::Neg, a) => {
            out.push('-');
            if is_numeric_literal(a) && level(a) == prec::ATOM {
                // `-1` would read back as the literal -1, not as a negation of 1.
                out.push('(');
                write_inner(out, a);
                out.push(')');
            } else {
                write_expr(out, a, prec::NEG);
            }
        }
        Expr::Unary(UnaryOp::Not, a) => {
            out.push_str("not ");
            write_expr(out, a, prec::NOT);
        }
        Expr::Cmp(op, a, b) => {
            // Both sides bind tighter than a comparison, so no chain `a < b < c` can appear.
            write_expr(out, a, prec::CMP + 1);
            out.push_str(match op {
                CmpOp::Eq => " == ",
                CmpOp::Ne => " != ",
                CmpOp::Lt => " < ",
                CmpOp::Le => " <= ",
                CmpOp::Gt => " > ",
                CmpOp::Ge => " >= ",
            });
            write_expr(out, b, prec::CMP + 1);
        }
        Expr::Bool2(op, a, b) => {
            let p = level(e);
            write_expr(out, a, p);
            out.push_str(match op {
                BoolOp::And => " and ",
                BoolOp::Or => " or ",
            });
            write_expr(out, b, p + 1);
        }
        Expr::Tuple(items) => {
            out.push('(');
            write_list(out, items);
            if items.len() == 1 {
                out.push(',');
            }
            out.push(')');
        }
        Expr::List(items) => {
            out.push('[');
            write_list(out, items);
            out.push(']');
        }
    }
}

/// `a, b, c` with each element at "any" precedence (tuples keep their own parentheses).
fn write_list(out: &mut String, items: &[Expr]) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_expr(out, item, prec::OR);
    }
}

/// The inside of `base[...]`. Python folds `x[a, b]` into a tuple subscript, so the two cases
/// that a tuple subscript could be confused with are written unambiguously: no items as
/// `x[()]`, and a single tuple item as `x[(a, b),]`.
fn write_index_items(out: &mut String, items: &[IndexItem]) {
    match items {
        [] => out.push_str("()"),
        [IndexItem::At(t @ Expr::Tuple(_))] => {
            write_inner(out, t);
            out.push(',');
        }
        _ => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                match item {
                    IndexItem::At(e) => write_expr(out, e, prec::OR),
                    IndexItem::Slice(lo, hi) => {
                        if let Some(lo) = lo {
                            write_expr(out, lo, prec::OR);
                        }
                        out.push(':');
                        if let Some(hi) = hi {
                            write_expr(out, hi, prec::OR);
                        }
                    }
                }
            }
        }
    }
}
