//! Edits as models write them in plain text, parsed without asking for JSON.
//!
//! Weak code models fail at code inside JSON strings (escaping, exact
//! snippets); aider's edit benchmarks found whole files in fenced blocks the
//! most reliable format for them, and search/replace blocks the next. Two
//! formats are read, in any mix:
//!
//! ````text
//! skills/act/skill.py
//! ```python
//! …the whole new file…
//! ```
//!
//! tasks/operator/prompt.md
//! <<<<<<< SEARCH
//! …lines as they are…
//! =======
//! …lines as they should be…
//! >>>>>>> REPLACE
//! ````
//!
//! A block's file is the path-like line closest above it (markdown decoration
//! such as `**`, backticks, `#`, `File:` and a trailing note like `(whole
//! file)` is stripped), the fence's info string when that is a path, or a
//! first line inside the fence that names one (`# hyper/main.py`). A path
//! line followed by plain text, with no fence or SEARCH block before the next
//! path line, is that file written whole without a fence: the shapes small
//! models answer in. Parsing never touches a program: the meta agent decides
//! what to apply.

use std::fmt;

/// One edit read from a model's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEdit {
    /// The file it names; `None` when no path-like line precedes it.
    pub path: Option<String>,
    pub change: ParsedChange,
}

/// What the edit does to its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParsedChange {
    /// The file's whole new text.
    Write { content: String },
    /// Swap `old` (as it is in the file) for `new`.
    Replace { old: String, new: String },
}

/// A block that could not be read, by line (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseProblem {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Everything read from one reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedReply {
    pub edits: Vec<ParsedEdit>,
    pub problems: Vec<ParseProblem>,
}

/// Reads every whole-file block and search/replace block in `text`.
pub fn parse_edits(text: &str) -> ParsedReply {
    let lines: Vec<&str> = text.lines().collect();
    let mut reply = ParsedReply::default();
    let mut i = 0;
    // The latest path-like line outside blocks: the file of the next block.
    let mut current_path: Option<String> = None;
    while i < lines.len() {
        let line = lines[i];
        if is_search_marker(line) {
            i = read_search_replace(&lines, 0, i, current_path.clone(), &mut reply);
            continue;
        }
        if let Some(info) = fence_open(line) {
            let path = path_like(info).or_else(|| current_path.clone());
            let Some(end) = (i + 1..lines.len()).find(|&j| is_fence_close(lines[j], line)) else {
                reply.problems.push(ParseProblem {
                    line: i + 1,
                    message: "a fenced block is not closed (```)".into(),
                });
                break;
            };
            // A fence holding nothing but a path labels what follows.
            let filled: Vec<&str> = lines[i + 1..end]
                .iter()
                .copied()
                .filter(|l| !l.trim().is_empty())
                .collect();
            if let [only] = filled.as_slice()
                && let Some(named) = path_like(only)
            {
                current_path = Some(named);
                i = end + 1;
                continue;
            }
            // The body, and the reply's index of its first line.
            let mut body = &lines[i + 1..end];
            let mut body_start = i + 1;
            let mut path = path;
            // A first line naming the file (`# hyper/main.py`, `### x.md
            // (whole file)`) is a label, not content.
            if let Some(named) = body.first().and_then(|l| labelled_path(l))
                && path.as_ref().is_none_or(|p| *p == named)
            {
                path = Some(named);
                body = &body[1..];
                body_start += 1;
                while body.first().is_some_and(|l| l.trim().is_empty()) {
                    body = &body[1..];
                    body_start += 1;
                }
            }
            if body.iter().any(|l| is_search_marker(l)) {
                // Search/replace blocks inside a fence: the fence is decoration.
                let mut j = 0;
                let mut inner_path = path;
                while j < body.len() {
                    if is_search_marker(body[j]) {
                        j = read_search_replace(
                            body,
                            body_start,
                            j,
                            inner_path.clone(),
                            &mut reply,
                        );
                    } else {
                        if let Some(p) = path_like(body[j]) {
                            inner_path = Some(p);
                        }
                        j += 1;
                    }
                }
            } else {
                let mut content = body.join("\n");
                content.push('\n');
                reply.edits.push(ParsedEdit {
                    path,
                    change: ParsedChange::Write { content },
                });
            }
            current_path = None;
            i = end + 1;
            continue;
        }
        if let Some(p) = path_like(line) {
            if let Some(end) = unfenced_file_end(&lines, i) {
                reply.edits.push(ParsedEdit {
                    path: Some(p),
                    change: ParsedChange::Write {
                        content: trimmed_block(&lines[i + 1..end]),
                    },
                });
                current_path = None;
                i = end;
                continue;
            }
            current_path = Some(p);
        }
        i += 1;
    }
    reply
}

