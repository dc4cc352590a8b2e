//! The TTNN MLIR importer: reads the entry `func.func` of a TTNN-dialect module in the generic
//! form tt-mlir prints (`%3 = "ttnn.add"(%1, %2) : (tensor<..>, tensor<..>) -> tensor<..>`).
//!
//! Function arguments are the graph inputs, named by a `{ttir.name = "..."}` argument
//! attribute when present, else `arg0`, `arg1`, ...; the `return` operands are the outputs
//! `out0`, `out1`, .... Layout attributes on types (`#ttnn_layout` aliases or inline
//! `#ttnn.ttnn_layout<...>`) are ignored; every declared result type (shape and dtype) is
//! checked against shape inference. Device plumbing (`ttnn.get_device`, `ttnn.to_device`,
//! `ttnn.to_layout`, `ttnn.to_memory_config`, `ttnn.from_device`, `ttnn.deallocate`) has no
//! effect on the graph. The entry function is the first one that is neither `private` nor a
//! const-eval helper; calls to other functions (`ttcore.load_cached`, `func.call`) are not
//! supported. Op statements may span lines (an attribute dictionary on its own lines).

pub mod ops;
pub mod syntax;

use std::collections::BTreeMap;

use petgraph::graph::NodeIndex;

use self::ops::{MlirCx, MlirOp};
use self::syntax::{attr_dict, split_top, tensor_parts, tensor_type, Attr, Cursor};
use super::builder::GraphBuilder;
use super::{ImportError, ImportOptions};
use crate::graph::{Graph, Op, TensorType};

/// Imports TTNN-dialect MLIR text; `file` names it in errors.
pub fn import(file: &str, text: &str, opts: &ImportOptions) -> Result<Graph, ImportError> {
    let stmts = statements(text);
    let err = |line: usize, reason: String| ImportError::Line {
        file: file.to_string(),
        line,
        reason,
    };
    let start = stmts
        .iter()
        .position(|(_, s)| {
            s.starts_with("func.func")
                && s.ends_with('{')
                && !s.starts_with("func.func private")
                && !s.contains("const_eval")
        })
        .ok_or_else(|| ImportError::Malformed {
            file: file.to_string(),
            format: "TTNN MLIR",
            reason: "it has no public func.func with a body to import".into(),
        })?;
    let mut f = Func {
        b: GraphBuilder::new(),
        values: BTreeMap::new(),
        table: ops::table(),
    };
    let (line, header) = &stmts[start];
    f.header(header, opts).map_err(|r| err(*line, r))?;
    for (line, stmt) in &stmts[start + 1..] {
        if stmt == "}" {
            return Err(err(*line, "the function ends without a `return`".into()));
        }
        if let Some(outputs) = f.statement(stmt).map_err(|r| err(*line, r))? {
            return Ok(f.b.finish(outputs));
        }
    }
    Err(err(
        stmts.last().map_or(1, |s| s.0),
        "the function body is not closed".into(),
    ))
}

/// Statements with their first line: comments removed, lines joined while [`is_open`].
fn statements(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let (start, mut s) = pending.take().unwrap_or((i + 1, String::new()));
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(line);
        if is_open(&s) {
            pending = Some((start, s));
        } else {
            out.push((start, s));
        }
    }
    out.extend(pending);
    out
}

/// Whether statement text `s` continues on the next line: a `(`, `[` or `<` is open (an `->`
/// is no closing `>`), or it is an op statement (starting with `%` or `"`) that has not yet
/// reached the top-level `->` of its function type.
fn is_open(s: &str) -> bool {
    let (mut depth, mut arrow, mut in_str, mut prev) = (0i64, false, false, ' ');
    for c in s.chars() {
        if in_str {
            in_str = !(c == '"' && prev != '\\');
        } else {
            match c {
                '"' => in_str = true,
                '(' | '[' | '<' => depth += 1,
                '>' if prev == '-' => arrow |= depth == 0,
                ')' | ']' | '>' => depth -= 1,
                _ => {}
            }
        }
        prev = c;
    }
    let op = s.starts_with('%') || s.starts_with('"');
    depth > 0 || (op && !arrow)
}

fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    let bytes = line.as_bytes();
    for i in 0..bytes.len() {
        match bytes[i] {
            b'"' => in_str = !in_str,
            b'/' if !in_str && bytes.get(i + 1) == Some(&b'/') => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Device and layout ops that leave a tensor's value unchanged.
const PLUMBING: [&str; 6] = [
    "ttnn.get_device",
    "ttnn.to_device",
    "ttnn.to_layout",
    "ttnn.to_memory_config",
    "ttnn.from_device",
    "ttnn.deallocate",
];

/// A value in the function body.
#[derive(Clone, Copy)]
enum Val {
    Tensor(NodeIndex),
    Device,
}

struct Func {
    b: GraphBuilder,
    values: BTreeMap<String, Val>,
    table: BTreeMap<&'static str, MlirOp>,
}

impl Func {
    /// `func.func @name(%arg0: tensor<..> {ttir.name = ".."}, ...) -> ... {`
    fn header(&mut self, s: &str, opts: &ImportOptions) -> Result<(), String> {
        let mut c = Cursor::new(s);
        c.expect("func.func")?;
        let _ = c.eat("public") || c.eat("private");
        c.expect("@")?;
        c.word();
        c.expect("(")?;
        let args = c.balanced(')')?;
        for (k, arg) in split_top(args).into_iter().enumerate() {
            let mut a = Cursor::new(arg);
            let value = a.value()?.to_string();
            a.expect(":")?;
            if a.eat("!ttnn.device") {
                self.values.insert(value, Val::Device);
                continue;
            }
            let ty_text = type_text(&mut a)?;
            let mut name = value.clone();
            if a.eat("{") {
                let attrs = attr_dict(a.balanced('}')?)?;
                if let Some(Attr::Str(n)) = attrs
                    .iter()
                    .find(|(k, _)| k.ends_with(".name"))
                    .map(|(_, v)| v)
                {
                    name = n.clone();
                }
            }
            // A shape given for the input replaces the declared (perhaps dynamic) one.
            let ty = match opts.input_shapes.get(&name) {
                Some(shape) => TensorType::new(shape.clone(), tensor_parts(&ty_text)?.1),
                None => tensor_type(&ty_text)?,
            };
            if name.is_empty() {
                name = format!("arg{k}");
            }
            let idx = self.b.input(&name, ty);
            self.values.insert(value, Val::Tensor(idx));
        }
        Ok(())
    }

    fn lookup(&self, operand: &str) -> Result<Val, String> {
        let name = operand
            .trim()
            .strip_prefix('%')
            .ok_or_else(|| format!("expected a value, got `{operand}`"))?;
        self.values
            .get(name)
            .copied()
            .ok_or_else(|| format!("value `%{name}` is not defined"))
    }

    /// One body statement; returns the outputs at `return`.
    fn statement(&mut self, s: &str) -> Result<Option<Vec<(String, NodeIndex)>>, String> {
        let mut c = Cursor::new(s);
        if c.eat("return") {
            let operands = c.rest().split(':').next().unwrap_or_default();
            let mut outputs = Vec::new();
            for (k, o) in split_top(operands).into_iter().enumerate() {
                match self.lookup(o)? {
                    Val::Tensor(t) => outputs.push((format!("out{k}"), t)),
                    Val::Device => return Err("a device is returned".into()),
                }
            }
            if outputs.is_empty() {
                return Err("the function returns nothing".into());
            }
            return Ok(Some(outputs));
        }
        let mut results = Vec::new();
        if c.rest().starts_with('%') {
            loop {
                results.push(c.value()?.to_string());
                if c.eat(":") {
                    return Err("ops with several results are not supported".into());
                }
                if !c.eat(",") {
                    break;
                }
            }
            c.expect("=")?;
        }
        c.ws();
        if !c.rest().starts_with('"') {
            return Err(format!(
                "`{}` is not in the generic op form (\"dialect.op\"(...)); print the module with --mlir-print-op-generic",
                c.word()
            ));
        }
        let op_name = c.string()?;
        c.expect("(")?;
        let operands = split_top(c.balanced(')')?)
            .into_iter()
            .map(|o| self.lookup(o))
            .collect::<Result<Vec<Val>, String>>()
            .map_err(|e| format!("`{op_name}` operands: {e}"))?;
        let (attrs, result_types) = signature(&mut c).map_err(|e| format!("`{op_name}`: {e}"))?;
        let val = self.apply(&op_name, &results, operands, attrs, &result_types)?;
        match (results.as_slice(), val) {
            ([], _) => {}
            ([r], Some(v)) => {
                if self.values.insert(r.clone(), v).is_some() {
                    return Err(format!("`{op_name}` defines `%{r}` a second time"));
                }
            }
            _ => return Err(format!("`{op_name}` produced no value for its result")),
        }
        Ok(None)
    }

    fn apply(
        &mut self,
        op_name: &str,
        results: &[String],
        operands: Vec<Val>,
        attrs: BTreeMap<String, Attr>,
        result_types: &[String],
    ) -> Result<Option<Val>, String> {
        let tensors: Vec<NodeIndex> = operands
            .iter()
            .filter_map(|v| {
                if let Val::Tensor(t) = v {
                    Some(*t)
                } else {
                    None
                }
            })
            .collect();
        match op_name {
            "ttnn.get_device" => return Ok(Some(Val::Device)),
            "ttnn.deallocate" => return Ok(None),
            "ttnn.to_device" | "ttnn.to_layout" | "ttnn.to_memory_config" | "ttnn.from_device" => {
                let x = *tensors
                    .first()
                    .ok_or_else(|| format!("`{op_name}` has no tensor operand"))?;
                let [ty] = result_types else {
                    return Err(format!("`{op_name}` must declare one result"));
                };
                let declared = tensor_type(ty)?;
                let have = self.b.ty(x).clone();
                if have.shape != declared.shape {
                    return Err(format!(
                        "{op_name} changes the shape {:?} to {:?}; layout ops must keep it",
                        have.shape, declared.shape
                    ));
                }
                if have.dtype == declared.dtype {
                    return Ok(Some(Val::Tensor(x)));
                }
                // A layout change with a `dtype` is a typecast.
                let name = results
                    .first()
                    .map_or_else(|| "v".to_string(), |r| format!("v{r}"));
                let cast = self
                    .b
                    .add(&name, Op::Cast { to: declared.dtype }, &[x])
                    .map_err(|e| format!("{op_name}: {e}"))?;
                return Ok(Some(Val::Tensor(cast)));
            }
            _ => {}
        }
        let spec = op_name
            .strip_prefix("ttnn.")
            .and_then(|n| self.table.get(n))
            .copied()
            .ok_or_else(|| {
                let known: Vec<String> = self.table.keys().map(|k| format!("ttnn.{k}")).collect();
                format!(
                    "op `{op_name}` is not supported by ttfuse; supported ops: {}, and the device and layout ops {} (which become identities)",
                    known.join(", "),
                    PLUMBING.join(", ")
                )
            })?;
        if tensors.len() < spec.min || tensors.len() > spec.max {
            return Err(format!(
                "`{op_name}` takes {} tensor operand(s), got {}",
                spec.arity(),
                tensors.len()
            ));
        }
        let result_text = result_types
            .first()
            .ok_or_else(|| format!("`{op_name}` declares no result"))?;
        let result = tensor_type(result_text)?;
        let name = results
            .first()
            .map_or_else(|| "v".to_string(), |r| format!("v{r}"));
        let mut cx = MlirCx {
            b: &mut self.b,
            name,
            operands: tensors,
            attrs,
            result: result.clone(),
        };
        let idx = (spec.build)(&mut cx).map_err(|e| format!("{op_name}: {e}"))?;
        let got = self.b.ty(idx);
        if got.shape != result.shape {
            return Err(format!(
                "{op_name}: the result is declared {:?}, shape inference gives {:?}",
                result.shape, got.shape
            ));
        }
        if got.dtype != result.dtype {
            return Err(format!(
                "{op_name}: the result is declared {}, shape inference gives {} (insert a ttnn.typecast)",
                ops::dtype_name(result.dtype),
                ops::dtype_name(got.dtype)
            ));
        }
        Ok(Some(Val::Tensor(idx)))
    }
}

/// The rest of an op statement after its operands: the properties `<{...}>`, the attribute
/// dictionary `{...}` and the function type; returns the attributes and the result types.
fn signature(c: &mut Cursor) -> Result<(BTreeMap<String, Attr>, Vec<String>), String> {
    let mut attrs = BTreeMap::new();
    if c.eat("<{") {
        attrs.extend(attr_dict(c.balanced('}')?)?);
        c.expect(">")?;
    }
    if c.eat("{") {
        attrs.extend(attr_dict(c.balanced('}')?)?);
    }
    c.expect(":")?;
    c.expect("(")?;
    c.balanced(')')?;
    c.expect("->")?;
    let result_types = if c.eat("(") {
        split_top(c.balanced(')')?)
            .into_iter()
            .map(str::to_string)
            .collect()
    } else {
        // One result type, then perhaps a location.
        let rest = c.rest();
        vec![rest[..rest.find(" loc(").unwrap_or(rest.len())]
            .trim()
            .to_string()]
    };
    Ok((attrs, result_types))
}

/// The text of a `tensor<...>` type at the cursor.
fn type_text(c: &mut Cursor) -> Result<String, String> {
    c.expect("tensor<")?;
    let inner = c.balanced('>')?;
    Ok(format!("tensor<{inner}>"))
}
