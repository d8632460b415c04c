//! The meta agent's editor on a child copy: edits, diffs, kinds, and every refusal.

use std::collections::BTreeSet;

use hyperagents_program::{
    ChangeStatus, ChildProgram, DiffKind, EditError, EditLimits, EditOp, EditOutcome, FsError,
    Pattern, copy_program,
};

use crate::support::{load, seed_dir, seed_files, write_files};

/// A parent seed and an editor on a fresh copy of it.
fn child(limits: EditLimits) -> (tempfile::TempDir, tempfile::TempDir, ChildProgram) {
    let parent = seed_dir();
    let work = tempfile::tempdir().unwrap();
    let editor =
        ChildProgram::from_parent(parent.path(), &work.path().join("child"), limits).unwrap();
    (parent, work, editor)
}

#[test]
fn replace_needs_exactly_one_match() {
    let (_p, _w, mut ed) = child(EditLimits::default());
    ed.replace("tasks/qa/prompt.md", "Question:", "Q:").unwrap();
    assert_eq!(ed.read("tasks/qa/prompt.md").unwrap(), "Q: {{ goal }}\n");

    let err = ed
        .replace("tasks/web/prompt.md", "nothing like this", "x")
        .unwrap_err();
    assert!(matches!(err, EditError::NoMatch { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("not found in `tasks/web/prompt.md`")
    );

    // A snippet whose whitespace differs from the file's still matches
    // when its words occur in one place only.
    ed.replace(
        "tasks/web/prompt.md",
        "Page:   {{ observation }}",
        "Page: {{ observation }}",
    )
    .unwrap();
    assert_eq!(
        ed.read("tasks/web/prompt.md").unwrap(),
        "Goal: {{ goal }}\nPage: {{ observation }}\n"
    );
    ed.replace(
        "tasks/web/prompt.md",
        "Page: {{ observation }}",
        "Page:\n{{ observation }}",
    )
    .unwrap();

    let err = ed.replace("tasks/web/prompt.md", "{{ ", "{{").unwrap_err();
    assert!(
        matches!(err, EditError::AmbiguousMatch { count: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("occurs 2 times"), "{err}");
    assert_eq!(
        ed.read("tasks/web/prompt.md").unwrap(),
        "Goal: {{ goal }}\nPage:\n{{ observation }}\n"
    );
    assert!(matches!(
        ed.replace("tasks/web/prompt.md", "", "x"),
        Err(EditError::EmptyOld)
    ));
    assert!(matches!(
        ed.replace("tasks/nope.md", "a", "b"),
        Err(EditError::NotFound { .. })
    ));
}

#[test]
fn insert_before_a_line_and_append() {
    let (_p, _w, mut ed) = child(EditLimits::default());
    let path = "tasks/web/prompt.md";
    ed.insert(path, 1, "You are careful.").unwrap();
    ed.insert(path, 3, "---\n").unwrap();
    ed.insert(path, 6, "End.").unwrap();
    assert_eq!(
        ed.read(path).unwrap(),
        "You are careful.\nGoal: {{ goal }}\n---\nPage:\n{{ observation }}\nEnd.\n"
    );
    let err = ed.insert(path, 8, "x").unwrap_err();
    assert!(
        matches!(
            err,
            EditError::LineOutOfRange {
                line: 8,
                lines: 6,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("from 1 to 7"), "{err}");
    assert!(matches!(
        ed.insert(path, 0, "x"),
        Err(EditError::LineOutOfRange { .. })
    ));

    // Appending to a file without a final newline keeps lines apart.
    ed.write("notes.txt", "a").unwrap();
    ed.insert("notes.txt", 2, "b").unwrap();
    assert_eq!(ed.read("notes.txt").unwrap(), "a\nb\n");
}

#[test]
fn write_creates_directories_and_delete_removes_files_and_directories() {
    let (_p, _w, mut ed) = child(EditLimits::default());
    ed.write("skills/scroll/skill.py", "scroll(1)\n").unwrap();
    assert_eq!(ed.read("skills/scroll/skill.py").unwrap(), "scroll(1)\n");
    ed.write("skills/scroll/skill.py", "scroll(2)\n").unwrap();
    assert_eq!(ed.read("skills/scroll/skill.py").unwrap(), "scroll(2)\n");

    ed.delete("skills/scroll/skill.py").unwrap();
    assert!(matches!(
        ed.read("skills/scroll/skill.py"),
        Err(EditError::NotFound { .. })
    ));
    ed.delete("memory").unwrap();
    assert!(!ed.root().join("memory").exists());
    assert!(matches!(
        ed.delete("memory"),
        Err(EditError::NotFound { .. })
    ));
    assert!(matches!(
        ed.write("tasks", "x"),
        Err(EditError::IsDirectory { .. })
    ));
    // No temporary files are left behind.
    let names: Vec<_> = ed
        .list("skills")
        .unwrap()
        .into_iter()
        .map(|e| e.path.to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains(".tmp")), "{names:?}");
}

#[test]
fn read_list_and_search() {
    let (_p, _w, ed) = child(EditLimits {
        max_search_hits: 3,
        ..EditLimits::default()
    });
    let listed: Vec<_> = ed
        .list("tasks")
        .unwrap()
        .into_iter()
        .map(|e| (e.path.to_string(), e.bytes))
        .collect();
    let mut expected: Vec<_> = seed_files()
        .into_iter()
        .filter(|(p, _)| p.starts_with("tasks/"))
        .map(|(p, c)| (p.to_owned(), c.len() as u64))
        .collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(listed.len(), 4);
    assert_eq!(ed.list(".").unwrap().len(), 15);
    assert!(matches!(ed.list("nope"), Err(EditError::NotFound { .. })));
    assert!(matches!(
        ed.list("hyperagent.toml"),
        Err(EditError::NotADirectory { .. })
    ));

    let hits = ed.search(&Pattern::Literal("skill(".into())).unwrap();
    assert_eq!(
        hits.to_string(),
        "tasks/qa/policy.py:1: skill(\"answer\", text=llm(goal))\n\
         tasks/web/policy.py:2: skill(\"click\", ref=1)\n"
    );
    assert!(!hits.truncated);

    let capped = ed
        .search(&Pattern::Regex(r"\{\{ *\w+ *\}\}".into()))
        .unwrap();
    assert_eq!(capped.hits.len(), 3);
    assert!(capped.truncated);
    assert!(
        capped
            .to_string()
            .ends_with("(more matches not shown; narrow the pattern)\n")
    );

    assert!(matches!(
        ed.search(&Pattern::Regex("(".into())),
        Err(EditError::InvalidRegex(_))
    ));
}

#[test]
fn diff_against_parent_gives_unified_text_and_kinds() {
    let (parent, _w, mut ed) = child(EditLimits::default());
    assert!(ed.diff_against(parent.path()).unwrap().is_empty());

    ed.replace("tasks/qa/prompt.md", "Question:", "Q:").unwrap();
    ed.write("memory/notes.md", "generation 1\n").unwrap();
    ed.delete("meta/select.py").unwrap();
    ed.replace("hyperagent.toml", "select = \"meta/select.py\"\n", "")
        .unwrap();
    ed.write("skills/scroll/skill.py", "scroll()\n").unwrap();

    let diff = ed.diff_against(parent.path()).unwrap();
    let summary: Vec<_> = diff
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.status, f.kind))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "hyperagent.toml",
                ChangeStatus::Modified,
                DiffKind::Hierarchy
            ),
            ("memory/notes.md", ChangeStatus::Modified, DiffKind::Memory),
            ("meta/select.py", ChangeStatus::Removed, DiffKind::Meta),
            (
                "skills/scroll/skill.py",
                ChangeStatus::Added,
                DiffKind::Code
            ),
            (
                "tasks/qa/prompt.md",
                ChangeStatus::Modified,
                DiffKind::Prompt
            ),
        ]
    );
    assert_eq!(
        diff.kinds(),
        BTreeSet::from([
            DiffKind::Hierarchy,
            DiffKind::Meta,
            DiffKind::Prompt,
            DiffKind::Code,
            DiffKind::Memory
        ])
    );
    let text = diff.unified();
    assert!(text.contains(
        "--- a/tasks/qa/prompt.md\n+++ b/tasks/qa/prompt.md\n@@ -1 +1 @@\n-Question: {{ goal }}\n+Q: {{ goal }}\n"
    ), "{text}");
    assert!(
        text.contains("--- a/meta/select.py\n+++ /dev/null\n@@ -1 +0,0 @@\n-parent = best()\n"),
        "{text}"
    );
    assert!(
        text.contains("--- /dev/null\n+++ b/skills/scroll/skill.py\n@@ -0,0 +1 @@\n+scroll()\n"),
        "{text}"
    );
    assert!(
        text.contains(" model = \"meta\"\n") && text.contains("-select = \"meta/select.py\"\n"),
        "{text}"
    );
    // The edited child is still a valid program.
    load(ed.root()).unwrap();
}

