//! The worker process's side: one request in, one reply out. No run's state is kept between
//! requests; only compiled scripts are, as a cache that changes no result.
//!
//! The `hyperagents-worker` binary installs monty-alloc's limiting allocator and calls [`main`].
//! Each slice runs until the script calls a host function (then the paused run is dumped and sent
//! back), finishes, or fails. Name lookups, OS calls and calls to unknown functions are answered
//! here without a round trip: OS access is always refused.

use std::collections::HashMap;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

use monty::{Dump, MontyRun, RunProgress, Session, SessionRef};
use monty_types::{
    CompileOptions, ExcType, ExtFunctionResult, MontyException, MontyObject, NameLookupResult,
    PrintWriter, ResourceLimits, ResourceTracker,
};
use serde_json::Map;

use crate::confine::confine_current_process;
use crate::convert::{from_json, to_json};
use crate::host::FORBIDDEN_FUNCTIONS;
use crate::protocol::{
    Failure, FailureKind, FrameLimits, Reply, Request, ResumeValue, SliceTiming, read_frame,
    write_frame,
};
use crate::syntax::{compile_failure, runtime_failure};

/// Most bytes a script may print per slice (more is a `MemoryError` in the script).
pub const PRINT_CAP: usize = 1 << 20;

/// Exit code: bad command line, or the limiting allocator is not installed.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: a malformed request from the parent.
pub const EXIT_PROTOCOL: u8 = 3;
/// Exit code: the kernel offers a confinement layer that could not be installed.
pub const EXIT_CONFINE: u8 = 4;

/// The worker's entry point: `hyperagents-worker --max-memory-bytes N [--compiled-script-bytes C]`,
/// serving stdin/stdout until stdin closes. `N` is the interpreter's memory limit; the allocator
/// kills the process (exit code 65) past `4 × N`. `C` bounds the compiled scripts kept (default
/// [`COMPILED_SOURCE_BYTES`]; 0 keeps none).
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, path] = args.as_slice()
        && flag == "--probe-confinement"
    {
        return probe_confinement(path);
    }
    let (max_memory, compiled_bytes) = match args.as_slice() {
        [flag, n] if flag == "--max-memory-bytes" => {
            (n.parse::<usize>().ok(), Some(COMPILED_SOURCE_BYTES))
        }
        [flag, n, cflag, c]
            if flag == "--max-memory-bytes" && cflag == "--compiled-script-bytes" =>
        {
            (n.parse::<usize>().ok(), c.parse::<usize>().ok())
        }
        _ => (None, None),
    };
    let (Some(max_memory), Some(compiled_bytes)) = (max_memory.filter(|m| *m > 0), compiled_bytes)
    else {
        eprintln!(
            "usage: hyperagents-worker --max-memory-bytes N [--compiled-script-bytes C]\n\
             (started by hyperagents' script pool; speaks a framed protocol on stdin/stdout)"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    if let Err(e) = monty_alloc::set_limit(Some(max_memory.saturating_mul(4)), false) {
        eprintln!("hyperagents-worker: cannot arm the memory limit: {e}");
        return ExitCode::from(EXIT_USAGE);
    }
    let mut input = BufReader::new(io::stdin().lock());
    let mut output = BufWriter::new(io::stdout().lock());
    // From here on nothing new can be opened, connected or started (see `confine`).
    if let Err(e) = confine_current_process() {
        eprintln!("hyperagents-worker: {e}");
        return ExitCode::from(EXIT_CONFINE);
    }
    match serve(
        &mut input,
        &mut output,
        Worker::new(max_memory, compiled_bytes),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hyperagents-worker: {e}");
            ExitCode::from(EXIT_PROTOCOL)
        }
    }
}

/// `--probe-confinement PATH`: confines this process as a worker is confined, tries what it
/// must then fail to do (open `PATH`, make a socket, fork) and prints the report as JSON.
fn probe_confinement(path: &str) -> ExitCode {
    match crate::confine::probe(path) {
        Ok(report) => match serde_json::to_string(&report) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("hyperagents-worker: {e}");
                ExitCode::from(EXIT_CONFINE)
            }
        },
        Err(e) => {
            eprintln!("hyperagents-worker: {e}");
            ExitCode::from(EXIT_CONFINE)
        }
    }
}

