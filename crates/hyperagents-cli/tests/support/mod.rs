//! Helpers shared by the CLI's end-to-end tests: the binary isolated from
//! the developer's settings and keys (models stay in the shared cache).

#![allow(dead_code, clippy::unwrap_used)]

pub mod archive;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../..")
}

/// The binary with no provider keys, no user settings and no `RUST_LOG`.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hyperagents"));
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("XDG_CONFIG_HOME", "/nonexistent-hyperagents-test");
    cmd
}

/// Runs in `dir` with the response cache off.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    run_with(dir, args, &[])
}

/// Runs in `dir` with the response cache off and extra variables.
pub fn run_with(dir: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut cmd = bin();
    cmd.current_dir(dir).env("HYPERAGENTS_CACHE__MODE", "off");
    for (name, value) in vars {
        cmd.env(name, value);
    }
    cmd.args(args).output().unwrap()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A loopback server answering every request with one Chat Completions
/// body; it records the requests it saw.
pub fn fake_openai(answer: &str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let answer = answer.to_string();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let request = read_request(&mut stream);
            log.lock().unwrap().push(request);
            answer_chat(&mut stream, &answer);
        }
    });
    (url, seen)
}

/// Answers one OpenAI chat-completion request on `stream` with `content`,
/// then closes the connection.
pub fn answer_chat(stream: &mut std::net::TcpStream, content: &str) {
    let body = serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "fake",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12}
    })
    .to_string();
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// One HTTP request as text, head and body, read up to its `content-length`.
pub fn read_request(stream: &mut std::net::TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some(head_end) = text.find("\r\n\r\n") {
            let length = text[..head_end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                })
                .unwrap_or(0);
            if data.len() >= head_end + 4 + length {
                break;
            }
        }
    }
    String::from_utf8_lossy(&data).into_owned()
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// A file's bytes, and its decompressed bytes when it is gzip.
pub fn contents(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes.as_slice())
            .read_to_end(&mut plain)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        plain
    } else {
        bytes
    }
}
