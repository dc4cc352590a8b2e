//! The conditions and computed bindings that rule files may name, implemented once here.
//!
//! Guards (`if name(args)`):
//!
//! | guard | holds when |
//! |---|---|
//! | `const(?c, v)` | every element of `?c` is known to equal `v` (relative tolerance 1e-6) |
//! | `not_const(?c, v)` | `const(?c, v)` does not hold (some element may differ from `v`) |
//! | `scalar(?c)` | `?c` is a one-element constant with a known value (an `eps`) |
//! | `last_axis(?ax, ?x)` | `?ax` is the list `[rank(?x) - 1]` |
//! | `product_last_axis(?ax, ?a, ?b)` | `?ax` is the last axis of the product `?a @ ?b` (both of rank 2 or more) |
//! | `float(?x)` | `?x` is a floating-point tensor |
//! | `matrix(?x)` | `?x` is a tensor of rank 2 |
//! | `constant(?x)` | `?x` is computable from constants alone (folded after extraction) |
//! | `inverse_perms(?p, ?q)` | transposing by `?p` then by `?q` is the identity |
//! | `fractional(?c)` | `?c` is a one-element constant that is neither an integer nor +-0.5 (an exponent TT-Lang cannot raise to) |
//! | `channel_vector(?s, ?w)` | `?s` holds one value per output channel of convolution weights `?w` (`[O, ...]`), shaped `[O, 1, 1]` or `[1, O, 1, 1]` to broadcast over an NCHW result's channel axis |
//! | `approx()` | the options allow approximate rewrites (`OptimizeOptions::approximate`) |
//!
//! Bindings (`if ?v = name(args)`), which add a leaf to the e-graph:
//!
//! | binding | value |
//! |---|---|
//! | `?ax = last_axis(?x)` | the list `[rank(?x) - 1]` |
//! | `?ax = product_last_axis(?a, ?b)` | the last axis of the product `?a @ ?b` |
//! | `?r = compose_perms(?p, ?q)` | the permutation of transposing by `?p` then by `?q` |
//! | `?s = out_channels(?w)` | the shape `[O, 1, ..., 1]` (rank of `?w`) that broadcasts a per-output-channel vector over conv weights `?w` of shape `[O, ...]` |
//! | `?s = last_dim(?x)` | the list `[d]`, `d` the size of `?x`'s last axis (the shape of a norm's gamma) |
//! | `?s = column(?g)` | the shape `[n, 1]`, `n` the element count of `?g` (a vector as a column, which scales the rows of a matrix it multiplies) |
//! | `?s = flat(?g)` | the shape `[n]`, `n` the element count of `?g` (a convolution's bias) |
//! | `?s = channel_shape(?g, ?x)` | the shape `[n, 1, ..., 1]` of rank `rank(?x) - 1`, `n` the element count of `?g`: one value per channel of `?x` (`[N, C, ...]`), broadcast over its other axes |

use egg::{Id, Subst, Var};

use super::analysis::TGraph;
use super::language::Attr;
use super::typing::ClassData;

/// An argument of a guard or binding.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    /// A pattern variable.
    Var(Var),
    /// A number.
    Num(f32),
}

/// A guard: a check on the matched e-classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// `const(?c, v)`.
    Const,
    /// `not_const(?c, v)`.
    NotConst,
    /// `scalar(?c)`.
    Scalar,
    /// `last_axis(?ax, ?x)`.
    LastAxis,
    /// `product_last_axis(?ax, ?a, ?b)`.
    ProductLastAxis,
    /// `float(?x)`.
    Float,
    /// `matrix(?x)`.
    Matrix,
    /// `constant(?x)`.
    Constant,
    /// `inverse_perms(?p, ?q)`.
    InversePerms,
    /// `channel_vector(?s, ?w)`.
    ChannelVector,
    /// `fractional(?c)`.
    Fractional,
    /// `approx()`.
    Approx,
}

/// A binding: a leaf computed from the matched e-classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Binder {
    /// `last_axis(?x)`.
    LastAxis,
    /// `product_last_axis(?a, ?b)`.
    ProductLastAxis,
    /// `compose_perms(?p, ?q)`.
    ComposePerms,
    /// `out_channels(?w)`.
    OutChannels,
    /// `last_dim(?x)`.
    LastDim,
    /// `column(?g)`.
    Column,
    /// `flat(?g)`.
    Flat,
    /// `channel_shape(?g, ?x)`.
    ChannelShape,
}

