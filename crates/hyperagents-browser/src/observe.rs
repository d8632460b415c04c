//! The observation: the page's visible elements as a compact list with refs,
//! collected by the isolated-world helper and rendered here as text for a
//! model, capped at a budget of approximate tokens.

use serde::Deserialize;
use serde_json::Value;

use crate::error::BrowserError;
use crate::page::PageHandle;
use crate::pool::TabInfo;

/// What the observation includes and how long it may be.
#[derive(Debug, Clone, PartialEq)]
pub struct ObserverConfig {
    /// Budget of the rendered text in approximate tokens (4 characters
    /// each). SmolLM2 has an 8k context, so the default leaves room for the
    /// prompt and the answer.
    pub max_tokens: usize,
    /// Longest text kept per element, in characters.
    pub max_text_chars: usize,
    /// CSS selectors of subtrees never shown (a benchmark's own chrome, such
    /// as MiniWoB's reward display).
    pub exclude_selectors: Vec<String>,
}

impl Default for ObserverConfig {
    fn default() -> Self {
        ObserverConfig {
            max_tokens: 1500,
            max_text_chars: 200,
            exclude_selectors: Vec::new(),
        }
    }
}

/// One visible element. Refs stay valid until the page's document changes or
/// the environment resets them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Element {
    #[serde(rename = "ref")]
    pub reference: u64,
    pub tag: String,
    /// `type` of an `<input>`.
    #[serde(rename = "type")]
    pub input_type: Option<String>,
    pub role: Option<String>,
    pub text: Option<String>,
    pub label: Option<String>,
    pub placeholder: Option<String>,
    pub value: Option<String>,
    pub checked: Option<bool>,
    /// Option texts of a `<select>`.
    pub options: Option<Vec<String>>,
    #[serde(default)]
    pub multiple: bool,
    /// Not a link or button, but styled with a pointer cursor.
    #[serde(default)]
    pub clickable: bool,
    #[serde(default)]
    pub disabled: bool,
    #[serde(default)]
    pub focused: bool,
    /// `top`, `middle` or `bottom` for a scrollable element.
    pub scroll: Option<String>,
    /// The element's id, given only when nothing else names it.
    pub id: Option<String>,
    /// SVG `fill`/`stroke` attributes and inline CSS colours.
    pub fill: Option<String>,
    pub stroke: Option<String>,
    pub color: Option<String>,
    pub background: Option<String>,
    /// Position and size in the viewport, CSS pixels.
    #[serde(deserialize_with = "pixels")]
    pub x: i64,
    #[serde(deserialize_with = "pixels")]
    pub y: i64,
    #[serde(deserialize_with = "pixels")]
    pub w: i64,
    #[serde(deserialize_with = "pixels")]
    pub h: i64,
}

/// A coordinate as the page's layout gave it: the helper rounds it, but a
/// transformed SVG can place an element at `1e30` or at a non-finite
/// position (`null` once serialized). Saturated into `i64` (null is 0)
/// rather than failing the whole observation over one element.
fn pixels<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    match Value::deserialize(deserializer)? {
        // `as` saturates, and maps NaN to 0.
        Value::Number(n) => Ok(n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().map_or(0, |f| f.round() as i64))),
        Value::Null => Ok(0),
        other => Err(serde::de::Error::custom(format!(
            "expected a number of pixels, got {}",
            match other {
                Value::Bool(_) => "a boolean",
                Value::String(_) => "a string",
                Value::Array(_) => "an array",
                _ => "an object",
            }
        ))),
    }
}

/// Everything one observation saw.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Observation {
    pub url: String,
    pub title: String,
    /// Viewport size.
    pub width: i64,
    pub height: i64,
    pub elements: Vec<Element>,
}

/// The text an agent sees, and what was cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedObservation {
    pub text: String,
    pub shown: usize,
    pub omitted: usize,
}

/// Collects the current page's elements through the isolated world.
pub async fn collect(
    page: &mut PageHandle,
    config: &ObserverConfig,
) -> Result<Observation, BrowserError> {
    let options = serde_json::json!({
        "maxText": config.max_text_chars,
        "exclude": if config.exclude_selectors.is_empty() {
            Value::Null
        } else {
            Value::String(config.exclude_selectors.join(", "))
        },
    });
    let value = page.call("observe", &[options]).await?;
    let observation = Observation::from_helper(value)?;
    if let Some(highest) = observation.elements.iter().map(|e| e.reference).max() {
        page.saw_refs(highest);
    }
    Ok(observation)
}

/// Approximate tokens of `text` (4 characters per token, the usual rule of
/// thumb for English and markup).
pub fn approx_tokens(text: &str) -> usize {
    text.chars().count().div_ceil(4)
}

/// How elements are written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Each element's position and size (`@x,y wxh`) and the viewport's
    /// size: what spatial tasks need, about a fifth of the tokens of an
    /// element line otherwise.
    pub positions: bool,
}

impl Default for Layout {
    fn default() -> Self {
        Self { positions: true }
    }
}

