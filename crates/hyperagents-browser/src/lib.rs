//! A generic web environment over the Chrome DevTools Protocol.
//!
//! - [`BrowserPool`] starts one headless Chromium (empty environment, fresh
//!   profile, DevTools on loopback) and lends one *window* per worker.
//! - [`WebEnvironment`] turns a leased window into a
//!   [`hyperagents_domain::Environment`]: the observation is a compact list of
//!   visible elements with refs, collected by a helper that runs in an
//!   isolated JavaScript world (page scripts cannot see or alter it, and the
//!   page DOM is never modified); actions are real mouse and keyboard input
//!   at element centres, navigation limited to allowed origins, and never raw
//!   JavaScript.
//! - A benchmark wraps it with a [`WebTask`] that decides when an episode is
//!   over and scores it through host-only hooks ([`PageHandle::evaluate_main`],
//!   [`PageHandle::navigate`], …) that agents cannot reach.

pub mod actions;
pub mod env;
pub mod error;
pub mod keys;
pub mod launch;
pub mod observe;
pub mod origin;
pub mod page;
pub mod pool;

pub use actions::{Action, ActionKind, Direction, parse_action};
pub use env::{WebConfig, WebEnvironment, WebTask};
pub use error::BrowserError;
pub use launch::{Chromium, ChromiumExecutable, LaunchConfig, find_chromium};
pub use observe::{Element, Layout, Observation, ObserverConfig, RenderedObservation};
pub use origin::AllowedOrigins;
pub use page::{DocumentId, ElementPoint, PageHandle};
pub use pool::{BrowserPool, PoolConfig, StartTiming, TabInfo, WindowLease};
