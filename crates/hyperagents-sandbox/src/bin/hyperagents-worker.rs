//! `hyperagents-worker`: one sandbox worker process, started by `ScriptPool` (see the
//! `hyperagents_sandbox::worker` module). Its allocator counts every byte so the interpreter's
//! memory limit holds, and ends the process (exit code 65) far past it.

#[global_allocator]
static ALLOC: monty_alloc::LimitedAllocator = monty_alloc::LimitedAllocator;

fn main() -> std::process::ExitCode {
    hyperagents_sandbox::worker::main()
}
