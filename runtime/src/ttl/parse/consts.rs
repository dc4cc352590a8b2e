//! Module-level constants: recognising them among other module statements, and evaluating the
//! integer ones (a kernel's `grid=(X, Y)` may name them).

use std::collections::{BTreeMap, BTreeSet};

use rustpython_parser::ast as py;

use crate::ttl::ast::{BinOp, Expr, UnaryOp};

/// The module constants seen so far and the integer values of those that have one.
#[derive(Default)]
pub struct Constants {
    ints: BTreeMap<String, i64>,
    names: BTreeSet<String>,
}

impl Constants {
    /// Whether a Python expression is built only from literals, earlier constants, arithmetic,
    /// tuples and lists, i.e. is a module constant rather than host code such as
    /// `ttnn = pytest.importorskip(...)`.
    pub fn is_constant(&self, e: &py::Expr) -> bool {
        match e {
            py::Expr::Constant(c) => matches!(
                c.value,
                py::Constant::Int(_)
                    | py::Constant::Float(_)
                    | py::Constant::Bool(_)
                    | py::Constant::Str(_)
            ),
            py::Expr::Name(n) => self.names.contains(n.id.as_str()),
            py::Expr::BinOp(b) => self.is_constant(&b.left) && self.is_constant(&b.right),
            py::Expr::UnaryOp(u) => self.is_constant(&u.operand),
            py::Expr::Tuple(t) => t.elts.iter().all(|e| self.is_constant(e)),
            py::Expr::List(l) => l.elts.iter().all(|e| self.is_constant(e)),
            _ => false,
        }
    }

    /// Record the constant assignment `targets = value`.
    pub fn define(&mut self, targets: &[String], value: &Expr) {
        let values: Vec<Option<i64>> = match (targets, value) {
            ([_], v) => vec![self.eval_int(v)],
            (_, Expr::Tuple(items) | Expr::List(items)) if items.len() == targets.len() => {
                items.iter().map(|v| self.eval_int(v)).collect()
            }
            _ => vec![None; targets.len()],
        };
        for (name, v) in targets.iter().zip(values) {
            self.names.insert(name.clone());
            match v {
                Some(v) => self.ints.insert(name.clone(), v),
                None => self.ints.remove(name),
            };
        }
    }

    /// The value of an integer expression over literals and integer constants, if it has one.
    pub fn eval_int(&self, e: &Expr) -> Option<i64> {
        match e {
            Expr::Int(v) => Some(*v),
            Expr::Name(n) => self.ints.get(n).copied(),
            Expr::Unary(UnaryOp::Neg, a) => self.eval_int(a)?.checked_neg(),
            Expr::Bin(op, a, b) => {
                let (a, b) = (self.eval_int(a)?, self.eval_int(b)?);
                match op {
                    BinOp::Add => a.checked_add(b),
                    BinOp::Sub => a.checked_sub(b),
                    BinOp::Mul => a.checked_mul(b),
                    BinOp::FloorDiv => floor_div(a, b),
                    BinOp::Mod => floor_div(a, b).and_then(|q| a.checked_sub(q.checked_mul(b)?)),
                    BinOp::Div => None,
                }
            }
            _ => None,
        }
    }
}

/// Python's `a // b` (rounds toward negative infinity).
fn floor_div(a: i64, b: i64) -> Option<i64> {
    let q = a.checked_div(b)?;
    if a % b != 0 && ((a < 0) != (b < 0)) {
        q.checked_sub(1)
    } else {
        Some(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(v: i64) -> Expr {
        Expr::Int(v)
    }

    #[test]
    fn evaluates_integer_arithmetic_of_earlier_constants() {
        let mut c = Constants::default();
        c.define(&["A".into()], &int(4));
        c.define(
            &["B".into(), "C".into()],
            &Expr::Tuple(vec![int(3), Expr::Float(0.5)]),
        );
        let e = Expr::bin(
            BinOp::Mul,
            Expr::name("A"),
            Expr::bin(BinOp::Add, Expr::name("B"), int(1)),
        );
        assert_eq!(c.eval_int(&e), Some(16));
        assert_eq!(
            c.eval_int(&Expr::name("C")),
            None,
            "float constant is not an integer"
        );
        assert_eq!(c.eval_int(&Expr::name("D")), None, "unknown name");
        assert_eq!(
            c.eval_int(&Expr::bin(BinOp::Div, int(4), int(2))),
            None,
            "true division"
        );
    }

    #[test]
    fn floor_division_and_modulo_follow_python() {
        let c = Constants::default();
        let cases = [
            (7, 2, 3, 1),
            (-7, 2, -4, 1),
            (7, -2, -4, -1),
            (-7, -2, 3, -1),
            (6, 3, 2, 0),
        ];
        for (a, b, q, r) in cases {
            assert_eq!(
                c.eval_int(&Expr::bin(BinOp::FloorDiv, int(a), int(b))),
                Some(q),
                "{a}//{b}"
            );
            assert_eq!(
                c.eval_int(&Expr::bin(BinOp::Mod, int(a), int(b))),
                Some(r),
                "{a}%{b}"
            );
        }
        assert_eq!(
            c.eval_int(&Expr::bin(BinOp::FloorDiv, int(1), int(0))),
            None
        );
    }

    #[test]
    fn redefinition_as_non_integer_forgets_the_value() {
        let mut c = Constants::default();
        c.define(&["A".into()], &int(4));
        c.define(&["A".into()], &Expr::Str("x".into()));
        assert_eq!(c.eval_int(&Expr::name("A")), None);
    }
}
