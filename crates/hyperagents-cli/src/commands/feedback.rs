//! `hyperagents feedback export|import`: judgements as JSONL.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hyperagents_store::{Feedback, FeedbackStore};

use crate::cli::FeedbackCommand;
use crate::settings::Settings;

pub fn run(settings: &Settings, command: FeedbackCommand) -> Result<ExitCode> {
    let open = |file: Option<std::path::PathBuf>| -> Result<FeedbackStore> {
        let path = file.unwrap_or_else(|| settings.cache_dir().join("feedback.sqlite"));
        FeedbackStore::open(&path)
            .with_context(|| format!("opening the feedback file {}", path.display()))
    };
    match command {
        FeedbackCommand::Export { run, out, file } => {
            let store = open(file)?;
            let mut text = String::new();
            for record in store.list(run.as_deref())? {
                text.push_str(&serde_json::to_string(&record.feedback)?);
                text.push('\n');
            }
            match out {
                Some(path) => std::fs::write(&path, &text)
                    .with_context(|| format!("writing {}", path.display()))?,
                None => std::io::stdout().write_all(text.as_bytes())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        FeedbackCommand::Import { input, file } => {
            let text = std::fs::read_to_string(&input)
                .with_context(|| format!("reading {}", input.display()))?;
            // Every line is checked before any is stored: a bad file adds nothing.
            let mut judgements = Vec::new();
            for (index, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let feedback: Feedback = serde_json::from_str(line).with_context(|| {
                    format!("{}:{}: not a judgement", input.display(), index + 1)
                })?;
                if let Some(problem) = feedback.problem() {
                    bail!("{}:{}: {problem}", input.display(), index + 1);
                }
                judgements.push(feedback);
            }
            let store = open(file)?;
            let mut added = 0;
            for feedback in &judgements {
                added += usize::from(store.add(feedback)?);
            }
            eprintln!(
                "{added} judgements added, {} already there",
                judgements.len() - added
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
