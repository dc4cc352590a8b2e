//! Elementwise kernels: unary functions, broadcast binary ops, casts, comparisons, `where`.

use half::{bf16, f16};

use super::strides::{broadcast_map, broadcast_pairs};
use super::{op_error, RefError};
use crate::graph::{BinaryOp, DType, Op, TensorData, TensorType, UnaryOp};

/// The error function, accurate to about 1e-15 (series near zero, continued fraction beyond).
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 3.0 {
        // erf(x) = 2/sqrt(pi) * sum_n (-1)^n x^(2n+1) / (n! (2n+1))
        let mut term = a;
        let mut sum = a;
        let mut n = 0.0;
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= -a * a / n;
            sum += term / (2.0 * n + 1.0);
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc(x) = exp(-x^2)/sqrt(pi) * 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + ...))))
        let mut cf = a;
        for k in (1..60).rev() {
            cf = a + (k as f64 / 2.0) / cf;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * cf)
    };
    r.copysign(x)
}

fn unary_f32(u: UnaryOp, x: f32) -> f32 {
    match u {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Tanh => x.tanh(),
        UnaryOp::Sigmoid => sigmoid(x),
        UnaryOp::Relu => x.max(0.0),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Neg => -x,
        UnaryOp::Floor => x.floor(),
        UnaryOp::Erf => erf(x as f64) as f32,
        UnaryOp::Gelu => (0.5 * x as f64 * (1.0 + erf(x as f64 / std::f64::consts::SQRT_2))) as f32,
        UnaryOp::GeluTanh => {
            let x = x as f64;
            let inner = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
            (0.5 * x * (1.0 + inner.tanh())) as f32
        }
        UnaryOp::Silu => x * sigmoid(x),
        UnaryOp::Softplus => x.max(0.0) + (-x.abs()).exp().ln_1p(),
        UnaryOp::Identity => x,
    }
}

fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Applies a unary function elementwise. Integer tensors support the integer-valued ones.
pub fn unary(op: &Op, u: UnaryOp, x: &TensorData) -> Result<TensorData, RefError> {
    match x {
        TensorData::F32 { shape, values } => Ok(TensorData::f32(
            shape.clone(),
            values.iter().map(|&v| unary_f32(u, v)).collect(),
        )),
        TensorData::I64 { shape, values } => {
            let f: fn(i64) -> i64 = match u {
                UnaryOp::Identity | UnaryOp::Floor => |v| v,
                UnaryOp::Abs => i64::abs,
                UnaryOp::Neg => |v| -v,
                UnaryOp::Relu => |v| v.max(0),
                _ => return Err(op_error(op, "needs a float input, got integers")),
            };
            Ok(TensorData::i64(
                shape.clone(),
                values.iter().map(|&v| f(v)).collect(),
            ))
        }
    }
}

/// Applies an f32 function elementwise (integers are converted to f32 first).
pub fn map_f32(_op: &Op, x: &TensorData, f: impl Fn(f32) -> f32) -> Result<TensorData, RefError> {
    Ok(TensorData::f32(
        x.shape().to_vec(),
        x.to_f32().into_iter().map(f).collect(),
    ))
}

fn binary_f32(b: BinaryOp, x: f32, y: f32) -> f32 {
    match b {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        BinaryOp::Max => x.max(y),
        BinaryOp::Min => x.min(y),
        BinaryOp::Pow => x.powf(y),
    }
}

fn binary_i64(b: BinaryOp, x: i64, y: i64) -> Option<i64> {
    match b {
        BinaryOp::Add => x.checked_add(y),
        BinaryOp::Sub => x.checked_sub(y),
        BinaryOp::Mul => x.checked_mul(y),
        BinaryOp::Div => x.checked_div(y),
        BinaryOp::Max => Some(x.max(y)),
        BinaryOp::Min => Some(x.min(y)),
        BinaryOp::Pow => x.checked_pow(u32::try_from(y).ok()?),
    }
}

/// A broadcast binary op; float when the output type is float, exact integers otherwise.
pub fn binary(
    op: &Op,
    b: BinaryOp,
    inputs: &[&TensorData],
    out: &TensorType,
) -> Result<TensorData, RefError> {
    let [x, y] = two(op, inputs)?;
    let pairs = broadcast_pairs(x.shape(), y.shape(), &out.shape);
    if out.dtype.is_float() {
        let (xv, yv) = (x.as_f32(), y.as_f32());
        // One loop per op, so that the op's match is outside it.
        let values = match b {
            BinaryOp::Add => pairs.map_values(&xv, &yv, |x, y| binary_f32(BinaryOp::Add, x, y)),
            BinaryOp::Sub => pairs.map_values(&xv, &yv, |x, y| binary_f32(BinaryOp::Sub, x, y)),
            BinaryOp::Mul => pairs.map_values(&xv, &yv, |x, y| binary_f32(BinaryOp::Mul, x, y)),
            BinaryOp::Div => pairs.map_values(&xv, &yv, |x, y| binary_f32(BinaryOp::Div, x, y)),
            BinaryOp::Max => pairs.map_values(&xv, &yv, |x, y| binary_f32(BinaryOp::Max, x, y)),
            BinaryOp::Min => pairs.map_values(&xv, &yv, |x, y| binary_f32(BinaryOp::Min, x, y)),
            BinaryOp::Pow => pairs.map_values(&xv, &yv, |x, y| binary_f32(BinaryOp::Pow, x, y)),
        };
        Ok(TensorData::f32(out.shape.clone(), values))
    } else {
        let (xv, yv) = (x.to_i64(), y.to_i64());
        let values = pairs
            .map(|(i, j)| {
                binary_i64(b, xv[i], yv[j]).ok_or_else(|| {
                    op_error(
                        op,
                        format!(
                            "integer {b:?} of {} and {} overflows or divides by zero",
                            xv[i], yv[j]
                        ),
                    )
                })
            })
            .collect::<Result<Vec<i64>, RefError>>()?;
        Ok(TensorData::i64(out.shape.clone(), values))
    }
}

