//! The few device figures the planner needs, read from the runtime's device description.

use serde::Serialize;
use ttfuse_runtime::device::Device;

/// Grid and per-core limits of the target, as the planner uses them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Target name, e.g. `wormhole_b0`.
    pub name: String,
    /// Columns of cores.
    pub grid_x: u32,
    /// Rows of cores.
    pub grid_y: u32,
    /// L1 bytes per core available to circular buffers.
    pub l1_bytes: u64,
    /// Circular buffers per core.
    pub max_cbs: u32,
    /// Bytes of one bf16 tile.
    pub tile_bytes: u64,
}

impl Target {
    /// The planner's view of `device`.
    pub fn of(device: &Device) -> Target {
        Target {
            name: device.name.clone(),
            grid_x: device.grid.x,
            grid_y: device.grid.y,
            l1_bytes: device.l1.usable_bytes(),
            max_cbs: device.max_cbs_per_core,
            tile_bytes: device.tile_bytes,
        }
    }

    /// Cores in the grid.
    pub fn cores(&self) -> usize {
        (self.grid_x * self.grid_y) as usize
    }
}
