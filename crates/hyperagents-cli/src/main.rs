//! `hyperagents`: the command-line entry point.
//!
//! Exit codes: 0 success; 1 any error (printed with its chain of causes);
//! 2 bad usage (from clap); 3 a budget ran out before the work was done
//! (any error whose chain holds `LlmError::BudgetExhausted`: `eval` and
//! `evolve` stop at their next safe point with one); 130 or 143: `eval` or
//! `evolve` stopped by SIGINT or SIGTERM (128 + the signal's number, as a
//! shell reports it). A run stopped either way stored nothing cut short
//! and can be continued (`eval` again, `resume`).

mod builtin;
mod cli;
mod commands;
mod model_factory;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    init_tracing(cli.global.verbose, cli.global.quiet);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            let budget = err.chain().any(|c| {
                matches!(
                    c.downcast_ref::<hyperagents_llm::LlmError>(),
                    Some(hyperagents_llm::LlmError::BudgetExhausted { .. })
                )
            });
            if budget {
                ExitCode::from(3)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Logs go to stderr; `RUST_LOG` overrides the level chosen by `-v`/`-q`.
/// chromiumoxide warns about every DevTools event newer than its protocol
/// tables: noise at the default levels.
fn init_tracing(verbose: u8, quiet: bool) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::filter::FilterExt;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,llama_cpp_2=error,chromiumoxide=error",
        (false, 1) => "info,llama_cpp_2=warn,chromiumoxide=error",
        (false, 2) => "debug,llama_cpp_2=info,chromiumoxide=warn",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .with_filter(filter.and(tracing_subscriber::filter::filter_fn(|meta| {
            !carries_wire_data(meta.target()) || *meta.level() <= tracing::Level::INFO
        })));
    tracing_subscriber::registry().with(layer).init();
}

/// Libraries whose debug and trace events print whole DevTools messages and
/// WebSocket frames: page contents, and the values a login hook types,
/// passwords included. Whatever `-v` or `RUST_LOG` says, they log at info
/// at most, so no secret reaches a log.
fn carries_wire_data(target: &str) -> bool {
    [
        "chromiumoxide",
        "tungstenite",
        "tokio_tungstenite",
        "async_tungstenite",
    ]
    .iter()
    .any(|prefix| {
        target == *prefix
            || target
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with("::"))
    })
}

/// Ends the process quietly when stdout is a pipe whose reader has gone
/// (`hyperagents status RUN | head -1`), as command-line tools do. `println!`
/// panics on a broken pipe; SIGPIPE stays ignored (Rust's default), because
/// this process also writes to sockets, where a closed peer must be an
/// error, not the end of the process.
fn quiet_on_closed_stdout() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        report(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::carries_wire_data;

    #[test]
    fn the_libraries_that_print_wire_messages_are_the_ones_capped() {
        for target in [
            "chromiumoxide",
            "chromiumoxide::conn",
            "chromiumoxide::handler::target",
            "tungstenite::protocol",
            "tokio_tungstenite",
            "async_tungstenite::stream",
        ] {
            assert!(carries_wire_data(target), "{target}");
        }
        for target in [
            "hyperagents",
            "chromiumoxide_cdp",
            "tungstenite_extra",
            "hyper::proto",
        ] {
            assert!(!carries_wire_data(target), "{target}");
        }
    }
}
