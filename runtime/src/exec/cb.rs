//! One core's circular buffer: `buffer_factor` slots of one block each, a queue of pushed
//! blocks, at most one reserved block, one producer and one consumer thread, and the times at
//! which slots were freed (for the timing model).
//!
//! Team rule beyond the guide's text: a thread that holds the front block (waited, not popped)
//! may `reserve()` the same CB when no slot is free; the reservation updates in place: its push
//! appends the new block behind the held one and the pop of the held one frees no extra slot.

use std::cell::Cell;
use std::collections::VecDeque;
use std::rc::Rc;

use super::block::Block;
use super::error::{fault, Fault, FaultKind};
use super::value::BlockHandle;
use crate::ttl::ast::Line;

/// A pushed block.
#[derive(Debug)]
struct Pushed {
    seq: u64,
    data: Rc<Block>,
    time: f64,
    line: Line,
}

/// The block being filled by the producer.
#[derive(Debug)]
struct Reserved {
    seq: u64,
    data: Rc<Block>,
    /// When the last copy into it completes.
    ready_at: f64,
    line: Line,
}

/// A circular buffer on one core.
#[derive(Debug)]
pub(crate) struct Cb {
    /// The variable it was assigned to (for messages).
    pub name: String,
    /// Block rows in tiles.
    pub rows: usize,
    /// Block columns in tiles.
    pub cols: usize,
    /// Number of blocks.
    pub factor: usize,
    /// Line of `make_circular_buffer_like`.
    pub line: Line,
    pushed: VecDeque<Pushed>,
    reserved: Option<Reserved>,
    /// Thread index (within the core) holding the front block, and the line of its `wait()`.
    held_by: Option<(usize, Line)>,
    /// Whether the held block's data has been read since its `wait()`.
    held_read: Cell<bool>,
    /// The line of the first `wait()` whose block was popped without its data read.
    released_unread: Option<Line>,
    /// Free slots, by the time each became free.
    free_at: VecDeque<f64>,
    /// In-place reservations not yet settled by a pop.
    overdraft: usize,
    producer: Option<usize>,
    consumer: Option<usize>,
    next_seq: u64,
}

/// What a blocked operation is waiting for or what a finished one returns.
pub(crate) enum Attempt {
    /// Granted: the block's sequence number and the time before which it cannot be used.
    Ready(u64, f64),
    /// Must wait.
    Blocked,
}

impl Cb {
    /// A new empty CB.
    pub fn new(name: String, rows: usize, cols: usize, factor: usize, line: Line) -> Self {
        Cb {
            name,
            rows,
            cols,
            factor,
            line,
            pushed: VecDeque::new(),
            reserved: None,
            held_by: None,
            held_read: Cell::new(false),
            released_unread: None,
            free_at: std::iter::repeat_n(0.0, factor).collect(),
            overdraft: 0,
            producer: None,
            consumer: None,
            next_seq: 0,
        }
    }

    /// Bytes of L1 this CB takes at `tile_bytes` per tile.
    pub fn bytes(&self, tile_bytes: u64) -> u64 {
        (self.rows * self.cols * self.factor) as u64 * tile_bytes
    }

    fn role(
        slot: &mut Option<usize>,
        tid: usize,
        what: &str,
        name: &str,
        names: &[String],
    ) -> Result<(), Fault> {
        match *slot {
            Some(t) if t != tid => fault(
                FaultKind::CircularBuffer,
                format!(
                    "CB `{name}` is already {what} by thread `{}`; a circular buffer has one {} thread per core",
                    names.get(t).map(String::as_str).unwrap_or("?"),
                    if what == "produced" { "producer" } else { "consumer" }
                ),
            ),
            _ => {
                *slot = Some(tid);
                Ok(())
            }
        }
    }

    /// `cb.wait()` by thread `tid` at `line`.
    pub fn wait(&mut self, tid: usize, line: Line, names: &[String]) -> Result<Attempt, Fault> {
        Self::role(&mut self.consumer, tid, "consumed", &self.name, names)?;
        if self.held_by.is_some() {
            return fault(
                FaultKind::CircularBuffer,
                format!(
                    "`{}.wait()` while this thread still holds the front block; pop it first",
                    self.name
                ),
            );
        }
        match self.pushed.front() {
            Some(b) => {
                self.held_by = Some((tid, line));
                self.held_read.set(false);
                Ok(Attempt::Ready(b.seq, b.time))
            }
            None => Ok(Attempt::Blocked),
        }
    }

