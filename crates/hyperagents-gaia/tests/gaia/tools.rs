//! Each tool of a GAIA episode, and the answer → score flow.

use hyperagents_domain::{Domain, DomainError, Environment};
use hyperagents_gaia::{GaiaConfig, NO_WEB_SEARCH_PROVIDER};
use serde_json::json;

use crate::common::{Fixture, FixtureSearch, pdf, python_pool, within};

fn tool_names(env: &dyn Environment) -> Vec<String> {
    env.tools().into_iter().map(|t| t.name).collect()
}

#[tokio::test]
async fn the_instruction_is_the_question_and_the_attachment_name() {
    let fixture = Fixture::new();
    let domain = fixture.domain(GaiaConfig::default());
    assert_eq!(domain.name(), "gaia:2023/validation");
    let mut env = domain.reset("t-csv", 1).await.unwrap();
    assert_eq!(
        env.instruction(),
        "What is the total amount?\n\nAttached file: `sales.csv` (read it with the read_file tool)."
    );
    assert!(
        env.observe()
            .await
            .unwrap()
            .starts_with("Question: What is the total")
    );
    let plain = domain.reset("t-plain", 1).await.unwrap();
    assert_eq!(plain.instruction(), "How many grams?");
    assert_eq!(tool_names(env.as_ref()), ["calculator", "read_file"]);
    assert_eq!(env.actions()[0].name, "answer");
}

#[tokio::test]
async fn answers_are_scored_with_gaias_rules() {
    let fixture = Fixture::new();
    let domain = fixture.domain(GaiaConfig::default());
    let cases = [
        ("t-plain", json!({"text": "48,213.5"}), true),
        ("t-plain", json!({"text": "48213.50 g"}), false),
        ("t-text", json!({"text": "narwhal; ibex, TAPIR"}), true),
        ("t-text", json!({"text": "narwhal, tapir"}), false),
        ("t-json", json!("okapi sigma 1187"), true),
        ("t-json", json!("okapi sigma 1178"), false),
        ("t-json", json!("okapi-SIGMA-1187."), true),
    ];
    for (task, answer, want) in cases {
        let mut env = domain.reset(task, 0).await.unwrap();
        let outcome = env.act("answer", &answer).await.unwrap();
        assert!(outcome.done && env.is_done());
        assert_eq!(env.observe().await.unwrap(), "The answer has been given.");
        assert!(matches!(
            env.act("answer", &json!({"text": "again"})).await,
            Err(DomainError::EpisodeOver)
        ));
        let score = env.score().await.unwrap();
        assert_eq!(score.success, want, "{task} {answer}: {}", score.reason);
    }
    let mut silent = domain.reset("t-plain", 0).await.unwrap();
    let score = silent.score().await.unwrap();
    assert!(!score.success);
    assert_eq!(score.reason, "no answer was given");
    let mut env = domain.reset("t-plain", 0).await.unwrap();
    assert!(matches!(
        env.act("click", &json!({})).await,
        Err(DomainError::UnknownAction { .. })
    ));
    assert!(matches!(
        env.act("answer", &json!({})).await,
        Err(DomainError::BadArguments { .. })
    ));
}

#[tokio::test]
async fn calculator_is_the_shared_one() {
    let fixture = Fixture::new();
    let mut env = fixture
        .domain(GaiaConfig::default())
        .reset("t-plain", 0)
        .await
        .unwrap();
    assert_eq!(
        env.call_tool("calculator", &json!({"expression": "120 + 80 + 45"}))
            .await
            .unwrap(),
        "245"
    );
    assert!(env.call_tool("calculator", &json!("1/0")).await.is_err());
}

