//! Turning an attachment into text for a model: plain text as is, CSV/TSV and spreadsheets
//! (xlsx, xls, ods, through calamine) as tables, JSON pretty-printed, PDF and Word (docx: its
//! `word/document.xml` read with quick-xml) as their text; every rendering capped in size.
//!
//! PDF text comes from `pdf-extract`, which maps font encodings (standard, differences, ToUnicode
//! maps) to Unicode better than lopdf's own `extract_text`, but panics on some malformed files:
//! extraction runs under `catch_unwind` and a panic becomes an ordinary error.

use std::path::Path;

/// Size caps for what tools return to agents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolLimits {
    /// Most characters one tool result holds.
    pub max_chars: usize,
    /// Most CSV data rows shown.
    pub max_csv_rows: usize,
    /// Most characters per CSV cell.
    pub max_cell_chars: usize,
    /// Largest file read at all, bytes.
    pub max_file_bytes: u64,
    /// Passages `search_documents` returns.
    pub search_results: usize,
    /// Results asked of the web search provider.
    pub web_results: usize,
}

impl Default for ToolLimits {
    fn default() -> Self {
        Self {
            max_chars: 20_000,
            max_csv_rows: 50,
            max_cell_chars: 80,
            max_file_bytes: 64 << 20,
            search_results: 5,
            web_results: 5,
        }
    }
}

/// What kind of file a name denotes, by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Csv,
    Tsv,
    Json,
    JsonLines,
    Pdf,
    /// xlsx, xlsm, xls, ods.
    Spreadsheet,
    /// docx.
    Word,
    /// Known binary formats this reader does not convert (images, audio, other office files,
    /// archives).
    Unsupported,
    /// Anything else: shown if it is UTF-8 text.
    Text,
}

pub(crate) fn kind_of(path: &Path) -> FileKind {
    let extension = path
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "csv" => FileKind::Csv,
        "tsv" | "tab" => FileKind::Tsv,
        "json" | "jsonld" => FileKind::Json,
        "jsonl" | "ndjson" => FileKind::JsonLines,
        "pdf" => FileKind::Pdf,
        "xlsx" | "xlsm" | "xls" | "ods" => FileKind::Spreadsheet,
        "docx" => FileKind::Word,
        "png" | "jpg" | "jpeg" | "gif" | "bmp" | "webp" | "tif" | "tiff" | "mp3" | "wav"
        | "m4a" | "flac" | "ogg" | "mp4" | "mov" | "avi" | "doc" | "pptx" | "ppt" | "zip"
        | "gz" | "tar" | "7z" => FileKind::Unsupported,
        _ => FileKind::Text,
    }
}

/// Renders the file at `path` (already confined to the episode folder) for the `read_file`
/// tool; `shown` is the name used in messages.
pub(crate) fn render(path: &Path, shown: &str, limits: &ToolLimits) -> Result<String, String> {
    if path.is_dir() {
        return Err(format!("`{shown}` is a folder, not a file"));
    }
    let kind = kind_of(path);
    let bytes = read_capped(path, shown, limits)?;
    let body = match kind {
        FileKind::Unsupported => {
            return Err(format!(
                "`{shown}` ({} bytes) is a binary format read_file cannot convert to text",
                bytes.len()
            ));
        }
        FileKind::Pdf => pdf_text(&bytes).map_err(|e| format!("`{shown}`: {e}"))?,
        FileKind::Spreadsheet => {
            spreadsheet_text(&bytes, limits).map_err(|e| format!("`{shown}`: {e}"))?
        }
        FileKind::Word => docx_text(&bytes, limits).map_err(|e| format!("`{shown}`: {e}"))?,
        FileKind::Csv => csv_table(&utf8(&bytes, shown)?, b',', limits),
        FileKind::Tsv => csv_table(&utf8(&bytes, shown)?, b'\t', limits),
        FileKind::Json => pretty_json(&utf8(&bytes, shown)?),
        FileKind::JsonLines => pretty_json_lines(&utf8(&bytes, shown)?),
        FileKind::Text => utf8(&bytes, shown)?,
    };
    Ok(truncate(&body, limits.max_chars))
}

/// The file's text without table or JSON rendering (PDF: extracted text), for scripts and the
/// document index.
pub(crate) fn raw_text(path: &Path, shown: &str, limits: &ToolLimits) -> Result<String, String> {
    let bytes = read_capped(path, shown, limits)?;
    match kind_of(path) {
        FileKind::Pdf => pdf_text(&bytes).map_err(|e| format!("`{shown}`: {e}")),
        FileKind::Spreadsheet => {
            spreadsheet_text(&bytes, limits).map_err(|e| format!("`{shown}`: {e}"))
        }
        FileKind::Word => docx_text(&bytes, limits).map_err(|e| format!("`{shown}`: {e}")),
        FileKind::Unsupported => Err(format!("`{shown}` is a binary format, not text")),
        _ => utf8(&bytes, shown),
    }
}

