//! Expression evaluation for a running thread: Python scalars and tuples, tensor tile indexing,
//! circular-buffer operations (wait, reserve, push, pop), `ttl.core` and `ttl.Pipe`; block math
//! is in [`super::math`] and copies in [`super::copy`].

use std::rc::Rc;

use super::block::{BinFn, UnaryFn};
use super::cb::{Attempt, Cb};
use super::compile::{Builtin, CExpr, CIndex, Method, Var};
use super::error::{fault, Fault, FaultKind};
use super::state::{Core, Shared, Wake};
use super::thread::{BlockOn, Role, State, ThreadRun};
use super::value::{BlockHandle, PipeEnds, TileSlice, Value};
use crate::ttl::ast::{BinOp, BoolOp, CmpOp, UnaryOp};

fn type_err<T>(msg: impl Into<String>) -> Result<T, Fault> {
    fault(FaultKind::Type, msg)
}

fn bin_fn(op: BinOp) -> Option<BinFn> {
    match op {
        BinOp::Add => Some(BinFn::Add),
        BinOp::Sub => Some(BinFn::Sub),
        BinOp::Mul => Some(BinFn::Mul),
        BinOp::Div => Some(BinFn::Div),
        BinOp::FloorDiv | BinOp::Mod => None,
    }
}

fn int_pair(v: &Value, what: &str) -> Result<(i64, i64), Fault> {
    if let Value::Tuple(t) = v {
        if let [a, b] = t.as_slice() {
            if let (Some(a), Some(b)) = (a.as_int(), b.as_int()) {
                return Ok((a, b));
            }
        }
    }
    type_err(format!(
        "{what} must be a pair of ints like (2, 2), got a {}",
        v.type_name()
    ))
}

impl<'c> ThreadRun<'c> {
    fn require_thread(&self, what: &str) -> Result<(), Fault> {
        match self.role {
            Role::Compute | Role::DataMovement => Ok(()),
            _ => fault(
                FaultKind::Unsupported,
                format!(
                    "{what} belongs inside a thread function (@ttl.compute or @ttl.datamovement)"
                ),
            ),
        }
    }

