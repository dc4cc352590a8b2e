//! Device targets: the figures of one Tenstorrent chip (grid, clock, L1, DRAM and NoC bandwidth,
//! per-op cycle costs, dispatch overhead) that the executor and the timing model read.
//!
//! Every figure lives in a JSON data file under `runtime/devices/`, one per target, written as
//! `{"value": ..., "source": "..."}` so that each number names where it comes from
//! (`shared/reference/tensix-facts.md` and the sources it cites). [`Device::load`] strips the
//! sources into [`Device::sources`] and deserializes the values into typed fields.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The embedded data files, by target name.
const TARGETS: &[(&str, &str)] = &[
    ("blackhole", include_str!("../../devices/blackhole.json")),
    (
        "wormhole_b0",
        include_str!("../../devices/wormhole_b0.json"),
    ),
];

/// Why a device could not be loaded.
#[derive(Debug, Error)]
pub enum DeviceError {
    /// No data file has this name.
    #[error("unknown device target `{name}`; the targets are: {}", .known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names that exist.
        known: Vec<String>,
    },
    /// The data file is malformed (a figure without a source, a missing field, a bad type).
    #[error("device data file `{target}.json` is invalid: {reason}")]
    Invalid {
        /// The target whose file failed.
        target: String,
        /// What is wrong, naming the figure.
        reason: String,
    },
}

/// A core grid: `x` columns by `y` rows of Tensix cores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grid {
    /// Columns of cores.
    pub x: u32,
    /// Rows of cores.
    pub y: u32,
}

/// Per-core L1 SRAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct L1 {
    /// Bytes of L1 per core.
    pub total_bytes: u64,
    /// Bytes reserved by firmware (not available to circular buffers).
    pub reserved_bytes: u64,
}

impl L1 {
    /// Bytes available to circular buffers.
    pub fn usable_bytes(&self) -> u64 {
        self.total_bytes.saturating_sub(self.reserved_bytes)
    }
}

/// The chip's DRAM.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dram {
    /// Number of DRAM banks.
    pub banks: u32,
    /// Bytes per bank.
    pub bank_bytes: u64,
    /// Specified aggregate bandwidth in GB/s.
    pub spec_gbps: f64,
    /// Measured aggregate bandwidth in GB/s (what the timing model uses).
    pub measured_gbps: f64,
}

/// The network on chip.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Noc {
    /// Number of NoCs.
    pub count: u32,
    /// Bytes per cycle per link.
    pub link_bytes_per_cycle: f64,
    /// Latency per router hop in cycles.
    pub hop_cycles: f64,
    /// Largest packet in bytes.
    pub max_packet_bytes: u64,
}

/// Measured per-core data-movement rates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CoreDataMovement {
    /// DRAM read bytes per cycle achieved by one core.
    pub dram_read_bytes_per_cycle: f64,
    /// DRAM write bytes per cycle achieved by one core.
    pub dram_write_bytes_per_cycle: f64,
    /// Core-to-core (pipe) bytes per cycle.
    pub core_to_core_bytes_per_cycle: f64,
    /// Multicast bytes per cycle.
    pub multicast_bytes_per_cycle: f64,
}

/// Math fidelity: how many phases the FPU multiplies in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fidelity {
    /// One phase.
    LoFi,
    /// Two phases.
    HiFi2,
    /// Three phases.
    HiFi3,
    /// Four phases (full bf16 precision).
    HiFi4,
}

impl Fidelity {
    /// The number of multiply phases.
    pub fn phases(self) -> u32 {
        match self {
            Fidelity::LoFi => 1,
            Fidelity::HiFi2 => 2,
            Fidelity::HiFi3 => 3,
            Fidelity::HiFi4 => 4,
        }
    }
}

/// A cost that depends on the math fidelity, in cycles per tile.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ByFidelity {
    /// At LoFi.
    pub lofi: f64,
    /// At HiFi2.
    pub hifi2: f64,
    /// At HiFi3.
    pub hifi3: f64,
    /// At HiFi4.
    pub hifi4: f64,
}

impl ByFidelity {
    /// The cost at fidelity `f`.
    pub fn at(&self, f: Fidelity) -> f64 {
        match f {
            Fidelity::LoFi => self.lofi,
            Fidelity::HiFi2 => self.hifi2,
            Fidelity::HiFi3 => self.hifi3,
            Fidelity::HiFi4 => self.hifi4,
        }
    }
}

/// FPU, unpacker and packer costs per 32x32 tile.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Compute {
    /// Unpacking one bf16 tile from L1 into the source registers.
    pub unpack_cycles_per_tile: f64,
    /// Packing one tile from Dst into L1.
    pub pack_cycles_per_tile: f64,
    /// The fidelity used for bf16 math unless told otherwise.
    pub fidelity: Fidelity,
    /// One 32x32x32 tile matmul.
    pub matmul_cycles_per_tile: ByFidelity,
    /// Elementwise add or subtract of one tile.
    pub add_cycles_per_tile: f64,
    /// Elementwise multiply of one tile.
    pub mul_cycles_per_tile: ByFidelity,
    /// Moving one tile through the FPU unchanged (stores of a plain block, broadcast).
    pub datacopy_cycles_per_tile: f64,
    /// Transposing one tile.
    pub transpose_cycles_per_tile: f64,
    /// Sum-reducing one input tile, per fidelity phase.
    pub reduce_sum_cycles_per_tile_per_phase: f64,
    /// Max-reducing one input tile.
    pub reduce_max_cycles_per_tile: f64,
    /// Tiles unpacked per 32x32x32 tile matmul: 2 without reuse, fewer when the unpacked
    /// operands are reused across a sub-block of the output.
    pub matmul_unpack_tiles_per_tile: f64,
    /// Fixed cost of one pass of the unpack/math/pack pipeline (one block stored): the
    /// circular-buffer and Dst-register handshakes between the three compute threads.
    pub block_overhead_cycles: f64,
}

