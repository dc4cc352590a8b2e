//! Reading and writing NumPy `.npy` files as [`TensorData`].
//!
//! Floats (f32, f64) read as f32 data; integers and booleans as i64 data. Fortran-ordered files
//! are reordered to row-major. Writing produces little-endian `<f4` or `<i8` files.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::Path;

use npyz::{Order, TypeChar, WriterBuilder};
use thiserror::Error;

use crate::graph::TensorData;

/// Why a `.npy` file could not be read or written.
#[derive(Debug, Error)]
pub enum NpyError {
    /// The file could not be opened, read or written.
    #[error("{file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid `.npy` array.
    #[error("{file} is not a valid .npy file: {reason}")]
    Format {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
    /// The element type has no tensor equivalent.
    #[error("{file}: unsupported .npy element type `{dtype}`; use float32/float64, an integer type or bool")]
    DType {
        /// The file.
        file: String,
        /// The numpy type string.
        dtype: String,
    },
}

/// Reads a `.npy` file.
pub fn read(path: &Path) -> Result<TensorData, NpyError> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        file: file.clone(),
        source,
    })?;
    read_bytes(&file, &bytes)
}

/// Parses the bytes of a `.npy` file; `name` is used in errors.
pub fn read_bytes(name: &str, bytes: &[u8]) -> Result<TensorData, NpyError> {
    let format = |e: std::io::Error| NpyError::Format {
        file: name.to_string(),
        reason: e.to_string(),
    };
    let npy = npyz::NpyFile::new(bytes).map_err(format)?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let order = npy.order();
    let dtype = npy.dtype();
    let npyz::DType::Plain(ts) = &dtype else {
        return Err(NpyError::DType {
            file: name.to_string(),
            dtype: dtype.descr(),
        });
    };
    let bad_dtype = || NpyError::DType {
        file: name.to_string(),
        dtype: ts.to_string(),
    };
    let data = match (ts.type_char(), ts.size_field()) {
        (TypeChar::Float, 4) => TensorData::F32 {
            values: npy.into_vec::<f32>().map_err(format)?,
            shape: shape.clone(),
        },
        (TypeChar::Float, 8) => {
            let v = npy.into_vec::<f64>().map_err(format)?;
            TensorData::F32 {
                values: v.into_iter().map(|x| x as f32).collect(),
                shape: shape.clone(),
            }
        }
        (TypeChar::Int, size) => TensorData::I64 {
            values: read_ints(npy, size)
                .ok_or_else(bad_dtype)?
                .map_err(format)?,
            shape: shape.clone(),
        },
        (TypeChar::Uint, size) => TensorData::I64 {
            values: read_uints(npy, size)
                .ok_or_else(bad_dtype)?
                .map_err(format)?,
            shape: shape.clone(),
        },
        (TypeChar::Bool, 1) => {
            let v = npy.into_vec::<bool>().map_err(format)?;
            TensorData::I64 {
                values: v.into_iter().map(i64::from).collect(),
                shape: shape.clone(),
            }
        }
        _ => return Err(bad_dtype()),
    };
    if data.to_f32().len() != shape.iter().product::<usize>() {
        return Err(NpyError::Format {
            file: name.to_string(),
            reason: "data length does not match the shape".into(),
        });
    }
    Ok(if order == Order::Fortran && shape.len() > 1 {
        from_fortran(data, &shape)
    } else {
        data
    })
}

fn read_ints(npy: npyz::NpyFile<&[u8]>, size: u64) -> Option<std::io::Result<Vec<i64>>> {
    Some(match size {
        1 => npy
            .into_vec::<i8>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        2 => npy
            .into_vec::<i16>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        4 => npy
            .into_vec::<i32>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        8 => npy.into_vec::<i64>(),
        _ => return None,
    })
}

fn read_uints(npy: npyz::NpyFile<&[u8]>, size: u64) -> Option<std::io::Result<Vec<i64>>> {
    Some(match size {
        1 => npy
            .into_vec::<u8>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        2 => npy
            .into_vec::<u16>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        4 => npy
            .into_vec::<u32>()
            .map(|v| v.into_iter().map(i64::from).collect()),
        _ => return None,
    })
}

