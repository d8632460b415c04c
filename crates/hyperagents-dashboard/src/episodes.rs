//! A node page (its diffs, episodes and meta trace), an episode page (its
//! screenshots and span tree) and the screenshots themselves.

use super::*;

pub(crate) async fn node_page(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node)): UrlPath<(String, String)>,
) -> Response {
    let report = match report_of(&state, &run) {
        Ok(report) => report,
        Err(response) => return *response,
    };
    let Some(summary) = report.nodes.iter().find(|n| n.node_id == node) else {
        return not_found(&format!("no node `{node}` in run `{run}`"));
    };
    let mut body = format!(
        "<h1>Node {} of run <a href=\"/runs/{}\">{}</a></h1><p>generation {}, {}, parent {}; \
         stage 1 {}, full {}, test {}; {} meta tokens.</p>",
        html(&node),
        segment(&run),
        html(&run),
        summary.generation,
        html(summary.status.as_str()),
        summary.parent_id.as_deref().map_or_else(
            || "none (the seed)".to_string(),
            |p| format!(
                "<a href=\"/runs/{}/nodes/{}\">{}</a>",
                segment(&run),
                segment(p),
                html(p)
            )
        ),
        percent(summary.stage1),
        percent(summary.full),
        percent(summary.test),
        summary.meta_tokens,
    );
    if !summary.errors.is_empty() {
        body.push_str("<h2>Validation errors</h2><ul>");
        for error in &summary.errors {
            let _ = write!(body, "<li>{}</li>", html(error));
        }
        body.push_str("</ul>");
    }
    for stage in STAGES {
        let records = match stage_records(&state, &run, &node, stage) {
            Ok(records) => records,
            Err(response) => return *response,
        };
        if records.is_empty() {
            continue;
        }
        let _ = write!(
            body,
            "<h2>Episodes: {stage}</h2><table><tr><th>task</th><th>seed</th><th>success</th>\
             <th>reason</th><th>tokens</th><th>ms</th></tr>"
        );
        for (index, record) in records.iter().enumerate() {
            let task = &record.key.task;
            let link = if record.result.trajectory.is_some() {
                format!(
                    "<a href=\"/runs/{}/nodes/{}/{stage}/{index}\">{}</a>",
                    segment(&run),
                    segment(&node),
                    html(task)
                )
            } else {
                html(task)
            };
            let _ = write!(
                body,
                "<tr><td>{link}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                record.key.seed,
                if record.result.success { "yes" } else { "no" },
                html(&clip(&record.result.reason, 200)),
                record.result.tokens_in + record.result.tokens_out,
                record.result.duration_ms,
            );
        }
        body.push_str("</table>");
    }
    match run_dir(&state, &run) {
        Some(dir) if safe_id(&node) => {
            let nodes = dir.join("nodes");
            match std::fs::read_to_string(nodes.join(format!("{node}.diff"))) {
                Ok(diff) if !diff.is_empty() => {
                    let _ = write!(
                        body,
                        "<h2>Diff against its parent</h2><pre>{}</pre>",
                        diff_lines(&diff)
                    );
                }
                Ok(_) => body.push_str("<p>No diff (the seed, or an unchanged copy).</p>"),
                Err(_) => body.push_str("<p>No diff file in the run directory.</p>"),
            }
            // Against the seed: what its whole lineage changed.
            if node != "seed" && nodes.join("seed").is_dir() && nodes.join(&node).is_dir() {
                match hyperagents_program::diff_dirs(&nodes.join("seed"), &nodes.join(&node)) {
                    Ok(diff) if !diff.is_empty() => {
                        let _ = write!(
                            body,
                            "<details><summary>Diff against the seed</summary><pre>{}</pre></details>",
                            diff_lines(&diff.unified())
                        );
                    }
                    Ok(_) => body.push_str("<p>The same program as the seed.</p>"),
                    Err(error) => {
                        let _ = write!(
                            body,
                            "<p>No diff against the seed: {}</p>",
                            html(&error.to_string())
                        );
                    }
                }
            }
            if let Ok(trace) = std::fs::read_to_string(nodes.join(format!("{node}.meta.txt"))) {
                let _ = write!(
                    body,
                    "<h2>The meta step that made it</h2><pre>{}</pre>",
                    html(&trace)
                );
            }
        }
        _ => body.push_str("<p>The run's directory is not available here.</p>"),
    }
    page(&format!("{node} of {run}"), &body, false)
}

