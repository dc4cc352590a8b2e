//! Readable, unique Python identifiers derived from graph names.

use std::collections::BTreeSet;

/// Names a kernel's threads use for their own locals, and Python keywords: never given to a
/// tensor, circular buffer or value.
const RESERVED: &[&str] = &[
    "ttl", "range", "core", "core_x", "core_y", "i", "block", "batch", "rem", "row", "col", "k",
    "kc", "b_row", "blk", "tx", "o", "chunk", "sc", "compute", "dm_read", "dm_write", "min", "max",
    "and", "as", "assert", "async", "await", "break", "class", "continue", "def", "del", "elif",
    "else", "except", "false", "finally", "for", "from", "global", "if", "import", "in", "is",
    "lambda", "none", "nonlocal", "not", "or", "pass", "raise", "return", "true", "try", "while",
    "with", "yield", "np", "torch", "ttnn", "device", "main",
];

/// Turns any string into a lowercase Python identifier (`/layer1/MatMul_0` -> `layer1_matmul_0`).
pub fn sanitize(raw: &str) -> String {
    let mut out = String::new();
    for ch in raw.chars() {
        if ch.is_ascii_alphanumeric() {
            out.push(ch.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    let trimmed = out.trim_matches('_').to_string();
    match trimmed.chars().next() {
        None => "t".to_string(),
        Some(c) if c.is_ascii_digit() => format!("t{trimmed}"),
        Some(_) => trimmed,
    }
}

/// Allocates identifiers that are unique together with the names derived from them
/// (`x` reserves `x`, `x_cb`, `x_v` and `x_o`).
#[derive(Clone, Debug, Default)]
pub struct Stems {
    used: BTreeSet<String>,
}

impl Stems {
    /// A fresh allocator.
    pub fn new() -> Self {
        Self::default()
    }

    /// A unique stem based on `raw`.
    pub fn alloc(&mut self, raw: &str) -> String {
        let base = sanitize(raw);
        let mut candidate = base.clone();
        let mut n = 1;
        while !self.is_free(&candidate) {
            n += 1;
            candidate = format!("{base}_{n}");
        }
        for suffix in ["", "_cb", "_v", "_o"] {
            self.used.insert(format!("{candidate}{suffix}"));
        }
        candidate
    }

    fn is_free(&self, c: &str) -> bool {
        !RESERVED.contains(&c)
            && ["", "_cb", "_v", "_o"]
                .iter()
                .all(|s| !self.used.contains(&format!("{c}{s}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_are_identifiers_and_unique() {
        assert_eq!(
            sanitize("/layer1/MatMul_output_0"),
            "layer1_matmul_output_0"
        );
        assert_eq!(sanitize("0"), "t0");
        let mut s = Stems::new();
        assert_eq!(s.alloc("x"), "x");
        assert_eq!(s.alloc("X"), "x_2");
        assert_eq!(s.alloc("row"), "row_2");
        assert_eq!(s.alloc("x_cb"), "x_cb_2");
    }
}
