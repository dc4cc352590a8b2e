//! Decoding ONNX `TensorProto`s (initializers, `Constant` values) into [`TensorData`].

use half::{bf16, f16};
use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::TensorProto;
use protobuf::Enum;

use crate::graph::{DType, TensorData};

/// The graph dtype of an ONNX element type code, or `None` if unsupported (strings, complex,
/// 8-bit floats). Doubles map to f32 and narrow integers to i32.
pub fn dtype_of(code: i32) -> Option<DType> {
    Some(match DataType::from_i32(code)? {
        DataType::FLOAT | DataType::DOUBLE => DType::F32,
        DataType::FLOAT16 => DType::F16,
        DataType::BFLOAT16 => DType::BF16,
        DataType::INT64 | DataType::UINT64 => DType::I64,
        DataType::INT32
        | DataType::INT16
        | DataType::INT8
        | DataType::UINT32
        | DataType::UINT16
        | DataType::UINT8 => DType::I32,
        DataType::BOOL => DType::Bool,
        _ => return None,
    })
}

/// A readable name for an ONNX element type code.
pub fn type_name(code: i32) -> String {
    DataType::from_i32(code).map_or_else(|| format!("type code {code}"), |d| format!("{d:?}"))
}

/// The shape of a tensor proto.
pub fn shape_of(t: &TensorProto) -> Result<Vec<usize>, String> {
    t.dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d} in {:?}", t.dims)))
        .collect()
}

/// Whether the tensor's data lives in an external file (`data_location = EXTERNAL`).
pub fn is_external(t: &TensorProto) -> bool {
    t.data_location.enum_value() == Ok(DataLocation::EXTERNAL) || !t.external_data.is_empty()
}

/// The ONNX element type and the graph dtype of a tensor proto.
pub fn types_of(t: &TensorProto) -> Result<(DataType, DType), String> {
    let dt = DataType::from_i32(t.data_type)
        .ok_or_else(|| format!("unknown element type {}", t.data_type))?;
    let dtype =
        dtype_of(t.data_type).ok_or_else(|| format!("element type {dt:?} is not supported"))?;
    Ok((dt, dtype))
}

/// Decodes a tensor held inside the model, from `raw_data` or its typed field. Errors are
/// reasons, without context.
pub fn decode(t: &TensorProto) -> Result<(TensorData, DType), String> {
    decode_with_raw(t, &t.raw_data)
}

/// [`decode`] with the `raw_data` bytes given apart from the proto (empty: none).
pub fn decode_with_raw(t: &TensorProto, raw_data: &[u8]) -> Result<(TensorData, DType), String> {
    let shape = shape_of(t)?;
    let n: usize = shape.iter().product();
    if is_external(t) {
        return Err(
            "its data is stored in an external file, which ttfuse reads only for \
                    graph initializers; re-save the model with all data inside \
                    (onnx.save(model, path, save_as_external_data=False))"
                .into(),
        );
    }
    let (dt, dtype) = types_of(t)?;
    let data = if !raw_data.is_empty() {
        let width = raw_width(dt);
        if raw_data.len() != n * width {
            return Err(format!(
                "raw_data has {} bytes, {n} values of {width} byte(s) need {}",
                raw_data.len(),
                n * width
            ));
        }
        let mut raw = RawDecoder::new(dt, n)?;
        raw.push(raw_data);
        raw.finish()
    } else {
        decode_typed(dt, t)?
    };
    let len = match &data {
        TensorData::F32 { values, .. } => values.len(),
        TensorData::I64 { values, .. } => values.len(),
    };
    if len != n {
        return Err(format!("holds {len} values, its shape {shape:?} needs {n}"));
    }
    Ok((data.with_shape(shape), dtype))
}

/// The byte width of one element of `dt` in `raw_data` or an external file.
pub fn raw_width(dt: DataType) -> usize {
    match dt {
        DataType::DOUBLE | DataType::INT64 | DataType::UINT64 => 8,
        DataType::FLOAT | DataType::INT32 | DataType::UINT32 => 4,
        DataType::FLOAT16 | DataType::BFLOAT16 | DataType::INT16 | DataType::UINT16 => 2,
        _ => 1,
    }
}

/// Converts little-endian element bytes, pushed in pieces of whole elements, straight into the
/// final value buffer (so weights are never held both as bytes and as values in full).
pub struct RawDecoder {
    dt: DataType,
    values: Values,
}

enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl RawDecoder {
    /// A decoder for `n` values of `dt`; an error if `dt` is not supported.
    pub fn new(dt: DataType, n: usize) -> Result<Self, String> {
        let values = match dt {
            DataType::FLOAT | DataType::DOUBLE | DataType::FLOAT16 | DataType::BFLOAT16 => {
                Values::F32(Vec::with_capacity(n))
            }
            DataType::INT64
            | DataType::UINT64
            | DataType::INT32
            | DataType::UINT32
            | DataType::INT16
            | DataType::UINT16
            | DataType::INT8
            | DataType::UINT8
            | DataType::BOOL => Values::I64(Vec::with_capacity(n)),
            other => return Err(format!("element type {other:?} is not supported")),
        };
        Ok(RawDecoder { dt, values })
    }

    /// Appends the values in `bytes`, whose length is a multiple of the element width.
    pub fn push(&mut self, bytes: &[u8]) {
        let chunks = bytes.chunks_exact(raw_width(self.dt));
        let arr = |c: &[u8]| -> [u8; 8] {
            let mut a = [0u8; 8];
            a[..c.len()].copy_from_slice(c);
            a
        };
        match &mut self.values {
            Values::F32(out) => match self.dt {
                DataType::FLOAT => out.extend(
                    bytes
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
                ),
                DataType::DOUBLE => {
                    out.extend(chunks.map(|c| f64::from_le_bytes(arr(c)) as f32));
                }
                DataType::FLOAT16 => {
                    out.extend(chunks.map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32()));
                }
                _ => out.extend(chunks.map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())),
            },
            Values::I64(out) => match self.dt {
                DataType::INT32 => {
                    out.extend(chunks.map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64))
                }
                DataType::INT16 => {
                    out.extend(chunks.map(|c| i16::from_le_bytes([c[0], c[1]]) as i64));
                }
                DataType::INT8 => out.extend(chunks.map(|c| c[0] as i8 as i64)),
                DataType::BOOL => out.extend(chunks.map(|c| i64::from(c[0] != 0))),
                // Unsigned values are zero-extended; INT64 and UINT64 keep their bits.
                _ => out.extend(chunks.map(|c| i64::from_le_bytes(arr(c)))),
            },
        }
    }

    /// The decoded values as a flat tensor.
    pub fn finish(self) -> TensorData {
        match self.values {
            Values::F32(v) => TensorData::f32(vec![v.len()], v),
            Values::I64(v) => TensorData::i64(vec![v.len()], v),
        }
    }
}

fn decode_typed(dt: DataType, t: &TensorProto) -> Result<TensorData, String> {
    let f = |v: Vec<f32>| TensorData::f32(vec![v.len()], v);
    let i = |v: Vec<i64>| TensorData::i64(vec![v.len()], v);
    Ok(match dt {
        DataType::FLOAT => f(t.float_data.clone()),
        DataType::DOUBLE => f(t.double_data.iter().map(|&v| v as f32).collect()),
        // 16-bit floats are stored as their bit patterns in int32_data.
        DataType::FLOAT16 => f(t
            .int32_data
            .iter()
            .map(|&b| f16::from_bits(b as u16).to_f32())
            .collect()),
        DataType::BFLOAT16 => f(t
            .int32_data
            .iter()
            .map(|&b| bf16::from_bits(b as u16).to_f32())
            .collect()),
        DataType::INT64 => i(t.int64_data.clone()),
        DataType::UINT64 | DataType::UINT32 => i(t.uint64_data.iter().map(|&v| v as i64).collect()),
        DataType::INT32 | DataType::INT16 | DataType::INT8 | DataType::UINT16 | DataType::UINT8 => {
            i(t.int32_data.iter().map(|&v| v as i64).collect())
        }
        DataType::BOOL => i(t.int32_data.iter().map(|&v| i64::from(v != 0)).collect()),
        other => return Err(format!("element type {other:?} is not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(dt: DataType, dims: &[i64]) -> TensorProto {
        TensorProto {
            data_type: dt as i32,
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn raw_and_typed_fields_agree() {
        let values = [1.5f32, -2.0, 0.25, 8.0];
        let mut raw = proto(DataType::FLOAT, &[2, 2]);
        raw.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let mut typed = proto(DataType::FLOAT, &[2, 2]);
        typed.float_data = values.to_vec();
        let want = (TensorData::f32(vec![2, 2], values.to_vec()), DType::F32);
        assert_eq!(decode(&raw).unwrap(), want);
        assert_eq!(decode(&typed).unwrap(), want);
    }

    #[test]
    fn half_widths_ints_and_bools() {
        let mut h = proto(DataType::FLOAT16, &[2]);
        h.raw_data = [f16::from_f32(0.5), f16::from_f32(-3.0)]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(
            decode(&h).unwrap(),
            (TensorData::f32(vec![2], vec![0.5, -3.0]), DType::F16)
        );
        let mut b = proto(DataType::BFLOAT16, &[1]);
        b.int32_data = vec![bf16::from_f32(2.5).to_bits() as i32];
        assert_eq!(
            decode(&b).unwrap(),
            (TensorData::f32(vec![1], vec![2.5]), DType::BF16)
        );
        let mut i = proto(DataType::INT64, &[]);
        i.int64_data = vec![-7];
        assert_eq!(
            decode(&i).unwrap(),
            (TensorData::i64(vec![], vec![-7]), DType::I64)
        );
        let mut k = proto(DataType::BOOL, &[3]);
        k.raw_data = vec![1, 0, 1];
        assert_eq!(
            decode(&k).unwrap(),
            (TensorData::i64(vec![3], vec![1, 0, 1]), DType::Bool)
        );
        let mut d = proto(DataType::DOUBLE, &[1]);
        d.double_data = vec![0.1];
        assert_eq!(
            decode(&d).unwrap().0,
            TensorData::f32(vec![1], vec![0.1f32])
        );
    }

    #[test]
    fn wrong_lengths_are_reported() {
        let mut t = proto(DataType::FLOAT, &[3]);
        t.raw_data = vec![0; 8];
        assert!(decode(&t).unwrap_err().contains("raw_data has 8 bytes"));
        let mut t = proto(DataType::INT32, &[3]);
        t.int32_data = vec![1];
        assert!(decode(&t).unwrap_err().contains("holds 1 values"));
    }
}
