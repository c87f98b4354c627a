//! `hearth-bench rooms`: simulated terminals against an in-process hub, each sending its next
//! utterance when its answer ends. Prints answer latency, the wait for each answer's first
//! chunk and for its first token, fairness across rooms, and what was lost; with
//! `--concurrent`, the rooms decoded one at a time against together. Asserts nothing.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use hearth_shared::{decode, encode, now_ms, Channel, ReplyChunk, Topics, Utterance};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;
use tracing::field::{Field, Visit};

use hearth_hub::config::HubConfig;

/// Each answered utterance's time to its first token (ms), as the hub's turn logs it in its
/// "answered" line: from the job queued to the model's first token, so its wait for the
/// model and its prompt, but not the length of its first sentence, which the first chunk's
/// wait also holds.
fn first_tokens() -> &'static Mutex<HashMap<String, f64>> {
    static FIRST_TOKENS: OnceLock<Mutex<HashMap<String, f64>>> = OnceLock::new();
    FIRST_TOKENS.get_or_init(Default::default)
}

/// A tracing layer that keeps each "answered" line's `first_token_ms` by utterance id, for
/// `hearth-bench rooms` (the hub runs in the bench's process). Install it with the log.
pub fn first_token_layer<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use tracing_subscriber::Layer;
    FirstTokenLayer.with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("hearth_hub::turn", tracing::Level::INFO),
    )
}

struct FirstTokenLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for FirstTokenLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        #[derive(Default)]
        struct Answered {
            answered: bool,
            id: Option<String>,
            ms: Option<u64>,
        }
        impl Visit for Answered {
            fn record_u64(&mut self, field: &Field, value: u64) {
                if field.name() == "first_token_ms" {
                    self.ms = Some(value);
                }
            }
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                match field.name() {
                    "message" => self.answered = format!("{value:?}") == "answered",
                    "id" => self.id = Some(format!("{value:?}")),
                    _ => {}
                }
            }
        }
        let mut a = Answered::default();
        event.record(&mut a);
        if let (true, Some(id), Some(ms)) = (a.answered, a.id, a.ms) {
            let mut map = first_tokens().lock().unwrap_or_else(|e| e.into_inner());
            map.insert(id, ms as f64);
        }
    }
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
    /// Each terminal waits up to this long (ms, spread evenly over its utterances) before
    /// each utterance, as people pause between an answer and their next question; 0: none,
    /// every terminal asks the moment its answer ends.
    pub think_ms: u64,
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
    /// The utterance's id.
    id: String,
    room: String,
    /// Sent to final chunk, ms; `None` when it failed or timed out.
    latency_ms: Option<f64>,
    /// Sent to the first chunk of the answer (not the "one moment"), ms.
    wait_ms: Option<f64>,
    told_to_wait: bool,
    error: Option<String>,
    /// The answer as heard (without the "one moment").
    text: String,
    /// Its first chunk, whose writing the wait for it holds.
    first_chunk: String,
}

/// One run of the rooms: every sample, and how long it took from the first utterance sent
/// to the last answer.
struct RoomsRun {
    samples: Vec<Sample>,
    took: Duration,
    /// Each answered utterance's time to its first token (ms) by id, from the hub's log.
    first_tokens: HashMap<String, f64>,
}

impl RoomsRun {
    fn latencies(&self) -> Vec<f64> {
        self.samples.iter().filter_map(|s| s.latency_ms).collect()
    }

    fn waits(&self) -> Vec<f64> {
        self.samples.iter().filter_map(|s| s.wait_ms).collect()
    }

    /// Each answered utterance's time to its first token, from the hub's log.
    fn first_tokens(&self) -> Vec<f64> {
        (self.samples.iter())
            .filter_map(|s| self.first_tokens.get(&s.id).copied())
            .collect()
    }

    fn failed(&self) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.error.is_some()).collect()
    }

    /// Each room's mean wait for its answers' first chunks.
    fn mean_waits(&self) -> Vec<(&str, f64)> {
        self.per_room(|s| s.wait_ms)
    }

    /// Each room's mean time to its answers' first tokens.
    fn mean_first_tokens(&self) -> Vec<(&str, f64)> {
        self.per_room(|s| self.first_tokens.get(&s.id).copied())
    }

    /// Each room's mean of `value` over its samples that have one.
    fn per_room(&self, value: impl Fn(&Sample) -> Option<f64>) -> Vec<(&str, f64)> {
        let mut per_room: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for s in &self.samples {
            if let Some(v) = value(s) {
                per_room.entry(&s.room).or_default().push(v);
            }
        }
        (per_room.iter())
            .map(|(r, v)| (*r, v.iter().sum::<f64>() / v.len() as f64))
            .collect()
    }

    /// The slowest room's mean wait for its first chunks over the quickest's.
    fn fairness(&self) -> f64 {
        max_over_min(&self.mean_waits())
    }

    /// The same for the first tokens: what the scheduling decides, without the lengths of
    /// the answers' first sentences.
    fn fairness_first_token(&self) -> f64 {
        max_over_min(&self.mean_first_tokens())
    }
}

