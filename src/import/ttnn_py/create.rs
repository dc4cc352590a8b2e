//! Tensor creation and transfer calls of the TTNN Python importer: random data becomes a
//! graph input, ones/zeros/full a constant, device transfers pass their tensor through.

use rustpython_parser::ast::{self, Expr};

use super::value::Val;
use super::{Env, Program};
use crate::graph::{DType, Op, TensorData, TensorType};
use crate::import::ImportError;

impl<'a> Program<'a> {
    /// `ttnn.from_torch(t, dtype=...)` and other transfers: the tensor itself. A creation call
    /// as the argument takes the transfer's dtype.
    pub(super) fn pass_through(
        &mut self,
        c: &'a ast::ExprCall,
        env: &mut Env,
        hint: &str,
        func: &str,
    ) -> Result<Val, ImportError> {
        let dtype = match c
            .keywords
            .iter()
            .find(|k| k.arg.as_ref().is_some_and(|a| a.as_str() == "dtype"))
        {
            Some(k) => match self.eval(&k.value, env, hint)? {
                Val::DType(d) => Some(d),
                other => {
                    return Err(self.err(format!(
                        "{func}: dtype must be a dtype, got {}",
                        other.describe()
                    )))
                }
            },
            None => None,
        };
        let Some(first) = c.args.first() else {
            return Err(self.err(format!("{func}: a tensor argument is required")));
        };
        if let Expr::Call(inner) = first {
            if let Expr::Attribute(_) = &*inner.func {
                if let Val::Path(p) = self.eval(&inner.func, env, hint)? {
                    if is_creation(&p) {
                        return self.create(inner, env, hint, &p, dtype);
                    }
                }
            }
        }
        let v = self.eval(first, env, hint)?;
        match (v, dtype) {
            (Val::Tensor(t), Some(d))
                if self.b.ty(t).dtype != d && d.is_float() && self.b.ty(t).dtype.is_float() =>
            {
                self.op(hint, func, Op::Cast { to: d }, &[t])
            }
            (v @ Val::Tensor(_), _) => Ok(v),
            (v, _) => Err(self.err(format!("{func}: expected a tensor, got {}", v.describe()))),
        }
    }

    /// A tensor creation call: random data makes a graph input, ones/zeros/full a constant.
    pub(super) fn create(
        &mut self,
        c: &'a ast::ExprCall,
        env: &mut Env,
        hint: &str,
        func: &str,
        dtype: Option<DType>,
    ) -> Result<Val, ImportError> {
        let args = self.eval_args(c, env, hint)?;
        let fill = func.ends_with(".full");
        let shape_args = if fill {
            &args.pos[..args.pos.len().min(1)]
        } else {
            &args.pos[..]
        };
        let dims: Option<Vec<i64>> = match shape_args {
            [one @ Val::Seq(_)] => one.as_ints(),
            [] => args
                .kw
                .get("size")
                .or_else(|| args.kw.get("shape"))
                .and_then(Val::as_ints),
            many => many.iter().map(Val::as_int).collect(),
        };
        let shape = dims
            .filter(|d| !d.is_empty() && d.iter().all(|&x| x >= 0))
            .map(|d| d.into_iter().map(|x| x as usize).collect::<Vec<usize>>())
            .ok_or_else(|| {
                self.err(format!(
                    "{func}: the shape must be integers, e.g. {func}(64, 64) or {func}((64, 64))"
                ))
            })?;
        let dtype = match (dtype, args.kw.get("dtype")) {
            (Some(d), _) => d,
            (None, Some(Val::DType(d))) => *d,
            _ => DType::F32,
        };
        let value = if func.ends_with(".ones") {
            Some(1.0)
        } else if func.ends_with(".zeros") {
            Some(0.0)
        } else if fill {
            match args.get(1, "fill_value") {
                Some(Val::Num(n)) => Some(*n as f32),
                _ => return Err(self.err(format!("{func}: a numeric fill value is required"))),
            }
        } else {
            None
        };
        let idx = match value {
            Some(v) => {
                let n = shape.iter().product();
                self.b
                    .constant(hint, TensorData::f32(shape, vec![v; n]), dtype)
            }
            None => {
                let shape = self.opts.input_shapes.get(hint).cloned().unwrap_or(shape);
                self.b.input(hint, TensorType::new(shape, dtype))
            }
        };
        self.created.insert(idx);
        Ok(Val::Tensor(idx))
    }
}

/// Whether `path` names a tensor creation call.
pub(super) fn is_creation(path: &str) -> bool {
    matches!(
        path,
        "torch.randn"
            | "torch.rand"
            | "torch.empty"
            | "ttnn.rand"
            | "ttnn.randn"
            | "torch.ones"
            | "torch.zeros"
            | "torch.full"
            | "ttnn.ones"
            | "ttnn.zeros"
            | "ttnn.full"
    )
}
