//! `hyperagents mcp`: the results store as MCP tools for IDEs and
//! assistants. Everything is read-only; with `allow_start`, `start_eval`
//! and `start_evolve` launch this binary as a child process and answer at
//! once with a job id that `job_status` polls.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;

use hyperagents_report::{FULL, STAGE1, TEST, run_summary, write_report};
use hyperagents_store::{EvalRunId, ResultsStore, RunSummary};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ErrorData, ServerHandler, tool, tool_handler, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// The most trajectory text one `get_trajectory` call returns; `offset`
/// pages through the rest.
pub const TRAJECTORY_PAGE_BYTES: usize = 64 * 1024;

/// How `start_*` tools run this binary.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// The `hyperagents` executable.
    pub exe: PathBuf,
    /// Global arguments the children get (`--config`, `--cache-dir`, …),
    /// so they read the settings and store this server reads.
    pub global_args: Vec<String>,
    /// Where each job's output goes (`<dir>/<job>.log`).
    pub logs_dir: PathBuf,
    /// A results store other than the settings' default, given to the runs
    /// started (`--store`), so they write what this server reads.
    pub store_override: Option<PathBuf>,
}

/// The server's state; cheap to clone.
#[derive(Clone)]
pub struct HyperagentsServer {
    store: ResultsStore,
    runs_dir: PathBuf,
    launcher: Option<Arc<Launcher>>,
    jobs: Arc<Mutex<BTreeMap<String, Job>>>,
    tool_router: ToolRouter<Self>,
}

struct Job {
    kind: &'static str,
    child: tokio::process::Child,
    log: PathBuf,
    run: Option<String>,
}

// ---- payloads (what the tools answer, as JSON text) ----

/// One evolution run in `list_runs`.
#[derive(Debug, Serialize)]
pub struct EvolutionRunItem {
    pub id: String,
    pub mode: String,
    pub status: String,
    pub generations_done: u64,
    pub seed_train: Option<f64>,
    pub best_node: String,
    pub best_train: Option<f64>,
}

/// One evaluation run in `list_runs`.
#[derive(Debug, Serialize)]
pub struct EvalRunItem {
    pub id: i64,
    pub suite: String,
    pub split: String,
    pub program_hash: String,
    pub created_at_ms: i64,
}

#[derive(Debug, Serialize)]
pub struct RunsList {
    pub evolution_runs: Vec<EvolutionRunItem>,
    /// The latest evaluation runs, newest first (an evolution makes many).
    pub evaluation_runs: Vec<EvalRunItem>,
    pub evaluation_runs_total: usize,
}

/// How many evaluation runs `list_runs` shows.
pub const LISTED_EVALUATION_RUNS: usize = 100;

#[derive(Debug, Serialize)]
pub struct GenerationItem {
    pub generation: u64,
    pub best_train: f64,
    pub mean_train: f64,
    pub best_so_far_train: f64,
    pub best_node: String,
    pub test_of_best: Option<f64>,
    pub valid_children: u64,
    pub failed_attempts: u64,
    pub archive_size: u64,
    pub meta_tokens: u64,
}

#[derive(Debug, Serialize)]
pub struct RunView {
    pub id: String,
    pub mode: String,
    pub status: String,
    pub run_seed: u64,
    pub seed_train: Option<f64>,
    pub seed_test: Option<f64>,
    pub best_node: String,
    pub comparisons: u64,
    pub accepted_improvements: u64,
    pub meta_tokens: u64,
    pub task_tokens_in: u64,
    pub wall_ms: u64,
    pub generations: Vec<GenerationItem>,
}

