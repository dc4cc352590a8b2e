//! Runs one kernel: compiles it once, evaluates its setup on every core of its grid (circular
//! buffers, pipes, constants), then schedules all threads of all cores deterministically. The
//! scheduler always resumes the ready thread with the earliest clock; a thread runs until it
//! blocks, finishes, or reaches a copy while another ready thread is earlier (so DRAM requests
//! reach the shared channel in time order). When no thread is ready but some are blocked, the
//! kernel has deadlocked.
//!
//! A timed run is two passes. The functional pass computes every element with all costs zero,
//! so every clock stays 0 and each thread runs until it blocks: a core's blocks are reused while
//! they are still in the host's cache. The timing pass then runs the same threads on hollow
//! blocks (shapes without elements, no block math, no DRAM data) with the costs on, in the
//! clock order above. Nothing a thread decides depends on block elements (loop bounds,
//! conditions and slices are Python scalars), so the timing pass takes the same paths and its
//! clocks are those of one pass doing both; interleaving 64 cores in clock order costs no cache
//! misses when the blocks are hollow.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};

use super::compile::{compile_body, CBody, Outer};
use super::error::{ExecError, Fault, FaultKind, Site};
use super::state::{Core, DramTensor, Shared, Wake};
use super::thread::{BlockOn, Outcome, Role, State, ThreadRun};
use super::value::Value;
use crate::device::Device;
use crate::tensor::{Tensor, TILE};
use crate::timing::report::{CoreReport, KernelReport, Roofline, ThreadReport};
use crate::timing::{CostModel, DramChannel};
use crate::ttl::ast::{Kernel, Module, ThreadKind};

/// Module constants after evaluation, with their names.
pub(crate) struct ModuleEnv {
    pub values: Vec<Value>,
    pub names: BTreeMap<String, usize>,
}

impl ModuleEnv {
    /// No module constants (kernels of a [`crate::program::Program`]).
    pub fn empty() -> Self {
        ModuleEnv {
            values: Vec::new(),
            names: BTreeMap::new(),
        }
    }
}

/// A kernel resolved once, ready to run any number of times.
pub(crate) struct CompiledKernel<'k> {
    pub kernel: &'k Kernel,
    setup: CBody,
    threads: Vec<CBody>,
    /// Compile-time warnings, each naming the kernel, thread and line.
    warnings: Vec<String>,
}

fn site(kernel: &str, core: Option<(u32, u32)>, thread: Option<&str>, line: u32) -> Site {
    Site {
        kernel: kernel.to_string(),
        core,
        thread: thread.map(str::to_string),
        line,
    }
}

/// Runs a machine that cannot block (module constants, setup) to its end.
fn run_to_end(t: &mut ThreadRun, core: &mut Core, sh: &mut Shared) -> Result<(), Fault> {
    loop {
        match t.step(core, sh)? {
            Outcome::Ran => {}
            Outcome::NeedSync => t.sync_ok = true,
            Outcome::Done => return Ok(()),
            Outcome::Blocked => {
                return Err(Fault::new(
                    FaultKind::Unsupported,
                    "circular-buffer and pipe operations belong inside thread functions",
                ))
            }
        }
    }
}

fn shared<'a>(module: &'a [Value], device: &'a Device, grid: (u32, u32)) -> Shared<'a> {
    Shared {
        module,
        functional: true,
        tensors: Vec::new(),
        pipes: BTreeMap::new(),
        pipe_events: Vec::new(),
        dram: DramChannel::new(device.dram_bytes_per_cycle()),
        mcast: Default::default(),
        cost: CostModel::new(device),
        grid,
        thread_names: Vec::new(),
        dram_read_bytes: 0,
        dram_write_bytes: 0,
        noc_bytes: 0,
        flops: 0.0,
    }
}

fn empty_core(x: u32, y: u32, vars: Vec<Value>) -> Core {
    Core {
        x,
        y,
        vars,
        cbs: Vec::new(),
        events: Vec::new(),
    }
}

