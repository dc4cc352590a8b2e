//! Initializers stored outside the model (`data_location = EXTERNAL`): each tensor's bytes are
//! read from its data file at its offset, a piece at a time, straight into its final value
//! buffer, so models with more than 2 GB of weights import without holding the data file and
//! the decoded weights at once.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use onnx_protobuf::TensorProto;

use super::tensor::{self, RawDecoder};
use crate::graph::{DType, TensorData};
use crate::import::ImportError;

/// Bytes read from a data file per step (a multiple of every element width).
const PIECE: usize = 1 << 20;

/// The data files of one model, opened on first use.
pub struct DataFiles {
    /// The model file, for errors.
    model: String,
    /// The directory data file locations are relative to.
    dir: PathBuf,
    /// Location -> (path, open file, its length in bytes).
    open: BTreeMap<String, (PathBuf, File, u64)>,
}

/// Where one tensor's bytes are: the `external_data` entries of a `TensorProto`.
struct Entry {
    location: String,
    offset: u64,
    length: Option<u64>,
}

impl DataFiles {
    /// The data files of the model at `model` (a path; locations are relative to its directory).
    pub fn new(model: &str) -> Self {
        let dir = Path::new(model)
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        DataFiles {
            model: model.to_string(),
            dir,
            open: BTreeMap::new(),
        }
    }

    fn err(&self, t: &TensorProto, data_file: &str, reason: impl Into<String>) -> ImportError {
        ImportError::ExternalData {
            file: self.model.clone(),
            tensor: t.name.clone(),
            data_file: data_file.to_string(),
            reason: reason.into(),
        }
    }

    /// Reads and decodes the external tensor `t`.
    pub fn read(&mut self, t: &TensorProto) -> Result<(TensorData, DType), ImportError> {
        let entry = self.entry(t)?;
        let shown = self.dir.join(&entry.location).display().to_string();
        let bad = |reason: String| self.err(t, &shown, reason);
        let shape = tensor::shape_of(t).map_err(bad)?;
        let (dt, dtype) = tensor::types_of(t).map_err(bad)?;
        let n: usize = shape.iter().product();
        let width = tensor::raw_width(dt);
        let need = (n * width) as u64;
        if let Some(length) = entry.length.filter(|&l| l != need) {
            return Err(bad(format!(
                "its length is {length} bytes, but {n} values of {width} byte(s) need {need}"
            )));
        }
        let mut decoder = RawDecoder::new(dt, n).map_err(bad)?;
        let (path, file, size) = self.file(t, &entry.location)?;
        let shown = path.display().to_string();
        let end = entry.offset.checked_add(need);
        if end.is_none_or(|e| e > *size) {
            let size = *size;
            return Err(self.err(
                t,
                &shown,
                format!(
                    "bytes {}..{} are beyond the end of the file ({size} bytes); the data file \
                     does not belong to this model or is truncated",
                    entry.offset,
                    entry.offset.saturating_add(need)
                ),
            ));
        }
        let io =
            |e: std::io::Error| format!("reading {need} bytes at offset {}: {e}", entry.offset);
        let mut result = file.seek(SeekFrom::Start(entry.offset)).map(|_| ());
        let mut piece = vec![0u8; PIECE.min(need as usize)];
        let mut left = need as usize;
        while result.is_ok() && left > 0 {
            let k = left.min(PIECE);
            result = file.read_exact(&mut piece[..k]);
            decoder.push(&piece[..k]);
            left -= k;
        }
        if let Err(e) = result {
            return Err(self.err(t, &shown, io(e)));
        }
        Ok((decoder.finish().with_shape(shape), dtype))
    }

    /// The `external_data` entries of `t`.
    fn entry(&self, t: &TensorProto) -> Result<Entry, ImportError> {
        let mut entry = Entry {
            location: String::new(),
            offset: 0,
            length: None,
        };
        for kv in &t.external_data {
            let number = || {
                kv.value.parse::<u64>().map_err(|_| {
                    self.err(
                        t,
                        &entry.location,
                        format!("its `{}` entry `{}` is not a byte count", kv.key, kv.value),
                    )
                })
            };
            match kv.key.as_str() {
                "location" => entry.location = kv.value.clone(),
                "offset" => entry.offset = number()?,
                "length" => entry.length = Some(number()?),
                _ => {}
            }
        }
        if entry.location.is_empty() {
            return Err(self.err(
                t,
                "",
                "it is marked external but names no `location`; the model is malformed",
            ));
        }
        Ok(entry)
    }

    /// The open data file at `location`, checked to lie inside the model's directory.
    fn file(
        &mut self,
        t: &TensorProto,
        location: &str,
    ) -> Result<&mut (PathBuf, File, u64), ImportError> {
        if !self.open.contains_key(location) {
            let path = self.dir.join(location);
            let shown = path.display().to_string();
            let escapes = Path::new(location)
                .components()
                .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
            if escapes {
                return Err(self.err(
                    t,
                    &shown,
                    "the location leaves the model's directory; ttfuse reads external data \
                     only from files beside the model or below its directory",
                ));
            }
            let opened = File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f)));
            let (size, file) = opened.map_err(|e| {
                self.err(
                    t,
                    &shown,
                    format!("cannot open it ({e}); keep the data file beside the model"),
                )
            })?;
            let real = path.canonicalize().ok();
            let root = self.dir.canonicalize().ok();
            if real.zip(root).is_none_or(|(r, d)| !r.starts_with(d)) {
                return Err(self.err(
                    t,
                    &shown,
                    "it resolves (through a link) outside the model's directory; ttfuse reads \
                     external data only from files below the model's directory",
                ));
            }
            self.open.insert(location.to_string(), (path, file, size));
        }
        Ok(self
            .open
            .get_mut(location)
            .expect("the data file was opened above"))
    }
}
