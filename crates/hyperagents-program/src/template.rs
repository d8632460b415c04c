//! Prompt templates: every prompt file is a minijinja (Jinja) template, compiled when the program
//! loads and rendered by the runtime with variables such as `goal`, `observation`, `skills` and
//! `history`.
//!
//! Rendering is strict: a variable the caller did not provide is an error naming the prompt file,
//! the line and the variable, never a silently empty string (a prompt that quietly loses its goal
//! is a failure the meta agent could not diagnose). Templates are written by the meta agent and
//! rendered in the host process, so rendering runs on a bounded amount of work
//! ([`RENDER_FUEL`]). Auto-escaping is off everywhere: prompts are text, not HTML.
//! Prompts may `{% include %}` each other by program-relative path.

use std::fmt;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::error::{Location, ProgramError, ProgramErrorKind};
use crate::path::RelPath;

/// Instructions one render may execute (minijinja fuel); far above any sane prompt.
pub const RENDER_FUEL: u64 = 2_000_000;

/// Bytes one render may produce: far above any model's context, and a bound on
/// what a template can make the host allocate (fuel alone does not bound it: a
/// short loop over a large variable writes gigabytes).
pub const MAX_RENDER_BYTES: usize = 4 << 20;

/// Collects a render's output, refusing to grow past [`MAX_RENDER_BYTES`].
struct CappedOutput {
    bytes: Vec<u8>,
    exceeded: bool,
}

impl std::io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_RENDER_BYTES {
            self.exceeded = true;
            return Err(std::io::Error::other("the render output limit was reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The compiled prompt templates of a program, keyed by program-relative path.
#[derive(Clone)]
pub struct Prompts {
    env: Environment<'static>,
    names: Vec<RelPath>,
}

/// One compiled prompt.
#[derive(Clone)]
pub struct PromptTemplate<'a> {
    template: minijinja::Template<'a, 'a>,
}

/// A render that failed: where, which variable (for undefined ones), and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct RenderError {
    /// The prompt file (an included one if the error is there) and line.
    pub location: Location,
    /// The undefined variable or expression, when that is the cause.
    pub variable: Option<String>,
    /// What went wrong.
    pub message: String,
}

impl Prompts {
    /// Compiles each `(path, source)`, collecting every syntax error.
    pub fn compile(
        sources: impl IntoIterator<Item = (RelPath, String)>,
    ) -> Result<Self, Vec<ProgramError>> {
        let mut env = Environment::new();
        env.set_debug(true); // error ranges (columns) need it
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_syntax(keep_trailing_newline());
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_fuel(Some(RENDER_FUEL));
        let mut names = Vec::new();
        let mut errors = Vec::new();
        for (name, source) in sources {
            if let Err(err) = env.add_template_owned(name.as_str().to_owned(), source.clone()) {
                errors.push(ProgramError::new(
                    location_of(&err, name.as_str(), Some(&source)),
                    ProgramErrorKind::TemplateSyntax(describe(&err)),
                ));
            } else {
                names.push(name);
            }
        }
        if errors.is_empty() {
            names.sort();
            Ok(Self { env, names })
        } else {
            Err(errors)
        }
    }

    /// The prompt at `path`, if the program has one there.
    pub fn get(&self, path: &str) -> Option<PromptTemplate<'_>> {
        self.env
            .get_template(path)
            .ok()
            .map(|template| PromptTemplate { template })
    }

    /// Renders the prompt at `path` with `vars` (any serializable map or struct).
    pub fn render<S: Serialize>(&self, path: &str, vars: S) -> Result<String, RenderError> {
        match self.get(path) {
            Some(template) => template.render(vars),
            None => Err(RenderError {
                location: Location::file(path),
                variable: None,
                message: "no such prompt in this program".into(),
            }),
        }
    }

    /// Paths of all prompts, sorted.
    pub fn names(&self) -> &[RelPath] {
        &self.names
    }
}

impl fmt::Debug for Prompts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prompts")
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl PromptTemplate<'_> {
    /// The prompt's program-relative path.
    pub fn name(&self) -> &str {
        self.template.name()
    }

    /// The template source as written.
    pub fn source(&self) -> &str {
        self.template.source()
    }

    /// Renders with `vars`; any undefined variable is an error.
    pub fn render<S: Serialize>(&self, vars: S) -> Result<String, RenderError> {
        let mut out = CappedOutput {
            bytes: Vec::new(),
            exceeded: false,
        };
        match self
            .template
            .render_captured_to(minijinja::value::Serde(vars), &mut out)
        {
            Ok(_) => Ok(String::from_utf8_lossy(&out.bytes).into_owned()),
            Err(_) if out.exceeded => Err(RenderError {
                location: Location::file(self.name()),
                variable: None,
                message: format!(
                    "the rendered prompt would exceed {MAX_RENDER_BYTES} bytes, the limit on one prompt"
                ),
            }),
            Err(err) => Err(render_error(&err, self.name())),
        }
    }
}

impl fmt::Debug for PromptTemplate<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PromptTemplate")
            .field("name", &self.name())
            .finish_non_exhaustive()
    }
}

