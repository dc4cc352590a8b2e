//! TTNN Python program importer.

use super::{ImportError, ImportOptions};
use crate::graph::Graph;

/// Imports a TTNN Python program. Not implemented yet: always an error saying so.
pub fn import(file: &str, _text: &str, _opts: &ImportOptions) -> Result<Graph, ImportError> {
    Err(ImportError::Line {
        file: file.to_string(),
        line: 1,
        reason: "TTNN Python import is not implemented yet".into(),
    })
}
