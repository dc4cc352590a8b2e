//! A Tensix thread as a resumable state machine: an explicit frame stack (statement lists, loops,
//! `with` blocks) that runs statement by statement until it blocks on a circular buffer or pipe,
//! or reaches a copy that the scheduler must order by time. Module constants and kernel setup
//! code run on the same machine (they never block).

use super::compile::{CBody, CExpr, CStmt, CStmtKind, CWith};
use super::error::{fault, Fault, FaultKind};
use super::state::{Core, Shared};
use super::value::{BlockHandle, PipeEnds, Value};
use crate::timing::ComputeWork;
use crate::ttl::ast::Line;

/// What code a machine runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Module-level constants.
    Module,
    /// Kernel-level setup (circular buffers, pipes, constants), once per core.
    Setup,
    /// A compute thread.
    Compute,
    /// A data-movement thread.
    DataMovement,
}

/// What a blocked thread waits for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum BlockOn {
    /// A pushed block in CB `i`.
    Wait(usize),
    /// A free slot in CB `i`.
    Reserve(usize),
    /// A block sent through a pipe.
    Pipe(PipeEnds),
}

/// A thread's scheduling state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum State {
    Ready,
    Blocked(BlockOn),
    Done,
}

/// The result of one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Made progress; can step again.
    Ran,
    /// Blocked (see [`ThreadRun::state`]).
    Blocked,
    /// The next statement is a copy: step again only when this thread's clock is the earliest.
    NeedSync,
    /// Finished.
    Done,
}

enum Frame<'c> {
    Seq {
        body: &'c [CStmt],
        pc: usize,
    },
    Loop {
        var: usize,
        next: i64,
        stop: i64,
        step: i64,
        body: &'c [CStmt],
    },
    With {
        w: &'c CWith,
        entered: Vec<BlockHandle>,
        in_body: bool,
        line: Line,
    },
}

/// One running thread.
pub(crate) struct ThreadRun<'c> {
    /// Index among the core's threads.
    pub tid: usize,
    pub role: Role,
    code: &'c CBody,
    pub locals: Vec<Value>,
    frames: Vec<Frame<'c>>,
    /// Current time in cycles.
    pub clock: f64,
    pub busy: f64,
    pub wait: f64,
    /// When this thread's DMA engine is free for the next transfer.
    pub(super) link_free: f64,
    /// Block math since the last store.
    pub(super) work: ComputeWork,
    pub state: State,
    /// Line of the statement being run.
    pub line: Line,
    /// Set by the scheduler when this thread may run its pending copy.
    pub sync_ok: bool,
}

impl<'c> ThreadRun<'c> {
    /// A thread about to run `body` with the given initial locals.
    pub fn new(tid: usize, role: Role, body: &'c CBody, mut locals: Vec<Value>) -> Self {
        locals.resize(body.locals.len(), Value::Unbound);
        ThreadRun {
            tid,
            role,
            code: body,
            locals,
            frames: vec![Frame::Seq {
                body: &body.stmts,
                pc: 0,
            }],
            clock: 0.0,
            busy: 0.0,
            wait: 0.0,
            link_free: 0.0,
            work: ComputeWork::default(),
            state: State::Ready,
            line: 0,
            sync_ok: false,
        }
    }

    /// Advances the clock to `t` (if later), counting the gap as waiting.
    pub fn wait_until(&mut self, t: f64) {
        if t > self.clock {
            self.wait += t - self.clock;
            self.clock = t;
        }
    }

    /// Advances the clock by `cycles` of own work.
    pub(super) fn spend(&mut self, cycles: f64) {
        self.busy += cycles;
        self.clock += cycles;
    }

    /// Runs one statement (or one frame transition).
    pub fn step(&mut self, core: &mut Core, sh: &mut Shared) -> Result<Outcome, Fault> {
        let Some(top) = self.frames.last_mut() else {
            self.finish(core, sh)?;
            return Ok(Outcome::Done);
        };
        match top {
            Frame::Seq { body, pc } => {
                let (body, i) = (*body, *pc);
                let Some(s) = body.get(i) else {
                    self.frames.pop();
                    return Ok(Outcome::Ran);
                };
                self.line = s.line;
                if s.sync && !self.sync_ok {
                    return Ok(Outcome::NeedSync);
                }
                if !self.exec(s, core, sh)? {
                    self.sync_ok = false;
                    return Ok(Outcome::Blocked);
                }
                self.sync_ok = false;
                Ok(Outcome::Ran)
            }
            Frame::Loop {
                var,
                next,
                stop,
                step,
                body,
            } => {
                let finished = if *step > 0 {
                    *next >= *stop
                } else {
                    *next <= *stop
                };
                if finished {
                    self.frames.pop();
                } else {
                    let (v, var, body) = (*next, *var, *body);
                    *next += *step;
                    self.locals[var] = Value::Int(v);
                    self.frames.push(Frame::Seq { body, pc: 0 });
                }
                Ok(Outcome::Ran)
            }
            Frame::With {
                w,
                entered,
                in_body,
                line,
            } => {
                self.line = *line;
                if *in_body {
                    let entered = std::mem::take(entered);
                    self.frames.pop();
                    for h in entered.iter().rev() {
                        if h.reserved {
                            self.push(h.cb, core)?;
                        } else {
                            self.pop(h.cb, core)?;
                        }
                    }
                    return Ok(Outcome::Ran);
                }
                let w: &'c CWith = w;
                let k = entered.len();
                let Some((e, slot)) = w.items.get(k) else {
                    *in_body = true;
                    self.frames.push(Frame::Seq {
                        body: &w.body,
                        pc: 0,
                    });
                    return Ok(Outcome::Ran);
                };
                match self.eval_top(e, core, sh)? {
                    None => Ok(Outcome::Blocked),
                    Some(Value::Block(h)) => {
                        if let Some(s) = slot {
                            self.locals[*s] = Value::Block(h);
                        }
                        if let Some(Frame::With { entered, .. }) = self.frames.last_mut() {
                            entered.push(h);
                        }
                        Ok(Outcome::Ran)
                    }
                    Some(v) => fault(
                        FaultKind::Type,
                        format!("a `with` item must give a block, got a {}", v.type_name()),
                    ),
                }
            }
        }
    }