#[derive(Debug, Serialize)]
pub struct NodeItem {
    pub node_id: String,
    pub parent_id: Option<String>,
    pub generation: u64,
    pub status: String,
    pub diff_kinds: Vec<String>,
    pub stage1: Option<f64>,
    pub full: Option<f64>,
    pub test: Option<f64>,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct NodesPage {
    pub total: usize,
    pub offset: usize,
    pub nodes: Vec<NodeItem>,
}

#[derive(Debug, Serialize)]
pub struct StageItem {
    pub stage: String,
    pub eval_run: i64,
    pub summary: EvaluationSummary,
}

#[derive(Debug, Serialize)]
pub struct NodeView {
    pub node: NodeItem,
    pub program_hash: String,
    pub label: String,
    pub meta_tokens: u64,
    /// The node's diff against its parent (cut at 64 KiB).
    pub diff: String,
    pub stages: Vec<StageItem>,
}

#[derive(Debug, Serialize)]
pub struct EvaluationSummary {
    pub evaluations: u64,
    pub reused: u64,
    pub episodes: u64,
    pub successes: u64,
    pub unsupported: u64,
    pub errors: u64,
    pub success_rate: Option<f64>,
    pub interval_95: Option<(f64, f64)>,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Serialize)]
pub struct EpisodeItem {
    pub task: String,
    pub seed: u64,
    pub status: String,
    pub success: bool,
    pub score: f64,
    pub reason: String,
    pub has_trajectory: bool,
}

#[derive(Debug, Serialize)]
pub struct EvaluationView {
    pub id: i64,
    pub suite: String,
    pub split: String,
    pub program_hash: String,
    pub summary: EvaluationSummary,
    pub episodes: Vec<EpisodeItem>,
}

#[derive(Debug, Serialize)]
pub struct TrajectoryPage {
    pub path: String,
    pub total_bytes: usize,
    pub offset: usize,
    pub next_offset: Option<usize>,
    pub text: String,
}

#[derive(Debug, Serialize)]
pub struct JobStarted {
    pub job: String,
    pub kind: String,
    /// An evolution's run id (use `get_run`); an evaluation's id appears in
    /// `job_status` once it has started.
    pub run: Option<String>,
    pub log: String,
}

#[derive(Debug, Serialize)]
pub struct JobStatus {
    pub job: String,
    pub kind: String,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub run: Option<String>,
    pub eval_run: Option<i64>,
    /// The last lines the job printed.
    pub log_tail: String,
}

