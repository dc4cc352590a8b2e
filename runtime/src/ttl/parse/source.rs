//! The source file being parsed: its name, text and line table, and the error constructors that
//! name `file:line`.

use rustpython_parser::text_size::TextSize;

use super::ParseError;
use crate::ttl::ast::Line;

/// What the statement forms of the subset are, for error messages.
pub const STMT_SUPPORTED: &str = "assignments to names (`a = e`, `a, b = e`), expression \
     statements, `with e as x, ...:`, `for i in range(...):`, `if`/`elif`/`else` and `pass`";

/// What the expression forms of the subset are, for error messages.
pub const EXPR_SUPPORTED: &str = "int, float, bool and str literals, names, attributes, calls \
     with keyword arguments, subscripts with indices and `lo:hi` slices, `+ - * / // %`, unary \
     `-` and `not`, single comparisons, `and`/`or`, tuples and lists";

/// A source file with a byte-offset to line table.
pub struct Source<'a> {
    /// The file name used in messages.
    pub file: &'a str,
    /// The full text.
    pub text: &'a str,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    /// Index the lines of `text`.
    pub fn new(file: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            file,
            text,
            line_starts,
        }
    }

    /// The 1-based line of a byte offset.
    pub fn line(&self, offset: TextSize) -> Line {
        let off = usize::from(offset);
        let idx = self.line_starts.partition_point(|&start| start <= off);
        Line::try_from(idx.max(1)).unwrap_or(Line::MAX)
    }

    /// The source text between two offsets (empty when out of range).
    pub fn slice(&self, from: TextSize, to: TextSize) -> &'a str {
        self.text
            .get(usize::from(from)..usize::from(to))
            .unwrap_or("")
    }

    /// A construct outside the TT-Lang subset.
    pub fn unsupported(&self, at: TextSize, construct: &str, supported: &str) -> ParseError {
        ParseError::Unsupported {
            file: self.file.to_string(),
            line: self.line(at),
            construct: construct.to_string(),
            supported: supported.to_string(),
        }
    }

    /// A kernel, thread or constant that is written wrongly.
    pub fn malformed(&self, at: TextSize, message: impl Into<String>) -> ParseError {
        ParseError::Malformed {
            file: self.file.to_string(),
            line: self.line(at),
            message: message.into(),
        }
    }
}