/// Serves requests until the input ends.
pub fn serve(input: &mut impl Read, output: &mut impl Write, mut worker: Worker) -> io::Result<()> {
    // The parent is trusted, but bound what we read anyway.
    let limits = FrameLimits::for_memory(worker.max_memory as u64);
    loop {
        let frame = read_frame(input, limits).map_err(|e| io::Error::other(e.to_string()))?;
        let Some((header, blob)) = frame else {
            return Ok(());
        };
        let received = Instant::now();
        let request: Request = serde_json::from_slice(&header)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let (mut reply, snapshot) = worker.handle(request, &blob);
        drop(blob);
        reply.timing_mut().handled = received.elapsed();
        let header = serde_json::to_vec(&reply).map_err(io::Error::other)?;
        write_frame(output, &header, &snapshot)?;
    }
}

/// Most source bytes of compiled scripts a worker keeps by default; never more than a sixteenth
/// of its memory limit.
pub const COMPILED_SOURCE_BYTES: usize = 4 << 20;

/// Scripts compiled by earlier `Start` requests, keyed by everything compiling reads: agents run
/// the same few scripts many times an episode (the seed's `choose_action` skill about three).
/// A compiled script is cloned for each run (the clone shares its bytecode), so a run never sees
/// another run's state. Bounded by source bytes; full, it is emptied.
struct CompiledScripts {
    scripts: HashMap<CompileKey, MontyRun>,
    source_bytes: usize,
    max_source_bytes: usize,
}

#[derive(PartialEq, Eq, Hash)]
struct CompileKey {
    file: String,
    code: String,
    inputs: Vec<String>,
}

impl CompiledScripts {
    /// The compiled script, compiling it (and keeping it) on first sight.
    fn get(
        &mut self,
        file: &str,
        code: String,
        inputs: Vec<String>,
    ) -> Result<MontyRun, MontyException> {
        let key = CompileKey {
            file: file.to_owned(),
            code,
            inputs,
        };
        if let Some(run) = self.scripts.get(&key) {
            return Ok(run.clone());
        }
        let run = MontyRun::new(
            key.code.clone(),
            file,
            key.inputs.clone(),
            CompileOptions::default(),
        )?;
        let bytes = key.code.len();
        if bytes <= self.max_source_bytes {
            if self.source_bytes + bytes > self.max_source_bytes {
                self.scripts.clear();
                self.source_bytes = 0;
            }
            self.source_bytes += bytes;
            self.scripts.insert(key, run.clone());
        }
        Ok(run)
    }
}

/// One worker's state between requests: its memory limit and the scripts it has compiled.
pub struct Worker {
    max_memory: usize,
    compiled: CompiledScripts,
}

impl Worker {
    /// A worker whose interpreter may use `max_memory` bytes, keeping compiled scripts of up to
    /// `compiled_bytes` source bytes (and at most a sixteenth of `max_memory`).
    pub fn new(max_memory: usize, compiled_bytes: usize) -> Self {
        Self {
            max_memory,
            compiled: CompiledScripts {
                scripts: HashMap::new(),
                source_bytes: 0,
                max_source_bytes: compiled_bytes.min(max_memory / 16),
            },
        }
    }