#[tokio::test]
async fn read_file_renders_csv_json_text_and_pdf() {
    let fixture = Fixture::new();
    let domain = fixture.domain(GaiaConfig::default());

    let mut env = domain.reset("t-csv", 0).await.unwrap();
    let table = env
        .call_tool("read_file", &json!({"path": "sales.csv"}))
        .await
        .unwrap();
    assert_eq!(
        table,
        "3 rows × 2 columns\n| region | amount |\n| --- | --- |\n| north | 120 |\n\
         | south | 80 |\n| east, upper | 45 |\n"
    );

    let mut env = domain.reset("t-json", 0).await.unwrap();
    let pretty = env
        .call_tool("read_file", &json!("config.json"))
        .await
        .unwrap();
    assert!(
        pretty.contains("\"owner\": {\n    \"team\": \"ops\"\n  }"),
        "{pretty}"
    );

    let mut env = domain.reset("t-text", 0).await.unwrap();
    let text = env
        .call_tool("read_file", &json!({"path": "./notes.txt"}))
        .await
        .unwrap();
    assert_eq!(
        text,
        "Meeting notes\nThe ferry leaves at 7:15 from pier 4.\n"
    );

    let mut env = domain.reset("t-pdf", 0).await.unwrap();
    let pdf_text = env
        .call_tool("read_file", &json!({"path": "report.pdf"}))
        .await
        .unwrap();
    assert!(pdf_text.contains("--- page 1 ---"), "{pdf_text}");
    assert!(pdf_text.contains("Quarterly report"), "{pdf_text}");
    assert!(pdf_text.contains("--- page 2 ---"), "{pdf_text}");
    assert!(
        pdf_text.contains("Revenue grew by 12 percent"),
        "{pdf_text}"
    );

    let err = env
        .call_tool("read_file", &json!({"path": "nope.txt"}))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("files available: report.pdf"),
        "{err}"
    );
    let err = env.call_tool("read_file", &json!({})).await.unwrap_err();
    assert!(err.to_string().contains("missing `path`"), "{err}");
}

