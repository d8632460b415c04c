//! People's judgements: the rating form of an episode, the side-by-side
//! page of two nodes' episodes, and the posts that store them.

use super::*;

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The ratings of one episode, and the form to add one (not for the
/// held-out split: people may look at its episodes, not judge them, so no
/// judgement of them can reach selection).
pub(crate) fn feedback_section(
    state: &DashboardState,
    run: &str,
    node: &str,
    stage: &str,
    task: &str,
    seed: u64,
    action: &str,
) -> String {
    let Some(feedback) = &state.feedback else {
        return String::new();
    };
    let mut out = String::from("<h2>Ratings</h2>");
    let ratings: Vec<EpisodeRating> = feedback
        .list(Some(run))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| match r.feedback {
            Feedback::Rating(r)
                if r.node == node && r.stage == stage && r.task == task && r.seed == seed =>
            {
                Some(r)
            }
            _ => None,
        })
        .collect();
    if ratings.is_empty() {
        out.push_str("<p>Not rated yet.</p>");
    } else {
        out.push_str("<ul>");
        for r in &ratings {
            let _ = write!(
                out,
                "<li>{} by {}: {}</li>",
                if r.good { "good" } else { "bad" },
                html(&r.rater),
                html(&r.comment)
            );
        }
        out.push_str("</ul>");
    }
    if stage == "test" {
        out.push_str("<p>Episodes of the held-out split are not rated.</p>");
        return out;
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"secret\" \
         value=\"{}\"><label>your name <input name=\"rater\" required></label> \
         <label><input type=\"radio\" name=\"verdict\" value=\"good\" required> good</label> \
         <label><input type=\"radio\" name=\"verdict\" value=\"bad\"> bad</label> \
         <label>comment <input name=\"comment\" size=\"60\"></label> <button>rate</button></form>",
        html(&state.form_secret)
    );
    out
}

#[derive(Deserialize)]
pub(crate) struct RatingForm {
    pub(crate) secret: String,
    pub(crate) rater: String,
    pub(crate) verdict: String,
    #[serde(default)]
    pub(crate) comment: String,
}

/// Whether a form post came from one of this server's pages: its secret,
/// and, where the browser names it, the same origin.
pub(crate) fn form_allowed(state: &DashboardState, headers: &HeaderMap, secret: &str) -> bool {
    let same_origin = match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
        (None, _) => true,
    };
    same_origin && constant_time_eq(secret, &state.form_secret)
}

/// The feedback file a form post may write to, or the refusal: the post
/// must come from this dashboard's page, the dashboard must take feedback,
/// and the episode must not be of the held-out split.
pub(crate) fn judgement_allowed<'s>(
    state: &'s DashboardState,
    headers: &HeaderMap,
    secret: &str,
    stage: &str,
) -> Result<&'s FeedbackStore, Box<Response>> {
    if !form_allowed(state, headers, secret) {
        return Err(Box::new(refused(
            "this form did not come from this dashboard",
        )));
    }
    let Some(feedback) = &state.feedback else {
        return Err(Box::new(refused("this dashboard takes no feedback")));
    };
    if stage == "test" {
        return Err(Box::new(refused(
            "episodes of the held-out split are not judged",
        )));
    }
    Ok(feedback)
}

pub(crate) async fn rate_episode(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index)): UrlPath<(String, String, String, usize)>,
    headers: HeaderMap,
    Form(form): Form<RatingForm>,
) -> Response {
    let feedback = match judgement_allowed(&state, &headers, &form.secret, &stage) {
        Ok(feedback) => feedback,
        Err(response) => return *response,
    };
    let records = match stage_records(&state, &run, &node, &stage) {
        Ok(records) => records,
        Err(response) => return *response,
    };
    let Some(record) = records.get(index) else {
        return not_found(&format!("no episode {index} in stage {stage} of {node}"));
    };
    let good = match form.verdict.as_str() {
        "good" => true,
        "bad" => false,
        other => return refused(&format!("unknown verdict `{other}`")),
    };
    let rating = Feedback::Rating(EpisodeRating {
        run: run.clone(),
        node: node.clone(),
        stage: stage.clone(),
        task: record.key.task.clone(),
        seed: record.key.seed,
        good,
        comment: form.comment.trim().to_string(),
        rater: form.rater.trim().to_string(),
        at_ms: now_ms(),
    });
    store_then_show(feedback, &rating, &episode_path(&run, &node, &stage, index))
}