// ---- parameters ----

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunParams {
    /// The evolution run's id.
    pub run: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NodesParams {
    /// The evolution run's id.
    pub run: String,
    /// The first node to list (0 by default).
    #[serde(default)]
    pub offset: usize,
    /// How many nodes (100 by default, at most 1,000).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct NodeParams {
    pub run: String,
    pub node: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EvaluationParams {
    /// An evaluation run's id (from `list_runs` or a node's stages).
    pub eval_run: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct TrajectoryParams {
    pub eval_run: i64,
    pub task: String,
    pub seed: u64,
    /// Byte offset to read from (0 by default).
    #[serde(default)]
    pub offset: usize,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StartEvalParams {
    /// A program directory (the built-in seed when absent).
    pub program: Option<String>,
    /// A suite: `miniwob`, `gaia`, `webarena` or a JSONL file.
    pub suite: String,
    /// Tasks to run (all of the split's when absent).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Seeds per task (1 by default).
    pub episodes: Option<u64>,
    /// `train` (default) or `test`.
    pub split: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct StartEvolveParams {
    /// The new run's id.
    pub run: String,
    pub suite: String,
    /// A program directory (the built-in seed when absent).
    pub program: Option<String>,
    /// `hyper` (default), `none`, `fixed-meta` or `prompt-only`.
    pub mode: Option<String>,
    pub generations: Option<u64>,
    pub children: Option<u64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct JobParams {
    pub job: String,
}

fn to_json<T: Serialize>(value: &T) -> Result<String, ErrorData> {
    serde_json::to_string_pretty(value).map_err(|e| ErrorData::internal_error(e.to_string(), None))
}

fn store_error(e: impl std::fmt::Display) -> ErrorData {
    ErrorData::internal_error(format!("results store: {e}"), None)
}

fn not_found(what: String) -> ErrorData {
    ErrorData::invalid_params(what, None)
}

fn summary(s: &RunSummary) -> EvaluationSummary {
    EvaluationSummary {
        evaluations: s.evaluations,
        reused: s.reused,
        episodes: s.episodes,
        successes: s.successes,
        unsupported: s.unsupported,
        errors: s.errors,
        success_rate: s.success_rate(),
        interval_95: s.interval_95().map(|i| (i.low, i.high)),
        tokens_in: s.tokens_in,
        tokens_out: s.tokens_out,
        duration_ms: s.duration_ms,
    }
}

fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[cut at {max} of {} bytes]", &text[..end], text.len())
}

/// A trajectory's text: gzip JSONL (`.gz`) is unpacked.
fn read_text(path: &std::path::Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text)?;
    } else {
        std::io::BufReader::new(file).read_to_string(&mut text)?;
    }
    Ok(text)
}

fn is_plain_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 128
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !text.starts_with('-')
}

#[tool_router]
impl HyperagentsServer {
    /// A server over `store`, with run directories under `runs_dir`;
    /// `launcher` enables the `start_*` tools.
    pub fn new(store: ResultsStore, runs_dir: PathBuf, launcher: Option<Launcher>) -> Self {
        let mut tool_router = Self::tool_router();
        if launcher.is_none() {
            for name in ["start_eval", "start_evolve", "job_status"] {
                tool_router.remove_route(name);
            }
        }
        Self {
            store,
            runs_dir,
            launcher: launcher.map(Arc::new),
            jobs: Arc::default(),
            tool_router,
        }
    }

    #[tool(
        description = "List evolution runs (mode, status, generations, best node) and evaluation runs."
    )]
    fn list_runs(&self) -> Result<String, ErrorData> {
        let mut evolution_runs = Vec::new();
        for id in self.store.evolution_run_ids().map_err(store_error)? {
            let report = run_summary(&self.store, &id).map_err(store_error)?;
            let best_train = report.best_node_train();
            evolution_runs.push(EvolutionRunItem {
                generations_done: report.generations_done(),
                mode: report.mode.as_str().to_string(),
                status: report.status.as_str().to_string(),
                seed_train: report.seed_train,
                best_node: report.best_node.clone(),
                best_train,
                id,
            });
        }
        let mut evaluation_runs = Vec::new();
        let mut ids = self.store.run_ids().map_err(store_error)?;
        let evaluation_runs_total = ids.len();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        ids.truncate(LISTED_EVALUATION_RUNS);
        for id in ids {
            if let Some(run) = self.store.run(id).map_err(store_error)? {
                evaluation_runs.push(EvalRunItem {
                    id: run.id.0,
                    suite: run.suite,
                    split: run.split,
                    program_hash: run.program_hash,
                    created_at_ms: run.created_at_ms,
                });
            }
        }
        to_json(&RunsList {
            evolution_runs,
            evaluation_runs,
            evaluation_runs_total,
        })
    }

    #[tool(
        description = "An evolution run: its mode, status, seed scores, best node and one row per generation."
    )]
    fn get_run(&self, Parameters(p): Parameters<RunParams>) -> Result<String, ErrorData> {
        self.known_run(&p.run)?;
        let r = run_summary(&self.store, &p.run).map_err(store_error)?;
        to_json(&RunView {
            id: r.run_id.clone(),
            mode: r.mode.as_str().to_string(),
            status: r.status.as_str().to_string(),
            run_seed: r.run_seed,
            seed_train: r.seed_train,
            seed_test: r.seed_test,
            best_node: r.best_node.clone(),
            comparisons: r.comparisons,
            accepted_improvements: r.accepted_improvements,
            meta_tokens: r.tokens.meta_tokens,
            task_tokens_in: r.tokens.task_tokens_in,
            wall_ms: r.wall_ms,
            generations: r
                .generations
                .iter()
                .map(|g| GenerationItem {
                    generation: g.generation,
                    best_train: g.best_train,
                    mean_train: g.mean_train,
                    best_so_far_train: g.best_so_far_train,
                    best_node: g.best_node.clone(),
                    test_of_best: g.test_of_best,
                    valid_children: g.valid_children,
                    failed_attempts: g.failed_attempts,
                    archive_size: g.archive_size,
                    meta_tokens: g.meta_tokens,
                })
                .collect(),
        })
    }

    #[tool(
        description = "A page of an evolution run's archive: each node's parent, generation, status, kinds of change and scores."
    )]
    fn list_nodes(&self, Parameters(p): Parameters<NodesParams>) -> Result<String, ErrorData> {
        self.known_run(&p.run)?;
        let r = run_summary(&self.store, &p.run).map_err(store_error)?;
        let limit = p.limit.unwrap_or(100).clamp(1, 1000);
        let nodes = r
            .nodes
            .iter()
            .skip(p.offset)
            .take(limit)
            .map(node_item)
            .collect();
        to_json(&NodesPage {
            total: r.nodes.len(),
            offset: p.offset,
            nodes,
        })
    }

    #[tool(
        description = "One node: its scores, its diff against its parent and its evaluations per stage (stage1, full, test)."
    )]
    fn get_node(&self, Parameters(p): Parameters<NodeParams>) -> Result<String, ErrorData> {
        self.known_run(&p.run)?;
        let record = self
            .store
            .node(&p.run, &p.node)
            .map_err(store_error)?
            .ok_or_else(|| not_found(format!("run `{}` has no node `{}`", p.run, p.node)))?;
        let report = run_summary(&self.store, &p.run).map_err(store_error)?;
        let node = report
            .nodes
            .iter()
            .find(|n| n.node_id == p.node)
            .map(node_item)
            .ok_or_else(|| not_found(format!("run `{}` has no node `{}`", p.run, p.node)))?;
        let mut stages = Vec::new();
        for stage in [STAGE1, FULL, TEST] {
            if let Some(eval_run) = self
                .store
                .node_eval_run(&p.run, &p.node, stage)
                .map_err(store_error)?
            {
                let s = self.store.run_summary(eval_run).map_err(store_error)?;
                stages.push(StageItem {
                    stage: stage.to_string(),
                    eval_run: eval_run.0,
                    summary: summary(&s),
                });
            }
        }
        to_json(&NodeView {
            node,
            program_hash: record.program_hash,
            label: record.label,
            meta_tokens: record.meta_tokens,
            diff: cut(&record.diff, 64 * 1024),
            stages,
        })
    }

    #[tool(
        description = "An evaluation run: its summary (success rate with a 95% interval, tokens) and every episode's outcome."
    )]
    fn get_evaluation(
        &self,
        Parameters(p): Parameters<EvaluationParams>,
    ) -> Result<String, ErrorData> {
        let id = EvalRunId(p.eval_run);
        let run = self
            .store
            .run(id)
            .map_err(store_error)?
            .ok_or_else(|| not_found(format!("no evaluation run {}", p.eval_run)))?;
        let s = self.store.run_summary(id).map_err(store_error)?;
        let episodes = self
            .store
            .run_evaluations(id)
            .map_err(store_error)?
            .into_iter()
            .map(|e| EpisodeItem {
                task: e.key.task,
                seed: e.key.seed,
                status: e.result.status.as_str().to_string(),
                success: e.result.success,
                score: e.result.score,
                reason: e.result.reason,
                has_trajectory: e.result.trajectory.is_some(),
            })
            .collect();
        to_json(&EvaluationView {
            id: run.id.0,
            suite: run.suite,
            split: run.split,
            program_hash: run.program_hash,
            summary: summary(&s),
            episodes,
        })
    }

    #[tool(
        description = "An episode's trajectory (JSON lines: every span with its input, output and timing), a page at a time."
    )]
    fn get_trajectory(
        &self,
        Parameters(p): Parameters<TrajectoryParams>,
    ) -> Result<String, ErrorData> {
        let id = EvalRunId(p.eval_run);
        let record = self
            .store
            .run_evaluations(id)
            .map_err(store_error)?
            .into_iter()
            .find(|e| e.key.task == p.task && e.key.seed == p.seed)
            .ok_or_else(|| {
                not_found(format!(
                    "evaluation run {} has no episode of `{}` with seed {}",
                    p.eval_run, p.task, p.seed
                ))
            })?;
        // The path comes from the store, never from the caller.
        let path = record.result.trajectory.ok_or_else(|| {
            not_found(format!(
                "the episode of `{}` seed {} kept no trajectory",
                p.task, p.seed
            ))
        })?;
        let text = read_text(&path).map_err(|e| {
            ErrorData::internal_error(format!("reading {}: {e}", path.display()), None)
        })?;
        let total = text.len();
        let mut start = p.offset.min(total);
        while !text.is_char_boundary(start) {
            start -= 1;
        }
        let mut end = (start + TRAJECTORY_PAGE_BYTES).min(total);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        to_json(&TrajectoryPage {
            path: path.display().to_string(),
            total_bytes: total,
            offset: start,
            next_offset: (end < total).then_some(end),
            text: text[start..end].to_string(),
        })
    }

    #[tool(
        description = "An evolution run's report (Markdown): curves as tables, the best node, changes by kind, tokens."
    )]
    fn get_report(&self, Parameters(p): Parameters<RunParams>) -> Result<String, ErrorData> {
        self.known_run(&p.run)?;
        let run_dir = self.runs_dir.join(&p.run);
        let out = tempfile::tempdir()
            .map_err(|e| ErrorData::internal_error(format!("a temporary directory: {e}"), None))?;
        let files = write_report(
            &self.store,
            &p.run,
            run_dir.is_dir().then_some(run_dir.as_path()),
            out.path(),
        )
        .map_err(store_error)?;
        std::fs::read_to_string(&files.markdown).map_err(|e| {
            ErrorData::internal_error(format!("reading {}: {e}", files.markdown.display()), None)
        })
    }

    #[tool(
        description = "Start an evaluation in the background; answers at once with a job id for job_status."
    )]
    async fn start_eval(
        &self,
        Parameters(p): Parameters<StartEvalParams>,
    ) -> Result<String, ErrorData> {
        let mut args = vec!["eval".to_string(), "--suite".into(), p.suite];
        if let Some(program) = p.program {
            args.extend(["--program".into(), program]);
        }
        if !p.tasks.is_empty() {
            args.extend(["--tasks".into(), p.tasks.join(",")]);
        }
        if let Some(episodes) = p.episodes {
            args.extend(["--episodes".into(), episodes.to_string()]);
        }
        if let Some(split) = p.split {
            args.extend(["--split".into(), split]);
        }
        if let Some(store) = self
            .launcher
            .as_ref()
            .and_then(|l| l.store_override.as_ref())
        {
            args.extend(["--store".into(), store.display().to_string()]);
        }
        self.launch("eval", args, None).await
    }

    #[tool(
        description = "Start an evolution run in the background; answers at once with a job id (job_status) and the run id (get_run)."
    )]
    async fn start_evolve(
        &self,
        Parameters(p): Parameters<StartEvolveParams>,
    ) -> Result<String, ErrorData> {
        if !is_plain_name(&p.run) {
            return Err(ErrorData::invalid_params(
                "a run id is letters, digits, `_`, `-` or `.`",
                None,
            ));
        }
        if self
            .store
            .evolution_run(&p.run)
            .map_err(store_error)?
            .is_some()
        {
            return Err(ErrorData::invalid_params(
                format!(
                    "run `{}` exists already (resume it with `hyperagents resume`)",
                    p.run
                ),
                None,
            ));
        }
        let mut args = vec![
            "evolve".to_string(),
            "--run".into(),
            p.run.clone(),
            "--suite".into(),
            p.suite,
        ];
        if let Some(program) = p.program {
            args.extend(["--program".into(), program]);
        }
        if let Some(mode) = p.mode {
            args.extend(["--mode".into(), mode]);
        }
        if let Some(generations) = p.generations {
            args.extend(["--generations".into(), generations.to_string()]);
        }
        if let Some(children) = p.children {
            args.extend(["--children".into(), children.to_string()]);
        }
        if let Some(store) = self
            .launcher
            .as_ref()
            .and_then(|l| l.store_override.as_ref())
        {
            args.extend(["--store".into(), store.display().to_string()]);
        }
        self.launch("evolve", args, Some(p.run)).await
    }

    #[tool(
        description = "Whether a started job still runs, its exit code, its run id and the last lines it printed."
    )]
    async fn job_status(&self, Parameters(p): Parameters<JobParams>) -> Result<String, ErrorData> {
        let mut jobs = self.jobs.lock().await;
        let job = jobs
            .get_mut(&p.job)
            .ok_or_else(|| not_found(format!("no job `{}` was started by this server", p.job)))?;
        let exit = job
            .child
            .try_wait()
            .map_err(|e| ErrorData::internal_error(format!("job `{}`: {e}", p.job), None))?;
        let log = std::fs::read_to_string(&job.log).unwrap_or_default();
        let eval_run = log.lines().find_map(|line| {
            line.strip_prefix("eval run ")?
                .split(':')
                .next()?
                .trim()
                .parse()
                .ok()
        });
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        to_json(&JobStatus {
            job: p.job.clone(),
            kind: job.kind.to_string(),
            running: exit.is_none(),
            exit_code: exit.and_then(|s| s.code()),
            run: job.run.clone(),
            eval_run,
            log_tail: tail,
        })
    }
}

