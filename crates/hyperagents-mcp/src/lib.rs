//! MCP both ways.
//!
//! - [`McpTools`]: the MCP servers a run's settings declare, offered to
//!   programs as external tools (`server/tool`) through the runtime's
//!   `tools()` / `tool()`. Only granted tools a program requests are
//!   reachable; a server that exits or hangs fails the call, never the run.
//! - [`server`]: `hyperagents mcp`, the results store's runs, nodes,
//!   evaluations, reports and trajectories as read-only MCP tools.
//!
//! This crate knows neither the engine nor the store's schema beyond the
//! store's own read API.

pub mod client;
pub mod server;
pub mod settings;

pub use client::McpTools;
pub use server::{HyperagentsServer, Launcher, ServeError, serve_stdio};
pub use settings::{McpServerSettings, McpSettings, McpSettingsError};
