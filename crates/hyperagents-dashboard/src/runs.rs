//! The runs list, a run page (curves, lineage, nodes, the next parent
//! draw), the comparison of runs, and their JSON.

use super::*;

pub(crate) fn run_items(store: &ResultsStore) -> Result<Vec<RunListItem>, String> {
    let mut items = Vec::new();
    for id in store.evolution_run_ids().map_err(|e| e.to_string())? {
        let report = run_summary(store, &id).map_err(|e| e.to_string())?;
        let best_train = report.best_node_train();
        items.push(RunListItem {
            generations_done: report.generations_done(),
            mode: report.mode.as_str().to_string(),
            status: report.status.as_str().to_string(),
            created_at_ms: report.created_at_ms,
            seed_train: report.seed_train,
            best_train,
            best_node: report.best_node.clone(),
            id,
        });
    }
    Ok(items)
}

pub(crate) async fn runs_api(State(state): State<Arc<DashboardState>>) -> Response {
    match run_items(&state.store) {
        Ok(items) => {
            let mut response = axum::Json(items).into_response();
            secure(response.headers_mut());
            response
        }
        Err(error) => failure(error),
    }
}

pub(crate) async fn runs_page(State(state): State<Arc<DashboardState>>) -> Response {
    let items = match run_items(&state.store) {
        Ok(items) => items,
        Err(error) => return failure(error),
    };
    let mut body = String::from("<h1>Evolution runs</h1>");
    if items.is_empty() {
        body.push_str("<p>No evolution run in this store yet.</p>");
    } else {
        body.push_str(
            "<form method=\"get\" action=\"/compare\"><table><tr><th>compare</th><th>run</th>\
             <th>mode</th><th>status</th><th>generations</th><th>seed (train)</th>\
             <th>best (train)</th><th>best node</th></tr>",
        );
        for item in &items {
            let _ = write!(
                body,
                "<tr><td><input type=\"checkbox\" name=\"run\" value=\"{}\"></td>\
                 <td><a href=\"/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td></tr>",
                html(&item.id),
                segment(&item.id),
                html(&item.id),
                html(&item.mode),
                html(&item.status),
                item.generations_done,
                percent(item.seed_train),
                percent(item.best_train),
                html(&item.best_node),
            );
        }
        body.push_str("</table><button>compare the runs ticked</button></form>");
    }
    page("runs", &body, false)
}

pub(crate) fn spread(s: Option<hyperagents_report::Spread>, as_percent: bool) -> String {
    match s {
        None => "–".into(),
        Some(s) if as_percent => format!(
            "{:.1}% ({:.1}–{:.1}, n={})",
            s.mean * 100.0,
            s.min * 100.0,
            s.max * 100.0,
            s.count
        ),
        Some(s) => format!("{:.0} ({:.0}–{:.0}, n={})", s.mean, s.min, s.max, s.count),
    }
}

/// Runs side by side (`/compare?run=a&run=b`): the per-mode table and the
/// overlays `hyperagents compare` writes as files.
pub(crate) async fn compare_page(
    State(state): State<Arc<DashboardState>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let mut runs: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        // A run named twice is compared once.
        if key == "run" && !runs.iter().any(|r| *r == value) {
            runs.push(value.into_owned());
        }
    }
    if runs.is_empty() {
        return page(
            "compare",
            "<h1>Compare runs</h1><p>Tick runs on the <a href=\"/\">runs page</a>.</p>",
            false,
        );
    }
    for run in &runs {
        if let Err(response) = report_of(&state, run) {
            return *response;
        }
    }
    let comparison = match compare_summary(&state.store, &runs) {
        Ok(comparison) => comparison,
        Err(error) => return failure(error),
    };
    let mut body = String::from(
        "<h1>Runs compared</h1><h2>Runs</h2><table><tr><th>run</th>\
        <th>mode</th><th>generations</th><th>seed (train)</th><th>best (train)</th>\
        <th>accepted improvements</th><th>search tokens</th></tr>",
    );
    for run in &comparison.runs {
        let best = run
            .nodes
            .iter()
            .find(|n| n.node_id == run.best_node)
            .and_then(|n| n.train_score());
        let _ = write!(
            body,
            "<tr><td><a href=\"/runs/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{} of {}</td><td>{}</td></tr>",
            segment(&run.run_id),
            html(&run.run_id),
            html(run.mode.as_str()),
            run.generations_done(),
            percent(run.seed_train),
            percent(best),
            run.accepted_improvements,
            run.comparisons,
            run.tokens.search_tokens(),
        );
    }
    body.push_str(
        "</table><h2>By mode</h2><table><tr><th>mode</th><th>runs</th><th>seed (train)</th>\
         <th>best (train)</th><th>final test</th><th>final improvement</th>\
         <th>search tokens</th></tr>",
    );
    for mode in &comparison.modes {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            html(mode.mode.as_str()),
            mode.runs,
            spread(mode.seed_train, true),
            spread(mode.best_train, true),
            spread(mode.final_test, true),
            spread(mode.final_improvement, true),
            spread(mode.search_tokens, false),
        );
    }
    body.push_str("</table>");
    body.push_str(&charts_html(comparison_chart_svgs(&comparison)));
    page("compare", &body, false)
}

