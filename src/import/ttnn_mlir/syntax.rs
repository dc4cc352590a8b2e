//! The pieces of MLIR syntax the TTNN importer reads: a cursor over one statement, tensor
//! types and attribute values.

use std::collections::BTreeMap;

use crate::graph::{DType, TensorType};

/// An attribute value.
#[derive(Clone, Debug, PartialEq)]
pub enum Attr {
    /// An integer (`1 : si32`, `true` is not an integer).
    Int(i64),
    /// A float (`1.0e-05 : f32`).
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// A string.
    Str(String),
    /// `[a, b]` or `array<i64: a, b>`.
    List(Vec<Attr>),
    /// Anything else (layouts, enums, types), as written.
    Other(String),
}

impl Attr {
    /// The value as an integer.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Attr::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The value as a float (integers convert).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Attr::Float(f) => Some(*f),
            Attr::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The value as a list of integers.
    pub fn as_ints(&self) -> Option<Vec<i64>> {
        match self {
            Attr::List(items) => items.iter().map(Attr::as_int).collect(),
            Attr::Int(i) => Some(vec![*i]),
            _ => None,
        }
    }
}

/// A cursor over the text of one statement.
pub struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `s`.
    pub fn new(s: &'a str) -> Self {
        Cursor { s, pos: 0 }
    }

    /// The unread text.
    pub fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    /// Skips whitespace.
    pub fn ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.s.len() - trimmed.len();
    }

    /// Consumes `tok` (after whitespace) if it comes next.
    pub fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.rest().starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    /// Consumes `tok` or fails with a description of what was found.
    pub fn expect(&mut self, tok: &str) -> Result<(), String> {
        if self.eat(tok) {
            Ok(())
        } else {
            Err(format!("expected `{tok}` at `{}`", self.preview()))
        }
    }

    /// A short preview of the unread text, for errors.
    pub fn preview(&self) -> String {
        self.rest().chars().take(30).collect()
    }

    /// An identifier-like word: letters, digits, `_`, `.`, `$`, `-`.
    pub fn word(&mut self) -> &'a str {
        self.ws();
        let rest = self.rest();
        let len = rest
            .find(|c: char| !(c.is_alphanumeric() || "_.$-".contains(c)))
            .unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    /// An SSA value name `%x` (returned without `%`).
    pub fn value(&mut self) -> Result<&'a str, String> {
        self.expect("%")?;
        let w = self.word();
        if w.is_empty() {
            return Err(format!("expected a value name at `{}`", self.preview()));
        }
        Ok(w)
    }

    /// A double-quoted string (no escapes beyond `\"`).
    pub fn string(&mut self) -> Result<String, String> {
        self.expect("\"")?;
        let rest = self.rest();
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        out.push(e);
                    }
                }
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }

    /// The text up to the bracket closing the one just consumed (`open` already eaten),
    /// respecting nesting of `()[]{}<>` and strings; the closing bracket is consumed.
    pub fn balanced(&mut self, close: char) -> Result<&'a str, String> {
        let rest = self.rest();
        let mut stack = vec![close];
        let mut in_str = false;
        let mut prev = ' ';
        for (i, c) in rest.char_indices() {
            if in_str {
                if c == '"' && prev != '\\' {
                    in_str = false;
                }
            } else {
                match c {
                    '"' => in_str = true,
                    '(' => stack.push(')'),
                    '[' => stack.push(']'),
                    '{' => stack.push('}'),
                    '<' => stack.push('>'),
                    // `->` inside types is not a closing bracket.
                    '>' if prev == '-' => {}
                    ')' | ']' | '}' | '>' => {
                        if stack.pop() != Some(c) {
                            return Err(format!("unbalanced `{c}`"));
                        }
                        if stack.is_empty() {
                            self.pos += i + 1;
                            return Ok(&rest[..i]);
                        }
                    }
                    _ => {}
                }
            }
            prev = c;
        }
        Err(format!("missing `{close}`"))
    }
}

/// Splits `s` at top-level commas (outside brackets and strings).
pub fn split_top(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start, mut in_str, mut prev) = (0i32, 0, false, ' ');
    for (i, c) in s.char_indices() {
        if in_str {
            in_str = !(c == '"' && prev != '\\');
        } else {
            match c {
                '"' => in_str = true,
                '(' | '[' | '{' | '<' => depth += 1,
                '>' if prev == '-' => {}
                ')' | ']' | '}' | '>' => depth -= 1,
                ',' if depth == 0 => {
                    parts.push(s[start..i].trim());
                    start = i + 1;
                }
                _ => {}
            }
        }
        prev = c;
    }
    if !s[start..].trim().is_empty() {
        parts.push(s[start..].trim());
    }
    parts
}

