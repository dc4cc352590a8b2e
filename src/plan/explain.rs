//! A plain-text rendering of a [`KernelPlan`] for the `explain` command.

use std::fmt::Write;

use super::{BreakReason, KernelPlan};

impl KernelPlan {
    /// The plan as readable text: each kernel with its ops, partition and buffers, then the ops
    /// that need no kernel and every producer/consumer pair split across kernels with the reason.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let t = &self.target;
        let _ = writeln!(
            s,
            "{:?} plan for {} ({}x{} cores, {} B of L1 and {} circular buffers per core): {} kernel(s), {} B of DRAM traffic",
            self.mode,
            t.name,
            t.grid_x,
            t.grid_y,
            t.l1_bytes,
            t.max_cbs,
            self.kernels.len(),
            self.dram_bytes()
        );
        for (i, k) in self.kernels.iter().enumerate() {
            let _ = writeln!(s, "\n[{i}] {} ({:?})", k.name, k.kind);
            let ops: Vec<String> = k
                .nodes
                .iter()
                .zip(&k.ops)
                .map(|(n, o)| format!("{n} ({o})"))
                .collect();
            let _ = writeln!(s, "    ops:       {}", ops.join(", "));
            let _ = writeln!(s, "    reads:     {}", k.reads.join(", "));
            let _ = writeln!(s, "    writes:    {}", k.writes.join(", "));
            let _ = writeln!(s, "    partition: {}", k.partition_summary);
            let _ = writeln!(
                s,
                "    L1:        {} B of {} B in {} circular buffer(s); DRAM: {} B read, {} B written",
                k.l1_bytes,
                k.l1_limit,
                k.cbs.len(),
                k.dram_read_bytes,
                k.dram_write_bytes
            );
            for cb in &k.cbs {
                let _ = writeln!(
                    s,
                    "      {:<28} {}x{} tiles x{}",
                    cb.name, cb.shape.0, cb.shape.1, cb.buffer_factor
                );
            }
            for note in &k.notes {
                let _ = writeln!(s, "    note:      {note}");
            }
        }
        if !self.free.is_empty() {
            let _ = writeln!(s, "\nops without a kernel:");
            for f in &self.free {
                let _ = writeln!(s, "    {} ({}): {}", f.node, f.op, f.reason);
            }
        }
        if !self.breaks.is_empty() {
            let _ = writeln!(s, "\nnot fused:");
            for b in &self.breaks {
                let _ = writeln!(
                    s,
                    "    {} -> {}: {}",
                    b.producer,
                    b.consumer,
                    reason_text(&b.reason)
                );
            }
        }
        s
    }
}

/// One line explaining a fusion break.
pub fn reason_text(r: &BreakReason) -> String {
    match r {
        BreakReason::FusionOff => "fusion is off (one kernel per op)".into(),
        BreakReason::SeveralConsumers { consumers } => {
            format!("the producer has {consumers} consumers, so it is written to DRAM and the matmul epilogue stops")
        }
        BreakReason::GraphOutput => {
            "the producer is a graph output, so the matmul epilogue stops".into()
        }
        BreakReason::OpKind { detail } => format!("op kinds do not share a kernel: {detail}"),
        BreakReason::Shape { detail } => format!("iteration spaces differ: {detail}"),
        BreakReason::Cycle { via } => format!("fusing would create a cycle through {via}"),
        BreakReason::Budget { detail } => {
            format!("the fused kernel would not fit a core: {detail}")
        }
        BreakReason::JoinedOtherProducer { joined } => {
            format!("the consumer joined the kernel of {joined}; this input is read from DRAM")
        }
        BreakReason::Slower {
            fused_cycles,
            separate_cycles,
        } => format!(
            "fused would be slower: an estimated {fused_cycles:.0} cycles against {separate_cycles:.0} for the two kernels apart"
        ),
    }
}