/// The kinds of arguments a guard or binder takes: `v` a variable, `n` a number.
fn signature(name: &str, binding: bool) -> Option<&'static str> {
    Some(match (name, binding) {
        ("const", false) | ("not_const", false) => "vn",
        ("scalar", false)
        | ("float", false)
        | ("matrix", false)
        | ("constant", false)
        | ("fractional", false)
        | ("last_axis", true)
        | ("out_channels", true)
        | ("last_dim", true)
        | ("column", true)
        | ("flat", true) => "v",
        ("last_axis", false)
        | ("inverse_perms", false)
        | ("channel_vector", false)
        | ("channel_shape", true)
        | ("compose_perms", true)
        | ("product_last_axis", true) => "vv",
        ("product_last_axis", false) => "vvv",
        ("approx", false) => "",
        _ => return None,
    })
}

fn check_args(name: &str, binding: bool, args: &[Arg]) -> Result<(), String> {
    let what = if binding { "binding" } else { "condition" };
    let sig = signature(name, binding).ok_or_else(|| {
        format!(
            "unknown {what} `{name}` (conditions: const, not_const, scalar, last_axis, \
             product_last_axis, float, matrix, constant, inverse_perms, channel_vector, fractional, \
             approx; \
             bindings: last_axis, product_last_axis, compose_perms, out_channels, last_dim, column, \
             flat, channel_shape)"
        )
    })?;
    let ok = sig.len() == args.len()
        && sig
            .chars()
            .zip(args)
            .all(|(k, a)| matches!((k, a), ('v', Arg::Var(_)) | ('n', Arg::Num(_))));
    if !ok {
        let want: Vec<&str> = sig
            .chars()
            .map(|k| if k == 'v' { "?var" } else { "number" })
            .collect();
        return Err(format!("{what} `{name}` takes ({})", want.join(", ")));
    }
    Ok(())
}

impl Guard {
    /// The guard called `name` with `args`, checked for arity and argument kinds.
    pub fn parse(name: &str, args: &[Arg]) -> Result<Guard, String> {
        check_args(name, false, args)?;
        Ok(match name {
            "const" => Guard::Const,
            "not_const" => Guard::NotConst,
            "scalar" => Guard::Scalar,
            "last_axis" => Guard::LastAxis,
            "product_last_axis" => Guard::ProductLastAxis,
            "float" => Guard::Float,
            "matrix" => Guard::Matrix,
            "constant" => Guard::Constant,
            "inverse_perms" => Guard::InversePerms,
            "channel_vector" => Guard::ChannelVector,
            "fractional" => Guard::Fractional,
            _ => Guard::Approx,
        })
    }

    /// Whether the guard holds for a match.
    pub fn check(self, egraph: &TGraph, subst: &Subst, args: &[Arg]) -> bool {
        let data = |i: usize| -> Option<&ClassData> {
            match args.get(i) {
                Some(Arg::Var(v)) => subst.get(*v).map(|&id: &Id| &egraph[id].data),
                _ => None,
            }
        };
        let number = |i: usize| match args.get(i) {
            Some(Arg::Num(n)) => Some(*n),
            _ => None,
        };
        let splat_is = |v: f32| {
            data(0)
                .and_then(|d| d.tensor())
                .and_then(|t| t.splat)
                .is_some_and(|a| (a - v).abs() <= 1e-6 * v.abs() || a == v)
        };
        match self {
            Guard::Const => number(1).is_some_and(splat_is),
            Guard::NotConst => number(1).is_some_and(|v| !splat_is(v)),
            Guard::Scalar => data(0).and_then(ClassData::scalar).is_some(),
            Guard::LastAxis => match (data(0), data(1).and_then(|d| d.tensor())) {
                (Some(ClassData::Attr(Attr::Ints(ax))), Some(t)) => {
                    !t.ty.shape.is_empty() && ax.as_slice() == [t.ty.shape.len() - 1]
                }
                _ => false,
            },
            Guard::ProductLastAxis => match (data(0), data(1), data(2)) {
                (Some(ClassData::Attr(Attr::Ints(ax))), Some(a), Some(b)) => {
                    product_last_axis(a, b).is_some_and(|last| ax.as_slice() == [last])
                }
                _ => false,
            },
            Guard::Float => data(0)
                .and_then(|d| d.tensor())
                .is_some_and(|t| t.ty.dtype.is_float()),
            Guard::Matrix => data(0)
                .and_then(|d| d.tensor())
                .is_some_and(|t| t.ty.shape.len() == 2),
            Guard::Constant => data(0).and_then(|d| d.tensor()).is_some_and(|t| t.constant),
            Guard::InversePerms => match (data(0), data(1)) {
                (Some(ClassData::Attr(Attr::Ints(p))), Some(ClassData::Attr(Attr::Ints(q)))) => {
                    compose(p, q).is_some_and(|r| r.iter().enumerate().all(|(i, &v)| i == v))
                }
                _ => false,
            },
            Guard::ChannelVector => match (
                data(0).and_then(|d| d.tensor()),
                data(1).and_then(|d| d.tensor()),
            ) {
                (Some(s), Some(w)) => {
                    let out = w.ty.shape.first().copied();
                    match s.ty.shape.as_slice() {
                        [o, 1, 1] | [1, o, 1, 1] => Some(*o) == out,
                        _ => false,
                    }
                }
                _ => false,
            },
            Guard::Fractional => data(0)
                .and_then(ClassData::scalar)
                .is_some_and(|c| c.is_finite() && c.fract() != 0.0 && c.abs() != 0.5),
            Guard::Approx => egraph.analysis.allow_approx,
        }
    }
}