/// Evaluates a module's constants.
pub(crate) fn eval_module(module: &Module, device: &Device) -> Result<ModuleEnv, ExecError> {
    let err = |line, f: Fault| f.at(site("<module constants>", None, None, line));
    let body =
        compile_body(&module.constants, &[], &Outer::default()).map_err(|(l, f)| err(l, f))?;
    let mut sh = shared(&[], device, (1, 1));
    let mut core = empty_core(0, 0, Vec::new());
    let mut t = ThreadRun::new(0, Role::Module, &body, Vec::new());
    run_to_end(&mut t, &mut core, &mut sh).map_err(|f| err(t.line, f))?;
    let names = body
        .locals
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i))
        .collect();
    Ok(ModuleEnv {
        values: t.locals,
        names,
    })
}

/// Resolves a kernel against the module's constant names.
pub(crate) fn compile_kernel<'k>(
    kernel: &'k Kernel,
    module: &ModuleEnv,
) -> Result<CompiledKernel<'k>, ExecError> {
    let err =
        |thread: &str, (line, f): (u32, Fault)| f.at(site(&kernel.name, None, Some(thread), line));
    let outer = Outer {
        kernel: BTreeMap::new(),
        module: module.names.clone(),
    };
    let setup = compile_body(&kernel.setup, &kernel.params, &outer).map_err(|e| err("setup", e))?;
    let outer = Outer {
        kernel: setup
            .locals
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect(),
        module: module.names.clone(),
    };
    let mut threads = Vec::new();
    for t in &kernel.threads {
        threads.push(compile_body(&t.body, &[], &outer).map_err(|e| err(&t.name, e))?);
    }
    let names = std::iter::once("setup").chain(kernel.threads.iter().map(|t| t.name.as_str()));
    let warnings = std::iter::once(&setup)
        .chain(&threads)
        .zip(names)
        .flat_map(|(body, name)| {
            body.warnings.iter().map(move |(line, w)| {
                format!("{}: {w}", site(&kernel.name, None, Some(name), *line))
            })
        })
        .collect();
    Ok(CompiledKernel {
        kernel,
        setup,
        threads,
        warnings,
    })
}

/// Heap key: earliest clock first, then lowest thread index.
#[derive(Clone, Copy, PartialEq)]
struct Key(f64, usize);

impl Eq for Key {}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// Runs a compiled kernel on `args`, updating them in place.
pub(crate) fn execute(
    ck: &CompiledKernel,
    module: &ModuleEnv,
    device: &Device,
    args: &mut [Tensor],
    traced: bool,
) -> Result<KernelReport, ExecError> {
    execute_with(ck, module, device, args, traced, true)
}

/// One pass over a kernel (see the module doc).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    /// Elements computed, every cost zero; updates the arguments.
    Functional,
    /// Costs computed on hollow blocks; leaves the arguments as they are.
    Timing,
}

/// [`execute`], with the timing model's costs computed (`timed`) or all zero.
pub(crate) fn execute_with(
    ck: &CompiledKernel,
    module: &ModuleEnv,
    device: &Device,
    args: &mut [Tensor],
    traced: bool,
    timed: bool,
) -> Result<KernelReport, ExecError> {
    let functional = run_pass(ck, module, device, args, traced, Pass::Functional)?;
    if !timed {
        return Ok(functional);
    }
    run_pass(ck, module, device, args, traced, Pass::Timing)
}

