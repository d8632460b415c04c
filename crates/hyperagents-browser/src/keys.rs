//! The named keys an agent may press, and how typed characters become key
//! events.
//!
//! Only single, named keys are allowed: chords (Ctrl+L, Alt+F4, …) could reach
//! browser shortcuts (the address bar, closing the window), so any modifier is
//! refused.

use crate::error::BrowserError;

/// One key of the allowlist, as CDP's `Input.dispatchKeyEvent` wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedKey {
    /// The name agents use (`Enter`, `ArrowDown`, …).
    pub name: &'static str,
    /// DOM `KeyboardEvent.key`.
    pub key: &'static str,
    /// DOM `KeyboardEvent.code`.
    pub code: &'static str,
    /// Windows virtual key code (`keyCode` in page scripts).
    pub key_code: i64,
    /// Text the key inserts, if any.
    pub text: Option<&'static str>,
}

const fn key(
    name: &'static str,
    dom_key: &'static str,
    key_code: i64,
    text: Option<&'static str>,
) -> NamedKey {
    NamedKey {
        name,
        key: dom_key,
        code: name,
        key_code,
        text,
    }
}

/// Every key `press` accepts.
pub const ALLOWED_KEYS: &[NamedKey] = &[
    key("Enter", "Enter", 13, Some("\r")),
    key("Tab", "Tab", 9, None),
    key("Escape", "Escape", 27, None),
    key("Backspace", "Backspace", 8, None),
    key("Delete", "Delete", 46, None),
    key("ArrowUp", "ArrowUp", 38, None),
    key("ArrowDown", "ArrowDown", 40, None),
    key("ArrowLeft", "ArrowLeft", 37, None),
    key("ArrowRight", "ArrowRight", 39, None),
    key("Home", "Home", 36, None),
    key("End", "End", 35, None),
    key("PageUp", "PageUp", 33, None),
    key("PageDown", "PageDown", 34, None),
    key("Space", " ", 32, Some(" ")),
];

/// Common spellings models use for allowed keys.
const ALIASES: &[(&str, &str)] = &[
    ("return", "Enter"),
    ("esc", "Escape"),
    ("up", "ArrowUp"),
    ("down", "ArrowDown"),
    ("left", "ArrowLeft"),
    ("right", "ArrowRight"),
    ("del", "Delete"),
    ("pgup", "PageUp"),
    ("pgdn", "PageDown"),
    ("pagedn", "PageDown"),
    (" ", "Space"),
    ("spacebar", "Space"),
];

const MODIFIERS: &[&str] = &[
    "ctrl", "control", "alt", "option", "meta", "cmd", "command", "shift", "super", "win",
    "windows", "os", "altgr",
];

/// Resolves an agent's key name against the allowlist.
pub fn parse_key(raw: &str) -> Result<NamedKey, BrowserError> {
    let name = if raw == " " { raw } else { raw.trim() };
    let lower = name.to_ascii_lowercase();
    let is_chord = (name.len() > 1 && (name.contains('+') || name.contains('-')))
        || MODIFIERS.contains(&lower.as_str());
    if is_chord {
        return Err(BrowserError::Refused(format!(
            "key chords and modifier keys are not allowed (got `{raw}`); press one of: {}",
            allowed_names()
        )));
    }
    let canonical = ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map(|(_, canonical)| canonical.to_ascii_lowercase())
        .unwrap_or(lower);
    ALLOWED_KEYS
        .iter()
        .find(|key| key.name.eq_ignore_ascii_case(&canonical))
        .copied()
        .ok_or_else(|| {
            BrowserError::Refused(format!(
                "unknown key `{raw}`; press one of: {} (use `type` for text)",
                allowed_names()
            ))
        })
}

/// The allowlist, for messages and the action description.
pub fn allowed_names() -> String {
    ALLOWED_KEYS
        .iter()
        .map(|key| key.name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// How one piece of typed text is delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Keystroke {
    /// A printable ASCII character: keydown (with text) and keyup.
    Char { ch: char, key_code: Option<i64> },
    /// A named key (a newline types Enter, a tab Tab).
    Named(NamedKey),
    /// Characters with no key on a US keyboard, inserted as IME text.
    Insert(String),
}

/// Splits text into keystrokes.
pub fn keystrokes(text: &str) -> Vec<Keystroke> {
    let mut out = Vec::new();
    for ch in text.chars() {
        let stroke = match ch {
            '\n' | '\r' => Keystroke::Named(ALLOWED_KEYS[0]),
            '\t' => Keystroke::Named(ALLOWED_KEYS[1]),
            ' '..='~' => Keystroke::Char {
                ch,
                key_code: key_code(ch),
            },
            other => {
                if let Some(Keystroke::Insert(pending)) = out.last_mut() {
                    pending.push(other);
                    continue;
                }
                Keystroke::Insert(other.to_string())
            }
        };
        out.push(stroke);
    }
    out
}

fn key_code(ch: char) -> Option<i64> {
    match ch {
        'a'..='z' => Some(ch.to_ascii_uppercase() as i64),
        'A'..='Z' | '0'..='9' | ' ' => Some(ch as i64),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_keys_resolve_case_insensitively_and_through_aliases() {
        assert_eq!(parse_key("enter").unwrap().name, "Enter");
        assert_eq!(parse_key("Return").unwrap().name, "Enter");
        assert_eq!(parse_key("ARROWDOWN").unwrap().name, "ArrowDown");
        assert_eq!(parse_key("Esc").unwrap().name, "Escape");
        assert_eq!(parse_key(" ").unwrap().name, "Space");
        assert_eq!(parse_key("PageDown").unwrap().key_code, 34);
    }

    #[test]
    fn chords_and_modifiers_are_refused_with_the_allowlist() {
        for chord in ["Ctrl+L", "Alt+F4", "control-w", "Meta", "Shift", "ctrl + t"] {
            let message = parse_key(chord).unwrap_err().to_string();
            assert!(message.contains("not allowed"), "{chord}: {message}");
            assert!(message.contains("ArrowDown"), "{chord}: {message}");
        }
    }

    #[test]
    fn unknown_keys_are_refused() {
        for key in ["F5", "a", "F12", "PrintScreen"] {
            let message = parse_key(key).unwrap_err().to_string();
            assert!(message.contains("unknown key"), "{key}: {message}");
        }
    }

    #[test]
    fn text_becomes_keystrokes() {
        let strokes = keystrokes("aZ 1\nü€x");
        assert_eq!(
            strokes,
            vec![
                Keystroke::Char {
                    ch: 'a',
                    key_code: Some(65)
                },
                Keystroke::Char {
                    ch: 'Z',
                    key_code: Some(90)
                },
                Keystroke::Char {
                    ch: ' ',
                    key_code: Some(32)
                },
                Keystroke::Char {
                    ch: '1',
                    key_code: Some(49)
                },
                Keystroke::Named(ALLOWED_KEYS[0]),
                Keystroke::Insert("ü€".into()),
                Keystroke::Char {
                    ch: 'x',
                    key_code: Some(88)
                },
            ]
        );
    }
}
