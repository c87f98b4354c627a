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
        let t = Instant::now();
        embedder.embed(vec![q]).await?;
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

/// What `bench rooms` does.
#[derive(Debug, Clone)]
pub struct RoomsBenchOptions {
    /// Simulated terminals, one room each.
    pub terminals: usize,
    /// Utterances each sends, one after the other's answer.
    pub utterances: usize,
    /// The longest reply, in tokens (keeps the run short).
    pub max_tokens: u32,
    /// Terminals more, all in one busy room ("busy"), sending like the others: with rooms
    /// taking turns it gets one room's share of the model; first come, first served, it gets
    /// one terminal's share each, and the other rooms wait longer.
    pub busy_room_terminals: usize,
    /// Run twice, the rooms decoded one at a time (`llm.parallel = 1`) and together (one
    /// sequence per terminal), and compare.
    pub concurrent: bool,
}

const QUESTIONS: [&str; 8] = [
    "What is a good soup for a cold day?",
    "Name a famous river in Europe.",
    "How do I keep basil alive?",
    "What should I pack for a picnic?",
    "Tell me a fun fact about owls.",
    "How long should I boil an egg?",
    "What is a nice name for a cat?",
    "Suggest a short stretch for my back.",
];

/// One utterance's fate, as the simulated terminal saw it.
#[derive(Debug, Clone)]
struct Sample {
    room: String,
    /// Sent to final chunk, ms; `None` when it failed or timed out.
    latency_ms: Option<f64>,
    /// Sent to the first chunk of the answer (not the "one moment"), ms.
    wait_ms: Option<f64>,
    told_to_wait: bool,
    error: Option<String>,
    /// The answer as heard (without the "one moment").
    text: String,
}

/// One run of the rooms: every sample, and how long it took from the first utterance sent
/// to the last answer.
struct RoomsRun {
    samples: Vec<Sample>,
    took: Duration,
}

impl RoomsRun {
    fn latencies(&self) -> Vec<f64> {
        self.samples.iter().filter_map(|s| s.latency_ms).collect()
    }

    fn waits(&self) -> Vec<f64> {
        self.samples.iter().filter_map(|s| s.wait_ms).collect()
    }

