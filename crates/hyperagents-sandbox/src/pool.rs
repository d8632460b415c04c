//! [`ScriptPool`]: a fixed set of worker processes shared by many concurrent runs.
//!
//! Each worker slot is a tokio task that owns one `hyperagents-worker` process and pulls slices
//! (a run's start, or its resumption after a host call) from one shared queue. A run only holds a
//! worker while its script executes; while its host function runs, its state is a snapshot held
//! here, so many runs share few workers and any worker can continue any run.
//!
//! Failure handling, per slice:
//! - the worker exits or breaks the protocol → only that run fails ([`ScriptError::WorkerDied`],
//!   or [`ScriptError::MemoryLimit`] for the allocator's exit code 65); the slot reaps the process
//!   and starts a replacement, so there are never more than `workers` processes alive;
//! - no reply within the slice's VM time plus slack → the worker is killed, the run gets
//!   [`ScriptError::TimeLimit`];
//! - a worker is retired after [`MAX_REQUESTS_PER_WORKER`] slices, or before its accumulated busy
//!   time could reach its `RLIMIT_CPU` (which counts over the process's lifetime).

use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, Instant};

use serde_json::Map;
use tokio::io::{AsyncReadExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::confine::ProbeReport;
use crate::convert::{MAX_DEPTH, approx_bytes, depth};
use crate::host::FORBIDDEN_FUNCTIONS;
use crate::protocol::{
    FrameLimits, Reply, Request, ResumeValue, SliceLimits, read_frame_async, write_frame_async,
};
use crate::syntax::failure_to_error;
use crate::{HostError, HostFunctions, PoolConfig, ScriptError, ScriptSource, ScriptValue};

/// Slices one worker process serves before it is replaced, unless
/// [`ScriptPool::set_recycle_after`] says otherwise.
pub const MAX_REQUESTS_PER_WORKER: u64 = 10_000;
/// Most bytes (about: strings' bytes plus 8 per other value) of one host call's arguments; a
/// call given more raises `ValueError` in the script. JSON-escaped (at most six bytes a byte),
/// that still fits one trajectory line (64 MiB).
pub const MAX_CALL_ARGUMENT_BYTES: usize = 8 << 20;

/// Bytes of a worker's stderr kept for death reports.
const STDERR_TAIL: usize = 4096;

/// `RLIMIT_NOFILE` for workers: stdin, stdout, stderr and a little slack.
const WORKER_NOFILE: u64 = 16;

/// Exit code of monty-alloc's memory kill.
const OOM_EXIT_CODE: i32 = monty_types::OOM_EXIT_CODE;

/// Counters describing a pool's life so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Worker processes alive now.
    pub workers_alive: usize,
    /// The most worker processes ever alive at once.
    pub max_workers_alive: usize,
    /// Worker processes started, replacements included.
    pub workers_started: u64,
    /// Workers that died or were killed while serving a slice.
    pub worker_deaths: u64,
    /// Workers retired on schedule (request count, CPU time).
    pub workers_recycled: u64,
    /// Runs started.
    pub runs_started: u64,
    /// Runs whose previous slice ran on a worker that has since died, resumed on another.
    pub runs_resumed_after_death: u64,
    /// Host calls made by scripts.
    pub host_calls: u64,
    /// Where slices' time went.
    pub time: PoolTimes,
}

/// Time spent on slices so far, summed over all of them (slices in flight together overlap).
///
/// `slice_wall` covers a slice from the run encoding its request to the run holding the reply: it
/// holds `queued` and `exchange`. `exchange` is the slot's side of the slice (writing the request,
/// the worker's work, reading and checking the reply). The worker accounts for `handled` of it, of
/// which `compile + load + run + dump` are the named parts; the rest of `exchange` is pipes, the
/// frames' JSON and scheduling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolTimes {
    /// Slices that got a reply.
    pub slices: u64,
    /// Whole slices, as the runs waited for them.
    pub slice_wall: Duration,
    /// Waiting in the queue for a free worker.
    pub queued: Duration,
    /// A worker's exchange: request out, reply in.
    pub exchange: Duration,
    /// Parsing and compiling sources in the workers.
    pub compile: Duration,
    /// Restoring paused runs from snapshots in the workers.
    pub load: Duration,
    /// Running scripts in the workers.
    pub run: Duration,
    /// Dumping paused runs into snapshots in the workers.
    pub dump: Duration,
    /// Whole requests in the workers, the parts above included.
    pub handled: Duration,
}

