//! The primitive web actions agents may take: their specs (name, description,
//! JSON schema) and the parsing of agent arguments into typed actions.
//!
//! There is deliberately no action that evaluates JavaScript: page globals
//! (MiniWoB's reward among them) are out of an agent's reach.

use hyperagents_domain::{ActionSpec, DomainError};
use serde_json::{Value, json};

use crate::keys::{NamedKey, allowed_names, parse_key};

/// Longest text one `type` action may enter.
pub const MAX_TYPED_CHARS: usize = 5000;

/// The kinds of action, for choosing which an environment offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActionKind {
    Click,
    Type,
    Press,
    Select,
    Scroll,
    Hover,
    Drag,
    Goto,
    Back,
    Tab,
    Answer,
}

impl ActionKind {
    /// Every kind, in the order specs are listed.
    pub const ALL: &'static [ActionKind] = &[
        ActionKind::Click,
        ActionKind::Type,
        ActionKind::Press,
        ActionKind::Select,
        ActionKind::Scroll,
        ActionKind::Hover,
        ActionKind::Drag,
        ActionKind::Goto,
        ActionKind::Back,
        ActionKind::Tab,
        ActionKind::Answer,
    ];

    /// The action's name as agents call it.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Click => "click",
            ActionKind::Type => "type",
            ActionKind::Press => "press",
            ActionKind::Select => "select",
            ActionKind::Scroll => "scroll",
            ActionKind::Hover => "hover",
            ActionKind::Drag => "drag",
            ActionKind::Goto => "goto",
            ActionKind::Back => "back",
            ActionKind::Tab => "tab",
            ActionKind::Answer => "answer",
        }
    }

    /// Looks a kind up by name.
    pub fn from_name(name: &str) -> Option<ActionKind> {
        ActionKind::ALL.iter().copied().find(|k| k.name() == name)
    }

    /// The spec shown to agents.
    pub fn spec(self) -> ActionSpec {
        let reference = json!({"type": "integer", "description": "an element's [ref] from the latest observation"});
        let (description, parameters) = match self {
            ActionKind::Click => (
                "Click an element (a real mouse click at its centre, scrolled into view).".to_string(),
                json!({"type": "object", "properties": {"ref": reference}, "required": ["ref"]}),
            ),
            ActionKind::Type => (
                "Focus a text field and type text with real key presses. Replaces the field's text unless `append` is true; a newline presses Enter.".to_string(),
                json!({"type": "object", "properties": {
                    "ref": reference,
                    "text": {"type": "string"},
                    "append": {"type": "boolean", "default": false}
                }, "required": ["ref", "text"]}),
            ),
            ActionKind::Press => (
                format!("Press one key in the focused element. Allowed keys: {}. Key combinations are not allowed.", allowed_names()),
                json!({"type": "object", "properties": {"key": {"type": "string"}}, "required": ["key"]}),
            ),
            ActionKind::Select => (
                "Choose an option of a <select> by its text or value (several options for a multiple select).".to_string(),
                json!({"type": "object", "properties": {
                    "ref": reference,
                    "option": {"type": "string"},
                    "options": {"type": "array", "items": {"type": "string"}}
                }, "required": ["ref"]}),
            ),
            ActionKind::Scroll => (
                "Scroll the page or the scrollable element holding `ref` in a direction; with only `ref`, scroll that element into view.".to_string(),
                json!({"type": "object", "properties": {
                    "ref": reference,
                    "direction": {"type": "string", "enum": ["up", "down", "left", "right"]}
                }}),
            ),
            ActionKind::Hover => (
                "Move the mouse over an element.".to_string(),
                json!({"type": "object", "properties": {"ref": reference}, "required": ["ref"]}),
            ),
            ActionKind::Drag => (
                "Drag one element onto another with the mouse.".to_string(),
                json!({"type": "object", "properties": {"from": reference, "to": reference}, "required": ["from", "to"]}),
            ),
            ActionKind::Goto => (
                "Open a URL on the allowed site(s).".to_string(),
                json!({"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]}),
            ),
            ActionKind::Back => (
                "Go back to the previous page.".to_string(),
                json!({"type": "object", "properties": {}}),
            ),
            ActionKind::Tab => (
                "Switch to another open tab by its index (see `tabs:` in the observation).".to_string(),
                json!({"type": "object", "properties": {"index": {"type": "integer", "minimum": 0}}, "required": ["index"]}),
            ),
            ActionKind::Answer => (
                "Give the final answer; ends the episode.".to_string(),
                json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            ),
        };
        ActionSpec {
            name: self.name().to_string(),
            description,
            parameters,
        }
    }
}

/// A scroll direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Up,
    Down,
    Left,
    Right,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
            Direction::Left => "left",
            Direction::Right => "right",
        }
    }
}

/// A parsed, validated action.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Click {
        reference: u64,
    },
    Type {
        reference: u64,
        text: String,
        append: bool,
    },
    Press {
        key: NamedKey,
    },
    Select {
        reference: u64,
        options: Vec<String>,
    },
    Scroll {
        reference: Option<u64>,
        direction: Option<Direction>,
    },
    Hover {
        reference: u64,
    },
    Drag {
        from: u64,
        to: u64,
    },
    Goto {
        url: String,
    },
    Back,
    Tab {
        index: usize,
    },
    Answer {
        text: String,
    },
}