    fn failed(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.error.is_some()).collect()
    }

    /// Each room's mean wait for its answers' first chunks.
    fn mean_waits(&self) -> Vec<(&str, f64)> {
        let mut per_room: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
        for s in &self.samples {
            if let Some(w) = s.wait_ms {
                per_room.entry(&s.room).or_default().push(w);
            }
        }
        per_room
            .iter()
            .map(|(r, w)| (*r, w.iter().sum::<f64>() / w.len() as f64))
            .collect()
    }

    /// The slowest room's mean wait over the quickest's.
    fn fairness(&self) -> f64 {
        let means = self.mean_waits();
        let min = means.iter().map(|m| m.1).fold(f64::INFINITY, f64::min);
        let max = means.iter().map(|m| m.1).fold(0.0, f64::max);
        max / min
    }
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// `hearth-bench rooms`: a whole hub in-process and `terminals` simulated terminals that
/// each send `utterances` utterances at once (each after its previous answer). Prints answer
/// latency, the wait before each answer starts, fairness across rooms, and what was lost;
/// with `concurrent`, the same for the rooms decoded one at a time and together, with the
/// tokens per second of all answers.
pub async fn rooms(mut config: HubConfig, opts: RoomsBenchOptions) -> anyhow::Result<()> {
    anyhow::ensure!(
        opts.terminals > 0 && opts.utterances > 0 && opts.max_tokens > 0,
        "--terminals, --utterances and --max-tokens must be at least 1"
    );
    config.llm.max_reply_tokens = opts.max_tokens;
    let all = opts.terminals + opts.busy_room_terminals;
    config.llm.queue_capacity = config.llm.queue_capacity.max(all * 2);
    // A terminal's next utterance may arrive while its last turn is still being put away,
    // and a quick hub answers more than a person would ask: the limits meant for people are
    // lifted, so that every utterance is answered.
    // A turn is in flight until its memory is written, which may wait for background model
    // work: on a fast hub each room can have several such turns behind it (a GPU run with
    // `all * 2` refused a third of the utterances as busy).
    config.trust.max_turns = config
        .trust
        .max_turns
        .max(all * 2 + config.llm.background_queue);
    config.trust.burst = config.trust.burst.max(opts.utterances as u32);
    config.trust.per_minute = config.trust.per_minute.max(10_000);
    // Every terminal, the hub and a margin: the embedded broker's default (64) is a
    // household's, and a terminal it refuses would never be answered.
    config.mqtt.max_connections = config.mqtt.max_connections.max(all + 8);
    config.pixie.quiet_hours = String::new();
    if !opts.concurrent {
        let run = run_rooms(&config, &opts).await?;
        return report_rooms(&config, &opts, &run);
    }
    let tokenizer = hearth_hub::llm::Tokenizer::load(&config.llm)?;
    let mut rows = Vec::new();
    for parallel in [1, all as u32] {
        config.llm.parallel = parallel;
        let run = run_rooms(&config, &opts).await?;
        let tokens: usize = run
            .samples
            .iter()
            .filter(|s| s.latency_ms.is_some())
            .map(|s| tokenizer.count(&s.text))
            .sum();
        rows.push((parallel, tokens as f64 / run.took.as_secs_f64(), run));
    }
    println!(
        "{} simulated terminals x {} utterances on one hub ({}, {} threads), replies up to {} tokens; each terminal sends its next utterance when its answer ends, without waiting for the others",
        opts.terminals,
        opts.utterances,
        config.llm.model.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
        config.llm.threads,
        opts.max_tokens,
    );
    println!("| decoding | answered / failed | aggregate tokens/s | first chunk p50 / p99 | answer p50 / p99 | fairness (max / min mean wait per room) | took |");
    println!("|---|---|---|---|---|---|---|");
    for (parallel, rate, run) in &rows {
        let how = if *parallel == 1 {
            "one at a time (`llm.parallel = 1`)".to_string()
        } else {
            format!("together (`llm.parallel = {parallel}`)")
        };
        println!(
            "| {how} | {} / {} | {rate:.1} | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {:.2} | {:.0} s |",
            run.latencies().len(),
            run.failed().len(),
            pct(run.waits(), 0.5),
            pct(run.waits(), 0.99),
            pct(run.latencies(), 0.5),
            pct(run.latencies(), 0.99),
            run.fairness(),
            run.took.as_secs_f64(),
        );
    }
    println!(
        "aggregate tokens/s together / one at a time: {:.2}x",
        rows[1].1 / rows[0].1
    );
    // A room's wait runs to its answer's first chunk, which comes later for a long first
    // sentence: beside each room's mean wait, its answers' mean tokens.
    for (parallel, _, run) in &rows {
        let per_room: Vec<String> = run
            .mean_waits()
            .iter()
            .map(|(room, wait)| {
                let texts: Vec<&Sample> = run.samples.iter().filter(|s| s.room == *room).collect();
                let tokens: usize = texts.iter().map(|s| tokenizer.count(&s.text)).sum();
                let tokens = tokens as f64 / texts.len().max(1) as f64;
                format!("{room} {wait:.0} ms / {tokens:.1}")
            })
            .collect();
        println!(
            "parallel = {parallel}, mean wait / mean answer tokens per room: {}",
            per_room.join(", ")
        );
    }
    for (_, _, run) in &rows {
        for s in run.failed().iter().take(5) {
            println!("failed in {}: {}", s.room, s.error.as_deref().unwrap_or(""));
        }
    }
    Ok(())
}

