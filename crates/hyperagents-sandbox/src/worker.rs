//! The worker process's side: one request in, one reply out, no state kept between requests.
//!
//! The `hyperagents-worker` binary installs monty-alloc's limiting allocator and calls [`main`].
//! Each slice runs until the script calls a host function (then the paused run is dumped and sent
//! back), finishes, or fails. Name lookups, OS calls and calls to unknown functions are answered
//! here without a round trip: OS access is always refused.

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::process::ExitCode;

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
    Failure, FailureKind, FrameLimits, Reply, Request, ResumeValue, read_frame, write_frame,
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

/// The worker's entry point: `hyperagents-worker --max-memory-bytes N`, serving stdin/stdout
/// until stdin closes. `N` is the interpreter's memory limit; the allocator kills the process
/// (exit code 65) past `4 × N`.
pub fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [flag, path] = args.as_slice()
        && flag == "--probe-confinement"
    {
        return probe_confinement(path);
    }
    let max_memory = match args.as_slice() {
        [flag, n] if flag == "--max-memory-bytes" => n.parse::<usize>().ok(),
        _ => None,
    };
    let Some(max_memory) = max_memory.filter(|m| *m > 0) else {
        eprintln!(
            "usage: hyperagents-worker --max-memory-bytes N\n\
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
    match serve(&mut input, &mut output, max_memory) {
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
pub fn serve(input: &mut impl Read, output: &mut impl Write, max_memory: usize) -> io::Result<()> {
    // The parent is trusted, but bound what we read anyway.
    let limits = FrameLimits::for_memory(max_memory as u64);
    loop {
        let frame = read_frame(input, limits).map_err(|e| io::Error::other(e.to_string()))?;
        let Some((header, blob)) = frame else {
            return Ok(());
        };
        let request: Request = serde_json::from_slice(&header)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let (reply, snapshot) = handle(request, &blob, max_memory);
        drop(blob);
        let header = serde_json::to_vec(&reply).map_err(io::Error::other)?;
        write_frame(output, &header, &snapshot)?;
    }
}

/// Runs one request: returns the reply and the snapshot blob (empty unless the reply is `Call`).
pub fn handle(request: Request, blob: &[u8], max_memory: usize) -> (Reply, Vec<u8>) {
    let mut print = String::new();
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
                    Err(e) => return failed(run_id, internal(format!("input {name}: {e}")), print),
                }
            }
            let run = match MontyRun::new(code, &file, names, CompileOptions::default()) {
                Ok(run) => run,
                Err(exc) => return failed(run_id, compile_failure(&exc), print),
            };
            let resource_limits = ResourceLimits::default()
                .max_duration(limits.vm_time)
                .max_memory(max_memory)
                .max_recursion_depth(limits.max_recursion_depth);
            let progress = run.start(
                values,
                ResourceTracker::new(resource_limits),
                PrintWriter::CollectString(&mut print, Some(PRINT_CAP)),
            );
            drive(run_id, &file, &functions, progress, print)
        }
        Request::Resume {
            run_id,
            functions,
            limits,
            result,
        } => {
            let dump = match Dump::load(blob) {
                Ok(dump) => dump,
                Err(e) => return failed(run_id, internal(format!("bad snapshot: {e:?}")), print),
            };
            let file = dump.script_name;
            let Session::Running(progress) = dump.state else {
                return failed(
                    run_id,
                    internal("snapshot is not a paused run".into()),
                    print,
                );
            };
            let RunProgress::FunctionCall(mut call) = *progress else {
                return failed(
                    run_id,
                    internal("snapshot is not paused at a call".into()),
                    print,
                );
            };
            call.tracker_mut().set_max_duration(limits.vm_time);
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
            drive(run_id, &file, &functions, progress, print)
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

fn failed(run_id: u64, error: Failure, print: String) -> (Reply, Vec<u8>) {
    (
        Reply::Failed {
            run_id,
            error,
            print,
        },
        Vec::new(),
    )
}

fn is_host_function(functions: &[String], name: &str) -> bool {
    !FORBIDDEN_FUNCTIONS.contains(&name) && functions.iter().any(|f| f == name)
}

/// Runs until the next host call, completion or failure.
fn drive(
    run_id: u64,
    file: &str,
    functions: &[String],
    mut progress: Result<RunProgress, MontyException>,
    mut print: String,
) -> (Reply, Vec<u8>) {
    loop {
        let pw = PrintWriter::CollectString(&mut print, Some(PRINT_CAP));
        progress = match progress {
            Err(exc) => return failed(run_id, runtime_failure(&exc), print),
            Ok(RunProgress::Complete(value)) => {
                return match to_json(&value) {
                    Ok(value) => (
                        Reply::Done {
                            run_id,
                            value,
                            print,
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
                        failed(run_id, error, print)
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
                            return match monty::dump(file, None, SessionRef::Running(&paused)) {
                                Ok(snapshot) => (
                                    Reply::Call {
                                        run_id,
                                        function,
                                        args,
                                        kwargs,
                                        vm_time,
                                        print,
                                    },
                                    snapshot,
                                ),
                                Err(e) => failed(run_id, internal(format!("snapshot: {e}")), print),
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