impl HyperagentsServer {
    fn known_run(&self, run: &str) -> Result<(), ErrorData> {
        match self.store.evolution_run(run).map_err(store_error)? {
            Some(_) => Ok(()),
            None => Err(not_found(format!("no evolution run `{run}`"))),
        }
    }

    async fn launch(
        &self,
        kind: &'static str,
        args: Vec<String>,
        run: Option<String>,
    ) -> Result<String, ErrorData> {
        let Some(launcher) = &self.launcher else {
            return Err(ErrorData::invalid_request(
                "starting runs is off: restart `hyperagents mcp --allow-start`",
                None,
            ));
        };
        let mut jobs = self.jobs.lock().await;
        let job = format!("{kind}-{}", jobs.len() + 1);
        std::fs::create_dir_all(&launcher.logs_dir).map_err(|e| {
            ErrorData::internal_error(format!("{}: {e}", launcher.logs_dir.display()), None)
        })?;
        let log = launcher.logs_dir.join(format!("{job}.log"));
        let file = std::fs::File::create(&log)
            .map_err(|e| ErrorData::internal_error(format!("{}: {e}", log.display()), None))?;
        let err_file = file
            .try_clone()
            .map_err(|e| ErrorData::internal_error(format!("{}: {e}", log.display()), None))?;
        let child = tokio::process::Command::new(&launcher.exe)
            .args(&launcher.global_args)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err_file)
            .spawn()
            .map_err(|e| {
                ErrorData::internal_error(format!("starting {}: {e}", launcher.exe.display()), None)
            })?;
        let started = JobStarted {
            job: job.clone(),
            kind: kind.to_string(),
            run: run.clone(),
            log: log.display().to_string(),
        };
        jobs.insert(
            job,
            Job {
                kind,
                child,
                log,
                run,
            },
        );
        to_json(&started)
    }
}