    /// Evaluates a statement-level expression, where blocking calls may appear. `None` means the
    /// thread blocked (its state says on what).
    pub(super) fn eval_top(
        &mut self,
        e: &CExpr,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Option<Value>, Fault> {
        match e {
            CExpr::Method(recv, m @ (Method::Wait | Method::Reserve), _) => {
                let r = self.eval(recv, core, sh)?;
                match (r, m) {
                    (Value::Cb(i), _) => {
                        self.require_thread("a circular-buffer operation")?;
                        let reserve = *m == Method::Reserve;
                        let cb = &mut core.cbs[i];
                        let attempt = if reserve {
                            cb.reserve(self.tid, self.line, &sh.thread_names, !sh.functional)?
                        } else {
                            cb.wait(self.tid, self.line, &sh.thread_names)?
                        };
                        match attempt {
                            Attempt::Ready(seq, t) => {
                                self.wait_until(t);
                                Ok(Some(Value::Block(BlockHandle {
                                    cb: i,
                                    seq,
                                    reserved: reserve,
                                })))
                            }
                            Attempt::Blocked => {
                                self.state = State::Blocked(if reserve {
                                    BlockOn::Reserve(i)
                                } else {
                                    BlockOn::Wait(i)
                                });
                                Ok(None)
                            }
                        }
                    }
                    (Value::Transfer { done }, Method::Wait) => {
                        if done > self.clock {
                            self.spend(done - self.clock);
                        }
                        Ok(Some(Value::None))
                    }
                    (v, _) => type_err(format!(
                        "`.{}()` needs a circular buffer{}, got a {}",
                        if *m == Method::Wait {
                            "wait"
                        } else {
                            "reserve"
                        },
                        if *m == Method::Wait {
                            " or a transfer"
                        } else {
                            ""
                        },
                        v.type_name()
                    )),
                }
            }
            CExpr::Call(Builtin::Copy, args) => {
                self.require_thread("`ttl.copy`")?;
                let src = self.eval(&args[0], core, sh)?;
                let dst = self.eval(&args[1], core, sh)?;
                self.copy(src, dst, core, sh)
            }
            _ => self.eval(e, core, sh).map(Some),
        }
    }

    /// Evaluates an expression that cannot block.
    pub(super) fn eval(
        &mut self,
        e: &CExpr,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
        match e {
            CExpr::Lit(v) => Ok(v.clone()),
            CExpr::Var(var, name) => {
                let v = match var {
                    Var::Local(i) => &self.locals[*i],
                    Var::Kernel(i) => &core.vars[*i],
                    Var::Module(i) => &sh.module[*i],
                };
                if matches!(v, Value::Unbound) {
                    return fault(
                        FaultKind::Unsupported,
                        format!("name `{name}` is used before it is assigned"),
                    );
                }
                Ok(v.clone())
            }
            CExpr::Bin(op, a, b) => {
                let a = self.eval(a, core, sh)?;
                let b = self.eval(b, core, sh)?;
                if a.is_block() || b.is_block() {
                    let f = bin_fn(*op).ok_or_else(|| {
                        Fault::new(
                            FaultKind::Unsupported,
                            "`//` and `%` are not defined on blocks",
                        )
                    })?;
                    let v = self.block_binary(f, a, b, core, sh)?;
                    Ok(Value::Data(v))
                } else {
                    scalar_bin(*op, &a, &b)
                }
            }
            CExpr::Unary(op, a) => {
                let a = self.eval(a, core, sh)?;
                match (op, &a) {
                    (UnaryOp::Neg, v) if v.is_block() => {
                        Ok(Value::Data(self.block_unary(UnaryFn::Neg, a, core, sh)?))
                    }
                    (UnaryOp::Neg, Value::Int(i)) => Ok(Value::Int(-i)),
                    (UnaryOp::Neg, v) if v.as_f64().is_some() => {
                        Ok(Value::Float(-v.as_f64().unwrap_or(0.0)))
                    }
                    (UnaryOp::Not, v) if v.truthy().is_some() => {
                        Ok(Value::Bool(!v.truthy().unwrap_or(false)))
                    }
                    (_, v) => type_err(format!("unary operator on a {}", v.type_name())),
                }
            }
            CExpr::Cmp(op, a, b) => {
                let a = self.eval(a, core, sh)?;
                let b = self.eval(b, core, sh)?;
                compare(*op, &a, &b).map(Value::Bool)
            }
            CExpr::Logic(op, a, b) => {
                let a = self.eval(a, core, sh)?;
                let t = a.truthy().ok_or_else(|| {
                    Fault::new(
                        FaultKind::Type,
                        format!("`and`/`or` on a {}", a.type_name()),
                    )
                })?;
                match (op, t) {
                    (BoolOp::And, false) | (BoolOp::Or, true) => Ok(a),
                    _ => self.eval(b, core, sh),
                }
            }
            CExpr::Tuple(xs) => {
                let mut out = Vec::with_capacity(xs.len());
                for x in xs {
                    out.push(self.eval(x, core, sh)?);
                }
                Ok(Value::Tuple(Rc::new(out)))
            }
            CExpr::Index(base, items) => {
                let b = self.eval(base, core, sh)?;
                self.index(b, items, core, sh)
            }
            CExpr::Call(f, args) => self.call(*f, args, core, sh),
            CExpr::Method(recv, m, args) => {
                let r = self.eval(recv, core, sh)?;
                match (m, r) {
                    (Method::Pop, Value::Cb(i)) => {
                        self.require_thread("`cb.pop()`")?;
                        self.pop(i, core)?;
                        Ok(Value::None)
                    }
                    (Method::Push, Value::Cb(i)) => {
                        self.require_thread("`cb.push()`")?;
                        self.push(i, core)?;
                        Ok(Value::None)
                    }
                    (Method::Store, Value::Block(h)) => {
                        let v = self.eval(&args[0], core, sh)?;
                        self.store(h, v, core, sh)?;
                        Ok(Value::None)
                    }
                    (Method::Store, r) => type_err(format!(
                        "`.store()` needs a reserved block (from `cb.reserve()`), got a {}",
                        r.type_name()
                    )),
                    (m, r) => type_err(format!(
                        "`.{}()` needs a circular buffer, got a {}",
                        format!("{m:?}").to_lowercase(),
                        r.type_name()
                    )),
                }
            }
        }
    }

    /// Pushes the reserved block of CB `i`.
    pub(super) fn push(&mut self, i: usize, core: &mut Core) -> Result<(), Fault> {
        let time = core.cbs[i].push(self.tid, self.clock, self.line)?;
        core.events.push(Wake::Cb {
            cb: i,
            time,
            push: true,
        });
        Ok(())
    }

    /// Pops the front block of CB `i`.
    pub(super) fn pop(&mut self, i: usize, core: &mut Core) -> Result<(), Fault> {
        core.cbs[i].pop(self.tid, self.clock)?;
        core.events.push(Wake::Cb {
            cb: i,
            time: self.clock,
            push: false,
        });
        Ok(())
    }

    fn index(
        &mut self,
        base: Value,
        items: &[CIndex],
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
        match base {
            Value::Tensor(t) => {
                let [ri, ci] = items else {
                    return type_err(format!(
                        "a tensor is indexed by two tile ranges like `t[r0:r1, c0:c1]`, got {} indices",
                        items.len()
                    ));
                };
                let tensor = &sh.tensors[t];
                let (tr, tc) = (tensor.rows / 32, tensor.cols / 32);
                let name = tensor.name.clone();
                let (r0, r1) = self.range(ri, tr, core, sh)?;
                let (c0, c1) = self.range(ci, tc, core, sh)?;
                if r0 < 0 || c0 < 0 || r1 > tr as i64 || c1 > tc as i64 || r0 >= r1 || c0 >= c1 {
                    return fault(
                        FaultKind::Bounds,
                        format!(
                            "tile slice [{r0}:{r1}, {c0}:{c1}] of tensor `{name}` is outside its {tr}x{tc} tiles (or empty)"
                        ),
                    );
                }
                Ok(Value::Slice(TileSlice {
                    tensor: t,
                    r0: r0 as usize,
                    r1: r1 as usize,
                    c0: c0 as usize,
                    c1: c1 as usize,
                }))
            }
            Value::Tuple(xs) => {
                let [CIndex::At(i)] = items else {
                    return type_err("a tuple takes one integer index");
                };
                let i = self
                    .eval(i, core, sh)?
                    .as_int()
                    .ok_or_else(|| Fault::new(FaultKind::Type, "a tuple index must be an int"))?;
                let j = if i < 0 { xs.len() as i64 + i } else { i };
                xs.get(j as usize).cloned().ok_or_else(|| {
                    Fault::new(FaultKind::Bounds, format!("tuple index {i} out of range"))
                })
            }
            v => type_err(format!("cannot index a {}", v.type_name())),
        }
    }

    fn range(
        &mut self,
        it: &CIndex,
        extent: usize,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<(i64, i64), Fault> {
        let mut int = |e: &CExpr| -> Result<i64, Fault> {
            let v = self.eval(e, core, sh)?;
            v.as_int().ok_or_else(|| {
                Fault::new(
                    FaultKind::Type,
                    format!("a tile index must be an int, got a {}", v.type_name()),
                )
            })
        };
        match it {
            CIndex::At(e) => {
                let i = int(e)?;
                Ok((i, i + 1))
            }
            CIndex::Slice(lo, hi) => {
                let lo = lo.as_ref().map(&mut int).transpose()?.unwrap_or(0);
                let hi = hi
                    .as_ref()
                    .map(&mut int)
                    .transpose()?
                    .unwrap_or(extent as i64);
                Ok((lo, hi))
            }
        }
    }

    fn call(
        &mut self,
        f: Builtin,
        args: &[CExpr],
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
        let mut vals = Vec::with_capacity(args.len());
        for a in args {
            vals.push(self.eval(a, core, sh)?);
        }
        match f {
            Builtin::Core => core_coords(&vals[0], (core.x, core.y), sh.grid),
            Builtin::MakeCb => {
                if self.role != Role::Setup {
                    return fault(
                        FaultKind::Unsupported,
                        "`ttl.make_circular_buffer_like` belongs at kernel level, outside the thread functions",
                    );
                }
                if !matches!(vals[0], Value::Tensor(_)) {
                    return type_err(format!(
                        "`ttl.make_circular_buffer_like` takes a kernel tensor parameter first, got a {}",
                        vals[0].type_name()
                    ));
                }
                let (r, c) = int_pair(&vals[1], "`shape`")?;
                let n = vals[2].as_int().unwrap_or(0);
                if r < 1 || c < 1 || n < 1 {
                    return type_err(format!(
                        "circular buffer shape ({r}, {c}) and buffer_factor {n} must be positive ints"
                    ));
                }
                core.cbs.push(Cb::new(
                    String::new(),
                    r as usize,
                    c as usize,
                    n as usize,
                    self.line,
                ));
                Ok(Value::Cb(core.cbs.len() - 1))
            }
            Builtin::Pipe => {
                let src = int_pair(&vals[0], "`ttl.Pipe` src")?;
                let dst = int_pair(&vals[1], "`ttl.Pipe` dst")?;
                let (gx, gy) = sh.grid;
                for (x, y) in [src, dst] {
                    if x < 0 || y < 0 || x >= gx as i64 || y >= gy as i64 {
                        return fault(
                            FaultKind::Pipe,
                            format!("pipe end ({x}, {y}) is outside the kernel's {gx}x{gy} grid"),
                        );
                    }
                }
                Ok(Value::Pipe(PipeEnds {
                    src: (src.0 as u32, src.1 as u32),
                    dst: (dst.0 as u32, dst.1 as u32),
                }))
            }
            Builtin::Copy => fault(
                FaultKind::Unsupported,
                "`ttl.copy` must be a statement of its own",
            ),
            _ => self.math(f, vals, core, sh),
        }
    }
}

/// Most coordinates `ttl.core(dims=n)` returns; more would only pad zeros.
const MAX_CORE_DIMS: i64 = 8;

/// `ttl.core(dims=n)` on core `(x, y)` of a 2-D `grid`. The guide only uses `dims=2`, giving
/// `(x, y)`; the TT-Lang specification (`ttl.node`, as `ttl.core` was renamed) flattens the
/// highest dimensions when fewer are asked for, so `dims=1` gives the linear index
/// `x + y * grid.x`, and pads zeros when more are asked for, so `dims=3` gives `(x, y, 0)`.
fn core_coords(dims: &Value, (x, y): (u32, u32), grid: (u32, u32)) -> Result<Value, Fault> {
    let n = match dims.as_int() {
        Some(n) if (1..=MAX_CORE_DIMS).contains(&n) => n as usize,
        _ => {
            return type_err(format!(
                "`ttl.core(dims=...)` takes an int from 1 to {MAX_CORE_DIMS}, got {}",
                match dims {
                    Value::Int(i) => i.to_string(),
                    v => format!("a {}", v.type_name()),
                }
            ))
        }
    };
    if n == 1 {
        return Ok(Value::Int(x as i64 + y as i64 * grid.0 as i64));
    }
    let mut coords = vec![Value::Int(x as i64), Value::Int(y as i64)];
    coords.resize(n, Value::Int(0));
    Ok(Value::Tuple(Rc::new(coords)))
}

/// Python arithmetic on ints, floats and bools.
fn scalar_bin(op: BinOp, a: &Value, b: &Value) -> Result<Value, Fault> {
    let overflow = || Fault::new(FaultKind::Type, "integer overflow");
    if let (Some(x), Some(y), false, false) = (
        a.as_int(),
        b.as_int(),
        matches!(a, Value::Float(_)),
        matches!(b, Value::Float(_)),
    ) {
        let zero = || Fault::new(FaultKind::Type, "integer division or modulo by zero");
        return Ok(match op {
            BinOp::Add => Value::Int(x.checked_add(y).ok_or_else(overflow)?),
            BinOp::Sub => Value::Int(x.checked_sub(y).ok_or_else(overflow)?),
            BinOp::Mul => Value::Int(x.checked_mul(y).ok_or_else(overflow)?),
            BinOp::Div => {
                if y == 0 {
                    return Err(zero());
                }
                Value::Float(x as f64 / y as f64)
            }
            BinOp::FloorDiv => {
                if y == 0 {
                    return Err(zero());
                }
                let q = x / y;
                Value::Int(if x % y != 0 && ((x < 0) != (y < 0)) {
                    q - 1
                } else {
                    q
                })
            }
            BinOp::Mod => {
                if y == 0 {
                    return Err(zero());
                }
                let r = x % y;
                Value::Int(if r != 0 && ((r < 0) != (y < 0)) {
                    r + y
                } else {
                    r
                })
            }
        });
    }
    let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
        return type_err(format!(
            "arithmetic on a {} and a {}",
            a.type_name(),
            b.type_name()
        ));
    };
    Ok(Value::Float(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => x / y,
        BinOp::FloorDiv => (x / y).floor(),
        BinOp::Mod => x - y * (x / y).floor(),
    }))
}

/// Python comparison of scalars (and equality of tuples and strings).
fn compare(op: CmpOp, a: &Value, b: &Value) -> Result<bool, Fault> {
    if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
        return Ok(match op {
            CmpOp::Eq => x == y,
            CmpOp::Ne => x != y,
            CmpOp::Lt => x < y,
            CmpOp::Le => x <= y,
            CmpOp::Gt => x > y,
            CmpOp::Ge => x >= y,
        });
    }
    let eq = match (a, b) {
        (Value::Str(x), Value::Str(y)) => Some(x == y),
        (Value::Tuple(x), Value::Tuple(y)) => {
            if x.len() != y.len() {
                Some(false)
            } else {
                let mut all = true;
                for (p, q) in x.iter().zip(y.iter()) {
                    all &= compare(CmpOp::Eq, p, q)?;
                }
                Some(all)
            }
        }
        _ => None,
    };
    match (op, eq) {
        (CmpOp::Eq, Some(e)) => Ok(e),
        (CmpOp::Ne, Some(e)) => Ok(!e),
        _ => type_err(format!(
            "cannot compare a {} and a {}",
            a.type_name(),
            b.type_name()
        )),
    }
}
