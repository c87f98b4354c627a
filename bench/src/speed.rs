//! `hearth-bench llm`: the hub's generation speed against a bare llama-cpp-2 loop on the
//! same model and thread count, and the time to the first sentence chunk, in-process and over
//! MQTT through the embedded broker. Prints a table; asserts nothing.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use anyhow::Context;
use hearth_shared::{decode, encode, now_ms, Channel, ReplyChunk, Topics, Utterance};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;

use hearth_hub::config::HubConfig;
use hearth_hub::llm::{
    bare_generation_loop, ChatMessage, GenerateRequest, LlmEvent, LlmHandle, Role,
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct LlmBenchOptions {
    /// Tokens generated per run (end-of-turn is ignored so that every run makes this many).
    pub tokens: usize,
    /// Runs of each kind; the table shows medians.
    pub runs: usize,
}

const PROMPT: &str = "Tell me about the moon in three short sentences.";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the benchmark and prints the table to stdout.
pub async fn llm(config: HubConfig, opts: LlmBenchOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        opts.runs > 0 && opts.tokens > 0,
        "--runs and --tokens must be at least 1"
    );
    let messages = vec![
        ChatMessage::new(Role::System, config.conversation.system_prompt.clone()),
        ChatMessage::new(Role::User, PROMPT),
    ];
    let (llm, _thread) = LlmHandle::start(config.llm.clone()).await?;
    let placed = llm.info().clone();

    let mut bare_tps = Vec::new();
    let mut hub_tps = Vec::new();
    let mut first_sentence_ms = Vec::new();
    for run in 0..opts.runs {
        eprintln!("run {}/{}: bare loop", run + 1, opts.runs);
        let cfg = config.llm.clone();
        let msgs = messages.clone();
        let n = opts.tokens;
        let (_, generated, took) =
            tokio::task::spawn_blocking(move || bare_generation_loop(&cfg, &msgs, n)).await??;
        bare_tps.push(generated as f64 / took.as_secs_f64());

        eprintln!("run {}/{}: hub engine", run + 1, opts.runs);
        let request = GenerateRequest {
            messages: messages.clone(),
            max_tokens: Some(opts.tokens as u32),
            ignore_eos: true,
            ..GenerateRequest::chat(Vec::new())
        };
        let submitted = Instant::now();
        let mut rx = llm.generate(request, CancellationToken::new())?;
        let mut first = None;
        while let Some(event) = rx.recv().await {
            match event {
                LlmEvent::Sentence(_) => {
                    first.get_or_insert_with(|| submitted.elapsed());
                }
                LlmEvent::Done(stats) => {
                    hub_tps.push(stats.generated_tokens as f64 / stats.generation.as_secs_f64());
                    break;
                }
                LlmEvent::Failed(e) => return Err(e.into()),
            }
        }
        if let Some(f) = first {
            first_sentence_ms.push(f.as_secs_f64() * 1e3);
        }
    }
    drop(llm);

    let bare = median(bare_tps);
    let hub = median(hub_tps);
    let info = hearth_hub::llm::gguf::validate(&config.llm.model)?;
    println!();
    println!(
        "model: {} ({}), threads: {}/{}, tokens per run: {}, runs: {}",
        config.llm.model.display(),
        info.name.unwrap_or_default(),
        config.llm.threads,
        config.llm.threads_batch,
        opts.tokens,
        opts.runs
    );
    println!(
        "backend: {}, layers on a GPU: {} of {} (llm.gpu_layers = {})",
        placed.backend, placed.gpu_layers, placed.layers, config.llm.gpu_layers
    );
    println!("| measure | median |");
    println!("|---|---|");
    println!("| bare llama-cpp-2 loop, tokens/s | {bare:.1} |");
    println!("| hub engine, tokens/s | {hub:.1} |");
    println!("| hub overhead | {:.1}% |", (bare - hub) / bare * 100.0);
    if !first_sentence_ms.is_empty() {
        println!(
            "| time to first sentence, in-process (cold prompt then cached prefix) | {:.0} ms |",
            median(first_sentence_ms)
        );
    }
    // The rows above stand even if the hub over MQTT never answers.
    eprintln!("over MQTT: starting an in-process hub with its embedded broker");
    let mqtt_first_chunk_ms = over_mqtt(config.clone(), opts.runs).await?;
    println!(
        "| time to first reply chunk over MQTT, utterance sent to chunk received | {:.0} ms |",
        median(mqtt_first_chunk_ms)
    );
    Ok(())
}

