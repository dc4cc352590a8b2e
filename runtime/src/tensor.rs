//! Device tensors: 2-D bf16 data in row-major order, as the runtime keeps them in DRAM.

use half::bf16;

/// Elements per tile side.
pub const TILE: usize = 32;

/// A 2-D bf16 tensor. Both dimensions are multiples of [`TILE`] for tensors a kernel touches.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Rows in elements.
    pub rows: usize,
    /// Columns in elements.
    pub cols: usize,
    /// Row-major bf16 values.
    pub data: Vec<bf16>,
}

impl Tensor {
    /// A zero-filled tensor.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Tensor {
            rows,
            cols,
            data: vec![bf16::ZERO; rows * cols],
        }
    }

    /// A tensor from f32 values, rounding each to bf16 (round to nearest even).
    pub fn from_f32(rows: usize, cols: usize, values: &[f32]) -> Self {
        assert_eq!(
            values.len(),
            rows * cols,
            "tensor data length must be rows * cols"
        );
        Tensor {
            rows,
            cols,
            data: values.iter().map(|&v| bf16::from_f32(v)).collect(),
        }
    }

    /// The values widened to f32.
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|v| v.to_f32()).collect()
    }

    /// Rows in tiles.
    pub fn tile_rows(&self) -> usize {
        self.rows / TILE
    }

    /// Columns in tiles.
    pub fn tile_cols(&self) -> usize {
        self.cols / TILE
    }
}
