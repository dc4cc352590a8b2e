//! The machine state one kernel run works on: per-core state (kernel-level variables, circular
//! buffers) and chip-wide state (DRAM tensors, pipes, the DRAM channel, counters).

use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use super::block::{Block, TILE_ELEMS};
use super::cb::Cb;
use super::value::{PipeEnds, TileSlice, Value};
use crate::tensor::TILE;
use crate::timing::{CostModel, DramChannel, Multicast};

/// A kernel argument while the kernel runs: f32 values that are always bf16-exact.
#[derive(Clone, Debug)]
pub(crate) struct DramTensor {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl DramTensor {
    /// Reads tile slice `s` into a block.
    pub fn read(&self, s: &TileSlice) -> Block {
        let (rows, cols) = (s.r1 - s.r0, s.c1 - s.c0);
        let mut b = Block {
            rows,
            cols,
            data: Vec::with_capacity(rows * cols * TILE_ELEMS),
        };
        let w = cols * TILE;
        for r in s.r0 * TILE..s.r1 * TILE {
            let start = r * self.cols + s.c0 * TILE;
            b.data.extend_from_slice(&self.data[start..start + w]);
        }
        b
    }

    /// Writes block `b` (already validated to match `s`) into tile slice `s`, rounding to bf16.
    pub fn write(&mut self, s: &TileSlice, b: &Block) {
        let w = b.width();
        for (i, r) in (s.r0 * TILE..s.r1 * TILE).enumerate() {
            let start = r * self.cols + s.c0 * TILE;
            for (d, v) in self.data[start..start + w]
                .iter_mut()
                .zip(&b.data[i * w..(i + 1) * w])
            {
                *d = super::block::round_bf16(*v);
            }
        }
    }
}

/// Something that may unblock a waiting thread.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wake {
    /// A push (`push` true) or pop on CB `cb` of the core at `time`.
    Cb { cb: usize, time: f64, push: bool },
}

/// A block in flight through a pipe.
#[derive(Debug)]
pub(crate) struct PipeMsg {
    pub data: Rc<Block>,
    pub arrival: f64,
}

/// One core's state.
#[derive(Debug)]
pub(crate) struct Core {
    pub x: u32,
    pub y: u32,
    /// Kernel parameters and setup variables, by slot.
    pub vars: Vec<Value>,
    pub cbs: Vec<Cb>,
    /// CB events since the scheduler last looked.
    pub events: Vec<Wake>,
}

/// Chip-wide state.
pub(crate) struct Shared<'a> {
    pub module: &'a [Value],
    /// Whether blocks carry elements (the functional pass) or only shapes (the timing pass,
    /// whose DRAM tensors hold no elements and whose copies move none).
    pub functional: bool,
    pub tensors: Vec<DramTensor>,
    pub pipes: BTreeMap<PipeEnds, VecDeque<PipeMsg>>,
    /// Pipes that received a block since the scheduler last looked.
    pub pipe_events: Vec<PipeEnds>,
    pub dram: DramChannel,
    /// Pipe sends of one block to several cores, timed as multicasts.
    pub mcast: Multicast<Block>,
    pub cost: CostModel<'a>,
    pub grid: (u32, u32),
    /// Thread function names by index within a core (for messages).
    pub thread_names: Vec<String>,
    pub dram_read_bytes: u64,
    pub dram_write_bytes: u64,
    pub noc_bytes: u64,
    pub flops: f64,
}