/// The text of a PDF, pages separated by `--- page N ---` lines.
pub fn pdf_text(bytes: &[u8]) -> Result<String, String> {
    let pages = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes))
        .map_err(|_| "the PDF could not be parsed (the extractor failed on it)".to_string())?
        .map_err(|e| format!("the PDF could not be read: {e}"))?;
    let mut text = String::new();
    for (i, page) in pages.iter().enumerate() {
        if pages.len() > 1 {
            text.push_str(&format!("--- page {} ---\n", i + 1));
        }
        text.push_str(page.trim());
        text.push('\n');
    }
    if text.trim().is_empty() {
        return Err("the PDF holds no extractable text (it may be scanned images)".into());
    }
    Ok(text)
}

/// Cuts `text` to `max_chars` characters, saying how much was left out.
pub(crate) fn truncate(text: &str, max_chars: usize) -> String {
    let total = text.chars().count();
    if total <= max_chars {
        return text.to_string();
    }
    let kept: String = text.chars().take(max_chars).collect();
    format!(
        "{kept}\n[… truncated: {} more characters]",
        total - max_chars
    )
}

fn read_capped(path: &Path, shown: &str, limits: &ToolLimits) -> Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot read `{shown}`: {e}"))?
        .len();
    if size > limits.max_file_bytes {
        return Err(format!(
            "`{shown}` is {size} bytes; files over {} bytes are not read",
            limits.max_file_bytes
        ));
    }
    std::fs::read(path).map_err(|e| format!("cannot read `{shown}`: {e}"))
}

fn utf8(bytes: &[u8], shown: &str) -> Result<String, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| format!("`{shown}` is not UTF-8 text ({} bytes)", bytes.len()))?;
    if text.contains('\0') {
        return Err(format!("`{shown}` is binary data ({} bytes)", bytes.len()));
    }
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_string())
}

/// A pipe table: the first row as header, at most `max_csv_rows` data rows, cells capped.
fn csv_table(text: &str, delimiter: u8, limits: &ToolLimits) -> String {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut total_rows = 0usize;
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            // A malformed file is still worth showing: as plain text, with the reason.
            Err(e) => return format!("(not valid CSV: {e}; shown as text)\n{text}"),
        };
        total_rows += 1;
        if rows.len() <= limits.max_csv_rows {
            rows.push(
                record
                    .iter()
                    .map(|cell| cell_text(cell, limits.max_cell_chars))
                    .collect(),
            );
        }
    }
    if rows.is_empty() {
        return "(empty CSV file)".into();
    }
    table(&rows, total_rows)
}

/// `rows` (the first the header, cells already capped) as a pipe table; `total_rows` counts
/// the header and every row of the source, shown or not.
fn table(rows: &[Vec<String>], total_rows: usize) -> String {
    let Some(header) = rows.first() else {
        return "(no rows)".into();
    };
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let data_rows = total_rows.saturating_sub(1);
    let mut out = format!("{data_rows} rows × {columns} columns\n");
    let line = |cells: &[String]| {
        let mut padded: Vec<&str> = cells.iter().map(String::as_str).collect();
        padded.resize(columns, "");
        format!("| {} |\n", padded.join(" | "))
    };
    out.push_str(&line(header));
    out.push_str(&format!("|{}\n", " --- |".repeat(columns)));
    for row in rows.iter().skip(1) {
        out.push_str(&line(row));
    }
    let shown = rows.len().saturating_sub(1);
    if shown < data_rows {
        out.push_str(&format!(
            "[… showing {shown} of {data_rows} rows; use the python tool to compute over all of them]\n"
        ));
    }
    out
}

/// Every sheet of a spreadsheet (xlsx, xlsm, xls, ods) as a pipe table under its name.
pub fn spreadsheet_text(bytes: &[u8], limits: &ToolLimits) -> Result<String, String> {
    use calamine::Reader;
    let mut workbook = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes))
        .map_err(|e| format!("the spreadsheet could not be read: {e}"))?;
    let mut out = String::new();
    for name in workbook.sheet_names() {
        let range = workbook
            .worksheet_range(&name)
            .map_err(|e| format!("sheet `{name}` could not be read: {e}"))?;
        let total_rows = range.height();
        let rows: Vec<Vec<String>> = range
            .rows()
            .take(limits.max_csv_rows + 1)
            .map(|row| {
                row.iter()
                    .map(|cell| cell_text(&cell.to_string(), limits.max_cell_chars))
                    .collect()
            })
            .collect();
        out.push_str(&format!("--- sheet {name} ---\n"));
        out.push_str(&table(&rows, total_rows));
    }
    if out.is_empty() {
        return Err("the spreadsheet has no sheets".into());
    }
    Ok(out)
}