impl PoolTimes {
    /// What happened between `earlier` and `self` (both from one pool).
    pub fn since(&self, earlier: &PoolTimes) -> PoolTimes {
        PoolTimes {
            slices: self.slices.saturating_sub(earlier.slices),
            slice_wall: self.slice_wall.saturating_sub(earlier.slice_wall),
            queued: self.queued.saturating_sub(earlier.queued),
            exchange: self.exchange.saturating_sub(earlier.exchange),
            compile: self.compile.saturating_sub(earlier.compile),
            load: self.load.saturating_sub(earlier.load),
            run: self.run.saturating_sub(earlier.run),
            dump: self.dump.saturating_sub(earlier.dump),
            handled: self.handled.saturating_sub(earlier.handled),
        }
    }

    /// The worker's own account of its work: compile, load, run and dump.
    pub fn worker(&self) -> Duration {
        self.compile + self.load + self.run + self.dump
    }
}

/// [`PoolTimes`] as counters the slot tasks add to.
#[derive(Default)]
struct TimeCounters {
    slices: AtomicU64,
    slice_wall: AtomicU64,
    queued: AtomicU64,
    exchange: AtomicU64,
    compile: AtomicU64,
    load: AtomicU64,
    run: AtomicU64,
    dump: AtomicU64,
    handled: AtomicU64,
}

fn add_nanos(counter: &AtomicU64, d: Duration) {
    counter.fetch_add(
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
}

impl TimeCounters {
    fn snapshot(&self) -> PoolTimes {
        let d = |c: &AtomicU64| Duration::from_nanos(c.load(Ordering::Relaxed));
        PoolTimes {
            slices: self.slices.load(Ordering::Relaxed),
            slice_wall: d(&self.slice_wall),
            queued: d(&self.queued),
            exchange: d(&self.exchange),
            compile: d(&self.compile),
            load: d(&self.load),
            run: d(&self.run),
            dump: d(&self.dump),
            handled: d(&self.handled),
        }
    }

    /// A slice the slot got a reply for.
    fn add_exchange(&self, queued: Duration, exchange: Duration, reply: &Reply) {
        let worker = reply.timing();
        self.slices.fetch_add(1, Ordering::Relaxed);
        add_nanos(&self.queued, queued);
        add_nanos(&self.exchange, exchange);
        add_nanos(&self.compile, worker.compile);
        add_nanos(&self.load, worker.load);
        add_nanos(&self.run, worker.run);
        add_nanos(&self.dump, worker.dump);
        add_nanos(&self.handled, worker.handled);
    }
}

/// One worker slot, as seen from outside (for diagnostics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Slot index (`0..workers`).
    pub slot: usize,
    /// OS process id.
    pub pid: u32,
    /// Whether it is executing a slice now.
    pub busy: bool,
    /// Slices it has served.
    pub requests: u64,
}

/// A pool of sandbox workers. Cloning is cheap and shares the pool; the workers are killed when
/// the last clone is dropped.
#[derive(Clone)]
pub struct ScriptPool {
    inner: Arc<PoolInner>,
}

