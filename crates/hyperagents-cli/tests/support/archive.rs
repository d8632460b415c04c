//! What crash tests compare: a run's archive and its record of finished
//! work, read from the results store; and the loopback models whose answers
//! depend only on the request, so two runs of one plan are the same run.

use std::net::TcpListener;
use std::path::Path;

use hyperagents_store::ResultsStore;

use super::read_request;

/// A loopback Chat Completions server: `task-model` always answers `4`;
/// `meta-model` rewrites the reasoning prompt with a line that depends only
/// on the request's seed.
pub fn deterministic_models() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let request = read_request(&mut stream);
                let body = request.split_once("\r\n\r\n").map_or("", |(_, body)| body);
                let request: serde_json::Value =
                    serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
                let content = if request["model"] == "meta-model" {
                    let n = request["seed"].as_u64().unwrap_or(0) % 1000;
                    format!(
                        "Here is the new file.\n\nskills/reason/prompt.md\n```\nQuestion: {{{{ question }}}}\nAnswer with the number only (v{n}).\n```\n"
                    )
                } else {
                    "4".to_string()
                };
                super::answer_chat(&mut stream, &content);
            });
        }
    });
    url
}

/// Events that record progress (not the launch, stop and budget notes a
/// restart adds).
pub fn progress(store: &Path, run: &str) -> usize {
    let Ok(store) = ResultsStore::open(store) else {
        return 0;
    };
    store.events(run, 0).map_or(0, |events| {
        events
            .iter()
            .filter(|e| !matches!(e.kind.as_str(), "launch" | "stopped" | "budget"))
            .count()
    })
}

pub type NodeRow = (
    String,
    Option<String>,
    String,
    String,
    Vec<(String, String, u64, u64)>,
);

/// The archive as a comparable value: each node's parent, status, program,
/// and per stage and task its episodes and successes.
pub fn archive(store: &Path, run: &str) -> Vec<NodeRow> {
    let store = ResultsStore::open(store).unwrap();
    let mut rows: Vec<NodeRow> = store
        .nodes(run)
        .unwrap()
        .into_iter()
        .map(|n| {
            let mut stages = Vec::new();
            for stage in ["stage1", "full"] {
                for t in store.node_task_stats(run, &n.node_id, stage).unwrap() {
                    stages.push((stage.to_string(), t.task, t.episodes, t.successes));
                }
            }
            (
                n.node_id,
                n.parent_id,
                format!("{:?}", n.status),
                n.program_hash,
                stages,
            )
        })
        .collect();
    rows.sort();
    rows
}

/// How many events of each finished-work kind the run recorded.
pub fn finished_work(store: &Path, run: &str) -> Vec<(&'static str, usize)> {
    let events = ResultsStore::open(store).unwrap().events(run, 0).unwrap();
    ["parents", "generation", "comparison", "test"]
        .into_iter()
        .map(|kind| (kind, events.iter().filter(|e| e.kind == kind).count()))
        .collect()
}