pub(crate) fn generation_rows(report: &RunReport) -> Vec<GenerationRow> {
    report
        .generations
        .iter()
        .map(|g| GenerationRow {
            generation: g.generation,
            best_train: g.best_train,
            mean_train: g.mean_train,
            best_so_far_train: g.best_so_far_train,
            best_node: g.best_node.clone(),
            improvement: g.improvement,
            test_of_best: g.test_of_best,
            total_tokens: g.total_tokens,
            valid_children: g.valid_children,
            failed_attempts: g.failed_attempts,
        })
        .collect()
}

/// The run's report, or the response saying why there is none.
pub(crate) fn report_of(state: &DashboardState, run: &str) -> Result<RunReport, Box<Response>> {
    match state.store.evolution_run(run) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(Box::new(not_found(&format!(
                "no evolution run `{run}` in this store"
            ))));
        }
        Err(error) => return Err(Box::new(failure(error))),
    }
    run_summary(&state.store, run).map_err(|error| Box::new(failure(error)))
}

pub(crate) async fn generations_api(
    State(state): State<Arc<DashboardState>>,
    UrlPath(run): UrlPath<String>,
) -> Response {
    match report_of(&state, &run) {
        Ok(report) => {
            let mut response = axum::Json(generation_rows(&report)).into_response();
            secure(response.headers_mut());
            response
        }
        Err(response) => *response,
    }
}

pub(crate) type NodeValues = std::collections::BTreeMap<String, f64>;

/// Fitness from the judgements as they stand now (nodes where it differs
/// from the automated score), and each node's chance of being drawn in one
/// parent draw of the run's next generation: the engine's own candidates
/// and selection weights, with the run's policy and feedback weight from
/// its config and launch record.
pub(crate) fn next_generation(
    state: &DashboardState,
    run: &str,
    report: &RunReport,
) -> (NodeValues, NodeValues) {
    let Ok(Some(record)) = state.store.evolution_run(run) else {
        return Default::default();
    };
    let run_config = record;
    let policy: hyperagents_evolve::SelectionPolicy = run_config
        .config
        .get("selection")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_else(hyperagents_evolve::SelectionPolicy::dgm_default);
    let weight = state
        .store
        .last_event(run, "launch")
        .ok()
        .flatten()
        .and_then(|e| match e.event() {
            Ok(EvolutionEvent::Launch(launch)) => Some(launch.feedback_weight),
            _ => None,
        })
        .unwrap_or(0.25);
    let before = report.generations_done() + 1;
    let Ok(automated) =
        hyperagents_evolve::fitness::automated_candidates(&state.store, run, before)
    else {
        return Default::default();
    };
    let judgements = match &state.feedback {
        Some(feedback) => hyperagents_evolve::fitness::Judgements::new(
            &feedback
                .list(Some(run))
                .unwrap_or_default()
                .into_iter()
                .map(|r| r.feedback)
                .collect::<Vec<_>>(),
        ),
        None => Default::default(),
    };
    let Ok((candidates, fitness)) = hyperagents_evolve::fitness::with_fitness(
        &state.store,
        &judgements,
        run,
        weight,
        &automated,
    ) else {
        return Default::default();
    };
    let weights = hyperagents_evolve::weights(&policy, &candidates);
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    if total <= 0.0 {
        return (fitness, Default::default());
    }
    let chances = weights
        .into_iter()
        .map(|(node, w)| (node.0, w / total))
        .collect();
    (fitness, chances)
}

