//! The JetStream layout the coordinator and workers share, and connecting
//! to it. Only features of nats-server 2.9 (Debian's) are used.
//!
//! - `HA_JOBS` (subjects `ha.jobs.>`): a work-queue stream on file storage;
//!   a job leaves it when a worker acks it.
//! - `HA_RESULTS` (subjects `ha.results.>`): results, kept until the
//!   coordinator has stored them (it may be down while they arrive).
//! - Object store bucket `ha-bundles`: program bundles named by content
//!   hash, and trajectories.

use std::path::PathBuf;
use std::time::Duration;

use async_nats::jetstream::{self, object_store, stream};
use hyperagents_program::ContentHash;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

use crate::bundle::{self, BundleError};

pub const JOBS_STREAM: &str = "HA_JOBS";
pub const JOBS_SUBJECTS: &str = "ha.jobs.>";
pub const RESULTS_STREAM: &str = "HA_RESULTS";
pub const RESULTS_SUBJECTS: &str = "ha.results.>";
pub const BUNDLES_BUCKET: &str = "ha-bundles";

/// How to reach the NATS server (`[nats]` in the settings).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsSettings {
    /// `nats://host:4222`.
    pub url: String,
    /// A `.creds` file (JWT and NKey seed) for servers that require one.
    pub credentials: Option<PathBuf>,
    /// Require TLS; with `tls_ca`, trust that CA.
    pub tls: bool,
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and key, for servers that verify clients.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("connecting to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("JetStream {what}: {message}")]
    JetStream { what: String, message: String },
    #[error(transparent)]
    Bundle(#[from] BundleError),
}

fn jetstream_error(what: impl Into<String>) -> impl FnOnce(String) -> NatsError {
    let what = what.into();
    move |message| NatsError::JetStream { what, message }
}

/// How long one read of a stored object may take. A reader of an object
/// that is being put again (a bundle two evaluations ship at once, a
/// trajectory of a job run twice) can wait forever for chunks the new put
/// purged; it gives up and reads again.
pub const OBJECT_READ_TIMEOUT: Duration = Duration::from_secs(20);
/// Reads of one object before it is reported unreadable.
const OBJECT_READ_TRIES: u32 = 3;

/// A connection and the layout above, created if missing.
#[derive(Clone)]
pub struct Jets {
    pub client: async_nats::Client,
    pub context: jetstream::Context,
    pub bundles: object_store::ObjectStore,
    /// Held while this process checks for and puts a bundle, so it never
    /// puts one twice at once (each put replaces the object under readers).
    shipping: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Connects with the settings' credentials and TLS.
pub async fn connect(settings: &NatsSettings) -> Result<async_nats::Client, NatsError> {
    let connect_error = |message: String| NatsError::Connect {
        url: settings.url.clone(),
        message,
    };
    let mut options = async_nats::ConnectOptions::new().name("hyperagents");
    if let Some(path) = &settings.credentials {
        options = options
            .credentials_file(path)
            .await
            .map_err(|e| connect_error(format!("credentials {}: {e}", path.display())))?;
    }
    if settings.tls {
        options = options.require_tls(true);
    }
    if let Some(ca) = &settings.tls_ca {
        options = options.add_root_certificates(ca.clone());
    }
    if let (Some(cert), Some(key)) = (&settings.tls_cert, &settings.tls_key) {
        options = options.add_client_certificate(cert.clone(), key.clone());
    }
    options
        .connect(settings.url.as_str())
        .await
        .map_err(|e| connect_error(e.to_string()))
}

impl Jets {
    /// Connects and makes sure the streams and the bucket exist (creating
    /// them is idempotent, so coordinator and workers may both do it).
    pub async fn open(settings: &NatsSettings) -> Result<Jets, NatsError> {
        let client = connect(settings).await?;
        let context = jetstream::new(client.clone());
        context
            .get_or_create_stream(stream::Config {
                name: JOBS_STREAM.into(),
                subjects: vec![JOBS_SUBJECTS.into()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| jetstream_error(JOBS_STREAM)(e.to_string()))?;
        context
            .get_or_create_stream(stream::Config {
                name: RESULTS_STREAM.into(),
                subjects: vec![RESULTS_SUBJECTS.into()],
                retention: stream::RetentionPolicy::Limits,
                storage: stream::StorageType::File,
                max_age: Duration::from_secs(7 * 24 * 3600),
                ..Default::default()
            })
            .await
            .map_err(|e| jetstream_error(RESULTS_STREAM)(e.to_string()))?;
        let bundles = match context.get_object_store(BUNDLES_BUCKET).await {
            Ok(store) => store,
            Err(_) => context
                .create_object_store(object_store::Config {
                    bucket: BUNDLES_BUCKET.into(),
                    storage: stream::StorageType::File,
                    ..Default::default()
                })
                .await
                .map_err(|e| jetstream_error(BUNDLES_BUCKET)(e.to_string()))?,
        };
        Ok(Jets {
            client,
            context,
            bundles,
            shipping: std::sync::Arc::default(),
        })
    }

    /// The bytes of the stored object `name` (a bundle, a trajectory), read
    /// again when a read stalls (see [`OBJECT_READ_TIMEOUT`]).
    pub async fn read_object(&self, name: &str) -> Result<Vec<u8>, NatsError> {
        let mut problem = String::new();
        for _ in 0..OBJECT_READ_TRIES {
            let read = async {
                let mut object = self
                    .bundles
                    .get(name)
                    .await
                    .map_err(|e| format!("fetching: {e}"))?;
                let mut bytes = Vec::new();
                object
                    .read_to_end(&mut bytes)
                    .await
                    .map_err(|e| format!("reading: {e}"))?;
                Ok::<_, String>(bytes)
            };
            match tokio::time::timeout(OBJECT_READ_TIMEOUT, read).await {
                Ok(Ok(bytes)) => return Ok(bytes),
                Ok(Err(message)) => problem = message,
                Err(_) => {
                    problem = format!("no data within {} s", OBJECT_READ_TIMEOUT.as_secs());
                    tracing::warn!(
                        object = name,
                        "a stored object's read stalled; reading again"
                    );
                }
            }
        }
        Err(NatsError::JetStream {
            what: format!("object {name}"),
            message: problem,
        })
    }

    /// Stores the program at `dir` as a bundle named by its content hash
    /// (once: a bundle already there is not sent again).
    pub async fn put_program(&self, dir: &std::path::Path) -> Result<ContentHash, NatsError> {
        let (hash, bytes) = bundle::pack(dir)?;
        let name = hash.to_hex();
        let _shipping = self.shipping.lock().await;
        if self.bundles.info(&name).await.is_ok() {
            return Ok(hash);
        }
        self.bundles
            .put(name.as_str(), &mut bytes.as_slice())
            .await
            .map_err(|e| jetstream_error(format!("storing bundle {name}"))(e.to_string()))?;
        Ok(hash)
    }

    /// Fetches the bundle named `hash`, checks it, and unpacks it into
    /// `dest`; a bundle whose files do not hash to `hash` is refused.
    pub async fn get_program(
        &self,
        hash: &ContentHash,
        dest: &std::path::Path,
    ) -> Result<(), NatsError> {
        let bytes = self.read_object(&hash.to_hex()).await?;
        bundle::unpack(&bytes, hash, dest)?;
        Ok(())
    }

    /// The bundle named `hash` (a program, or a folder of evidence),
    /// checked and unpacked once into `into/<hash>`; its path. Unpacked
    /// beside its final name first, so a reader never sees half of it.
    pub async fn fetch_bundle(
        &self,
        hash: &str,
        into: &std::path::Path,
    ) -> Result<std::path::PathBuf, String> {
        let content =
            ContentHash::from_hex(hash).ok_or_else(|| format!("`{hash}` is not a hash"))?;
        let dir = into.join(hash);
        if !dir.exists() {
            let partial = into.join(format!("{hash}.{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&partial);
            self.get_program(&content, &partial)
                .await
                .map_err(|e| e.to_string())?;
            if std::fs::rename(&partial, &dir).is_err() && !dir.exists() {
                return Err(format!("cannot keep the bundle in {}", dir.display()));
            }
        }
        Ok(dir)
    }
}
