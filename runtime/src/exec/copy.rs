//! `ttl.copy` for a running thread: DRAM tile slices to and from circular-buffer blocks, and
//! blocks through pipes between cores, with their shape checks and data-movement times.

use std::rc::Rc;

use super::block::Block;
use super::cb::Cb;
use super::error::{fault, Fault, FaultKind};
use super::state::{Core, PipeMsg, Shared};
use super::thread::{BlockOn, State, ThreadRun};
use super::value::{PipeEnds, TileSlice, Value};

/// A copy between `what` of `shape` tiles and a block of `cb` whose shapes differ.
fn shape_err(what: &str, shape: (usize, usize), cb: &Cb) -> Fault {
    Fault::new(
        FaultKind::Shape,
        format!(
            "`ttl.copy` of {what} of {}x{} tiles and a block of CB `{}`, which is {}x{} tiles: shapes must match",
            shape.0, shape.1, cb.name, cb.rows, cb.cols
        ),
    )
}

/// Checks that core `here` is the source (`send`) or destination end of pipe `p`.
fn pipe_end(here: (u32, u32), p: PipeEnds, send: bool) -> Result<(), Fault> {
    let (end, verb, prep, role, may) = if send {
        (p.src, "sending into", "from", "source", "send")
    } else {
        (p.dst, "receiving from", "on", "destination", "receive")
    };
    if here == end {
        return Ok(());
    }
    fault(
        FaultKind::Pipe,
        format!(
            "{verb} pipe {:?}->{:?} {prep} core {here:?}; only its {role} core may {may}",
            p.src, p.dst
        ),
    )
}

impl<'c> ThreadRun<'c> {
    /// `ttl.copy(src, dst)`; `None` when it blocked on an empty pipe.
    pub(super) fn copy(
        &mut self,
        src: Value,
        dst: Value,
        core: &mut Core,
        sh: &mut Shared,
    ) -> Result<Option<Value>, Fault> {
        let here = (core.x, core.y);
        let tile_bytes = sh.cost.device.tile_bytes as f64;
        let start = self.clock.max(self.link_free);
        match (src, dst) {
            (Value::Slice(s), Value::Block(h)) => {
                let done = self.dram_transfer(&s, &core.cbs[h.cb], true, start, sh)?;
                let data = if sh.functional {
                    sh.tensors[s.tensor].read(&s)
                } else {
                    Block::hollow(s.r1 - s.r0, s.c1 - s.c0)
                };
                core.cbs[h.cb].fill(h, Rc::new(data), done)?;
                Ok(Some(Value::Transfer { done }))
            }
            (Value::Block(h), Value::Slice(s)) => {
                let done = self.dram_transfer(&s, &core.cbs[h.cb], false, start, sh)?;
                let data = core.cbs[h.cb].data(h)?.clone();
                if sh.functional {
                    sh.tensors[s.tensor].write(&s, &data);
                }
                Ok(Some(Value::Transfer { done }))
            }
            (Value::Block(h), Value::Pipe(p)) => {
                pipe_end(here, p, true)?;
                let data = core.cbs[h.cb].data(h)?.clone();
                let bytes = data.tiles() as f64 * tile_bytes;
                let hops = p.src.0.abs_diff(p.dst.0) + p.src.1.abs_diff(p.dst.1);
                let send = sh.mcast.send(&sh.cost, (here.0, here.1, self.tid), &data, bytes, hops, start);
                let arrival = send.arrival;
                self.link_free = arrival;
                sh.pipes.entry(p).or_default().push_back(PipeMsg { data, arrival });
                sh.pipe_events.push(p);
                if send.new_bytes {
                    sh.noc_bytes += bytes as u64;
                }
                Ok(Some(Value::Transfer { done: arrival }))
            }
            (Value::Pipe(p), Value::Block(h)) => {
                pipe_end(here, p, false)?;
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
            (a, b) => fault(FaultKind::Type, format!(
                "`ttl.copy(src, dst)` copies a tensor slice into a reserved block, a block into a \
                 tensor slice, a block into a pipe or a pipe into a reserved block; got a {} and a {}",
                a.type_name(),
                b.type_name()
            )),
        }
    }

    /// Times a DRAM read (`read`) or write of tile slice `s` to or from a block of `cb`, whose
    /// shape must match, on this thread's DMA link from `start`, and counts its bytes. Returns
    /// when it completes.
    fn dram_transfer(
        &mut self,
        s: &TileSlice,
        cb: &Cb,
        read: bool,
        start: f64,
        sh: &mut Shared,
    ) -> Result<f64, Fault> {
        let shape = (s.r1 - s.r0, s.c1 - s.c0);
        if shape != (cb.rows, cb.cols) {
            return Err(shape_err("a tensor slice", shape, cb));
        }
        let bytes = (shape.0 * shape.1) as u64 * sh.cost.device.tile_bytes;
        let dm = &sh.cost.device.core_dm;
        let rate = if read {
            dm.dram_read_bytes_per_cycle
        } else {
            dm.dram_write_bytes_per_cycle
        };
        let done = sh.dram.transfer(start, bytes as f64, rate);
        self.link_free = done;
        if read {
            sh.dram_read_bytes += bytes;
        } else {
            sh.dram_write_bytes += bytes;
        }
        Ok(done)
    }
}