#[test]
fn escaping_paths_are_refused_and_logged() {
    let (_p, work, mut ed) = child(EditLimits::default());
    write_files(work.path(), &[("x", "outside")]);
    for bad in ["../x", "/etc/passwd", "tasks/../../x", "", "a\\b"] {
        assert!(
            matches!(ed.write(bad, "pwned"), Err(EditError::InvalidPath(_))),
            "{bad}"
        );
        assert!(
            matches!(ed.read(bad), Err(EditError::InvalidPath(_))),
            "{bad}"
        );
        assert!(
            matches!(ed.delete(bad), Err(EditError::InvalidPath(_))),
            "{bad}"
        );
    }
    assert!(matches!(ed.list("../"), Err(EditError::InvalidPath(_))));
    assert_eq!(
        std::fs::read_to_string(work.path().join("x")).unwrap(),
        "outside"
    );
    let err = ed.write("/etc/passwd", "x").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid path: path `/etc/passwd` is absolute; paths are relative to the program root"
    );
    assert!(
        ed.log()
            .iter()
            .all(|r| matches!(r.outcome, EditOutcome::Refused(_)))
    );
    // Reads are not logged: five bad paths, each written and deleted, plus one more write.
    assert_eq!(ed.log().len(), 11);
}

#[test]
fn symlinks_pointing_out_are_refused() {
    let (_p, _w, mut ed) = child(EditLimits::default());
    let outside = tempfile::tempdir().unwrap();
    write_files(outside.path(), &[("secret.txt", "secret")]);
    std::os::unix::fs::symlink(outside.path(), ed.root().join("tasks/out")).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.txt"),
        ed.root().join("leak.txt"),
    )
    .unwrap();

    let through_dir = ed.write("tasks/out/secret.txt", "pwned").unwrap_err();
    assert!(
        matches!(&through_dir, EditError::Fs(FsError::Symlink { path }) if path == "tasks/out"),
        "{through_dir}"
    );
    assert!(matches!(
        ed.write("leak.txt", "pwned"),
        Err(EditError::Fs(FsError::Symlink { .. }))
    ));
    assert!(matches!(
        ed.read("leak.txt"),
        Err(EditError::Fs(FsError::Symlink { .. }))
    ));
    assert!(matches!(
        ed.read("tasks/out/secret.txt"),
        Err(EditError::Fs(FsError::Symlink { .. }))
    ));
    assert!(matches!(
        ed.delete("tasks/out"),
        Err(EditError::Fs(FsError::Symlink { .. }))
    ));
    assert!(matches!(
        ed.list("tasks/out"),
        Err(EditError::Fs(FsError::Symlink { .. }))
    ));
    assert!(matches!(
        ed.search(&Pattern::Literal("secret".into())),
        Err(EditError::Fs(FsError::Symlink { .. }))
    ));
    assert_eq!(
        std::fs::read_to_string(outside.path().join("secret.txt")).unwrap(),
        "secret"
    );
}