/// The stages whose episodes a node page lists, in order. The held-out
/// split's are listed too (a person may look at them; no agent does).
pub(crate) const STAGES: [&str; 4] = ["smoke", "stage1", "full", "test"];

/// Longest span text shown on an episode page before it is cut.
pub(crate) const SPAN_TEXT_CHARS: usize = 4000;

/// The stored episodes of a node's stage, in (task, seed) order.
pub(crate) fn stage_records(
    state: &DashboardState,
    run: &str,
    node: &str,
    stage: &str,
) -> Result<Vec<hyperagents_store::EvalRecord>, Box<Response>> {
    let eval_run = state
        .store
        .node_eval_run(run, node, stage)
        .map_err(|error| Box::new(failure(error)))?;
    let Some(eval_run) = eval_run else {
        return Ok(Vec::new());
    };
    let mut records = state
        .store
        .run_evaluations(eval_run)
        .map_err(|error| Box::new(failure(error)))?;
    records.sort_by(|a, b| (&a.key.task, a.key.seed).cmp(&(&b.key.task, b.key.seed)));
    Ok(records)
}

pub(crate) async fn episode_page(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index)): UrlPath<(String, String, String, usize)>,
) -> Response {
    if !STAGES.contains(&stage.as_str()) {
        return not_found(&format!("no stage `{stage}`"));
    }
    let records = match stage_records(&state, &run, &node, &stage) {
        Ok(records) => records,
        Err(response) => return *response,
    };
    let Some(record) = records.get(index) else {
        return not_found(&format!("no episode {index} in stage {stage} of {node}"));
    };
    let mut body = format!(
        "<h1>Episode: {} (seed {})</h1><p>stage {} of node <a href=\"/runs/{}/nodes/{}\">{}</a>; \
         {}; {}; {} + {} tokens; {} ms.</p>",
        html(&record.key.task),
        record.key.seed,
        html(&stage),
        segment(&run),
        segment(&node),
        html(&node),
        if record.result.success {
            "succeeded"
        } else {
            "failed"
        },
        html(&record.result.reason),
        record.result.tokens_in,
        record.result.tokens_out,
        record.result.duration_ms,
    );
    match &record.result.trajectory {
        None => body.push_str("<p>No trajectory was kept for this episode.</p>"),
        Some(path) => match hyperagents_runtime::trace::read_trajectory(path) {
            Ok(trajectory) => {
                let shots = screenshot_paths(&trajectory);
                if !shots.is_empty() {
                    body.push_str("<h2>Screenshots</h2><p>After each action, in order.</p>");
                    for n in 0..shots.len() {
                        let _ = write!(
                            body,
                            "<p><img alt=\"screenshot {}\" style=\"max-width:100%\" \
                             src=\"/runs/{}/nodes/{}/{}/{index}/screenshots/{n}\"></p>",
                            n + 1,
                            segment(&run),
                            segment(&node),
                            segment(&stage),
                        );
                    }
                }
                let _ = write!(
                    body,
                    "<h2>Span tree</h2><p>Every model call with its input and output, every \
                     action, observation and error, in order.</p><pre>{}</pre>",
                    html(&hyperagents_runtime::trace::render_tree(
                        &trajectory,
                        SPAN_TEXT_CHARS
                    ))
                );
            }
            Err(error) => {
                let _ = write!(
                    body,
                    "<p>The trajectory cannot be read: {}</p>",
                    html(&error.to_string())
                );
            }
        },
    }
    body.push_str(&feedback_section(
        &state,
        &run,
        &node,
        &stage,
        &record.key.task,
        record.key.seed,
        &episode_path(&run, &node, &stage, index),
    ));
    if let Some(parent) = parent_of(&state, &run, &node) {
        let _ = write!(
            body,
            "<p><a href=\"/runs/{}/nodes/{}/{}/{index}/versus/{}\">Side by side with its parent \
             {} on this task and seed</a></p>",
            segment(&run),
            segment(&node),
            segment(&stage),
            segment(&parent),
            html(&parent)
        );
    }
    page(&format!("{} of {node}", record.key.task), &body, false)
}