fn two<'a>(op: &Op, inputs: &[&'a TensorData]) -> Result<[&'a TensorData; 2], RefError> {
    match inputs {
        [x, y] => Ok([x, y]),
        _ => Err(op_error(
            op,
            format!("takes 2 inputs, got {}", inputs.len()),
        )),
    }
}

/// Converts to `to`: floats round through the target width, integers truncate toward zero,
/// booleans become 0/1.
pub fn cast(x: &TensorData, to: DType) -> TensorData {
    let shape = x.shape().to_vec();
    match to {
        DType::F32 => TensorData::f32(shape, x.to_f32()),
        DType::F16 => TensorData::f32(
            shape,
            x.to_f32()
                .into_iter()
                .map(|v| f16::from_f32(v).to_f32())
                .collect(),
        ),
        DType::BF16 => TensorData::f32(
            shape,
            x.to_f32()
                .into_iter()
                .map(|v| bf16::from_f32(v).to_f32())
                .collect(),
        ),
        DType::I64 => TensorData::i64(shape, x.to_i64()),
        DType::I32 => TensorData::i64(
            shape,
            x.to_i64().into_iter().map(|v| v as i32 as i64).collect(),
        ),
        DType::Bool => {
            let values = match x {
                TensorData::F32 { values, .. } => {
                    values.iter().map(|&v| i64::from(v != 0.0)).collect()
                }
                TensorData::I64 { values, .. } => {
                    values.iter().map(|&v| i64::from(v != 0)).collect()
                }
            };
            TensorData::i64(shape, values)
        }
    }
}

/// Broadcast `a == b`, as 0/1 integers.
pub fn equal(op: &Op, inputs: &[&TensorData], out: &TensorType) -> Result<TensorData, RefError> {
    let [x, y] = two(op, inputs)?;
    let pairs = broadcast_pairs(x.shape(), y.shape(), &out.shape);
    let values = match (x, y) {
        (TensorData::I64 { values: a, .. }, TensorData::I64 { values: b, .. }) => {
            pairs.map(|(i, j)| i64::from(a[i] == b[j])).collect()
        }
        _ => {
            let (a, b) = (x.as_f32(), y.as_f32());
            pairs.map(|(i, j)| i64::from(a[i] == b[j])).collect()
        }
    };
    Ok(TensorData::i64(out.shape.clone(), values))
}

/// Broadcast `where(cond, a, b)`.
pub fn select(op: &Op, inputs: &[&TensorData], out: &TensorType) -> Result<TensorData, RefError> {
    let [c, a, b] = match inputs {
        [c, a, b] => [c, a, b],
        _ => {
            return Err(op_error(
                op,
                format!("takes 3 inputs, got {}", inputs.len()),
            ))
        }
    };
    let cond: Vec<bool> = c.to_f32().into_iter().map(|v| v != 0.0).collect();
    let mc = broadcast_map(c.shape(), &out.shape);
    let ma = broadcast_map(a.shape(), &out.shape);
    let mb = broadcast_map(b.shape(), &out.shape);
    let pick = |k: usize| {
        if cond[mc[k]] {
            (true, ma[k])
        } else {
            (false, mb[k])
        }
    };
    let n = out.numel();
    if out.dtype.is_float() {
        let (av, bv) = (a.to_f32(), b.to_f32());
        let values = (0..n)
            .map(|k| match pick(k) {
                (true, i) => av[i],
                (false, i) => bv[i],
            })
            .collect();
        Ok(TensorData::f32(out.shape.clone(), values))
    } else {
        let (av, bv) = (a.to_i64(), b.to_i64());
        let values = (0..n)
            .map(|k| match pick(k) {
                (true, i) => av[i],
                (false, i) => bv[i],
            })
            .collect();
        Ok(TensorData::i64(out.shape.clone(), values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        // Values from the defining integral (Abramowitz & Stegun table 7.1).
        assert!((erf(0.5) - 0.520_499_877_813_046_5).abs() < 1e-14);
        assert!((erf(1.0) - 0.842_700_792_949_714_9).abs() < 1e-14);
        assert!((erf(2.0) - 0.995_322_265_018_952_7).abs() < 1e-14);
        assert!((erf(-3.5) + 0.999_999_256_901_627_7).abs() < 1e-14);
        assert_eq!(erf(0.0), 0.0);
    }

    #[test]
    fn integer_division_by_zero_is_an_error() {
        let op = Op::Binary(BinaryOp::Div);
        let a = TensorData::i64(vec![2], vec![4, 5]);
        let b = TensorData::i64(vec![2], vec![2, 0]);
        let out = TensorType::new(vec![2], DType::I64);
        let err = binary(&op, BinaryOp::Div, &[&a, &b], &out).unwrap_err();
        assert!(err.to_string().contains("divides by zero"), "{err}");
    }

    #[test]
    fn cast_rounds_to_the_target_width() {
        let x = TensorData::f32(vec![2], vec![1.0 + 1.0 / 512.0, -2.7]);
        assert_eq!(cast(&x, DType::BF16).to_f32(), vec![1.0, -2.703125]);
        assert_eq!(cast(&x, DType::I64).to_i64(), vec![1, -2]);
        assert_eq!(cast(&x, DType::Bool).to_i64(), vec![1, 1]);
    }
}