    /// Runs one request: returns the reply and the snapshot blob (empty unless the reply is
    /// `Call`).
    pub fn handle(&mut self, request: Request, blob: &[u8]) -> (Reply, Vec<u8>) {
        let mut print = String::new();
        let mut timing = SliceTiming::default();
        match request {
            Request::Start {
                run_id,
                file,
                code,
                inputs,
                functions,
                limits,
            } => {
                let mut names = Vec::with_capacity(inputs.len());
                let mut values = Vec::with_capacity(inputs.len());
                for (name, value) in &inputs {
                    match from_json(value) {
                        Ok(v) => {
                            names.push(name.clone());
                            values.push(v);
                        }
                        Err(e) => {
                            let error = internal(format!("input {name}: {e}"));
                            return failed(run_id, error, print, timing);
                        }
                    }
                }
                let began = Instant::now();
                let compiled = self.compiled.get(&file, code, names);
                timing.compile = began.elapsed();
                let run = match compiled {
                    Ok(run) => run,
                    Err(exc) => return failed(run_id, compile_failure(&exc), print, timing),
                };
                let resource_limits = ResourceLimits::default()
                    .max_duration(limits.vm_time)
                    .max_memory(self.max_memory)
                    .max_recursion_depth(limits.max_recursion_depth);
                let began = Instant::now();
                let progress = run.start(
                    values,
                    ResourceTracker::new(resource_limits),
                    PrintWriter::CollectString(&mut print, Some(PRINT_CAP)),
                );
                drive(run_id, &file, &functions, progress, print, timing, began)
            }
            Request::Resume {
                run_id,
                functions,
                limits,
                result,
            } => {
                let began = Instant::now();
                let dump = Dump::load(blob);
                timing.load = began.elapsed();
                let dump = match dump {
                    Ok(dump) => dump,
                    Err(e) => {
                        let error = internal(format!("bad snapshot: {e:?}"));
                        return failed(run_id, error, print, timing);
                    }
                };
                let file = dump.script_name;
                let Session::Running(progress) = dump.state else {
                    let error = internal("snapshot is not a paused run".into());
                    return failed(run_id, error, print, timing);
                };
                let RunProgress::FunctionCall(mut call) = *progress else {
                    let error = internal("snapshot is not paused at a call".into());
                    return failed(run_id, error, print, timing);
                };
                call.tracker_mut().set_max_duration(limits.vm_time);
                let began = Instant::now();
                let pw = PrintWriter::CollectString(&mut print, Some(PRINT_CAP));
                let progress = match result {
                    ResumeValue::Return { value } => match from_json(&value) {
                        Ok(v) => call.resume(v, pw),
                        Err(e) => call.resume(exception(ExcType::ValueError, e.to_string()), pw),
                    },
                    ResumeValue::Raise {
                        exception: name,
                        message,
                    } => call.resume(raised(&name, message), pw),
                    ResumeValue::Abort { message } => {
                        call.abort(exception(ExcType::RuntimeError, message), pw)
                    }
                };
                drive(run_id, &file, &functions, progress, print, timing, began)
            }
        }
    }
}

/// The exception a host's `Raise` becomes; unknown type names become `RuntimeError`.
fn raised(name: &str, message: String) -> MontyException {
    match name.parse::<ExcType>() {
        Ok(t) => exception(t, message),
        Err(_) => exception(ExcType::RuntimeError, format!("{name}: {message}")),
    }
}

fn exception(t: ExcType, message: String) -> MontyException {
    MontyException::new(t, Some(message))
}

fn internal(message: String) -> Failure {
    Failure {
        kind: FailureKind::Internal,
        exception: String::new(),
        message,
        line: None,
        column: None,
        traceback: String::new(),
    }
}

fn failed(run_id: u64, error: Failure, print: String, timing: SliceTiming) -> (Reply, Vec<u8>) {
    (
        Reply::Failed {
            run_id,
            error,
            print,
            timing,
        },
        Vec::new(),
    )
}

fn is_host_function(functions: &[String], name: &str) -> bool {
    !FORBIDDEN_FUNCTIONS.contains(&name) && functions.iter().any(|f| f == name)
}

