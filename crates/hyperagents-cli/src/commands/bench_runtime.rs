//! `hyperagents bench runtime`: what the framework itself costs per step
//! (a host call through the sandbox, a prompt render, a trajectory write),
//! its share of an episode's wall time, and how concurrent episodes scale —
//! against a model double with a fixed latency, so only the framework is
//! measured. The sandbox workers are the real ones.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use async_trait::async_trait;
use hyperagents_domain::JsonlSuite;
use hyperagents_llm::accounting::{Budget, PriceTable};
use hyperagents_llm::router::ModelRouter;
use hyperagents_llm::{
    Capabilities, ChatModel, ChatRequest, ChatResponse, FinishReason, LlmError, ModelDescriptor,
    ResponseFormat, Usage,
};
use hyperagents_program::{Program, RunCaps};
use hyperagents_runtime::trace::{
    EpisodeHeader, EpisodeSummary, Recorder, SpanKind, write_trajectory,
};
use hyperagents_runtime::{RunContext, SandboxChecker, run_episode};
use hyperagents_sandbox::{HostError, HostFunctions, ScriptSource, ScriptValue};
use serde_json::{Map, Value, json};

use super::bench::write_section;
use super::programs::start_pool;
use crate::cli::BenchRuntimeArgs;
use crate::settings::Settings;

/// Sleeps a fixed time, then answers; counts calls.
struct FixedLatencyModel {
    descriptor: ModelDescriptor,
    latency: Duration,
    calls: AtomicU64,
}

#[async_trait]
impl ChatModel for FixedLatencyModel {
    fn descriptor(&self) -> &ModelDescriptor {
        &self.descriptor
    }
    async fn chat(&self, request: &ChatRequest) -> Result<ChatResponse, LlmError> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(self.latency).await;
        let text = match request.response_format {
            ResponseFormat::JsonSchema { .. } => r#"{"answer": "4"}"#.to_string(),
            ResponseFormat::Text => "The answer is 4.".to_string(),
        };
        Ok(ChatResponse {
            text,
            tool_calls: vec![],
            usage: Usage {
                input_tokens: 50,
                output_tokens: 8,
                cached_input_tokens: 0,
            },
            finish_reason: FinishReason::Stop,
            latency: self.latency,
            cache_hit: false,
            timing: None,
        })
    }
}

/// A host that answers `ping()` at once: the round trip is all framework.
struct PingHost;

#[async_trait]
impl HostFunctions for PingHost {
    fn functions(&self) -> Vec<String> {
        vec!["ping".into()]
    }
    async fn call(
        &self,
        _: &str,
        _: Vec<ScriptValue>,
        _: Map<String, ScriptValue>,
    ) -> Result<ScriptValue, HostError> {
        Ok(Value::Null)
    }
}