/// Starts a whole hub in-process on a free loopback port and times utterance -> first chunk.
async fn over_mqtt(mut config: HubConfig, runs: usize) -> anyhow::Result<Vec<f64>> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    config.mqtt.embedded_broker = true;
    config.mqtt.listen = ([127, 0, 0, 1], port).into();
    config.mqtt.host = "127.0.0.1".into();
    config.mqtt.port = port;
    config.conversation.history_turns = 0;
    // A throwaway memory, so that the benchmark never touches the household's.
    let memory_dir =
        std::env::temp_dir().join(format!("hearth-bench-memory-{}", std::process::id()));
    config.memory.path = memory_dir.clone();
    config.pixie.path = memory_dir.join("pixie");
    let topics = Topics::new(&config.mqtt.topic_prefix)?;
    let shutdown = CancellationToken::new();
    let hub = tokio::spawn(hearth_hub::run(config.clone(), shutdown.clone()));

    let mut opts = MqttOptions::new("hearth-bench", "127.0.0.1", port);
    opts.set_credentials(&config.mqtt.username, &config.mqtt.password);
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let reply_topic = topics.terminal("bench", Channel::Reply)?;
    let mut results = Vec::new();
    // Subscribed to the replies (both subscriptions acknowledged), and the hub said it is
    // online: an utterance sent before the hub subscribed to utterances would be lost, and
    // the broker starts before the hub's own client connects.
    let (mut acked, mut hub_online) = (0, false);
    let mut sent: Option<(String, Instant)> = None;
    let mut first_seen = false;
    let deadline = Instant::now() + Duration::from_secs(600);
    while results.len() < runs {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the in-process hub did not answer within 600 s (online: {hub_online})"
        );
        if let Some((id, at)) = &sent {
            anyhow::ensure!(
                at.elapsed() < Duration::from_secs(120),
                "no reply to {id} from the in-process hub within 120 s"
            );
        }
        let event = match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
            Ok(Ok(e)) => e,
            Ok(Err(_)) => {
                // The broker is not up yet (the model loads first).
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(_) => continue,
        };
        match event {
            Event::Incoming(Packet::ConnAck(_)) => {
                acked = 0;
                for t in [&reply_topic, &topics.hub_presence()] {
                    client.subscribe(t, QoS::AtLeastOnce).await?;
                }
            }
            Event::Incoming(Packet::SubAck(_)) => acked += 1,
            Event::Incoming(Packet::Publish(p)) if p.topic == topics.hub_presence() => {
                hub_online = decode::<hearth_shared::HubPresence>(&p.payload, usize::MAX)
                    .map(|h| h.online)
                    .unwrap_or(false);
            }
            Event::Incoming(Packet::Publish(p)) => {
                let chunk: ReplyChunk = decode(&p.payload, usize::MAX)?;
                if let Some((id, at)) = &sent {
                    if &chunk.utterance_id == id && !first_seen {
                        results.push(at.elapsed().as_secs_f64() * 1e3);
                        first_seen = true;
                    }
                    if &chunk.utterance_id == id && chunk.is_final {
                        sent = None;
                    }
                }
            }
            _ => {}
        }
        let subscribed = acked >= 2;
        if subscribed && hub_online && sent.is_none() && results.len() < runs {
            let id = format!("bench-{}", results.len());
            let u = Utterance {
                id: id.clone(),
                terminal: "bench".into(),
                room: "bench".into(),
                text: PROMPT.into(),
                started_at_ms: now_ms(),
                ended_at_ms: now_ms(),
                audio: None,
                speaker: None,
            };
            client
                .publish(
                    topics.terminal("bench", Channel::Utterance)?,
                    QoS::AtLeastOnce,
                    false,
                    encode(&u),
                )
                .await?;
            sent = Some((id, Instant::now()));
            first_seen = false;
        }
    }
    shutdown.cancel();
    hub.await.context("in-process hub panicked")??;
    let _ = std::fs::remove_dir_all(&memory_dir);
    Ok(results)
}

/// What the memory benchmark measures.
#[derive(Debug, Clone)]
pub struct MemoryBenchOptions {
    /// Store sizes to measure, in memories.
    pub sizes: Vec<usize>,
    /// Retrieval queries per size.
    pub queries: usize,
}

/// A small deterministic PRNG (xorshift64*), so that every run measures the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }

    fn unit_vector(&mut self, dim: usize) -> Vec<f32> {
        let v: Vec<f32> = (0..dim)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
        v.into_iter().map(|x| x / n).collect()
    }
}

const NAMES: &[&str] = &[
    "Anna", "Ben", "Clara", "David", "Eva", "Farid", "Grace", "Hugo", "Ines", "Jonas", "Kai",
    "Lena",
];
const VERBS: &[&str] = &[
    "visited",
    "called about",
    "bought",
    "fixed",
    "talked about",
    "forgot",
    "planned",
    "loved",
];
const OBJECTS: &[&str] = &[
    "the boiler",
    "a new bike",
    "the garden",
    "lemon tart",
    "the train tickets",
    "the basil",
    "a birthday gift",
    "the roof",
    "piano lessons",
    "the dentist",
];
const PLACES: &[&str] = &[
    "Porto",
    "Berlin",
    "the kitchen",
    "the office",
    "Lisbon",
    "the market",
    "school",
    "the lake",
];
const DAYS: &[&str] = &[
    "on Monday",
    "last week",
    "in March",
    "yesterday",
    "on Friday evening",
    "next month",
    "at Easter",
];

