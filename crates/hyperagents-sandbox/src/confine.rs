//! OS-level confinement of a worker process, beyond its rlimits.
//!
//! A worker confines itself once, after start-up and before it reads its first request, in
//! two layers: Landlock (no filesystem access at all: a ruleset that handles every access
//! right and grants none; no TCP bind or connect where the kernel's Landlock knows network
//! rules) and then a seccomp filter that lets through only the system calls an interpreter
//! serving frames on stdin/stdout needs (memory, futexes, signals, clocks, reading and writing
//! already open descriptors). Everything else — `open`, `socket`, `fork`, `execve`, `ptrace`, … —
//! fails with `EPERM`. The descriptors a worker already holds (its pipes) stay usable; nothing
//! new can be opened.
//!
//! Each layer is best effort against the running kernel: a kernel without Landlock or seccomp
//! leaves that layer [`LayerStatus::Unavailable`] with the reason, which the pool logs once in
//! plain words. A layer the kernel offers but that fails to install is an error: the worker
//! refuses to serve rather than run less confined than the host believes.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

/// How one confinement layer stands in a worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "detail", rename_all = "snake_case")]
pub enum LayerStatus {
    /// Every restriction asked for is in force.
    Enforced,
    /// Some are: the kernel's version knows only part of them (which, in words).
    Partial(String),
    /// None: the kernel lacks the feature (why, in words).
    Unavailable(String),
}

impl LayerStatus {
    /// Whether the layer restricts anything.
    pub fn is_in_force(&self) -> bool {
        !matches!(self, LayerStatus::Unavailable(_))
    }
}

/// The confinement a worker runs under, as it reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    /// Filesystem (and, where the kernel knows it, TCP) access rules.
    pub landlock: LayerStatus,
    /// The system-call allowlist.
    pub seccomp: LayerStatus,
}

impl Confinement {
    /// One line per layer not fully in force, for a person reading the log; empty when both are.
    pub fn shortfalls(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.landlock {
            LayerStatus::Enforced => {}
            LayerStatus::Partial(what) => out.push(format!(
                "Landlock is only partly enforced in sandbox workers ({what})"
            )),
            LayerStatus::Unavailable(why) => out.push(format!(
                "Landlock is not available ({why}): sandbox workers' file access is stopped by \
                 the seccomp filter and rlimits only"
            )),
        }
        match &self.seccomp {
            LayerStatus::Enforced => {}
            LayerStatus::Partial(what) => out.push(format!(
                "the seccomp filter is only partly enforced in sandbox workers ({what})"
            )),
            LayerStatus::Unavailable(why) => out.push(format!(
                "seccomp is not available ({why}): sandbox workers can make any system call the \
                 interpreter reaches; they are confined by Landlock (if any), an empty \
                 environment and rlimits only"
            )),
        }
        out
    }
}

/// A layer the kernel offers could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    #[error("cannot install the Landlock ruleset: {0}")]
    Landlock(String),
    #[error("cannot install the seccomp filter: {0}")]
    Seccomp(String),
}

/// Confines the calling process (see the module's documentation). Irreversible.
pub fn confine_current_process() -> Result<Confinement, ConfineError> {
    let landlock = apply_landlock()?;
    let seccomp = apply_seccomp()?;
    Ok(Confinement { landlock, seccomp })
}

fn apply_landlock() -> Result<LayerStatus, ConfineError> {
    use landlock::{
        ABI, Access, AccessFs, AccessNet, LandlockStatus, Ruleset, RulesetAttr, RulesetStatus,
        Scope,
    };
    // The newest ABI this crate knows; on older kernels best effort keeps what they know.
    let abi = ABI::V6;
    let fail = |e: landlock::RulesetError| ConfineError::Landlock(e.to_string());
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(fail)?
        .handle_access(AccessNet::from_all(abi))
        .map_err(fail)?
        .scope(Scope::from_all(abi))
        .map_err(fail)?
        .create()
        .map_err(fail)?
        // No rule is added: every handled access is denied.
        .restrict_self()
        .map_err(fail)?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => LayerStatus::Enforced,
        RulesetStatus::PartiallyEnforced => LayerStatus::Partial(match status.landlock {
            LandlockStatus::Available { effective_abi, .. } => format!(
                "the kernel's Landlock ABI is {effective_abi:?}; the rules asked for need {abi:?}"
            ),
            other => format!("{other:?}"),
        }),
        RulesetStatus::NotEnforced => LayerStatus::Unavailable(match status.landlock {
            LandlockStatus::NotEnabled => {
                "the kernel has Landlock but it is not enabled at boot (lsm=)".to_string()
            }
            LandlockStatus::NotImplemented => "the kernel is built without Landlock".to_string(),
            other => format!("{other:?}"),
        }),
    })
}

