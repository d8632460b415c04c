//! `hyperagents feedback import|export`: JSONL in, the same JSONL out; a
//! repeat adds nothing; a bad line names its place and adds nothing.

#![allow(clippy::unwrap_used)]

mod support;

use support::{bin, text};

const JUDGEMENTS: &str = r#"{"kind":"rating","run":"r1","node":"g1c0","stage":"full","task":"click-button","seed":0,"good":false,"comment":"reward hack: clicked every button","rater":"ana","at_ms":1}
{"kind":"preference","run":"r1","stage":"full","task":"click-button","seed":0,"a":"g1c0","b":"g1c1","preferred":"g1c1","comment":"","rater":"ben","at_ms":2}
"#;

#[test]
fn judgements_round_trip_as_jsonl() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        bin()
            .env("HYPERAGENTS_CACHE_DIR", dir.path())
            .args(args)
            .output()
            .unwrap()
    };
    let input = dir.path().join("in.jsonl");
    std::fs::write(&input, JUDGEMENTS).unwrap();
    let out = run(&["feedback", "import", input.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("2 judgements added, 0 already there"));
    let again = run(&["feedback", "import", input.to_str().unwrap()]);
    assert!(text(&again.stderr).contains("0 judgements added, 2 already there"));
    let exported = run(&["feedback", "export"]);
    assert!(exported.status.success());
    let lines: Vec<serde_json::Value> = text(&exported.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let given: Vec<serde_json::Value> = JUDGEMENTS
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, given);
    let only_r2 = run(&["feedback", "export", "--run", "r2"]);
    assert!(text(&only_r2.stdout).is_empty());

    // A bad second line: the error names it, and the good first line is not added either.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"kind\":\"rating\",\"run\":\"r3\",\"node\":\"n\",\"stage\":\"full\",\"task\":\"t\",\"seed\":0,\"good\":true,\"comment\":\"\",\"rater\":\"c\",\"at_ms\":3}\n{\"kind\":\"rating\"}\n",
    )
    .unwrap();
    let out = run(&["feedback", "import", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("bad.jsonl:2"),
        "{}",
        text(&out.stderr)
    );
    let exported = run(&["feedback", "export", "--run", "r3"]);
    assert!(text(&exported.stdout).is_empty());
}
