//! The wire form of `hyperagent.toml`: serde types that keep the source span of every value a
//! later check may need to point at. Only the loader sees these; the rest of the crate uses the
//! validated specs in [`crate::program`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{Location, ProgramError, ProgramErrorKind};

/// The manifest's file name at the program root.
pub const MANIFEST_FILE: &str = "hyperagent.toml";

/// The manifest format this build reads.
pub const FORMAT_VERSION: u32 = 1;

/// Read first, leniently, so a manifest from another format version is reported as such rather
/// than as a pile of schema errors.
#[derive(Deserialize)]
struct FormatProbe {
    format: Option<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawManifest {
    #[allow(dead_code)] // checked by the probe
    pub format: toml::Value,
    pub program: RawProgramInfo,
    #[serde(default)]
    pub budgets: RawBudgets,
    pub hyper: RawHyper,
    #[serde(default)]
    pub agents: BTreeMap<Spanned<String>, RawAgent>,
    #[serde(default)]
    pub skills: BTreeMap<Spanned<String>, RawSkill>,
    pub meta: RawMeta,
    #[serde(default)]
    pub tools: RawTools,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTools {
    #[serde(default)]
    pub mcp: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawProgramInfo {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBudgets {
    pub max_steps: Option<Spanned<u32>>,
    pub max_calls: Option<Spanned<u32>>,
    pub max_tokens: Option<Spanned<u64>>,
    pub max_wall_secs: Option<Spanned<f64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHyper {
    pub prompt: Spanned<String>,
    pub script: Spanned<String>,
    pub model: Option<Spanned<String>>,
    #[serde(default)]
    pub agents: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAgent {
    pub description: Spanned<String>,
    pub prompt: Spanned<String>,
    pub script: Spanned<String>,
    pub model: Option<Spanned<String>>,
    #[serde(default)]
    pub skills: Vec<Spanned<String>>,
    #[serde(default)]
    pub agents: Vec<Spanned<String>>,
    pub max_steps: Option<Spanned<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSkill {
    pub description: Spanned<String>,
    pub prompt: Option<Spanned<String>>,
    pub script: Option<Spanned<String>>,
    pub model: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMeta {
    pub prompt: Spanned<String>,
    pub script: Spanned<String>,
    pub select: Option<Spanned<String>>,
    pub model: Option<Spanned<String>>,
}

/// Parses the manifest text. TOML stops at its first error, so this yields at most one.
pub(crate) fn parse(source: &str) -> Result<RawManifest, ProgramError> {
    let probe: FormatProbe = toml::from_str(source).map_err(|e| toml_error(source, &e))?;
    match probe.format {
        None => {
            return Err(ProgramError::new(
                Location::at_offset(MANIFEST_FILE, source, 0),
                ProgramErrorKind::MissingFormat {
                    supported: FORMAT_VERSION,
                },
            ));
        }
        Some(format) => {
            let found = format.get_ref().as_integer();
            if found != Some(i64::from(FORMAT_VERSION)) {
                return Err(ProgramError::new(
                    Location::at_offset(MANIFEST_FILE, source, format.span().start),
                    match found {
                        Some(found) => ProgramErrorKind::UnsupportedFormat {
                            found,
                            supported: FORMAT_VERSION,
                        },
                        None => ProgramErrorKind::Toml(format!(
                            "`format` must be the integer {FORMAT_VERSION}"
                        )),
                    },
                ));
            }
        }
    }
    toml::from_str(source).map_err(|e| toml_error(source, &e))
}

fn toml_error(source: &str, err: &toml::de::Error) -> ProgramError {
    let location = match err.span() {
        Some(span) => Location::at_offset(MANIFEST_FILE, source, span.start),
        None => Location::file(MANIFEST_FILE),
    };
    ProgramError::new(
        location,
        ProgramErrorKind::Toml(err.message().trim_end().to_owned()),
    )
}
