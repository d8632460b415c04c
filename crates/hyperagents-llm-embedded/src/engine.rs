//! The decode loop: one OS thread per loaded model owns the llama.cpp model
//! and context and serves every request through a fixed set of sequence
//! slots.
//!
//! Each step builds one batch holding the next token of every generating
//! sequence plus prompt chunks of newly admitted ones, decodes it once, and
//! samples every sequence from its own row of logits: four concurrent
//! requests share each decode step instead of queueing behind a mutex.
//!
//! Each slot remembers which tokens its KV cache holds. A new request goes to
//! the free slot whose cache shares the longest prefix with its prompt (or
//! copies that prefix from a busy slot), so a shared system prompt is decoded
//! once, not once per call. Requests that arrive together with a long common
//! prefix do not decode it side by side: the later one waits until the
//! earlier has decoded it, then copies it.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use hyperagents_llm::{ComputeTiming, FinishReason, Sampling};
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use tokio::sync::{mpsc as async_mpsc, oneshot};

use crate::EmbeddedError;

/// How a model's context is laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Context length of each sequence (at most the model's training
    /// context); the KV cache holds `n_ctx * n_seq` cells, one separate
    /// stream per sequence.
    pub n_ctx: u32,
    /// Sequences decoded together; more requests wait in a queue.
    pub n_seq: u32,
    /// Tokens per decode step (prompt chunks plus one per generating sequence).
    pub n_batch: u32,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            n_ctx: 8192,
            n_seq: 4,
            n_batch: 512,
        }
    }
}

/// Counters that show what the engine did; tests use them to prove batching
/// and prefix reuse without timing anything.
#[derive(Debug, Default)]
pub struct EngineStats {
    pub requests: AtomicU64,
    /// Prompt tokens actually run through the model.
    pub prompt_tokens_evaluated: AtomicU64,
    /// Prompt tokens whose KV entries were reused from an earlier request.
    pub prompt_tokens_reused: AtomicU64,
    pub generated_tokens: AtomicU64,
    pub decode_calls: AtomicU64,
    /// The most sequences that shared one decode call.
    pub max_sequences_per_decode: AtomicU64,
    /// Time spent inside llama.cpp's decode, in microseconds.
    pub decode_micros: AtomicU64,
    /// Grammar-constrained tokens whose unconstrained draw the grammar
    /// allowed (checked against one candidate instead of the vocabulary).
    pub grammar_tokens_checked: AtomicU64,
    /// Grammar-constrained tokens drawn again from the masked vocabulary.
    pub grammar_tokens_resampled: AtomicU64,
    /// Requests held back until a running request had decoded the prompt
    /// prefix they share, so that it is decoded once and copied.
    pub prefix_waits: AtomicU64,
}

/// A copy of [`EngineStats`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub requests: u64,
    pub prompt_tokens_evaluated: u64,
    pub prompt_tokens_reused: u64,
    pub generated_tokens: u64,
    pub decode_calls: u64,
    pub max_sequences_per_decode: u64,
    pub decode_micros: u64,
    pub grammar_tokens_checked: u64,
    pub grammar_tokens_resampled: u64,
    pub prefix_waits: u64,
}

impl EngineStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.load(Ordering::Relaxed),
            prompt_tokens_evaluated: self.prompt_tokens_evaluated.load(Ordering::Relaxed),
            prompt_tokens_reused: self.prompt_tokens_reused.load(Ordering::Relaxed),
            generated_tokens: self.generated_tokens.load(Ordering::Relaxed),
            decode_calls: self.decode_calls.load(Ordering::Relaxed),
            max_sequences_per_decode: self.max_sequences_per_decode.load(Ordering::Relaxed),
            decode_micros: self.decode_micros.load(Ordering::Relaxed),
            grammar_tokens_checked: self.grammar_tokens_checked.load(Ordering::Relaxed),
            grammar_tokens_resampled: self.grammar_tokens_resampled.load(Ordering::Relaxed),
            prefix_waits: self.prefix_waits.load(Ordering::Relaxed),
        }
    }
}

/// What the engine reports once the model is loaded.
pub(crate) struct ModelInfo {
    pub chat_template: Option<String>,
    pub bos_token: String,
    pub eos_token: String,
    pub add_bos: bool,
    pub n_ctx_train: u32,
}