/// The episode of `other` on the same task and seed as `node`'s episode
/// `index` of `stage`, with both nodes' records.
pub(crate) fn paired_records(
    state: &DashboardState,
    run: &str,
    node: &str,
    stage: &str,
    index: usize,
    other: &str,
) -> Result<(hyperagents_store::EvalRecord, hyperagents_store::EvalRecord), Box<Response>> {
    let mine = stage_records(state, run, node, stage)?;
    let Some(record) = mine.into_iter().nth(index) else {
        return Err(Box::new(not_found(&format!(
            "no episode {index} in stage {stage} of {node}"
        ))));
    };
    let theirs = stage_records(state, run, other, stage)?;
    let Some(other_record) = theirs
        .into_iter()
        .find(|r| r.key.task == record.key.task && r.key.seed == record.key.seed)
    else {
        return Err(Box::new(not_found(&format!(
            "{other} has no episode of {} (seed {}) in stage {stage}",
            record.key.task, record.key.seed
        ))));
    };
    Ok((record, other_record))
}

pub(crate) async fn versus_page(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index, other)): UrlPath<(String, String, String, usize, String)>,
) -> Response {
    let (a, b) = match paired_records(&state, &run, &node, &stage, index, &other) {
        Ok(pair) => pair,
        Err(response) => return *response,
    };
    let mut body = format!(
        "<h1>{} (seed {}): {} against {}</h1><table class=\"versus\"><tr><th>{} — {}</th>\
         <th>{} — {}</th></tr><tr><td><pre>{}</pre></td><td><pre>{}</pre></td></tr></table>",
        html(&a.key.task),
        a.key.seed,
        html(&node),
        html(&other),
        html(&node),
        if a.result.success {
            "succeeded"
        } else {
            "failed"
        },
        html(&other),
        if b.result.success {
            "succeeded"
        } else {
            "failed"
        },
        html(&span_tree(&a)),
        html(&span_tree(&b)),
    );
    if state.feedback.is_some() && stage != "test" {
        let _ = write!(
            body,
            "<form method=\"post\"><input type=\"hidden\" name=\"secret\" value=\"{}\">\
             <label>your name <input name=\"rater\" required></label> \
             <label><input type=\"radio\" name=\"preferred\" value=\"{}\" required> {}</label> \
             <label><input type=\"radio\" name=\"preferred\" value=\"{}\"> {}</label> \
             <label>comment <input name=\"comment\" size=\"60\"></label> \
             <button>prefer</button></form>",
            html(&state.form_secret),
            html(&node),
            html(&node),
            html(&other),
            html(&other),
        );
    }
    page(&format!("{node} against {other}"), &body, false)
}

#[derive(Deserialize)]
pub(crate) struct PreferenceForm {
    pub(crate) secret: String,
    pub(crate) rater: String,
    pub(crate) preferred: String,
    #[serde(default)]
    pub(crate) comment: String,
}

pub(crate) async fn prefer_episode(
    State(state): State<Arc<DashboardState>>,
    UrlPath((run, node, stage, index, other)): UrlPath<(String, String, String, usize, String)>,
    headers: HeaderMap,
    Form(form): Form<PreferenceForm>,
) -> Response {
    let feedback = match judgement_allowed(&state, &headers, &form.secret, &stage) {
        Ok(feedback) => feedback,
        Err(response) => return *response,
    };
    let (a, _) = match paired_records(&state, &run, &node, &stage, index, &other) {
        Ok(pair) => pair,
        Err(response) => return *response,
    };
    let preference = Feedback::Preference(EpisodePreference {
        run: run.clone(),
        stage: stage.clone(),
        task: a.key.task.clone(),
        seed: a.key.seed,
        a: node.clone(),
        b: other.clone(),
        preferred: form.preferred,
        comment: form.comment.trim().to_string(),
        rater: form.rater.trim().to_string(),
        at_ms: now_ms(),
    });
    store_then_show(
        feedback,
        &preference,
        &episode_path(&run, &node, &stage, index),
    )
}

/// Stores a judgement, then sends the browser to `page` (or says why not).
pub(crate) fn store_then_show(
    feedback: &FeedbackStore,
    judgement: &Feedback,
    page: &str,
) -> Response {
    match feedback.add(judgement) {
        Ok(_) => see_other(page),
        Err(error) => refused(&error.to_string()),
    }
}