fn synthetic_text(rng: &mut Rng) -> String {
    format!(
        "{} {} {} in {} {}.",
        rng.pick(NAMES),
        rng.pick(VERBS),
        rng.pick(OBJECTS),
        rng.pick(PLACES),
        rng.pick(DAYS)
    )
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_size(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Ingest rate, durable single-write latency, hybrid retrieval latency and disk size at each
/// size. Texts are synthetic and vectors random (embedding 100k texts would take an hour on
/// 2 cores); the real model's time per query is measured on its own.
pub async fn memory(config: HubConfig, opts: MemoryBenchOptions) -> anyhow::Result<()> {
    use hearth_hub::memory::retrieval::retrieve;
    use hearth_hub::memory::{Embedding, Memories, NewMemory, Speaker};
    anyhow::ensure!(
        opts.queries > 0 && !opts.sizes.is_empty(),
        "--queries and --sizes must be set"
    );

    eprintln!("measuring the real embedding model on 50 questions");
    let (embedder, _t) = hearth_hub::llm::embed::Embedder::start(config.embeddings.clone()).await?;
    let dim = embedder.dim();
    let mut rng = Rng(42);
    let mut embed_ms = Vec::new();
    for _ in 0..50 {
        let q = format!(
            "What did {} do with {}?",
            rng.pick(NAMES),
            rng.pick(OBJECTS)
        );
        // As recall embeds it: with and without the name, in one batch.
        let t = Instant::now();
        hearth_hub::subconscious::embed_question(
            &embedder,
            &q,
            config.memory.retrieval.unnamed_share,
        )
        .await?;
        embed_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    embed_ms.sort_by(f64::total_cmp);

    println!();
    println!("hybrid retrieval (BM25 + {dim}-d cosine + recency + importance + strength), k = 10, {} queries per size", opts.queries);
    println!("| memories | batched ingest, memories/s | durable single write p50 | retrieval p50 | retrieval p99 | disk |");
    println!("|---|---|---|---|---|---|");
    let now = now_ms();
    for &size in &opts.sizes {
        let dir =
            std::env::temp_dir().join(format!("hearth-bench-memory-{}-{size}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let memories = std::sync::Arc::new(Memories::open(&dir, dim)?);
        eprintln!("{size}: ingesting");
        let started = Instant::now();
        let mut done = 0;
        while done < size {
            let n = (size - done).min(1000);
            let batch: Vec<(NewMemory, Option<Vec<f32>>)> = (0..n)
                .map(|i| {
                    let new = NewMemory {
                        text: synthetic_text(&mut rng),
                        room: "kitchen".into(),
                        speaker: Speaker::User,
                        created_at_ms: now - ((done + i) as u64 % 365) * 86_400_000,
                        salience: (rng.next() % 100) as f32 / 100.0,
                        source: None,
                    };
                    (new, Some(rng.unit_vector(dim)))
                })
                .collect();
            let m = std::sync::Arc::clone(&memories);
            tokio::task::spawn_blocking(move || m.remember_batch(batch)).await??;
            done += n;
        }
        let ingest_rate = size as f64 / started.elapsed().as_secs_f64();

        eprintln!("{size}: single durable writes");
        let mut single = Vec::new();
        for _ in 0..30 {
            let new = NewMemory {
                text: synthetic_text(&mut rng),
                room: "kitchen".into(),
                speaker: Speaker::User,
                created_at_ms: now,
                salience: 0.5,
                source: None,
            };
            let v = rng.unit_vector(dim);
            let t = Instant::now();
            memories.remember_embedded(new, Some(&Embedding::whole(v)))?;
            single.push(t.elapsed().as_secs_f64() * 1e3);
        }
        single.sort_by(f64::total_cmp);

        eprintln!("{size}: retrieval");
        let mut latencies = Vec::new();
        for _ in 0..opts.queries {
            let q = format!(
                "{} {} {}",
                rng.pick(NAMES),
                rng.pick(OBJECTS),
                rng.pick(PLACES)
            );
            let v = rng.unit_vector(dim);
            let t = Instant::now();
            let hits = retrieve(
                &memories,
                &q,
                Some(&v),
                10,
                now,
                &config.memory.retrieval,
                &config.memory.lifecycle,
            )?;
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
            anyhow::ensure!(!hits.is_empty(), "retrieval found nothing for {q:?}");
        }
        latencies.sort_by(f64::total_cmp);
        let disk = dir_size(&dir) as f64 / 1e6;
        println!(
            "| {size} | {ingest_rate:.0} | {:.1} ms | {:.2} ms | {:.2} ms | {disk:.0} MB |",
            percentile(&single, 0.5),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );
        drop(memories);
        let _ = std::fs::remove_dir_all(&dir);
    }
    println!(
        "| embedding a query with the real model | | | {:.1} ms | {:.1} ms | |",
        percentile(&embed_ms, 0.5),
        percentile(&embed_ms, 0.99)
    );
    Ok(())
}