/// The PNG files a trajectory's screenshot spans name, in order.
pub(crate) fn screenshot_paths(
    trajectory: &hyperagents_runtime::trace::Trajectory,
) -> Vec<PathBuf> {
    trajectory
        .spans
        .iter()
        .filter(|s| s.kind == hyperagents_runtime::trace::SpanKind::Screenshot)
        .filter_map(|s| s.output.as_ref()?.as_str().map(PathBuf::from))
        .collect()
}

/// A screenshot of an episode: only a `.png` file its own trajectory
/// names, so no other file can be read through this route.
pub(crate) async fn screenshot(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index, n)): UrlPath<(String, String, String, usize, usize)>,
) -> Response {
    let records = match stage_records(&state, &run, &node, &stage) {
        Ok(records) => records,
        Err(response) => return *response,
    };
    let Some(trajectory) = records
        .get(index)
        .and_then(|r| r.result.trajectory.as_ref())
        .and_then(|p| hyperagents_runtime::trace::read_trajectory(p).ok())
    else {
        return not_found("no such episode or trajectory");
    };
    let Some(path) = screenshot_paths(&trajectory).into_iter().nth(n) else {
        return not_found(&format!("no screenshot {n}"));
    };
    if path.extension().and_then(|e| e.to_str()) != Some("png") {
        return not_found("not a screenshot");
    }
    match std::fs::read(&path) {
        Ok(bytes) => {
            let mut response = ([(header::CONTENT_TYPE, "image/png")], bytes).into_response();
            secure(response.headers_mut());
            response
        }
        Err(_) => not_found("the screenshot file is gone"),
    }
}

pub(crate) fn parent_of(state: &DashboardState, run: &str, node: &str) -> Option<String> {
    state.store.node(run, node).ok().flatten()?.parent_id
}

pub(crate) fn span_tree(record: &hyperagents_store::EvalRecord) -> String {
    match &record.result.trajectory {
        None => "(no trajectory kept)".into(),
        Some(path) => match hyperagents_runtime::trace::read_trajectory(path) {
            Ok(t) => hyperagents_runtime::trace::render_tree(&t, SPAN_TEXT_CHARS),
            Err(error) => format!("(unreadable: {error})"),
        },
    }
}

/// The page of `node`'s episode `index` of `stage`.
pub(crate) fn episode_path(run: &str, node: &str, stage: &str, index: usize) -> String {
    format!(
        "/runs/{}/nodes/{}/{}/{index}",
        segment(run),
        segment(node),
        segment(stage)
    )
}

/// The run's directory: the one its last launch record names, else
/// `<runs_dir>/<run>` (only for ids that can name a folder).
pub(crate) fn run_dir(state: &DashboardState, run: &str) -> Option<PathBuf> {
    let launched = state
        .store
        .last_event(run, "launch")
        .ok()
        .flatten()
        .and_then(|record| match record.event() {
            Ok(EvolutionEvent::Launch(launch)) => launch.dir.clone(),
            _ => None,
        });
    let dir = match launched {
        Some(dir) => dir,
        None if safe_id(run) => state.runs_dir.join(run),
        None => return None,
    };
    Path::new(&dir).is_dir().then_some(dir)
}