/// One request as the engine sees it.
pub(crate) struct Job {
    pub prompt: String,
    pub add_bos: bool,
    pub sampling: Sampling,
    /// A GBNF grammar the output must match.
    pub grammar: Option<String>,
    pub events: async_mpsc::UnboundedSender<Event>,
    /// When the caller handed the request over (queueing is measured from here).
    pub submitted: Instant,
}

pub(crate) enum Event {
    Delta(String),
    Done(Result<Completion, EmbeddedError>),
}

pub(crate) struct Completion {
    pub text: String,
    pub prompt_tokens: u64,
    /// Prompt tokens whose KV entries were reused, not decoded.
    pub reused_prompt_tokens: u64,
    pub completion_tokens: u64,
    pub finish_reason: FinishReason,
    pub timing: ComputeTiming,
}

/// The process-wide thread budget: every decode of every loaded model holds
/// this lock and uses the budget's threads, so models never oversubscribe the
/// cores between them.
static COMPUTE: Mutex<()> = Mutex::new(());
static THREADS: OnceLock<i32> = OnceLock::new();

/// Sets the number of threads all embedded models share. Only the first call
/// counts; later ones (and models loaded before it) keep the first value.
pub fn set_thread_budget(threads: usize) -> usize {
    let wanted = i32::try_from(threads.max(1)).unwrap_or(i32::MAX);
    usize::try_from(*THREADS.get_or_init(|| wanted)).unwrap_or(1)
}

fn thread_budget() -> i32 {
    *THREADS.get_or_init(|| {
        std::thread::available_parallelism()
            .map(|n| i32::try_from(n.get()).unwrap_or(1))
            .unwrap_or(1)
    })
}

/// llama.cpp's backend may be initialised once per process.
fn backend() -> Result<&'static LlamaBackend, EmbeddedError> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // Route llama.cpp's chatter into tracing instead of stderr.
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| EmbeddedError::Backend(e.clone()))
}

/// Starts the engine thread for the model at `path`; resolves once the model
/// is loaded (or failed to load).
pub(crate) fn spawn(
    path: PathBuf,
    config: EngineConfig,
    stats: Arc<EngineStats>,
) -> (
    mpsc::Sender<Job>,
    oneshot::Receiver<Result<ModelInfo, EmbeddedError>>,
) {
    let (jobs_tx, jobs_rx) = mpsc::channel::<Job>();
    let (ready_tx, ready_rx) = oneshot::channel();
    let name = format!(
        "llama:{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    let spawned = std::thread::Builder::new().name(name).spawn(move || {
        if let Err(err) = serve(&path, &config, &stats, jobs_rx, ready_tx) {
            tracing::error!(error = %err, "embedded model engine stopped");
        }
    });
    if let Err(err) = spawned {
        tracing::error!(error = %err, "could not start the embedded model thread");
    }
    (jobs_tx, ready_rx)
}

fn serve(
    path: &std::path::Path,
    config: &EngineConfig,
    stats: &EngineStats,
    jobs: mpsc::Receiver<Job>,
    ready: oneshot::Sender<Result<ModelInfo, EmbeddedError>>,
) -> Result<(), EmbeddedError> {
    let loaded = load(path, config);
    let (model, backend) = match loaded {
        Ok(pair) => pair,
        Err(err) => {
            let message = err.to_string();
            let _ = ready.send(Err(err));
            return Err(EmbeddedError::Load {
                path: path.to_path_buf(),
                message,
            });
        }
    };
    let threads = thread_budget();
    // A sequence never gets more context than the model was trained with.
    let config = &EngineConfig {
        n_ctx: match model.n_ctx_train() {
            0 => config.n_ctx,
            trained => config.n_ctx.min(trained),
        },
        ..config.clone()
    };
    let params = LlamaContextParams::default()
        .with_n_ctx(NonZeroU32::new(config.n_ctx.saturating_mul(config.n_seq)))
        .with_n_batch(config.n_batch)
        .with_n_ubatch(config.n_batch)
        .with_n_seq_max(config.n_seq)
        .with_n_threads(threads)
        .with_n_threads_batch(threads)
        .with_kv_unified(false);
    let ctx = match model.new_context(backend, params) {
        Ok(ctx) => ctx,
        Err(err) => {
            let err = EmbeddedError::Load {
                path: path.to_path_buf(),
                message: format!("creating a context: {err}"),
            };
            let message = err.to_string();
            let _ = ready.send(Err(err));
            return Err(EmbeddedError::Backend(message));
        }
    };
    let info = model_info(&model);
    if ready.send(Ok(info)).is_err() {
        return Ok(()); // Nobody is waiting for this model any more.
    }
    Engine::new(&model, ctx, config, stats).run(&jobs);
    Ok(())
}

