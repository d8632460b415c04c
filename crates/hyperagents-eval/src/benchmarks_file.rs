//! `BENCHMARKS.md` is written by several bench commands; each owns one
//! section between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` markers
//! and rewrites only that, so every other byte of the file stays.

use std::path::Path;

/// Replaces section `name` of the benchmarks file at `path` with `body`, or
/// appends it; creates the file (with a title) when it is missing or empty.
pub fn write_section(path: &Path, name: &str, body: &str) -> std::io::Result<()> {
    let begin = format!("<!-- bench:{name} -->");
    let end = format!("<!-- /bench:{name} -->");
    let existing = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut text = if existing.trim().is_empty() {
        "# Benchmarks\n\nEach section is written by the command it names; rerun it to refresh.\n"
            .to_string()
    } else {
        existing
    };
    let block = format!("{begin}\n{body}{end}\n");
    match (text.find(&begin), text.find(&end)) {
        (Some(a), Some(b)) if b > a => {
            let mut stop = b + end.len();
            if text[stop..].starts_with('\n') {
                stop += 1;
            }
            text.replace_range(a..stop, &block);
        }
        _ => {
            text.push('\n');
            text.push_str(&block);
        }
    }
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_section_is_replaced_in_place_and_others_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("BENCHMARKS.md");
        write_section(&path, "a", "first a\n").expect("write a");
        write_section(&path, "b", "only b\n").expect("write b");
        write_section(&path, "a", "second a\n").expect("rewrite a");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.starts_with("# Benchmarks\n"), "{text}");
        assert!(!text.contains("first a"), "{text}");
        let a = text.find("second a").expect("a");
        let b = text.find("only b").expect("b");
        assert!(a < b, "a stays before b: {text}");
        assert_eq!(text.matches("<!-- bench:a -->").count(), 1, "{text}");
    }
}
