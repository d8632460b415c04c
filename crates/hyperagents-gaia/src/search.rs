//! Local document search for the `search_documents` tool: the text files (and PDFs) of one
//! folder, cut into overlapping passages and ranked with Okapi BM25.
//!
//! Written here rather than taken from a crate: the whole index is a term → postings map and one
//! scoring loop (about a hundred lines), and owning it keeps what is indexed under our control —
//! symlinks are not followed, hidden files and GAIA metadata files are skipped, and the order of
//! results is deterministic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use hyperagents_domain::DomainError;

use crate::files::{FileKind, ToolLimits, kind_of, raw_text};
use crate::loader::METADATA_FILE;

/// Words per passage.
const PASSAGE_WORDS: usize = 120;
/// Words the next passage starts after (the rest overlaps, so a sentence cut at one passage's
/// end is whole in the next).
const PASSAGE_STRIDE: usize = 90;
/// Folder depth indexed below the root.
const MAX_DEPTH: usize = 16;
/// Files indexed at most.
const MAX_FILES: usize = 20_000;
/// BM25's term-frequency saturation and length normalisation (the usual values).
const K1: f64 = 1.2;
const B: f64 = 0.75;

/// Words too common to rank by.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "in", "is", "it", "its",
    "of", "on", "or", "that", "the", "this", "to", "was", "were", "what", "which", "who", "with",
];

/// A passage found by [`DocumentIndex::search`].
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentHit {
    /// The file, relative to the indexed folder.
    pub file: String,
    /// The passage's position in its file, from 1.
    pub passage: usize,
    pub score: f64,
    pub text: String,
}

/// A BM25 index over the passages of one folder's files.
#[derive(Debug, Clone)]
pub struct DocumentIndex {
    root: PathBuf,
    passages: Vec<Passage>,
    /// term → (passage index, term count in it).
    postings: HashMap<String, Vec<(usize, u32)>>,
    average_length: f64,
    files: usize,
    skipped: Vec<String>,
}

#[derive(Debug, Clone)]
struct Passage {
    file: String,
    ordinal: usize,
    text: String,
    length: u32,
}

impl DocumentIndex {
    /// Indexes every readable text file and PDF under `root` (symlinks and hidden entries are
    /// not followed, `metadata.jsonl` files never indexed). Unreadable or binary files are
    /// skipped and listed in [`Self::skipped`].
    pub fn build(root: &Path, limits: &ToolLimits) -> Result<Self, DomainError> {
        let root = std::fs::canonicalize(root).map_err(|source| DomainError::Io {
            path: root.display().to_string(),
            source,
        })?;
        if !root.is_dir() {
            return Err(DomainError::Io {
                path: root.display().to_string(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    "the document folder is not a folder",
                ),
            });
        }
        let mut paths = Vec::new();
        collect_files(&root, MAX_DEPTH, &mut paths);
        paths.sort();
        let mut index = Self {
            root: root.clone(),
            passages: Vec::new(),
            postings: HashMap::new(),
            average_length: 0.0,
            files: 0,
            skipped: Vec::new(),
        };
        for path in paths.into_iter().take(MAX_FILES) {
            let relative = path
                .strip_prefix(&root)
                .unwrap_or(&path)
                .display()
                .to_string();
            if kind_of(&path) == FileKind::Unsupported {
                index.skipped.push(relative);
                continue;
            }
            match raw_text(&path, &relative, limits) {
                Ok(text) => {
                    index.add_file(&relative, &text);
                    index.files += 1;
                }
                Err(reason) => {
                    tracing::debug!(file = %path.display(), %reason, "not indexed");
                    index.skipped.push(relative);
                }
            }
        }
        let total: u64 = index.passages.iter().map(|p| u64::from(p.length)).sum();
        index.average_length = if index.passages.is_empty() {
            0.0
        } else {
            total as f64 / index.passages.len() as f64
        };
        tracing::info!(
            root = %root.display(),
            files = index.files,
            passages = index.passages.len(),
            skipped = index.skipped.len(),
            "document index built"
        );
        Ok(index)
    }

    /// The indexed folder (canonical).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Files indexed.
    pub fn file_count(&self) -> usize {
        self.files
    }

    /// Passages indexed.
    pub fn passage_count(&self) -> usize {
        self.passages.len()
    }

