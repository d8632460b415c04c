//! Hostile scripts: each is contained with a clear error and the pool stays usable.
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::*;
use hyperagents_sandbox::confine::LayerStatus;
use hyperagents_sandbox::{LANGUAGE_GAPS, ScriptError, ScriptPool};
use serde_json::{Map, json};

/// Asserts the pool still runs a script with a host call correctly.
async fn still_usable(pool: &ScriptPool) {
    assert_eq!(
        run(pool, "llm('ping')").await.unwrap(),
        json!("t:ping"),
        "pool broken; {:?}",
        pool.stats()
    );
}

fn exception_of(err: &ScriptError) -> Option<(&str, &str)> {
    match err {
        ScriptError::Exception {
            exception, message, ..
        } => Some((exception.as_str(), message.as_str())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn infinite_loop_hits_the_time_limit() {
    let pool = pool(1).await;
    let err = run(&pool, "while True:\n    pass").await.unwrap_err();
    assert!(matches!(err, ScriptError::TimeLimit { .. }), "{err:?}");
    // Not catchable either.
    let code = "try:\n    while True:\n        pass\nexcept BaseException:\n    pass\n'escaped'";
    let err = run(&pool, code).await.unwrap_err();
    assert!(matches!(err, ScriptError::TimeLimit { .. }), "{err:?}");
    still_usable(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_bombs_hit_the_memory_limit() {
    let pool = pool(1).await;
    let bombs = [
        "x = []\nwhile True:\n    x.append(1)",
        "d = {}\ni = 0\nwhile True:\n    d[i] = i\n    i += 1",
        "d = {}\ni = 0\nwhile True:\n    d[str(i)] = str(i) * 10\n    i += 1",
        "s = 'a' * 10**10",
        "s = 'ab'\nwhile True:\n    s = s + s",
        "x = [0] * (10**9)",
    ];
    for code in bombs {
        let err = run(&pool, code).await.unwrap_err();
        assert!(
            matches!(err, ScriptError::MemoryLimit { .. }),
            "{code}: {err:?}"
        );
    }
    still_usable(&pool).await;
    eprintln!("{:?}", pool.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_recursion_is_a_recursion_error() {
    let pool = pool(1).await;
    let err = run(&pool, "def f(n):\n    return f(n + 1)\nf(0)")
        .await
        .unwrap_err();
    assert!(matches!(err, ScriptError::RecursionLimit { .. }), "{err:?}");
    // Catchable, like CPython's.
    let code = "def f(n):\n    return f(n + 1)\ntry:\n    f(0)\nexcept RecursionError:\n    r = 'caught'\nr";
    assert_eq!(run(&pool, code).await.unwrap(), json!("caught"));
    still_usable(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn os_access_is_refused() {
    let pool = pool(1).await;
    let cases = [
        ("open('/etc/passwd').read()", "PermissionError"),
        ("import os\nos.environ['HOME']", ""),
        ("import os\nos.getenv('HOME')", "RuntimeError"),
        (
            "from pathlib import Path\nPath('/etc/passwd').read_text()",
            "PermissionError",
        ),
        ("import subprocess", "ModuleNotFoundError"),
        ("import socket", "ModuleNotFoundError"),
        ("import os\nos.system('id')", "AttributeError"),
        ("eval('1')", "NameError"),
        ("__import__('os')", "NameError"),
        ("(1).__class__", "AttributeError"),
    ];
    for (code, want) in cases {
        let err = run(&pool, code).await.unwrap_err();
        let Some((exception, message)) = exception_of(&err) else {
            panic!("{code}: expected an exception, got {err:?}");
        };
        if want.is_empty() {
            assert!(
                ["RuntimeError", "PermissionError", "KeyError"].contains(&exception),
                "{code}: {exception}: {message}"
            );
        } else {
            assert_eq!(exception, want, "{code}: {message}");
        }
        assert!(!message.contains("root:"), "{code} leaked: {message}");
    }
    still_usable(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_memory_bomb_among_twenty_runs_fails_alone() {
    let pool = pool(2).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let code = if i == 7 {
                "x = []\nwhile True:\n    x.append('y' * 100)".to_owned()
            } else {
                format!("a = llm('{i}')\nb = llm(a)\n[a, b, sum(range({i}))]")
            };
            let host = TestHost::new(&format!("r{i}"));
            within(60, pool.run(&src(&code), Map::new(), host)).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let result = task.await.unwrap();
        if i == 7 {
            assert!(
                matches!(result, Err(ScriptError::MemoryLimit { .. })),
                "{result:?}"
            );
        } else {
            let want = json!([
                format!("r{i}:{i}"),
                format!("r{i}:r{i}:{i}"),
                (0..i).sum::<usize>()
            ]);
            assert_eq!(result.unwrap(), want, "run {i}");
        }
    }
    still_usable(&pool).await;
    assert!(pool.stats().max_workers_alive <= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_run_with_an_empty_environment_and_os_limits() {
    let pool = pool(1).await;
    let pid = pool.workers()[0].pid;
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(environ.is_empty(), "{}", String::from_utf8_lossy(&environ));
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let address_space = (32u64 << 20) * 4 + (256 << 20);
    assert!(
        line("Max address space").contains(&address_space.to_string()),
        "{limits}"
    );
    assert!(
        line("Max open files").starts_with("Max open files 16 16"),
        "{limits}"
    );
    assert!(
        line("Max file size").starts_with("Max file size 0 0"),
        "{limits}"
    );
    assert!(
        line("Max core file size").starts_with("Max core file size 0 0"),
        "{limits}"
    );
    assert!(!line("Max cpu time").contains("unlimited"), "{limits}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_cannot_cross_the_boundary() {
    let pool = pool(1).await;
    // 1000-deep nesting as an argument is refused inside the script (catchable ValueError).
    let code = "x = []\nfor i in range(1000):\n    x = [x]\ntry:\n    llm(x)\nexcept ValueError as e:\n    r = str(e)\nr";
    let value = run(&pool, code).await.unwrap();
    assert!(value.as_str().unwrap().contains("nested"), "{value}");
    // ... and as a result.
    let code = "x = []\nfor i in range(1000):\n    x = [x]\nx";
    let err = run(&pool, code).await.unwrap_err();
    assert!(exception_of(&err).is_some(), "{err:?}");
    // Huge prints are bounded.
    let err = run(&pool, "while True:\n    print('x' * 1000)")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ScriptError::MemoryLimit { .. } | ScriptError::TimeLimit { .. }
        ),
        "{err:?}"
    );
    still_usable(&pool).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn language_gaps_are_real() {
    for word in [
        "inheritance",
        "yield",
        "match",
        "del",
        "%",
        "random",
        "eval",
        "open()",
    ] {
        assert!(LANGUAGE_GAPS.contains(word), "{word}");
    }
    let pool = pool(1).await;
    let refused = [
        "class A:\n    pass\nclass B(A):\n    pass",
        "def g():\n    yield 1",
        "match 1:\n    case 1:\n        pass",
        "x = 1\ndel x",
        "'%s' % ('a',)",
        "import random",
        "import time",
        "import string",
        "exec('1')",
        "compile('1', 'f', 'eval')",
        "import datetime\ndatetime.datetime.now()",
    ];
    for code in refused {
        assert!(run(&pool, code).await.is_err(), "{code} worked");
    }
    let supported = [
        (
            "def deco(f):\n    return f\n@deco\ndef g():\n    return 1\ng()",
            json!(1),
        ),
        (
            "from dataclasses import dataclass\n@dataclass\nclass P:\n    x: int\nP(2).x",
            json!(2),
        ),
        (
            "import json, re, math\njson.dumps({'a': re.sub('b', 'c', 'ab')})",
            json!("{\"a\": \"ac\"}"),
        ),
        ("'{}-{x}'.format(1, x=2) + f'{3}'", json!("1-23")),
        ("d = {'a': 1}\nd.pop('a')\nlen(d)", json!(0)),
        ("sum(i for i in range(4))", json!(6)),
        (
            "import collections, itertools, typing, asyncio, math\n\
             collections.Counter('aab')['a'] + len(list(itertools.chain([1], [2]))) + math.floor(0.5)",
            json!(4),
        ),
    ];
    for (code, want) in supported {
        assert_eq!(run(&pool, code).await.unwrap(), want, "{code}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_worker_is_a_clear_error() {
    let mut cfg = config(1, test_limits());
    cfg.worker_exe = "/nonexistent/hyperagents-worker".into();
    let err = ScriptPool::start(cfg).await.unwrap_err();
    assert!(err.to_string().contains("cargo build --workspace"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stuck_in_native_code_is_killed_at_the_deadline() {
    let mut limits = test_limits();
    limits.vm_time_per_call = Duration::from_millis(200);
    let pool = ScriptPool::start(config(1, limits)).await.unwrap();
    let began = Instant::now();
    // One big-integer power runs natively, between the VM's time checks.
    let err = run(&pool, "x = 10**(10**7)\n1").await.unwrap_err();
    assert!(matches!(err, ScriptError::TimeLimit { .. }), "{err:?}");
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    assert_eq!(pool.stats().worker_deaths, 1);
    still_usable(&pool).await;
    assert_eq!(pool.stats().max_workers_alive, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_recycled_without_disturbing_runs() {
    let pool = pool(2).await;
    pool.set_recycle_after(3);
    let mut tasks = Vec::new();
    for i in 0..6 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let code = format!("[llm('{i}a'), llm('{i}b'), llm('{i}c')]");
            within(30, pool.run(&src(&code), Map::new(), TestHost::new("t"))).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let want = json!([format!("t:{i}a"), format!("t:{i}b"), format!("t:{i}c")]);
        assert_eq!(task.await.unwrap().unwrap(), want);
    }
    let stats = pool.stats();
    // 6 runs × 4 slices = 24 slices, 3 per worker.
    assert!(stats.workers_recycled >= 6, "{stats:?}");
    assert_eq!(stats.worker_deaths, 0, "{stats:?}");
    assert_eq!(stats.max_workers_alive, 2, "{stats:?}");
}

/// Writes a fake worker (a shell script) and returns a pool using it.
async fn fake_worker_pool(name: &str, body: &str) -> ScriptPool {
    let dir = std::env::temp_dir().join(format!("hyperagents-sandbox-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut cfg = config(1, test_limits());
    cfg.worker_exe = path;
    ScriptPool::start(cfg).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_deaths_are_reported_with_their_reason() {
    // monty-alloc's kill past the hard memory limit is exit code 65.
    let pool = fake_worker_pool(
        "oom-worker",
        "echo 'allocation exceeds the memory limit' >&2\nexit 65",
    )
    .await;
    match run(&pool, "1").await.unwrap_err() {
        ScriptError::MemoryLimit { detail, .. } => {
            assert!(detail.contains("exit code 65"), "{detail}");
            assert!(detail.contains("allocation exceeds"), "{detail}");
        }
        other => panic!("{other:?}"),
    }
    // A worker that answers garbage is killed, and only that run fails.
    let pool = fake_worker_pool("garbage-worker", "printf 'garbage!'\nexec sleep 60").await;
    let err = run(&pool, "1").await.unwrap_err();
    assert!(
        matches!(&err, ScriptError::WorkerDied { reason, .. } if reason.contains("too large")),
        "{err:?}"
    );
    assert_eq!(pool.stats().worker_deaths, 1);
}

/// Whether this kernel filters system calls (a `Seccomp:` line in /proc/self/status).
fn kernel_has_seccomp() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Seccomp:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_confined_by_the_os_beyond_rlimits() {
    let pool = pool(1).await;
    let report = pool.probe_confinement().await.unwrap();
    eprintln!("{report:#?}");
    let confinement = &report.confinement;
    // Where the kernel filters system calls, a confined worker cannot open, connect or fork,
    // even from native code; the probe's own tries say so.
    if kernel_has_seccomp() {
        assert_eq!(confinement.seccomp, LayerStatus::Enforced, "{report:#?}");
        for (what, outcome) in [
            ("open", &report.open_after_all),
            ("socket", &report.socket),
            ("fork", &report.fork),
        ] {
            assert!(
                outcome.contains("Operation not permitted"),
                "{what} after confinement: {outcome}"
            );
        }
        // A serving worker has the filter installed: /proc says so.
        let pid = pool.workers()[0].pid;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["Seccomp:", "2"]),
            "{status}"
        );
        assert!(
            status
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["NoNewPrivs:", "1"]),
            "{status}"
        );
    } else {
        assert!(!confinement.seccomp.is_in_force());
    }
    // Landlock alone (before the filter) already stops opening files, where the kernel has it;
    // where it does not, the message says why in words.
    match &confinement.landlock {
        LayerStatus::Enforced | LayerStatus::Partial(_) => assert!(
            report.open_after_landlock.contains("Permission denied"),
            "{report:#?}"
        ),
        LayerStatus::Unavailable(why) => {
            assert_eq!(report.open_after_landlock, "ok", "{report:#?}");
            assert!(why.contains("Landlock"), "{why}");
            let lines = confinement.shortfalls();
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("Landlock is not available")),
                "{lines:?}"
            );
        }
    }
    // And confined workers still run scripts.
    still_usable(&pool).await;
}