/// Runs one pass of a compiled kernel on `args`.
fn run_pass(
    ck: &CompiledKernel,
    module: &ModuleEnv,
    device: &Device,
    args: &mut [Tensor],
    traced: bool,
    pass: Pass,
) -> Result<KernelReport, ExecError> {
    let k = ck.kernel;
    if args.len() != k.params.len() {
        return Err(ExecError::ArgCount {
            kernel: k.name.clone(),
            params: k.params.clone(),
            expected: k.params.len(),
            given: args.len(),
        });
    }
    let (gx, gy) = k.grid;
    if gx == 0 || gy == 0 || gx > device.grid.x || gy > device.grid.y {
        return Err(Fault::new(
            FaultKind::Limit,
            format!(
                "grid ({gx}, {gy}) does not fit device `{}`, whose grid is ({}, {})",
                device.name, device.grid.x, device.grid.y
            ),
        )
        .at(site(&k.name, None, None, k.line)));
    }
    let mut sh = shared(&module.values, device, k.grid);
    match pass {
        Pass::Functional => {
            sh.cost = CostModel::untimed(device);
            sh.dram = DramChannel::untimed();
        }
        Pass::Timing => sh.functional = false,
    }
    sh.thread_names = k.threads.iter().map(|t| t.name.clone()).collect();
    for (p, t) in k.params.iter().zip(args.iter()) {
        if t.rows % TILE != 0 || t.cols % TILE != 0 || t.data.len() != t.rows * t.cols {
            return Err(ExecError::Unaligned {
                kernel: k.name.clone(),
                param: p.clone(),
                rows: t.rows,
                cols: t.cols,
            });
        }
        sh.tensors.push(DramTensor {
            name: p.clone(),
            rows: t.rows,
            cols: t.cols,
            data: match pass {
                Pass::Functional => t.to_f32(),
                Pass::Timing => Vec::new(),
            },
        });
    }

    let (mut cores, l1_peak) = setup_cores(ck, device, &mut sh)?;
    let threads = run_threads(ck, &mut cores, &mut sh)?;
    let warnings = leftovers(k, &cores, &sh, ck.warnings.clone())?;
    if pass == Pass::Functional {
        for (t, d) in args.iter_mut().zip(&sh.tensors) {
            *t = Tensor::from_f32(d.rows, d.cols, &d.data);
        }
    }
    Ok(report(
        k,
        device,
        &sh,
        (&threads, &cores),
        (traced, l1_peak, warnings),
    ))
}

/// Runs the setup of compiled kernel `ck` on every core of its grid, row by row, checking each
/// core's circular buffers against the device's count and L1; returns the cores and the most
/// L1 their buffers take on any one.
fn setup_cores(
    ck: &CompiledKernel,
    device: &Device,
    sh: &mut Shared,
) -> Result<(Vec<Core>, u64), ExecError> {
    let k = ck.kernel;
    let (gx, gy) = k.grid;
    let usable = device.l1.usable_bytes();
    let mut cores = Vec::new();
    let mut l1_peak = 0;
    for y in 0..gy {
        for x in 0..gx {
            let params: Vec<Value> = (0..k.params.len()).map(Value::Tensor).collect();
            let mut core = empty_core(x, y, Vec::new());
            let mut t = ThreadRun::new(0, Role::Setup, &ck.setup, params);
            run_to_end(&mut t, &mut core, sh)
                .map_err(|f| f.at(site(&k.name, Some((x, y)), Some("setup"), t.line)))?;
            core.vars = t.locals;
            let limit_err = |msg: String| {
                Fault::new(FaultKind::Limit, msg).at(site(
                    &k.name,
                    Some((x, y)),
                    Some("setup"),
                    k.line,
                ))
            };
            if core.cbs.len() > device.max_cbs_per_core as usize {
                return Err(limit_err(format!(
                    "{} circular buffers on one core; device `{}` allows {}",
                    core.cbs.len(),
                    device.name,
                    device.max_cbs_per_core
                )));
            }
            let bytes: u64 = core.cbs.iter().map(|c| c.bytes(device.tile_bytes)).sum();
            if bytes > usable {
                let list: Vec<String> = core
                    .cbs
                    .iter()
                    .map(|c| {
                        format!(
                            "`{}` {}x{}x{} = {} B",
                            c.name,
                            c.rows,
                            c.cols,
                            c.factor,
                            c.bytes(device.tile_bytes)
                        )
                    })
                    .collect();
                return Err(limit_err(format!(
                    "circular buffers take {bytes} B of L1 but device `{}` has {usable} B usable per core ({}); shrink block shapes or buffer factors",
                    device.name,
                    list.join(", ")
                )));
            }
            l1_peak = l1_peak.max(bytes);
            cores.push(core);
        }
    }

    Ok((cores, l1_peak))
}

