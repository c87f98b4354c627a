//! A long conversation in one room: the preprocessor folds its older exchanges into the
//! room's summary, which keeps the prompt within the budget, and a fact from the start is
//! still answerable. With the test models, and with the scripted one where the model fails.

use super::scenarios::{real_models, Models};
use super::*;

/// The budget of the room's history in the tests (estimated tokens).
const BUDGET: usize = 240;

/// Waits until no fold of the kitchen is out.
async fn folded(hub: &Hub) {
    for _ in 0..6000 {
        if !hub
            .pipeline
            .home
            .with(|h| h.conversations.folding("kitchen"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the fold did not end");
}

fn folding(c: &mut HubConfig) {
    // Recall off: only the room's history can answer.
    c.memory.recall_k = 0;
    c.conversation.history_budget_tokens = BUDGET;
    c.conversation.keep_recent_turns = 1;
    c.conversation.summary_tokens = 120;
}

/// Talk that pushes the first fact out of the exchanges kept word for word.
const TALK: [&str; 9] = [
    "Tell me something about rivers.",
    "Why is the sky blue?",
    "Give me a tip for baking bread.",
    "What do owls eat?",
    "Tell me about the moon.",
    "How do bees make honey?",
    "What is a good name for a cat?",
    "Why do leaves change colour in autumn?",
    "Tell me a fact about whales.",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_conversation_stays_under_budget_and_its_first_fact_is_answerable() {
    let Models::Real(llm, embedder) = real_models(48).await else {
        unreachable!("real_models gives the test models")
    };
    let mut hub = hub_over(
        tempfile::tempdir().unwrap(),
        folding,
        llm,
        Seen::default(),
        embedder,
        Gate::default(),
    );
    let first = hub.ask("u0", "My locker code at the gym is 4471.").await;
    hub.received("u0").await;
    let base = first.prompt_tokens;
    assert!(base > 0);
    let mut most = 0;
    for (i, text) in TALK.iter().enumerate() {
        let id = format!("u{}", i + 1);
        let turn = hub.ask(&id, text).await;
        hub.received(&id).await;
        folded(&hub).await;
        assert_eq!(turn.outcome, Outcome::Finished, "{text}");
        let tokens = hub
            .pipeline
            .home
            .with(|h| h.conversations.history_tokens("kitchen"));
        assert!(
            tokens <= BUDGET,
            "after {text:?} the history is {tokens} tokens"
        );
        // The prompt is the system prompt, the history within the budget (estimated high),
        // and the utterance: what the first turn had, plus the budget, plus the template's
        // few tokens a message and an utterance up to a dozen tokens longer.
        assert!(
            turn.prompt_tokens <= base + BUDGET + 40,
            "turn {i}: {} prompt tokens against {base} for the first turn",
            turn.prompt_tokens
        );
        most = most.max(turn.prompt_tokens);
    }
    let (summary, kept) = hub.pipeline.home.with(|h| {
        (
            h.conversations.summary("kitchen").to_string(),
            h.conversations.exchanges("kitchen"),
        )
    });
    assert!(
        kept.iter().all(|(u, _)| !u.contains("4471")),
        "the first exchange was folded: {kept:?}"
    );
    assert!(
        summary.contains("4471"),
        "the summary keeps it: {summary:?}"
    );
    assert!(most > base, "the history was in the prompt");

    let turn = hub.ask("u99", "What is my locker code at the gym?").await;
    hub.received("u99").await;
    // The model's thread must not be writing a fold when the test process ends.
    folded(&hub).await;
    assert!(
        turn.reply.contains("4471"),
        "the answer {:?} (summary {summary:?})",
        turn.reply
    );
}

#[tokio::test]
async fn a_failing_preprocessor_keeps_the_statements_and_forget_clears_the_summary() {
    // The scripted model fails every background job without a grammar: the preprocessor's.
    let mut hub = hub_with(
        |c| {
            folding(c);
            // The scripted replies are short: fold by count.
            c.conversation.history_turns = 3;
        },
        |g| {
            Scripted::start(
                |r: &GenerateRequest| {
                    if r.role == crate::llm::JobRole::Preprocessor {
                        return Err(LlmError::Inference("scripted failure".into()));
                    }
                    script(r)
                },
                g,
            )
        },
        Gate::default(),
    );
    hub.ask("u0", "My locker code at the gym is 4471.").await;
    hub.received("u0").await;
    for (i, text) in TALK.iter().take(3).enumerate() {
        let id = format!("u{}", i + 1);
        hub.ask(&id, text).await;
        hub.received(&id).await;
        folded(&hub).await;
    }
    let summary = hub
        .pipeline
        .home
        .with(|h| h.conversations.summary("kitchen").to_string());
    assert_eq!(
        summary, "They said: \"My locker code at the gym is 4471.\"",
        "questions are not statements"
    );
    assert!(hub.history().len() <= 2);
    let log = hub.pipeline.subconscious.memories().role_log().clone();
    let folds = log
        .entries(Some(crate::llm::JobRole::Preprocessor))
        .unwrap();
    assert!(!folds.is_empty());
    assert!(folds
        .iter()
        .all(|e| e.outcome == [crate::memory::rolelog::Signal::Rejected]));
    let turn = hub.ask("u9", "Tell me about foxes.").await;
    assert!(turn.prompt[0]
        .content
        .contains("[EARLIER IN THIS CONVERSATION] They said"));

    hub.ask("u10", "Forget my locker code.").await;
    let summary = hub
        .pipeline
        .home
        .with(|h| h.conversations.summary("kitchen").to_string());
    assert_eq!(summary, "", "what was forgotten does not stay in a summary");
}
