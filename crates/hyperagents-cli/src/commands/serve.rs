//! `hyperagents serve`: the dashboard over the results store, read-only.

use std::process::ExitCode;

use anyhow::{Context, Result};
use hyperagents_dashboard::{DashboardState, check_bind, new_form_secret, serve};
use hyperagents_store::{FeedbackStore, ResultsStore};

use crate::cli::ServeArgs;
use crate::settings::Settings;

pub async fn run(settings: &Settings, args: ServeArgs) -> Result<ExitCode> {
    let token = args.token.filter(|t| !t.is_empty());
    check_bind(&args.addr, token.as_deref())?;
    let path = args
        .store
        .unwrap_or_else(|| settings.cache_dir().join("results.sqlite"));
    if !path.exists() {
        // No store yet: an empty one, so the dashboard says there is no run.
        ResultsStore::open(&path)
            .with_context(|| format!("creating the results store {}", path.display()))?;
    }
    let store = ResultsStore::open_read_only(&path)
        .with_context(|| format!("opening the results store {} to read", path.display()))?;
    // Beside the results store.
    let feedback_path = path.with_file_name("feedback.sqlite");
    let feedback = FeedbackStore::open(&feedback_path)
        .with_context(|| format!("opening the feedback file {}", feedback_path.display()))?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let address = listener.local_addr().context("reading the bound address")?;
    eprintln!(
        "dashboard on http://{address}/ reading {}{}",
        path.display(),
        if token.is_some() {
            " (token required)"
        } else {
            ""
        }
    );
    serve(
        listener,
        DashboardState {
            store,
            runs_dir: settings.cache_dir().join("runs"),
            token,
            feedback: Some(feedback),
            form_secret: new_form_secret(),
        },
    )
    .await
    .context("serving the dashboard")?;
    Ok(ExitCode::SUCCESS)
}