impl Action {
    pub fn kind(&self) -> ActionKind {
        match self {
            Action::Click { .. } => ActionKind::Click,
            Action::Type { .. } => ActionKind::Type,
            Action::Press { .. } => ActionKind::Press,
            Action::Select { .. } => ActionKind::Select,
            Action::Scroll { .. } => ActionKind::Scroll,
            Action::Hover { .. } => ActionKind::Hover,
            Action::Drag { .. } => ActionKind::Drag,
            Action::Goto { .. } => ActionKind::Goto,
            Action::Back => ActionKind::Back,
            Action::Tab { .. } => ActionKind::Tab,
            Action::Answer { .. } => ActionKind::Answer,
        }
    }
}

/// Parses an agent's call. `offered` is the environment's action set.
///
/// Models often pass a single argument bare (`click(12)`, `goto("…")`), or a
/// ref as `"[12]"`; both are accepted.
pub fn parse_action(
    name: &str,
    args: &Value,
    offered: &[ActionKind],
) -> Result<Action, DomainError> {
    let kind = ActionKind::from_name(name)
        .filter(|kind| offered.contains(kind))
        .ok_or_else(|| DomainError::UnknownAction {
            name: name.to_string(),
            available: offered
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let bad = |message: String| DomainError::BadArguments {
        action: name.to_string(),
        message,
    };
    // The argument a bare value stands for.
    let primary = match kind {
        ActionKind::Click | ActionKind::Hover | ActionKind::Type | ActionKind::Select => "ref",
        ActionKind::Press => "key",
        ActionKind::Goto => "url",
        ActionKind::Tab => "index",
        ActionKind::Answer => "text",
        ActionKind::Scroll => "direction",
        ActionKind::Drag | ActionKind::Back => "",
    };
    let field = |key: &str| -> Option<&Value> {
        match args {
            Value::Object(map) => map.get(key).filter(|v| !v.is_null()),
            Value::Null => None,
            bare if key == primary => Some(bare),
            _ => None,
        }
    };
    if !matches!(args, Value::Object(_) | Value::Null) && primary.is_empty() {
        return Err(bad("arguments must be an object".into()));
    }
    let reference = |key: &str| -> Result<u64, DomainError> {
        let value = field(key).ok_or_else(|| bad(format!("missing `{key}`")))?;
        parse_reference(value).ok_or_else(|| {
            bad(format!(
                "`{key}` must be an element ref (a number from the observation), got {value}"
            ))
        })
    };
    let string = |key: &str| -> Result<String, DomainError> {
        match field(key) {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            Some(other) => Err(bad(format!("`{key}` must be a string, got {other}"))),
            None => Err(bad(format!("missing `{key}`"))),
        }
    };
    let action = match kind {
        ActionKind::Click => Action::Click {
            reference: reference("ref")?,
        },
        ActionKind::Hover => Action::Hover {
            reference: reference("ref")?,
        },
        ActionKind::Type => {
            let text = string("text")?;
            if text.chars().count() > MAX_TYPED_CHARS {
                return Err(bad(format!(
                    "text is longer than {MAX_TYPED_CHARS} characters"
                )));
            }
            let append = match field("append") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(other) => {
                    return Err(bad(format!("`append` must be true or false, got {other}")));
                }
            };
            Action::Type {
                reference: reference("ref")?,
                text,
                append,
            }
        }
        ActionKind::Press => Action::Press {
            key: parse_key(&string("key")?).map_err(|e| bad(e.to_string()))?,
        },
        ActionKind::Select => {
            let options = match (field("options"), field("option")) {
                (Some(Value::Array(items)), _) => items
                    .iter()
                    .map(|item| match item {
                        Value::String(s) => Ok(s.trim().to_string()),
                        other => Err(bad(format!("options must be strings, got {other}"))),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
                (Some(other), _) => {
                    return Err(bad(format!(
                        "`options` must be a list of strings, got {other}"
                    )));
                }
                (None, Some(_)) => vec![string("option")?.trim().to_string()],
                (None, None) => {
                    return Err(bad(
                        "give `option` (or `options` for a multiple select)".into()
                    ));
                }
            };
            if options.is_empty() {
                return Err(bad("give at least one option".into()));
            }
            Action::Select {
                reference: reference("ref")?,
                options,
            }
        }
        ActionKind::Scroll => {
            let direction = match field("direction") {
                None => None,
                Some(Value::String(s)) => Some(match s.trim().to_ascii_lowercase().as_str() {
                    "up" => Direction::Up,
                    "down" => Direction::Down,
                    "left" => Direction::Left,
                    "right" => Direction::Right,
                    other => {
                        return Err(bad(format!(
                            "direction must be up, down, left or right, got `{other}`"
                        )));
                    }
                }),
                Some(other) => return Err(bad(format!("direction must be a string, got {other}"))),
            };
            let reference = match field("ref") {
                None => None,
                Some(_) => Some(reference("ref")?),
            };
            if reference.is_none() && direction.is_none() {
                return Err(bad("give a `direction`, a `ref`, or both".into()));
            }
            Action::Scroll {
                reference,
                direction,
            }
        }
        ActionKind::Drag => Action::Drag {
            from: reference("from")?,
            to: reference("to")?,
        },
        ActionKind::Goto => Action::Goto {
            url: string("url")?,
        },
        ActionKind::Back => Action::Back,
        ActionKind::Tab => {
            let value = field("index").ok_or_else(|| bad("missing `index`".into()))?;
            let index = parse_reference(value)
                .and_then(|i| usize::try_from(i).ok())
                .ok_or_else(|| bad(format!("`index` must be a tab number, got {value}")))?;
            Action::Tab { index }
        }
        ActionKind::Answer => Action::Answer {
            text: string("text")?,
        },
    };
    Ok(action)
}

/// A ref: `12`, `"12"` or `"[12]"`.
fn parse_reference(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .trim()
            .parse()
            .ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(name: &str, args: Value) -> Result<Action, DomainError> {
        parse_action(name, &args, ActionKind::ALL)
    }

    #[test]
    fn every_spec_has_an_object_schema() {
        for kind in ActionKind::ALL {
            let spec = kind.spec();
            assert_eq!(spec.name, kind.name());
            assert_eq!(spec.parameters["type"], "object", "{}", spec.name);
            assert_eq!(ActionKind::from_name(&spec.name), Some(*kind));
        }
    }

    #[test]
    fn arguments_parse_leniently() {
        assert_eq!(
            parse("click", json!({"ref": 3})).unwrap(),
            Action::Click { reference: 3 }
        );
        assert_eq!(
            parse("click", json!("[7]")).unwrap(),
            Action::Click { reference: 7 }
        );
        assert_eq!(
            parse("click", json!(9)).unwrap(),
            Action::Click { reference: 9 }
        );
        assert_eq!(
            parse("type", json!({"ref": "2", "text": "hi"})).unwrap(),
            Action::Type {
                reference: 2,
                text: "hi".into(),
                append: false
            }
        );
        assert_eq!(
            parse("select", json!({"ref": 4, "option": " b "})).unwrap(),
            Action::Select {
                reference: 4,
                options: vec!["b".into()]
            }
        );
        assert_eq!(
            parse("scroll", json!({"direction": "Down"})).unwrap(),
            Action::Scroll {
                reference: None,
                direction: Some(Direction::Down)
            }
        );
        assert_eq!(
            parse("goto", json!("about:blank")).unwrap(),
            Action::Goto {
                url: "about:blank".into()
            }
        );
        assert_eq!(parse("back", json!({})).unwrap(), Action::Back);
        assert_eq!(
            parse("tab", json!({"index": 1})).unwrap(),
            Action::Tab { index: 1 }
        );
        assert_eq!(
            parse("press", json!({"key": "enter"})).unwrap().kind(),
            ActionKind::Press
        );
    }

    #[test]
    fn bad_arguments_are_explained() {
        let cases = [
            ("click", json!({}), "missing `ref`"),
            ("click", json!({"ref": "submit"}), "must be an element ref"),
            ("click", json!({"ref": -1}), "must be an element ref"),
            ("type", json!({"ref": 1}), "missing `text`"),
            (
                "type",
                json!({"ref": 1, "text": "x", "append": "yes"}),
                "`append`",
            ),
            ("press", json!({"key": "Ctrl+L"}), "not allowed"),
            ("press", json!({"key": "Alt+F4"}), "not allowed"),
            ("select", json!({"ref": 1}), "give `option`"),
            ("scroll", json!({}), "give a `direction`"),
            (
                "scroll",
                json!({"direction": "sideways"}),
                "direction must be",
            ),
            ("drag", json!({"from": 1}), "missing `to`"),
            ("tab", json!({"index": "x"}), "tab number"),
            ("drag", json!(5), "must be an object"),
        ];
        for (name, args, expected) in cases {
            match parse(name, args.clone()) {
                Err(DomainError::BadArguments { action, message }) => {
                    assert_eq!(action, name);
                    assert!(message.contains(expected), "{name} {args}: {message}");
                }
                other => panic!("{name} {args}: expected BadArguments, got {other:?}"),
            }
        }
        let long = "x".repeat(MAX_TYPED_CHARS + 1);
        assert!(parse("type", json!({"ref": 1, "text": long})).is_err());
    }

    #[test]
    fn actions_outside_the_offered_set_are_unknown() {
        let offered = [ActionKind::Click, ActionKind::Type];
        match parse_action("goto", &json!({"url": "about:blank"}), &offered) {
            Err(DomainError::UnknownAction { name, available }) => {
                assert_eq!(name, "goto");
                assert_eq!(available, "click, type");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_action("eval", &json!({"js": "1"}), ActionKind::ALL),
            Err(DomainError::UnknownAction { .. })
        ));
    }
}