/// Reorders column-major data of `shape` to row-major.
fn from_fortran(data: TensorData, shape: &[usize]) -> TensorData {
    // Column-major data of `shape` is row-major data of the reversed shape; transposing it by
    // the reversing permutation gives row-major `shape`.
    let reversed: Vec<usize> = shape.iter().rev().copied().collect();
    let rank = shape.len();
    let mut strides = vec![1usize; rank];
    for i in (0..rank.saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * reversed[i + 1];
    }
    // Output axis i (of `shape`) is axis rank-1-i of the reversed layout.
    let out_strides: Vec<usize> = (0..rank).map(|i| strides[rank - 1 - i]).collect();
    let mut map = Vec::with_capacity(shape.iter().product());
    let mut idx = vec![0usize; rank];
    for _ in 0..shape.iter().product::<usize>() {
        map.push(
            idx.iter()
                .zip(&out_strides)
                .map(|(a, b)| a * b)
                .sum::<usize>(),
        );
        for d in (0..rank).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    match data {
        TensorData::F32 { values, .. } => {
            TensorData::f32(shape.to_vec(), map.iter().map(|&i| values[i]).collect())
        }
        TensorData::I64 { values, .. } => {
            TensorData::i64(shape.to_vec(), map.iter().map(|&i| values[i]).collect())
        }
    }
}

/// Encodes `data` as `.npy` bytes (`<f4` or `<i8`, row-major).
pub fn to_bytes(data: &TensorData) -> Vec<u8> {
    let shape: Vec<u64> = data.shape().iter().map(|&d| d as u64).collect();
    let mut buf = Cursor::new(Vec::new());
    // Writing to memory cannot fail, and the dtype matches the element type by construction.
    let result = match data {
        TensorData::F32 { values, .. } => write_all(&mut buf, &shape, values),
        TensorData::I64 { values, .. } => write_all(&mut buf, &shape, values),
    };
    debug_assert!(result.is_ok(), "in-memory npy write failed: {result:?}");
    buf.into_inner()
}

fn write_all<T: npyz::AutoSerialize + Copy>(
    buf: &mut Cursor<Vec<u8>>,
    shape: &[u64],
    values: &[T],
) -> std::io::Result<()> {
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(buf)
        .begin_nd()?;
    w.extend(values.iter().copied())?;
    w.finish()
}

/// Writes `data` to a `.npy` file.
pub fn write(path: &Path, data: &TensorData) -> Result<(), NpyError> {
    std::fs::write(path, to_bytes(data)).map_err(|source| NpyError::Io {
        file: path.display().to_string(),
        source,
    })
}

/// Reads every `<name>.npy` in `dir` into a map keyed by `<name>` (sorted by name).
pub fn read_dir(dir: &Path) -> Result<BTreeMap<String, TensorData>, NpyError> {
    let io = |source| NpyError::Io {
        file: dir.display().to_string(),
        source,
    };
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.extension().is_some_and(|e| e == "npy") {
            if let Some(stem) = path.file_stem().and_then(|s| s.to_str()) {
                out.insert(stem.to_string(), read(&path)?);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_floats_and_integers() {
        let f = TensorData::f32(vec![2, 3], vec![1.5, -2.0, 0.0, 3.25, 1e-3, 7.0]);
        assert_eq!(read_bytes("f", &to_bytes(&f)).unwrap(), f);
        let i = TensorData::i64(vec![3], vec![-1, 0, 1 << 40]);
        assert_eq!(read_bytes("i", &to_bytes(&i)).unwrap(), i);
    }

    #[test]
    fn header_is_numpy_format() {
        let bytes = to_bytes(&TensorData::f32(vec![1, 2], vec![1.0, 2.0]));
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        let header = String::from_utf8_lossy(&bytes[10..]);
        assert!(
            header.contains("'descr': '<f4'") && header.contains("'shape': (1, 2"),
            "{header}"
        );
    }

    #[test]
    fn fortran_order_is_reordered() {
        // A 2x3 array [[0, 1, 2], [3, 4, 5]] stored column-major: 0, 3, 1, 4, 2, 5.
        let mut header = "{'descr': '<i8', 'fortran_order': True, 'shape': (2, 3), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for v in [0i64, 3, 1, 4, 2, 5] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        let t = read_bytes("f.npy", &bytes).unwrap();
        assert_eq!(t, TensorData::i64(vec![2, 3], vec![0, 1, 2, 3, 4, 5]));
    }

    #[test]
    fn garbage_is_a_format_error() {
        let err = read_bytes("junk.npy", b"not an npy file").unwrap_err();
        assert!(matches!(err, NpyError::Format { .. }), "{err}");
        assert!(
            err.to_string()
                .starts_with("junk.npy is not a valid .npy file"),
            "{err}"
        );
    }
}