/// The system calls a worker makes once it serves: reading and writing its pipes, memory,
/// futexes, signals (a stack overflow's guard handler, `abort`), clocks and randomness
/// (hash seeds), and exiting. Everything else fails with `EPERM`.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const ALLOWED_SYSCALLS: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_readv,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_exit,
    libc::SYS_exit_group,
    libc::SYS_brk,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_sched_getaffinity,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigaction,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_clock_gettime,
    libc::SYS_clock_getres,
    libc::SYS_gettimeofday,
    libc::SYS_nanosleep,
    libc::SYS_clock_nanosleep,
    libc::SYS_getrandom,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_prlimit64,
];

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn apply_seccomp() -> Result<LayerStatus, ConfineError> {
    use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};
    if let Some(why) = seccomp_unavailable() {
        return Ok(LayerStatus::Unavailable(why));
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| ConfineError::Seccomp(e.to_string()))?;
    let rules: BTreeMap<i64, Vec<seccompiler::SeccompRule>> = ALLOWED_SYSCALLS
        .iter()
        .map(|&call| (call, Vec::new()))
        .collect();
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| ConfineError::Seccomp(e.to_string()))?;
    let program: BpfProgram = filter
        .try_into()
        .map_err(|e: seccompiler::BackendError| ConfineError::Seccomp(e.to_string()))?;
    seccompiler::apply_filter_all_threads(&program)
        .map_err(|e| ConfineError::Seccomp(e.to_string()))?;
    Ok(LayerStatus::Enforced)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn apply_seccomp() -> Result<LayerStatus, ConfineError> {
    Ok(LayerStatus::Unavailable(format!(
        "no system-call allowlist is written for {}",
        std::env::consts::ARCH
    )))
}

/// Why the kernel cannot filter system calls, if it cannot.
fn seccomp_unavailable() -> Option<String> {
    // SAFETY: PR_GET_SECCOMP takes no pointer and only reads this process's mode.
    let mode = unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) };
    if mode < 0 {
        let error = io::Error::last_os_error();
        return Some(if error.raw_os_error() == Some(libc::EINVAL) {
            "the kernel is built without seccomp".to_string()
        } else {
            format!("the kernel refused to say whether it filters system calls: {error}")
        });
    }
    None
}

/// What a confined process is still able to do, tried with raw system calls (not through the
/// script interpreter, which has no such functions): the evidence that the OS layers hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeReport {
    pub confinement: Confinement,
    /// Opening `path` for reading after Landlock, before seccomp: `"ok"` or the error.
    pub open_after_landlock: String,
    /// The same after both layers.
    pub open_after_all: String,
    /// Creating a TCP socket after both layers.
    pub socket: String,
    /// Forking after both layers.
    pub fork: String,
}

/// Confines this process like a worker and tries what it must no longer do; for the worker's
/// `--probe-confinement PATH` mode, which the pool runs once and the tests read.
pub fn probe(path: &str) -> Result<ProbeReport, ConfineError> {
    let landlock = apply_landlock()?;
    let open_after_landlock = try_open(path);
    let seccomp = apply_seccomp()?;
    let open_after_all = try_open(path);
    // SAFETY: socket takes no pointers; a descriptor, if made, lives until the probe exits.
    let socket = outcome(unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) });
    // SAFETY: a child, if one is made, exits at once without touching our state.
    let fork = match unsafe { libc::fork() } {
        0 => unsafe { libc::_exit(0) },
        pid => outcome(pid),
    };
    Ok(ProbeReport {
        confinement: Confinement { landlock, seccomp },
        open_after_landlock,
        open_after_all,
        socket,
        fork,
    })
}

fn try_open(path: &str) -> String {
    match std::fs::File::open(path) {
        Ok(_) => "ok".to_string(),
        Err(e) => e.to_string(),
    }
}

/// "ok" (closing what was made) or the error of a call returning a descriptor or pid.
fn outcome(rc: libc::c_int) -> String {
    if rc < 0 {
        return io::Error::last_os_error().to_string();
    }
    "ok".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_layer_is_said_in_words() {
        let both = Confinement {
            landlock: LayerStatus::Enforced,
            seccomp: LayerStatus::Enforced,
        };
        assert!(both.shortfalls().is_empty());
        let bare = Confinement {
            landlock: LayerStatus::Unavailable("the kernel is built without Landlock".into()),
            seccomp: LayerStatus::Unavailable("the kernel is built without seccomp".into()),
        };
        let lines = bare.shortfalls();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0]
                .starts_with("Landlock is not available (the kernel is built without Landlock)")
        );
        assert!(
            lines[1].starts_with("seccomp is not available (the kernel is built without seccomp)")
        );
        let json = serde_json::to_string(&bare).unwrap();
        assert_eq!(serde_json::from_str::<Confinement>(&json).unwrap(), bare);
    }
}