#[test]
fn size_caps_are_checked_before_writing() {
    let parent = seed_dir();
    let total: u64 = ChildProgram::open(parent.path(), EditLimits::default())
        .unwrap()
        .list(".")
        .unwrap()
        .iter()
        .map(|e| e.bytes)
        .sum();
    let (_p, _w, mut ed) = child(EditLimits {
        max_file_bytes: 100,
        max_total_bytes: total + 150,
        max_files: 17,
        ..EditLimits::default()
    });

    let err = ed.write("big.md", &"x".repeat(101)).unwrap_err();
    assert!(
        matches!(
            err,
            EditError::FileTooLarge {
                bytes: 101,
                limit: 100,
                ..
            }
        ),
        "{err}"
    );
    assert!(!ed.root().join("big.md").exists());
    ed.write("ok.md", &format!("a{}", "x".repeat(99))).unwrap();

    let err = ed.replace("ok.md", "a", &"y".repeat(11)).unwrap_err();
    assert!(
        matches!(err, EditError::FileTooLarge { bytes: 110, .. }),
        "{err}"
    );

    let err = ed.write("more.md", &"x".repeat(51)).unwrap_err();
    assert!(matches!(err, EditError::TotalTooLarge { .. }), "{err}");
    assert!(!ed.root().join("more.md").exists());
    ed.write("more.md", &"x".repeat(50)).unwrap(); // exactly at the total cap

    let err = ed.write("third.md", "").unwrap_err();
    assert!(
        matches!(
            err,
            EditError::TooManyFiles {
                files: 18,
                limit: 17
            }
        ),
        "{err}"
    );
    // Overwriting an existing file adds no file, and shrinking is always allowed.
    ed.write("more.md", "short").unwrap();
    ed.write("third.md", "").unwrap_err(); // still 17 files
    ed.delete("ok.md").unwrap();
    ed.write("third.md", "").unwrap();
}