    /// Checks that the thread holds no circular-buffer block, charges leftover block math, waits
    /// for copies never waited on, and marks the thread done.
    fn finish(&mut self, core: &Core, sh: &mut Shared) -> Result<(), Fault> {
        if matches!(self.role, Role::Compute | Role::DataMovement) {
            if let Some(msg) = core.cbs.iter().find_map(|cb| cb.held_at_end(self.tid)) {
                return fault(FaultKind::CircularBuffer, msg);
            }
        }
        if self.link_free > self.clock {
            self.spend(self.link_free - self.clock);
        }
        if !self.work.is_empty() {
            let c = sh.cost.pipeline_cycles(&self.work, 0);
            sh.flops += self.work.flops;
            self.work = ComputeWork::default();
            self.spend(c);
        }
        self.state = State::Done;
        Ok(())
    }

    fn advance(&mut self) {
        if let Some(Frame::Seq { pc, .. }) = self.frames.last_mut() {
            *pc += 1;
        }
    }

    /// Executes statement `s` at the top of the current statement list. Returns false when it
    /// blocked (and must be run again).
    fn exec(&mut self, s: &'c CStmt, core: &mut Core, sh: &mut Shared) -> Result<bool, Fault> {
        match &s.kind {
            CStmtKind::Assign { targets, value } => {
                let Some(v) = self.eval_top(value, core, sh)? else {
                    return Ok(false);
                };
                self.assign(targets, v, core)?;
                self.advance();
            }
            CStmtKind::Expr(e) => {
                if self.eval_top(e, core, sh)?.is_none() {
                    return Ok(false);
                }
                self.advance();
            }
            CStmtKind::With(w) => {
                self.advance();
                self.frames.push(Frame::With {
                    w,
                    entered: Vec::new(),
                    in_body: false,
                    line: s.line,
                });
            }
            CStmtKind::For {
                var,
                start,
                stop,
                step,
                body,
            } => {
                let mut int = |e: &CExpr, what: &str| -> Result<i64, Fault> {
                    let v = self.eval(e, core, sh)?;
                    v.as_int().ok_or_else(|| {
                        Fault::new(
                            FaultKind::Type,
                            format!("range {what} must be an int, got a {}", v.type_name()),
                        )
                    })
                };
                let (start, stop, step) =
                    (int(start, "start")?, int(stop, "stop")?, int(step, "step")?);
                if step == 0 {
                    return fault(FaultKind::Type, "range step must not be zero");
                }
                self.advance();
                self.frames.push(Frame::Loop {
                    var: *var,
                    next: start,
                    stop,
                    step,
                    body,
                });
            }
            CStmtKind::If { cond, then, orelse } => {
                let c = self.eval(cond, core, sh)?;
                let taken = c.truthy().ok_or_else(|| {
                    Fault::new(
                        FaultKind::Type,
                        format!(
                            "an `if` condition must be a Python scalar, got a {}",
                            c.type_name()
                        ),
                    )
                })?;
                self.advance();
                self.frames.push(Frame::Seq {
                    body: if taken { then } else { orelse },
                    pc: 0,
                });
            }
            CStmtKind::Pass => self.advance(),
        }
        Ok(true)
    }

    fn assign(&mut self, targets: &[usize], v: Value, core: &mut Core) -> Result<(), Fault> {
        if let [t] = targets {
            if let Value::Cb(i) = v {
                if let Some(cb) = core.cbs.get_mut(i).filter(|cb| cb.name.is_empty()) {
                    cb.name = self.local_name(*t);
                }
            }
            self.locals[*t] = v;
            return Ok(());
        }
        match v {
            Value::Tuple(items) if items.len() == targets.len() => {
                for (t, x) in targets.iter().zip(items.iter()) {
                    self.locals[*t] = x.clone();
                }
                Ok(())
            }
            other => fault(
                FaultKind::Type,
                format!(
                    "cannot unpack a {} into {} names",
                    other.type_name(),
                    targets.len()
                ),
            ),
        }
    }

    fn local_name(&self, slot: usize) -> String {
        self.code.locals.get(slot).cloned().unwrap_or_default()
    }
}
