//! The exported bundle's README: what is in it, how to run it, and what agreement to expect.

use std::fmt::Write;

use super::export::{ExportData, PCC_THRESHOLD};
use crate::lower::Compiled;

/// The README for the bundle of `compiled`.
pub fn readme(compiled: &Compiled, data: &ExportData) -> String {
    let program = &compiled.program;
    let plan = &compiled.plan;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# {}: fused TT-Lang program for {}\n",
        data.model, plan.target.name
    );
    let _ = writeln!(
        s,
        "Exported by `ttfuse export`: {} kernel(s), {} host step(s), planned for a {}x{} core grid.\n",
        program.kernels.len(),
        program.steps.len(),
        plan.target.grid_x,
        plan.target.grid_y
    );
    s += "## Run it\n\n";
    s += "On a Tenstorrent device with `ttnn` and TT-Lang (`ttl`) installed:\n\n";
    s += "```\npython run.py\n```\n\n";
    let _ = writeln!(
        s,
        "It prints each output's max |err| and PCC against `reference/` and exits with status 1 when a PCC is below {PCC_THRESHOLD}.\n"
    );
    s += "On ttfuse's simulated device (same kernels, same data):\n\n";
    let _ = writeln!(
        s,
        "```\nttfuse run DIR --target {}\n```\n",
        plan.target.name
    );
    s += "## Files\n\n";
    s += "| path | what |\n|---|---|\n";
    s += "| `kernels/NAME.py` | one TT-Lang kernel per file |\n";
    s += "| `weights/TENSOR.npy` | constant tensors (float32, the 2-D device layout; stored as bf16 on the device) |\n";
    s += "| `inputs/TENSOR.npy` | the graph inputs the reference outputs were computed from (float32, 2-D device layout) |\n";
    s += "| `reference/TENSOR.npy` | the f32 reference interpreter's outputs (graph shape) |\n";
    s += "| `program.json` | tensors, kernels, steps in order, and which tensor holds each graph input and output |\n";
    s += "| `run.py` | the host driver |\n";
    s += "| `ttfuse_host_ops.py` | numpy versions of the TTNN fallback ops (only when the program has some) |\n\n";
    s += "## Kernels\n\n| # | kernel | ops | grid |\n|---|---|---|---|\n";
    for (i, k) in plan.kernels.iter().enumerate() {
        let (x, y) = k.partition.device_grid();
        let _ = writeln!(s, "| {i} | `{}` | {} | {x}x{y} |", k.name, k.ops.join(", "));
    }
    let host_steps = program
        .steps
        .iter()
        .filter(|st| matches!(st, ttfuse_runtime::program::Step::Host { .. }))
        .count();
    if host_steps > 0 {
        let _ = writeln!(
            s,
            "\n{host_steps} step(s) are TTNN fallback ops (graph ops without a TT-Lang template). Like ttfuse's runtime, `run.py` runs them on the host between kernels: it reads the device tensors back, applies the op with numpy (`ttfuse_host_ops.py`) and writes the result back to the device."
        );
    }
    s +=
        "\n## Expected agreement\n\nOn the simulator, the fused outputs against the reference:\n\n";
    s += "| output | max abs err | PCC |\n|---|---|---|\n";
    for (name, a) in data.simulated {
        let _ = writeln!(s, "| `{name}` | {:.3e} | {:.6} |", a.max_abs_err, a.pcc);
    }
    s
}