impl Observation {
    /// Reads what the isolated-world helper's `observe` returned. An
    /// unexpected shape is an error naming the field (`elements[3].tag`).
    pub fn from_helper(value: Value) -> Result<Self, BrowserError> {
        serde_path_to_error::deserialize(value).map_err(|error| {
            BrowserError::Script(format!(
                "observe: the helper's observation has an unexpected shape at `{}`: {}",
                error.path(),
                error.inner()
            ))
        })
    }

    /// Renders the observation for a model within `max_tokens`.
    pub fn render(&self, max_tokens: usize, tabs: &[TabInfo]) -> RenderedObservation {
        self.render_with(max_tokens, tabs, Layout::default())
    }

    /// Renders the observation in `layout` within `max_tokens`.
    pub fn render_with(
        &self,
        max_tokens: usize,
        tabs: &[TabInfo],
        layout: Layout,
    ) -> RenderedObservation {
        let mut text = String::new();
        // The page chooses its URL and title (a `data:` URL, a megabyte of
        // title): clipped, so the cap holds whatever the page does.
        text.push_str(&format!("url: {}\n", clip(&self.url, MAX_HEADER_CHARS)));
        if !self.title.is_empty() {
            text.push_str(&format!(
                "title: {}\n",
                quote(&clip(&self.title, MAX_HEADER_CHARS))
            ));
        }
        if tabs.len() > 1 {
            let listed: Vec<String> = tabs
                .iter()
                .map(|tab| {
                    format!(
                        "[{}] {}{}",
                        tab.index,
                        if tab.url.is_empty() {
                            "(loading)".to_string()
                        } else {
                            clip(&tab.url, MAX_HEADER_CHARS)
                        },
                        if tab.current { " (current)" } else { "" }
                    )
                })
                .collect();
            text.push_str(&format!("tabs: {}\n", listed.join("; ")));
        }
        if layout.positions {
            text.push_str(&format!(
                "viewport: {}x{}; elements ([ref] tag \"text\" attributes @x,y wxh):\n",
                self.width, self.height
            ));
        } else {
            text.push_str("elements ([ref] tag \"text\" attributes):\n");
        }
        if self.elements.is_empty() {
            text.push_str("(no visible elements)\n");
        }
        // Keep room for the omission note.
        let budget = max_tokens.saturating_sub(20);
        let mut used = approx_tokens(&text);
        let mut shown = 0;
        for element in &self.elements {
            let line = render_element_with(element, layout);
            let cost = approx_tokens(&line) + 1;
            if used + cost > budget {
                break;
            }
            used += cost;
            text.push_str(&line);
            text.push('\n');
            shown += 1;
        }
        let omitted = self.elements.len() - shown;
        if omitted > 0 {
            text.push_str(&format!(
                "… {omitted} more elements omitted (observation capped at ~{max_tokens} tokens)\n"
            ));
        }
        RenderedObservation {
            text,
            shown,
            omitted,
        }
    }
}

/// One element as one line: `[12] input[text] label="Name" value="Bob" focused @10,40 120x20`.
pub fn render_element(element: &Element) -> String {
    render_element_with(element, Layout::default())
}

/// One element as one line, in `layout`.
pub fn render_element_with(element: &Element, layout: Layout) -> String {
    let mut line = format!("[{}] {}", element.reference, element.tag);
    if let Some(input_type) = &element.input_type {
        line.push_str(&format!("[{input_type}]"));
    }
    if let Some(role) = &element.role {
        line.push_str(&format!(" role={role}"));
    }
    if let Some(text) = &element.text {
        line.push(' ');
        line.push_str(&quote(text));
    }
    for (name, value) in [
        ("label", &element.label),
        ("placeholder", &element.placeholder),
        ("value", &element.value),
    ] {
        if let Some(value) = value {
            line.push_str(&format!(" {name}={}", quote(value)));
        }
    }
    if let Some(id) = &element.id {
        line.push_str(&format!(" id={}", quote(id)));
    }
    match element.checked {
        Some(true) => line.push_str(" checked"),
        Some(false) => line.push_str(" unchecked"),
        None => {}
    }
    if let Some(options) = &element.options {
        let quoted: Vec<String> = options.iter().map(|o| quote(o)).collect();
        line.push_str(&format!(" options=[{}]", quoted.join(", ")));
    }
    for (flag, on) in [
        ("clickable", element.clickable),
        ("multiple", element.multiple),
        ("disabled", element.disabled),
        ("focused", element.focused),
    ] {
        if on {
            line.push(' ');
            line.push_str(flag);
        }
    }
    if let Some(scroll) = &element.scroll {
        line.push_str(&format!(" scroll={scroll}"));
    }
    for (name, value) in [
        ("fill", &element.fill),
        ("stroke", &element.stroke),
        ("color", &element.color),
        ("bg", &element.background),
    ] {
        if let Some(value) = value {
            line.push_str(&format!(" {name}={}", compact_colour(value)));
        }
    }
    if layout.positions {
        line.push_str(&format!(
            " @{},{} {}x{}",
            element.x, element.y, element.w, element.h
        ));
    }
    line
}

