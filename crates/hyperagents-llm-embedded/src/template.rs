//! Chat prompts rendered from the model's own Jinja template
//! (`tokenizer.chat_template` in the GGUF metadata).
//!
//! llama.cpp's `apply_chat_template` matches templates against a built-in
//! list and was measured to drop the default system prompt, so the template
//! is rendered here with minijinja and its Python-compatibility methods. A
//! model without a template is an error: guessing a format silently produces
//! plausible-looking garbage.

use hyperagents_llm::{Message, Role};
use minijinja::{Environment, ErrorKind, Value, context};

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("the model has no chat template (GGUF key `tokenizer.chat_template` is missing)")]
    Missing,
    #[error("the model's chat template does not compile: {0}")]
    Compile(String),
    #[error("rendering the chat template failed: {0}")]
    Render(String),
}

impl ChatTemplate {
    /// Compiles `source`; `None` (no template in the model) is an error.
    pub fn new(
        source: Option<String>,
        bos_token: String,
        eos_token: String,
    ) -> Result<Self, TemplateError> {
        let source = source
            .filter(|s| !s.trim().is_empty())
            .ok_or(TemplateError::Missing)?;
        let mut env = Environment::new();
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned("chat", source)
            .map_err(|e| TemplateError::Compile(e.to_string()))?;
        Ok(Self {
            env,
            bos_token,
            eos_token,
        })
    }

    /// Renders a conversation, ending with the assistant's turn opened.
    pub fn render(&self, messages: &[Message]) -> Result<String, TemplateError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                // Tool results reach templates without tool support as user turns.
                let role = if m.role == Role::Tool {
                    "user"
                } else {
                    m.role.as_str()
                };
                Value::from_pairs([
                    ("role", Value::from(role)),
                    ("content", Value::from(m.content.as_str())),
                ])
            })
            .collect();
        let template = self
            .env
            .get_template("chat")
            .map_err(|e| TemplateError::Render(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            })
            .map_err(|e| TemplateError::Render(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // SmolLM2's template, as shipped in its GGUF.
    const CHATML: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn renders_chatml_with_default_system_prompt() {
        let t = ChatTemplate::new(Some(CHATML.into()), "<s>".into(), "</s>".into()).unwrap();
        let out = t.render(&[Message::user("hi")]).unwrap();
        assert_eq!(
            out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let out = t
            .render(&[Message::system("S"), Message::user("hi")])
            .unwrap();
        assert!(out.starts_with("<|im_start|>system\nS<|im_end|>"), "{out}");
    }

    #[test]
    fn missing_template_is_an_error() {
        assert!(matches!(
            ChatTemplate::new(None, String::new(), String::new()),
            Err(TemplateError::Missing)
        ));
        assert!(matches!(
            ChatTemplate::new(Some("  ".into()), String::new(), String::new()),
            Err(TemplateError::Missing)
        ));
    }

    #[test]
    fn python_methods_and_raise_exception_work() {
        let src = "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}{{ messages[0].content.strip().upper() }}";
        let t = ChatTemplate::new(Some(src.into()), String::new(), String::new()).unwrap();
        assert_eq!(t.render(&[Message::user("  hi ")]).unwrap(), "HI");
        let err = t.render(&[Message::system("x")]).unwrap_err();
        assert!(err.to_string().contains("first must be user"), "{err}");
    }
}
