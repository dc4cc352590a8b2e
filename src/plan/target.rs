//! The few device figures the planner needs, read from the runtime's device description.

use std::collections::BTreeMap;

use serde::Serialize;
use ttfuse_runtime::device::Device;

/// Grid and per-core limits of the target, and the figures of its timing model that the
/// planner's estimates use ([`super::estimate`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Target {
    /// Target name, e.g. `wormhole_b0`.
    pub name: String,
    /// Columns of cores.
    pub grid_x: u32,
    /// Rows of cores.
    pub grid_y: u32,
    /// Whether this is the device's grid with its axes swapped ([`Target::swapped`]):
    /// kernels planned on it lie across the device ([`super::Partition::across`]).
    #[serde(skip)]
    pub across: bool,
    /// L1 bytes per core available to circular buffers.
    pub l1_bytes: u64,
    /// Circular buffers per core.
    pub max_cbs: u32,
    /// Bytes of one bf16 tile.
    pub tile_bytes: u64,
    /// The timing-model figures the planner's estimates use.
    #[serde(skip)]
    pub costs: Costs,
}

impl Target {
    /// The planner's view of `device`.
    pub fn of(device: &Device) -> Target {
        Target {
            name: device.name.clone(),
            grid_x: device.grid.x,
            grid_y: device.grid.y,
            across: false,
            l1_bytes: device.l1.usable_bytes(),
            max_cbs: device.max_cbs_per_core,
            tile_bytes: device.tile_bytes,
            costs: Costs::of(device),
        }
    }

    /// Cores in the grid.
    pub fn cores(&self) -> usize {
        (self.grid_x * self.grid_y) as usize
    }

    /// The target with its grid's axes swapped, for a kernel laid out with its grid rows
    /// along the device's grid columns ([`super::Partition::across`]); `None` for a square
    /// grid, which that changes nothing on.
    pub fn swapped(&self) -> Option<Target> {
        (self.grid_x != self.grid_y).then(|| Target {
            grid_x: self.grid_y,
            grid_y: self.grid_x,
            across: !self.across,
            ..self.clone()
        })
    }
}

/// Figures of the runtime's timing model (the device file), in cycles, for
/// [`super::estimate`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Costs {
    /// Dispatching one kernel (traced).
    pub dispatch: f64,
    /// Chip DRAM bandwidth, bytes per cycle.
    pub dram_bytes_per_cycle: f64,
    /// One core's DRAM read rate, bytes per cycle.
    pub core_read_bytes_per_cycle: f64,
    /// One core's DRAM write rate, bytes per cycle.
    pub core_write_bytes_per_cycle: f64,
    /// One core's multicast rate over the NoC, bytes per cycle.
    pub multicast_bytes_per_cycle: f64,
    /// Unpacking one tile.
    pub unpack: f64,
    /// Packing one tile.
    pub pack: f64,
    /// The pipeline's overhead per computed block.
    pub block_overhead: f64,
    /// A 32x32x32 tile matmul at the device's fidelity.
    pub matmul_tile: f64,
    /// Tiles unpacked per tile matmul.
    pub matmul_unpack_tiles: f64,
    /// An elementwise add or subtract of one tile.
    pub add: f64,
    /// An elementwise multiply of one tile at the device's fidelity.
    pub mul: f64,
    /// A row reduction of one tile.
    pub reduce: f64,
    /// A transpose of one tile.
    pub transpose: f64,
    /// SFPU functions by name (`exp`, `division`, ...), per tile.
    pub sfpu: BTreeMap<String, f64>,
}

impl Costs {
    /// The figures of `device`.
    pub fn of(device: &Device) -> Costs {
        let c = &device.compute;
        Costs {
            dispatch: device.dispatch.traced_us * device.clock_ghz * 1000.0,
            dram_bytes_per_cycle: device.dram_bytes_per_cycle(),
            core_read_bytes_per_cycle: device.core_dm.dram_read_bytes_per_cycle,
            core_write_bytes_per_cycle: device.core_dm.dram_write_bytes_per_cycle,
            multicast_bytes_per_cycle: device.core_dm.multicast_bytes_per_cycle,
            unpack: c.unpack_cycles_per_tile,
            pack: c.pack_cycles_per_tile,
            block_overhead: c.block_overhead_cycles,
            matmul_tile: c.matmul_cycles_per_tile.at(c.fidelity),
            matmul_unpack_tiles: c.matmul_unpack_tiles_per_tile,
            add: c.add_cycles_per_tile,
            mul: c.mul_cycles_per_tile.at(c.fidelity),
            reduce: c.reduce_sum_cycles_per_tile_per_phase * f64::from(c.fidelity.phases()),
            transpose: c.transpose_cycles_per_tile,
            sfpu: device.sfpu_cycles_per_tile.clone(),
        }
    }

    /// SFPU cycles of function `f` per tile (an add's when the device does not list it).
    pub fn sfpu(&self, f: &str) -> f64 {
        self.sfpu.get(f).copied().unwrap_or(self.add)
    }
}
