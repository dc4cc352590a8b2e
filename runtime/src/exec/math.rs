//! Block math for a running thread: TT-Lang's elementwise, matmul, reduce, broadcast and
//! transpose ops on blocks, with their shape checks, and the compute cost each adds to the
//! thread's pending unpack/math/pack work (charged at the next store).
//!
//! The Dst register's capacity (8 or 16 tiles) is deliberately not enforced: the guide says the
//! compiler loops over the tiles of multi-tile blocks (a multi-tile matmul keeps Dst across its K
//! loop), and its own kernels use 4x16-tile blocks, so any block shape that fits its circular
//! buffers is valid TT-Lang. The runtime computes each block whole; its cost is per tile.

use std::rc::Rc;

use super::block::{BinFn, Block, Dims, ReduceKind, UnaryFn, TILE_ELEMS};
use super::compile::Builtin;
use super::error::{fault, Fault, FaultKind};
use super::state::{Core, Shared};
use super::thread::ThreadRun;
use super::value::{BlockHandle, Value};

const SCALAR_HINT: &str = "TT-Lang has no scalar operands on blocks: make a tensor filled with \
     the constant (a full 32x32 tile per block tile), read it through a circular buffer and use \
     that block";

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

fn type_err<T>(msg: impl Into<String>) -> Result<T, Fault> {
    fault(FaultKind::Type, msg)
}

impl<'c> ThreadRun<'c> {
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

    /// Charges SFPU function `f` (its device cost key) on every element of `x`.
    fn charge_sfpu(&mut self, f: &str, x: &Block, sh: &Shared) -> Result<(), Fault> {
        self.charge(
            sh.cost.sfpu_cycles(f, x.tiles()),
            f,
            (x.tiles() * TILE_ELEMS) as f64,
            sh,
        )
    }

    pub(super) fn block_binary(
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
            (a.tiles() * TILE_ELEMS) as f64,
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

    pub(super) fn block_unary(
        &mut self,
        f: UnaryFn,
        x: Value,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Rc<Block>, Fault> {
        let x = self.operand(x, &format!("`ttl.math.{}`", f.name()), true, core)?;
        self.charge_sfpu(f.name(), &x, sh)?;
        let mut x = Rc::unwrap_or_clone(x);
        x.map_in_place(f);
        Ok(Rc::new(x))
    }

    /// `o.store(v)`: rounds to bf16 into the reserved block and charges the compute pipeline.
    pub(super) fn store(
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
        let mut data = Rc::unwrap_or_clone(data);
        data.round_to_bf16();
        core.cbs[h.cb].fill(h, Rc::new(data), 0.0)
    }

    /// A block-math builtin applied to its evaluated arguments.
    pub(super) fn math(
        &mut self,
        f: Builtin,
        mut vals: Vec<Value>,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
        match f {
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
            Builtin::Power => self.power(vals, core, sh),
            Builtin::Transpose => self.transpose(vals, core, sh),
            Builtin::Matmul => self.matmul(vals, core, sh),
            Builtin::Reduce(kind) => self.reduce(kind, vals, core, sh),
            Builtin::Broadcast => self.broadcast(vals, core, sh),
            Builtin::Where => self.select(vals, core, sh),
            Builtin::Core | Builtin::MakeCb | Builtin::Pipe | Builtin::Copy => {
                fault(FaultKind::Unsupported, "internal: not a block-math builtin")
            }
        }
    }

    /// `ttl.power(x, n)`: `x` to the non-negative integer power `n`, on the SFPU.
    fn power(
        &mut self,
        mut vals: Vec<Value>,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
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
        self.charge_sfpu("power", &x, sh)?;
        let mut x = Rc::unwrap_or_clone(x);
        x.powi_in_place(n as i32);
        Ok(Value::Data(Rc::new(x)))
    }

    /// `ttl.transpose(x, out)`: the block transposed (its tiles and within them).
    fn transpose(
        &mut self,
        mut vals: Vec<Value>,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
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

    /// `ttl.math.matmul(a, b, c)`: `a @ b + c` on the FPU, `c` the running sum.
    fn matmul(
        &mut self,
        mut vals: Vec<Value>,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
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
        self.work.unpack_tiles += sh.cost.matmul_unpack_tiles(m, k, n);
        let flops = 2.0 * (m * k * n) as f64 * 32768.0;
        self.charge(Some(sh.cost.matmul_cycles(m, k, n)), "matmul", flops, sh)?;
        let acc = Rc::unwrap_or_clone(c);
        Ok(Value::Data(Rc::new(Block::matmul_acc(&a, &b, acc))))
    }

    /// `ttl.math.reduce_sum` or `reduce_max(x, scaler, out, dims)`: `x` reduced over `dims`,
    /// times the scaler tile.
    fn reduce(
        &mut self,
        kind: ReduceKind,
        mut vals: Vec<Value>,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
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
                    x.rows,
                    x.cols,
                    dims_str(dims),
                    want.0,
                    want.1,
                    out.0,
                    out.1
                ),
            );
        }
        let sum = kind == ReduceKind::Sum;
        self.charge(
            Some(sh.cost.reduce_cycles(sum, x.tiles())),
            "reduce",
            (x.tiles() * TILE_ELEMS) as f64,
            sh,
        )?;
        Ok(Value::Data(Rc::new(x.reduce(kind, dims, &s))))
    }

    /// `ttl.math.broadcast(x, out, dims)`: `x`'s first column (row, element) copied across
    /// `out`.
    fn broadcast(
        &mut self,
        mut vals: Vec<Value>,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
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

    /// `ttl.where(condition, true_value, false_value)`: per element, `true_value` where
    /// `condition` is nonzero, else `false_value`.
    fn select(
        &mut self,
        mut vals: Vec<Value>,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Value, Fault> {
        let mut take = |what: &str, core: &Core| {
            let v = vals.pop().unwrap_or(Value::None);
            self.operand(v, &format!("`ttl.where` {what}"), true, core)
        };
        let f = take("false_value", core)?;
        let t = take("true_value", core)?;
        let c = take("condition", core)?;
        let shapes = [(c.rows, c.cols), (t.rows, t.cols), (f.rows, f.cols)];
        if shapes[1] != shapes[0] || shapes[2] != shapes[0] {
            return fault(
                FaultKind::Shape,
                format!(
                    "`ttl.where(condition, true_value, false_value)` on blocks of {}x{}, {}x{} and {}x{} tiles: shapes must match",
                    c.rows, c.cols, t.rows, t.cols, f.rows, f.cols
                ),
            );
        }
        self.charge_sfpu("where", &c, sh)?;
        Ok(Value::Data(Rc::new(Block::select(&c, &t, &f))))
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
}

fn dims_str(d: Dims) -> &'static str {
    match d {
        Dims::Rows => "[0]",
        Dims::Cols => "[1]",
        Dims::Scalar => "[0, 1]",
    }
}