fn load(
    path: &std::path::Path,
    config: &EngineConfig,
) -> Result<(LlamaModel, &'static LlamaBackend), EmbeddedError> {
    if !path.is_file() {
        return Err(EmbeddedError::Load {
            path: path.to_path_buf(),
            message: "no such file (run `hyperagents models pull`)".into(),
        });
    }
    if config.n_seq == 0 || config.n_batch < config.n_seq || config.n_ctx == 0 {
        return Err(EmbeddedError::Config(format!(
            "need n_seq >= 1, n_batch >= n_seq and n_ctx >= 1 (got n_ctx {}, n_seq {}, n_batch {})",
            config.n_ctx, config.n_seq, config.n_batch
        )));
    }
    let backend = backend()?;
    let model =
        LlamaModel::load_from_file(backend, path, &LlamaModelParams::default()).map_err(|e| {
            EmbeddedError::Load {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
    Ok((model, backend))
}

fn model_info(model: &LlamaModel) -> ModelInfo {
    let vocab = model.vocab();
    let piece =
        |t: LlamaToken| String::from_utf8_lossy(&vocab.token_to_piece(t, true, None)).into_owned();
    ModelInfo {
        chat_template: model.meta_val_str("tokenizer.chat_template").ok(),
        bos_token: piece(vocab.bos()),
        eos_token: piece(vocab.eos()),
        add_bos: vocab.should_add_bos(),
        n_ctx_train: model.n_ctx_train(),
    }
}

struct Active {
    events: async_mpsc::UnboundedSender<Event>,
    sampler: Sampler,
    sampling: Sampling,
    /// Prompt tokens not yet decoded.
    pending: VecDeque<LlamaToken>,
    prompt_len: u64,
    /// Prompt tokens taken from a cached prefix.
    reused: u64,
    timing: ComputeTiming,
    /// A sampled token that still has to go through the model.
    next_token: Option<LlamaToken>,
    /// This sequence's row of logits in the last batch.
    logits_row: Option<i32>,
    generated: Vec<u8>,
    /// Bytes of `generated` already sent as deltas.
    emitted: usize,
    n_generated: u64,
}

struct Slot {
    seq: i32,
    /// The tokens whose KV entries this sequence holds, positions 0..len.
    cached: Vec<LlamaToken>,
    active: Option<Active>,
}

/// A request waiting for a slot, with its prompt already tokenized.
struct Queued {
    job: Job,
    tokens: Vec<LlamaToken>,
    /// Whether it has already waited for a shared prefix (counted once).
    waited: bool,
}

/// A request waits for a running one to decode the prompt prefix they
/// share when that prefix is at least this many tokens longer than any
/// already decoded: copying it then saves at least this much work.
const SHARED_PREFIX_MIN: usize = 64;

struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    slots: Vec<Slot>,
    queue: VecDeque<Queued>,
    batch: LlamaBatch<'static>,
    n_batch: usize,
    n_ctx: usize,
    stats: &'m EngineStats,
}

impl<'m> Engine<'m> {
    fn new(
        model: &'m LlamaModel,
        ctx: LlamaContext<'m>,
        config: &EngineConfig,
        stats: &'m EngineStats,
    ) -> Self {
        let slots = (0..config.n_seq)
            .map(|i| Slot {
                seq: i32::try_from(i).unwrap_or(i32::MAX),
                cached: Vec::new(),
                active: None,
            })
            .collect();
        Self {
            model,
            ctx,
            slots,
            queue: VecDeque::new(),
            batch: LlamaBatch::new(config.n_batch as usize, 1),
            n_batch: config.n_batch as usize,
            n_ctx: config.n_ctx as usize,
            stats,
        }
    }

    fn run(mut self, jobs: &mpsc::Receiver<Job>) {
        let mut open = true;
        loop {
            let busy = self.slots.iter().any(|s| s.active.is_some()) || !self.queue.is_empty();
            if !busy {
                if !open {
                    return;
                }
                match jobs.recv() {
                    Ok(job) => self.enqueue(job),
                    Err(_) => return, // The model was dropped.
                }
            }
            loop {
                match jobs.try_recv() {
                    Ok(job) => self.enqueue(job),
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            self.drop_cancelled();
            self.admit();
            self.step();
        }
    }

    /// Frees the slots of requests whose caller stopped listening.
    fn drop_cancelled(&mut self) {
        for slot in &mut self.slots {
            if slot.active.as_ref().is_some_and(|a| a.events.is_closed()) {
                slot.active = None;
            }
        }
        self.queue.retain(|queued| !queued.job.events.is_closed());
    }

    fn enqueue(&mut self, job: Job) {
        let tokens = self
            .model
            .vocab()
            .tokenize(job.prompt.as_bytes(), job.add_bos, true);
        self.queue.push_back(Queued {
            job,
            tokens,
            waited: false,
        });
    }

    /// Moves queued jobs into free slots, reusing cached prompt prefixes. A
    /// job whose prompt shares a long prefix with one a running request is
    /// still decoding waits until that prefix is decoded (see
    /// [`SHARED_PREFIX_MIN`]); jobs behind it go ahead meanwhile.
    fn admit(&mut self) {
        let mut waiting = Vec::new();
        while let Some(free) = self.slots.iter().position(|s| s.active.is_none()) {
            let Some(mut queued) = self.queue.pop_front() else {
                break;
            };
            if self.prefix_in_progress(&queued.tokens) {
                if !queued.waited {
                    queued.waited = true;
                    self.stats.prefix_waits.fetch_add(1, Ordering::Relaxed);
                }
                waiting.push(queued);
                continue;
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            if let Err((events, err)) = self.start(free, queued) {
                let _ = events.send(Event::Done(Err(err)));
            }
        }
        for queued in waiting.into_iter().rev() {
            self.queue.push_front(queued);
        }
    }

    /// Whether a running request is decoding a prefix of `tokens` at least
    /// [`SHARED_PREFIX_MIN`] tokens longer than any slot already holds.
    fn prefix_in_progress(&self, tokens: &[LlamaToken]) -> bool {
        let ready = self
            .slots
            .iter()
            .map(|s| common_prefix(&s.cached, tokens))
            .max()
            .unwrap_or(0);
        let coming = self
            .slots
            .iter()
            .filter_map(|s| {
                let active = s.active.as_ref()?;
                (!active.pending.is_empty()).then(|| {
                    s.cached
                        .iter()
                        .chain(active.pending.iter())
                        .zip(tokens)
                        .take_while(|(x, y)| x == y)
                        .count()
                })
            })
            .max()
            .unwrap_or(0);
        // The last prompt token is always decoded anew (it yields the logits).
        coming.min(tokens.len().saturating_sub(1)) >= ready + SHARED_PREFIX_MIN
    }

    fn start(
        &mut self,
        slot_index: usize,
        queued: Queued,
    ) -> Result<(), (async_mpsc::UnboundedSender<Event>, EmbeddedError)> {
        let Queued { job, tokens, .. } = queued;
        let queued_for = job.submitted.elapsed();
        if tokens.is_empty() {
            return Err((
                job.events,
                EmbeddedError::Request("the prompt is empty".into()),
            ));
        }
        if tokens.len() + 1 >= self.n_ctx {
            return Err((
                job.events,
                EmbeddedError::Request(format!(
                    "the prompt has {} tokens; a sequence's context holds {}",
                    tokens.len(),
                    self.n_ctx
                )),
            ));
        }
        let sampler = match build_sampler(self.model, &job.sampling, job.grammar.as_deref()) {
            Ok(s) => s,
            Err(err) => return Err((job.events, err)),
        };

        // Pick the free slot with the longest common prefix; a busy slot with
        // a longer one donates its prefix by copy.
        let mut target = slot_index;
        let mut own = common_prefix(&self.slots[target].cached, &tokens);
        for (i, slot) in self.slots.iter().enumerate() {
            if slot.active.is_none() {
                let lcp = common_prefix(&slot.cached, &tokens);
                if lcp > own {
                    own = lcp;
                    target = i;
                }
            }
        }
        let (donor, donor_lcp) = self
            .slots
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != target)
            .map(|(i, s)| (i, common_prefix(&s.cached, &tokens)))
            .max_by_key(|&(_, lcp)| lcp)
            .unwrap_or((target, 0));
        // At least one prompt token must be decoded to get logits.
        let max_keep = tokens.len() - 1;
        let seq = self.slots[target].seq;
        let keep = if donor_lcp > own {
            let keep = donor_lcp.min(max_keep);
            let donor_seq = self.slots[donor].seq;
            // Sequences live in separate KV streams, and llama.cpp copies
            // across streams only whole (a partial copy aborts the process):
            // copy everything, then drop what lies past the shared prefix.
            let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            let copied = self
                .ctx
                .copy_kv_cache_seq(donor_seq, seq, None, None)
                .is_ok()
                && matches!(
                    self.ctx
                        .clear_kv_cache_seq(Some(seq as u32), Some(keep as u32), None),
                    Ok(true)
                );
            if copied {
                keep
            } else {
                let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                0
            }
        } else {
            let keep = own.min(max_keep);
            match self
                .ctx
                .clear_kv_cache_seq(Some(seq as u32), Some(keep as u32), None)
            {
                Ok(true) => keep,
                _ => {
                    let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
                    0
                }
            }
        };
        let slot = &mut self.slots[target];
        slot.cached.clear();
        slot.cached.extend_from_slice(&tokens[..keep]);
        self.stats
            .prompt_tokens_reused
            .fetch_add(keep as u64, Ordering::Relaxed);
        slot.active = Some(Active {
            events: job.events,
            sampler,
            sampling: job.sampling,
            pending: tokens[keep..].iter().copied().collect(),
            prompt_len: tokens.len() as u64,
            reused: keep as u64,
            timing: ComputeTiming {
                queued: queued_for,
                ..ComputeTiming::default()
            },
            next_token: None,
            logits_row: None,
            generated: Vec::new(),
            emitted: 0,
            n_generated: 0,
        });
        Ok(())
    }

    /// One decode step over every active sequence.
    fn step(&mut self) {
        self.batch.clear();
        let mut room = self.n_batch;
        let mut members: Vec<(usize, usize)> = Vec::new(); // (slot, tokens added)
        // Generating sequences first: one token each keeps latency even.
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            active.logits_row = None;
            if let Some(token) = active.next_token {
                let pos = slot.cached.len() as i32;
                if self.batch.add(token, pos, &[slot.seq], true).is_ok() {
                    active.logits_row = Some(self.batch.n_tokens() - 1);
                    members.push((i, 1));
                    room -= 1;
                }
            }
        }
        for (i, slot) in self.slots.iter_mut().enumerate() {
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            if active.next_token.is_some() || active.pending.is_empty() || room == 0 {
                continue;
            }
            let take = active.pending.len().min(room);
            let start = slot.cached.len();
            for k in 0..take {
                let token = active.pending[k];
                let last = k + 1 == active.pending.len();
                if self
                    .batch
                    .add(token, (start + k) as i32, &[slot.seq], last)
                    .is_err()
                {
                    break;
                }
                if last {
                    active.logits_row = Some(self.batch.n_tokens() - 1);
                }
            }
            room -= take;
            members.push((i, take));
        }
        if members.is_empty() {
            return;
        }

        let (decoded, lock_wait, took) = {
            let asked = Instant::now();
            let _guard = COMPUTE.lock().unwrap_or_else(|e| e.into_inner());
            let started = Instant::now();
            let result = self.ctx.decode(&mut self.batch);
            let took = started.elapsed();
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
            self.stats
                .decode_micros
                .fetch_add(micros, Ordering::Relaxed);
            (result, started - asked, took)
        };
        self.stats.decode_calls.fetch_add(1, Ordering::Relaxed);
        self.stats
            .max_sequences_per_decode
            .fetch_max(members.len() as u64, Ordering::Relaxed);
        if let Err(err) = decoded {
            self.fail_members(&members, &format!("llama.cpp decode failed: {err}"));
            return;
        }

        for &(i, added) in &members {
            let slot = &mut self.slots[i];
            let Some(active) = slot.active.as_mut() else {
                continue;
            };
            charge(
                &mut active.timing,
                lock_wait,
                took,
                active.next_token.is_some(),
            );
            if let Some(token) = active.next_token.take() {
                slot.cached.push(token);
            } else {
                for _ in 0..added {
                    if let Some(token) = active.pending.pop_front() {
                        slot.cached.push(token);
                    }
                }
                self.stats
                    .prompt_tokens_evaluated
                    .fetch_add(added as u64, Ordering::Relaxed);
            }
        }
        for &(i, _) in &members {
            self.sample(i);
        }
    }

    /// Samples the next token of slot `i` if its logits are ready, and
    /// finishes the request when it is done.
    fn sample(&mut self, i: usize) {
        let n_ctx = self.n_ctx;
        let model = self.model;
        let slot = &mut self.slots[i];
        let Some(active) = slot.active.as_mut() else {
            return;
        };
        let Some(row) = active.logits_row.take() else {
            return;
        };
        let Some(token) = active.sampler.sample(&self.ctx, row, self.stats) else {
            if let Some(active) = slot.active.take() {
                let _ = active.events.send(Event::Done(Err(EmbeddedError::Engine(
                    "the output grammar allows no further token".into(),
                ))));
            }
            return;
        };
        let finish = if model.vocab().is_eog(token) {
            Some(FinishReason::Stop)
        } else {
            active.n_generated += 1;
            self.stats.generated_tokens.fetch_add(1, Ordering::Relaxed);
            active
                .generated
                .extend(model.vocab().token_to_piece(token, false, None));
            if let Some(cut) = find_stop(&active.generated, &active.sampling.stop) {
                active.generated.truncate(cut);
                Some(FinishReason::Stop)
            } else if active.n_generated >= u64::from(active.sampling.max_tokens)
                || slot.cached.len() + 1 >= n_ctx
            {
                Some(FinishReason::Length)
            } else {
                active.next_token = Some(token);
                None
            }
        };
        match finish {
            None => emit_ready_text(active),
            Some(reason) => {
                if let Some(active) = slot.active.take() {
                    finish_request(active, reason);
                }
            }
        }
    }

    fn fail_members(&mut self, members: &[(usize, usize)], message: &str) {
        for &(i, _) in members {
            let slot = &mut self.slots[i];
            // Positions of the failed batch may be half-written: forget them.
            let _ = self
                .ctx
                .clear_kv_cache_seq(Some(slot.seq as u32), None, None);
            slot.cached.clear();
            if let Some(active) = slot.active.take() {
                let _ = active
                    .events
                    .send(Event::Done(Err(EmbeddedError::Engine(message.to_string()))));
            }
        }
    }
}

/// Sends the part of the generated text that is final: complete UTF-8, and
/// not possibly the beginning of a stop sequence.
fn emit_ready_text(active: &mut Active) {
    let hold = active
        .sampling
        .stop
        .iter()
        .map(|s| s.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    let limit = active.generated.len().saturating_sub(hold);
    if limit <= active.emitted {
        return;
    }
    let fresh = &active.generated[active.emitted..limit];
    let valid = match std::str::from_utf8(fresh) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    if valid == 0 {
        return;
    }
    let text = String::from_utf8_lossy(&fresh[..valid]).into_owned();
    active.emitted += valid;
    let _ = active.events.send(Event::Delta(text));
}

fn finish_request(active: Active, reason: FinishReason) {
    let text = String::from_utf8_lossy(&active.generated).into_owned();
    if active.emitted < active.generated.len() {
        let rest = String::from_utf8_lossy(&active.generated[active.emitted..]).into_owned();
        let _ = active.events.send(Event::Delta(rest));
    }
    let _ = active.events.send(Event::Done(Ok(Completion {
        text,
        prompt_tokens: active.prompt_len,
        reused_prompt_tokens: active.reused,
        completion_tokens: active.n_generated,
        finish_reason: reason,
        timing: active.timing,
    })));
}

/// Charges one decode step to a request it advanced: to generation when it
/// fed back a sampled token, else to its prompt.
fn charge(timing: &mut ComputeTiming, lock_wait: Duration, took: Duration, generating: bool) {
    timing.lock_wait += lock_wait;
    if generating {
        timing.generate += took;
    } else {
        timing.prompt += took;
    }
}

/// A request's sampler: the distribution (`chain`) and, for structured
/// output, the grammar.
///
/// The grammar is not the chain's first stage: masking the whole vocabulary
/// against the grammar costs per token about what a decode step of the meta
/// model does (151k candidates for Qwen). A token is drawn from the chain
/// alone and checked against the grammar as a single candidate; only when the
/// grammar refuses it is the vocabulary masked and the token drawn again, as
/// llama.cpp's own `common_sampler` does. Greedy decoding picks the same token
/// either way; drawing from the full distribution and redrawing from the
/// masked one on refusal yields the masked distribution.
struct Sampler {
    chain: LlamaSampler,
    grammar: Option<LlamaSampler>,
}

impl Sampler {
    /// Draws the next token from row `row` of the last batch's logits and
    /// accepts it into the sampler's state.
    /// `None` when the grammar allows no token at all.
    fn sample(
        &mut self,
        ctx: &LlamaContext<'_>,
        row: i32,
        stats: &EngineStats,
    ) -> Option<LlamaToken> {
        let Some(grammar) = self.grammar.as_mut() else {
            // `sample` also accepts the token into the chain; accepting it
            // again aborts inside llama.cpp.
            return Some(self.chain.sample(ctx, row));
        };
        let mut candidates = ctx.token_data_array_ith(row);
        candidates.apply_sampler(&mut self.chain);
        let drawn = candidates.selected_token();
        let allowed = drawn.is_some_and(|token| {
            let mut single =
                LlamaTokenDataArray::new(vec![LlamaTokenData::new(token, 0.0, 0.0)], false);
            single.apply_sampler(grammar);
            single.data.first().is_some_and(|d| d.logit().is_finite())
        });
        let token = match drawn {
            Some(token) if allowed => {
                stats.grammar_tokens_checked.fetch_add(1, Ordering::Relaxed);
                token
            }
            _ => {
                stats
                    .grammar_tokens_resampled
                    .fetch_add(1, Ordering::Relaxed);
                let mut masked = ctx.token_data_array_ith(row);
                masked.apply_sampler(grammar);
                if !masked.data.iter().any(|d| d.logit().is_finite()) {
                    return None;
                }
                masked.apply_sampler(&mut self.chain);
                masked.selected_token()?
            }
        };
        grammar.accept(token);
        self.chain.accept(token);
        Some(token)
    }
}

fn build_sampler(
    model: &LlamaModel,
    sampling: &Sampling,
    grammar: Option<&str>,
) -> Result<Sampler, EmbeddedError> {
    let grammar = grammar
        .map(|grammar| {
            LlamaSampler::grammar(model, grammar, "root").map_err(|e| {
                EmbeddedError::Request(format!("the output grammar was rejected: {e}"))
            })
        })
        .transpose()?;
    let mut chain = Vec::new();
    if sampling.temperature <= 0.0 {
        chain.push(LlamaSampler::greedy());
    } else {
        // A top-k cut first, as llama.cpp's own default chain does: top-p
        // alone sorts the whole vocabulary (49k entries for SmolLM2) for
        // every token of every sequence, ~1 ms on the engine thread while
        // the compute threads wait.
        chain.push(LlamaSampler::top_k(SAMPLING_TOP_K));
        chain.push(LlamaSampler::top_p(sampling.top_p.clamp(0.0, 1.0), 1));
        chain.push(LlamaSampler::temp(sampling.temperature));
        chain.push(LlamaSampler::dist(fold_seed(sampling.seed)));
    }
    Ok(Sampler {
        chain: LlamaSampler::chain_simple(chain),
        grammar,
    })
}

/// Candidates kept before top-p; llama.cpp's default.
const SAMPLING_TOP_K: i32 = 40;

/// llama.cpp seeds are 32-bit; fold the 64-bit seed so both halves count.
fn fold_seed(seed: u64) -> u32 {
    ((seed ^ (seed >> 32)) & 0xffff_ffff) as u32
}

fn common_prefix(a: &[LlamaToken], b: &[LlamaToken]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// The byte offset of the earliest stop sequence in `text`, if any.
fn find_stop(text: &[u8], stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.windows(s.len()).position(|w| w == s.as_bytes()))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_sequences_cut_at_the_earliest() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(find_stop(b"abc\n\nxEND", &stops), Some(3));
        assert_eq!(find_stop(b"abcEND\n\n", &stops), Some(3));
        assert_eq!(find_stop(b"abc", &stops), None);
        assert_eq!(find_stop(b"abc", &[String::new()]), None);
    }

    #[test]
    fn seeds_fold_both_halves() {
        assert_ne!(fold_seed(1), fold_seed(1 << 32 | 1));
        assert_eq!(fold_seed(7), 7);
    }
}
