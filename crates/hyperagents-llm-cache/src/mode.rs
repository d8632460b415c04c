//! How a [`crate::CachedModel`] uses its cache.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How a [`crate::CachedModel`] uses its cache. Spelled `off`, `read-write`
/// and `replay-only` in configuration and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CacheMode {
    /// Every call goes to the model; the cache is neither read nor written.
    Off,
    /// Answers come from the cache when present; fresh answers are recorded.
    #[default]
    ReadWrite,
    /// Answers come from the cache only; a miss is an error and the model is
    /// never called.
    ReplayOnly,
}

impl CacheMode {
    pub const ALL: [CacheMode; 3] = [CacheMode::Off, CacheMode::ReadWrite, CacheMode::ReplayOnly];

    pub fn as_str(self) -> &'static str {
        match self {
            CacheMode::Off => "off",
            CacheMode::ReadWrite => "read-write",
            CacheMode::ReplayOnly => "replay-only",
        }
    }
}

impl fmt::Display for CacheMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cache mode that is none of `off`, `read-write`, `replay-only`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cache mode `{0}`: expected one of off, read-write, replay-only")]
pub struct ParseCacheModeError(pub String);

impl FromStr for CacheMode {
    type Err = ParseCacheModeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CacheMode::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| ParseCacheModeError(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_every_mode() {
        for mode in CacheMode::ALL {
            assert_eq!(mode.to_string().parse::<CacheMode>(), Ok(mode));
            let json = serde_json::to_string(&mode).expect("serializes");
            assert_eq!(json, format!("\"{mode}\""));
        }
    }

    #[test]
    fn rejects_unknown_modes_naming_the_choices() {
        let err = "readwrite".parse::<CacheMode>().expect_err("not a mode");
        assert_eq!(
            err.to_string(),
            "unknown cache mode `readwrite`: expected one of off, read-write, replay-only"
        );
        assert!("Off".parse::<CacheMode>().is_err());
    }
}
