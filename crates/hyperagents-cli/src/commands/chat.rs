//! `hyperagents chat`: the smallest end-to-end use of the model layer.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hyperagents_llm::accounting::human_duration;
use hyperagents_llm::{ChatModel, ChatRequest, Message, Sampling};

use crate::cli::ChatArgs;
use crate::model_factory::ModelFactory;
use crate::settings::Settings;

pub async fn run(settings: Settings, args: ChatArgs) -> Result<ExitCode> {
    let mut factory = ModelFactory::new(settings)?;
    // A role keeps its own budget; anything else is charged to `chat`.
    let role = if factory.settings().roles.contains_key(&args.model) {
        args.model.as_str()
    } else {
        "chat"
    };
    let mut router = factory.router();
    factory.bind(&mut router, role, &args.model).await?;
    let model = router.model(role)?;

    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(Message::system(system));
    }
    messages.push(Message::user(&args.prompt));
    let mut request = ChatRequest::new(messages).with_sampling(Sampling {
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        max_tokens: args.max_tokens,
        stop: args.stop.clone(),
    });
    if let Some(schema) = &args.json {
        request = request.with_json_schema("answer", read_schema(schema)?);
    }

    let descriptor = model.descriptor().clone();
    let response = if args.stream {
        let mut stdout = std::io::stdout();
        let response = model
            .chat_streaming(&request, &mut |delta| {
                let _ = stdout.write_all(delta.as_bytes());
                let _ = stdout.flush();
            })
            .await?;
        println!();
        response
    } else {
        let response = model.chat(&request).await?;
        println!("{}", response.text);
        response
    };
    let spend = router.ledger().spend(role);
    eprintln!(
        "[{}/{}] {} in + {} out tokens, {}, ${:.4}, finish: {:?}{}",
        descriptor.provider,
        descriptor.model,
        response.usage.input_tokens,
        response.usage.output_tokens,
        human_duration(response.latency),
        spend.dollars,
        response.finish_reason,
        if response.cache_hit { " (cached)" } else { "" }
    );
    Ok(ExitCode::SUCCESS)
}

/// `--json` takes inline JSON or `@FILE`.
fn read_schema(arg: &str) -> Result<serde_json::Value> {
    let (text, origin) = match arg.strip_prefix('@') {
        Some(path) => (
            std::fs::read_to_string(path).with_context(|| format!("reading JSON schema {path}"))?,
            path.to_string(),
        ),
        None => (arg.to_string(), "--json".to_string()),
    };
    serde_json::from_str(&text).with_context(|| format!("{origin}: not valid JSON"))
}
