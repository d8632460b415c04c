//! Escaping of untrusted text (node ids, run ids, validation errors, diffs)
//! for the two output languages: XML (SVG) and Markdown.
//!
//! Node ids and error messages are written by agents or by whoever made the
//! store, so nothing from the store reaches a file unescaped: one stray `<`
//! would break an SVG, one `|` a Markdown table.

/// `text` as XML character data or an attribute value (quotes escaped too),
/// with characters XML 1.0 cannot carry at all replaced by U+FFFD. Safe as
/// HTML text and quoted attribute values too (the dashboard's pages).
pub fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if allowed_in_xml(c) => out.push(c),
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

/// `text` with what XML cannot carry (controls, U+FFFE/U+FFFF) and line
/// breaks replaced, for libraries (plotters) that escape markup characters
/// themselves but pass everything else through.
pub(crate) fn plain_label(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || !allowed_in_xml(c) {
                ' '
            } else {
                c
            }
        })
        .collect()
}

/// `text` as inline Markdown (a paragraph or a table cell): Markdown's
/// punctuation backslash-escaped (CommonMark lets any ASCII punctuation be),
/// line breaks and controls made spaces so a cell stays on its row, and at
/// most `max_chars` characters (an ellipsis says when it was cut).
pub(crate) fn markdown(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len());
    for (count, c) in text.chars().enumerate() {
        if count == max_chars {
            out.push('…');
            break;
        }
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '&' | '~' | '#' | '!' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A fence for a Markdown code block holding `content`: more backticks than
/// the longest run inside it, so the content cannot close the block.
pub(crate) fn code_fence(content: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in content.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    "`".repeat((longest + 1).max(3))
}

/// `content` for a Markdown code block: controls other than tab and line
/// breaks removed (they would reach a terminal or a renderer raw).
pub(crate) fn code_block_text(content: &str) -> String {
    content
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// A path component from the store (a node id) that may safely name a
/// directory under the run directory: no separators, not `.` or `..`.
pub(crate) fn is_safe_component(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !name.chars().any(char::is_control)
}

fn allowed_in_xml(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r')
        || ('\u{20}'..='\u{D7FF}').contains(&c)
        || ('\u{E000}'..='\u{FFFD}').contains(&c)
        || c >= '\u{10000}'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_escapes_markup_and_replaces_what_xml_cannot_hold() {
        assert_eq!(
            xml(r#"<g1c0 a="1" b='2'> & </svg>"#),
            "&lt;g1c0 a=&quot;1&quot; b=&apos;2&apos;&gt; &amp; &lt;/svg&gt;"
        );
        assert_eq!(xml("a\u{0}b\u{1b}c\u{FFFF}"), "a\u{FFFD}b\u{FFFD}c\u{FFFD}");
        assert_eq!(xml("tab\tnl\n é 🦀"), "tab\tnl\n é 🦀");
    }

    #[test]
    fn plain_labels_lose_controls_and_line_breaks() {
        assert_eq!(plain_label("run\n<1>\u{7}"), "run <1> ");
    }

    #[test]
    fn markdown_cells_cannot_break_tables_or_inject_markup() {
        assert_eq!(
            markdown("a|b\nc <img src=x> *d* [l](u) `x` \\", 100),
            r"a\|b c \<img src=x\> \*d\* \[l\](u) \`x\` \\"
        );
        assert_eq!(markdown("abcdef", 3), "abc…");
        assert_eq!(markdown("g1c0", 3), "g1c…");
        assert_eq!(markdown("g1c0", 4), "g1c0");
    }

    #[test]
    fn code_fences_outgrow_the_content() {
        assert_eq!(code_fence("plain"), "```");
        assert_eq!(code_fence("a ``` b"), "````");
        assert_eq!(code_fence("`````"), "``````");
        assert_eq!(code_block_text("a\u{1b}[31mb\tc\n"), "a[31mb\tc\n");
    }

    #[test]
    fn only_plain_names_are_safe_components() {
        assert!(is_safe_component("g1c0"));
        assert!(is_safe_component("seed"));
        for bad in ["", ".", "..", "../x", "a/b", "a\\b", "a\nb"] {
            assert!(!is_safe_component(bad), "{bad:?}");
        }
    }
}
