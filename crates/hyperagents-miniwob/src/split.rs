//! Train/test splits of MiniWoB++ tasks.
//!
//! The default split is `splits/default.toml` (embedded at build time); its
//! header states the rule that produced it, and [`rule_puts_in_test`]
//! implements that rule so a test can check the file against it. A split file
//! of the same format can replace it ([`Split::load`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::MiniWobError;

/// The split rule's hash (kept here, where the rule is, for its readers).
pub use hyperagents_domain::fnv1a64;

/// The default split file, as committed.
pub const DEFAULT_SPLIT_TOML: &str = include_str!("../splits/default.toml");
/// The name errors use for the embedded default split.
pub const DEFAULT_SPLIT_NAME: &str = "splits/default.toml";

/// The FlightWoB tasks (`html/flight/<name>/wrapper.html`): valid task names,
/// but in no default split.
pub const FLIGHT_TASKS: &[&str] = &[
    "flight.AA",
    "flight.Alaska",
    "flight.Alaska-auto",
    "flight.Alaska-auto-medium",
];

/// The salt of the default rule (see the split file's header).
const RULE_SALT: &str = "miniwob-split-v2:";

/// Which side of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SplitPart {
    Train,
    Test,
}

/// A task left out of both sides, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludedTask {
    pub task: String,
    pub reason: String,
}

/// A train/test split by task name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    pub train: Vec<String>,
    pub test: Vec<String>,
    pub excluded: Vec<ExcludedTask>,
    /// Capability (`select`, `drag`, …) → included tasks that need it beyond
    /// click/type/press.
    pub needs: BTreeMap<String, Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitFile {
    train: Vec<Spanned<String>>,
    test: Vec<Spanned<String>>,
    #[serde(default)]
    excluded: Vec<ExcludedEntry>,
    #[serde(default)]
    needs: BTreeMap<String, Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExcludedEntry {
    task: Spanned<String>,
    reason: String,
}

impl Split {
    /// The committed default split.
    pub fn default_split() -> Result<Split, MiniWobError> {
        Split::parse(DEFAULT_SPLIT_TOML, DEFAULT_SPLIT_NAME, &known_tasks())
    }

    /// Loads a split file; every task must be a MiniWoB++ 1.1.0 task.
    pub fn load(path: &Path) -> Result<Split, MiniWobError> {
        let text = fs_err::read_to_string(path).map_err(|source| MiniWobError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Split::parse(&text, &path.display().to_string(), &known_tasks())
    }

    /// Parses split text; `file` names it in errors and `known` is the set
    /// of valid task names.
    pub fn parse(text: &str, file: &str, known: &BTreeSet<String>) -> Result<Split, MiniWobError> {
        let error = |offset: usize, message: String| MiniWobError::Split {
            file: file.to_string(),
            line: line_of(text, offset),
            message,
        };
        let parsed: SplitFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map(|s| s.start).unwrap_or(0);
            error(offset, e.message().to_string())
        })?;
        let mut seen: BTreeMap<String, &'static str> = BTreeMap::new();
        let mut check =
            |name: &Spanned<String>, side: &'static str| -> Result<String, MiniWobError> {
                let task = name.get_ref().clone();
                if !known.contains(&task) {
                    return Err(error(
                        name.span().start,
                        format!("unknown task `{task}` in `{side}`"),
                    ));
                }
                if let Some(previous) = seen.insert(task.clone(), side) {
                    return Err(error(
                        name.span().start,
                        format!("task `{task}` is listed in both `{previous}` and `{side}`"),
                    ));
                }
                Ok(task)
            };
        let train = parsed
            .train
            .iter()
            .map(|name| check(name, "train"))
            .collect::<Result<Vec<_>, _>>()?;
        let test = parsed
            .test
            .iter()
            .map(|name| check(name, "test"))
            .collect::<Result<Vec<_>, _>>()?;
        let excluded = parsed
            .excluded
            .iter()
            .map(|entry| {
                Ok(ExcludedTask {
                    task: check(&entry.task, "excluded")?,
                    reason: entry.reason.clone(),
                })
            })
            .collect::<Result<Vec<_>, MiniWobError>>()?;
        let included: BTreeSet<&String> = train.iter().chain(&test).collect();
        let mut needs = BTreeMap::new();
        for (capability, tasks) in &parsed.needs {
            let mut names = Vec::new();
            for name in tasks {
                if !included.contains(name.get_ref()) {
                    return Err(error(
                        name.span().start,
                        format!(
                            "`needs.{capability}` lists `{}`, which is in neither train nor test",
                            name.get_ref()
                        ),
                    ));
                }
                names.push(name.get_ref().clone());
            }
            needs.insert(capability.clone(), names);
        }
        Ok(Split {
            train,
            test,
            excluded,
            needs,
        })
    }

    /// The tasks of one side.
    pub fn tasks(&self, part: SplitPart) -> &[String] {
        match part {
            SplitPart::Train => &self.train,
            SplitPart::Test => &self.test,
        }
    }

    /// Every task the split mentions (train, test, excluded).
    pub fn all_tasks(&self) -> BTreeSet<String> {
        self.train
            .iter()
            .chain(&self.test)
            .cloned()
            .chain(self.excluded.iter().map(|e| e.task.clone()))
            .collect()
    }
}