/// Parses `tensor<64x128xbf16, #layout>` (or `tensor<f32>`) into a type.
pub fn tensor_type(s: &str) -> Result<TensorType, String> {
    let (dims, dtype) = tensor_parts(s)?;
    let shape = dims
        .iter()
        .map(|d| {
            d.parse::<usize>().map_err(|_| {
                format!(
                    "dimension `{d}` in `{}` is not static; give the input's shape",
                    s.trim()
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TensorType::new(shape, dtype))
}

/// The dimension texts and the element type of a `tensor<...>` type.
pub fn tensor_parts(s: &str) -> Result<(Vec<&str>, DType), String> {
    let s = s.trim();
    let inner = s
        .strip_prefix("tensor<")
        .and_then(|r| r.strip_suffix('>'))
        .ok_or_else(|| format!("`{s}` is not a tensor type"))?;
    let spec = split_top(inner).first().copied().unwrap_or_default();
    let mut parts: Vec<&str> = spec.split('x').collect();
    let elem = parts.pop().unwrap_or_default();
    let dtype = match elem {
        "f32" | "f64" => DType::F32,
        "bf16" => DType::BF16,
        "f16" => DType::F16,
        "si32" | "i32" | "ui32" | "ui16" | "ui8" | "si16" | "i16" | "i8" => DType::I32,
        "si64" | "i64" | "ui64" => DType::I64,
        "i1" => DType::Bool,
        other => {
            return Err(format!(
                "element type `{other}` in `{s}` is not supported (f32, bf16, f16, si32/i32, ui32, i64 and i1 are)"
            ))
        }
    };
    Ok((parts, dtype))
}

/// Parses the inside of an attribute dictionary `{a = 1 : i32, b = [..]}` (without braces).
pub fn attr_dict(s: &str) -> Result<BTreeMap<String, Attr>, String> {
    let mut out = BTreeMap::new();
    for entry in split_top(s) {
        let (key, value) = match entry.split_once('=') {
            Some((k, v)) => (k.trim(), attr_value(v.trim())),
            None => (entry.trim(), Attr::Bool(true)),
        };
        out.insert(key.trim_matches('"').to_string(), value);
    }
    Ok(out)
}

/// Parses one attribute value.
pub fn attr_value(s: &str) -> Attr {
    let s = s.trim();
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return Attr::List(split_top(inner).into_iter().map(attr_value).collect());
    }
    if let Some(inner) = s.strip_prefix("array<").and_then(|r| r.strip_suffix('>')) {
        let values = inner.split_once(':').map_or("", |(_, v)| v);
        return Attr::List(split_top(values).into_iter().map(attr_value).collect());
    }
    if let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
        return Attr::Str(inner.to_string());
    }
    // Drop a trailing `: type`.
    let literal = match s.rsplit_once(" : ") {
        Some((v, _)) => v.trim(),
        None => s,
    };
    match literal {
        "true" => Attr::Bool(true),
        "false" => Attr::Bool(false),
        _ => literal
            .parse::<i64>()
            .map(Attr::Int)
            .or_else(|_| literal.parse::<f64>().map(Attr::Float))
            .unwrap_or_else(|_| Attr::Other(s.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_attributes() {
        let t = tensor_type("tensor<1x12x3200xbf16, #ttnn_layout>").unwrap();
        assert_eq!((t.shape, t.dtype), (vec![1, 12, 3200], DType::BF16));
        assert_eq!(
            tensor_type("tensor<f32>").unwrap().shape,
            Vec::<usize>::new()
        );
        assert!(tensor_type("tensor<?x4xf32>")
            .unwrap_err()
            .contains("not static"));
        let d = attr_dict("dim0 = 1 : si32, shape = [12 : i32, 3200 : i32], transpose_b = true, epsilon = 9.99e-06 : f32, p = array<i64: 0, 2, 1>, dtype = #ttcore.supportedDataTypes<f32>").unwrap();
        assert_eq!(d["dim0"], Attr::Int(1));
        assert_eq!(d["shape"].as_ints(), Some(vec![12, 3200]));
        assert_eq!(d["transpose_b"], Attr::Bool(true));
        assert_eq!(d["epsilon"].as_f64(), Some(9.99e-6));
        assert_eq!(d["p"].as_ints(), Some(vec![0, 2, 1]));
        assert!(matches!(d["dtype"], Attr::Other(_)));
    }

    #[test]
    fn balanced_skips_arrows_and_strings() {
        let mut c = Cursor::new("(tensor<2xf32>, \")\", (a) -> tensor<2xf32>) rest");
        assert!(c.eat("("));
        assert_eq!(
            c.balanced(')').unwrap(),
            "tensor<2xf32>, \")\", (a) -> tensor<2xf32>"
        );
        assert_eq!(c.rest(), " rest");
    }
}