/// Runs the threads of compiled kernel `ck` on `cores` to the end, earliest clock first (a
/// thread blocked on a circular buffer or pipe waits until what it needs happens); returns
/// them, the threads of core `c` at `c * threads per core..`, or a deadlock error.
fn run_threads<'c>(
    ck: &'c CompiledKernel,
    cores: &mut [Core],
    sh: &mut Shared,
) -> Result<Vec<ThreadRun<'c>>, ExecError> {
    let k = ck.kernel;
    let gx = k.grid.0;
    let nt = k.threads.len();
    let mut threads: Vec<ThreadRun> = Vec::with_capacity(cores.len() * nt);
    for _ in 0..cores.len() {
        for (i, (t, body)) in k.threads.iter().zip(&ck.threads).enumerate() {
            let role = match t.kind {
                ThreadKind::Compute => Role::Compute,
                ThreadKind::DataMovement => Role::DataMovement,
            };
            threads.push(ThreadRun::new(i, role, body, Vec::new()));
        }
    }
    let mut heap: BinaryHeap<Reverse<Key>> =
        (0..threads.len()).map(|i| Reverse(Key(0.0, i))).collect();
    let mut queued = vec![true; threads.len()];

    while let Some(Reverse(Key(_, i))) = heap.pop() {
        queued[i] = false;
        if threads[i].state != State::Ready {
            continue;
        }
        let ci = i / nt;
        loop {
            let out = threads[i].step(&mut cores[ci], sh).map_err(|f| {
                let c = &cores[ci];
                f.at(site(
                    &k.name,
                    Some((c.x, c.y)),
                    Some(&k.threads[i % nt].name),
                    threads[i].line,
                ))
            })?;
            // Wake threads blocked on what just happened.
            for ev in std::mem::take(&mut cores[ci].events) {
                let Wake::Cb { cb, time, push } = ev;
                for j in ci * nt..(ci + 1) * nt {
                    let hit = match threads[j].state {
                        State::Blocked(BlockOn::Wait(c)) => c == cb && push,
                        State::Blocked(BlockOn::Reserve(c)) => c == cb && !push,
                        _ => false,
                    };
                    if hit {
                        threads[j].state = State::Ready;
                        threads[j].wait_until(time);
                        if !queued[j] && j != i {
                            queued[j] = true;
                            heap.push(Reverse(Key(threads[j].clock, j)));
                        }
                    }
                }
            }
            for p in std::mem::take(&mut sh.pipe_events) {
                let dc = (p.dst.1 * gx + p.dst.0) as usize;
                for j in dc * nt..(dc + 1) * nt {
                    if threads[j].state == State::Blocked(BlockOn::Pipe(p)) {
                        threads[j].state = State::Ready;
                        if !queued[j] && j != i {
                            queued[j] = true;
                            heap.push(Reverse(Key(threads[j].clock, j)));
                        }
                    }
                }
            }
            match out {
                Outcome::Ran => {}
                Outcome::NeedSync => {
                    let earliest = heap
                        .peek()
                        .is_none_or(|Reverse(Key(c, _))| threads[i].clock <= *c);
                    if earliest {
                        threads[i].sync_ok = true;
                    } else {
                        queued[i] = true;
                        heap.push(Reverse(Key(threads[i].clock, i)));
                        break;
                    }
                }
                Outcome::Blocked => {
                    // A wake may have readied this very thread (e.g. it pushed what it waits for).
                    if threads[i].state == State::Ready {
                        continue;
                    }
                    break;
                }
                Outcome::Done => break,
            }
        }
    }

    if threads.iter().any(|t| t.state != State::Done) {
        return Err(deadlock(k, cores, &threads, nt));
    }
    Ok(threads)
}

/// The warnings of kernel `k`'s run on `cores` (its compile-time ones, `warnings`, first):
/// blocks left in a circular buffer, or released unread; or an error for blocks left in a pipe.
fn leftovers(
    k: &Kernel,
    cores: &[Core],
    sh: &Shared,
    mut warnings: Vec<String>,
) -> Result<Vec<String>, ExecError> {
    for c in cores {
        let at = site(&k.name, Some((c.x, c.y)), None, 0);
        warnings.extend(
            c.cbs
                .iter()
                .flat_map(|cb| [cb.unconsumed(), cb.released_unread()])
                .flatten()
                .map(|m| format!("{at}: {m}")),
        );
    }
    // Unlike blocks left in a CB (warnings above), blocks left in a pipe stay an error: on the
    // chip a pipe send completes only into a receiver's reserved block, so an unmatched send
    // hangs ("Pipes cause hangs when send/receive don't match", the guide).
    if let Some((p, q)) = sh.pipes.iter().find(|(_, q)| !q.is_empty()) {
        return Err(Fault::new(
            FaultKind::Pipe,
            format!(
                "{} block(s) sent through pipe ({}, {}) -> ({}, {}) were never received; every send needs a matching `ttl.copy(pipe, blk)` on the destination core",
                q.len(), p.src.0, p.src.1, p.dst.0, p.dst.1
            ),
        )
        .at(site(&k.name, Some(p.src), None, 0)));
    }

    Ok(warnings)
}