/// Where a file written without a fence after the path line at `at` ends
/// (the next path line, or the reply's end), when that is what follows: no
/// fence and no SEARCH block before then, and some text. Small models often
/// answer `### path (whole file)` and then the file, unfenced.
fn unfenced_file_end(lines: &[&str], at: usize) -> Option<usize> {
    let end = (at + 1..lines.len())
        .find(|&j| path_like(lines[j]).is_some())
        .unwrap_or(lines.len());
    let segment = &lines[at + 1..end];
    let plain = segment
        .iter()
        .all(|l| fence_open(l).is_none() && !is_search_marker(l));
    let has_text = segment.iter().any(|l| !l.trim().is_empty());
    (plain && has_text).then_some(end)
}

/// Lines as a file's text: blank lines at either end dropped, one final newline.
fn trimmed_block(lines: &[&str]) -> String {
    let first = lines.iter().position(|l| !l.trim().is_empty()).unwrap_or(0);
    let last = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(first, |i| i + 1);
    let mut content = lines[first..last].join("\n");
    content.push('\n');
    content
}

/// The path a label line names: a heading, comment or bold line
/// (`# a/b.py`, `### a/b.md (whole file)`, `**a/b.py**`, `// a/b.js`).
fn labelled_path(line: &str) -> Option<String> {
    let t = line.trim_start();
    let labelled = t.starts_with('#') || t.starts_with("//") || t.starts_with("**");
    if !labelled {
        return None;
    }
    path_like(t.trim_start_matches('/'))
}

/// Reads one SEARCH/REPLACE block starting at `start` (the SEARCH marker);
/// returns the index after it. `lines` begin at index `offset` of the reply's
/// lines (a fence's body), so problems give the reply's own line numbers.
fn read_search_replace(
    lines: &[&str],
    offset: usize,
    start: usize,
    path: Option<String>,
    reply: &mut ParsedReply,
) -> usize {
    let Some(divider) = (start + 1..lines.len()).find(|&j| is_divider(lines[j])) else {
        reply.problems.push(ParseProblem {
            line: offset + start + 1,
            message: "SEARCH without a ======= line".into(),
        });
        return lines.len();
    };
    let Some(end) = (divider + 1..lines.len()).find(|&j| is_replace_marker(lines[j])) else {
        reply.problems.push(ParseProblem {
            line: offset + start + 1,
            message: "SEARCH without a >>>>>>> REPLACE line".into(),
        });
        return lines.len();
    };
    let old = lines[start + 1..divider].join("\n");
    let new = lines[divider + 1..end].join("\n");
    if old.trim().is_empty() {
        // An empty SEARCH means "the whole file" to some models.
        let mut content = new;
        content.push('\n');
        reply.edits.push(ParsedEdit {
            path,
            change: ParsedChange::Write { content },
        });
    } else {
        reply.edits.push(ParsedEdit {
            path,
            change: ParsedChange::Replace { old, new },
        });
    }
    end + 1
}

fn is_search_marker(line: &str) -> bool {
    let t = line.trim();
    t.starts_with("<<<<") && t.trim_start_matches('<').trim() == "SEARCH"
}

fn is_divider(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 4 && t.chars().all(|c| c == '=')
}

fn is_replace_marker(line: &str) -> bool {
    let t = line.trim();
    t.starts_with(">>>>") && t.trim_start_matches('>').trim() == "REPLACE"
}

/// The info string of an opening fence (```` ``` ```` or `~~~`), if `line` is one.
fn fence_open(line: &str) -> Option<&str> {
    let t = line.trim_start();
    let fence = if t.starts_with("```") {
        '`'
    } else if t.starts_with("~~~") {
        '~'
    } else {
        return None;
    };
    Some(t.trim_start_matches(fence).trim())
}

/// Whether `line` closes the fence `open` started.
fn is_fence_close(line: &str, open: &str) -> bool {
    let fence = if open.trim_start().starts_with('~') {
        '~'
    } else {
        '`'
    };
    let t = line.trim();
    t.len() >= 3 && t.chars().all(|c| c == fence)
}

