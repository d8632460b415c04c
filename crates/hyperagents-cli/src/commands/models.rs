//! `hyperagents models pull|list|verify`.

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hyperagents_models::{
    Catalog, ModelError, ModelReport, ModelSpec, ModelStatus, ModelStore, Phase, PipConfig,
    Progress, ProgressEvent,
};
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::ModelsCommand;
use crate::settings::{ModelSettings, Settings};

pub async fn run(settings: Settings, command: ModelsCommand) -> Result<ExitCode> {
    let catalog = Catalog::builtin();
    match command {
        ModelsCommand::Pull { name, python } => {
            let names = match name {
                Some(name) => vec![name],
                None => role_models(&settings),
            };
            let store = ModelStore::new(settings.cache_dir()).with_pip(PipConfig {
                python: python.into(),
                ..PipConfig::default()
            });
            for name in names {
                let spec = catalog.get(&name)?.clone();
                let report = with_bar(&store, spec, "pulling", ModelStore::pull).await?;
                let what = if report.already_present {
                    "present"
                } else {
                    "pulled"
                };
                print_report(&report, what);
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Probe { path } => {
            let config = hyperagents_llm_embedded::EngineConfig {
                n_ctx: 256,
                n_seq: 1,
                n_batch: 256,
            };
            hyperagents_llm_embedded::EmbeddedModel::load("probe", &path, None, config)
                .await
                .with_context(|| format!("loading {}", path.display()))?;
            println!("ok: {} loads", path.display());
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::List => {
            let store = ModelStore::new(settings.cache_dir());
            println!(
                "{:<22} {:>9}  {:<10} {:<12} path",
                "name", "size", "status", "default for"
            );
            for entry in store.list(&catalog) {
                let status = match entry.status {
                    ModelStatus::Missing => "missing",
                    ModelStatus::Unverified => "unverified",
                    ModelStatus::Verified => "ok",
                };
                println!(
                    "{:<22} {:>9}  {:<10} {:<12} {}",
                    entry.name,
                    human_bytes(entry.size),
                    status,
                    entry.default_for.join(","),
                    entry.path.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { name } => {
            let store = ModelStore::new(settings.cache_dir());
            let names = match name {
                Some(name) => vec![name],
                None => store
                    .list(&catalog)
                    .into_iter()
                    .filter(|e| e.status != ModelStatus::Missing)
                    .map(|e| e.name)
                    .collect(),
            };
            for name in names {
                let spec = catalog.get(&name)?.clone();
                let report = with_bar(&store, spec, "verifying", ModelStore::verify).await?;
                print_report(&report, "verified");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a blocking pull or verify of `spec` off the async runtime, drawing
/// its progress as a byte bar.
async fn with_bar(
    store: &ModelStore,
    spec: ModelSpec,
    doing: &'static str,
    op: fn(&ModelStore, &ModelSpec, &mut dyn Progress) -> Result<ModelReport, ModelError>,
) -> Result<ModelReport> {
    let store = store.clone();
    let bar = byte_bar();
    let name = spec.name.to_string();
    let report = {
        let bar = bar.clone();
        tokio::task::spawn_blocking(move || {
            op(&store, &spec, &mut |event: &ProgressEvent<'_>| {
                show(&bar, event)
            })
        })
        .await
        .with_context(|| format!("the {doing} task panicked"))?
        .with_context(|| format!("{doing} model `{name}`"))?
    };
    bar.finish_and_clear();
    Ok(report)
}

/// The embedded models that some role is bound to.
fn role_models(settings: &Settings) -> Vec<String> {
    let names: BTreeSet<String> = settings
        .roles
        .values()
        .filter_map(|model| match settings.models.get(model) {
            // Models named by path are the user's files, not pulled.
            Some(ModelSettings::Embedded {
                name, path: None, ..
            }) => Some(name.clone()),
            _ => None,
        })
        .collect();
    names.into_iter().collect()
}

fn byte_bar() -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:28} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn show(bar: &ProgressBar, event: &ProgressEvent<'_>) {
    let phase = match event.phase {
        Phase::Download => "download",
        Phase::Extract => "extract",
        Phase::Verify => "verify",
    };
    let message = match event.part {
        Some((part, parts)) if parts > 1 => format!("{} {phase} {part}/{parts}", event.model),
        _ => format!("{} {phase}", event.model),
    };
    bar.set_message(message);
    bar.set_length(event.total);
    bar.set_position(event.done);
}

fn print_report(report: &ModelReport, what: &str) {
    println!(
        "{} {what}: {} ({}, {} tensors, {} chat template, sha256 {}…) at {}",
        report.name,
        human_bytes(report.size),
        report.architecture,
        report.tensor_count,
        if report.has_chat_template {
            "with"
        } else {
            "NO"
        },
        &report.sha256[..12.min(report.sha256.len())],
        report.path.display()
    );
}

fn human_bytes(bytes: u64) -> String {
    const MB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= 1024.0 * MB {
        format!("{:.2} GiB", bytes as f64 / (1024.0 * MB))
    } else {
        format!("{:.1} MiB", bytes as f64 / MB)
    }
}
