//! Integration tests, one binary: the GGUF reader on synthetic and real
//! files, and pulls of synthetic multi-part models through real pip.

mod fuzz;
mod gguf;
mod pull;
mod real_models;
mod support;
