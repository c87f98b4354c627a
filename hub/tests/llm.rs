//! The inference engine on real GGUF models: streaming, KV-cache reuse that does not change
//! the output, the chat template fallback for a Gemma GGUF without one, and prompts that do not
//! fit the context. Needs the models from `scripts/fetch-models`.

use std::time::Instant;

use hearth_hub::config::LlmConfig;
use hearth_hub::llm::{
    ChatMessage, GenerateRequest, GenerationStats, LlmError, LlmEvent, LlmHandle, Role,
    TemplateSource,
};
use tokio_util::sync::CancellationToken;

fn config(file: &str) -> LlmConfig {
    LlmConfig {
        model: hearth_tests::model(file),
        threads: 2,
        threads_batch: 2,
        context_tokens: 1024,
        max_reply_tokens: 48,
        temperature: 0.0,
        ..LlmConfig::default()
    }
}

fn smollm2() -> LlmConfig {
    config("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn chat(user: &str) -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(
            Role::System,
            "You are Hearth, a concise household assistant. Answer in short sentences.",
        ),
        ChatMessage::new(Role::User, user),
    ]
}

#[tokio::test]
async fn reusing_the_kv_cache_gives_the_same_answer_as_a_cold_start() {
    let (warm, _t) = LlmHandle::start(smollm2()).await.unwrap();
    assert_eq!(warm.info().template, TemplateSource::Gguf);
    let (first, s1) = warm
        .complete(GenerateRequest::chat(chat("What is the moon?")))
        .await
        .unwrap();
    let (second, s2) = warm
        .complete(GenerateRequest::chat(chat("Why is the sky blue?")))
        .await
        .unwrap();
    assert!(!first.is_empty() && !second.is_empty());
    assert_eq!(s1.reused_tokens, 0, "nothing cached yet");
    // The system prompt and the template's opening tokens are shared and reused.
    assert!(
        s2.reused_tokens >= 15,
        "reused {} of {}",
        s2.reused_tokens,
        s2.prompt_tokens
    );
    assert!(s2.reused_tokens < s2.prompt_tokens);
    assert_eq!(
        s2.text,
        second.join(" "),
        "the sentences are the whole text"
    );

    // A fresh engine that never saw the first question answers the second identically.
    let (cold, _t) = LlmHandle::start(smollm2()).await.unwrap();
    let (cold_second, _) = cold
        .complete(GenerateRequest::chat(chat("Why is the sky blue?")))
        .await
        .unwrap();
    assert_eq!(cold_second, second);
}

/// `question` after the hub's own system prompt, answered in at most `max_tokens`.
fn asked_with_hub_prompt(question: &str, max_tokens: u32) -> GenerateRequest {
    let system = hearth_hub::config::ConversationConfig::default().system_prompt;
    GenerateRequest {
        max_tokens: Some(max_tokens),
        ..GenerateRequest::chat(vec![
            ChatMessage::new(Role::System, system),
            ChatMessage::new(Role::User, question),
        ])
    }
}

/// Streams `request` to its end: the chunks as they came, and the stats.
async fn stream(llm: &LlmHandle, request: GenerateRequest) -> (Vec<String>, GenerationStats) {
    let rx = llm.generate(request, CancellationToken::new()).unwrap();
    received(rx).await
}