/// Jinja's defaults, except that a prompt's final newline is kept: prompts are text files.
fn keep_trailing_newline() -> minijinja::syntax::SyntaxConfig {
    let mut builder = minijinja::syntax::SyntaxConfig::builder();
    builder.keep_trailing_newline(true);
    // The default delimiters always build.
    builder.build().unwrap_or_default()
}

fn render_error(err: &minijinja::Error, fallback_name: &str) -> RenderError {
    // Errors inside an `include` are wrapped; report the innermost, where the cause is.
    let mut inner = err;
    while let Some(next) =
        std::error::Error::source(inner).and_then(|s| s.downcast_ref::<minijinja::Error>())
    {
        inner = next;
    }
    let name = inner.name().unwrap_or(fallback_name);
    let location = location_of(inner, name, inner.template_source());
    if inner.kind() == minijinja::ErrorKind::UndefinedError {
        let variable = inner.detail().and_then(backticked).or_else(|| {
            let range = inner.range()?;
            inner.template_source()?.get(range).map(str::to_owned)
        });
        let message = match &variable {
            Some(v) => format!("undefined variable `{v}`"),
            None => "undefined variable".to_owned(),
        };
        return RenderError {
            location,
            variable,
            message,
        };
    }
    RenderError {
        location,
        variable: None,
        message: describe(inner),
    }
}

fn location_of(err: &minijinja::Error, name: &str, source: Option<&str>) -> Location {
    match (err.range(), source) {
        (Some(range), Some(source)) => Location::at_offset(name, source, range.start),
        _ => Location {
            file: name.to_owned(),
            line: err.line(),
            column: None,
        },
    }
}

/// `kind: detail`, without the multi-line debug dump minijinja's `Display` adds.
fn describe(err: &minijinja::Error) -> String {
    match err.detail() {
        Some(detail) => format!("{}: {detail}", err.kind()),
        None => err.kind().to_string(),
    }
}

/// The first `backticked` span of `text`.
fn backticked(text: &str) -> Option<String> {
    let start = text.find('`')? + 1;
    let len = text[start..].find('`')?;
    Some(text[start..start + len].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompts(files: &[(&str, &str)]) -> Result<Prompts, Vec<ProgramError>> {
        Prompts::compile(
            files
                .iter()
                .map(|(n, s)| (RelPath::new(n).unwrap(), (*s).to_owned())),
        )
    }

    #[test]
    fn renders_with_variables_and_keeps_the_final_newline() {
        let p = prompts(&[("a.md", "Goal: {{ goal }}\n")]).unwrap();
        let out = p
            .render("a.md", serde_json::json!({"goal": "click <b>"}))
            .unwrap();
        assert_eq!(out, "Goal: click <b>\n");
    }

    #[test]
    fn undefined_variable_names_file_line_and_variable() {
        let p = prompts(&[("t/p.md", "one\ntwo {{ goal }}\n")]).unwrap();
        let err = p.render("t/p.md", serde_json::json!({})).unwrap_err();
        assert_eq!(err.variable.as_deref(), Some("goal"));
        assert_eq!(err.to_string(), "t/p.md:2:8: undefined variable `goal`");
    }

    #[test]
    fn undefined_variable_inside_an_include_points_at_the_included_file() {
        let p = prompts(&[
            ("a.md", "x\n{% include 'b.md' %}"),
            ("b.md", "\n\n{{ history }}"),
        ])
        .unwrap();
        let err = p.render("a.md", serde_json::json!({})).unwrap_err();
        assert_eq!(err.location.file, "b.md");
        assert_eq!(err.location.line, Some(3));
        assert_eq!(err.variable.as_deref(), Some("history"));
    }

    #[test]
    fn syntax_errors_are_collected_with_lines() {
        let errs = prompts(&[("a.md", "ok\n{{ x "), ("b.md", "{% if %}")]).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].location.file, "a.md");
        assert_eq!(errs[0].location.line, Some(2));
        assert_eq!(errs[1].location.file, "b.md");
        assert!(matches!(errs[0].kind, ProgramErrorKind::TemplateSyntax(_)));
    }

    #[test]
    fn runaway_templates_run_out_of_fuel() {
        let p = prompts(&[(
            "a.md",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        )])
        .unwrap();
        let err = p.render("a.md", serde_json::json!({})).unwrap_err();
        assert!(err.message.contains("fuel"), "{err}");
    }

    #[test]
    fn a_render_that_would_outgrow_its_limit_is_an_error_naming_it() {
        // Few instructions, a large variable: fuel alone would let it through.
        let p = prompts(&[("a.md", "{% for i in range(1000) %}{{ big }}{% endfor %}")]).unwrap();
        let big = "x".repeat(1 << 20);
        let err = p
            .render("a.md", serde_json::json!({ "big": big }))
            .unwrap_err();
        assert_eq!(err.location.file, "a.md");
        assert!(err.message.contains(&MAX_RENDER_BYTES.to_string()), "{err}");
        // Under the limit, the same template renders.
        let small = p
            .render("a.md", serde_json::json!({ "big": "ab" }))
            .unwrap();
        assert_eq!(small.len(), 2000);
    }

    #[test]
    fn unknown_prompt_is_an_error() {
        let p = prompts(&[]).unwrap();
        assert!(p.render("nope.md", serde_json::json!({})).is_err());
    }
}
