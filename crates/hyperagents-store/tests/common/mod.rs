//! Shared by the store's test files.

use std::fmt::Debug;
use std::path::Path;

/// Eight threads open one new file named `file` at the same moment, five
/// times over: each must get it (the first creates it).
pub fn all_open_at_once<E: Debug + Send + 'static>(file: &str, open: fn(&Path) -> Result<(), E>) {
    for round in 0..5 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(file);
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let openers: Vec<_> = (0..8)
            .map(|_| {
                let path = path.clone();
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    open(&path)
                })
            })
            .collect();
        for opener in openers {
            let opened = opener.join().expect("thread ends");
            assert!(opened.is_ok(), "round {round}: {opened:?}");
        }
    }
}