#[tokio::test]
async fn read_file_caps_long_files_and_refuses_binary_ones() {
    let dir = tempfile::tempdir().unwrap();
    let rows: String = (0..500).map(|i| format!("{i},{}\n", i * 2)).collect();
    std::fs::write(dir.path().join("big.csv"), format!("n,double\n{rows}")).unwrap();
    std::fs::write(dir.path().join("long.txt"), "x".repeat(50_000)).unwrap();
    std::fs::write(dir.path().join("photo.png"), [0x89, b'P', b'N', b'G', 0, 1]).unwrap();
    std::fs::write(dir.path().join("blob.dat"), [0xff, 0xfe, 0x00]).unwrap();
    std::fs::write(dir.path().join("scan.pdf"), b"%PDF-1.4 broken").unwrap();
    let mut lines = Vec::new();
    for (i, file) in ["big.csv", "long.txt", "photo.png", "blob.dat", "scan.pdf"]
        .iter()
        .enumerate()
    {
        lines.push(
            json!({"task_id": format!("t{i}"), "Question": "Q", "Level": 1,
            "Final answer": "a", "file_name": file}),
        );
    }
    crate::common::write_lines(&dir.path().join("metadata.jsonl"), &lines);
    let suite = hyperagents_gaia::GaiaSuite::load(dir.path()).unwrap();
    let domain = hyperagents_gaia::GaiaDomain::new(suite, GaiaConfig::default()).unwrap();
    let read = |task: &'static str, file: &'static str| {
        let domain = &domain;
        async move {
            let mut env = domain.reset(task, 0).await.unwrap();
            env.call_tool("read_file", &json!({"path": file})).await
        }
    };
    let table = read("t0", "big.csv").await.unwrap();
    assert!(table.starts_with("500 rows × 2 columns"), "{table}");
    assert!(
        table.contains("| 49 | 98 |") && !table.contains("| 50 | 100 |"),
        "{table}"
    );
    assert!(table.contains("showing 50 of 500 rows"), "{table}");
    let long = read("t1", "long.txt").await.unwrap();
    assert!(
        long.ends_with("[… truncated: 30000 more characters]"),
        "{}",
        &long[19_990..]
    );
    let err = read("t2", "photo.png").await.unwrap_err().to_string();
    assert!(err.contains("binary format"), "{err}");
    let err = read("t3", "blob.dat").await.unwrap_err().to_string();
    assert!(err.contains("not UTF-8 text"), "{err}");
    let err = read("t4", "scan.pdf").await.unwrap_err().to_string();
    assert!(err.contains("scan.pdf"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_runs_in_the_sandbox_and_reads_the_attachment() {
    let fixture = Fixture::new();
    let pool = python_pool().await;
    let domain = fixture.domain(GaiaConfig {
        python: Some(pool),
        ..GaiaConfig::default()
    });
    let mut env = domain.reset("t-csv", 0).await.unwrap();
    assert!(tool_names(env.as_ref()).contains(&"python".to_string()));
    let mut python = async |code: &str| {
        within(60, env.call_tool("python", &json!({"code": code})))
            .await
            .unwrap()
    };
    assert_eq!(python("print('hi')\nprint(6 * 7)").await, "hi\n42");
    assert_eq!(python("x = [1, 2, 3]\nsum(x)").await, "result: 6");
    assert_eq!(python("'text'").await, "result: text");
    assert_eq!(
        python("x = 1").await,
        "(no output: print() what you want to see)"
    );
    let code = "import csv\n";
    assert!(
        python(code).await.starts_with("python error:"),
        "no csv module in monty"
    );
    let total = python(
        "rows = read_file('sales.csv').splitlines()[1:]\n\
         total = 0\n\
         for row in rows:\n    total += int(row.rsplit(',', 1)[1])\n\
         print('total', total)\ntotal",
    )
    .await;
    assert_eq!(total, "total 245\nresult: 245");
    let err = python("print('before')\n1 / 0").await;
    assert!(err.starts_with("before\npython error:"), "{err}");
    assert!(err.contains("ZeroDivisionError"), "{err}");
    let err = python("def f(:\n  pass").await;
    assert!(err.contains("syntax error"), "{err}");
    let err = python("while True:\n    pass").await;
    assert!(err.contains("time limit exceeded"), "{err}");
    let err = python("x = [0] * (10**9)").await;
    assert!(err.contains("memory limit exceeded"), "{err}");
    assert_eq!(python("print('still alive')").await, "still alive");
}

#[tokio::test]
async fn python_without_a_pool_says_so() {
    let fixture = Fixture::new();
    let mut env = fixture
        .domain(GaiaConfig::default())
        .reset("t-csv", 0)
        .await
        .unwrap();
    assert!(!tool_names(env.as_ref()).contains(&"python".to_string()));
    let text = env
        .call_tool("python", &json!({"code": "1"}))
        .await
        .unwrap();
    assert_eq!(text, "the python tool is not configured in this run");
}

#[tokio::test]
async fn search_documents_ranks_local_passages() {
    let fixture = Fixture::new();
    let docs = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(docs.path().join("ships")).unwrap();
    std::fs::write(
        docs.path().join("ships/ferries.txt"),
        "The harbor ferry to Lindholm departs from pier 4 every hour.",
    )
    .unwrap();
    std::fs::write(
        docs.path().join("birds.md"),
        "Puffins nest on cliffs by the sea.",
    )
    .unwrap();
    std::fs::write(
        docs.path().join("manual.pdf"),
        pdf(&["Lighthouse keeper manual"]),
    )
    .unwrap();
    let domain = fixture.domain(GaiaConfig {
        documents: Some(docs.path().to_path_buf()),
        ..GaiaConfig::default()
    });
    assert_eq!(domain.documents().unwrap().file_count(), 3);
    let mut env = domain.reset("t-plain", 0).await.unwrap();
    assert!(tool_names(env.as_ref()).contains(&"search_documents".to_string()));
    let found = env
        .call_tool("search_documents", &json!({"query": "ferry pier"}))
        .await
        .unwrap();
    assert_eq!(
        found,
        "[ships/ferries.txt · passage 1]\nThe harbor ferry to Lindholm departs from pier 4 every hour."
    );
    let found = env
        .call_tool("search_documents", &json!("lighthouse"))
        .await
        .unwrap();
    assert!(found.starts_with("[manual.pdf · passage 1]"), "{found}");
    let none = env
        .call_tool("search_documents", &json!("zeppelin"))
        .await
        .unwrap();
    assert_eq!(none, "no passages match `zeppelin`");

    let mut bare = fixture
        .domain(GaiaConfig::default())
        .reset("t-plain", 0)
        .await
        .unwrap();
    let text = bare
        .call_tool("search_documents", &json!("ferry"))
        .await
        .unwrap();
    assert_eq!(text, "no document folder is configured in this run");
}

#[tokio::test]
async fn web_search_uses_the_plugged_provider_or_says_there_is_none() {
    let fixture = Fixture::new();
    let mut offline = fixture
        .domain(GaiaConfig::default())
        .reset("t-plain", 0)
        .await
        .unwrap();
    assert!(!tool_names(offline.as_ref()).contains(&"web_search".to_string()));
    let text = offline
        .call_tool("web_search", &json!({"query": "ferry"}))
        .await
        .unwrap();
    assert_eq!(text, NO_WEB_SEARCH_PROVIDER);
    assert!(text.starts_with("no web search provider configured"));

    let domain = fixture.domain(GaiaConfig {
        web_search: Some(FixtureSearch::new()),
        limits: hyperagents_gaia::ToolLimits {
            web_results: 1,
            ..Default::default()
        },
        ..GaiaConfig::default()
    });
    let mut env = domain.reset("t-plain", 0).await.unwrap();
    assert!(tool_names(env.as_ref()).contains(&"web_search".to_string()));
    let text = env
        .call_tool("web_search", &json!({"query": "ferry"}))
        .await
        .unwrap();
    assert_eq!(
        text,
        "1. Harbor ferry timetable\n   http://127.0.0.1/ferry\n   Ferries leave every hour."
    );
    let err = env
        .call_tool("web_search", &json!({"query": "fail"}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("the provider is down"), "{err}");
    let err = env
        .call_tool("fly", &json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("calculator, read_file, web_search"), "{err}");
}

/// An OOXML package (a zip of XML parts), as office suites write them.
fn office_file(parts: &[(&str, &str)]) -> Vec<u8> {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, text) in parts {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(text.as_bytes()).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

const RELS: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";

#[test]
fn read_file_renders_spreadsheets_and_word_documents() {
    let xlsx = office_file(&[
        (
            "[Content_Types].xml",
            r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/></Types>"#,
        ),
        (
            "_rels/.rels",
            &format!(
                r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{RELS}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
            ),
        ),
        (
            "xl/workbook.xml",
            &format!(
                r#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="{RELS}"><sheets><sheet name="Sales" sheetId="1" r:id="rId1"/></sheets></workbook>"#
            ),
        ),
        (
            "xl/_rels/workbook.xml.rels",
            &format!(
                r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="{RELS}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>"#
            ),
        ),
        (
            "xl/worksheets/sheet1.xml",
            r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>region</t></is></c><c r="B1" t="inlineStr"><is><t>amount</t></is></c></row><row r="2"><c r="A2" t="inlineStr"><is><t>north</t></is></c><c r="B2"><v>120</v></c></row><row r="3"><c r="A3" t="inlineStr"><is><t>south</t></is></c><c r="B3"><v>80.5</v></c></row></sheetData></worksheet>"#,
        ),
    ]);
    let limits = hyperagents_gaia::ToolLimits::default();
    let table = hyperagents_gaia::files::spreadsheet_text(&xlsx, &limits).unwrap();
    assert_eq!(
        table,
        "--- sheet Sales ---\n2 rows × 2 columns\n| region | amount |\n| --- | --- |\n\
         | north | 120 |\n| south | 80.5 |\n"
    );

    let docx = office_file(&[(
        "word/document.xml",
        r#"<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>The ferry leaves at 7:15</w:t></w:r></w:p><w:p><w:r><w:t xml:space="preserve">from pier </w:t></w:r><w:r><w:t>4 &amp; 5.</w:t></w:r></w:p></w:body></w:document>"#,
    )]);
    let text = hyperagents_gaia::files::docx_text(&docx, &limits).unwrap();
    assert_eq!(text, "The ferry leaves at 7:15\nfrom pier 4 & 5.\n");

    // Broken files are errors, not panics.
    let not_zip = hyperagents_gaia::files::docx_text(b"plain text", &limits).unwrap_err();
    assert!(not_zip.contains("not a readable docx"), "{not_zip}");
    let no_body = office_file(&[("word/styles.xml", "<w:styles/>")]);
    let missing = hyperagents_gaia::files::docx_text(&no_body, &limits).unwrap_err();
    assert!(missing.contains("word/document.xml"), "{missing}");
    let bad_sheet = hyperagents_gaia::files::spreadsheet_text(b"nope", &limits).unwrap_err();
    assert!(bad_sheet.contains("could not be read"), "{bad_sheet}");
}