/// Launch overhead per kernel (or per TTNN op).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DispatchCosts {
    /// Device-side op-to-op gap with a captured trace, in microseconds.
    pub traced_us: f64,
    /// Host-bound dispatch without a trace, in microseconds.
    pub eager_us: f64,
}

impl DispatchCosts {
    /// A launch's dispatch overhead in microseconds, `traced` or eager.
    pub fn us(&self, traced: bool) -> f64 {
        if traced {
            self.traced_us
        } else {
            self.eager_us
        }
    }
}

/// One target chip, as loaded from its data file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Target name, e.g. `wormhole_b0`.
    pub name: String,
    /// Card name, e.g. `n150`.
    pub card: String,
    /// Usable compute grid.
    pub grid: Grid,
    /// AI clock in GHz (cycles per nanosecond).
    pub clock_ghz: f64,
    /// L1 per core.
    pub l1: L1,
    /// Circular buffers a core can hold.
    pub max_cbs_per_core: u32,
    /// Bytes per bf16 tile.
    pub tile_bytes: u64,
    /// DRAM.
    pub dram: Dram,
    /// NoC.
    pub noc: Noc,
    /// Per-core data movement rates.
    pub core_dm: CoreDataMovement,
    /// FPU, unpack and pack costs.
    pub compute: Compute,
    /// SFPU cycles per tile by function name (`exp`, `sqrt`, `division`, `max`, ...).
    pub sfpu_cycles_per_tile: BTreeMap<String, f64>,
    /// Dispatch overhead.
    pub dispatch: DispatchCosts,
    /// The source of every figure, keyed by its dotted path (e.g. `dram.measured_gbps`).
    #[serde(skip)]
    pub sources: BTreeMap<String, String>,
}

impl Device {
    /// The names of the known targets, sorted.
    pub fn names() -> Vec<&'static str> {
        TARGETS.iter().map(|(n, _)| *n).collect()
    }

    /// Loads target `name` from its embedded data file.
    pub fn load(name: &str) -> Result<Device, DeviceError> {
        let text = TARGETS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| DeviceError::Unknown {
                name: name.to_string(),
                known: Self::names().iter().map(|s| s.to_string()).collect(),
            })?;
        Self::from_json(name, text)
    }

    /// Parses a device data file (every leaf a `{"value", "source"}` pair).
    pub fn from_json(target: &str, text: &str) -> Result<Device, DeviceError> {
        let invalid = |reason: String| DeviceError::Invalid {
            target: target.to_string(),
            reason,
        };
        let raw: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let mut sources = BTreeMap::new();
        let values = strip_sources(&raw, "", &mut sources).map_err(invalid)?;
        let mut device: Device =
            serde_json::from_value(values).map_err(|e| invalid(e.to_string()))?;
        device.sources = sources;
        Ok(device)
    }

    /// The SFPU cost of function `f` in cycles per tile, if the target lists it.
    pub fn sfpu(&self, f: &str) -> Option<f64> {
        self.sfpu_cycles_per_tile.get(f).copied()
    }

    /// The chip's measured aggregate DRAM bandwidth in bytes per cycle.
    pub fn dram_bytes_per_cycle(&self) -> f64 {
        self.dram.measured_gbps / self.clock_ghz
    }

    /// Peak matmul FLOPs per cycle of one core at fidelity `f`: a 32x32x32 tile matmul is
    /// 2 x 32^3 FLOPs in `matmul_cycles_per_tile` cycles.
    pub fn core_peak_flops_per_cycle(&self, f: Fidelity) -> f64 {
        2.0 * 32f64.powi(3) / self.compute.matmul_cycles_per_tile.at(f)
    }

    /// Peak matmul FLOPs per cycle of the whole compute grid at the target's fidelity.
    pub fn grid_peak_flops_per_cycle(&self) -> f64 {
        self.core_peak_flops_per_cycle(self.compute.fidelity) * f64::from(self.grid.x * self.grid.y)
    }

    /// Converts cycles to microseconds at this target's clock.
    pub fn cycles_to_us(&self, cycles: f64) -> f64 {
        cycles / (self.clock_ghz * 1000.0)
    }
}

/// Replaces every `{"value": v, "source": s}` leaf by `v`, recording `s` under its dotted path.
/// Any other leaf (a number, string or array outside such a pair) is an error: every figure must
/// cite its source.
fn strip_sources(
    v: &serde_json::Value,
    path: &str,
    sources: &mut BTreeMap<String, String>,
) -> Result<serde_json::Value, String> {
    let obj = v.as_object().ok_or_else(|| {
        format!("figure `{path}` is not a {{\"value\", \"source\"}} object; every figure needs a source")
    })?;
    if obj.contains_key("value") {
        let source = obj
            .get("source")
            .and_then(|s| s.as_str())
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| format!("figure `{path}` has no \"source\" string"))?;
        sources.insert(path.to_string(), source.to_string());
        return Ok(obj["value"].clone());
    }
    let mut out = serde_json::Map::new();
    for (k, child) in obj {
        let p = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        out.insert(k.clone(), strip_sources(child, &p, sources)?);
    }
    Ok(serde_json::Value::Object(out))
}
