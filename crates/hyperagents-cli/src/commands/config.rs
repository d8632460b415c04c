//! `hyperagents config show`.

use std::process::ExitCode;

use anyhow::{Context, Result};

use crate::cli::ConfigCommand;
use crate::settings::Settings;

pub fn run(settings: &Settings, command: ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Show => {
            // API keys are `skip_serializing`: they cannot appear here.
            let text = toml::to_string_pretty(settings).context("rendering the settings")?;
            print!("{text}");
            let keys = [
                ("openai", settings.openai.api_key.is_some()),
                ("anthropic", settings.anthropic.api_key.is_some()),
            ];
            for (provider, set) in keys {
                println!(
                    "# {provider} API key: {}",
                    if set { "set (hidden)" } else { "not set" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
