//! The seed program is built into the binary (`include_dir!` in
//! `src/builtin.rs`), and a macro cannot tell cargo which files it read:
//! rebuild when any file of the seed changes.

fn main() {
    println!("cargo:rerun-if-changed=../../programs/seed");
}
