//! Moving graph tensors (n-d f32) to and from the program's 2-D bf16 device tensors.

use serde::Serialize;
use ttfuse_runtime::tensor::{Tensor, TILE};

use super::LowerError;
use crate::graph::TensorData;
use crate::plan::layout::{device_dims, flat2d, Layout};

/// A graph input or output and the program tensor that holds it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Binding {
    /// The graph input or output name.
    pub name: String,
    /// The program tensor's name.
    pub tensor: String,
    /// The graph shape.
    pub shape: Vec<usize>,
    /// How the 2-D view is padded on the device.
    pub layout: Layout,
}

/// Lays out row-major `values` of a graph tensor of `shape` as a row-major device tensor,
/// zero-filling the padding (`ttnn.pad` with value 0). A tensor that needs no padding is
/// returned as it is.
pub fn device_values(values: Vec<f32>, shape: &[usize], layout: Layout) -> Vec<f32> {
    let (r, c) = flat2d(shape);
    let (dr, dc) = device_dims(shape, layout);
    match layout {
        Layout::Full | Layout::Row => {
            if (r, c) == (dr, dc) {
                return values;
            }
            let mut out = vec![0.0; dr * dc];
            for (i, row) in values.chunks(c).take(r).enumerate() {
                out[i * dc..i * dc + c].copy_from_slice(row);
            }
            out
        }
        Layout::Col => {
            let mut out = vec![0.0; dr * dc];
            for i in 0..r {
                out[i * dc] = values[i];
            }
            out
        }
        Layout::Scalar => vec![values[0]; TILE * TILE],
    }
}

impl Binding {
    /// Rows and columns of the device tensor.
    pub fn device_dims(&self) -> (usize, usize) {
        device_dims(&self.shape, self.layout)
    }

    /// The device tensor holding `data`, or an error when its size does not match the shape.
    pub fn try_to_device(&self, data: &TensorData) -> Result<Tensor, LowerError> {
        let values = data.to_f32();
        let expected: usize = self.shape.iter().product();
        if values.len() != expected {
            return Err(LowerError::DataSize {
                name: self.name.clone(),
                shape: self.shape.clone(),
                expected,
                got: values.len(),
            });
        }
        let (rows, cols) = self.device_dims();
        Ok(Tensor::from_f32(
            rows,
            cols,
            &device_values(values, &self.shape, self.layout),
        ))
    }

    /// The device tensor holding `data`.
    ///
    /// # Panics
    /// When `data` does not have the binding's element count; use [`Binding::try_to_device`]
    /// for data from users.
    pub fn to_device(&self, data: &TensorData) -> Tensor {
        match self.try_to_device(data) {
            Ok(t) => t,
            Err(e) => panic!("{e}"),
        }
    }

    /// The graph tensor held by device tensor `t`, or an error when its size is not the
    /// binding's.
    pub fn try_from_device(&self, t: &Tensor) -> Result<TensorData, LowerError> {
        let (rows, cols) = self.device_dims();
        if (t.rows, t.cols) != (rows, cols) || t.data.len() != rows * cols {
            return Err(LowerError::DeviceSize {
                name: self.name.clone(),
                rows: t.rows,
                cols: t.cols,
                expected_rows: rows,
                expected_cols: cols,
            });
        }
        let all = t.to_f32();
        let (r, c) = flat2d(&self.shape);
        let values = match self.layout {
            Layout::Full if (r, c) == (rows, cols) => all,
            Layout::Full => all
                .chunks(cols)
                .take(r)
                .flat_map(|row| row[..c].iter().copied())
                .collect(),
            Layout::Row => all[..c].to_vec(),
            Layout::Col => (0..r).map(|i| all[i * cols]).collect(),
            Layout::Scalar => vec![all[0]],
        };
        Ok(TensorData::F32 {
            shape: self.shape.clone(),
            values,
        })
    }

    /// The graph tensor held by device tensor `t`.
    ///
    /// # Panics
    /// When `t` is not the size of the binding's device tensor; use
    /// [`Binding::try_from_device`] when that is not known.
    pub fn from_device(&self, t: &Tensor) -> TensorData {
        match self.try_from_device(t) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_vectors_round_trip_through_row_zero() {
        let b = Binding {
            name: "bias".into(),
            tensor: "bias".into(),
            shape: vec![64],
            layout: Layout::Row,
        };
        let values: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let t = b.to_device(&TensorData::F32 {
            shape: vec![64],
            values: values.clone(),
        });
        assert_eq!((t.rows, t.cols), (32, 64));
        assert_eq!(t.to_f32()[64], 0.0, "rows below row 0 are padding");
        assert_eq!(
            b.from_device(&t),
            TensorData::F32 {
                shape: vec![64],
                values
            }
        );
    }

    #[test]
    fn column_vectors_round_trip_through_column_zero() {
        let b = Binding {
            name: "m".into(),
            tensor: "m".into(),
            shape: vec![2, 32, 1],
            layout: Layout::Col,
        };
        let values: Vec<f32> = (0..64).map(|i| i as f32 * 0.5).collect();
        let t = b.to_device(&TensorData::F32 {
            shape: vec![2, 32, 1],
            values: values.clone(),
        });
        assert_eq!((t.rows, t.cols), (64, 32));
        assert_eq!(t.to_f32()[32], 0.5);
        assert_eq!(
            b.from_device(&t),
            TensorData::F32 {
                shape: vec![2, 32, 1],
                values
            }
        );
    }

    #[test]
    fn unaligned_matrices_are_zero_padded_and_sliced_back() {
        let b = Binding {
            name: "x".into(),
            tensor: "x".into(),
            shape: vec![100, 50],
            layout: Layout::Full,
        };
        let values: Vec<f32> = (0..5000).map(|i| (i % 97) as f32 - 40.0).collect();
        let data = TensorData::F32 {
            shape: vec![100, 50],
            values: values.clone(),
        };
        let t = b.to_device(&data);
        assert_eq!((t.rows, t.cols), (128, 64));
        let all = t.to_f32();
        assert_eq!(
            all[64 + 3],
            values[50 + 3],
            "row 1 starts at device column 0"
        );
        assert!(
            all[50..64].iter().all(|&v| v == 0.0),
            "padded columns are zero"
        );
        assert!(
            all[100 * 64..].iter().all(|&v| v == 0.0),
            "padded rows are zero"
        );
        assert_eq!(b.from_device(&t), data);
    }

    #[test]
    fn wrong_sizes_are_errors() {
        let b = Binding {
            name: "x".into(),
            tensor: "x".into(),
            shape: vec![32, 32],
            layout: Layout::Full,
        };
        let err = b
            .try_to_device(&TensorData::F32 {
                shape: vec![3],
                values: vec![0.0; 3],
            })
            .unwrap_err();
        assert!(err.to_string().contains("`x`"), "{err}");
        assert!(b.try_from_device(&Tensor::zeros(64, 32)).is_err());
    }
}