/// The sentences and the stats of a queued request.
async fn received(mut rx: tokio::sync::mpsc::Receiver<LlmEvent>) -> (Vec<String>, GenerationStats) {
    let mut chunks = Vec::new();
    loop {
        match rx.recv().await.unwrap() {
            LlmEvent::Sentence(s) => chunks.push(s),
            LlmEvent::Done(stats) => return (chunks, stats),
            LlmEvent::Failed(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn sentences_stream_before_the_reply_is_done() {
    let (llm, _t) = LlmHandle::start(smollm2()).await.unwrap();
    // With the hub's own system prompt greedy SmolLM2 answers this in several sentences.
    let request = asked_with_hub_prompt("Describe a cat in a few sentences.", 80);
    let (sentences, stats) = stream(&llm, request).await;
    assert!(stats.generated_tokens > 0);
    assert!(sentences.iter().all(|s| !s.trim().is_empty()));
    assert!(sentences.len() >= 2, "{sentences:?}");
}

#[tokio::test]
async fn a_long_first_sentence_starts_with_its_first_clause() {
    let (llm, _t) = LlmHandle::start(smollm2()).await.unwrap();
    let request = asked_with_hub_prompt("Tell me a short story about a lighthouse keeper.", 60);
    let (chunks, stats) = stream(&llm, request).await;
    let text = stats.text;
    // Greedy SmolLM2 opens the story with a long sentence, "One day, in the heart of the
    // Strait of Gibraltar, a lighthouse keeper ...": its first clause has two words, fewer
    // than `llm.first_clause_words` (4), and the next runs past `llm.first_chunk_words` (8),
    // so the first chunk is cut at that first clause mark, and the rest go by sentences.
    assert_eq!(chunks[0], "One day,", "{chunks:?}");
    assert!(
        chunks[1].ends_with('.'),
        "only the first chunk is a clause: {chunks:?}"
    );
    assert_eq!(chunks.join(" "), text, "the chunks are the whole text");
}

/// `llm.first_chunk_ms`: once the reply's first token is that old, the first chunk goes at
/// its next word from `first_clause_words` on. At 1 ms every reply is that slow.
#[tokio::test]
async fn a_slow_first_chunk_goes_after_a_few_words() {
    let config = LlmConfig {
        first_chunk_ms: 1,
        first_chunk_words: 0,
        ..smollm2()
    };
    let (llm, _t) = LlmHandle::start(config).await.unwrap();
    let request = asked_with_hub_prompt("Tell me a fun fact about owls.", 40);
    let (chunks, stats) = stream(&llm, request).await;
    // Greedy SmolLM2 opens with a sentence of twenty words ("The most famous and most
    // interesting fact about owls is that ..."): the first chunk holds its first four words
    // and those that lead on from them ("and most interesting"), the rest go by sentences.
    let words = chunks[0].split_whitespace().count();
    assert!(
        (4..=8).contains(&words) && !chunks[0].ends_with(['.', '!', '?']),
        "{chunks:?}"
    );
    assert!(chunks[1].ends_with('.'), "{chunks:?}");
    assert_eq!(
        chunks.join(" "),
        stats.text,
        "the chunks are the whole text"
    );
}

#[tokio::test]
async fn cancelling_stops_generation_early() {
    let (llm, _t) = LlmHandle::start(smollm2()).await.unwrap();
    let cancel = CancellationToken::new();
    let request = GenerateRequest {
        messages: chat("Count from one to one hundred."),
        max_tokens: Some(200),
        ignore_eos: true,
        ..GenerateRequest::chat(Vec::new())
    };
    let mut rx = llm.generate(request, cancel.clone()).unwrap();
    cancel.cancel();
    loop {
        match rx.recv().await.unwrap() {
            LlmEvent::Sentence(_) => {}
            LlmEvent::Done(stats) => {
                assert!(stats.cancelled);
                assert!(stats.generated_tokens < 200);
                break;
            }
            LlmEvent::Failed(e) => panic!("{e}"),
        }
    }
    // The engine serves the next request normally.
    let (s, _) = llm
        .complete(GenerateRequest::chat(chat("Say hi.")))
        .await
        .unwrap();
    assert!(!s.is_empty());
}

#[tokio::test]
async fn gemma_gguf_without_a_template_uses_the_configured_fallback() {
    let mut cfg = config("gemma-3-270m-q4_k_m.gguf");
    cfg.chat_template_fallback = "gemma".into();
    let (llm, _t) = LlmHandle::start(cfg.clone()).await.unwrap();
    assert_eq!(
        llm.info().template,
        TemplateSource::Fallback("gemma".into())
    );
    assert_eq!(llm.info().architecture.as_deref(), Some("gemma3"));
    let (_, stats) = llm
        .complete(GenerateRequest::chat(chat("Hello, who are you?")))
        .await
        .unwrap();
    assert!(stats.generated_tokens > 0);

    cfg.chat_template_fallback = String::new();
    let err = LlmHandle::start(cfg.clone()).await.unwrap_err();
    assert!(matches!(err, LlmError::NoChatTemplate { .. }), "{err}");
    assert!(
        err.to_string().contains("gemma-3-270m-q4_k_m.gguf"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unknown_template_name_fails_at_start_up() {
    let mut cfg = smollm2();
    cfg.chat_template_override = "no-such-template".into();
    let err = LlmHandle::start(cfg).await.unwrap_err();
    assert!(matches!(err, LlmError::Template { .. }), "{err}");
    assert!(err.to_string().contains("no-such-template"));
}

#[tokio::test]
async fn old_turns_are_dropped_to_fit_and_a_huge_message_is_refused() {
    let mut cfg = smollm2();
    cfg.context_tokens = 256;
    cfg.max_reply_tokens = 32;
    let (llm, _t) = LlmHandle::start(cfg).await.unwrap();
    let mut messages = vec![ChatMessage::new(Role::System, "You are Hearth.")];
    for i in 0..20 {
        messages.push(ChatMessage::new(
            Role::User,
            format!("This is old question number {i} about the garden."),
        ));
        messages.push(ChatMessage::new(
            Role::Assistant,
            format!("This is old answer number {i} about the garden."),
        ));
    }
    messages.push(ChatMessage::new(Role::User, "What is new?"));
    let (_, stats) = llm.complete(GenerateRequest::chat(messages)).await.unwrap();
    assert!(stats.prompt_tokens + 32 <= 256, "{}", stats.prompt_tokens);

    let huge = vec![ChatMessage::new(Role::User, "garden ".repeat(400))];
    let err = llm.complete(GenerateRequest::chat(huge)).await.unwrap_err();
    assert!(matches!(err, LlmError::PromptTooLong { .. }), "{err}");
    // And the engine is still fine.
    llm.complete(GenerateRequest::chat(chat("Say hi.")))
        .await
        .unwrap();
}

/// A build without a GPU backend runs every layer on the CPU whatever `gpu_layers` asks, and
/// says where the model runs (the start-up log warns about the setting).
#[tokio::test]
async fn a_cpu_build_runs_every_layer_on_the_cpu_and_says_so() {
    // llama-cpp-2 turns Metal on by itself on macOS.
    if cfg!(any(
        feature = "cuda",
        feature = "vulkan",
        target_os = "macos"
    )) {
        return;
    }
    let (llm, _t) = LlmHandle::start(LlmConfig {
        gpu_layers: 99,
        ..smollm2()
    })
    .await
    .unwrap();
    let info = llm.info();
    assert_eq!((info.backend.as_str(), info.gpu_layers), ("CPU", 0));
    assert_eq!(info.layers, 30, "SmolLM2-135M has 30 blocks");
    let (sentences, _) = stream(&llm, GenerateRequest::chat(chat("Hello!"))).await;
    assert!(!sentences.is_empty());
}

#[tokio::test]
async fn rooms_decoded_together_answer_their_own_questions_and_join_a_running_answer() {
    const QUESTIONS: [&str; 4] = [
        "Name a famous river in Europe.",
        "How do I keep basil alive?",
        "What is a nice name for a cat?",
        "Tell me a fun fact about owls.",
    ];
    const SUBJECTS: [&str; 4] = ["river", "basil", "cat", "owl"];
    let request = |q: &str, lane: &str| GenerateRequest {
        lane: lane.to_string(),
        max_tokens: Some(24),
        ..GenerateRequest::chat(chat(q))
    };
    let (alone, _t) = LlmHandle::start(smollm2()).await.unwrap();
    let mut expected = Vec::new();
    for q in QUESTIONS {
        let (_, stats) = alone.complete(request(q, "room")).await.unwrap();
        assert_eq!(stats.together, 1);
        expected.push(stats.text);
    }
    drop(alone);

    let config = LlmConfig {
        parallel: 4,
        context_tokens: 2048,
        ..smollm2()
    };
    let (llm, _t) = LlmHandle::start(config).await.unwrap();
    // A first answer keeps the model busy (its first sentence is out, and it runs to 160
    // tokens) while the four rooms ask: three join it at its next step (four sequences), the
    // fourth when one of them stops, and all are answered before it ends, rather than after.
    let hall = GenerateRequest {
        max_tokens: Some(160),
        ignore_eos: true,
        ..request("Describe a cat.", "hall")
    };
    let mut first = llm.generate(hall, CancellationToken::new()).unwrap();
    let opening = first.recv().await.unwrap();
    assert!(matches!(opening, LlmEvent::Sentence(_)), "{opening:?}");
    let rooms: Vec<_> = QUESTIONS
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let rx = llm.generate(request(q, &format!("room{i}")), CancellationToken::new());
            tokio::spawn(async move { (received(rx.unwrap()).await, Instant::now()) })
        })
        .collect();
    let (_, hall_stats) = received(first).await;
    let hall_done = Instant::now();
    assert_eq!(hall_stats.generated_tokens, 160);
    // A sequence's cells lie in a KV stream of its own, not a lone one's, and a batch holds
    // other rows, so the sums may add the same terms in another order: a greedy
    // answer may part from the lone one at a near tie (even identical requests in one batch
    // do, in different sequences), and which rows share a batch depends on when each room
    // joined ("How do I keep basil alive?" began "1. Plant basil" alone and, in one run of
    // three, "To keep basil alive" together). So each answer is checked for its subject.
    for (i, room) in rooms.into_iter().enumerate() {
        let ((sentences, stats), done) = room.await.unwrap();
        assert!(stats.together > 1, "room{i} was answered alone");
        assert!(
            done < hall_done,
            "room{i} waited for the hall's answer to end"
        );
        assert_eq!(
            sentences.join(" "),
            stats.text,
            "room{i} streamed its own sentences"
        );
        // Each answers its own question: a sequence given another's logits or cells, or the
        // wrong positions, would not.
        let subject = SUBJECTS[i];
        for (how, text) in [("alone", &expected[i]), ("together", &stats.text)] {
            assert!(
                text.to_lowercase().contains(subject),
                "room{i} {how} does not speak of {subject}: {text:?}"
            );
        }
    }
}

/// Rooms that ask at the same moment while another is being answered join a step apart
/// (`llm.join_tokens_per_step`): each waits for its own prompt, not for all of theirs, and
/// their answers do not end in the same step.
#[tokio::test]
async fn rooms_that_ask_together_join_one_step_apart() {
    let config = LlmConfig {
        parallel: 4,
        join_tokens_per_step: 0,
        ..smollm2()
    };
    let (llm, _t) = LlmHandle::start(config).await.unwrap();
    let request = |q: &str, lane: &str, tokens: u32| GenerateRequest {
        lane: lane.to_string(),
        max_tokens: Some(tokens),
        ignore_eos: true,
        ..GenerateRequest::chat(chat(q))
    };
    let mut hall = (llm.generate(
        request("Describe a cat.", "hall", 96),
        CancellationToken::new(),
    ))
    .unwrap();
    let opening = hall.recv().await.unwrap();
    assert!(matches!(opening, LlmEvent::Sentence(_)), "{opening:?}");
    let questions = ["Name a river.", "Name a bird.", "Name a tree."];
    let rooms: Vec<_> = (questions.iter().enumerate())
        .map(|(i, q)| {
            llm.generate(
                request(q, &format!("room{i}"), 24),
                CancellationToken::new(),
            )
        })
        .collect();
    let mut together = Vec::new();
    for rx in rooms {
        let (_, stats) = received(rx.unwrap()).await;
        assert_eq!(stats.generated_tokens, 24);
        together.push(stats.together);
    }
    received(hall).await;
    // Each joined at a step of its own, beside one more live sequence than the one before.
    together.sort();
    assert_eq!(together, [2, 3, 4], "the rooms did not join a step apart");
}

/// With a KV stream per room, a room with nothing queued between two live ones has its last
/// token evaluated again at each step (so that the step stays one pass): its kept sequence
/// must come out of that whole, for its next turn to reuse.
#[tokio::test]
async fn a_room_idle_between_two_answers_keeps_its_sequence_for_its_next_turn() {
    let config = LlmConfig {
        parallel: 3,
        context_tokens: 1024,
        ..smollm2()
    };
    assert!(config.kv_per_room);
    let (llm, _t) = LlmHandle::start(config).await.unwrap();
    let long = |q: &str, lane: &str| GenerateRequest {
        lane: lane.to_string(),
        max_tokens: Some(48),
        ignore_eos: true,
        ..GenerateRequest::chat(chat(q))
    };
    let first = chat("Name a famous river in Europe.");
    let short = GenerateRequest {
        lane: "middle".to_string(),
        max_tokens: Some(6),
        ..GenerateRequest::chat(first.clone())
    };
    // Seated in the order they ask, the middle room's sequence lies between the other two,
    // and it stops some 40 steps before them.
    let left = llm.generate(long("Describe a cat.", "left"), CancellationToken::new());
    let middle = llm.generate(short, CancellationToken::new()).unwrap();
    let right = llm.generate(long("Describe a dog.", "right"), CancellationToken::new());
    let outer = [left.unwrap(), right.unwrap()];
    let (_, before) = received(middle).await;
    // `together` counts the live sequences when a room was seated: the left one may have
    // started alone, before the others asked, and the right one joined it.
    let mut together = 0;
    for rx in outer {
        let (_, stats) = received(rx).await;
        assert_eq!(stats.generated_tokens, 48);
        together = together.max(stats.together);
    }
    assert!(together > 1, "the outer rooms were not decoded together");
    let mut next = first;
    next.push(ChatMessage::new(Role::Assistant, &before.text));
    next.push(ChatMessage::new(
        Role::User,
        "And a famous river in Africa?",
    ));
    let (_, after) = stream(
        &llm,
        GenerateRequest {
            lane: "middle".to_string(),
            max_tokens: Some(24),
            ..GenerateRequest::chat(next)
        },
    )
    .await;
    assert!(
        after.reused_tokens > before.prompt_tokens,
        "the next turn reused {} tokens of the {} its room's sequence held",
        after.reused_tokens,
        before.prompt_tokens + before.generated_tokens
    );
    assert!(
        after.text.to_lowercase().contains("river") || after.text.contains("Nile"),
        "{:?}",
        after.text
    );
}

/// `scripts/random-gguf` writes what the GPU figures were measured with: a model in Gemma 4's
/// shapes with random weights. Its tiny preset has the same tensors, so if llama.cpp's
/// expectations move, this fails here rather than on a lent GPU machine.
#[tokio::test]
async fn random_weights_in_gemma4_shapes_load_and_generate() {
    let gemma = hearth_tests::model("gemma-3-270m-q4_k_m.gguf");
    let pydeps = gemma.parent().unwrap().join(".pydeps");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/random-gguf");
    let dir = tempfile::tempdir().unwrap();
    let (tok, tiny) = (dir.path().join("tok.gguf"), dir.path().join("tiny.gguf"));
    let run = |args: &[&std::ffi::OsStr]| {
        let out = std::process::Command::new("python3")
            .arg(&script)
            .args(args)
            .env("PYTHONPATH", &pydeps)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "random-gguf {args:?}: {err}");
    };
    run(&[
        "--extract-tokenizer".as_ref(),
        gemma.as_ref(),
        "--out".as_ref(),
        tok.as_ref(),
    ]);
    run(&[
        "--preset".as_ref(),
        "gemma4-tiny".as_ref(),
        "--tokenizer".as_ref(),
        tok.as_ref(),
        "--out".as_ref(),
        tiny.as_ref(),
    ]);
    let mut cfg = config("gemma-3-270m-q4_k_m.gguf");
    cfg.model = tiny;
    cfg.chat_template_fallback = "gemma".into();
    let (llm, _t) = LlmHandle::start(cfg).await.unwrap();
    assert_eq!(llm.info().architecture.as_deref(), Some("gemma4"));
    assert_eq!(llm.info().layers, 4);
    let request = GenerateRequest {
        max_tokens: Some(8),
        ignore_eos: true,
        ..GenerateRequest::chat(chat("Hello!"))
    };
    let (_, stats) = llm.complete(request).await.unwrap();
    assert_eq!(stats.generated_tokens, 8);
}
