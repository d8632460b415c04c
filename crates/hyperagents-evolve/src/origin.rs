//! Where a run starts: a node of an earlier run named `RUN/NODE`, a seed
//! with another node's meta agent (meta-level transfer), and the stage-1
//! task sample fixed by the run seed. Library logic the CLI calls, so
//! another front end starts runs the same way.

use std::path::{Path, PathBuf};

use hyperagents_domain::fnv1a64;
use hyperagents_program::{FsError, Program, ProgramError, copy_program};
use hyperagents_runtime::SandboxChecker;

/// Why a run's starting program could not be found or composed.
#[derive(Debug, thiserror::Error)]
pub enum OriginError {
    #[error("`{spec}` is neither RUN/NODE nor a program directory")]
    NotANode { spec: String },
    #[error("no node `{node}` of run `{run}` at {}", dir.display())]
    NoSuchNode {
        run: String,
        node: String,
        dir: PathBuf,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("copying {}: {source}", from.display())]
    Copy { from: PathBuf, source: FsError },
    #[error(
        "{} with the meta agent of {} is not a valid program: {}",
        base.display(),
        donor.display(),
        errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    )]
    Invalid {
        base: PathBuf,
        donor: PathBuf,
        errors: Vec<ProgramError>,
    },
}

/// A node's program directory: `RUN/NODE` under `runs`, or a directory.
pub fn resolve_node(runs: &Path, spec: &str) -> Result<PathBuf, OriginError> {
    let direct = PathBuf::from(spec);
    if direct.join("hyperagent.toml").is_file() {
        return Ok(direct);
    }
    let Some((run, node)) = spec.split_once('/') else {
        return Err(OriginError::NotANode { spec: spec.into() });
    };
    let dir = runs.join(run).join("nodes").join(node);
    if !dir.join("hyperagent.toml").is_file() {
        return Err(OriginError::NoSuchNode {
            run: run.into(),
            node: node.into(),
            dir,
        });
    }
    Ok(dir)
}

/// Writes to `out` the program `base` with its `meta/` replaced by the one of
/// `donor` (meta-level transfer). An `out` left by an earlier start of the
/// same run is rebuilt, so a resume composes the same program.
pub fn transplant_meta(base: &Path, donor: &Path, out: &Path) -> Result<(), OriginError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OriginError::Io { path, source }
    };
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    copy_program(base, out).map_err(|source| OriginError::Copy {
        from: base.to_path_buf(),
        source,
    })?;
    let meta = out.join("meta");
    std::fs::remove_dir_all(&meta).map_err(io(&meta))?;
    copy_program(&donor.join("meta"), &meta).map_err(|source| OriginError::Copy {
        from: donor.join("meta"),
        source,
    })?;
    Program::load(out, &SandboxChecker)
        .map(|_| ())
        .map_err(|errors| OriginError::Invalid {
            base: base.to_path_buf(),
            donor: donor.to_path_buf(),
            errors,
        })
}

/// `count` tasks drawn from `tasks` in an order fixed by `seed`, kept in their
/// suite order: stage 1's sample is the same on every resume.
pub fn sample_tasks(tasks: &[String], count: usize, seed: u64) -> Vec<String> {
    let mut keyed: Vec<(u64, usize)> = tasks
        .iter()
        .enumerate()
        .map(|(i, t)| (fnv1a64(format!("{seed}:{t}").as_bytes()), i))
        .collect();
    keyed.sort();
    let mut chosen: Vec<usize> = keyed.into_iter().take(count).map(|(_, i)| i).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| tasks[i].clone()).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn seed() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../programs/seed")
    }

    #[test]
    fn meta_transfer_puts_only_the_donors_meta_on_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let donor = dir.path().join("runs/r1/nodes/g2c0");
        copy_program(&seed(), &donor).unwrap();
        std::fs::write(
            donor.join("meta/prompt.md"),
            "Evolved meta prompt {{ failures }}",
        )
        .unwrap();
        std::fs::write(donor.join("skills/reason/prompt.md"), "Evolved task prompt").unwrap();
        let found = resolve_node(&dir.path().join("runs"), "r1/g2c0").unwrap();
        assert_eq!(found, donor);
        let out = dir.path().join("origin");
        transplant_meta(&seed(), &found, &out).unwrap();
        let meta = std::fs::read_to_string(out.join("meta/prompt.md")).unwrap();
        assert!(meta.starts_with("Evolved meta prompt"));
        let task = std::fs::read_to_string(out.join("skills/reason/prompt.md")).unwrap();
        let original = std::fs::read_to_string(seed().join("skills/reason/prompt.md")).unwrap();
        assert_eq!(task, original, "only meta/ is transferred");
        // Again (a resume): rebuilt, same result.
        transplant_meta(&seed(), &found, &out).unwrap();
        let missing = resolve_node(&dir.path().join("runs"), "r1/nope").unwrap_err();
        assert!(
            missing.to_string().contains("no node `nope` of run `r1`"),
            "{missing}"
        );
        let nonsense = resolve_node(&dir.path().join("runs"), "nonsense").unwrap_err();
        assert!(
            nonsense.to_string().contains("neither RUN/NODE"),
            "{nonsense}"
        );
    }

    #[test]
    fn stage1_samples_are_fixed_by_the_seed_and_keep_suite_order() {
        let tasks: Vec<String> = (0..20).map(|i| format!("task-{i}")).collect();
        let a = sample_tasks(&tasks, 5, 7);
        assert_eq!(a, sample_tasks(&tasks, 5, 7));
        assert_eq!(a.len(), 5);
        let positions: Vec<usize> = a
            .iter()
            .map(|t| tasks.iter().position(|x| x == t).unwrap_or(usize::MAX))
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
        assert_ne!(a, sample_tasks(&tasks, 5, 8));
        assert_eq!(sample_tasks(&tasks, 50, 7), tasks);
        // The draw itself is pinned: runs stored before resume with it.
        assert_eq!(
            sample_tasks(&tasks, 3, 0),
            ["task-10", "task-11", "task-12"]
        );
    }
}
