//! The work-queue mechanics every job kind shares (episodes, meta steps):
//! a worker's loop over one durable consumer of `HA_JOBS` ([`serve_jobs`]),
//! and a coordinator's [`Inbox`] of results on its own subject of
//! `HA_RESULTS`.
//!
//! - A worker acks a job only after its result is published, and tells the
//!   server it is still working while a job runs (`+WPI`), so the ack
//!   deadline is short and a dead worker's job goes to another one.
//! - Results stay in `HA_RESULTS` until the coordinator has read them, so a
//!   coordinator restarted after a crash finds what arrived while it was
//!   down; a job delivered twice gives two results, and the first one read
//!   is the one used.
//! - A job no worker finished within its deliveries ends as a dead-letter
//!   result (the server's `MAX_DELIVERIES` advisory), not a wait forever.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::{AckKind, consumer};
use futures::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::jetstream::{JOBS_STREAM, Jets, NatsError, RESULTS_STREAM};

fn jetstream_error(what: &str) -> impl FnOnce(String) -> NatsError + '_ {
    move |message| NatsError::JetStream {
        what: what.to_string(),
        message,
    }
}

/// How long a worker may go without saying it is still working before its
/// job goes to another worker.
#[derive(Debug, Clone, Copy)]
pub struct WorkerTiming {
    pub ack_wait: Duration,
    /// Deliveries of one job before it is left alone (a job that kills
    /// every worker it reaches).
    pub max_deliver: i64,
}

impl Default for WorkerTiming {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(60),
            max_deliver: 5,
        }
    }
}

/// A job's message, as workers read it.
pub trait Job: DeserializeOwned {
    /// Whether this build reads the message's format.
    fn readable(&self) -> bool;
    /// Where its result goes.
    fn results_subject(&self) -> &str;
}

/// A job's result, as the coordinator reads it.
pub trait Finished: Serialize + DeserializeOwned + Send + 'static {
    /// The job it answers.
    fn job(&self) -> &str;
    /// Whether this build reads the message's format.
    fn readable(&self) -> bool;
    /// The result of a job no worker finished in `deliveries` deliveries.
    fn dead_letter(job: String, deliveries: u64) -> Self;
}

/// What a worker made of one job.
pub enum Handled<D> {
    /// It ran (or failed for good): publish this result, then ack.
    Done(D),
    /// Not for this worker (a suite it does not serve, a role it does not
    /// bind): offered to another one after `Duration`.
    NotMine(Duration),
    /// Cut short here (this worker is stopping): another worker runs it.
    CutShort,
}

