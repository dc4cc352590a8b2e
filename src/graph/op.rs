//! The operations of the tensor graph.
//!
//! Importers produce the primitive ops (and a few composites that formats name directly, such as
//! ONNX `Softmax` or `LayerNormalization`); the optimizer's recognition rules produce composites
//! and its decomposition rules turn composites back into primitives. Every op has a reference
//! implementation in [`crate::reference`]. Axes are always normalized to non-negative indices.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::composite::{AttentionMask, MlpHidden};
use super::tensor::TensorData;

/// Elementwise functions of one input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum UnaryOp {
    /// e^x
    Exp,
    /// ln x
    Log,
    /// √x
    Sqrt,
    /// 1/√x
    Rsqrt,
    /// 1/x
    Recip,
    /// tanh x
    Tanh,
    /// 1/(1+e^-x)
    Sigmoid,
    /// max(x, 0)
    Relu,
    /// |x|
    Abs,
    /// -x
    Neg,
    /// ⌊x⌋
    Floor,
    /// The error function.
    Erf,
    /// GELU, exact (erf) form: x·Φ(x).
    Gelu,
    /// GELU, tanh approximation.
    GeluTanh,
    /// SiLU: x·sigmoid(x).
    Silu,
    /// ln(1+e^x).
    Softplus,
    /// Identity (ONNX Identity, inference Dropout).
    Identity,
}

/// Elementwise functions of two inputs, with NumPy broadcasting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BinaryOp {
    /// a + b
    Add,
    /// a - b
    Sub,
    /// a · b
    Mul,
    /// a / b
    Div,
    /// max(a, b)
    Max,
    /// min(a, b)
    Min,
    /// a^b
    Pow,
}

/// Reduction kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ReduceOp {
    /// Σ
    Sum,
    /// mean
    Mean,
    /// max
    Max,
    /// min
    Min,
}

/// Element types of graph tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum DType {
    /// 32-bit float.
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit integer (indices, shapes).
    I64,
    /// 32-bit integer.
    I32,
    /// Boolean (masks).
    Bool,
}

impl DType {
    /// Whether the type is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }
}