/// The report of kernel `k`'s run: its time (the last thread's clock, plus dispatch), traffic,
/// math, L1 and roofline, and each core's threads.
fn report(
    k: &Kernel,
    device: &Device,
    sh: &Shared,
    (threads, cores): (&[ThreadRun], &[Core]),
    (traced, l1_peak, warnings): (bool, u64, Vec<String>),
) -> KernelReport {
    let nt = k.threads.len();
    let cycles = threads.iter().map(|t| t.clock).fold(0.0, f64::max);
    let dispatch_us = device.dispatch.us(traced);
    let core_reports: Vec<CoreReport> = cores
        .iter()
        .enumerate()
        .map(|(ci, c)| CoreReport {
            x: c.x,
            y: c.y,
            threads: (0..nt)
                .map(|ti| {
                    let t = &threads[ci * nt + ti];
                    ThreadReport {
                        name: k.threads[ti].name.clone(),
                        kind: match k.threads[ti].kind {
                            ThreadKind::Compute => "compute".into(),
                            ThreadKind::DataMovement => "datamovement".into(),
                        },
                        end_cycles: t.clock,
                        busy_cycles: t.busy,
                        wait_cycles: t.wait,
                    }
                })
                .collect(),
        })
        .collect();
    KernelReport {
        name: k.name.clone(),
        grid: k.grid,
        cycles,
        dispatch_us,
        time_us: device.cycles_to_us(cycles) + dispatch_us,
        dram_read_bytes: sh.dram_read_bytes,
        dram_write_bytes: sh.dram_write_bytes,
        noc_bytes: sh.noc_bytes,
        flops: sh.flops,
        l1_cb_bytes: l1_peak,
        tensor_bytes: sh
            .tensors
            .iter()
            .map(|t| (t.rows * t.cols) as u64 * device.tile_bytes / 1024)
            .sum(),
        roofline: Roofline::of(
            device,
            k.grid,
            cycles,
            dispatch_us,
            sh.dram_read_bytes + sh.dram_write_bytes,
            sh.flops,
            &core_reports,
        ),
        cores: core_reports,
        warnings,
    }
}

/// The deadlock error: every blocked thread and what it waits for.
fn deadlock(k: &Kernel, cores: &[Core], threads: &[ThreadRun], nt: usize) -> ExecError {
    let mut lines = Vec::new();
    for (i, t) in threads.iter().enumerate() {
        let State::Blocked(on) = t.state else {
            continue;
        };
        let c = &cores[i / nt];
        let what = match on {
            BlockOn::Wait(cb) => c.cbs[cb].blocked_reason(false),
            BlockOn::Reserve(cb) => c.cbs[cb].blocked_reason(true),
            BlockOn::Pipe(p) => format!(
                "a block from pipe ({}, {}) -> ({}, {}): nothing was sent",
                p.src.0, p.src.1, p.dst.0, p.dst.1
            ),
        };
        lines.push(format!(
            "core ({}, {}) thread `{}` at line {} waits for {what}",
            c.x,
            c.y,
            k.threads[i % nt].name,
            t.line
        ));
    }
    let shown = lines.len().min(12);
    let mut msg = format!(
        "every live thread is blocked ({} thread(s)); check that loop counts and wait/reserve pairs match:\n  {}",
        lines.len(),
        lines[..shown].join("\n  ")
    );
    if lines.len() > shown {
        msg.push_str(&format!("\n  ... and {} more", lines.len() - shown));
    }
    Fault::new(FaultKind::Deadlock, msg).at(site(&k.name, None, None, k.line))
}