/// Takes jobs of one kind (`subject`, shared durable consumer `consumer`)
/// until the connection ends, handing each to `handle`.
pub async fn serve_jobs<J, D, F, Fut>(
    jets: &Jets,
    consumer_name: &str,
    subject: &str,
    timing: WorkerTiming,
    mut handle: F,
) -> Result<(), NatsError>
where
    J: Job,
    D: Finished,
    F: FnMut(J) -> Fut,
    Fut: Future<Output = Handled<D>>,
{
    let stream = jets
        .context
        .get_stream(JOBS_STREAM)
        .await
        .map_err(|e| jetstream_error(JOBS_STREAM)(e.to_string()))?;
    let consumer = stream
        .get_or_create_consumer(
            consumer_name,
            consumer::pull::Config {
                durable_name: Some(consumer_name.into()),
                filter_subject: subject.into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: timing.ack_wait,
                max_deliver: timing.max_deliver,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| jetstream_error(consumer_name)(e.to_string()))?;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| jetstream_error(consumer_name)(e.to_string()))?;
    while let Some(message) = messages.next().await {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "reading a job");
                continue;
            }
        };
        let job: J = match serde_json::from_slice(&message.payload) {
            Ok(job) if Job::readable(&job) => job,
            Ok(_) | Err(_) => {
                tracing::warn!(subject, "a job this worker cannot read; left alone");
                let _ = message.ack_with(AckKind::Term).await;
                continue;
            }
        };
        let results = job.results_subject().to_string();
        // Still working, every third of the ack deadline, until done; both
        // end together, so a worker that dies stops saying it works.
        let beat = async {
            loop {
                tokio::time::sleep(timing.ack_wait / 3).await;
                if message.ack_with(AckKind::Progress).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        let handled = tokio::select! {
            handled = handle(job) => handled,
            () = beat => Handled::CutShort,
        };
        let done = match handled {
            Handled::Done(done) => done,
            Handled::NotMine(delay) => {
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
                continue;
            }
            Handled::CutShort => {
                let _ = message.ack_with(AckKind::Nak(None)).await;
                continue;
            }
        };
        let published = match serde_json::to_vec(&done) {
            Ok(bytes) => match jets.context.publish(results, bytes.into()).await {
                Ok(ack) => ack.await.is_ok(),
                Err(_) => false,
            },
            Err(_) => false,
        };
        // Acked only once the result is stored on the server.
        if published {
            let _ = message.double_ack().await;
        } else {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
    }
    Ok(())
}

/// The server's advisory when a job reached its last delivery without an
/// ack (it killed, or was refused by, every worker that took it).
#[derive(serde::Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

type Waiting<D> = Arc<Mutex<HashMap<String, oneshot::Sender<D>>>>;

/// A coordinator's results of one job kind, read from `HA_RESULTS` on its
/// own subject by a durable consumer (named across restarts).
pub struct Inbox<D: Finished> {
    /// Where workers publish this coordinator's results.
    pub subject: String,
    waiting: Waiting<D>,
    /// Results that arrived with nobody waiting (while this coordinator was
    /// down, or before it asked again).
    arrived: Arc<Mutex<HashMap<String, D>>>,
    /// The jobs stream's sequence number of each job this process sent.
    sent: Arc<Mutex<HashMap<u64, String>>>,
    reader: tokio::task::JoinHandle<()>,
    dead_letters: tokio::task::JoinHandle<()>,
}

impl<D: Finished> Drop for Inbox<D> {
    fn drop(&mut self) {
        self.reader.abort();
        self.dead_letters.abort();
    }
}

impl<D: Finished> Inbox<D> {
    /// Starts reading `subject` with the durable consumer `durable`; the
    /// results that arrived while no one read them are read first. Jobs
    /// of the workers' consumer `workers` that run out of deliveries end
    /// as dead letters.
    pub async fn start(
        jets: &Jets,
        subject: String,
        durable: &str,
        workers: &str,
    ) -> Result<Inbox<D>, NatsError> {
        let stream = jets
            .context
            .get_stream(RESULTS_STREAM)
            .await
            .map_err(|e| jetstream_error(RESULTS_STREAM)(e.to_string()))?;
        let consumer = stream
            .get_or_create_consumer(
                durable,
                consumer::pull::Config {
                    durable_name: Some(durable.into()),
                    filter_subject: subject.clone(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    deliver_policy: consumer::DeliverPolicy::All,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| jetstream_error(durable)(e.to_string()))?;
        let waiting: Waiting<D> = Arc::default();
        let arrived: Arc<Mutex<HashMap<String, D>>> = Arc::default();
        // Results that arrived while this coordinator was down are read
        // before it asks for anything, so none of their jobs is sent again.
        loop {
            let mut batch = consumer
                .fetch()
                .max_messages(256)
                .expires(Duration::from_millis(500))
                .messages()
                .await
                .map_err(|e| jetstream_error(durable)(e.to_string()))?;
            let mut read = 0;
            while let Some(Ok(message)) = batch.next().await {
                read += 1;
                if let Ok(done) = serde_json::from_slice::<D>(&message.payload)
                    && done.readable()
                {
                    lock(&arrived).entry(done.job().to_string()).or_insert(done);
                }
                let _ = message.ack().await;
            }
            if read == 0 {
                break;
            }
        }
        let mut messages = consumer
            .messages()
            .await
            .map_err(|e| jetstream_error(durable)(e.to_string()))?;
        let reader = {
            let waiting = waiting.clone();
            let arrived = arrived.clone();
            tokio::spawn(async move {
                while let Some(message) = messages.next().await {
                    // A lost connection (the server restarting) is an error
                    // here, not the end: the client reconnects.
                    let message = match message {
                        Ok(message) => message,
                        Err(error) => {
                            tracing::debug!(%error, "reading results");
                            continue;
                        }
                    };
                    if let Ok(done) = serde_json::from_slice::<D>(&message.payload)
                        && done.readable()
                    {
                        deliver(&waiting, &arrived, done);
                    }
                    let _ = message.ack().await;
                }
            })
        };
        let sent: Arc<Mutex<HashMap<u64, String>>> = Arc::default();
        let mut advisories = jets
            .client
            .subscribe(format!(
                "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{JOBS_STREAM}.{workers}"
            ))
            .await
            .map_err(|e| jetstream_error("dead-letter advisories")(e.to_string()))?;
        let dead_letters = {
            let waiting = waiting.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                while let Some(message) = advisories.next().await {
                    let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&message.payload)
                    else {
                        continue;
                    };
                    let Some(job) = lock(&sent).remove(&advisory.stream_seq) else {
                        continue;
                    };
                    tracing::warn!(%job, deliveries = advisory.deliveries, "a job ran out of deliveries");
                    if let Some(waiter) = lock(&waiting).remove(&job) {
                        let _ = waiter.send(D::dead_letter(job, advisory.deliveries));
                    }
                }
            })
        };
        Ok(Inbox {
            subject,
            waiting,
            arrived,
            sent,
            reader,
            dead_letters,
        })
    }

    /// The result of `job` if it is here already, else a receiver of it.
    pub fn expect(&self, job: &str) -> Result<D, oneshot::Receiver<D>> {
        // Both maps under the waiting lock (the reader's order too), so a
        // result read in between is never left unclaimed.
        let mut waiting = lock(&self.waiting);
        if let Some(done) = lock(&self.arrived).remove(job) {
            return Ok(done);
        }
        let (send, receive) = oneshot::channel();
        waiting.insert(job.to_string(), send);
        Err(receive)
    }

    /// Notes that `job` went out as the jobs stream's message `sequence`
    /// (for its dead letter).
    pub fn sent(&self, sequence: u64, job: &str) {
        lock(&self.sent).insert(sequence, job.to_string());
    }

    /// Stops waiting for `job` (the caller gave up).
    pub fn forget(&self, job: &str) {
        lock(&self.waiting).remove(job);
    }

    /// Publishes `payload` as a job on `subject` and notes its sequence.
    pub async fn publish_job(
        &self,
        jets: &Jets,
        subject: &'static str,
        job: &str,
        payload: Vec<u8>,
    ) -> Result<(), String> {
        let published = jets
            .context
            .publish(subject, payload.into())
            .await
            .map_err(|e| format!("publishing the job: {e}"))?;
        let ack = published
            .await
            .map_err(|e| format!("publishing the job: {e}"))?;
        self.sent(ack.sequence, job);
        Ok(())
    }
}

fn deliver<D: Finished>(waiting: &Waiting<D>, arrived: &Mutex<HashMap<String, D>>, done: D) {
    let mut waiting = lock(waiting);
    match waiting.remove(done.job()) {
        Some(waiter) => {
            let _ = waiter.send(done);
        }
        None => {
            lock(arrived).entry(done.job().to_string()).or_insert(done);
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
