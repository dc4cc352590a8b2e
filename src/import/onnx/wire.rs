//! Decoding a `ModelProto` without copying its weights: the protobuf wire format is walked far
//! enough to set each initializer's `raw_data` aside as a slice of the model's bytes, and the
//! rest (graph structure, tensor metadata) is decoded by the generated protobuf code. The
//! weights are then converted straight from the model's bytes into their value buffers.

use onnx_protobuf::{GraphProto, Message, ModelProto, TensorProto};

/// `ModelProto.graph`.
const MODEL_GRAPH: u32 = 7;
/// `GraphProto.initializer`.
const GRAPH_INITIALIZER: u32 = 5;
/// `TensorProto.raw_data`.
const TENSOR_RAW_DATA: u32 = 9;

/// An initializer: its metadata (with `raw_data` left empty) and its raw bytes, if any.
pub struct Initializer<'a> {
    /// The tensor without `raw_data`.
    pub proto: TensorProto,
    /// The `raw_data` bytes inside the model (empty when the values are in a typed field or
    /// an external file).
    pub raw: &'a [u8],
}

/// One field of a message: its number, and where it and its payload lie in the message bytes.
struct Field {
    number: u32,
    /// The whole field (tag included).
    whole: std::ops::Range<usize>,
    /// The payload of a length-delimited field.
    payload: Option<std::ops::Range<usize>>,
}

/// Decodes a model; its graph's initializers come back separately, in order, borrowing their
/// raw bytes from `bytes`. Errors are reasons, without context.
pub fn parse_model(bytes: &[u8]) -> Result<(ModelProto, Vec<Initializer<'_>>), String> {
    let mut model_rest = Vec::new();
    let mut graph_rest = Vec::new();
    let mut inits = Vec::new();
    let mut has_graph = false;
    for field in fields(bytes)? {
        match (field.number, field.payload) {
            (MODEL_GRAPH, Some(graph)) => {
                has_graph = true;
                let graph_bytes = &bytes[graph];
                for g in fields(graph_bytes)? {
                    match (g.number, g.payload) {
                        (GRAPH_INITIALIZER, Some(t)) => inits.push(initializer(&graph_bytes[t])?),
                        _ => graph_rest.extend_from_slice(&graph_bytes[g.whole]),
                    }
                }
            }
            _ => model_rest.extend_from_slice(&bytes[field.whole]),
        }
    }
    let mut model = ModelProto::parse_from_bytes(&model_rest).map_err(|e| e.to_string())?;
    if has_graph {
        model.graph =
            Some(GraphProto::parse_from_bytes(&graph_rest).map_err(|e| e.to_string())?).into();
    }
    Ok((model, inits))
}

fn initializer(bytes: &[u8]) -> Result<Initializer<'_>, String> {
    let mut rest = Vec::new();
    let mut raw: &[u8] = &[];
    for field in fields(bytes)? {
        match (field.number, field.payload) {
            // A repeated bytes field keeps its last value.
            (TENSOR_RAW_DATA, Some(r)) => raw = &bytes[r],
            _ => rest.extend_from_slice(&bytes[field.whole]),
        }
    }
    let proto = TensorProto::parse_from_bytes(&rest).map_err(|e| e.to_string())?;
    Ok(Initializer { proto, raw })
}

/// The top-level fields of a message.
fn fields(bytes: &[u8]) -> Result<Vec<Field>, String> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let start = pos;
        let tag = varint(bytes, &mut pos)?;
        let number = u32::try_from(tag >> 3).map_err(|_| format!("bad field tag {tag}"))?;
        let mut payload = None;
        match tag & 7 {
            0 => {
                varint(bytes, &mut pos)?;
            }
            1 => pos += 8,
            5 => pos += 4,
            2 => {
                let len = usize::try_from(varint(bytes, &mut pos)?)
                    .map_err(|_| "a length does not fit in memory".to_string())?;
                let end = pos
                    .checked_add(len)
                    .filter(|&e| e <= bytes.len())
                    .ok_or_else(|| truncated(bytes.len()))?;
                payload = Some(pos..end);
                pos = end;
            }
            wire => return Err(format!("field {number} has unsupported wire type {wire}")),
        }
        if pos > bytes.len() {
            return Err(truncated(bytes.len()));
        }
        out.push(Field {
            number,
            whole: start..pos,
            payload,
        });
    }
    Ok(out)
}

fn truncated(len: usize) -> String {
    format!("a field runs past the end of its message ({len} bytes): truncated input")
}

fn varint(bytes: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let &b = bytes.get(*pos).ok_or_else(|| truncated(bytes.len()))?;
        *pos += 1;
        value |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("a varint is longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{NodeProto, OperatorSetIdProto};

    /// Splitting gives the same model and initializers as decoding the whole message.
    #[test]
    fn split_model_equals_full_decode() {
        let mut w = TensorProto {
            name: "w".into(),
            dims: vec![2],
            data_type: 1,
            raw_data: [1.5f32, -2.0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
            ..Default::default()
        };
        let typed = TensorProto {
            name: "t".into(),
            dims: vec![1],
            data_type: 7,
            int64_data: vec![42],
            ..Default::default()
        };
        let graph = GraphProto {
            name: "g".into(),
            node: vec![NodeProto {
                op_type: "Add".into(),
                input: vec!["w".into(), "w".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            initializer: vec![w.clone(), typed.clone()],
            ..Default::default()
        };
        let model = ModelProto {
            ir_version: 8,
            graph: Some(graph).into(),
            opset_import: vec![OperatorSetIdProto {
                version: 17,
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = model.write_to_bytes().unwrap();
        let (split, inits) = parse_model(&bytes).unwrap();
        let raw = std::mem::take(&mut w.raw_data);
        assert_eq!(inits.len(), 2);
        assert_eq!((&inits[0].proto, inits[0].raw), (&w, raw.as_slice()));
        assert_eq!((&inits[1].proto, inits[1].raw), (&typed, &[][..]));
        let mut whole = model.clone();
        whole.graph.as_mut().unwrap().initializer.clear();
        assert_eq!(split, whole);
        for cut in 1..bytes.len() {
            // Every strict prefix either fails or decodes to a different model.
            if let Ok((m, i)) = parse_model(&bytes[..cut]) {
                assert!(m != whole || i.len() != 2, "cut at {cut} decoded whole");
            }
        }
    }
}
