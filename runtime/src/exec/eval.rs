//! Expression evaluation for a running thread: Python scalars, circular-buffer operations,
//! copies, and TT-Lang block math with its compute costs.

use std::rc::Rc;

use super::block::{BinFn, Block, Dims, UnaryFn};
use super::cb::{Attempt, Cb};
use super::compile::{Builtin, CExpr, CIndex, Method, Var};
use super::error::{fault, Fault, FaultKind};
use super::state::{Core, PipeMsg, Shared, Wake};
use super::thread::{BlockOn, Role, State, ThreadRun};
use super::value::{BlockHandle, PipeEnds, TileSlice, Value};
use crate::ttl::ast::{BinOp, BoolOp, CmpOp, UnaryOp};

const SCALAR_HINT: &str = "TT-Lang has no scalar operands on blocks: make a tensor filled with \
     the constant (a full 32x32 tile per block tile), read it through a circular buffer and use \
     that block";

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

/// The device cost key of a binary block op.
fn cost_key(f: BinFn) -> &'static str {
    match f {
        BinFn::Add => "add",
        BinFn::Sub => "sub",
        BinFn::Mul => "mul",
        BinFn::Div => "division",
        BinFn::Max => "max",
        BinFn::Min => "min",
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
                            cb.reserve(self.tid, self.line, &sh.thread_names)?
                        } else {
                            cb.wait(self.tid, &sh.thread_names)?
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
                if matches!(v, Value::None) && matches!(var, Var::Local(_)) {
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

    /// A block operand's data. `unpack` charges the unpacker when the block comes from a CB.
    fn operand(
        &mut self,
        v: Value,
        what: &str,
        unpack: bool,
        core: &Core,
    ) -> Result<Rc<Block>, Fault> {
        match v {
            Value::Block(h) => {
                let d = core.cbs[h.cb].data(h)?.clone();
                if unpack {
                    self.work.unpack_tiles += d.tiles() as f64;
                }
                Ok(d)
            }
            Value::Data(d) => Ok(d),
            Value::Int(_) | Value::Float(_) => fault(
                FaultKind::Type,
                format!("{what} got a Python scalar; {SCALAR_HINT}"),
            ),
            v => type_err(format!("{what} needs a block, got a {}", v.type_name())),
        }
    }

    /// The tile shape of a block value without reading it (for `out` arguments).
    fn shape_of(&self, v: &Value, what: &str, core: &Core) -> Result<(usize, usize), Fault> {
        match v {
            Value::Block(h) => {
                let cb = &core.cbs[h.cb];
                Ok((cb.rows, cb.cols))
            }
            Value::Data(d) => Ok((d.rows, d.cols)),
            v => type_err(format!("{what} needs a block, got a {}", v.type_name())),
        }
    }

    fn charge(
        &mut self,
        cycles: Option<f64>,
        key: &str,
        flops: f64,
        sh: &Shared,
    ) -> Result<(), Fault> {
        let c = cycles.ok_or_else(|| {
            Fault::new(
                FaultKind::Unsupported,
                format!("device `{}` has no cost for `{key}`", sh.cost.device.name),
            )
        })?;
        self.work.math_cycles += c;
        self.work.flops += flops;
        Ok(())
    }

    fn block_binary(
        &mut self,
        f: BinFn,
        a: Value,
        b: Value,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Rc<Block>, Fault> {
        let what = format!("`{}`", f.symbol());
        let a = self.operand(a, &what, true, core)?;
        let b = self.operand(b, &what, true, core)?;
        if (a.rows, a.cols) != (b.rows, b.cols) {
            return fault(
                FaultKind::Shape,
                format!(
                    "{what} on blocks of {}x{} and {}x{} tiles: shapes must match",
                    a.rows, a.cols, b.rows, b.cols
                ),
            );
        }
        let tiles = a.tiles();
        self.charge(
            sh.cost.binary_cycles(cost_key(f), tiles),
            cost_key(f),
            a.data.len() as f64,
            sh,
        )?;
        Ok(Rc::new(match Rc::try_unwrap(a) {
            Ok(mut a) => {
                a.zip_in_place(&b, f);
                a
            }
            Err(a) => match Rc::try_unwrap(b) {
                Ok(mut b) => {
                    b.zip_in_place_rev(&a, f);
                    b
                }
                Err(b) => {
                    let mut out = (*a).clone();
                    out.zip_in_place(&b, f);
                    out
                }
            },
        }))
    }

    fn block_unary(
        &mut self,
        f: UnaryFn,
        x: Value,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Rc<Block>, Fault> {
        let x = self.operand(x, &format!("`ttl.math.{}`", f.name()), true, core)?;
        self.charge(
            sh.cost.sfpu_cycles(f.name(), x.tiles()),
            f.name(),
            x.data.len() as f64,
            sh,
        )?;
        let mut x = Rc::try_unwrap(x).unwrap_or_else(|rc| (*rc).clone());
        x.map_in_place(f);
        Ok(Rc::new(x))
    }

    /// `o.store(v)`: rounds to bf16 into the reserved block and charges the compute pipeline.
    fn store(
        &mut self,
        h: BlockHandle,
        v: Value,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<(), Fault> {
        if !h.reserved {
            return fault(
                FaultKind::CircularBuffer,
                format!(
                    "`.store()` into a waited block of CB `{}`; store into a block from `reserve()`",
                    core.cbs[h.cb].name
                ),
            );
        }
        let plain = matches!(v, Value::Block(_));
        let data = self.operand(v, "`.store()`", true, core)?;
        let cb = &core.cbs[h.cb];
        if (data.rows, data.cols) != (cb.rows, cb.cols) {
            return fault(
                FaultKind::Shape,
                format!(
                    "`.store()` of a {}x{}-tile value into a block of CB `{}`, which is {}x{} tiles",
                    data.rows, data.cols, cb.name, cb.rows, cb.cols
                ),
            );
        }
        let tiles = data.tiles();
        if plain {
            self.work.math_cycles += sh.cost.datacopy_cycles(tiles);
        }
        let cycles = sh.cost.pipeline_cycles(&self.work, tiles);
        sh.flops += self.work.flops;
        self.work = Default::default();
        self.spend(cycles);
        let mut data = Rc::try_unwrap(data).unwrap_or_else(|rc| (*rc).clone());
        data.round_to_bf16();
        core.cbs[h.cb].fill(h, Rc::new(data), 0.0)
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
            Builtin::Core => {
                if vals[0].as_int() != Some(2) {
                    return fault(
                        FaultKind::Unsupported,
                        "only `ttl.core(dims=2)` is supported",
                    );
                }
                Ok(Value::Tuple(Rc::new(vec![
                    Value::Int(core.x as i64),
                    Value::Int(core.y as i64),
                ])))
            }
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
            Builtin::Unary(u) => {
                let x = vals.swap_remove(0);
                Ok(Value::Data(self.block_unary(u, x, core, sh)?))
            }
            Builtin::Max | Builtin::Min => {
                let f = if f == Builtin::Max {
                    BinFn::Max
                } else {
                    BinFn::Min
                };
                let b = vals.pop().unwrap_or(Value::None);
                let a = vals.pop().unwrap_or(Value::None);
                Ok(Value::Data(self.block_binary(f, a, b, core, sh)?))
            }
            Builtin::Power => {
                let n = vals[1]
                    .as_int()
                    .filter(|n| (0..=i32::MAX as i64).contains(n))
                    .ok_or_else(|| {
                        Fault::new(
                            FaultKind::Type,
                            "`ttl.power(x, n)` needs a non-negative int n",
                        )
                    })?;
                let x = self.operand(vals.swap_remove(0), "`ttl.power`", true, core)?;
                self.charge(
                    sh.cost.sfpu_cycles("power", x.tiles()),
                    "power",
                    x.data.len() as f64,
                    sh,
                )?;
                let mut x = Rc::try_unwrap(x).unwrap_or_else(|rc| (*rc).clone());
                x.powi_in_place(n as i32);
                Ok(Value::Data(Rc::new(x)))
            }
            Builtin::Transpose => {
                let out = self.shape_of(&vals[1], "`ttl.transpose` out", core)?;
                let x = self.operand(vals.swap_remove(0), "`ttl.transpose`", true, core)?;
                if out != (x.cols, x.rows) {
                    return fault(
                        FaultKind::Shape,
                        format!(
                            "`ttl.transpose` of a {}x{}-tile block gives {}x{} tiles but `out` is {}x{}",
                            x.rows, x.cols, x.cols, x.rows, out.0, out.1
                        ),
                    );
                }
                self.charge(
                    Some(sh.cost.transpose_cycles(x.tiles())),
                    "transpose",
                    0.0,
                    sh,
                )?;
                Ok(Value::Data(Rc::new(x.transpose())))
            }
            Builtin::Matmul => {
                let c = vals.pop().unwrap_or(Value::None);
                let b = self.operand(
                    vals.pop().unwrap_or(Value::None),
                    "`ttl.math.matmul` b",
                    false,
                    core,
                )?;
                let a = self.operand(
                    vals.pop().unwrap_or(Value::None),
                    "`ttl.math.matmul` a",
                    false,
                    core,
                )?;
                let c = self.operand(c, "`ttl.math.matmul` c", false, core)?;
                if a.cols != b.rows || c.rows != a.rows || c.cols != b.cols {
                    return fault(
                        FaultKind::Shape,
                        format!(
                            "`ttl.math.matmul(a, b, c)` needs a MxK, b KxN and c MxN tiles; got a {}x{}, b {}x{}, c {}x{}",
                            a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
                        ),
                    );
                }
                let (m, k, n) = (a.rows, a.cols, b.cols);
                self.work.unpack_tiles += (2 * m * n * k) as f64;
                let flops = 2.0 * (m * k * n) as f64 * 32768.0;
                self.charge(Some(sh.cost.matmul_cycles(m, k, n)), "matmul", flops, sh)?;
                let acc = Rc::try_unwrap(c).unwrap_or_else(|rc| (*rc).clone());
                Ok(Value::Data(Rc::new(Block::matmul_acc(&a, &b, acc))))
            }
            Builtin::Reduce(kind) => {
                let dims = self.dims(&vals[3], "reduce")?;
                let out = self.shape_of(&vals[2], "reduce `out`", core)?;
                let s = self.operand(vals[1].clone(), "reduce scaler", true, core)?;
                if (s.rows, s.cols) != (1, 1) {
                    return fault(
                        FaultKind::Shape,
                        format!(
                            "the reduce scaler must be a 1x1-tile block, got {}x{}",
                            s.rows, s.cols
                        ),
                    );
                }
                let x = self.operand(vals.swap_remove(0), "reduce input", true, core)?;
                let want = match dims {
                    Dims::Rows => (x.rows, 1),
                    Dims::Cols => (1, x.cols),
                    Dims::Scalar => (1, 1),
                };
                if out != want {
                    return fault(
                        FaultKind::Shape,
                        format!(
                            "reducing a {}x{}-tile block with dims={} gives {}x{} tiles but `out` is {}x{}",
                            x.rows, x.cols, dims_str(dims), want.0, want.1, out.0, out.1
                        ),
                    );
                }
                let sum = kind == super::block::ReduceKind::Sum;
                self.charge(
                    Some(sh.cost.reduce_cycles(sum, x.tiles())),
                    "reduce",
                    x.data.len() as f64,
                    sh,
                )?;
                Ok(Value::Data(Rc::new(x.reduce(kind, dims, &s))))
            }
            Builtin::Broadcast => {
                let dims = self.dims(&vals[2], "broadcast")?;
                let (orows, ocols) = self.shape_of(&vals[1], "broadcast `out`", core)?;
                let x = self.operand(vals.swap_remove(0), "broadcast input", false, core)?;
                let ok = match dims {
                    Dims::Cols => x.rows == orows && x.cols == 1,
                    Dims::Rows => x.cols == ocols && x.rows == 1,
                    Dims::Scalar => (x.rows, x.cols) == (1, 1),
                };
                if !ok {
                    return fault(
                        FaultKind::Shape,
                        format!(
                            "broadcast dims={} of a {}x{}-tile block into {orows}x{ocols} tiles: the input must be {}",
                            dims_str(dims),
                            x.rows,
                            x.cols,
                            match dims {
                                Dims::Cols => format!("{orows}x1 tiles (column 0 is copied across columns)"),
                                Dims::Rows => format!("1x{ocols} tiles (row 0 is copied down the rows)"),
                                Dims::Scalar => "1x1 tiles (element [0, 0] is copied everywhere)".into(),
                            }
                        ),
                    );
                }
                let tiles = orows * ocols;
                self.work.unpack_tiles += tiles as f64;
                self.charge(Some(sh.cost.datacopy_cycles(tiles)), "broadcast", 0.0, sh)?;
                Ok(Value::Data(Rc::new(x.broadcast(dims, orows, ocols))))
            }
        }
    }

    fn dims(&self, v: &Value, op: &str) -> Result<Dims, Fault> {
        let list: Option<Vec<i64>> = match v {
            Value::Tuple(xs) => xs.iter().map(|x| x.as_int()).collect(),
            _ => None,
        };
        list.as_deref().and_then(Dims::from_list).ok_or_else(|| {
            Fault::new(
                FaultKind::Type,
                format!("{op} `dims` must be [0], [1] or [0, 1]"),
            )
        })
    }

    /// `ttl.copy(src, dst)`; `None` when it blocked on an empty pipe.
    fn copy(
        &mut self,
        src: Value,
        dst: Value,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Option<Value>, Fault> {
        let here = (core.x, core.y);
        let tile_bytes = sh.cost.device.tile_bytes as f64;
        let shape_err = |what: &str, a: (usize, usize), cb: &Cb| {
            Fault::new(
                FaultKind::Shape,
                format!(
                    "`ttl.copy` of {what} of {}x{} tiles and a block of CB `{}`, which is {}x{} tiles: shapes must match",
                    a.0, a.1, cb.name, cb.rows, cb.cols
                ),
            )
        };
        let start = self.clock.max(self.link_free);
        match (src, dst) {
            (Value::Slice(s), Value::Block(h)) => {
                let cb = &core.cbs[h.cb];
                let shape = (s.r1 - s.r0, s.c1 - s.c0);
                if shape != (cb.rows, cb.cols) {
                    return Err(shape_err("a tensor slice", shape, cb));
                }
                let data = sh.tensors[s.tensor].read(&s);
                let bytes = (shape.0 * shape.1) as f64 * tile_bytes;
                let rate = sh.cost.device.core_dm.dram_read_bytes_per_cycle;
                let done = sh.dram.transfer(start, bytes, rate);
                self.link_free = done;
                core.cbs[h.cb].fill(h, Rc::new(data), done)?;
                sh.dram_read_bytes += bytes as u64;
                Ok(Some(Value::Transfer { done }))
            }
            (Value::Block(h), Value::Slice(s)) => {
                let cb = &core.cbs[h.cb];
                let shape = (s.r1 - s.r0, s.c1 - s.c0);
                if shape != (cb.rows, cb.cols) {
                    return Err(shape_err("a tensor slice", shape, cb));
                }
                let data = cb.data(h)?.clone();
                sh.tensors[s.tensor].write(&s, &data);
                let bytes = (shape.0 * shape.1) as f64 * tile_bytes;
                let rate = sh.cost.device.core_dm.dram_write_bytes_per_cycle;
                let done = sh.dram.transfer(start, bytes, rate);
                self.link_free = done;
                sh.dram_write_bytes += bytes as u64;
                Ok(Some(Value::Transfer { done }))
            }
            (Value::Block(h), Value::Pipe(p)) => {
                if here != p.src {
                    return fault(
                        FaultKind::Pipe,
                        format!(
                            "sending into pipe {:?}->{:?} from core {here:?}; only its source core may send",
                            p.src, p.dst
                        ),
                    );
                }
                let data = core.cbs[h.cb].data(h)?.clone();
                let bytes = data.tiles() as f64 * tile_bytes;
                let hops = p.src.0.abs_diff(p.dst.0) + p.src.1.abs_diff(p.dst.1);
                let arrival = start + sh.cost.pipe_cycles(bytes, hops);
                self.link_free = arrival;
                sh.pipes.entry(p).or_default().push_back(PipeMsg { data, arrival });
                sh.pipe_events.push(p);
                sh.noc_bytes += bytes as u64;
                Ok(Some(Value::Transfer { done: arrival }))
            }
            (Value::Pipe(p), Value::Block(h)) => {
                if here != p.dst {
                    return fault(
                        FaultKind::Pipe,
                        format!(
                            "receiving from pipe {:?}->{:?} on core {here:?}; only its destination core may receive",
                            p.src, p.dst
                        ),
                    );
                }
                let Some(msg) = sh.pipes.get_mut(&p).and_then(|q| q.pop_front()) else {
                    self.state = State::Blocked(BlockOn::Pipe(p));
                    return Ok(None);
                };
                let cb = &core.cbs[h.cb];
                if (msg.data.rows, msg.data.cols) != (cb.rows, cb.cols) {
                    return Err(shape_err("a pipe block", (msg.data.rows, msg.data.cols), cb));
                }
                core.cbs[h.cb].fill(h, msg.data, msg.arrival)?;
                Ok(Some(Value::Transfer { done: msg.arrival.max(self.clock) }))
            }
            (a, b) => type_err(format!(
                "`ttl.copy(src, dst)` copies a tensor slice into a reserved block, a block into a \
                 tensor slice, a block into a pipe or a pipe into a reserved block; got a {} and a {}",
                a.type_name(),
                b.type_name()
            )),
        }
    }
}

fn dims_str(d: Dims) -> &'static str {
    match d {
        Dims::Rows => "[0]",
        Dims::Cols => "[1]",
        Dims::Scalar => "[0, 1]",
    }
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