fn node_item(n: &hyperagents_report::NodeSummary) -> NodeItem {
    NodeItem {
        node_id: n.node_id.clone(),
        parent_id: n.parent_id.clone(),
        generation: n.generation,
        status: n.status.as_str().to_string(),
        diff_kinds: n
            .diff_kinds
            .iter()
            .map(|k| k.as_str().to_string())
            .collect(),
        stage1: n.stage1,
        full: n.full,
        test: n.test,
        errors: n.errors.clone(),
    }
}

/// Serves `server` on this process's stdin and stdout until the client
/// closes the session.
pub async fn serve_stdio(server: HyperagentsServer) -> Result<(), ServeError> {
    use rmcp::ServiceExt;
    let service = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| ServeError(format!("the MCP handshake on stdio failed: {e}")))?;
    service
        .waiting()
        .await
        .map_err(|e| ServeError(format!("the MCP session ended abnormally: {e}")))?;
    Ok(())
}

/// Why serving MCP stopped.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ServeError(String);

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HyperagentsServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "hyperagents",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Read hyperagents' results: list_runs, then get_run, list_nodes, get_node, \
                 get_evaluation, get_trajectory and get_report. With --allow-start, start_eval \
                 and start_evolve launch runs in the background; poll them with job_status.",
            )
    }
}