#[test]
fn edit_count_cap_counts_refused_calls_too() {
    let (_p, _w, mut ed) = child(EditLimits {
        max_edits: 3,
        ..EditLimits::default()
    });
    ed.write("a.md", "a").unwrap();
    ed.replace("a.md", "zzz", "b").unwrap_err(); // refused, still counted
    ed.delete("a.md").unwrap();
    let err = ed.write("b.md", "b").unwrap_err();
    assert!(
        matches!(err, EditError::EditLimitReached { limit: 3 }),
        "{err}"
    );
    assert!(!ed.root().join("b.md").exists());
    assert_eq!(ed.edits_used(), 3);
    // Reads are free.
    ed.read("hyperagent.toml").unwrap();

    let ops: Vec<_> = ed.log().iter().map(|r| (r.op, r.path.as_str())).collect();
    assert_eq!(
        ops,
        [
            (EditOp::Write, "a.md"),
            (EditOp::Replace, "a.md"),
            (EditOp::Delete, "a.md"),
            (EditOp::Write, "b.md"),
        ]
    );
    assert_eq!(
        ed.log()[0].outcome,
        EditOutcome::Applied {
            bytes_before: None,
            bytes_after: Some(1)
        }
    );
    assert!(matches!(&ed.log()[1].outcome, EditOutcome::Refused(m) if m.contains("not found")));
    assert_eq!(
        ed.log()[2].outcome,
        EditOutcome::Applied {
            bytes_before: Some(1),
            bytes_after: None
        }
    );
}

#[test]
fn copy_program_copies_everything_and_refuses_existing_targets() {
    let parent = seed_dir();
    std::fs::create_dir(parent.path().join("empty")).unwrap();
    let work = tempfile::tempdir().unwrap();
    let dst = work.path().join("nested/child");
    copy_program(parent.path(), &dst).unwrap();
    assert_eq!(
        hyperagents_program::content_hash_dir(parent.path()).unwrap(),
        hyperagents_program::content_hash_dir(&dst).unwrap()
    );
    assert!(dst.join("empty").is_dir());
    assert!(matches!(
        copy_program(parent.path(), &dst),
        Err(FsError::AlreadyExists { .. })
    ));
}