/// The last axis of the product `a @ b`, when both are tensors of rank 2 or more.
fn product_last_axis(a: &ClassData, b: &ClassData) -> Option<usize> {
    let ra = a.tensor()?.ty.shape.len();
    let rb = b.tensor()?.ty.shape.len();
    (ra >= 2 && rb >= 2).then(|| ra.max(rb) - 1)
}

/// The permutation of transposing by `p` and then by `q` (output axis i is input axis p[q[i]]).
pub(crate) fn compose(p: &[usize], q: &[usize]) -> Option<Vec<usize>> {
    if p.len() != q.len() {
        return None;
    }
    q.iter().map(|&i| p.get(i).copied()).collect()
}

impl Binder {
    /// The binder called `name` with `args`, checked for arity and argument kinds.
    pub fn parse(name: &str, args: &[Arg]) -> Result<Binder, String> {
        check_args(name, true, args)?;
        Ok(match name {
            "last_axis" => Binder::LastAxis,
            "product_last_axis" => Binder::ProductLastAxis,
            "out_channels" => Binder::OutChannels,
            "last_dim" => Binder::LastDim,
            "column" => Binder::Column,
            "flat" => Binder::Flat,
            "channel_shape" => Binder::ChannelShape,
            _ => Binder::ComposePerms,
        })
    }

    /// The leaf the binder computes for a match, or `None` when it does not apply.
    pub fn compute(self, egraph: &TGraph, subst: &Subst, args: &[Arg]) -> Option<Attr> {
        let data = |i: usize| -> Option<&ClassData> {
            match args.get(i) {
                Some(Arg::Var(v)) => subst.get(*v).map(|&id: &Id| &egraph[id].data),
                _ => None,
            }
        };
        match self {
            Binder::LastAxis => {
                let rank = data(0)?.tensor()?.ty.shape.len();
                (rank > 0).then(|| Attr::Ints(vec![rank - 1]))
            }
            Binder::ProductLastAxis => {
                product_last_axis(data(0)?, data(1)?).map(|last| Attr::Ints(vec![last]))
            }
            Binder::OutChannels => {
                let shape = &data(0)?.tensor()?.ty.shape;
                let (&o, rest) = shape.split_first()?;
                let mut s = vec![o];
                s.extend(rest.iter().map(|_| 1));
                Some(Attr::Ints(s))
            }
            Binder::LastDim => {
                let d = *data(0)?.tensor()?.ty.shape.last()?;
                Some(Attr::Ints(vec![d]))
            }
            Binder::Column => Some(Attr::Ints(vec![data(0)?.tensor()?.ty.numel(), 1])),
            Binder::Flat => Some(Attr::Ints(vec![data(0)?.tensor()?.ty.numel()])),
            Binder::ChannelShape => {
                let n = data(0)?.tensor()?.ty.numel();
                let x = &data(1)?.tensor()?.ty.shape;
                if x.get(1) != Some(&n) {
                    return None;
                }
                let mut s = vec![n];
                s.extend(std::iter::repeat_n(1, x.len() - 2));
                Some(Attr::Ints(s))
            }
            Binder::ComposePerms => match (data(0)?, data(1)?) {
                (ClassData::Attr(Attr::Ints(p)), ClassData::Attr(Attr::Ints(q))) => {
                    compose(p, q).map(Attr::Ints)
                }
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perms_compose_like_two_transposes() {
        // [2,0,1] then [1,2,0] is the identity.
        assert_eq!(compose(&[2, 0, 1], &[1, 2, 0]), Some(vec![0, 1, 2]));
        assert_eq!(compose(&[1, 0], &[1, 0]), Some(vec![0, 1]));
        assert_eq!(compose(&[0, 2, 1], &[1, 0, 2]), Some(vec![2, 0, 1]));
    }

    #[test]
    fn unknown_and_malformed_conditions_are_errors() {
        assert!(Guard::parse("frob", &[])
            .unwrap_err()
            .contains("unknown condition"));
        let err = Guard::parse("const", &[Arg::Num(1.0)]).unwrap_err();
        assert!(err.contains("takes (?var, number)"), "{err}");
        assert!(Binder::parse("last_axis", &[Arg::Var("?x".parse().unwrap())]).is_ok());
    }
}