/// The text of a Word document (docx): its paragraphs, one per line. The document part is read
/// at most `max_file_bytes` decompressed (a zip bomb stops there).
pub fn docx_text(bytes: &[u8], limits: &ToolLimits) -> Result<String, String> {
    use std::io::Read;

    use quick_xml::events::Event;
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("the document is not a readable docx (zip): {e}"))?;
    let mut xml = Vec::new();
    archive
        .by_name("word/document.xml")
        .map_err(|e| format!("the docx has no word/document.xml: {e}"))?
        .take(limits.max_file_bytes)
        .read_to_end(&mut xml)
        .map_err(|e| format!("the docx could not be decompressed: {e}"))?;
    let mut reader = quick_xml::Reader::from_reader(xml.as_slice());
    let mut text = String::new();
    let mut in_text = false;
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) if e.name().into_inner() == "w:t" => in_text = true,
            Ok(Event::End(e)) => match e.name().into_inner() {
                "w:t" => in_text = false,
                "w:p" => text.push('\n'),
                _ => {}
            },
            Ok(Event::Empty(e)) => match e.name().into_inner() {
                "w:tab" => text.push('\t'),
                "w:br" => text.push('\n'),
                _ => {}
            },
            Ok(Event::Text(t)) if in_text => text.push_str(t.as_ref()),
            Ok(Event::GeneralRef(r)) if in_text => {
                // Character references and the five XML entities; nothing else is defined.
                if let Ok(Some(c)) = r.resolve_char_ref() {
                    text.push(c);
                } else {
                    let name: &str = r.as_ref();
                    text.push_str(match name {
                        "amp" => "&",
                        "lt" => "<",
                        "gt" => ">",
                        "quot" => "\"",
                        "apos" => "'",
                        _ => "",
                    });
                }
            }
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "the docx's XML is malformed at byte {}: {e}",
                    reader.buffer_position()
                ));
            }
        }
        buf.clear();
    }
    if text.trim().is_empty() {
        return Err("the docx holds no text".into());
    }
    Ok(text)
}

fn cell_text(cell: &str, max_chars: usize) -> String {
    // Cut first, then escape, so an escape is never split.
    let flat = cell.replace(['\n', '\r'], " ");
    let cut = if flat.chars().count() > max_chars {
        let kept: String = flat.chars().take(max_chars).collect();
        format!("{kept}…")
    } else {
        flat
    };
    cut.replace('|', "\\|")
}

fn pretty_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_string()),
        Err(e) => format!("(not valid JSON: {e}; shown as text)\n{text}"),
    }
}

fn pretty_json_lines(text: &str) -> String {
    let mut out = String::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(value) => out.push_str(
                &serde_json::to_string_pretty(&value).unwrap_or_else(|_| line.to_string()),
            ),
            Err(e) => out.push_str(&format!("(line {}: not valid JSON: {e}) {line}", i + 1)),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_renders_as_a_capped_table() {
        let limits = ToolLimits {
            max_csv_rows: 2,
            max_cell_chars: 5,
            ..ToolLimits::default()
        };
        let table = csv_table(
            "name,score\n\"Smith, J\",10\nLee|Ann,7\nlongname123,3\n",
            b',',
            &limits,
        );
        assert!(table.starts_with("3 rows × 2 columns\n"), "{table}");
        assert!(table.contains("| name | score |"), "{table}");
        assert!(table.contains("| Smith… | 10 |"), "{table}");
        assert!(table.contains("| Lee\\|A… | 7 |"), "{table}");
        assert!(!table.contains("longn"), "{table}");
        assert!(table.contains("showing 2 of 3 rows"), "{table}");
    }

    #[test]
    fn ragged_and_broken_csv_still_shows() {
        let limits = ToolLimits::default();
        let table = csv_table("a,b,c\n1\n", b',', &limits);
        assert!(table.contains("| 1 |  |  |"), "{table}");
        assert_eq!(csv_table("", b',', &limits), "(empty CSV file)");
    }

    #[test]
    fn json_is_pretty_or_explained() {
        assert_eq!(
            pretty_json(r#"{"a":[1,2]}"#),
            "{\n  \"a\": [\n    1,\n    2\n  ]\n}"
        );
        assert!(pretty_json("{oops").starts_with("(not valid JSON"));
        let lines = pretty_json_lines("{\"a\":1}\n\nnope\n");
        assert!(lines.contains("\"a\": 1"), "{lines}");
        assert!(lines.contains("line 3: not valid JSON"), "{lines}");
    }

    #[test]
    fn truncation_counts_characters_and_says_so() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(
            truncate("héllo wörld", 5),
            "héllo\n[… truncated: 6 more characters]"
        );
    }

    #[test]
    fn garbage_pdfs_are_errors_not_panics() {
        assert!(pdf_text(b"%PDF-1.4\nnot really").is_err());
        assert!(pdf_text(b"").is_err());
    }
}