/// Starts a hub with `config` in-process, runs the simulated terminals against it, and stops
/// it.
async fn run_rooms(config: &HubConfig, opts: &RoomsBenchOptions) -> anyhow::Result<RoomsRun> {
    let mut config = config.clone();
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    config.mqtt.embedded_broker = true;
    config.mqtt.listen = ([127, 0, 0, 1], port).into();
    config.mqtt.host = "127.0.0.1".into();
    config.mqtt.port = port;
    let dir = tempfile::tempdir()?;
    config.memory.path = dir.path().join("memory");
    config.pixie.path = dir.path().join("pixie");
    let shutdown = CancellationToken::new();
    let hub = tokio::spawn(hearth_hub::run(config.clone(), shutdown.clone()));
    eprintln!(
        "{} terminals (+{} in one busy room) x {} utterances, replies up to {} tokens, rooms {}, {} decoded together",
        opts.terminals,
        opts.busy_room_terminals,
        opts.utterances,
        opts.max_tokens,
        if config.llm.fair_rooms {
            "take turns"
        } else {
            "first come, first served"
        },
        config.llm.parallel,
    );
    let mut tasks = Vec::new();
    let terminals = (0..opts.terminals)
        .map(|t| (format!("room{t}"), format!("room{t}")))
        .chain((0..opts.busy_room_terminals).map(|t| (format!("busy{t}"), "busy".to_string())));
    for (k, (id, room)) in terminals.enumerate() {
        let (config, n) = (config.clone(), opts.utterances);
        tasks.push(tokio::spawn(async move {
            simulated_terminal(&config, port, &id, &room, k, n).await
        }));
    }
    let mut samples = Vec::new();
    let mut first_sent: Option<Instant> = None;
    for task in tasks {
        let (sent, s) = task.await??;
        first_sent = Some(first_sent.map_or(sent, |f| f.min(sent)));
        samples.extend(s);
    }
    let took = first_sent.map_or(Duration::ZERO, |f| f.elapsed());
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(15), hub).await;
    Ok(RoomsRun { samples, took })
}

