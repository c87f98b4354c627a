//! `hearth-bench adapters`: what switching LoRA adapters between roles costs. Two random
//! adapters of the same rank stand for two roles' trained ones (an adapter's cost does not
//! depend on its values): a conversation grows on one while the other role's job runs
//! between its turns. Prints a table; asserts nothing.

use std::time::Duration;

use hearth_hub::config::HubConfig;
use hearth_hub::llm::adapters::random_adapter;
use hearth_hub::llm::{ChatMessage, GenerateRequest, JobRole, LlmHandle, Role, RolesConfig};

/// What to measure.
#[derive(Debug, Clone)]
pub struct AdapterBenchOptions {
    /// Conversation turns (each followed by the other role's job).
    pub turns: usize,
    /// The adapters' rank.
    pub rank: u64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs the benchmark and prints the table to stdout.
pub async fn run(config: HubConfig, opts: AdapterBenchOptions) -> anyhow::Result<()> {
    anyhow::ensure!(opts.turns > 0, "--turns must be at least 1");
    let dir = tempfile::tempdir()?;
    let mut roles = RolesConfig::default();
    for (seed, c) in [(1, &mut roles.consciousness), (2, &mut roles.preprocessor)] {
        let path = dir.path().join(format!("adapter-{seed}.gguf"));
        std::fs::write(
            &path,
            random_adapter(&config.llm.model, opts.rank, seed, 0.01)?,
        )?;
        c.adapter = path;
    }
    let (llm, _thread) = LlmHandle::start_with_roles(config.llm.clone(), roles).await?;
    let mut messages = vec![ChatMessage::new(
        Role::System,
        config.conversation.system_prompt.clone(),
    )];
    let other = GenerateRequest {
        role: JobRole::Preprocessor,
        max_tokens: Some(8),
        ..GenerateRequest::chat(vec![ChatMessage::new(
            Role::User,
            "Summarise: the kettle is on.",
        )])
    };
    println!(
        "model: {}, adapter rank {}",
        config.llm.model.display(),
        opts.rank
    );
    println!("| turn | prompt tokens | switch to the other role, ms | switch back, ms | reused after switching back | evaluation after switching back, ms | the same prompt cold, ms |");
    println!("|---|---|---|---|---|---|---|");
    for turn in 0..opts.turns {
        messages.push(ChatMessage::new(
            Role::User,
            format!("Tell me one short fact about the number {turn}."),
        ));
        let (_, answer) = llm.complete(reply(messages.clone(), 24)).await?;
        messages.push(ChatMessage::new(Role::Assistant, answer.text.clone()));
        let (_, away) = llm.complete(other.clone()).await?;
        // The conversation goes on: all but its newest words should come back from the
        // parked prefix.
        let mut next = messages.clone();
        next.push(ChatMessage::new(Role::User, "Thanks."));
        let (_, back) = llm.complete(reply(next.clone(), 1)).await?;
        // Without a parked prefix a switch back evaluates it all: the same prompt, its first
        // words changed so that nothing is reused.
        next[0].content.insert_str(0, "Note. ");
        let (_, cold) = llm.complete(reply(next, 1)).await?;
        println!(
            "| {} | {} | {:.1} | {:.1} | {} | {:.0} | {:.0} |",
            turn + 1,
            back.prompt_tokens,
            ms(away.adapter_switch),
            ms(back.adapter_switch),
            back.reused_tokens,
            ms(back.prompt_eval),
            ms(cold.prompt_eval),
        );
    }
    Ok(())
}

/// An answer of at most `max_tokens` (the consciousness).
fn reply(messages: Vec<ChatMessage>, max_tokens: u32) -> GenerateRequest {
    GenerateRequest {
        max_tokens: Some(max_tokens),
        ..GenerateRequest::chat(messages)
    }
}