/// A program-relative path named by `line`, with markdown decoration and
/// labels stripped: `**skills/act/skill.py**`, `### tasks/x/prompt.md`,
/// `File: hyperagent.toml`, `` `a/b.py`: ``.
fn path_like(line: &str) -> Option<String> {
    let mut t = line.trim();
    for label in [
        "File:",
        "file:",
        "FILE:",
        "Path:",
        "path:",
        "PATH:",
        "Filename:",
        "filename:",
    ] {
        if let Some(rest) = t.strip_prefix(label) {
            t = rest.trim();
        }
    }
    let mut t = t
        .trim_start_matches('#')
        .trim()
        .trim_matches(|c| c == '*' || c == '`' || c == '"' || c == '\'')
        .trim_end_matches(':')
        .trim_matches(|c| c == '*' || c == '`' || c == '"' || c == '\'')
        .trim();
    // `a/b.py (whole file)`, `**a/b.md** (new)`: the note is not the path.
    if let Some((head, note)) = t.split_once(char::is_whitespace) {
        let note = note.trim();
        if note.starts_with('(') && note.ends_with(')') {
            t = head
                .trim_matches(|c| c == '*' || c == '`' || c == '"' || c == '\'')
                .trim_end_matches(':');
        }
    }
    let plausible = !t.is_empty()
        && t.len() <= 200
        && !t.contains(char::is_whitespace)
        && !t.starts_with('/')
        && !t.contains("..")
        && t.contains('.')
        && !t.ends_with('.')
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        && t.rsplit('.')
            .next()
            .is_some_and(|ext| !ext.is_empty() && ext.chars().all(|c| c.is_ascii_alphanumeric()));
    plausible.then(|| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &str, content: &str) -> ParsedEdit {
        ParsedEdit {
            path: Some(path.into()),
            change: ParsedChange::Write {
                content: content.into(),
            },
        }
    }

    fn replace(path: &str, old: &str, new: &str) -> ParsedEdit {
        ParsedEdit {
            path: Some(path.into()),
            change: ParsedChange::Replace {
                old: old.into(),
                new: new.into(),
            },
        }
    }

    #[test]
    fn a_whole_file_under_its_path() {
        let reply = parse_edits(
            "I will add a retry.\n\nskills/act/skill.py\n```python\nx = 1\nx\n```\nDone.",
        );
        assert_eq!(
            reply.edits,
            vec![write("skills/act/skill.py", "x = 1\nx\n")]
        );
        assert!(reply.problems.is_empty());
    }

    #[test]
    fn paths_in_markdown_decoration_and_in_the_fence() {
        for reply in [
            "**skills/act/skill.py**\n```python\nx\n```\n",
            "### skills/act/skill.py\n```\nx\n```\n",
            "File: `skills/act/skill.py`:\n\n```py\nx\n```\n",
            "```skills/act/skill.py\nx\n```\n",
        ] {
            assert_eq!(
                parse_edits(reply).edits,
                vec![write("skills/act/skill.py", "x\n")],
                "{reply}"
            );
        }
    }

    #[test]
    fn search_replace_blocks_bare_or_fenced() {
        let bare = "tasks/operator/prompt.md\n<<<<<<< SEARCH\nGoal: {{ goal }}\n=======\nYour goal: {{ goal }}\n>>>>>>> REPLACE\n";
        let fenced = "tasks/operator/prompt.md\n```markdown\n<<<<<<< SEARCH\nGoal: {{ goal }}\n=======\nYour goal: {{ goal }}\n>>>>>>> REPLACE\n```\n";
        for reply in [bare, fenced] {
            assert_eq!(
                parse_edits(reply).edits,
                vec![replace(
                    "tasks/operator/prompt.md",
                    "Goal: {{ goal }}",
                    "Your goal: {{ goal }}"
                )],
                "{reply}"
            );
        }
    }

    #[test]
    fn several_edits_in_one_reply_keep_their_own_files() {
        let reply = parse_edits(
            "a/one.py\n<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n>>>>>>> REPLACE\n\nb/two.md\n```\nhello\n```\n",
        );
        assert_eq!(
            reply.edits,
            vec![
                replace("a/one.py", "x = 1", "x = 2"),
                write("b/two.md", "hello\n")
            ]
        );
    }

    #[test]
    fn an_empty_search_writes_the_whole_file() {
        let reply =
            parse_edits("new/rules.md\n<<<<<<< SEARCH\n=======\n- be brief\n>>>>>>> REPLACE\n");
        assert_eq!(reply.edits, vec![write("new/rules.md", "- be brief\n")]);
    }

    #[test]
    fn a_block_without_a_path_says_so_and_broken_blocks_are_problems() {
        let reply = parse_edits("Here it is:\n```\nx\n```\n");
        assert_eq!(reply.edits.len(), 1);
        assert_eq!(reply.edits[0].path, None);

        let reply = parse_edits("a.py\n<<<<<<< SEARCH\nx\n");
        assert!(reply.edits.is_empty());
        assert_eq!(reply.problems[0].line, 2);
        assert!(reply.problems[0].message.contains("======="));

        let reply = parse_edits("a.py\n```python\nx = 1\n");
        assert!(reply.problems[0].message.contains("not closed"));
    }

    /// Found by `tests/program/fuzz.rs`: a broken block inside a fence was
    /// reported at its line within the fence's body.
    #[test]
    fn a_broken_block_inside_a_fence_is_reported_at_its_own_line() {
        let reply = parse_edits("a.py\n```\nintro\n<<<<<<< SEARCH\nx\n```\n");
        assert_eq!(reply.problems.len(), 1);
        assert_eq!(reply.problems[0].line, 4);
    }

    /// The shapes Qwen2.5-Coder-1.5B answered in (`bench meta`, 2026-12-06),
    /// none of which the first parser read.
    #[test]
    fn a_path_heading_or_a_naming_first_line_and_an_unfenced_file_are_read() {
        // The path as a heading with a note, then the file, unfenced.
        let reply = parse_edits(
            "### hyper/main.py (whole file)\n# The hyperagent.\nresult = delegate(x)\nresult\n",
        );
        assert_eq!(
            reply.edits,
            vec![write(
                "hyper/main.py",
                "# The hyperagent.\nresult = delegate(x)\nresult\n"
            )]
        );
        // The path as the fence's first line.
        let reply = parse_edits("```python\n# hyper/main.py\nx = 1\n```\n");
        assert_eq!(reply.edits, vec![write("hyper/main.py", "x = 1\n")]);
        let reply = parse_edits(
            "```markdown\n### skills/choose_action/rules.md (whole file)\n\n1. Click what the goal names.\n```\n",
        );
        assert_eq!(
            reply.edits,
            vec![write(
                "skills/choose_action/rules.md",
                "1. Click what the goal names.\n"
            )]
        );
        // Two unfenced files, each up to the next path.
        let reply = parse_edits("**a/rules.md**\n- one\n\n**b/rules.md** (new)\n- two\n");
        assert_eq!(
            reply.edits,
            vec![
                write("a/rules.md", "- one\n"),
                write("b/rules.md", "- two\n")
            ]
        );
        // Prose between a path and its fence is still commentary.
        let reply = parse_edits("a/b.py\nThis adds a log line.\n```python\nlog(1)\n```\n");
        assert_eq!(reply.edits, vec![write("a/b.py", "log(1)\n")]);
        // A fence holding only a path names the next block's file, and
        // writes nothing itself.
        let reply = parse_edits("```\nhyper/main.py\n```\n```python\nx = 1\n```\n");
        assert_eq!(reply.edits, vec![write("hyper/main.py", "x = 1\n")]);
        let reply = parse_edits("```\nskills/choose_action/rules.md\n```\n");
        assert!(reply.edits.is_empty(), "{:?}", reply.edits);
        // A comment naming another file than the fence's is content.
        let reply = parse_edits("a/b.py\n```python\n# see c/d.py\nx = 1\n```\n");
        assert_eq!(reply.edits, vec![write("a/b.py", "# see c/d.py\nx = 1\n")]);
    }

    #[test]
    fn prose_is_not_a_path() {
        for line in [
            "This is a sentence.",
            "e.g.",
            "/etc/passwd",
            "../x.py",
            "v1.",
            "hello",
            "a b.py",
        ] {
            assert_eq!(path_like(line), None, "{line}");
        }
        assert_eq!(path_like("hyperagent.toml"), Some("hyperagent.toml".into()));
    }
}