/// Runs until the next host call, completion or failure. `began` is when this slice's running
/// began: `timing.run` ends when the run pauses, ends or fails, `timing.dump` after its snapshot.
fn drive(
    run_id: u64,
    file: &str,
    functions: &[String],
    mut progress: Result<RunProgress, MontyException>,
    mut print: String,
    mut timing: SliceTiming,
    began: Instant,
) -> (Reply, Vec<u8>) {
    let ran = |timing: &mut SliceTiming| timing.run = began.elapsed();
    loop {
        let pw = PrintWriter::CollectString(&mut print, Some(PRINT_CAP));
        progress = match progress {
            Err(exc) => {
                ran(&mut timing);
                return failed(run_id, runtime_failure(&exc), print, timing);
            }
            Ok(RunProgress::Complete(value)) => {
                ran(&mut timing);
                return match to_json(&value) {
                    Ok(value) => (
                        Reply::Done {
                            run_id,
                            value,
                            print,
                            timing,
                        },
                        Vec::new(),
                    ),
                    Err(e) => {
                        let error = Failure {
                            kind: FailureKind::Exception,
                            exception: "ValueError".into(),
                            message: format!("the script's result: {e}"),
                            line: None,
                            column: None,
                            traceback: format!("ValueError: the script's result: {e}"),
                        };
                        failed(run_id, error, print, timing)
                    }
                };
            }
            Ok(RunProgress::NameLookup(lookup)) => {
                let result = if is_host_function(functions, &lookup.name) {
                    NameLookupResult::Value(MontyObject::Function {
                        name: lookup.name.clone(),
                        docstring: None,
                    })
                } else {
                    NameLookupResult::Undefined
                };
                lookup.resume(result, pw)
            }
            Ok(RunProgress::OsCall(call)) => {
                let refusal = call.function_call.on_no_handler();
                call.resume(refusal, pw)
            }
            Ok(RunProgress::ResolveFutures(futures)) => futures.abort(
                MontyException::runtime_error("asynchronous host calls are not supported"),
                pw,
            ),
            Ok(RunProgress::FunctionCall(call)) => {
                if call.object_id.is_some() {
                    let e = exception(
                        ExcType::AttributeError,
                        format!("no host method {:?}", call.function_name),
                    );
                    call.resume(e, pw)
                } else if !is_host_function(functions, &call.function_name) {
                    let name = call.function_name.clone();
                    call.resume(ExtFunctionResult::NotFound(name), pw)
                } else {
                    match call_arguments(&call.args, &call.kwargs) {
                        Err(message) => call.resume(exception(ExcType::ValueError, message), pw),
                        Ok((args, kwargs)) => {
                            let function = call.function_name.clone();
                            let vm_time = call.tracker().elapsed();
                            let paused = RunProgress::FunctionCall(call);
                            ran(&mut timing);
                            let dumping = Instant::now();
                            let snapshot = monty::dump(file, None, SessionRef::Running(&paused));
                            timing.dump = dumping.elapsed();
                            return match snapshot {
                                Ok(snapshot) => (
                                    Reply::Call {
                                        run_id,
                                        function,
                                        args,
                                        kwargs,
                                        vm_time,
                                        print,
                                        timing,
                                    },
                                    snapshot,
                                ),
                                Err(e) => {
                                    let error = internal(format!("snapshot: {e}"));
                                    failed(run_id, error, print, timing)
                                }
                            };
                        }
                    }
                }
            }
        };
    }
}

type Arguments = (Vec<serde_json::Value>, Map<String, serde_json::Value>);