/// The run page's node list: a search (node ids containing `q`) and a page.
#[derive(Deserialize, Default)]
pub(crate) struct NodeListQuery {
    pub(crate) q: Option<String>,
    pub(crate) page: Option<usize>,
}

/// Nodes per page of a run page's node table.
pub(crate) const NODES_PER_PAGE: usize = 200;

/// Lineage levels shown open; deeper subtrees start collapsed.
pub(crate) const OPEN_DEPTH: usize = 2;

/// The lineage as nested lists whose subtrees collapse (`<details>`, no
/// script): each node links to its page with its train score and how it
/// compared with its parent.
pub(crate) fn lineage_html(run: &str, report: &RunReport) -> String {
    let mut children: std::collections::BTreeMap<&str, Vec<&hyperagents_report::NodeSummary>> =
        std::collections::BTreeMap::new();
    let mut roots = Vec::new();
    for node in &report.nodes {
        match node.parent_id.as_deref() {
            Some(parent) if report.nodes.iter().any(|n| n.node_id == parent) => {
                children.entry(parent).or_default().push(node);
            }
            _ => roots.push(node),
        }
    }
    let mut out = String::from("<ul class=\"tree\">");
    // (node, depth) to open, or None to close a subtree: iterative, so a
    // deep lineage cannot overflow the stack.
    let mut stack: Vec<Option<(&hyperagents_report::NodeSummary, usize)>> =
        roots.into_iter().rev().map(|n| Some((n, 0))).collect();
    while let Some(item) = stack.pop() {
        let Some((node, depth)) = item else {
            out.push_str("</ul></details></li>");
            continue;
        };
        let label = format!(
            "<a href=\"/runs/{}/nodes/{}\">{}</a> {}{}{}",
            segment(run),
            segment(&node.node_id),
            html(&node.node_id),
            percent(node.train_score()),
            if node.status.as_str() == "valid" {
                ""
            } else {
                " (invalid)"
            },
            match &node.comparison {
                Some(c) if c.accepted => " ✓ accepted",
                _ => "",
            }
        );
        match children.get(node.node_id.as_str()) {
            None => {
                let _ = write!(out, "<li>{label}</li>");
            }
            Some(kids) => {
                let open = if depth < OPEN_DEPTH { " open" } else { "" };
                let _ = write!(
                    out,
                    "<li><details{open}><summary>{label} — {} children</summary><ul>",
                    kids.len()
                );
                stack.push(None);
                for kid in kids.iter().rev() {
                    stack.push(Some((kid, depth + 1)));
                }
            }
        }
    }
    out.push_str("</ul>");
    out
}