pub async fn run(settings: Settings, args: BenchRuntimeArgs) -> Result<ExitCode> {
    let program = Arc::new(
        Program::load(&args.program, &SandboxChecker)
            .map_err(|e| anyhow::anyhow!("{} is invalid: {}", args.program.display(), e.len()))?,
    );
    let pool = Arc::new(start_pool(&settings).await?);
    let workers = settings.sandbox.workers;

    // Per-step costs.
    let calls = 300u32;
    let script = ScriptSource {
        file: "bench.py".into(),
        code: format!("for i in range({calls}):\n    ping()\n"),
    };
    let started = Instant::now();
    pool.run(&script, Map::new(), Arc::new(PingHost))
        .await
        .context("the host-call loop failed")?;
    let host_call = started.elapsed() / calls;

    let prompt_file = program.hyper().prompt.as_str().to_string();
    let vars =
        json!({"goal": "What is 2+2?", "agents": [{"name": "answerer", "description": "answers"}]});
    let renders = 2000u32;
    let started = Instant::now();
    for _ in 0..renders {
        program
            .prompts()
            .render(&prompt_file, &vars)
            .context("rendering the hyper prompt")?;
    }
    let render = started.elapsed() / renders;

    let dir = tempfile_dir()?;
    let recorder = Recorder::new();
    let root = recorder.start(None, SpanKind::Episode, "episode", json!({}));
    for i in 0..50 {
        let span = recorder.start(
            Some(root),
            SpanKind::Llm,
            "llm",
            json!({"prompt": "x".repeat(400), "i": i}),
        );
        recorder.finish(span, Ok(json!("y".repeat(200))));
    }
    let header = EpisodeHeader {
        domain: "bench".into(),
        task: "t".into(),
        seed: 0,
        program: "p".into(),
        started_at_unix_ms: 0,
    };
    let summary = EpisodeSummary {
        domain: "bench".into(),
        task: "t".into(),
        seed: 0,
        program: "p".into(),
        success: true,
        score: 1.0,
        reason: String::new(),
        failure: None,
        stopped: None,
        steps: 0,
        calls: 50,
        llm_calls: 50,
        tokens_in: 0,
        tokens_out: 0,
        cost: 0.0,
        duration_ms: 0,
        files_used: Vec::new(),
        timing: Default::default(),
    };
    let writes = 50u32;
    let spans = recorder.spans();
    let started = Instant::now();
    for i in 0..writes {
        write_trajectory(
            &dir.join(format!("t{i}.jsonl.gz")),
            &header,
            &spans,
            &summary,
        )?;
    }
    let trace_write = started.elapsed() / writes;

    // Episodes against the fixed-latency double.
    let latency = Duration::from_millis(args.latency_ms);
    let suite = Arc::new(JsonlSuite::parse(
        "jsonl:bench",
        "bench.jsonl",
        r#"{"id": "add", "input": "What is 2+2?", "expected": 4, "scorer": "numeric"}"#,
    )?);
    let mut rows = Vec::new();
    let mut overhead_share = 0.0;
    let mut framework_ms = 0.0;
    for concurrency in [1usize, 4, 16, 64] {
        let model = Arc::new(FixedLatencyModel {
            descriptor: ModelDescriptor {
                provider: "double".into(),
                model: "fixed-latency".into(),
                fingerprint: None,
                capabilities: Capabilities::default(),
            },
            latency,
            calls: AtomicU64::new(0),
        });
        let mut router = ModelRouter::new(PriceTable::default());
        router.bind("task", model.clone(), Budget::default());
        let ctx = RunContext {
            router,
            pool: pool.clone(),
            caps: RunCaps {
                max_steps: 50,
                max_calls: 200,
                max_tokens: 1_000_000,
                max_wall: Duration::from_secs(600),
            },
            run_seed: 0,
            traces_dir: dir.join(format!("c{concurrency}")),
            screenshots: false,
            external_tools: None,
        };
        // Twice as many episodes as slots, at most `concurrency` at a time.
        let episodes = concurrency * 2;
        let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let started = Instant::now();
        let mut tasks = Vec::new();
        for seed in 0..episodes {
            let (ctx, program, suite, slots) =
                (ctx.clone(), program.clone(), suite.clone(), slots.clone());
            tasks.push(tokio::spawn(async move {
                let _slot = slots.acquire_owned().await;
                run_episode(&ctx, program, suite.as_ref(), "add", seed as u64).await
            }));
        }
        let mut episode_ms = Vec::new();
        for task in tasks {
            let outcome = task.await.context("an episode panicked")??;
            episode_ms.push(outcome.summary.duration_ms as f64);
        }
        let wall = started.elapsed();
        let calls_per_episode = model.calls.load(Ordering::Relaxed) as f64 / episodes as f64;
        let model_ms = calls_per_episode * latency.as_secs_f64() * 1000.0;
        let mean_ms = episode_ms.iter().sum::<f64>() / episode_ms.len() as f64;
        let share = (mean_ms - model_ms).max(0.0) / mean_ms;
        if concurrency == 1 {
            overhead_share = share;
            framework_ms = (mean_ms - model_ms).max(0.0);
        }
        let throughput = episodes as f64 / wall.as_secs_f64();
        let ideal = concurrency as f64 / (model_ms / 1000.0);
        rows.push((
            concurrency,
            episodes,
            mean_ms,
            model_ms,
            share,
            throughput,
            ideal,
        ));
        eprintln!(
            "{concurrency} concurrent: {throughput:.1} episodes/s (ideal {ideal:.1}), mean episode {mean_ms:.0} ms"
        );
    }

    let mut s = String::new();
    let _ = writeln!(s, "## Runtime framework overhead\n");
    let profile = if cfg!(debug_assertions) {
        "dev (the profile tests and the main job use)"
    } else {
        "release"
    };
    let _ = writeln!(
        s,
        "Written by `hyperagents bench runtime --latency-ms {}` with {workers} sandbox workers, {profile} build;\n\
         the model is a double that answers after a fixed latency, so everything else is framework. The\n\
         embedded SmolLM2 takes 0.3–1.6 s per call in the seed's episodes (their trajectories), so the\n\
         default latency of 500 ms is on the fast side of real use.\n",
        args.latency_ms
    );
    let _ = writeln!(s, "| per-step cost | time |");
    let _ = writeln!(s, "|---|---:|");
    let _ = writeln!(
        s,
        "| host call through the sandbox (script → worker → host → worker) | {} µs |",
        host_call.as_micros()
    );
    let _ = writeln!(
        s,
        "| prompt render (hyper prompt) | {} µs |",
        render.as_micros()
    );
    let _ = writeln!(
        s,
        "| trajectory write (50 spans, gzip JSONL + summary) | {} µs |",
        trace_write.as_micros()
    );
    let _ = writeln!(
        s,
        "\nFramework time per episode (episode minus model time, 1 episode at a time): {framework_ms:.1} ms, a\n\
         **{:.2}%** share of its wall time (goal: under 1%). \"Ideal\" throughput is slots ÷ model time\n\
         per episode.\n",
        overhead_share * 100.0
    );
    let _ = writeln!(
        s,
        "| concurrent episodes | episodes | mean episode | model time per episode | framework share | episodes/s | ideal episodes/s |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|");
    for (c, n, mean, model_ms, share, tput, ideal) in rows {
        let _ = writeln!(
            s,
            "| {c} | {n} | {mean:.0} ms | {model_ms:.0} ms | {:.2}% | {tput:.1} | {ideal:.1} |",
            share * 100.0
        );
    }
    write_section(&args.out, "runtime", &s)?;
    print!("{s}");
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("hyperagents-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
