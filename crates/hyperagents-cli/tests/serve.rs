//! `hyperagents serve` as a process: it refuses a non-loopback address
//! without a token, and on loopback answers the runs list over HTTP.

#![allow(clippy::unwrap_used)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;

use support::{bin, text};

#[test]
fn serve_refuses_other_addresses_without_a_token_and_answers_on_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .env("HYPERAGENTS_CACHE_DIR", dir.path())
        .env_remove("HYPERAGENTS_DASHBOARD_TOKEN")
        .args(["serve", "--addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("give a token"),
        "{}",
        text(&out.stderr)
    );

    let mut child = bin()
        .env("HYPERAGENTS_CACHE_DIR", dir.path())
        .env_remove("HYPERAGENTS_DASHBOARD_TOKEN")
        .args(["serve", "--addr", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let address = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let mut stream = TcpStream::connect(&address).unwrap();
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains("No evolution run in this store yet."),
        "{response}"
    );
}