pub(crate) async fn run_page(
    State(state): State<Arc<DashboardState>>,
    UrlPath(run): UrlPath<String>,
    Query(list): Query<NodeListQuery>,
) -> Response {
    let report = match report_of(&state, &run) {
        Ok(report) => report,
        Err(response) => return *response,
    };
    let mut body = format!(
        "<h1>Run {}</h1><p>{} mode, run seed {}, {}; seed program {} on train; best node \
         <a href=\"/runs/{}/nodes/{}\">{}</a>; {} of {} children accepted as improvements; \
         {} meta + {} task tokens.</p>",
        html(&run),
        html(report.mode.as_str()),
        report.run_seed,
        html(report.status.as_str()),
        percent(report.seed_train),
        segment(&run),
        segment(&report.best_node),
        html(&report.best_node),
        report.accepted_improvements,
        report.comparisons,
        report.tokens.meta_tokens,
        report.tokens.task_tokens(),
    );
    let t = &report.tokens;
    let _ = write!(
        body,
        "<h2>Tokens and cost per role</h2><table><tr><th>role</th><th>tokens</th><th>cost</th></tr>\
         <tr><td>meta (making nodes)</td><td>{}</td><td>{}</td></tr>\
         <tr><td>task, train split</td><td>{}</td><td>${:.4}</td></tr>\
         <tr><td>task, test split</td><td>{}</td><td>${:.4}</td></tr></table>",
        t.meta_tokens,
        t.meta_cost
            .map_or_else(|| "–".to_string(), |c| format!("${c:.4}")),
        t.task_tokens(),
        t.task_cost,
        t.test_tokens(),
        t.test_cost,
    );
    body.push_str(
        "<h2>Generations</h2><table><tr><th>generation</th><th>best train</th><th>mean train</th>\
         <th>best so far</th><th>improvement</th><th>test of best</th><th>tokens</th>\
         <th>valid</th><th>failed</th></tr>",
    );
    for g in generation_rows(&report) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td></tr>",
            g.generation,
            percent(Some(g.best_train)),
            percent(Some(g.mean_train)),
            percent(Some(g.best_so_far_train)),
            g.improvement
                .map_or_else(|| "–".into(), |i| format!("{:+.1} pp", i * 100.0)),
            percent(g.test_of_best),
            g.total_tokens,
            g.valid_children,
            g.failed_attempts,
        );
    }
    body.push_str("</table>");
    body.push_str(&charts_html(run_chart_svgs(&report)));
    let _ = write!(
        body,
        "<h2>Lineage</h2><p class=\"svg\"><img alt=\"lineage\" src=\"data:image/svg+xml;base64,{}\"></p>",
        base64(run_lineage_svg(&report).as_bytes())
    );
    let _ = write!(body, "<h2>Lineage tree</h2>{}", lineage_html(&run, &report));
    let query = list.q.as_deref().unwrap_or("").trim().to_string();
    let matching: Vec<&hyperagents_report::NodeSummary> = report
        .nodes
        .iter()
        .filter(|n| query.is_empty() || n.node_id.contains(query.as_str()))
        .collect();
    let pages = matching.len().div_ceil(NODES_PER_PAGE).max(1);
    let page_index = list.page.unwrap_or(1).clamp(1, pages);
    let _ = write!(
        body,
        "<h2>Nodes</h2><form method=\"get\" action=\"/runs/{}\"><input name=\"q\" value=\"{}\" \
         placeholder=\"node id contains\"> <button>search</button></form><p>{} of {} nodes; page {} of {}",
        segment(&run),
        html(&query),
        matching.len(),
        report.nodes.len(),
        page_index,
        pages,
    );
    for (label, target) in [
        ("previous", page_index.saturating_sub(1)),
        ("next", page_index + 1),
    ] {
        if target >= 1 && target <= pages && target != page_index {
            let _ = write!(
                body,
                " · <a href=\"/runs/{}?q={}&amp;page={target}\">{label}</a>",
                segment(&run),
                segment(&query),
            );
        }
    }
    // Fitness as judged now, where people's judgements make it differ
    // from the automated score, and each node's chance in one parent draw
    // of the next generation.
    let (fitness, next_weights) = next_generation(&state, &run, &report);
    body.push_str(
        "</p><table><tr><th>node</th><th>parent</th><th>generation</th><th>status</th>\
         <th>changed</th><th>stage 1</th><th>full</th><th>fitness</th><th>next draw</th>\
         <th>test</th><th>vs parent</th></tr>",
    );
    for node in matching
        .into_iter()
        .skip((page_index - 1) * NODES_PER_PAGE)
        .take(NODES_PER_PAGE)
    {
        let parent = node.parent_id.as_deref().unwrap_or("–");
        let versus = node.comparison.as_ref().map_or_else(
            || "–".to_string(),
            |c| {
                format!(
                    "{:+.1} pp{}",
                    c.mean_difference * 100.0,
                    if c.accepted { ", accepted" } else { "" }
                )
            },
        );
        let kinds: Vec<&str> = node.diff_kinds.iter().map(|k| k.as_str()).collect();
        let _ = write!(
            body,
            "<tr><td><a href=\"/runs/{}/nodes/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            segment(&run),
            segment(&node.node_id),
            html(&node.node_id),
            html(parent),
            node.generation,
            html(node.status.as_str()),
            html(&kinds.join(", ")),
            percent(node.stage1),
            percent(node.full),
            fitness
                .get(&node.node_id)
                .map_or_else(|| "as scored".to_string(), |f| percent(Some(*f))),
            next_weights
                .get(&node.node_id)
                .map_or_else(|| "–".to_string(), |w| format!("{w:.3}")),
            percent(node.test),
            html(&versus),
        );
    }
    body.push_str("</table>");
    page(
        &format!("run {run}"),
        &body,
        report.status == RunStatus::Running,
    )
}
