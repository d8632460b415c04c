//! Fixtures: a GAIA-layout folder written by the test, PDFs made with lopdf, a python pool on
//! the built sandbox worker, and a fake web search provider.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use hyperagents_domain::DomainError;
use hyperagents_gaia::{
    GaiaConfig, GaiaDomain, GaiaSuite, WebSearch, WebSearchHit, python_pool_config,
};
use hyperagents_sandbox::{ScriptPool, locate_worker};
use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

/// Strings that occur only in expected answers and annotator notes: no agent-visible text may
/// contain any of them.
pub const SECRETS: &[&str] = &[
    "Marmoset-Delta-6620",
    "Okapi-Sigma-1187",
    "Narwhal",
    "Tapir",
    "Axolotl-Omega-5523",
    "48213",
    "STEPS-MARKER-ZX",
];

/// A GAIA-style folder: `<root>/2023/validation` (answers) and `<root>/2023/test` (none).
pub struct Fixture {
    pub root: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        let root = tempfile::tempdir().unwrap();
        let validation = root.path().join("2023/validation");
        let test = root.path().join("2023/test");
        std::fs::create_dir_all(&validation).unwrap();
        std::fs::create_dir_all(&test).unwrap();
        std::fs::write(
            validation.join("sales.csv"),
            "region,amount\nnorth,120\nsouth,80\n\"east, upper\",45\n",
        )
        .unwrap();
        std::fs::write(
            validation.join("config.json"),
            r#"{"name":"harbor","ports":[80,443],"owner":{"team":"ops"}}"#,
        )
        .unwrap();
        std::fs::write(
            validation.join("notes.txt"),
            "Meeting notes\nThe ferry leaves at 7:15 from pier 4.\n",
        )
        .unwrap();
        std::fs::write(
            validation.join("report.pdf"),
            pdf(&["Quarterly report", "Revenue grew by 12 percent"]),
        )
        .unwrap();
        let lines = [
            serde_json::json!({"task_id": "t-csv", "Question": "What is the total amount?",
                "Level": 1, "Final answer": "Marmoset-Delta-6620", "file_name": "sales.csv",
                "Annotator Metadata": {"Steps": "STEPS-MARKER-ZX", "Tools": "python"}}),
            serde_json::json!({"task_id": "t-json", "Question": "Which team owns it?",
                "Level": 2, "Final answer": "Okapi-Sigma-1187", "file_name": "config.json"}),
            serde_json::json!({"task_id": "t-text", "Question": "List the animals.",
                "Level": "3", "Final answer": "Narwhal, Ibex; Tapir", "file_name": "notes.txt"}),
            serde_json::json!({"task_id": "t-pdf", "Question": "By how much did revenue grow?",
                "Level": 1, "Final answer": "Axolotl-Omega-5523", "file_name": "report.pdf",
                "file_path": "2023/validation/report.pdf"}),
            serde_json::json!({"task_id": "t-plain", "Question": "How many grams?",
                "Level": "2", "Final answer": "48213.5", "file_name": ""}),
        ];
        write_lines(&validation.join("metadata.jsonl"), &lines);
        let test_lines = [
            serde_json::json!({"task_id": "q-1", "Question": "Unanswered one?", "Level": 1,
                "Final answer": "?", "file_name": ""}),
            serde_json::json!({"task_id": "q-2", "Question": "Unanswered two?", "Level": 3,
                "file_name": ""}),
        ];
        write_lines(&test.join("metadata.jsonl"), &test_lines);
        Self { root }
    }

    pub fn validation(&self) -> PathBuf {
        self.root.path().join("2023/validation")
    }

    pub fn metadata(&self) -> PathBuf {
        self.validation().join("metadata.jsonl")
    }

    pub fn suite(&self) -> GaiaSuite {
        GaiaSuite::load(&self.validation()).unwrap()
    }

    pub fn domain(&self, config: GaiaConfig) -> GaiaDomain {
        GaiaDomain::new(self.suite(), config).unwrap()
    }
}

pub fn write_lines(path: &Path, lines: &[serde_json::Value]) {
    let text: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    std::fs::write(path, text.join("\n") + "\n").unwrap();
}

/// A PDF with one page per entry, each showing its text in Helvetica.
pub fn pdf(pages_text: &[&str]) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids = Vec::new();
    for text in pages_text {
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 14.into()]),
                Operation::new("Td", vec![72.into(), 700.into()]),
                Operation::new("Tj", vec![Object::string_literal(*text)]),
                Operation::new("ET", vec![]),
            ],
        };
        let content_id = doc.add_object(Stream::new(dictionary! {}, content.encode().unwrap()));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).unwrap();
    bytes
}

/// A pool for the python tool on the sandbox worker Cargo built
/// (`cargo build -p hyperagents-sandbox --bins`).
pub async fn python_pool() -> ScriptPool {
    let exe = locate_worker()
        .expect("the sandbox worker is built (cargo build -p hyperagents-sandbox --bins)");
    ScriptPool::start(python_pool_config(exe, 1)).await.unwrap()
}

/// A web search provider answering from a fixed list.
pub struct FixtureSearch {
    pub hits: Vec<WebSearchHit>,
}

impl FixtureSearch {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            hits: vec![
                WebSearchHit {
                    title: "Harbor ferry timetable".into(),
                    url: "http://127.0.0.1/ferry".into(),
                    snippet: "Ferries leave every hour.".into(),
                },
                WebSearchHit {
                    title: "Pier 4".into(),
                    url: "http://127.0.0.1/pier".into(),
                    snippet: "The oldest pier.".into(),
                },
            ],
        })
    }
}

#[async_trait]
impl WebSearch for FixtureSearch {
    fn name(&self) -> &str {
        "fixture"
    }

    async fn search(&self, query: &str, limit: usize) -> Result<Vec<WebSearchHit>, DomainError> {
        if query == "fail" {
            return Err(DomainError::Environment("the provider is down".into()));
        }
        Ok(self.hits.iter().take(limit).cloned().collect())
    }
}

/// Fails the test if `f` takes longer than `secs` (a hung worker must not hang the suite).
pub async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(secs), f)
        .await
        .expect("test step timed out")
}
