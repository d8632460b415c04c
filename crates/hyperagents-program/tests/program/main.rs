//! Integration tests for hyperagents-program: fixture programs written into temporary
//! directories, loaded, hashed and edited through the public API.
#![allow(clippy::unwrap_used)]

mod editor;
mod fuzz;
mod hashing;
mod load;
mod support;

/// The runtime shares programs across tasks and moves editors into workers.
#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<hyperagents_program::Program>();
    send_sync::<hyperagents_program::ChildProgram>();
    send_sync::<hyperagents_program::ProgramError>();
    send_sync::<hyperagents_program::EditError>();
}