/// The longest URL or title an observation shows, in characters.
pub const MAX_HEADER_CHARS: usize = 500;

/// At most `max` characters of `text`, `…` marking a cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// A JSON string literal: unambiguous quoting for any text.
fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

/// `rgb(255, 0, 0)` → `rgb(255,0,0)`: fewer tokens, same meaning.
fn compact_colour(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join("")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn element(reference: u64, tag: &str) -> Element {
        Element {
            reference,
            tag: tag.into(),
            input_type: None,
            role: None,
            text: None,
            label: None,
            placeholder: None,
            value: None,
            checked: None,
            options: None,
            multiple: false,
            clickable: false,
            disabled: false,
            focused: false,
            scroll: None,
            id: None,
            fill: None,
            stroke: None,
            color: None,
            background: None,
            x: 1,
            y: 2,
            w: 30,
            h: 40,
        }
    }

    #[test]
    fn elements_render_on_one_line_with_their_attributes() {
        let mut button = element(3, "button");
        button.text = Some("Say \"hi\"".into());
        assert_eq!(
            render_element(&button),
            r#"[3] button "Say \"hi\"" @1,2 30x40"#
        );

        let mut checkbox = element(4, "input");
        checkbox.input_type = Some("checkbox".into());
        checkbox.label = Some("apple".into());
        checkbox.checked = Some(false);
        checkbox.focused = true;
        assert_eq!(
            render_element(&checkbox),
            r#"[4] input[checkbox] label="apple" unchecked focused @1,2 30x40"#
        );

        let mut select = element(5, "select");
        select.value = Some("b".into());
        select.options = Some(vec!["a".into(), "b".into()]);
        assert_eq!(
            render_element(&select),
            r#"[5] select value="b" options=["a", "b"] @1,2 30x40"#
        );

        let mut circle = element(6, "circle");
        circle.fill = Some("rgb(255, 0, 0)".into());
        circle.background = Some("blue".into());
        assert_eq!(
            render_element(&circle),
            "[6] circle fill=rgb(255,0,0) bg=blue @1,2 30x40"
        );
    }

    #[test]
    fn without_positions_lines_and_header_leave_out_geometry() {
        let mut button = element(3, "button");
        button.text = Some("OK".into());
        let compact = Layout { positions: false };
        assert_eq!(render_element_with(&button, compact), r#"[3] button "OK""#);
        let observation = Observation {
            url: "http://127.0.0.1:1/x.html".into(),
            title: "T".into(),
            width: 800,
            height: 600,
            elements: vec![button],
        };
        let text = observation.render_with(1000, &[], compact).text;
        assert_eq!(
            text,
            "url: http://127.0.0.1:1/x.html\ntitle: \"T\"\nelements ([ref] tag \"text\" attributes):\n[3] button \"OK\"\n"
        );
        let full = observation.render(1000, &[]).text;
        assert!(
            full.contains("viewport: 800x600") && full.contains("@1,2 30x40"),
            "{full}"
        );
    }

    #[test]
    fn rendering_respects_the_token_cap_and_reports_what_it_cut() {
        let elements: Vec<Element> = (1..=200)
            .map(|i| {
                let mut e = element(i, "span");
                e.text = Some(format!("item number {i} with some words"));
                e
            })
            .collect();
        let observation = Observation {
            url: "http://127.0.0.1:1/x.html".into(),
            title: "T".into(),
            width: 800,
            height: 600,
            elements,
        };
        let rendered = observation.render(300, &[]);
        assert!(approx_tokens(&rendered.text) <= 300, "{}", rendered.text);
        assert!(rendered.shown > 5);
        assert_eq!(rendered.shown + rendered.omitted, 200);
        assert!(
            rendered
                .text
                .contains(&format!("… {} more elements omitted", rendered.omitted))
        );
        let everything = observation.render(100_000, &[]);
        assert_eq!(everything.omitted, 0);
        assert!(!everything.text.contains("omitted"));
    }

    #[test]
    fn tabs_are_listed_only_when_there_are_several() {
        let observation = Observation {
            url: "about:blank".into(),
            title: String::new(),
            width: 800,
            height: 600,
            elements: vec![],
        };
        let one = [TabInfo {
            index: 0,
            url: "about:blank".into(),
            title: String::new(),
            current: true,
        }];
        assert!(!observation.render(1000, &one).text.contains("tabs:"));
        let two = [
            one[0].clone(),
            TabInfo {
                index: 1,
                url: "http://127.0.0.1:1/popup".into(),
                title: String::new(),
                current: false,
            },
        ];
        let text = observation.render(1000, &two).text;
        assert!(
            text.contains("tabs: [0] about:blank (current); [1] http://127.0.0.1:1/popup"),
            "{text}"
        );
        assert!(text.contains("(no visible elements)"));
    }
}