fn max_over_min(means: &[(&str, f64)]) -> f64 {
    let (min, max) = min_max(means);
    max / min
}

/// The least and the most of the rooms' means.
fn min_max(means: &[(&str, f64)]) -> (f64, f64) {
    let min = means.iter().map(|m| m.1).fold(f64::INFINITY, f64::min);
    let max = means.iter().map(|m| m.1).fold(0.0, f64::max);
    (min, max)
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
    println!("| decoding | answered / failed | aggregate tokens/s | first chunk p50 / p99 | answer p50 / p99 | fairness (max / min mean wait per room) | first token p50 / p99 | its fairness | took |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for (parallel, rate, run) in &rows {
        let how = if *parallel == 1 {
            "one at a time (`llm.parallel = 1`)".to_string()
        } else {
            format!("together (`llm.parallel = {parallel}`)")
        };
        println!(
            "| {how} | {} / {} | {rate:.1} | {:.0} / {:.0} ms | {:.0} / {:.0} ms | {:.2} | {:.0} / {:.0} ms | {:.2} | {:.0} s |",
            run.latencies().len(),
            run.failed().len(),
            pct(run.waits(), 0.5),
            pct(run.waits(), 0.99),
            pct(run.latencies(), 0.5),
            pct(run.latencies(), 0.99),
            run.fairness(),
            pct(run.first_tokens(), 0.5),
            pct(run.first_tokens(), 0.99),
            run.fairness_first_token(),
            run.took.as_secs_f64(),
        );
    }
    println!(
        "aggregate tokens/s together / one at a time: {:.2}x",
        rows[1].1 / rows[0].1
    );
    // A room's wait runs to its answer's first chunk, which comes later for a long first
    // clause: beside each room's mean wait, its mean time to the first token, and the mean
    // tokens of its first chunks and of its answers.
    for (parallel, _, run) in &rows {
        let first_tokens: HashMap<&str, f64> = run.mean_first_tokens().into_iter().collect();
        let per_room: Vec<String> = run
            .mean_waits()
            .iter()
            .map(|(room, wait)| {
                let texts: Vec<&Sample> = run.samples.iter().filter(|s| s.room == *room).collect();
                let mean = |text: fn(&Sample) -> &str| {
                    let tokens: usize = texts.iter().map(|s| tokenizer.count(text(s))).sum();
                    tokens as f64 / texts.len().max(1) as f64
                };
                let (chunk, tokens) = (mean(|s| &s.first_chunk), mean(|s| &s.text));
                let first = first_tokens.get(room).copied().unwrap_or(f64::NAN);
                format!("{room} {wait:.0} / {first:.0} ms / {chunk:.1} / {tokens:.1}")
            })
            .collect();
        println!(
            "parallel = {parallel}, mean wait / mean time to first token / mean tokens of the first chunk / of the answer per room: {}",
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
    // Each run's utterances have the same ids: the last run's times go.
    first_tokens()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clear();
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
        let (config, n, think_ms) = (config.clone(), opts.utterances, opts.think_ms);
        tasks.push(tokio::spawn(async move {
            simulated_terminal(&config, port, &id, &room, k, n, think_ms).await
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
    let first_tokens =
        std::mem::take(&mut *first_tokens().lock().unwrap_or_else(|e| e.into_inner()));
    Ok(RoomsRun {
        samples,
        took,
        first_tokens,
    })
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
    let (min, max) = min_max(&means);
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
    println!(
        "| time to the first token p50 / p99 (queued to the model's first token) | {:.0} / {:.0} ms |",
        pct(run.first_tokens(), 0.5),
        pct(run.first_tokens(), 0.99)
    );
    println!(
        "| its fairness (max / min mean per room) | {:.2} |",
        run.fairness_first_token()
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
    think_ms: u64,
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
        if think_ms > 0 {
            // A pause in 0..=think_ms, different for each terminal and utterance, and the
            // same in every run (a multiplicative hash, not a random generator).
            let spread = ((k * 31 + i) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
            let pause = spread % (think_ms + 1);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
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
            id: uid.clone(),
            room: room.into(),
            latency_ms: None,
            wait_ms: None,
            told_to_wait: false,
            error: None,
            text: String::new(),
            first_chunk: String::new(),
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
                        sample.first_chunk = chunk.text.clone();
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
