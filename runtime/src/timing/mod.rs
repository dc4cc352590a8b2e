//! The timing model (v1). Each thread keeps its own clock in cycles; the executor advances it by
//! the costs computed here and synchronizes clocks through circular buffers (a consumer cannot
//! use a block before its push time, a producer cannot reuse a slot before its pop time).
//!
//! - Compute: a store (or any finished chain of block math) flows its tiles through the three
//!   Tensix compute stages, unpack, math (FPU or SFPU) and pack, which overlap as a pipeline:
//!   for `T` output tiles with per-tile stage costs `u`, `m`,
//!   `p`, plus a fixed per-block overhead `o` (the handshakes between the three compute threads,
//!   fitted to a measured single-core add): `o + u + m + p + (T - 1) * max(u, m, p)`. One tile
//!   therefore costs the overhead plus unpack + math + pack.
//! - DRAM: a copy costs its bytes at the core's measured DRAM rate, and also passes through one
//!   chip-wide DRAM channel at the measured aggregate bandwidth, so many cores together cannot
//!   exceed it ([`DramChannel`]).
//! - Pipes: bytes at the core-to-core rate plus the hop latency along the Manhattan route.
//!   Sending the same block into several pipes back to back is one multicast ([`Multicast`]).
//! - A launch adds its dispatch overhead (traced or eager).
//! - [`report::Roofline`] compares a kernel's modeled time with its DRAM and compute bounds.

pub mod report;

use std::collections::BTreeMap;
use std::rc::Rc;

use crate::device::Device;

/// Work accumulated by block math since the last store: what the three compute stages do.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ComputeWork {
    /// Tiles the unpacker moves from L1 into source registers.
    pub unpack_tiles: f64,
    /// FPU and SFPU cycles.
    pub math_cycles: f64,
    /// Floating-point operations (2 per multiply-add in matmul, 1 per element otherwise).
    pub flops: f64,
}

impl ComputeWork {
    /// Whether nothing has been accumulated.
    pub fn is_empty(&self) -> bool {
        self.unpack_tiles == 0.0 && self.math_cycles == 0.0
    }
}

/// Per-op costs read from a [`Device`].
#[derive(Clone, Copy, Debug)]
pub struct CostModel<'d> {
    /// The target.
    pub device: &'d Device,
    /// Whether costs are computed; an untimed model charges nothing (every cost is zero), so a
    /// run measures the executor's functional work alone.
    pub timed: bool,
}

impl<'d> CostModel<'d> {
    /// The cost model of `device`.
    pub fn new(device: &'d Device) -> Self {
        CostModel {
            device,
            timed: true,
        }
    }

    /// A model of `device` that charges nothing (for measuring the timing model's overhead).
    pub fn untimed(device: &'d Device) -> Self {
        CostModel {
            device,
            timed: false,
        }
    }

    /// Cycles of the unpack/math/pack pipeline producing `out_tiles` tiles from `work`
    /// (`out_tiles == 0`: math left over when a thread ends, with nothing packed and no block
    /// overhead).
    pub fn pipeline_cycles(&self, work: &ComputeWork, out_tiles: usize) -> f64 {
        if !self.timed {
            return 0.0;
        }
        let c = &self.device.compute;
        let t = out_tiles.max(1) as f64;
        let u = work.unpack_tiles * c.unpack_cycles_per_tile / t;
        let m = work.math_cycles / t;
        let (p, o) = if out_tiles == 0 {
            (0.0, 0.0)
        } else {
            (c.pack_cycles_per_tile, c.block_overhead_cycles)
        };
        o + u + m + p + (t - 1.0) * u.max(m).max(p)
    }

    /// Math cycles of an elementwise binary op (`add`, `sub`, `mul`, `division`, `max`, `min`)
    /// on `tiles` tiles. Add, sub and mul run on the FPU (mul at the device's fidelity); the
    /// others on the SFPU. Returns `None` for an op the device does not cost.
    pub fn binary_cycles(&self, op: &str, tiles: usize) -> Option<f64> {
        let c = &self.device.compute;
        let per = match op {
            "add" | "sub" => c.add_cycles_per_tile,
            "mul" => c.mul_cycles_per_tile.at(c.fidelity),
            other => self.device.sfpu(other)?,
        };
        Some(if self.timed { per * tiles as f64 } else { 0.0 })
    }

    /// Math cycles of SFPU function `f` on `tiles` tiles.
    pub fn sfpu_cycles(&self, f: &str, tiles: usize) -> Option<f64> {
        let timed = self.timed;
        self.device
            .sfpu(f)
            .map(|per| if timed { per * tiles as f64 } else { 0.0 })
    }

    /// Math cycles of an `m x k` by `k x n` tile matmul at the device's fidelity.
    pub fn matmul_cycles(&self, m: usize, k: usize, n: usize) -> f64 {
        if !self.timed {
            return 0.0;
        }
        let c = &self.device.compute;
        c.matmul_cycles_per_tile.at(c.fidelity) * (m * k * n) as f64
    }

    /// Tiles the unpacker moves for an `m x k` by `k x n` tile matmul.
    pub fn matmul_unpack_tiles(&self, m: usize, k: usize, n: usize) -> f64 {
        if !self.timed {
            return 0.0;
        }
        self.device.compute.matmul_unpack_tiles_per_tile * (m * k * n) as f64
    }

