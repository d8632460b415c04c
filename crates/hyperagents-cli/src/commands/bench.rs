//! `hyperagents bench embedded`: prompt and generation throughput of the
//! embedded engine, one sequence vs. four concurrent, written to
//! BENCHMARKS.md next to the figures measured when the engine was chosen.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use hyperagents_llm::{ChatModel, ChatRequest, Message};
use hyperagents_llm_embedded::EmbeddedModel;

use crate::cli::BenchCommand;
use crate::model_factory::ModelFactory;
use crate::settings::Settings;

/// Reference figures for SmolLM2-135M Q4_1 on 2 threads (../shared/DESIGN.md).
const REFERENCE_PROMPT_TPS: f64 = 346.0;
const REFERENCE_GEN_TPS: f64 = 85.0;
const REFERENCE_GEN4_TPS: f64 = 148.0;

pub async fn run(settings: Settings, command: BenchCommand) -> Result<ExitCode> {
    match command {
        BenchCommand::Runtime(args) => super::bench_runtime::run(settings, args).await,
        BenchCommand::Episodes(args) => super::bench_episodes::run(settings, args).await,
        BenchCommand::Meta(args) => super::bench_meta::run(settings, args).await,
        BenchCommand::Miniwob {
            episodes,
            windows,
            reuse_pages,
            out,
        } => super::bench_miniwob::run(&settings, episodes, &windows, reuse_pages, &out).await,
        BenchCommand::Embedded {
            model,
            out,
            tokens,
            repeats,
        } => {
            ensure!(repeats >= 1, "--repeats must be at least 1");
            let threads = settings.embedded.threads;
            let mut factory = ModelFactory::new(settings)?;
            let engine = factory.embedded(&model).await?;
            let mut prompt = Vec::new();
            let mut single = Vec::new();
            let mut four = Vec::new();
            let mut constrained = Vec::new();
            for round in 0..repeats {
                prompt.push(prompt_rate(&engine, round).await?);
                single.push(generation_rate(&engine, 1, tokens, round).await?);
                four.push(generation_rate(&engine, 4, tokens, round).await?);
                constrained.push(constrained_rate(&engine, tokens, round).await?);
                let (s, f) = (single[round as usize], four[round as usize]);
                eprintln!(
                    "round {}: prompt {:.0} tok/s; 1 seq {:.1} tok/s ({:.1} ms/step); 4 seq {:.1} tok/s ({:.1} ms/step)",
                    round + 1,
                    prompt[round as usize],
                    s.tokens_per_sec,
                    s.step_ms,
                    f.tokens_per_sec,
                    f.step_ms
                );
                let c = constrained[round as usize];
                eprintln!(
                    "         JSON schema: {:.1} tok/s, {} of {} tokens redrawn under the grammar",
                    c.tokens_per_sec, c.redrawn, c.tokens
                );
            }
            let pick = |rates: &[Rate], f: fn(&Rate) -> f64| {
                median(&rates.iter().map(f).collect::<Vec<_>>())
            };
            let figures = Figures {
                prompt: median(&prompt),
                single: pick(&single, |r| r.tokens_per_sec),
                single_step_ms: pick(&single, |r| r.step_ms),
                four: pick(&four, |r| r.tokens_per_sec),
                four_step_ms: pick(&four, |r| r.step_ms),
                constrained: median(
                    &constrained
                        .iter()
                        .map(|c| c.tokens_per_sec)
                        .collect::<Vec<_>>(),
                ),
                redrawn_share: constrained.iter().map(|c| c.redrawn).sum::<u64>() as f64
                    / constrained.iter().map(|c| c.tokens).sum::<u64>().max(1) as f64,
                // Paired per round, so drift in machine speed between rounds cancels.
                ratio: median(
                    &single
                        .iter()
                        .zip(&four)
                        .map(|(s, f)| f.tokens_per_sec / s.tokens_per_sec)
                        .collect::<Vec<_>>(),
                ),
            };
            let report = render(&model, threads, tokens, repeats, &figures);
            write_section(&out, "embedded", &report)?;
            print!("{report}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prompt tokens evaluated per second on a long prompt no earlier request
/// shares (the round number leads the prompt, so no prefix is reused).
async fn prompt_rate(engine: &Arc<EmbeddedModel>, round: u32) -> Result<f64> {
    let text = format!(
        "Round {round}. {}",
        "The quick brown fox jumps over the lazy dog while the sun sets behind the hills. "
            .repeat(24)
    );
    let request = ChatRequest::new(vec![Message::user(text)])
        .with_temperature(0.0)
        .with_max_tokens(1);
    let before = engine.stats();
    let started = Instant::now();
    engine.chat(&request).await?;
    let elapsed = started.elapsed();
    let evaluated = engine.stats().prompt_tokens_evaluated - before.prompt_tokens_evaluated;
    Ok(evaluated as f64 / elapsed.as_secs_f64())
}

/// Aggregate generation rate of `n` concurrent sequences, counted only
/// while all of them are generating: from the last sequence's first token to
/// the first sequence's end. Prompt processing and the tail where some
/// sequences already stopped are left out. Tokens are counted as streamed
/// deltas, which are one token each for this ASCII text (no stop sequences,
/// so nothing is held back).
async fn generation_rate(
    engine: &Arc<EmbeddedModel>,
    n: usize,
    tokens: u32,
    round: u32,
) -> Result<Rate> {
    let topics = ["a dragon", "the ocean", "a robot", "a city"];
    let mut tasks = Vec::new();
    for (i, topic) in topics.iter().take(n).enumerate() {
        let engine = engine.clone();
        let request = ChatRequest::new(vec![Message::user(format!(
            "Write a long, detailed story about {topic}, in many paragraphs."
        ))])
        .with_temperature(0.8)
        .with_seed(u64::from(round) * 10 + i as u64)
        .with_max_tokens(tokens);
        tasks.push(tokio::spawn(async move {
            let mut stamps: Vec<Instant> = Vec::new();
            engine
                .chat_streaming(&request, &mut |_| stamps.push(Instant::now()))
                .await?;
            anyhow::Ok(stamps)
        }));
    }
    let before = engine.stats();
    let mut all = Vec::new();
    for task in tasks {
        all.push(task.await.context("a benchmark request panicked")??);
    }
    let after = engine.stats();
    let steps = after.decode_calls - before.decode_calls;
    let step_ms =
        (after.decode_micros - before.decode_micros) as f64 / 1000.0 / steps.max(1) as f64;
    let start = all.iter().filter_map(|s| s.first()).max().copied();
    let end = all.iter().filter_map(|s| s.last()).min().copied();
    let (Some(start), Some(end)) = (start, end) else {
        anyhow::bail!("a sequence generated nothing");
    };
    let window = end.saturating_duration_since(start);
    // Tokens strictly after the window opens: each is one decode step's output.
    let counted: usize = all
        .iter()
        .map(|s| s.iter().filter(|&&t| t > start && t <= end).count())
        .sum();
    ensure!(
        counted > 0 && !window.is_zero(),
        "the sequences did not overlap long enough to measure (raise --tokens)"
    );
    Ok(Rate {
        tokens_per_sec: counted as f64 / window.as_secs_f64(),
        step_ms,
    })
}

/// Generation under a JSON schema shaped like the seed meta agent's edit
/// (bounded free-text fields, an enum): one sequence, sampled at the meta
/// agent's temperature, tokens per second from the first streamed token to
/// the last.
async fn constrained_rate(
    engine: &Arc<EmbeddedModel>,
    tokens: u32,
    round: u32,
) -> Result<Constrained> {
    let schema = serde_json::json!({
        "type": "object",
        "properties": {
            "reason": {"type": "string", "maxLength": 300},
            "path": {"type": "string", "enum": ["skills/act/prompt.md", "hyper/prompt.md"]},
            "operation": {"type": "string", "enum": ["replace", "write"]},
            "old": {"type": "string", "maxLength": 1500},
            "new": {"type": "string", "maxLength": 3000},
        },
        "required": ["reason", "path", "operation", "old", "new"],
    });
    let request = ChatRequest::new(vec![Message::user(format!(
        "Round {round}. The agent's prompt skills/act/prompt.md makes it click the wrong \
         element. Explain in detail why, then rewrite the whole prompt so it reads the goal \
         and clicks the element the goal names."
    ))])
    .with_json_schema("edit", schema)
    .with_temperature(0.7)
    .with_seed(u64::from(round))
    .with_max_tokens(tokens);
    let before = engine.stats();
    let mut stamps: Vec<Instant> = Vec::new();
    engine
        .chat_streaming(&request, &mut |_| stamps.push(Instant::now()))
        .await?;
    let after = engine.stats();
    let (Some(first), Some(last)) = (stamps.first(), stamps.last()) else {
        anyhow::bail!("the constrained request generated nothing");
    };
    let window = last.saturating_duration_since(*first);
    ensure!(
        stamps.len() > 1 && !window.is_zero(),
        "the constrained request was too short to measure (raise --tokens)"
    );
    Ok(Constrained {
        tokens_per_sec: (stamps.len() - 1) as f64 / window.as_secs_f64(),
        tokens: after.generated_tokens - before.generated_tokens,
        redrawn: after.grammar_tokens_resampled - before.grammar_tokens_resampled,
    })
}

/// One constrained-generation measurement.
#[derive(Debug, Clone, Copy)]
struct Constrained {
    tokens_per_sec: f64,
    tokens: u64,
    /// Tokens the grammar refused as first drawn, drawn again from the
    /// masked vocabulary.
    redrawn: u64,
}

/// One generation measurement.
#[derive(Debug, Clone, Copy)]
struct Rate {
    tokens_per_sec: f64,
    /// Mean time inside llama.cpp's decode per step (all sequences).
    step_ms: f64,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

#[derive(Clone, Copy)]
struct Figures {
    /// Median over rounds of (4-sequence rate ÷ 1-sequence rate).
    ratio: f64,
    prompt: f64,
    single: f64,
    single_step_ms: f64,
    four: f64,
    four_step_ms: f64,
    constrained: f64,
    redrawn_share: f64,
}

fn render(model: &str, threads: usize, tokens: u32, repeats: u32, figures: &Figures) -> String {
    let Figures {
        prompt,
        single,
        single_step_ms,
        four,
        four_step_ms,
        ratio,
        constrained,
        redrawn_share,
    } = *figures;
    let mut s = String::new();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let _ = writeln!(s, "## Embedded engine ({model})\n");
    let _ = writeln!(
        s,
        "Written by `hyperagents bench embedded --model {model} --tokens {tokens} --repeats {repeats}`;"
    );
    let _ = writeln!(
        s,
        "medians of {repeats} rounds. Machine: {cores} cores; embedded thread budget: {threads}.\n"
    );
    let _ = writeln!(
        s,
        "| measure | this run | reference (DESIGN.md, 2 threads) |"
    );
    let _ = writeln!(s, "|---|---:|---:|");
    let _ = writeln!(
        s,
        "| prompt processing, tokens/s | {prompt:.0} | {REFERENCE_PROMPT_TPS:.0} |"
    );
    let _ = writeln!(
        s,
        "| generation, 1 sequence, tokens/s | {single:.1} | {REFERENCE_GEN_TPS:.0} |"
    );
    let _ = writeln!(
        s,
        "| generation, 4 concurrent sequences, aggregate tokens/s | {four:.1} | {REFERENCE_GEN4_TPS:.0} |"
    );
    let _ = writeln!(
        s,
        "| 4 sequences vs 1, median of per-round ratios (required ≥ 1.5x) | {:.2}x | {:.2}x |",
        ratio,
        REFERENCE_GEN4_TPS / REFERENCE_GEN_TPS
    );
    let _ = writeln!(
        s,
        "| time inside decode per step, 1 sequence / 4 sequences | {single_step_ms:.1} ms / {four_step_ms:.1} ms | |"
    );
    let _ = writeln!(
        s,
        "| generation under a JSON schema (the meta agent's edit shape), 1 sequence, tokens/s | {constrained:.1} | |"
    );
    let _ = writeln!(
        s,
        "| share of those tokens the grammar refused as first drawn (redrawn from the masked vocabulary) | {:.1}% | |",
        redrawn_share * 100.0
    );
    let _ = writeln!(
        s,
        "\nThe reference figures are for SmolLM2-135M-Instruct Q4_1; compare other models only with themselves.\n\
         Generation rates count streamed tokens only while every sequence of the measurement is\n\
         generating (from the last sequence's first token to the first sequence's end), so prompt\n\
         processing and early-stopping tails are excluded. Under a JSON schema each token is drawn\n\
         without the grammar and checked against it as a single candidate; only a refused token is\n\
         drawn again from the grammar-masked vocabulary (as llama.cpp's `common_sampler` does)."
    );
    s
}

/// Replaces (or appends) the section `name` of the benchmarks file, so each
/// bench command rewrites only its own part.
pub(super) fn write_section(path: &std::path::Path, name: &str, body: &str) -> Result<()> {
    hyperagents_eval::benchmarks_file::write_section(path, name, body)
        .with_context(|| format!("writing {}", path.display()))
}
