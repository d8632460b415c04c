//! The pool end to end: host calls, inputs, nested runs, errors, concurrency and worker deaths.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use common::*;
use hyperagents_sandbox::{
    HostError, HostFunctions, ScriptError, ScriptPool, ScriptValue, check_syntax,
};
use serde_json::{Map, Value, json};
use tokio::sync::Notify;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_calls_round_trip_with_args_kwargs_and_errors() {
    let pool = pool(1).await;
    let host = TestHost::new("h");
    let code = r#"
a = llm("summarize this")
r = delegate("agent", "goal", {"k": 1, "l": [1, 2.5, None]}, timeout=5)
log("x", level="info")
try:
    fail()
    caught = "no"
except ValueError as e:
    caught = "caught " + str(e)
print("hello from the script")
{"a": a, "r": r, "caught": caught, "t": (1, "two")}
"#;
    let value = within(30, pool.run(&src(code), Map::new(), host.clone()))
        .await
        .unwrap();
    assert_eq!(
        value,
        json!({
            "a": "h:summarize this",
            "r": {"ok": true, "agent": "agent", "kwargs": {"timeout": 5}},
            "caught": "caught boom",
            "t": [1, "two"],
        })
    );
    let calls = host.calls();
    let names: Vec<&str> = calls.iter().map(|c| c.function.as_str()).collect();
    assert_eq!(names, ["llm", "delegate", "log", "fail"]);
    assert_eq!(
        calls[1].args,
        vec![
            json!("agent"),
            json!("goal"),
            json!({"k": 1, "l": [1, 2.5, null]})
        ]
    );
    assert_eq!(calls[2].kwargs.get("level"), Some(&json!("info")));
    assert_eq!(
        host.printed.lock().unwrap().as_str(),
        "hello from the script\n"
    );
    let stats = pool.stats();
    assert_eq!(stats.host_calls, 4);
    // One slice to start and one after each host call, each accounted for: a slice's wall
    // time holds its queueing and its exchange, an exchange holds the worker's own work.
    let time = stats.time;
    assert_eq!(time.slices, 5);
    assert!(time.compile > Duration::ZERO, "{time:?}");
    assert!(time.load > Duration::ZERO, "{time:?}");
    assert!(time.dump > Duration::ZERO, "{time:?}");
    assert!(time.handled >= time.worker(), "{time:?}");
    assert!(time.exchange >= time.handled, "{time:?}");
    assert!(time.slice_wall >= time.exchange + time.queued, "{time:?}");
    // The same script again is compiled from the worker's cache, and counts on.
    within(30, pool.run(&src(code), Map::new(), host.clone()))
        .await
        .unwrap();
    let again = pool.stats().time.since(&time);
    assert_eq!(again.slices, 5);
    assert!(again.slice_wall > Duration::ZERO, "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_cannot_be_caught() {
    let pool = pool(1).await;
    let code = "try:\n    stop()\nexcept BaseException:\n    pass\n'survived'";
    let err = run(&pool, code).await.unwrap_err();
    assert!(
        matches!(&err, ScriptError::Aborted { message, .. } if message == "budget spent"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_functions_and_forbidden_names_are_name_errors() {
    let pool = pool(1).await;
    let err = run(&pool, "x = 1\nnope(1)").await.unwrap_err();
    match &err {
        ScriptError::Exception {
            exception,
            line,
            traceback,
            ..
        } => {
            assert_eq!(exception, "NameError");
            assert_eq!(*line, Some(2));
            assert!(
                traceback.contains("agent.py") && traceback.contains("line 2"),
                "{traceback}"
            );
        }
        other => panic!("expected NameError, got {other:?}"),
    }
    // A host that (wrongly) advertises eval/exec/__import__/open does not get them.
    let host = Arc::new(TestHost {
        tag: "t".into(),
        extra: ["eval", "exec", "__import__", "open", "input"]
            .map(String::from)
            .to_vec(),
        ..TestHost::default()
    });
    for code in ["eval('1')", "exec('x = 1')", "__import__('os')", "input()"] {
        let err = within(30, pool.run(&src(code), Map::new(), host.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, ScriptError::Exception { exception, .. } if exception == "NameError"),
            "{code}: {err:?}"
        );
    }
    assert!(host.calls().is_empty(), "{:?}", host.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inputs_are_globals() {
    let pool = pool(1).await;
    let mut inputs = Map::new();
    inputs.insert("task".into(), json!("ab"));
    inputs.insert("n".into(), json!(3));
    inputs.insert("cfg".into(), json!({"deep": [1, {"x": null}]}));
    let code = "def f():\n    return task * n\n[f(), cfg['deep'][1]['x'] is None]";
    let value = within(30, pool.run(&src(code), inputs, TestHost::new("t")))
        .await
        .unwrap();
    assert_eq!(value, json!(["ababab", true]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_runs_share_a_single_worker() {
    // One worker: the parent script is paused (holding no worker) while its child runs.
    let pool = pool(1).await;
    let host = Arc::new(TestHost {
        tag: "parent".into(),
        pool: Some(pool.clone()),
        ..TestHost::default()
    });
    let code = r#"
inner = child("x = llm('inner')\nx + '!'")
outer = llm("outer")
[inner, outer]
"#;
    let value = within(30, pool.run(&src(code), Map::new(), host))
        .await
        .unwrap();
    assert_eq!(value, json!(["parent/child:inner!", "parent:outer"]));
    assert_eq!(pool.stats().runs_started, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_call_budget_aborts_the_run() {
    let mut limits = test_limits();
    limits.max_host_calls = 3;
    let pool = ScriptPool::start(config(1, limits)).await.unwrap();
    let host = TestHost::new("t");
    let code = "for i in range(10):\n    try:\n        llm(str(i))\n    except BaseException:\n        pass";
    let err = within(30, pool.run(&src(code), Map::new(), host.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ScriptError::Aborted { message, .. } if message.contains("budget")),
        "{err:?}"
    );
    assert_eq!(host.calls().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncaught_exceptions_carry_line_and_traceback() {
    let pool = pool(1).await;
    let code = "def f(d):\n    return d['missing']\n\nf({})";
    match run(&pool, code).await.unwrap_err() {
        ScriptError::Exception {
            exception,
            message,
            line,
            traceback,
        } => {
            assert_eq!(exception, "KeyError");
            assert!(message.contains("missing"), "{message}");
            assert_eq!(line, Some(2));
            assert!(
                traceback.starts_with("Traceback (most recent call last):"),
                "{traceback}"
            );
            assert!(traceback.contains("in f"), "{traceback}");
        }
        other => panic!("expected KeyError, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syntax_errors_name_file_line_and_column() {
    let err = check_syntax("scripts/a.py", "x = 1\ny = (2 +\n").unwrap_err();
    assert!(
        matches!(&err, ScriptError::Syntax { file, line: 2..=3, .. } if file == "scripts/a.py"),
        "{err:?}"
    );
    let err = check_syntax("a.py", "x = 1\nif x\n    pass\n").unwrap_err();
    let ScriptError::Syntax { line, column, .. } = err else {
        panic!("{err:?}")
    };
    assert_eq!((line, column), (2, 5));
    assert!(err_text(&check_syntax("a.py", "x = 1\nif x\n")).starts_with("a.py:2:"));

    // Unsupported syntax is a syntax error at its line.
    let unsupported = [
        (
            "class A:\n    pass\n\nclass B(A):\n    pass\n",
            4,
            "inheritance",
        ),
        ("x = 1\nmatch x:\n    case 1:\n        pass\n", 2, "match"),
        ("def g():\n    x = 1\n    yield x\n", 3, "yield"),
        ("d = {}\n\ndel d\n", 3, "del"),
    ];
    for (code, want_line, word) in unsupported {
        match check_syntax("a.py", code) {
            Err(ScriptError::Syntax { line, message, .. }) => {
                assert_eq!(line, want_line, "{code}: {message}");
                assert!(message.contains(word), "{code}: {message}");
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    // The pool reports the same.
    let pool = pool(1).await;
    let err = run(&pool, "x = 1\ndef f(:\n  pass").await.unwrap_err();
    assert!(
        matches!(
            err,
            ScriptError::Syntax {
                line: 2,
                column: 7,
                ..
            }
        ),
        "{err:?}"
    );
}

fn err_text(r: &Result<(), ScriptError>) -> String {
    r.as_ref()
        .err()
        .map(ToString::to_string)
        .unwrap_or_default()
}

/// A host that checks every call carries its own run's id.
struct IdHost {
    id: u64,
    mismatches: Arc<AtomicUsize>,
}

#[async_trait]
impl HostFunctions for IdHost {
    fn functions(&self) -> Vec<String> {
        vec!["llm".into()]
    }

    async fn call(
        &self,
        _function: &str,
        args: Vec<ScriptValue>,
        _kwargs: Map<String, ScriptValue>,
    ) -> Result<ScriptValue, HostError> {
        let arg = args.first().and_then(Value::as_str).unwrap_or("");
        if arg.split('-').next() != Some(self.id.to_string().as_str()) {
            self.mismatches.fetch_add(1, Ordering::SeqCst);
        }
        tokio::task::yield_now().await;
        Ok(json!(format!("{}/{arg}", self.id)))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_runs_share_two_workers() {
    let pool = pool(2).await;
    let mismatches = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for id in 0..100u64 {
        let pool = pool.clone();
        let host = Arc::new(IdHost {
            id,
            mismatches: mismatches.clone(),
        });
        tasks.push(tokio::spawn(async move {
            let mut inputs = Map::new();
            inputs.insert("my_id".into(), json!(id));
            let code = "out = []\nfor k in range(5):\n    out.append(llm(f'{my_id}-{k}'))\nout";
            pool.run(&src(code), inputs, host).await
        }));
    }
    for (id, task) in tasks.into_iter().enumerate() {
        let value = within(60, task).await.unwrap().unwrap();
        let want: Vec<String> = (0..5).map(|k| format!("{id}/{id}-{k}")).collect();
        assert_eq!(value, json!(want), "run {id}");
    }
    let stats = pool.stats();
    eprintln!(
        "100 runs × 5 host calls in {:?}; {stats:?}",
        began.elapsed()
    );
    assert_eq!(mismatches.load(Ordering::SeqCst), 0);
    assert_eq!(stats.max_workers_alive, 2, "{stats:?}");
    assert_eq!(stats.workers_alive, 2, "{stats:?}");
    assert_eq!(stats.host_calls, 500);
    assert_eq!(stats.worker_deaths, 0);
}

/// A host whose `wait` blocks until released.
struct GateHost {
    entered: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

#[async_trait]
impl HostFunctions for GateHost {
    fn functions(&self) -> Vec<String> {
        vec!["wait".into()]
    }

    async fn call(
        &self,
        _function: &str,
        args: Vec<ScriptValue>,
        _kwargs: Map<String, ScriptValue>,
    ) -> Result<ScriptValue, HostError> {
        let released = self.release.notified();
        self.entered.fetch_add(1, Ordering::SeqCst);
        released.await;
        Ok(args.first().cloned().unwrap_or(Value::Null))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_busy_worker_fails_only_its_run() {
    let mut limits = test_limits();
    limits.vm_time_per_call = Duration::from_secs(30);
    limits.vm_time_total = Duration::from_secs(60);
    let pool = ScriptPool::start(config(1, limits)).await.unwrap();
    let entered = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    // Three runs pause at a host call; they ran their first slice on the only worker.
    let mut paused = Vec::new();
    for i in 0..3 {
        let pool = pool.clone();
        let host = Arc::new(GateHost {
            entered: entered.clone(),
            release: release.clone(),
        });
        paused.push(tokio::spawn(async move {
            let code = format!("big = list(range(1000))\nx = wait({i})\nx * 10 + len(big)");
            pool.run(&src(&code), Map::new(), host).await
        }));
    }
    within(20, async {
        while entered.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // A long loop occupies the worker.
    let looping = {
        let pool = pool.clone();
        tokio::spawn(async move { run(&pool, "i = 0\nwhile True:\n    i += 1").await })
    };
    let pid = within(20, async {
        loop {
            if let Some(w) = pool.workers().into_iter().find(|w| w.busy) {
                break w.pid;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // SAFETY: plain kill(2) on the worker process this test's pool started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    let err = within(20, looping).await.unwrap().unwrap_err();
    assert!(
        matches!(&err, ScriptError::WorkerDied { reason, .. } if reason.contains("signal 9")),
        "{err:?}"
    );
    release.notify_waiters();
    for (i, task) in paused.into_iter().enumerate() {
        let value = within(20, task).await.unwrap().unwrap();
        assert_eq!(value, json!(i * 10 + 1000));
    }
    let stats = pool.stats();
    assert_eq!(stats.worker_deaths, 1, "{stats:?}");
    assert_eq!(stats.runs_resumed_after_death, 3, "{stats:?}");
    assert_eq!(stats.max_workers_alive, 1, "{stats:?}");
    assert!(pool.workers().iter().all(|w| w.pid != pid));
    assert_eq!(run(&pool, "1 + 1").await.unwrap(), json!(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_call_round_trip_overhead() {
    let mut limits = test_limits();
    limits.max_host_calls = 1000;
    let pool = ScriptPool::start(config(1, limits)).await.unwrap();
    let code = "for i in range(200):\n    llm('x')\n'done'";
    // Warm up, then measure.
    run(&pool, "llm('warm')").await.unwrap();
    let began = Instant::now();
    let value = run(&pool, code).await.unwrap();
    let per_call = began.elapsed() / 200;
    eprintln!("host call round trip (parent↔worker, incl. snapshot): {per_call:?}");
    assert_eq!(value, json!("done"));
    assert!(per_call < Duration::from_millis(50), "{per_call:?}");
}
