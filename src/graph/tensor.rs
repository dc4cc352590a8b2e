//! Constant tensor data held in the graph (initializers and folded values).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::op::DType;

/// Dense row-major constant data. Floats of every width are held as f32 (the reference
/// interpreter computes in f32); integers as i64.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TensorData {
    /// Float data (f32, f16 and bf16 sources).
    F32 {
        /// The shape.
        shape: Vec<usize>,
        /// Row-major values.
        values: Vec<f32>,
    },
    /// Integer and boolean data (i64, i32, bool sources).
    I64 {
        /// The shape.
        shape: Vec<usize>,
        /// Row-major values.
        values: Vec<i64>,
    },
}

impl TensorData {
    /// Float data of `shape` (`values.len()` must equal the element count).
    pub fn f32(shape: Vec<usize>, values: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        TensorData::F32 { shape, values }
    }

    /// Integer data of `shape` (`values.len()` must equal the element count).
    pub fn i64(shape: Vec<usize>, values: Vec<i64>) -> Self {
        debug_assert_eq!(shape.iter().product::<usize>(), values.len());
        TensorData::I64 { shape, values }
    }

    /// The same values viewed with another shape of the same element count.
    pub fn with_shape(self, shape: Vec<usize>) -> Self {
        match self {
            TensorData::F32 { values, .. } => TensorData::f32(shape, values),
            TensorData::I64 { values, .. } => TensorData::i64(shape, values),
        }
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        match self {
            TensorData::F32 { shape, .. } | TensorData::I64 { shape, .. } => shape,
        }
    }

    /// The element count.
    pub fn len(&self) -> usize {
        self.shape().iter().product()
    }

    /// Whether the stored value count matches the shape.
    pub fn is_consistent(&self) -> bool {
        let stored = match self {
            TensorData::F32 { values, .. } => values.len(),
            TensorData::I64 { values, .. } => values.len(),
        };
        stored == self.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The natural graph dtype of this data.
    pub fn dtype(&self) -> DType {
        match self {
            TensorData::F32 { .. } => DType::F32,
            TensorData::I64 { .. } => DType::I64,
        }
    }

    /// The value every element equals, if there is one (bit for bit).
    pub fn splat(&self) -> Option<f32> {
        let values = self.as_f32();
        let first = *values.first()?;
        values
            .iter()
            .all(|v| v.to_bits() == first.to_bits())
            .then_some(first)
    }

    /// The values as f32, borrowed when they are stored as f32 (integers converted).
    pub fn as_f32(&self) -> Cow<'_, [f32]> {
        match self {
            TensorData::F32 { values, .. } => Cow::Borrowed(values),
            TensorData::I64 { values, .. } => {
                Cow::Owned(values.iter().map(|&v| v as f32).collect())
            }
        }
    }

    /// The values as f32 (integers converted).
    pub fn to_f32(&self) -> Vec<f32> {
        match self {
            TensorData::F32 { values, .. } => values.clone(),
            TensorData::I64 { values, .. } => values.iter().map(|&v| v as f32).collect(),
        }
    }

    /// The values as i64 (floats truncated).
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            TensorData::F32 { values, .. } => values.iter().map(|&v| v as i64).collect(),
            TensorData::I64 { values, .. } => values.clone(),
        }
    }
}