    /// Math cycles of reducing `tiles` input tiles (sum scales with fidelity, max does not).
    pub fn reduce_cycles(&self, sum: bool, tiles: usize) -> f64 {
        if !self.timed {
            return 0.0;
        }
        let c = &self.device.compute;
        let per = if sum {
            c.reduce_sum_cycles_per_tile_per_phase * c.fidelity.phases() as f64
        } else {
            c.reduce_max_cycles_per_tile
        };
        per * tiles as f64
    }

    /// Math cycles of moving `tiles` tiles through the FPU unchanged.
    pub fn datacopy_cycles(&self, tiles: usize) -> f64 {
        if !self.timed {
            return 0.0;
        }
        self.device.compute.datacopy_cycles_per_tile * tiles as f64
    }

    /// Math cycles of transposing `tiles` tiles.
    pub fn transpose_cycles(&self, tiles: usize) -> f64 {
        if !self.timed {
            return 0.0;
        }
        self.device.compute.transpose_cycles_per_tile * tiles as f64
    }

    /// Cycles for `bytes` to travel a pipe over `hops` router hops.
    pub fn pipe_cycles(&self, bytes: f64, hops: u32) -> f64 {
        if !self.timed {
            return 0.0;
        }
        bytes / self.device.core_dm.core_to_core_bytes_per_cycle
            + hops as f64 * self.device.noc.hop_cycles
    }
}

/// The chip's DRAM as one shared channel at the measured aggregate bandwidth. Requests must be
/// presented in non-decreasing start time (the executor's scheduler guarantees it); each takes
/// `bytes / aggregate` cycles of the channel after the channel is free.
#[derive(Clone, Debug)]
pub struct DramChannel {
    bytes_per_cycle: f64,
    free_at: f64,
    timed: bool,
}

impl DramChannel {
    /// A channel of `bytes_per_cycle` aggregate bandwidth, free at cycle 0.
    pub fn new(bytes_per_cycle: f64) -> Self {
        DramChannel {
            bytes_per_cycle,
            free_at: 0.0,
            timed: true,
        }
    }

    /// A channel that charges nothing: every transfer completes when it starts.
    pub fn untimed() -> Self {
        DramChannel {
            bytes_per_cycle: f64::INFINITY,
            free_at: 0.0,
            timed: false,
        }
    }

    /// A transfer of `bytes` that a core can move at `core_bytes_per_cycle`, starting at
    /// `start`: returns its completion time, the later of the core's own time and the
    /// channel's.
    pub fn transfer(&mut self, start: f64, bytes: f64, core_bytes_per_cycle: f64) -> f64 {
        if !self.timed {
            return start;
        }
        let core_done = start + bytes / core_bytes_per_cycle;
        let ch_start = self.free_at.max(start);
        self.free_at = ch_start + bytes / self.bytes_per_cycle;
        core_done.max(self.free_at)
    }
}

/// Pipe sends seen as NoC multicasts. On the chip one multicast write delivers a block to a row
/// or column of cores, paying its bytes once at the measured multicast rate; TT-Lang spells it
/// as the same block sent into one pipe per destination. So a send of the very block (the same
/// data, not an equal copy) that the thread sent last continues that multicast: it arrives at the
/// multicast's start plus its bytes at the multicast rate plus its own hop latency, and moves no
/// new bytes over the NoC. Any other send is a unicast at the core-to-core rate.
#[derive(Debug)]
pub struct Multicast<T> {
    /// Per sending thread (core x, core y, thread index): the block it sent last and when
    /// that send started.
    last: BTreeMap<(u32, u32, usize), (Rc<T>, f64)>,
}

impl<T> Default for Multicast<T> {
    fn default() -> Self {
        Multicast {
            last: BTreeMap::new(),
        }
    }
}

/// The timing of one pipe send.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Send {
    /// When the block is in the destination's buffer.
    pub arrival: f64,
    /// Whether the send put new bytes on the NoC (false for a multicast's later destinations).
    pub new_bytes: bool,
}

impl<T> Multicast<T> {
    /// Times a send of `data` (`bytes` long) from thread `src` (core x, core y, thread index)
    /// over `hops` hops starting at `start`.
    pub fn send(
        &mut self,
        cost: &CostModel,
        src: (u32, u32, usize),
        data: &Rc<T>,
        bytes: f64,
        hops: u32,
        start: f64,
    ) -> Send {
        if !cost.timed {
            return Send {
                arrival: start,
                new_bytes: true,
            };
        }
        let hop = hops as f64 * cost.device.noc.hop_cycles;
        if let Some((last, began)) = self.last.get(&src) {
            if Rc::ptr_eq(last, data) {
                let arrival = (began + bytes / cost.device.core_dm.multicast_bytes_per_cycle)
                    .max(start)
                    + hop;
                return Send {
                    arrival,
                    new_bytes: false,
                };
            }
        }
        self.last.insert(src, (Rc::clone(data), start));
        Send {
            arrival: start + cost.pipe_cycles(bytes, hops),
            new_bytes: true,
        }
    }
}