impl std::fmt::Debug for ScriptPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptPool")
            .field("config", &self.inner.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

struct PoolInner {
    config: PoolConfig,
    jobs: mpsc::UnboundedSender<Job>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    next_run: AtomicU64,
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        // Aborting a slot task drops its `Child`, which `kill_on_drop` kills.
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// State shared by the slot tasks.
struct Shared {
    spawn: SpawnSpec,
    frame_limits: FrameLimits,
    /// Busy time after which a worker is retired (half its `RLIMIT_CPU`, less one slice).
    busy_budget: Duration,
    recycle_after: AtomicU64,
    alive: AtomicUsize,
    max_alive: AtomicUsize,
    started: AtomicU64,
    deaths: AtomicU64,
    recycled: AtomicU64,
    runs_started: AtomicU64,
    resumed_after_death: AtomicU64,
    host_calls: AtomicU64,
    time: TimeCounters,
    slots: StdMutex<Vec<Option<WorkerInfo>>>,
}

impl Shared {
    fn set_slot(&self, slot: usize, info: Option<WorkerInfo>) {
        if let Ok(mut slots) = self.slots.lock()
            && let Some(entry) = slots.get_mut(slot)
        {
            *entry = info;
        }
    }
}

/// How workers are started.
#[derive(Debug, Clone)]
struct SpawnSpec {
    exe: std::path::PathBuf,
    max_memory: u64,
    compiled_script_bytes: usize,
    address_space: u64,
    cpu_seconds: u64,
}

/// One slice to execute.
struct Job {
    run_id: u64,
    header: Vec<u8>,
    snapshot: Vec<u8>,
    deadline: Duration,
    /// When the run handed it to the pool.
    queued_at: Instant,
    reply: oneshot::Sender<SliceResult>,
}

/// What a slot reports for a slice.
enum SliceResult {
    Reply {
        reply: Box<Reply>,
        snapshot: Vec<u8>,
        /// Set if the worker that produced this reply dies later.
        worker_died: Arc<AtomicBool>,
    },
    Died {
        reason: String,
        memory: bool,
    },
    Stuck {
        waited: Duration,
    },
    Failed(String),
}

/// A live worker process.
struct WorkerProc {
    child: Child,
    pid: u32,
    /// `None` once closed (retiring).
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<StdMutex<VecDeque<u8>>>,
    stderr_task: JoinHandle<()>,
    requests: u64,
    busy: Duration,
    died: Arc<AtomicBool>,
}

impl ScriptPool {
    /// Starts `config.workers` worker processes. Fails if the executable cannot be started or the
    /// limits do not fit together.
    pub async fn start(config: PoolConfig) -> Result<Self, ScriptError> {
        validate(&config)?;
        let limits = &config.limits;
        let longest_slice = slice_deadline(limits.vm_time_per_call, 0, limits.max_memory_bytes);
        let cpu_seconds = (longest_slice.as_secs() + 1).saturating_mul(4).max(600);
        let busy_budget = Duration::from_secs(cpu_seconds / 2).saturating_sub(longest_slice);
        let shared = Arc::new(Shared {
            spawn: SpawnSpec {
                exe: config.worker_exe.clone(),
                max_memory: limits.max_memory_bytes,
                compiled_script_bytes: config.compiled_script_bytes,
                address_space: config.memory_limit_bytes,
                cpu_seconds,
            },
            frame_limits: FrameLimits::for_memory(limits.max_memory_bytes),
            busy_budget,
            recycle_after: AtomicU64::new(MAX_REQUESTS_PER_WORKER),
            alive: AtomicUsize::new(0),
            max_alive: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            deaths: AtomicU64::new(0),
            recycled: AtomicU64::new(0),
            runs_started: AtomicU64::new(0),
            resumed_after_death: AtomicU64::new(0),
            host_calls: AtomicU64::new(0),
            time: TimeCounters::default(),
            slots: StdMutex::new(vec![None; config.workers]),
        });
        let mut procs = Vec::with_capacity(config.workers);
        for slot in 0..config.workers {
            match spawn_worker(&shared, slot) {
                Ok(p) => procs.push(p),
                Err(e) => {
                    for mut p in procs {
                        reap(&shared, &mut p).await;
                    }
                    return Err(ScriptError::Internal(e));
                }
            }
        }
        let (jobs, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        let tasks = procs
            .into_iter()
            .enumerate()
            .map(|(slot, p)| tokio::spawn(slot_task(slot, p, shared.clone(), queue.clone())))
            .collect();
        Ok(Self {
            inner: Arc::new(PoolInner {
                config,
                jobs,
                shared,
                tasks,
                next_run: AtomicU64::new(1),
            }),
        })
    }

    /// The pool's configuration.
    pub fn config(&self) -> &PoolConfig {
        &self.inner.config
    }

    /// Counters so far.
    pub fn stats(&self) -> PoolStats {
        let s = &self.inner.shared;
        PoolStats {
            workers_alive: s.alive.load(Ordering::SeqCst),
            max_workers_alive: s.max_alive.load(Ordering::SeqCst),
            workers_started: s.started.load(Ordering::SeqCst),
            worker_deaths: s.deaths.load(Ordering::SeqCst),
            workers_recycled: s.recycled.load(Ordering::SeqCst),
            runs_started: s.runs_started.load(Ordering::SeqCst),
            runs_resumed_after_death: s.resumed_after_death.load(Ordering::SeqCst),
            host_calls: s.host_calls.load(Ordering::SeqCst),
            time: s.time.snapshot(),
        }
    }

    /// Replaces each worker after it has served `requests` slices (default
    /// [`MAX_REQUESTS_PER_WORKER`]; at least 1).
    pub fn set_recycle_after(&self, requests: u64) {
        self.inner
            .shared
            .recycle_after
            .store(requests.max(1), Ordering::Relaxed);
    }

    /// Starts the worker once in its probe mode, as workers are started (empty environment, the
    /// same OS limits), and returns the confinement it got and what it could still do with raw
    /// system calls (see [`crate::confine`]). The CLI logs [`Confinement::shortfalls`] from it.
    ///
    /// [`Confinement::shortfalls`]: crate::confine::Confinement::shortfalls
    pub async fn probe_confinement(&self) -> Result<ProbeReport, ScriptError> {
        let spec = &self.inner.shared.spawn;
        // Its own executable: a file that exists and that it could read unconfined.
        let mut cmd = worker_command(
            spec,
            &["--probe-confinement".as_ref(), spec.exe.as_os_str()],
        );
        cmd.stdin(Stdio::null());
        let probe = |why: String| {
            ScriptError::Internal(format!(
                "probing the sandbox worker {}'s confinement: {why}",
                spec.exe.display()
            ))
        };
        let output = tokio::time::timeout(Duration::from_secs(30), cmd.output())
            .await
            .map_err(|_| probe("no answer in 30 s".into()))?
            .map_err(|e| probe(e.to_string()))?;
        if !output.status.success() {
            return Err(probe(format!(
                "it exited with {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        serde_json::from_slice(&output.stdout).map_err(|e| {
            probe(format!(
                "its report is unreadable ({e}): {}",
                String::from_utf8_lossy(&output.stdout).trim()
            ))
        })
    }

    /// The worker slots now (a slot being refilled is missing).
    pub fn workers(&self) -> Vec<WorkerInfo> {
        self.inner
            .shared
            .slots
            .lock()
            .map(|slots| slots.iter().flatten().copied().collect())
            .unwrap_or_default()
    }

    /// Runs a script to completion. `inputs` become global variables. Many runs share the
    /// workers; the returned future awaits host calls asynchronously. Nested runs (a host function
    /// that itself calls `run`) are allowed.
    pub async fn run(
        &self,
        source: &ScriptSource,
        inputs: Map<String, ScriptValue>,
        host: Arc<dyn HostFunctions>,
    ) -> Result<ScriptValue, ScriptError> {
        let inner = &self.inner;
        let limits = &inner.config.limits;
        let file = source.file.as_str();
        for (name, value) in &inputs {
            if !is_identifier(name) {
                return Err(ScriptError::Internal(format!(
                    "input {name:?} is not a Python identifier"
                )));
            }
            if depth(value) > MAX_DEPTH {
                return Err(ScriptError::Internal(format!(
                    "input {name} is nested deeper than {MAX_DEPTH} levels"
                )));
            }
        }
        let functions: Vec<String> = host
            .functions()
            .into_iter()
            .filter(|f| is_identifier(f) && !FORBIDDEN_FUNCTIONS.contains(&f.as_str()))
            .collect();
        let run_id = inner.next_run.fetch_add(1, Ordering::Relaxed);
        inner.shared.runs_started.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(run_id, file, "script run started");

        let mut request = Request::Start {
            run_id,
            file: source.file.clone(),
            code: source.code.clone(),
            inputs,
            functions: functions.clone(),
            limits: SliceLimits {
                vm_time: Duration::ZERO,
                max_recursion_depth: limits.max_recursion_depth,
            },
        };
        let mut snapshot = Vec::new();
        let mut vm_used = Duration::ZERO;
        let mut host_calls = 0usize;
        let mut aborting: Option<String> = None;
        let mut previous_worker: Option<Arc<AtomicBool>> = None;
        let mut counted_resume = false;
        loop {
            let remaining = limits.vm_time_total.saturating_sub(vm_used);
            let (slice, limit) = if limits.vm_time_per_call <= remaining {
                (limits.vm_time_per_call, limits.vm_time_per_call)
            } else {
                (remaining, limits.vm_time_total)
            };
            if slice.is_zero() {
                return Err(ScriptError::TimeLimit {
                    file: file.to_owned(),
                    limit: limits.vm_time_total,
                });
            }
            match &mut request {
                Request::Start { limits, .. } | Request::Resume { limits, .. } => {
                    limits.vm_time = slice;
                }
            }
            if !counted_resume
                && previous_worker
                    .as_ref()
                    .is_some_and(|died| died.load(Ordering::SeqCst))
            {
                counted_resume = true;
                inner
                    .shared
                    .resumed_after_death
                    .fetch_add(1, Ordering::Relaxed);
            }
            let slice_began = Instant::now();
            let header = serde_json::to_vec(&request)
                .map_err(|e| ScriptError::Internal(format!("cannot encode a request: {e}")))?;
            let deadline = slice_deadline(slice, snapshot.len(), limits.max_memory_bytes);
            let (tx, rx) = oneshot::channel();
            let job = Job {
                run_id,
                header,
                snapshot: std::mem::take(&mut snapshot),
                deadline,
                queued_at: Instant::now(),
                reply: tx,
            };
            inner
                .jobs
                .send(job)
                .map_err(|_| ScriptError::Internal("the script pool has shut down".into()))?;
            let result = rx
                .await
                .map_err(|_| ScriptError::Internal("the script pool has shut down".into()))?;
            if matches!(result, SliceResult::Reply { .. }) {
                add_nanos(&inner.shared.time.slice_wall, slice_began.elapsed());
            }
            let (reply, next_snapshot, worker_died) = match result {
                SliceResult::Reply {
                    reply,
                    snapshot,
                    worker_died,
                } => (*reply, snapshot, worker_died),
                SliceResult::Died { reason, memory } => {
                    return Err(if memory {
                        ScriptError::MemoryLimit {
                            file: file.to_owned(),
                            detail: format!("the worker was killed: {reason}"),
                        }
                    } else {
                        ScriptError::WorkerDied {
                            file: file.to_owned(),
                            reason,
                        }
                    });
                }
                SliceResult::Stuck { waited } => {
                    tracing::debug!(run_id, ?waited, "slice past its wall-clock deadline");
                    return Err(ScriptError::TimeLimit {
                        file: file.to_owned(),
                        limit,
                    });
                }
                SliceResult::Failed(message) => return Err(ScriptError::Internal(message)),
            };
            match reply {
                Reply::Done { value, print, .. } => {
                    forward_print(host.as_ref(), &print);
                    tracing::debug!(run_id, host_calls, "script run finished");
                    return Ok(value);
                }
                Reply::Failed { error, print, .. } => {
                    forward_print(host.as_ref(), &print);
                    return Err(match aborting {
                        Some(message) => ScriptError::Aborted {
                            file: file.to_owned(),
                            message,
                        },
                        None => failure_to_error(file, error, limit),
                    });
                }
                Reply::Call {
                    function,
                    args,
                    kwargs,
                    vm_time,
                    print,
                    ..
                } => {
                    forward_print(host.as_ref(), &print);
                    if !functions.contains(&function) {
                        return Err(ScriptError::Internal(format!(
                            "a worker asked for a function the run does not have: {function:?}"
                        )));
                    }
                    vm_used = vm_used.saturating_add(vm_time);
                    host_calls += 1;
                    inner.shared.host_calls.fetch_add(1, Ordering::Relaxed);
                    let argument_bytes = args
                        .iter()
                        .chain(kwargs.values())
                        .map(approx_bytes)
                        .fold(0usize, usize::saturating_add);
                    let result = if host_calls > limits.max_host_calls {
                        let message = format!(
                            "host call budget exhausted ({} calls allowed)",
                            limits.max_host_calls
                        );
                        aborting = Some(message.clone());
                        ResumeValue::Abort { message }
                    } else if argument_bytes > MAX_CALL_ARGUMENT_BYTES {
                        // Every argument is recorded in the trajectory and may be copied
                        // into requests: a bound here keeps both finite and readable.
                        ResumeValue::Raise {
                            exception: "ValueError".into(),
                            message: format!(
                                "{function}() was given about {argument_bytes} bytes of                                  arguments; a host call takes at most {MAX_CALL_ARGUMENT_BYTES}"
                            ),
                        }
                    } else {
                        match host.call(&function, args, kwargs).await {
                            Ok(value) if depth(&value) > MAX_DEPTH => ResumeValue::Raise {
                                exception: "ValueError".into(),
                                message: format!(
                                    "{function}() returned a value nested deeper than \
                                     {MAX_DEPTH} levels"
                                ),
                            },
                            Ok(value) => ResumeValue::Return { value },
                            Err(HostError::Raise { exception, message }) => {
                                ResumeValue::Raise { exception, message }
                            }
                            Err(HostError::Abort { message }) => {
                                aborting = Some(message.clone());
                                ResumeValue::Abort { message }
                            }
                        }
                    };
                    request = Request::Resume {
                        run_id,
                        functions: functions.clone(),
                        limits: SliceLimits {
                            vm_time: Duration::ZERO,
                            max_recursion_depth: limits.max_recursion_depth,
                        },
                        result,
                    };
                    snapshot = next_snapshot;
                    previous_worker = Some(worker_died);
                }
            }
        }
    }
}

fn forward_print(host: &dyn HostFunctions, print: &str) {
    if !print.is_empty() {
        host.print(print);
    }
}

/// Wall-clock time a worker gets for a slice: its VM time and half again, two seconds for process
/// scheduling, and time to load the snapshot it is given and dump the one it returns (counted at
/// 8 MiB/s, twice the snapshot's size plus a quarter of the memory limit).
fn slice_deadline(vm_time: Duration, snapshot_len: usize, max_memory: u64) -> Duration {
    let bytes = (snapshot_len as u128)
        .saturating_mul(2)
        .saturating_add(u128::from(max_memory / 4));
    let nanos = bytes.saturating_mul(1_000_000_000) / (8u128 << 20);
    let data = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
    vm_time
        .saturating_add(vm_time / 2)
        .saturating_add(Duration::from_secs(2))
        .saturating_add(data)
}

fn validate(config: &PoolConfig) -> Result<(), ScriptError> {
    let bad = |m: String| Err(ScriptError::Internal(m));
    let limits = &config.limits;
    if config.workers == 0 {
        return bad("a script pool needs at least one worker".into());
    }
    if limits.max_memory_bytes < (1 << 20) {
        return bad("max_memory_bytes must be at least 1 MiB".into());
    }
    let needed = limits
        .max_memory_bytes
        .saturating_mul(4)
        .saturating_add(256 << 20);
    if config.memory_limit_bytes < needed {
        return bad(format!(
            "memory_limit_bytes ({}) must be at least 4 × max_memory_bytes + 256 MiB ({needed})",
            config.memory_limit_bytes
        ));
    }
    if limits.vm_time_per_call.is_zero() || limits.vm_time_total.is_zero() {
        return bad("VM time limits must be positive".into());
    }
    if !config.worker_exe.is_file() {
        return bad(format!(
            "the sandbox worker {} does not exist; build it with `cargo build --workspace`",
            config.worker_exe.display()
        ));
    }
    Ok(())
}

/// Whether `name` is a plain ASCII Python identifier.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && chars.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// The worker executable with `args`, an empty environment, `/` as its directory, piped
/// output, killed when dropped, and the OS limits applied between fork and exec.
fn worker_command(spec: &SpawnSpec, args: &[&std::ffi::OsStr]) -> Command {
    let mut cmd = Command::new(&spec.exe);
    cmd.args(args)
        .env_clear()
        .current_dir("/")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let (address_space, cpu_seconds) = (spec.address_space, spec.cpu_seconds);
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe system
    // calls (setrlimit, prctl) on values copied in; it allocates nothing and takes no locks.
    unsafe {
        cmd.pre_exec(move || limit_self(address_space, cpu_seconds));
    }
    cmd
}

/// Starts one worker process with an empty environment and OS limits.
fn spawn_worker(shared: &Shared, slot: usize) -> Result<WorkerProc, String> {
    let spec = &shared.spawn;
    let max_memory = spec.max_memory.to_string();
    let compiled = spec.compiled_script_bytes.to_string();
    let mut cmd = worker_command(
        spec,
        &[
            "--max-memory-bytes".as_ref(),
            max_memory.as_ref(),
            "--compiled-script-bytes".as_ref(),
            compiled.as_ref(),
        ],
    );
    cmd.stdin(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| {
        format!(
            "cannot start the sandbox worker {}: {e}",
            spec.exe.display()
        )
    })?;
    let pid = child.id().unwrap_or(0);
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err("the sandbox worker's pipes are missing".into());
    };
    let stderr_tail = Arc::new(StdMutex::new(VecDeque::with_capacity(STDERR_TAIL)));
    let stderr_task = tokio::spawn(collect_stderr(stderr, stderr_tail.clone()));
    let alive = shared.alive.fetch_add(1, Ordering::SeqCst) + 1;
    shared.max_alive.fetch_max(alive, Ordering::SeqCst);
    shared.started.fetch_add(1, Ordering::Relaxed);
    shared.set_slot(
        slot,
        Some(WorkerInfo {
            slot,
            pid,
            busy: false,
            requests: 0,
        }),
    );
    tracing::info!(slot, pid, "sandbox worker started");
    Ok(WorkerProc {
        child,
        pid,
        stdin: Some(stdin),
        stdout: BufReader::with_capacity(64 << 10, stdout),
        stderr_tail,
        stderr_task,
        requests: 0,
        busy: Duration::ZERO,
        died: Arc::new(AtomicBool::new(false)),
    })
}

/// Applies the worker's OS limits to the current (forked, not yet exec'd) process.
fn limit_self(address_space: u64, cpu_seconds: u64) -> std::io::Result<()> {
    let set = |resource, soft: u64, hard: u64| {
        let lim = libc::rlimit {
            rlim_cur: soft as libc::rlim_t,
            rlim_max: hard as libc::rlim_t,
        };
        // SAFETY: setrlimit reads the struct we pass and nothing else.
        if unsafe { libc::setrlimit(resource, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    set(libc::RLIMIT_AS, address_space, address_space)?;
    set(
        libc::RLIMIT_CPU,
        cpu_seconds,
        cpu_seconds.saturating_add(10),
    )?;
    set(libc::RLIMIT_NOFILE, WORKER_NOFILE, WORKER_NOFILE)?;
    set(libc::RLIMIT_FSIZE, 0, 0)?;
    set(libc::RLIMIT_CORE, 0, 0)?;
    set(libc::RLIMIT_NPROC, 0, 0)?;
    // SAFETY: prctl with these integer arguments only changes this process's flags.
    unsafe {
        // Die with the thread that started us; never gain privileges through exec.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Keeps the last [`STDERR_TAIL`] bytes a worker writes to stderr.
async fn collect_stderr(
    mut stderr: tokio::process::ChildStderr,
    tail: Arc<StdMutex<VecDeque<u8>>>,
) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if let Ok(mut tail) = tail.lock() {
            tail.extend(&buf[..n]);
            let excess = tail.len().saturating_sub(STDERR_TAIL);
            tail.drain(..excess);
        }
    }
}

/// One worker slot: serves slices from the queue, replacing its worker when it dies or retires.
async fn slot_task(
    slot: usize,
    first: WorkerProc,
    shared: Arc<Shared>,
    queue: Arc<Mutex<mpsc::UnboundedReceiver<Job>>>,
) {
    let mut current = Some(first);
    loop {
        let job = queue.lock().await.recv().await;
        let Some(job) = job else { break };
        if job.reply.is_closed() {
            continue; // the run was dropped while queued
        }
        let mut worker = match current.take() {
            Some(w) => w,
            None => match spawn_worker(&shared, slot) {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(slot, error = %e, "cannot replace a sandbox worker");
                    let _ = job.reply.send(SliceResult::Failed(e));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
        };
        shared.set_slot(
            slot,
            Some(WorkerInfo {
                slot,
                pid: worker.pid,
                busy: true,
                requests: worker.requests,
            }),
        );
        let began = Instant::now();
        let queued = began.saturating_duration_since(job.queued_at);
        let outcome = exchange(&mut worker, &job, shared.frame_limits).await;
        let exchanged = began.elapsed();
        worker.busy += exchanged;
        worker.requests += 1;
        let result = match outcome {
            Ok((reply, snapshot)) => {
                shared.time.add_exchange(queued, exchanged, &reply);
                SliceResult::Reply {
                    reply: Box::new(reply),
                    snapshot,
                    worker_died: worker.died.clone(),
                }
            }
            Err(Exchange::Stuck) => {
                tracing::warn!(
                    slot,
                    pid = worker.pid,
                    "sandbox worker stuck past its deadline; killing it"
                );
                let _ = worker.child.start_kill();
                let death = bury(&shared, &mut worker).await;
                tracing::debug!(slot, status = %death.status, stderr = %death.stderr, "stuck worker reaped");
                SliceResult::Stuck {
                    waited: began.elapsed(),
                }
            }
            Err(Exchange::Broken(what)) => {
                // Give a dying worker a moment to exit on its own so its status says why.
                if tokio::time::timeout(Duration::from_millis(500), worker.child.wait())
                    .await
                    .is_err()
                {
                    let _ = worker.child.start_kill();
                }
                let death = bury(&shared, &mut worker).await;
                // The stderr tail may quote script data: debug level only.
                tracing::warn!(slot, pid = worker.pid, status = %death.status, "sandbox worker died");
                tracing::debug!(slot, pid = worker.pid, problem = %what, stderr = %death.stderr, "sandbox worker died");
                let mut reason = format!("{what}; {}", death.status);
                if !death.stderr.is_empty() {
                    reason.push_str("; stderr: ");
                    reason.push_str(&death.stderr);
                }
                SliceResult::Died {
                    reason,
                    memory: death.memory,
                }
            }
        };
        let healthy = matches!(result, SliceResult::Reply { .. });
        let _ = job.reply.send(result);
        if healthy {
            if worker.requests >= shared.recycle_after.load(Ordering::Relaxed)
                || worker.busy >= shared.busy_budget
            {
                tracing::debug!(slot, pid = worker.pid, requests = worker.requests, busy = ?worker.busy, "recycling a sandbox worker");
                retire(&shared, worker).await;
                shared.recycled.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.set_slot(
                    slot,
                    Some(WorkerInfo {
                        slot,
                        pid: worker.pid,
                        busy: false,
                        requests: worker.requests,
                    }),
                );
                current = Some(worker);
                continue;
            }
        }
        // Refill the slot now, so the next slice does not wait for a process start.
        shared.set_slot(slot, None);
        match spawn_worker(&shared, slot) {
            Ok(w) => current = Some(w),
            Err(e) => tracing::error!(slot, error = %e, "cannot replace a sandbox worker"),
        }
    }
    if let Some(mut w) = current {
        reap(&shared, &mut w).await;
    }
}

/// Why an exchange with a worker failed.
enum Exchange {
    /// No reply before the deadline.
    Stuck,
    /// The worker closed its pipes, sent garbage or broke the protocol.
    Broken(String),
}

/// Sends one request and reads and validates its reply.
async fn exchange(
    worker: &mut WorkerProc,
    job: &Job,
    limits: FrameLimits,
) -> Result<(Reply, Vec<u8>), Exchange> {
    let talk = async {
        let stdin = worker
            .stdin
            .as_mut()
            .ok_or_else(|| Exchange::Broken("the worker's stdin is closed".into()))?;
        write_frame_async(stdin, &job.header, &job.snapshot)
            .await
            .map_err(|e| Exchange::Broken(format!("writing the request failed: {e}")))?;
        read_frame_async(&mut worker.stdout, limits)
            .await
            .map_err(|e| Exchange::Broken(format!("reading the reply failed: {e}")))
    };
    let (header, snapshot) = tokio::time::timeout(job.deadline, talk)
        .await
        .map_err(|_| Exchange::Stuck)??;
    let reply: Reply = serde_json::from_slice(&header)
        .map_err(|e| Exchange::Broken(format!("protocol violation: bad reply: {e}")))?;
    if reply.run_id() != job.run_id {
        return Err(Exchange::Broken(format!(
            "protocol violation: reply for run {} to a request for run {}",
            reply.run_id(),
            job.run_id
        )));
    }
    let wants_snapshot = matches!(reply, Reply::Call { .. });
    if wants_snapshot == snapshot.is_empty() {
        return Err(Exchange::Broken(
            "protocol violation: snapshot missing or unexpected".into(),
        ));
    }
    Ok((reply, snapshot))
}

/// How a worker ended.
struct Death {
    /// Exit code or signal, described.
    status: String,
    /// The tail of its stderr, trimmed.
    stderr: String,
    /// Whether it was monty-alloc's memory kill.
    memory: bool,
}

/// Reaps a dead or killed worker, describes its end and updates the counters.
async fn bury(shared: &Shared, worker: &mut WorkerProc) -> Death {
    worker.died.store(true, Ordering::SeqCst);
    shared.deaths.fetch_add(1, Ordering::Relaxed);
    let status = reap(shared, worker).await;
    let stderr = worker
        .stderr_tail
        .lock()
        .map(|t| {
            let bytes: Vec<u8> = t.iter().copied().collect();
            String::from_utf8_lossy(&bytes).trim().to_owned()
        })
        .unwrap_or_default();
    Death {
        memory: status.and_then(|s| s.code()) == Some(OOM_EXIT_CODE),
        status: status.map_or_else(|| "exit status unknown".to_owned(), describe),
        stderr,
    }
}

/// Waits for a worker to end (killing it if it has not), then for its stderr to drain.
async fn reap(shared: &Shared, worker: &mut WorkerProc) -> Option<ExitStatus> {
    let status = match tokio::time::timeout(Duration::from_secs(5), worker.child.wait()).await {
        Ok(Ok(status)) => Some(status),
        _ => {
            let _ = worker.child.start_kill();
            worker.child.wait().await.ok()
        }
    };
    shared.alive.fetch_sub(1, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_millis(200), &mut worker.stderr_task).await;
    status
}

/// Ends a healthy worker: closing its stdin makes it exit.
async fn retire(shared: &Shared, mut worker: WorkerProc) {
    drop(worker.stdin.take());
    reap(shared, &mut worker).await;
}

fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        if code == OOM_EXIT_CODE {
            format!("exit code {code} (memory limit)")
        } else {
            format!("exit code {code}")
        }
    } else if let Some(signal) = status.signal() {
        let name = match signal {
            libc::SIGKILL => " (SIGKILL)",
            libc::SIGABRT => " (SIGABRT)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGXCPU => " (SIGXCPU: CPU time limit)",
            _ => "",
        };
        format!("killed by signal {signal}{name}")
    } else {
        status.to_string()
    }
}
