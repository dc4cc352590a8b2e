//! Numerical agreement between two tensors: the figures `compare` reports and tests assert on.

use serde::Serialize;

/// How closely `actual` follows `expected`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Agreement {
    /// Largest absolute elementwise difference.
    pub max_abs_err: f64,
    /// Pearson correlation coefficient (1.0 when both are constant and equal).
    pub pcc: f64,
}

impl Agreement {
    /// Compares two equally long value slices.
    ///
    /// # Panics
    /// When the lengths differ: callers compare tensors of one graph output, whose shapes
    /// the compiler guarantees to match.
    pub fn of(expected: &[f32], actual: &[f32]) -> Agreement {
        assert_eq!(
            expected.len(),
            actual.len(),
            "compared tensors must have equal length"
        );
        let max_abs_err = expected
            .iter()
            .zip(actual)
            .map(|(&e, &a)| (f64::from(e) - f64::from(a)).abs())
            .fold(0.0, nan_max);
        Agreement {
            max_abs_err,
            pcc: pcc(expected, actual),
        }
    }

    /// The worse of two agreements (largest error, smallest correlation); a NaN on either
    /// side (an output with a NaN in it) is the worst of all.
    pub fn worst(self, other: Agreement) -> Agreement {
        Agreement {
            max_abs_err: nan_max(self.max_abs_err, other.max_abs_err),
            pcc: nan_min(self.pcc, other.pcc),
        }
    }

    /// Whether the correlation reaches `threshold` (NaN never does).
    pub fn meets(&self, threshold: f64) -> bool {
        self.pcc >= threshold
    }

    /// Perfect agreement, the identity of [`Agreement::worst`].
    pub fn perfect() -> Agreement {
        Agreement {
            max_abs_err: 0.0,
            pcc: 1.0,
        }
    }
}

/// The larger of `a` and `b`, or NaN when either is: unlike `f64::max`, it does not drop a
/// NaN.
fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// The smaller of `a` and `b`, or NaN when either is ([`nan_max`]'s counterpart).
fn nan_min(a: f64, b: f64) -> f64 {
    -nan_max(-a, -b)
}

/// Relative difference within which two values count as equal at bf16 precision (2^-7).
pub const BF16_RELATIVE: f64 = 1.0 / 128.0;
/// Absolute difference added to [`BF16_RELATIVE`]'s, for values near zero.
pub const EQUAL_ABSOLUTE: f64 = 1e-6;

/// Pearson correlation of two slices, computed in f64; NaN anywhere gives NaN.
///
/// Correlation is undefined when either side is constant (a single value, a uniform softmax).
/// Then the slices count as correlated (1.0) when every pair agrees to bf16 precision (relative
/// 2^-7, i.e. within a couple of bf16 roundings, plus 1e-6 absolute), and 0.0 otherwise.
/// tt-metal's `comp_pcc` passes such cases unconditionally; this is stricter.
pub fn pcc(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    if a.is_empty() {
        return 1.0;
    }
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let (mut cov, mut va, mut vb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (f64::from(x) - ma, f64::from(y) - mb);
        cov += dx * dy;
        va += dx * dx;
        vb += dy * dy;
    }
    if cov.is_nan() {
        return f64::NAN;
    }
    if va == 0.0 || vb == 0.0 {
        let agree = a.iter().zip(b).all(|(&x, &y)| {
            let (x, y) = (f64::from(x), f64::from(y));
            (x - y).abs() <= BF16_RELATIVE * x.abs().max(y.abs()) + EQUAL_ABSOLUTE
        });
        return if agree { 1.0 } else { 0.0 };
    }
    cov / (va.sqrt() * vb.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_values_agree_perfectly() {
        let v = [1.0, -2.0, 3.5, 0.25];
        assert_eq!(Agreement::of(&v, &v), Agreement::perfect());
    }

    #[test]
    fn scaled_values_correlate_but_differ() {
        let a = [1.0, 2.0, 3.0, 4.0];
        let b = [2.0, 4.0, 6.0, 8.0];
        let g = Agreement::of(&a, &b);
        assert!((g.pcc - 1.0).abs() < 1e-12);
        assert_eq!(g.max_abs_err, 4.0);
    }

    #[test]
    fn anticorrelated_values_give_minus_one() {
        let g = Agreement::of(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]);
        assert!((g.pcc + 1.0).abs() < 1e-12);
    }

    #[test]
    fn a_nan_output_is_the_worst_agreement_and_meets_no_threshold() {
        let nan = Agreement::of(&[1.0, 2.0, 3.0], &[1.0, f32::NAN, 3.0]);
        assert!(nan.pcc.is_nan() && nan.max_abs_err.is_nan(), "{nan:?}");
        for worst in [
            nan.worst(Agreement::perfect()),
            Agreement::perfect().worst(nan),
        ] {
            assert!(
                worst.pcc.is_nan() && worst.max_abs_err.is_nan(),
                "{worst:?}"
            );
            assert!(!worst.meets(0.99));
        }
        assert!(Agreement::perfect().meets(0.99));
    }

    #[test]
    fn constant_slices_compare_at_bf16_precision() {
        assert_eq!(pcc(&[2.0, 2.0], &[2.0, 2.0]), 1.0);
        assert_eq!(pcc(&[2.0, 2.0], &[3.0, 3.0]), 0.0);
        // One value (a reduction to a scalar): a bf16 rounding apart agrees, 2% apart does not.
        assert_eq!(pcc(&[-2.3041], &[-2.3125]), 1.0);
        assert_eq!(pcc(&[-2.3041], &[-2.35]), 0.0);
        // A constant expected side against a varying actual side.
        assert_eq!(pcc(&[1.0, 1.0, 1.0], &[1.0, 1.004, 0.996]), 1.0);
        assert_eq!(pcc(&[1.0, 1.0, 1.0], &[1.0, 1.5, 0.5]), 0.0);
        assert!(pcc(&[f32::NAN, 1.0], &[1.0, 1.0]).is_nan());
    }
}