/// The task names a split may use: every task of the default split file
/// (all of `html/miniwob`) plus the flight tasks.
pub fn known_tasks() -> BTreeSet<String> {
    let mut known: BTreeSet<String> = FLIGHT_TASKS.iter().map(|t| t.to_string()).collect();
    if let Ok(parsed) = toml::from_str::<SplitFile>(DEFAULT_SPLIT_TOML) {
        known.extend(parsed.train.into_iter().map(Spanned::into_inner));
        known.extend(parsed.test.into_iter().map(Spanned::into_inner));
        known.extend(parsed.excluded.into_iter().map(|e| e.task.into_inner()));
    }
    known
}

/// A task's family: the first two hyphen-separated words of its name.
pub fn family(task: &str) -> &str {
    match task.match_indices('-').nth(1) {
        Some((index, _)) => &task[..index],
        None => task,
    }
}

/// The default rule: whether `task` belongs in test.
pub fn rule_puts_in_test(task: &str) -> bool {
    let key = format!("{RULE_SALT}{}", family(task));
    fnv1a64(key.as_bytes()) % 10 < 3
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_split_parses_and_covers_130_tasks() {
        let split = Split::default_split().unwrap();
        assert_eq!(split.all_tasks().len(), 130);
        assert!(split.train.contains(&"click-button".to_string()));
        assert!(split.excluded.iter().any(|e| e.task == "chase-circle"));
        let share = split.test.len() as f64 / (split.train.len() + split.test.len()) as f64;
        assert!((0.25..=0.35).contains(&share), "test share {share}");
    }

    #[test]
    fn the_default_split_follows_its_stated_rule() {
        let split = Split::default_split().unwrap();
        for task in &split.train {
            assert!(
                !rule_puts_in_test(task),
                "{task} is in train but the rule says test"
            );
        }
        for task in &split.test {
            assert!(
                rule_puts_in_test(task),
                "{task} is in test but the rule says train"
            );
        }
        // Families never straddle the split.
        let test_families: BTreeSet<&str> = split.test.iter().map(|t| family(t)).collect();
        for task in &split.train {
            assert!(!test_families.contains(family(task)), "{task}");
        }
    }

    #[test]
    fn families_are_the_first_two_words() {
        assert_eq!(family("click-tab-2-hard"), "click-tab");
        assert_eq!(family("email-inbox-forward-nl"), "email-inbox");
        assert_eq!(family("click-test"), "click-test");
        assert_eq!(family("terminal"), "terminal");
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn unknown_tasks_are_reported_with_file_and_line() {
        let text = "train = [\n  \"click-button\",\n  \"click-buton\",\n]\ntest = []\n";
        let error = Split::parse(text, "my.toml", &known_tasks())
            .unwrap_err()
            .to_string();
        assert_eq!(error, "my.toml:3: unknown task `click-buton` in `train`");
    }

    #[test]
    fn duplicates_and_bad_needs_are_reported() {
        let text = "train = [\"click-button\"]\ntest = [\"click-button\"]\n";
        let error = Split::parse(text, "dup.toml", &known_tasks())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("dup.toml:2:"), "{error}");
        assert!(error.contains("both `train` and `test`"), "{error}");

        let text = "train = [\"click-button\"]\ntest = []\n[needs]\nselect = [\"choose-list\"]\n";
        let error = Split::parse(text, "needs.toml", &known_tasks())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("needs.toml:4:"), "{error}");
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let error = Split::parse("train = [", "broken.toml", &known_tasks())
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("broken.toml:1:"), "{error}");
        let error = Split::parse("train = []\n", "short.toml", &known_tasks())
            .unwrap_err()
            .to_string();
        assert!(error.contains("test"), "{error}");
    }

    #[test]
    fn load_reads_a_file_and_names_it_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("split.toml");
        std::fs::write(&path, "train = [\"click-test\"]\ntest = [\"flight.AA\"]\n").unwrap();
        let split = Split::load(&path).unwrap();
        assert_eq!(split.tasks(SplitPart::Test), ["flight.AA".to_string()]);
        let missing = dir.path().join("missing.toml");
        let error = Split::load(&missing).unwrap_err().to_string();
        assert!(error.contains("missing.toml"), "{error}");
    }
}