    /// `cb.reserve()` by thread `tid`; the reserved block is hollow (shape only) when `hollow`.
    pub fn reserve(
        &mut self,
        tid: usize,
        line: Line,
        names: &[String],
        hollow: bool,
    ) -> Result<Attempt, Fault> {
        Self::role(&mut self.producer, tid, "produced", &self.name, names)?;
        if let Some(r) = &self.reserved {
            return fault(
                FaultKind::CircularBuffer,
                format!(
                    "`{}.reserve()` while the block reserved at line {} is not pushed yet; push it first",
                    self.name, r.line
                ),
            );
        }
        let time = match self.free_at.pop_front() {
            Some(t) => t,
            None if self.held_by.is_some_and(|(t, _)| t == tid) => {
                self.overdraft += 1;
                0.0
            }
            None => return Ok(Attempt::Blocked),
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.reserved = Some(Reserved {
            seq,
            data: Rc::new(if hollow {
                Block::hollow(self.rows, self.cols)
            } else {
                Block::zeros(self.rows, self.cols)
            }),
            ready_at: 0.0,
            line,
        });
        Ok(Attempt::Ready(seq, time))
    }

    /// `cb.push()` at time `now`; returns the push time.
    pub fn push(&mut self, tid: usize, now: f64, line: Line) -> Result<f64, Fault> {
        if self.producer != Some(tid) || self.reserved.is_none() {
            return fault(
                FaultKind::CircularBuffer,
                format!(
                    "`{}.push()` without a reserved block; call reserve() first",
                    self.name
                ),
            );
        }
        let Some(r) = self.reserved.take() else {
            return fault(FaultKind::CircularBuffer, "push without reserve");
        };
        let time = now.max(r.ready_at);
        self.pushed.push_back(Pushed {
            seq: r.seq,
            data: r.data,
            time,
            line,
        });
        Ok(time)
    }

    /// `cb.pop()` at time `now`.
    pub fn pop(&mut self, tid: usize, now: f64) -> Result<(), Fault> {
        if self.held_by.is_none_or(|(t, _)| t != tid) {
            return fault(
                FaultKind::CircularBuffer,
                format!(
                    "`{}.pop()` without a waited block; call wait() first",
                    self.name
                ),
            );
        }
        if let Some((_, line)) = self.held_by.filter(|_| !self.held_read.get()) {
            self.released_unread.get_or_insert(line);
        }
        self.pushed.pop_front();
        self.held_by = None;
        if self.overdraft > 0 {
            self.overdraft -= 1;
        } else {
            self.free_at.push_back(now);
        }
        Ok(())
    }

    /// The data of the block `h` refers to.
    pub fn data(&self, h: BlockHandle) -> Result<&Rc<Block>, Fault> {
        if h.reserved {
            match &self.reserved {
                Some(r) if r.seq == h.seq => Ok(&r.data),
                _ => fault(
                    FaultKind::CircularBuffer,
                    format!("a block of CB `{}` is used after it was pushed", self.name),
                ),
            }
        } else {
            match self.pushed.front() {
                Some(b) if b.seq == h.seq && self.held_by.is_some() => {
                    self.held_read.set(true);
                    Ok(&b.data)
                }
                _ => fault(
                    FaultKind::CircularBuffer,
                    format!("a block of CB `{}` is used after it was popped", self.name),
                ),
            }
        }
    }

    /// Replaces the contents of reserved block `h`; `ready_at` is when the data arrives.
    pub fn fill(&mut self, h: BlockHandle, data: Rc<Block>, ready_at: f64) -> Result<(), Fault> {
        let name = &self.name;
        match &mut self.reserved {
            Some(r) if h.reserved && r.seq == h.seq => {
                r.data = data;
                r.ready_at = r.ready_at.max(ready_at);
                Ok(())
            }
            _ if !h.reserved => fault(
                FaultKind::CircularBuffer,
                format!(
                    "cannot write into a waited block of CB `{name}`; write into a reserved block"
                ),
            ),
            _ => fault(
                FaultKind::CircularBuffer,
                format!("a block of CB `{name}` is written after it was pushed"),
            ),
        }
    }

    /// Why thread `tid` may not end yet: it holds a block of this CB that it reserved and never
    /// pushed, or waited for and never popped. Either is an error: the block's slot stays taken
    /// and its partner thread would wait for it forever.
    pub fn held_at_end(&self, tid: usize) -> Option<String> {
        if let Some(r) = self
            .reserved
            .as_ref()
            .filter(|_| self.producer == Some(tid))
        {
            return Some(format!(
                "the thread ends holding a block of CB `{}` (line {}) reserved at line {} that was never pushed; push it, or use `with {}.reserve() as blk:`",
                self.name, self.line, r.line, self.name
            ));
        }
        let (_, line) = self.held_by.filter(|(t, _)| *t == tid)?;
        Some(format!(
            "the thread ends holding a block of CB `{}` (line {}) waited for at line {} that was never popped; pop it, or use `with {}.wait() as blk:`",
            self.name, self.line, line, self.name
        ))
    }

    /// What is left in the CB at kernel end, if anything: blocks pushed that no thread waited
    /// for. The kernel still finishes (a warning, not an error): the producer was never blocked
    /// by them, and the guide's own `gather_kernel` leaves such blocks on its coordinator.
    /// Reserved and held blocks are caught earlier, by [`Cb::held_at_end`].
    pub fn unconsumed(&self) -> Option<String> {
        let last = self.pushed.back()?;
        Some(format!(
            "CB `{}` (line {}) ends the kernel with {} block(s) pushed but never consumed (last pushed at line {}); every push normally has a matching wait and pop",
            self.name,
            self.line,
            self.pushed.len(),
            last.line
        ))
    }

    /// Whether a waited block was released unread, if one was: a `wait()` whose block no
    /// expression read before its pop. The kernel still finishes (a warning): the block was
    /// consumed, and on the chip nothing is lost but the wait; tt-lang's simulator, though,
    /// rejects a compute thread that pops a block no `store()` read.
    pub fn released_unread(&self) -> Option<String> {
        let line = self.released_unread?;
        Some(format!(
            "CB `{}` (line {}): a block waited for at line {} was popped without being read; wait only for blocks the thread reads",
            self.name, self.line, line
        ))
    }

    /// Why a thread blocked on this CB is waiting.
    pub fn blocked_reason(&self, reserve: bool) -> String {
        if reserve {
            format!(
                "a free slot in CB `{}` (line {}, buffer_factor={}: {} block(s) pushed and not popped{})",
                self.name,
                self.line,
                self.factor,
                self.pushed.len(),
                if self.reserved.is_some() { ", one reserved" } else { "" }
            )
        } else {
            format!(
                "a pushed block in CB `{}` (line {}): none is pushed",
                self.name, self.line
            )
        }
    }
}
