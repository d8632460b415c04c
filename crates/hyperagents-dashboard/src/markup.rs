//! Page markup: the frame every page has, escaping, links, diffs, charts
//! and the responses shared by the routes.

use super::*;

/// How often a running run's page reloads itself, in seconds.
pub(crate) const RELOAD_SECS: u32 = 15;

/// `text` escaped for HTML text and quoted attribute values (the report
/// crate's markup escape: `&`, `<`, `>`, both quotes, and characters no
/// markup may carry).
pub fn html(text: &str) -> String {
    hyperagents_report::escape_markup(text)
}

/// A path segment for a link: ids are checked before they are used, but a
/// link is still percent-encoded.
pub(crate) fn segment(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An id that may name a file under a run directory: letters, digits,
/// `-`, `_`, `.`, not starting with a dot.
pub(crate) fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(crate) fn page(title: &str, body: &str, reload: bool) -> Response {
    let refresh = if reload {
        format!("<meta http-equiv=\"refresh\" content=\"{RELOAD_SECS}\">")
    } else {
        String::new()
    };
    let text = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">{refresh}\
         <title>{} · hyperagents</title><style>{STYLE}</style></head><body>\
         <nav><a href=\"/\">runs</a></nav>{body}</body></html>",
        html(title)
    );
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], text).into_response();
    secure(response.headers_mut());
    response
}

pub(crate) fn secure(headers: &mut HeaderMap) {
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        // `no-referrer` makes Chromium send `Origin: null` with a form post,
        // which the same-origin check must refuse (found by the browser test).
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
}

pub(crate) const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em;max-width:75em}\
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:.2em .5em;\
text-align:left}pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:40em}\
table.versus td{vertical-align:top;width:50%}.add{color:#060}.del{color:#a00}.svg svg{max-width:100%;height:auto}nav{margin-bottom:1em}\
ul.tree,ul.tree ul{list-style:none;padding-left:1.2em}summary{cursor:pointer}";

pub(crate) fn not_found(what: &str) -> Response {
    let mut response = page(
        "not found",
        &format!("<h1>Not found</h1><p>{}</p>", html(what)),
        false,
    );
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}

pub(crate) fn failure(error: impl std::fmt::Display) -> Response {
    tracing::warn!(%error, "dashboard request failed");
    let mut response = page(
        "error",
        &format!("<h1>Error</h1><p>{}</p>", html(&error.to_string())),
        false,
    );
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response
}

pub(crate) fn percent(rate: Option<f64>) -> String {
    rate.map_or_else(|| "–".to_string(), |r| format!("{:.1}%", r * 100.0))
}

pub(crate) fn clip(text: &str, chars: usize) -> String {
    match text.char_indices().nth(chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

pub(crate) fn refused(why: &str) -> Response {
    let mut response = page(
        "refused",
        &format!("<h1>Refused</h1><p>{}</p>", html(why)),
        false,
    );
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

pub(crate) fn see_other(to: &str) -> Response {
    let mut response = (StatusCode::SEE_OTHER, "").into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    secure(response.headers_mut());
    response
}

/// A unified diff as escaped lines, additions and removals marked.
pub(crate) fn diff_lines(diff: &str) -> String {
    let mut out = String::new();
    for line in diff.lines() {
        let class = if line.starts_with('+') && !line.starts_with("+++") {
            " class=\"add\""
        } else if line.starts_with('-') && !line.starts_with("---") {
            " class=\"del\""
        } else {
            ""
        };
        let _ = writeln!(out, "<span{class}>{}</span>", html(line));
    }
    out
}

/// Charts as images, each under its name. The charts escape every text
/// they hold (the report crate's own guarantee), and as images they are not
/// markup in the page.
pub(crate) fn charts_html(
    charts: Result<Vec<(String, String)>, hyperagents_report::ReportError>,
) -> String {
    let mut out = String::new();
    match charts {
        Ok(charts) => {
            for (name, svg) in charts {
                let _ = write!(
                    out,
                    "<h3>{}</h3><p class=\"svg\"><img alt=\"{}\" src=\"data:image/svg+xml;base64,{}\"></p>",
                    html(name.trim_end_matches(".svg")),
                    html(&name),
                    base64(svg.as_bytes()),
                );
            }
        }
        Err(error) => {
            let _ = write!(
                out,
                "<p>charts unavailable: {}</p>",
                html(&error.to_string())
            );
        }
    }
    out
}

pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
