//! Content and episode hashes over real directories.

use hyperagents_program::{FsError, content_hash_dir, episode_hash_dir};

use crate::support::{load, seed_dir, seed_files, write_files};

#[test]
fn hash_is_stable_across_file_creation_order() {
    let files = seed_files();
    let forward = tempfile::tempdir().unwrap();
    write_files(forward.path(), &files);
    let backward = tempfile::tempdir().unwrap();
    let reversed: Vec<_> = files.iter().rev().cloned().collect();
    write_files(backward.path(), &reversed);
    let a = content_hash_dir(forward.path()).unwrap();
    assert_eq!(a, content_hash_dir(backward.path()).unwrap());
    // The loaded program agrees with the free function.
    assert_eq!(load(forward.path()).unwrap().content_hash(), a);
    assert_eq!(
        load(forward.path()).unwrap().episode_hash(),
        episode_hash_dir(forward.path()).unwrap()
    );
}

#[test]
fn hash_changes_when_any_byte_of_any_file_changes() {
    let dir = seed_dir();
    let original = content_hash_dir(dir.path()).unwrap();
    for (path, content) in seed_files() {
        let host = dir.path().join(path);
        let mut bytes = content.clone().into_bytes();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&host, &bytes).unwrap();
        assert_ne!(content_hash_dir(dir.path()).unwrap(), original, "{path}");
        std::fs::write(&host, &content).unwrap();
        assert_eq!(content_hash_dir(dir.path()).unwrap(), original, "{path}");
    }
}

#[test]
fn hash_changes_on_rename_and_on_added_empty_file_but_not_on_empty_dirs() {
    let dir = seed_dir();
    let original = content_hash_dir(dir.path()).unwrap();
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    assert_eq!(content_hash_dir(dir.path()).unwrap(), original);
    std::fs::write(dir.path().join("empty/x"), "").unwrap();
    assert_ne!(content_hash_dir(dir.path()).unwrap(), original);
    std::fs::remove_file(dir.path().join("empty/x")).unwrap();
    std::fs::rename(
        dir.path().join("memory/notes.md"),
        dir.path().join("memory/notes2.md"),
    )
    .unwrap();
    assert_ne!(content_hash_dir(dir.path()).unwrap(), original);
}

#[test]
fn episode_hash_ignores_meta_and_memory_only() {
    let dir = seed_dir();
    let content = content_hash_dir(dir.path()).unwrap();
    let episode = episode_hash_dir(dir.path()).unwrap();
    assert_ne!(content, episode);

    write_files(
        dir.path(),
        &[
            ("meta/prompt.md", "a different meta prompt {{ failures }}\n"),
            ("memory/notes.md", "generation 1: tried a shorter prompt\n"),
            ("memory/new.md", "more\n"),
        ],
    );
    assert_ne!(content_hash_dir(dir.path()).unwrap(), content);
    assert_eq!(episode_hash_dir(dir.path()).unwrap(), episode);

    write_files(dir.path(), &[("tasks/web/prompt.md", "Goal: {{ goal }}\n")]);
    assert_ne!(episode_hash_dir(dir.path()).unwrap(), episode);
}

#[test]
fn hashing_refuses_symlinks() {
    let dir = seed_dir();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("memory/passwd")).unwrap();
    assert!(matches!(
        content_hash_dir(dir.path()),
        Err(FsError::Symlink { path }) if path == "memory/passwd"
    ));
    assert!(episode_hash_dir(dir.path()).is_err());
}