fn call_arguments(
    args: &[MontyObject],
    kwargs: &[(MontyObject, MontyObject)],
) -> Result<Arguments, String> {
    let args = args
        .iter()
        .enumerate()
        .map(|(i, a)| to_json(a).map_err(|e| format!("argument {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut map = Map::new();
    for (key, value) in kwargs {
        let key = match key {
            MontyObject::String(s) => s.clone(),
            other => other.to_string(),
        };
        let value = to_json(value).map_err(|e| format!("argument {key}: {e}"))?;
        map.insert(key, value);
    }
    Ok((args, map))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::protocol::SliceLimits;

    fn start(run_id: u64, code: &str, inputs: serde_json::Value) -> Request {
        let serde_json::Value::Object(inputs) = inputs else {
            panic!("inputs must be an object");
        };
        Request::Start {
            run_id,
            file: "script.py".into(),
            code: code.into(),
            inputs,
            functions: vec!["ask".into()],
            limits: SliceLimits {
                vm_time: Duration::from_secs(5),
                max_recursion_depth: 100,
            },
        }
    }

    fn done_value(reply: &Reply) -> serde_json::Value {
        match reply {
            Reply::Done { value, .. } => value.clone(),
            other => panic!("expected Done, got {other:?}"),
        }
    }

    #[test]
    fn a_compiled_script_is_reused_and_runs_never_share_state() {
        let mut worker = Worker::new(64 << 20, COMPILED_SOURCE_BYTES);
        let code = "seen = []\nseen.append(n)\nlen(seen) + n";
        let (first, _) = worker.handle(start(1, code, json!({"n": 1})), &[]);
        let (second, _) = worker.handle(start(2, code, json!({"n": 1})), &[]);
        assert_eq!(done_value(&first), json!(2));
        // The second run starts from a fresh heap: its list holds one element again.
        assert_eq!(done_value(&second), json!(2));
        assert_eq!(worker.compiled.scripts.len(), 1);
        assert_eq!(worker.compiled.source_bytes, code.len());
        // Other input names compile to another script.
        let (third, _) = worker.handle(start(3, "m * 2", json!({"m": 4})), &[]);
        assert_eq!(done_value(&third), json!(8));
        assert_eq!(worker.compiled.scripts.len(), 2);
    }

    #[test]
    fn a_paused_run_resumes_from_its_snapshot_with_timings() {
        let mut worker = Worker::new(64 << 20, COMPILED_SOURCE_BYTES);
        let (reply, snapshot) = worker.handle(start(1, "x = ask('q')\nx + 1", json!({})), &[]);
        let Reply::Call {
            function, timing, ..
        } = &reply
        else {
            panic!("expected a call, got {reply:?}");
        };
        assert_eq!(function, "ask");
        assert!(!snapshot.is_empty());
        assert_eq!(timing.load, Duration::ZERO, "a start loads no snapshot");
        let resume = Request::Resume {
            run_id: 1,
            functions: vec!["ask".into()],
            limits: SliceLimits {
                vm_time: Duration::from_secs(5),
                max_recursion_depth: 100,
            },
            result: ResumeValue::Return { value: json!(41) },
        };
        let (reply, rest) = worker.handle(resume, &snapshot);
        assert_eq!(done_value(&reply), json!(42));
        assert!(rest.is_empty());
        let timing = reply.timing();
        assert_eq!(
            timing.compile,
            Duration::ZERO,
            "a resumption compiles nothing"
        );
        assert_eq!(timing.dump, Duration::ZERO, "a finished run is not dumped");
    }

    #[test]
    fn compiled_scripts_are_bounded_by_source_bytes() {
        // A sixteenth of 1 MiB: 64 KiB of source.
        let mut worker = Worker::new(1 << 20, COMPILED_SOURCE_BYTES);
        assert_eq!(worker.compiled.max_source_bytes, 64 << 10);
        let padding = "#".repeat(40 << 10);
        let first = format!("{padding}\n1");
        let second = format!("{padding}\n2");
        let (reply, _) = worker.handle(start(1, &first, json!({})), &[]);
        assert_eq!(done_value(&reply), json!(1));
        let (reply, _) = worker.handle(start(2, &second, json!({})), &[]);
        assert_eq!(done_value(&reply), json!(2));
        // The second did not fit beside the first: the cache was emptied, then kept it.
        assert_eq!(worker.compiled.scripts.len(), 1);
        assert_eq!(worker.compiled.source_bytes, second.len());
        // A script larger than the whole bound runs and is not kept.
        let huge = format!("{}\n3", "#".repeat(80 << 10));
        let (reply, _) = worker.handle(start(3, &huge, json!({})), &[]);
        assert_eq!(done_value(&reply), json!(3));
        assert_eq!(worker.compiled.source_bytes, second.len());
        // A script that does not compile is reported each time, never kept.
        let (reply, _) = worker.handle(start(4, "def (", json!({})), &[]);
        assert!(matches!(reply, Reply::Failed { .. }), "{reply:?}");
        assert_eq!(worker.compiled.scripts.len(), 1);
        // A worker told to keep none compiles every time.
        let mut worker = Worker::new(64 << 20, 0);
        let (reply, _) = worker.handle(start(5, "1 + 1", json!({})), &[]);
        assert_eq!(done_value(&reply), json!(2));
        assert!(worker.compiled.scripts.is_empty());
    }
}