    /// Files left out (binary, not UTF-8, too large), relative to the root.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The `limit` best passages for `query`, best first; ties by file and position.
    pub fn search(&self, query: &str, limit: usize) -> Vec<DocumentHit> {
        let mut terms = tokenize(query);
        terms.sort();
        terms.dedup();
        let n = self.passages.len() as f64;
        let mut scores: HashMap<usize, f64> = HashMap::new();
        for term in &terms {
            let Some(postings) = self.postings.get(term) else {
                continue;
            };
            let df = postings.len() as f64;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(passage, count) in postings {
                let tf = f64::from(count);
                let length = f64::from(self.passages[passage].length);
                let norm = K1 * (1.0 - B + B * length / self.average_length.max(1.0));
                *scores.entry(passage).or_default() += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        let mut ranked: Vec<(usize, f64)> = scores.into_iter().filter(|(_, s)| *s > 0.0).collect();
        ranked.sort_by(|a, b| {
            b.1.total_cmp(&a.1).then_with(|| {
                let (pa, pb) = (&self.passages[a.0], &self.passages[b.0]);
                (&pa.file, pa.ordinal).cmp(&(&pb.file, pb.ordinal))
            })
        });
        ranked
            .into_iter()
            .take(limit)
            .map(|(i, score)| {
                let p = &self.passages[i];
                DocumentHit {
                    file: p.file.clone(),
                    passage: p.ordinal,
                    score,
                    text: p.text.clone(),
                }
            })
            .collect()
    }

    fn add_file(&mut self, file: &str, text: &str) {
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut start = 0;
        let mut ordinal = 1;
        while start < words.len() {
            let end = (start + PASSAGE_WORDS).min(words.len());
            let passage_text = words[start..end].join(" ");
            let tokens = tokenize(&passage_text);
            let index = self.passages.len();
            let mut counts: HashMap<String, u32> = HashMap::new();
            for token in &tokens {
                *counts.entry(token.clone()).or_default() += 1;
            }
            for (term, count) in counts {
                self.postings.entry(term).or_default().push((index, count));
            }
            self.passages.push(Passage {
                file: file.to_string(),
                ordinal,
                text: passage_text,
                length: u32::try_from(tokens.len()).unwrap_or(u32::MAX),
            });
            if end == words.len() {
                break;
            }
            start += PASSAGE_STRIDE;
            ordinal += 1;
        }
    }
}

/// Lowercased alphanumeric runs, stopwords dropped.
fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .filter(|w| !STOPWORDS.contains(&w.as_str()))
        .collect()
}

fn collect_files(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == METADATA_FILE {
            continue;
        }
        // `file_type` does not follow symlinks: a link is neither a file nor a folder here.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_file() {
            out.push(entry.path());
        } else if kind.is_dir() && depth > 0 {
            collect_files(&entry.path(), depth - 1, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index_of(files: &[(&str, &str)]) -> (tempfile::TempDir, DocumentIndex) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let index = DocumentIndex::build(dir.path(), &ToolLimits::default()).unwrap();
        (dir, index)
    }

    #[test]
    fn ranks_the_passage_about_the_query_first() {
        let (_dir, index) = index_of(&[
            (
                "birds.txt",
                "The albatross has the largest wingspan of any bird.",
            ),
            (
                "fish/sharks.md",
                "Sharks are fish. The whale shark is the largest fish.",
            ),
            ("cats.txt", "Cats sleep most of the day."),
        ]);
        assert_eq!(index.file_count(), 3);
        let hits = index.search("largest wingspan bird", 5);
        assert_eq!(hits[0].file, "birds.txt");
        let hits = index.search("whale shark", 5);
        assert_eq!(hits[0].file, "fish/sharks.md");
        assert_eq!(hits.len(), 1, "cats and birds mention no query term");
        assert!(index.search("the of and", 5).is_empty(), "stopwords only");
        assert!(index.search("zeppelin", 5).is_empty());
    }

    #[test]
    fn long_files_become_overlapping_passages() {
        let words: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
        let (_dir, index) = index_of(&[("long.txt", &words.join(" "))]);
        // 0..120, 90..210, 180..300.
        assert_eq!(index.passage_count(), 3);
        let hits = index.search("w100", 5);
        let positions: Vec<usize> = hits.iter().map(|h| h.passage).collect();
        assert_eq!(positions.len(), 2);
        assert!(positions.contains(&1) && positions.contains(&2));
        assert_eq!(index.search("w299", 5)[0].passage, 3);
    }

    #[test]
    fn skips_binaries_hidden_files_metadata_and_symlinks() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "topsecret").unwrap();
        let (dir, _) = index_of(&[]);
        std::fs::write(dir.path().join("ok.txt"), "visible words").unwrap();
        std::fs::write(dir.path().join("blob.bin"), b"a\0b").unwrap();
        std::fs::write(dir.path().join("image.png"), "pretend").unwrap();
        std::fs::write(dir.path().join(".hidden.txt"), "topsecret").unwrap();
        std::fs::write(dir.path().join(METADATA_FILE), "topsecret").unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret.txt"),
            dir.path().join("link.txt"),
        )
        .unwrap();
        let index = DocumentIndex::build(dir.path(), &ToolLimits::default()).unwrap();
        assert_eq!(index.file_count(), 1);
        assert!(index.search("topsecret", 5).is_empty());
        assert_eq!(index.search("visible", 5).len(), 1);
        let mut skipped = index.skipped().to_vec();
        skipped.sort();
        assert_eq!(skipped, vec!["blob.bin", "image.png"]);
    }

    #[test]
    fn a_missing_folder_is_an_error_naming_it() {
        let err = DocumentIndex::build(Path::new("/no/such/docs"), &ToolLimits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("/no/such/docs"), "{err}");
    }
}