/// A graph operation. Inputs are the node's incoming edges, ordered by slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// A graph input (data supplied at run time).
    Input,
    /// A constant tensor (an initializer, a folded subgraph, a `Constant` node).
    Constant(Arc<TensorData>),
    /// An elementwise function of one input.
    Unary(UnaryOp),
    /// An elementwise function of two inputs, NumPy-broadcast.
    Binary(BinaryOp),
    /// NumPy `matmul` (batched over leading dims, broadcast).
    MatMul,
    /// Permutation of axes.
    Transpose {
        /// Output axis i is input axis `perm[i]`.
        perm: Vec<usize>,
    },
    /// Reshape to a static shape (same element count).
    Reshape {
        /// The output shape.
        shape: Vec<usize>,
    },
    /// Reduction over axes.
    Reduce {
        /// Sum, mean, max or min.
        op: ReduceOp,
        /// Reduced axes, sorted ascending.
        axes: Vec<usize>,
        /// Whether reduced axes stay as size 1.
        keep_dims: bool,
    },
    /// Softmax along one axis.
    Softmax {
        /// The normalized axis.
        axis: usize,
    },
    /// LayerNorm over the last axis: inputs x, gamma, beta (beta optional: absent means 0).
    LayerNorm {
        /// Variance epsilon.
        eps: f32,
    },
    /// RMSNorm over the last axis: inputs x, gamma: `x * rsqrt(mean(x^2) + eps) * gamma`.
    RmsNorm {
        /// Epsilon added to the mean square.
        eps: f32,
    },
    /// Scaled dot-product attention, `softmax(mask(q @ kt * scale)) @ v` with the softmax over
    /// the scores' last axis: inputs `q, kt, v` and the mask's ([`AttentionMask`]). `kt` is the
    /// keys already transposed. Defined by its chain in [`super::composite`].
    Attention {
        /// The factor applied to the scores (usually `1 / sqrt(head_dim)`).
        scale: f32,
        /// How the scores are masked.
        mask: AttentionMask,
    },
    /// The MLP `act(hidden(x)) @ w2`: inputs `x, w1`, then `b1` or `w3` ([`MlpHidden`]), then
    /// `w2`. Defined by its chain in [`super::composite`].
    Mlp {
        /// The activation of the hidden layer.
        act: UnaryOp,
        /// What the hidden layer computes.
        hidden: MlpHidden,
    },
    /// `clip(x, min, max)`.
    Clip {
        /// Lower bound.
        min: f32,
        /// Upper bound.
        max: f32,
    },
    /// `x if x >= 0 else alpha * x`.
    LeakyRelu {
        /// Negative slope.
        alpha: f32,
    },
    /// `clip(alpha * x + beta, 0, 1)`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// Element type conversion.
    Cast {
        /// The target type.
        to: DType,
    },
    /// Concatenation along an axis.
    Concat {
        /// The axis.
        axis: usize,
    },
    /// Static slice: `starts[i]..ends[i]` step `steps[i]` on `axes[i]`.
    Slice {
        /// Sliced axes.
        axes: Vec<usize>,
        /// Start per axis (clamped, non-negative).
        starts: Vec<usize>,
        /// End per axis (clamped, exclusive).
        ends: Vec<usize>,
        /// Step per axis (positive).
        steps: Vec<usize>,
    },
    /// `Gather(data, indices)` along an axis (embedding lookup when axis 0).
    Gather {
        /// The axis of `data` that is indexed.
        axis: usize,
    },
    /// `where(cond, a, b)`, broadcast.
    Where,
    /// Elementwise `a == b` producing Bool.
    Equal,
    /// Broadcast to a static shape.
    Expand {
        /// The output shape.
        shape: Vec<usize>,
    },
    /// 2-D convolution, NCHW input, OIHW weights, optional bias input, and optionally a ReLU
    /// of the result: TTNN's `conv2d` applies it in its packer (`activation="relu"`), so a
    /// convolution, its bias (or a folded BatchNorm) and the ReLU after it are one TTNN op.
    /// With `pixels`, the input and output are pixel-major matrices instead.
    Conv {
        /// Kernel height and width.
        kernel: [usize; 2],
        /// Stride (h, w).
        stride: [usize; 2],
        /// Padding (top, left, bottom, right).
        pads: [usize; 4],
        /// Dilation (h, w).
        dilation: [usize; 2],
        /// Groups.
        groups: usize,
        /// Whether the result passes through a ReLU.
        #[serde(default)]
        relu: bool,
        /// `Some([n, h, w])`: the input is the pixel-major matrix `[n * h * w, c]` of those
        /// images and the output the pixel-major `[n * oh * ow, o]`, the layout TTNN's
        /// `conv2d` itself reads and writes (see [`Op::Im2Col`]); `None`: NCHW in and out.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pixels: Option<[usize; 3]>,
    },
    /// The im2col matrix of a pixel-major image batch, the form in which a convolution is a
    /// matmul: input `[n * h * w, c]` (row `(b, y, x)` holds pixel `(y, x)` of image `b`),
    /// output `[n * oh * ow, kh * kw * c]`, whose row `(b, oy, ox)` holds at columns
    /// `(ky * kw + kx) * c ..` the pixel under window offset `(ky, kx)` (zeros outside the
    /// image).
    Im2Col {
        /// Images, height and width of the input: `[n, h, w]`.
        image: [usize; 3],
        /// Kernel height and width.
        kernel: [usize; 2],
        /// Stride (h, w).
        stride: [usize; 2],
        /// Padding (top, left, bottom, right).
        pads: [usize; 4],
        /// Dilation (h, w).
        dilation: [usize; 2],
    },
    /// Inference BatchNorm: inputs x, scale, bias, mean, var.
    BatchNorm {
        /// Variance epsilon.
        eps: f32,
    },
    /// 2-D pooling, NCHW.
    Pool {
        /// Max or average.
        op: ReduceOp,
        /// Window (h, w).
        kernel: [usize; 2],
        /// Stride (h, w).
        stride: [usize; 2],
        /// Padding (top, left, bottom, right).
        pads: [usize; 4],
        /// Whether average pooling counts padded positions.
        count_include_pad: bool,
    },
}

impl Op {
    /// The name shown to users (ONNX-like), e.g. `MatMul`, `Exp`, `Softmax`.
    pub fn name(&self) -> String {
        match self {
            Op::Input => "Input".into(),
            Op::Constant(_) => "Constant".into(),
            Op::Unary(u) => format!("{u:?}"),
            Op::Binary(b) => format!("{b:?}"),
            Op::Reduce { op, .. } => format!("Reduce{op:?}"),
            Op::Pool { op, .. } => format!("{op:?}Pool"),
            Op::Conv { relu: true, .. } => "ConvRelu".into(),
            other => {
                let dbg = format!("{other:?}");
                dbg.split(|c: char| !c.is_alphanumeric())
                    .next()
                    .unwrap_or("Op")
                    .to_string()
            }
        }
    }

    /// The transpose that swaps the last two axes of a rank-`rank` tensor (`None` below rank 2).
    pub fn transpose_last_two(rank: usize) -> Option<Op> {
        let mut perm: Vec<usize> = (0..rank).collect();
        perm.swap(rank.checked_sub(2)?, rank - 1);
        Some(Op::Transpose { perm })
    }

    /// Whether the op is elementwise (unary, binary or parameterized pointwise).
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_)
                | Op::Binary(_)
                | Op::Clip { .. }
                | Op::LeakyRelu { .. }
                | Op::HardSigmoid { .. }
                | Op::Where
        )
    }
}
