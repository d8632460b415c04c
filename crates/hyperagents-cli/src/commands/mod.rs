//! One module per subcommand; each returns the process exit status.

mod bench;
mod bench_episodes;
mod bench_meta;
mod bench_miniwob;
mod bench_runtime;
mod chat;
mod config;
mod data;
mod eval;
mod evolve;
mod feedback;
mod mcp;
mod models;
mod programs;
mod serve;
mod suites;
mod worker;

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::settings::Settings;

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let settings = Settings::load(cli.global.config.as_deref(), &env, cli.global.overrides())?;
    match cli.command {
        Command::Chat(args) => chat::run(settings, args).await,
        Command::Models(command) => models::run(settings, command).await,
        Command::Data(command) => data::run(&settings, command),
        Command::Config(command) => config::run(&settings, command),
        Command::Bench(command) => bench::run(settings, command).await,
        Command::Program(command) => programs::check(command),
        Command::Run(args) => programs::run(settings, args).await,
        Command::Eval(args) => eval::run(settings, args).await,
        Command::Trace(args) => programs::trace(&args),
        Command::Evolve(args) => evolve::run(settings, args).await,
        Command::Resume(args) => evolve::resume(settings, args).await,
        Command::Status(args) => evolve::status(&settings, &args),
        Command::Report(args) => evolve::report(&settings, &args),
        Command::Compare(args) => evolve::compare(&settings, &args),
        Command::Serve(args) => serve::run(&settings, args).await,
        Command::Feedback(command) => feedback::run(&settings, command),
        Command::Worker(args) => worker::run(settings, args).await,
        Command::Mcp(args) => mcp::run(&settings, &cli.global, args).await,
        Command::Improve(args) => programs::improve(settings, args).await,
        Command::Init(args) => {
            crate::builtin::write_seed(&args.dir)?;
            println!(
                "wrote the seed program to {}; check it with `hyperagents program check {}`",
                args.dir.display(),
                args.dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
