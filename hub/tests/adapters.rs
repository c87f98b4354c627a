//! LoRA adapters on the real test model: a role's adapter applies to its jobs only, the base
//! weights' output is unchanged beside it, a conversation's KV prefix survives another role's
//! job, and a wrong adapter is an error at start. Needs the models from `scripts/fetch-models`.

use std::path::Path;

use hearth_hub::config::LlmConfig;
use hearth_hub::llm::adapters::random_adapter;
use hearth_hub::llm::{
    ChatMessage, GenerateRequest, JobRole, LlmError, LlmHandle, PersonaJob, Role, RolesConfig,
};

fn smollm2() -> LlmConfig {
    LlmConfig {
        model: hearth_tests::smollm2(),
        threads: 2,
        threads_batch: 2,
        context_tokens: 1024,
        max_reply_tokens: 32,
        temperature: 0.0,
        ..LlmConfig::default()
    }
}

fn chat(turns: &[&str]) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::new(
        Role::System,
        "You are Hearth, a concise household assistant. Answer in short sentences.",
    )];
    for (i, t) in turns.iter().enumerate() {
        let role = if i % 2 == 0 {
            Role::User
        } else {
            Role::Assistant
        };
        messages.push(ChatMessage::new(role, *t));
    }
    messages
}

/// A memory writer's job in the foreground: background work puts the conversation back
/// itself once it is done, and this test looks at the switch alone.
fn writer_job() -> GenerateRequest {
    GenerateRequest {
        role: JobRole::MemoryWriter,
        max_tokens: Some(24),
        ..GenerateRequest::chat(chat(&["Name three fruits that grow on trees."]))
    }
}

fn with_adapter(path: &Path) -> RolesConfig {
    let mut roles = RolesConfig::default();
    roles.consciousness.adapter = path.to_path_buf();
    roles
}

#[tokio::test]
async fn an_adapter_changes_its_role_only_and_the_conversation_prefix_survives_a_switch() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("consciousness.gguf");
    std::fs::write(
        &adapter,
        random_adapter(&hearth_tests::smollm2(), 8, 11, 0.08).unwrap(),
    )
    .unwrap();
    let first = chat(&["What is the moon?"]);

    let (base, _t) = LlmHandle::start(smollm2()).await.unwrap();
    let (_, base_answer) = base
        .complete(GenerateRequest::chat(first.clone()))
        .await
        .unwrap();
    let (_, base_writer) = base.complete(writer_job()).await.unwrap();
    drop(base);

    let (llm, _t) = LlmHandle::start_with_roles(smollm2(), with_adapter(&adapter))
        .await
        .unwrap();
    let (_, s1) = llm.complete(GenerateRequest::chat(first)).await.unwrap();
    assert_ne!(s1.text, base_answer.text, "the adapter shapes the answer");
    let (_, writer) = llm.complete(writer_job()).await.unwrap();
    assert_eq!(
        writer.text, base_writer.text,
        "the memory writer runs on the base weights"
    );
    assert!(writer.adapter_switch > std::time::Duration::ZERO);

    // The conversation goes on: its prefix computed with the adapter was parked, not lost.
    let second = chat(&["What is the moon?", &s1.text, "And the sun?"]);
    let (_, s2) = llm
        .complete(GenerateRequest::chat(second.clone()))
        .await
        .unwrap();
    assert!(s2.adapter_switch > std::time::Duration::ZERO);
    assert!(
        s2.reused_tokens >= s1.prompt_tokens,
        "reused {} of the first prompt's {}",
        s2.reused_tokens,
        s1.prompt_tokens
    );
    // And reusing it changed nothing: a fresh engine answers the same.
    let (cold, _t) = LlmHandle::start_with_roles(smollm2(), with_adapter(&adapter))
        .await
        .unwrap();
    let (_, fresh) = cold.complete(GenerateRequest::chat(second)).await.unwrap();
    assert_eq!(fresh.text, s2.text);
}

#[tokio::test]
async fn a_missing_or_foreign_adapter_is_an_error_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.gguf");
    let err = LlmHandle::start_with_roles(smollm2(), with_adapter(&missing))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::Adapter { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("roles.consciousness.adapter") && msg.contains("nowhere.gguf"),
        "{msg}"
    );

    let gemma = dir.path().join("gemma.gguf");
    let gemma_model = hearth_tests::model("gemma-3-270m-q4_k_m.gguf");
    std::fs::write(&gemma, random_adapter(&gemma_model, 4, 1, 0.01).unwrap()).unwrap();
    let err = LlmHandle::start_with_roles(smollm2(), with_adapter(&gemma))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("architecture"), "{err}");
    // A persona's adapter is checked the same way, and the error names the persona.
    let personas = [("Brick".to_string(), gemma.clone(), 1.0)];
    let err = LlmHandle::start_with_personas(smollm2(), RolesConfig::default(), &personas)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("persona Brick's adapter") && err.contains("architecture"),
        "{err}"
    );
}

#[tokio::test]
async fn a_personas_adapter_shapes_its_answers_only() {
    let dir = tempfile::tempdir().unwrap();
    let adapter = dir.path().join("brick.gguf");
    std::fs::write(
        &adapter,
        random_adapter(&hearth_tests::smollm2(), 8, 11, 0.08).unwrap(),
    )
    .unwrap();
    let personas = [("Brick".to_string(), adapter, 1.0)];
    let (llm, _t) = LlmHandle::start_with_personas(smollm2(), RolesConfig::default(), &personas)
        .await
        .unwrap();
    let ask = |persona: Option<&str>| GenerateRequest {
        persona: persona.map(|name| PersonaJob {
            name: name.into(),
            ..PersonaJob::default()
        }),
        ..GenerateRequest::chat(chat(&["What is the moon?"]))
    };
    let (_, plain) = llm.complete(ask(None)).await.unwrap();
    let (_, brick) = llm.complete(ask(Some("Brick"))).await.unwrap();
    let (_, nova) = llm.complete(ask(Some("Nova"))).await.unwrap();
    let (_, again) = llm.complete(ask(None)).await.unwrap();
    assert_ne!(brick.text, plain.text, "Brick's adapter shapes his answer");
    assert!(!brick.adapter_switch.is_zero() && !nova.adapter_switch.is_zero());
    // A persona without an adapter answers with the base weights, and switching back
    // reuses the base weights' prefix.
    assert_eq!(
        (nova.text.as_str(), again.text.as_str()),
        (plain.text.as_str(), plain.text.as_str())
    );
    assert!(again.reused_tokens > 0, "{again:?}");
}
