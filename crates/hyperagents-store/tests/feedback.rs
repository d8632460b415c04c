//! The feedback file: ratings and preferences stored with rater and time,
//! a repeat kept once, bad input refused, another database refused.

#![allow(clippy::unwrap_used)]

mod common;

use hyperagents_store::{EpisodePreference, EpisodeRating, Feedback, FeedbackStore, StoreError};

fn rating(run: &str, good: bool, at_ms: i64) -> Feedback {
    Feedback::Rating(EpisodeRating {
        run: run.into(),
        node: "g1c0".into(),
        stage: "full".into(),
        task: "click-button".into(),
        seed: 3,
        good,
        comment: "clicked <the> wrong \"button\"".into(),
        rater: "ana".into(),
        at_ms,
    })
}

#[test]
fn ratings_and_preferences_are_kept_once_and_listed_by_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feedback.sqlite");
    let store = FeedbackStore::open(&path).unwrap();
    assert!(store.add(&rating("r1", false, 10)).unwrap());
    assert!(!store.add(&rating("r1", false, 10)).unwrap(), "a repeat");
    assert!(store.add(&rating("r2", true, 11)).unwrap());
    let preference = Feedback::Preference(EpisodePreference {
        run: "r1".into(),
        stage: "full".into(),
        task: "click-button".into(),
        seed: 3,
        a: "g1c0".into(),
        b: "g1c1".into(),
        preferred: "g1c1".into(),
        comment: String::new(),
        rater: "ben".into(),
        at_ms: 12,
    });
    assert!(store.add(&preference).unwrap());
    let r1: Vec<Feedback> = store
        .list(Some("r1"))
        .unwrap()
        .into_iter()
        .map(|r| r.feedback)
        .collect();
    assert_eq!(r1, vec![rating("r1", false, 10), preference.clone()]);
    assert_eq!(store.list(None).unwrap().len(), 3);
    // Reopened, the same.
    drop(store);
    let store = FeedbackStore::open(&path).unwrap();
    assert_eq!(store.list(None).unwrap().len(), 3);

    // Bad input is refused with what is wrong.
    let mut same = preference.clone();
    if let Feedback::Preference(p) = &mut same {
        p.b = "g1c0".into();
        p.preferred = "g1c0".into();
    }
    assert!(
        store
            .add(&same)
            .unwrap_err()
            .to_string()
            .contains("two different nodes")
    );
    let mut nobody = rating("r1", true, 13);
    if let Feedback::Rating(r) = &mut nobody {
        r.rater = " ".into();
    }
    assert!(
        store
            .add(&nobody)
            .unwrap_err()
            .to_string()
            .contains("rater")
    );

    // Another SQLite file is not taken for a feedback file.
    let other = dir.path().join("other.sqlite");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    assert!(matches!(
        FeedbackStore::open(&other),
        Err(StoreError::NotAStore { .. })
    ));
}

#[test]
fn many_openers_of_a_new_file_at_once_all_get_it() {
    // Processes that start together (two `evolve`s on one store) each open
    // the feedback file beside it; the first creates it, none may fail.
    common::all_open_at_once("feedback.sqlite", |path| {
        FeedbackStore::open(path).map(|_| ())
    });
}