/// The table of one run.
fn report_rooms(
    config: &HubConfig,
    opts: &RoomsBenchOptions,
    run: &RoomsRun,
) -> anyhow::Result<()> {
    let latencies = run.latencies();
    let waits = run.waits();
    let failed = run.failed();
    let means = run.mean_waits();
    let min = means.iter().map(|m| m.1).fold(f64::INFINITY, f64::min);
    let max = means.iter().map(|m| m.1).fold(0.0, f64::max);
    println!(
        "{} simulated terminals x {} utterances on one hub ({}, {} threads), replies up to {} tokens, {:.0} s in all",
        opts.terminals,
        opts.utterances,
        config.llm.model.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
        config.llm.threads,
        opts.max_tokens,
        run.took.as_secs_f64()
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!(
        "| utterances sent / answered / failed | {} / {} / {} |",
        run.samples.len(),
        latencies.len(),
        failed.len()
    );
    println!(
        "| answer latency p50 / p99 (sent to last chunk) | {:.0} / {:.0} ms |",
        pct(latencies.clone(), 0.5),
        pct(latencies, 0.99)
    );
    println!(
        "| queue wait p50 / p99 (sent to the answer's first chunk) | {:.0} / {:.0} ms |",
        pct(waits.clone(), 0.5),
        pct(waits, 0.99)
    );
    println!(
        "| \"one moment\" said | {} |",
        run.samples.iter().filter(|s| s.told_to_wait).count()
    );
    println!("| mean wait per room, min / max | {min:.0} / {max:.0} ms |");
    if let Some(busy) = means.iter().find(|(r, _)| *r == "busy") {
        let quiet: Vec<f64> = means
            .iter()
            .filter(|(r, _)| *r != "busy")
            .map(|m| m.1)
            .collect();
        println!(
            "| mean wait, the busy room ({} terminals) / the other rooms | {:.0} / {:.0} ms |",
            opts.busy_room_terminals,
            busy.1,
            quiet.iter().sum::<f64>() / quiet.len().max(1) as f64
        );
    }
    println!(
        "| fairness (max / min mean wait per room) | {:.2} |",
        run.fairness()
    );
    for s in failed.iter().take(5) {
        println!("failed in {}: {}", s.room, s.error.as_deref().unwrap_or(""));
    }
    Ok(())
}

/// One simulated terminal: waits for the hub, then sends `n` utterances, each after the
/// previous answer ended (or failed, or took over 180 s). Terminal `k` starts at the `k`th
/// question, so that no two rooms hold the same conversation (a room's prompt would
/// otherwise be the one just answered for another, a reuse real rooms never get).
async fn simulated_terminal(
    config: &HubConfig,
    port: u16,
    id: &str,
    room: &str,
    k: usize,
    n: usize,
) -> anyhow::Result<(Instant, Vec<Sample>)> {
    let topics = Topics::new(&config.mqtt.topic_prefix)?;
    let mut opts = MqttOptions::new(format!("hearth-bench-{id}"), "127.0.0.1", port);
    opts.set_credentials(&config.mqtt.username, &config.mqtt.password)
        .set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 32);
    let mut net = rumqttc::NetworkOptions::new();
    net.set_tcp_nodelay(true);
    eventloop.set_network_options(net);
    let (reply, error) = (
        topics.terminal(id, Channel::Reply)?,
        topics.terminal(id, Channel::Error)?,
    );
    // Connect (the broker starts after the models load), subscribe, and wait for the hub.
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut hub_online = false;
    while !hub_online {
        anyhow::ensure!(Instant::now() < deadline, "{id}: the hub did not come up");
        match tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                for t in [&reply, &error, &topics.hub_presence()] {
                    client.subscribe(t, QoS::AtLeastOnce).await?;
                }
            }
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == topics.hub_presence() => {
                hub_online = decode::<hearth_shared::HubPresence>(&p.payload, usize::MAX)
                    .map(|h| h.online)
                    .unwrap_or(false);
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let one_moment = config.conversation.one_moment_text.clone();
    let mut samples = Vec::new();
    let mut first_sent = None;
    for i in 0..n {
        let uid = format!("{id}-{i}");
        let u = Utterance {
            id: uid.clone(),
            terminal: id.into(),
            room: room.into(),
            text: QUESTIONS[(i + k) % QUESTIONS.len()].into(),
            started_at_ms: now_ms(),
            ended_at_ms: now_ms(),
            audio: None,
            speaker: None,
        };
        let sent = Instant::now();
        first_sent.get_or_insert(sent);
        client
            .publish(
                topics.terminal(id, Channel::Utterance)?,
                QoS::AtLeastOnce,
                false,
                encode(&u),
            )
            .await?;
        let mut sample = Sample {
            room: room.into(),
            latency_ms: None,
            wait_ms: None,
            told_to_wait: false,
            error: None,
            text: String::new(),
        };
        let until = sent + Duration::from_secs(180);
        loop {
            let left = until.saturating_duration_since(Instant::now());
            let event = match tokio::time::timeout(left, eventloop.poll()).await {
                Err(_) => {
                    sample.error = Some("no answer within 180 s".into());
                    break;
                }
                Ok(Err(e)) => {
                    sample.error = Some(format!("connection: {e}"));
                    break;
                }
                Ok(Ok(event)) => event,
            };
            let Event::Incoming(Packet::Publish(p)) = event else {
                continue;
            };
            let ms = sent.elapsed().as_secs_f64() * 1e3;
            if p.topic == error {
                let report: hearth_shared::ErrorReport = decode(&p.payload, usize::MAX)?;
                if report.utterance_id.as_deref() == Some(uid.as_str()) {
                    sample.error = Some(format!("{:?}: {}", report.code, report.message));
                    break;
                }
            } else if p.topic == reply {
                let chunk: ReplyChunk = decode(&p.payload, usize::MAX)?;
                if chunk.utterance_id != uid {
                    continue;
                }
                if chunk.seq == 0 && chunk.text == one_moment {
                    sample.told_to_wait = true;
                } else {
                    if sample.wait_ms.is_none() {
                        sample.wait_ms = Some(ms);
                    }
                    sample.text.push_str(&chunk.text);
                    sample.text.push(' ');
                }
                if chunk.is_final {
                    sample.latency_ms = Some(ms);
                    break;
                }
            }
        }
        samples.push(sample);
    }
    let _ = client.disconnect().await;
    Ok((first_sent.unwrap_or_else(Instant::now), samples))
}
