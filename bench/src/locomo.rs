//! `hearth-bench locomo`: retrieval quality on LoCoMo (ACL 2024), long multi-session
//! conversations whose questions name their evidence turns.
//!
//! Each conversation goes into a fresh memory store through the live ingest path
//! ([`Subconscious::ingest`]: salience, the chatter floor, recurrence re-warming, embeddings),
//! one turn at a time, stamped with its session's date. Each question then runs the retrieval
//! the subconscious runs before an answer ([`retrieve`]), at a time just after the last
//! session. A question is a hit at k when one of its evidence turns, or a memory that turn
//! re-warmed, is in the top k. Nothing here is specific to the data set except reading it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hearth_shared::Utterance;
use serde::{Deserialize, Serialize};

use hearth_hub::config::HubConfig;
use hearth_hub::llm::embed::Embedder;
use hearth_hub::memory::retrieval::{retrieve, Fusion, RetrievalConfig};
use hearth_hub::memory::when::{day_start_ms, month_number};
use hearth_hub::memory::{Memories, MemoryId};
use hearth_hub::subconscious::{embed_question, Subconscious};

/// The cut-offs reported.
pub const KS: [usize; 3] = [1, 5, 10];

/// One turn of a conversation.
#[derive(Debug, Clone, Deserialize)]
pub struct Turn {
    /// Who said it.
    pub speaker: String,
    /// Its id, `D<session>:<n>`.
    pub dia_id: String,
    /// What was said.
    pub text: String,
    /// A caption of the photo shared with the turn, if one was.
    #[serde(default)]
    pub blip_caption: Option<String>,
}

impl Turn {
    /// What the turn holds, as a memory's text: what was said and, after it, the shared photo
    /// as LoCoMo's paper gives it to a model ("[shares a photo of ...]").
    pub fn said(&self) -> String {
        match &self.blip_caption {
            Some(caption) if !caption.trim().is_empty() => {
                format!("{} [shares {}]", self.text.trim_end(), caption.trim())
            }
            _ => self.text.clone(),
        }
    }
}

/// One question with its evidence.
#[derive(Debug, Clone, Deserialize)]
pub struct Question {
    /// The question.
    pub question: String,
    /// The turns that answer it.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// 1 multi-hop, 2 temporal, 3 open-domain, 4 single-hop, 5 adversarial.
    pub category: u8,
}

/// A conversation: sessions of turns with their dates, and questions.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// The file's stem.
    pub name: String,
    /// Sessions in order: (start time in ms since the Unix epoch, turns).
    pub sessions: Vec<(u64, Vec<Turn>)>,
    /// Questions that have evidence.
    pub questions: Vec<Question>,
    /// Whether turns are ingested with their speaker's name (`Utterance::speaker`, and
    /// "Name: ..." in the context of the next turn). Live terminals send no speaker yet.
    pub speakers: bool,
}

impl Conversation {
    /// Drops the photo captions, so that turns hold only what was said (`--no-captions`).
    pub fn without_captions(mut self) -> Self {
        for (_, turns) in &mut self.sessions {
            for turn in turns {
                turn.blip_caption = None;
            }
        }
        self
    }

    /// Ingests turns without their speakers' names (`--no-speakers`), as a live terminal
    /// sends them.
    pub fn without_speakers(mut self) -> Self {
        self.speakers = false;
        self
    }

    /// A fingerprint of every turn as ingested, so that a kept store of other turns is made
    /// again (FNV-1a, stable across builds).
    fn fingerprint(&self) -> String {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        if !self.speakers {
            h = (h ^ 0x5a).wrapping_mul(0x0100_0000_01b3);
        }
        for (at, turns) in &self.sessions {
            let said = turns
                .iter()
                .map(|t| format!("{}\0{}\0{}\0", t.dia_id, t.speaker, t.said()));
            for b in at
                .to_le_bytes()
                .into_iter()
                .chain(said.collect::<String>().into_bytes())
            {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    }
}

/// Parses LoCoMo's session dates, such as "4:04 pm on 20 January, 2023", as UTC.
pub fn parse_date(s: &str) -> Option<u64> {
    let (time, date) = s.trim().split_once(" on ")?;
    let (clock, half) = time.trim().split_once(' ')?;
    let (h, m) = clock.split_once(':')?;
    let (mut h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    match half.to_ascii_lowercase().as_str() {
        "am" if h == 12 => h = 0,
        "am" => {}
        "pm" if h < 12 => h += 12,
        "pm" => {}
        _ => return None,
    }
    let mut parts = date.split([' ', ',']).filter(|p| !p.is_empty());
    let day: u64 = parts.next()?.parse().ok()?;
    let month = parts.next()?.to_ascii_lowercase();
    let year: i64 = parts.next()?.parse().ok()?;
    let month = month_number(&month)?;
    if !(1..=31).contains(&day) || h > 23 || m > 59 {
        return None;
    }
    let midnight = day_start_ms(year, month, day as i64, &jiff::tz::TimeZone::UTC)?;
    Some(midnight + (h * 3600 + m * 60) * 1000)
}

/// Reads one LoCoMo JSON file.
pub fn load(path: &Path) -> anyhow::Result<Conversation> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let conv = json.get("conversation").unwrap_or(&json);
    let mut sessions = Vec::new();
    for n in 1.. {
        let Some(turns) = conv.get(format!("session_{n}")) else {
            break;
        };
        let date = conv
            .get(format!("session_{n}_date_time"))
            .and_then(|d| d.as_str())
            .with_context(|| format!("{}: session_{n} has no date", path.display()))?;
        let at = parse_date(date)
            .with_context(|| format!("{}: session_{n} date {date:?}", path.display()))?;
        let turns: Vec<Turn> = serde_json::from_value(turns.clone())
            .with_context(|| format!("{}: session_{n}", path.display()))?;
        sessions.push((at, turns));
    }
    anyhow::ensure!(!sessions.is_empty(), "{}: no sessions", path.display());
    let questions: Vec<Question> = serde_json::from_value(
        json.get("qa")
            .cloned()
            .with_context(|| format!("{}: no qa", path.display()))?,
    )
    .with_context(|| format!("{}: qa", path.display()))?;
    Ok(Conversation {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sessions,
        questions: questions
            .into_iter()
            .filter(|q| !q.evidence.is_empty())
            .collect(),
        speakers: true,
    })
}

/// Hits at each of [`KS`], and the number of questions, for one category.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Questions with an evidence turn in the top 1, 5, 10.
    pub hits: [usize; 3],
    /// Questions.
    pub questions: usize,
}

/// Counts by category (1 to 5).
pub type Tally = BTreeMap<u8, Counts>;

/// What one conversation gave.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Turns stored as new memories.
    pub stored: usize,
    /// Turns that re-warmed a stored memory instead.
    pub rewarmed: usize,
    /// Turns not stored: questions, requests, small talk, or below the chatter floor.
    pub dropped: usize,
    /// Hybrid retrieval with the configured settings.
    pub hybrid: Tally,
    /// Each ablation variant, by name, on the same store.
    pub variants: Vec<(String, Tally)>,
    /// BM25 alone, when asked for.
    pub bm25: Option<Tally>,
    /// Time to ingest every turn.
    pub ingest: Duration,
    /// Whether the store was kept from an earlier run (`--stores`), not ingested now.
    pub kept: bool,
    /// Hybrid retrieval time per question (the query embedding excluded).
    pub retrieval: Vec<Duration>,
    /// Query embedding time per question.
    pub embedding: Vec<Duration>,
    /// For each question: (category, the top hit's cosine).
    pub top_cosine: Vec<(u8, f32)>,
}

fn count(tally: &mut Tally, category: u8, ranked: &[MemoryId], evidence: &HashSet<MemoryId>) {
    let c = tally.entry(category).or_default();
    c.questions += 1;
    for (i, k) in KS.iter().enumerate() {
        if ranked.iter().take(*k).any(|id| evidence.contains(id)) {
            c.hits[i] += 1;
        }
    }
}

/// Ingests one conversation into a fresh store in `dir` and asks its questions.
pub async fn run_conversation(
    conv: &Conversation,
    config: &HubConfig,
    embedder: &Embedder,
    dir: &Path,
    baseline: bool,
    variants: &[(String, RetrievalConfig)],
) -> anyhow::Result<Outcome> {
    // A store kept from an earlier run with the same ingest settings is asked again as is.
    let marker = dir.join("ingested.json");
    let key = ingest_key(config, conv);
    let kept: Option<Ingested> = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .filter(|i: &Ingested| i.key == key);
    if kept.is_none() && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let memories = Arc::new(Memories::open(dir, embedder.dim())?);
    let mut out = Outcome {
        kept: kept.is_some(),
        ..Outcome::default()
    };
    let ingested = match kept {
        Some(kept) => kept,
        None => {
            let started = Instant::now();
            let ingested = ingest(conv, config, embedder, &memories, key).await?;
            out.ingest = started.elapsed();
            std::fs::write(&marker, serde_json::to_vec(&ingested)?)
                .with_context(|| format!("cannot write {}", marker.display()))?;
            ingested
        }
    };
    (out.stored, out.rewarmed, out.dropped) =
        (ingested.stored, ingested.rewarmed, ingested.dropped);
    let (memory_of, last) = (ingested.memory_of, ingested.last);

    // Questions are asked a day after the last session.
    let now = last + 86_400_000;
    let lifecycle = config.memory.lifecycle.clone();
    let mut retrieval = config.memory.retrieval.clone();
    retrieval.candidates = retrieval.candidates.max(KS[2]);
    let mut bm25 = Tally::new();
    let mut variant_tallies = vec![Tally::new(); variants.len()];
    for q in &conv.questions {
        let evidence: HashSet<MemoryId> = q
            .evidence
            .iter()
            .filter_map(|d| memory_of.get(d.trim()).copied())
            .collect();
        let t = Instant::now();
        let vector = embed_question(embedder, &q.question, retrieval.unnamed_share)
            .await?
            .map(|(_, asked)| asked);
        out.embedding.push(t.elapsed());
        let t = Instant::now();
        let hits = retrieve(
            &memories,
            &q.question,
            vector.as_deref(),
            KS[2],
            now,
            &retrieval,
            &config.memory.lifecycle,
        )?;
        out.retrieval.push(t.elapsed());
        out.top_cosine
            .push((q.category, hits.first().map_or(0.0, |h| h.signals.cosine)));
        let ranked: Vec<MemoryId> = hits.iter().map(|h| h.memory.id).collect();
        count(&mut out.hybrid, q.category, &ranked, &evidence);
        if std::env::var_os("HEARTH_LOCOMO_MISSES").is_some()
            && !ranked.iter().take(5).any(|id| evidence.contains(id))
        {
            eprintln!("MISS [{}] {}", q.category, q.question);
            let mut deep = retrieval.clone();
            deep.candidates = deep.candidates.max(50);
            let deep = retrieve(
                &memories,
                &q.question,
                vector.as_deref(),
                50,
                now,
                &deep,
                &config.memory.lifecycle,
            )?;
            for id in &evidence {
                match deep.iter().position(|h| h.memory.id == *id) {
                    Some(rank) => {
                        let h = &deep[rank];
                        eprintln!(
                            "   want #{id} rank {} score {:.2} {:?}: {}",
                            rank + 1,
                            h.score,
                            h.signals,
                            h.memory.text
                        );
                    }
                    None => {
                        if let Some(m) = memories.store().get(*id)? {
                            eprintln!("   want #{id} not in the top 50: {}", m.text);
                        }
                    }
                }
            }
            for h in hits.iter().take(3) {
                eprintln!("   got  #{} {:.2}: {}", h.memory.id, h.score, h.memory.text);
            }
        }
        for ((_, config), tally) in variants.iter().zip(&mut variant_tallies) {
            let mut config = config.clone();
            config.candidates = config.candidates.max(KS[2]);
            let own;
            let vector = if config.unnamed_share == retrieval.unnamed_share {
                vector.as_deref()
            } else {
                own = embed_question(embedder, &q.question, config.unnamed_share)
                    .await?
                    .map(|(_, asked)| asked);
                own.as_deref()
            };
            let ranked: Vec<MemoryId> = retrieve(
                &memories,
                &q.question,
                vector,
                KS[2],
                now,
                &config,
                &lifecycle,
            )?
            .into_iter()
            .map(|h| h.memory.id)
            .collect();
            count(tally, q.category, &ranked, &evidence);
        }
        if baseline {
            // Over what was told: the question log is not searched as memories.
            let ranked: Vec<MemoryId> = memories
                .search_text(&q.question, 5 * KS[2])?
                .into_iter()
                .filter(|(m, _)| !m.asked)
                .take(KS[2])
                .map(|(m, _)| m.id)
                .collect();
            count(&mut bm25, q.category, &ranked, &evidence);
        }
    }
    out.bm25 = baseline.then_some(bm25);
    out.variants = variants
        .iter()
        .map(|(name, _)| name.clone())
        .zip(variant_tallies)
        .collect();
    Ok(out)
}

/// What ingesting a conversation left, kept beside its store (`--stores`).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Ingested {
    /// The ingest settings it was made with ([`ingest_key`]).
    key: String,
    /// Which memory each turn ended up in (its own, or the one it re-warmed), by dialogue id.
    memory_of: HashMap<String, MemoryId>,
    /// The last turn's time.
    last: u64,
    stored: usize,
    rewarmed: usize,
    dropped: usize,
}

/// Everything ingest depends on: the turns, the memory settings but retrieval's, emotion
/// (salience) and the embedding model.
fn ingest_key(config: &HubConfig, conv: &Conversation) -> String {
    // Without the retrieval settings at all, so that new retrieval defaults keep the stores.
    let mut memory = serde_json::to_value(&config.memory).unwrap_or_default();
    if let Some(m) = memory.as_object_mut() {
        m.remove("retrieval");
    }
    serde_json::json!({
        "turns": conv.fingerprint(),
        "memory": memory,
        "emotion": config.emotion,
        "embeddings": config.embeddings,
    })
    .to_string()
}

/// Ingests every turn through the live path, a turn every 30 s from its session's start.
async fn ingest(
    conv: &Conversation,
    config: &HubConfig,
    embedder: &Embedder,
    memories: &Arc<Memories>,
    key: String,
) -> anyhow::Result<Ingested> {
    let subconscious = Subconscious::new(
        Arc::clone(memories),
        embedder.clone(),
        config.memory.clone(),
    )
    .with_emotion(config.emotion.clone());
    let mut out = Ingested {
        key,
        ..Ingested::default()
    };
    for (at, turns) in &conv.sessions {
        let mut previous: Option<String> = None;
        for (i, turn) in turns.iter().enumerate() {
            let said = turn.said();
            // A turn every 30 s from the session's start.
            let when = at + i as u64 * 30_000;
            out.last = out.last.max(when);
            let u = Utterance {
                id: turn.dia_id.clone(),
                terminal: "locomo".into(),
                room: "locomo".into(),
                text: said.clone(),
                started_at_ms: when,
                ended_at_ms: when,
                audio: None,
                speaker: conv.speakers.then(|| turn.speaker.clone()),
            };
            let before = memories.store().len();
            let context = previous.replace(if conv.speakers {
                format!("{}: {said}", turn.speaker)
            } else {
                said.clone()
            });
            match subconscious
                .ingest(&u, None, context.as_deref(), when)
                .await
            {
                Some(id) => {
                    if memories.store().len() > before {
                        out.stored += 1;
                    } else {
                        out.rewarmed += 1;
                    }
                    out.memory_of.insert(turn.dia_id.trim().to_string(), id);
                }
                None => out.dropped += 1,
            }
        }
    }
    Ok(out)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LocomoOptions {
    /// A folder of LoCoMo JSON files, or one file.
    pub data: PathBuf,
    /// Also run tantivy BM25 alone.
    pub baseline: bool,
    /// Also run the configured retrieval with each lever switched, one at a time.
    pub ablation: bool,
    /// Keep ingested stores here, one folder per conversation, and reuse them.
    pub stores: Option<PathBuf>,
    /// Keep the photo captions in the turns they came with.
    pub captions: bool,
    /// Ingest turns with their speakers' names.
    pub speakers: bool,
}

/// The configured retrieval with one lever switched at a time.
pub fn ablations(base: &RetrievalConfig) -> Vec<(String, RetrievalConfig)> {
    let with = |name: &str, f: &dyn Fn(&mut RetrievalConfig)| {
        let mut c = base.clone();
        f(&mut c);
        (name.to_string(), c)
    };
    vec![
        with(
            "BM25 + cosine only (no recency, importance, strength)",
            &|c| {
                c.w_recency = 0.0;
                c.w_importance = 0.0;
                c.w_strength = 0.0;
            },
        ),
        with("no cosine (w_cosine = 0)", &|c| c.w_cosine = 0.0),
        with("no BM25 (w_bm25 = 0)", &|c| c.w_bm25 = 0.0),
        with("stemming toggled", &|c| c.stemming = !c.stemming),
        with("fusion toggled (weighted / rrf)", &|c| {
            c.fusion = match c.fusion {
                Fusion::Weighted => Fusion::Rrf,
                Fusion::Rrf => Fusion::Weighted,
            }
        }),
        with("no speaker boost (w_speaker = 0)", &|c| c.w_speaker = 0.0),
        with("no neighbour windows (neighbour_weight = 0)", &|c| {
            c.neighbour_weight = 0.0
        }),
        with("neighbour_turns - 1", &|c| {
            c.neighbour_turns = c.neighbour_turns.saturating_sub(1)
        }),
        with("no time-aware scoring (w_time = 0)", &|c| c.w_time = 0.0),
        with("no passage re-ranking (w_passage = 0)", &|c| {
            c.w_passage = 0.0
        }),
        with("no \"when\" re-ranking (w_when = 0)", &|c| c.w_when = 0.0),
        with("linear BM25 (bm25_power = 1)", &|c| c.bm25_power = 1.0),
        with("no trigram BM25 (w_grams = 0)", &|c| c.w_grams = 0.0),
        with("no substance re-ranking (w_substance = 0)", &|c| {
            c.w_substance = 0.0
        }),
        with("no addressed penalty (w_addressed = 0)", &|c| {
            c.w_addressed = 0.0
        }),
        with("questions weigh fully (question_weight = 1)", &|c| {
            c.question_weight = 1.0
        }),
        with("no answer carry (answer_carry = neighbour_weight)", &|c| {
            c.answer_carry = c.neighbour_weight
        }),
        with(
            "question embedded with its names (unnamed_share = 0)",
            &|c| c.unnamed_share = 0.0,
        ),
    ]
}

fn merge(into: &mut Tally, from: &Tally) {
    for (cat, c) in from {
        let e = into.entry(*cat).or_default();
        e.questions += c.questions;
        for i in 0..KS.len() {
            e.hits[i] += c.hits[i];
        }
    }
}

fn total(t: &Tally) -> Counts {
    let mut all = Counts::default();
    for c in t.values() {
        all.questions += c.questions;
        for i in 0..KS.len() {
            all.hits[i] += c.hits[i];
        }
    }
    all
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

const CATEGORIES: [(u8, &str); 5] = [
    (1, "multi-hop"),
    (2, "temporal"),
    (3, "open-domain"),
    (4, "single-hop"),
    (5, "adversarial"),
];

/// The results table, as markdown.
pub fn table(hybrid: &Tally, bm25: Option<&Tally>) -> String {
    let r = |c: &Counts, i: usize| {
        if c.questions == 0 {
            0.0
        } else {
            c.hits[i] as f64 / c.questions as f64
        }
    };
    let mut out = String::new();
    out.push_str("| category | questions | R@1 | R@5 | R@10 |");
    if bm25.is_some() {
        out.push_str(" BM25 R@1 | BM25 R@5 | BM25 R@10 |");
    }
    out.push('\n');
    out.push_str(if bm25.is_some() {
        "|---|---|---|---|---|---|---|---|\n"
    } else {
        "|---|---|---|---|---|\n"
    });
    let mut rows: Vec<(String, Counts, Option<Counts>)> = CATEGORIES
        .iter()
        .filter_map(|(cat, name)| {
            hybrid.get(cat).map(|c| {
                (
                    format!("{cat} {name}"),
                    *c,
                    bm25.map(|b| b.get(cat).copied().unwrap_or_default()),
                )
            })
        })
        .collect();
    rows.push(("overall".into(), total(hybrid), bm25.map(total)));
    for (name, c, b) in rows {
        out.push_str(&format!(
            "| {name} | {} | {:.3} | {:.3} | {:.3} |",
            c.questions,
            r(&c, 0),
            r(&c, 1),
            r(&c, 2)
        ));
        if let Some(b) = b {
            out.push_str(&format!(
                " {:.3} | {:.3} | {:.3} |",
                r(&b, 0),
                r(&b, 1),
                r(&b, 2)
            ));
        }
        out.push('\n');
    }
    out
}

/// The LoCoMo `.json` files in `data` (a folder), sorted, or `data` itself (a file).
pub fn files(data: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let files: Vec<PathBuf> = if data.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(data)
            .with_context(|| format!("cannot list {}", data.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        v.sort();
        v
    } else {
        vec![data.to_path_buf()]
    };
    anyhow::ensure!(
        !files.is_empty(),
        "no LoCoMo .json files in {}",
        data.display()
    );
    Ok(files)
}

/// Runs the benchmark over every conversation and prints the tables.
pub async fn bench(config: HubConfig, opts: LocomoOptions) -> anyhow::Result<()> {
    let files = files(&opts.data)?;
    let (embedder, _t) = Embedder::start(config.embeddings.clone()).await?;
    let (mut hybrid, mut bm25) = (Tally::new(), Tally::new());
    let variants = if opts.ablation {
        ablations(&config.memory.retrieval)
    } else {
        Vec::new()
    };
    let mut variant_tallies = vec![Tally::new(); variants.len()];
    let (mut retrieval, mut embedding, mut cosines) = (Vec::new(), Vec::new(), Vec::new());
    let (mut turns, mut stored, mut rewarmed, mut dropped) = (0, 0, 0, 0);
    let (mut ingest, mut kept) = (Duration::ZERO, 0);
    for file in &files {
        let conv = load(file)?;
        let conv = if opts.captions {
            conv
        } else {
            conv.without_captions()
        };
        let conv = if opts.speakers {
            conv
        } else {
            conv.without_speakers()
        };
        let n: usize = conv.sessions.iter().map(|(_, t)| t.len()).sum();
        eprintln!(
            "{}: ingesting {n} turns from {} sessions, then {} questions",
            conv.name,
            conv.sessions.len(),
            conv.questions.len()
        );
        let temporary = tempfile::tempdir()?;
        let dir = match &opts.stores {
            Some(stores) if conv.speakers => stores.join(&conv.name),
            Some(stores) => stores.join(format!("{}-no-speakers", conv.name)),
            None => temporary.path().to_path_buf(),
        };
        let out =
            run_conversation(&conv, &config, &embedder, &dir, opts.baseline, &variants).await?;
        for ((_, t), all) in out.variants.iter().zip(&mut variant_tallies) {
            merge(all, t);
        }
        let how = if out.kept {
            "store kept from an earlier run".to_string()
        } else {
            format!("{:.1} s ingest", out.ingest.as_secs_f64())
        };
        eprintln!("{}: {how}, R@5 {:.3}", conv.name, {
            let t = total(&out.hybrid);
            t.hits[1] as f64 / t.questions.max(1) as f64
        });
        turns += n;
        stored += out.stored;
        rewarmed += out.rewarmed;
        dropped += out.dropped;
        ingest += out.ingest;
        kept += usize::from(out.kept);
        merge(&mut hybrid, &out.hybrid);
        if let Some(b) = &out.bm25 {
            merge(&mut bm25, b);
        }
        retrieval.extend(out.retrieval);
        embedding.extend(out.embedding);
        cosines.extend(out.top_cosine);
    }
    retrieval.sort();
    embedding.sort();
    println!();
    println!(
        "LoCoMo: {} conversations, {turns} turns ({stored} stored, {rewarmed} re-warmed a memory, {dropped} not stored: questions, requests, small talk or chatter)",
        files.len()
    );
    println!("hybrid retrieval as the subconscious runs it (weights from [memory.retrieval]); a hit = an evidence turn in the top k");
    print!("{}", table(&hybrid, opts.baseline.then_some(&bm25)));
    println!();
    if kept == 0 {
        println!(
            "ingest: {:.1} s in all, {:.1} ms per turn (embedding, durable write, index commit)",
            ingest.as_secs_f64(),
            ingest.as_secs_f64() * 1e3 / turns.max(1) as f64
        );
    } else {
        println!(
            "ingest: {kept} of the stores were kept from an earlier run (--stores); no ingest time"
        );
    }
    println!(
        "retrieval per question: p50 {:.2} ms, p99 {:.2} ms; query embedding: p50 {:.1} ms, p99 {:.1} ms",
        percentile(&retrieval, 0.5),
        percentile(&retrieval, 0.99),
        percentile(&embedding, 0.5),
        percentile(&embedding, 0.99)
    );
    if opts.ablation {
        println!();
        println!("ablation: the configured retrieval with one lever switched, same stores");
        println!("| variant | R@1 | R@5 | R@10 |");
        println!("|---|---|---|---|");
        let row = |name: &str, t: &Tally| {
            let c = total(t);
            let r = |i: usize| c.hits[i] as f64 / c.questions.max(1) as f64;
            println!("| {name} | {:.3} | {:.3} | {:.3} |", r(0), r(1), r(2));
        };
        row("configured", &hybrid);
        for ((name, _), t) in variants.iter().zip(&variant_tallies) {
            row(name, t);
        }
    }
    let floor = config.memory.retrieval.confidence_floor;
    let above = |adversarial: bool| {
        let v: Vec<f32> = cosines
            .iter()
            .filter(|(c, _)| (*c == 5) == adversarial)
            .map(|(_, cos)| *cos)
            .collect();
        let n = v.iter().filter(|c| **c >= floor).count();
        (n, v.len())
    };
    let (adv, adv_n) = above(true);
    let (ans, ans_n) = above(false);
    println!(
        "confidence floor (top hit cosine >= {floor}): adversarial questions {adv}/{adv_n} ({:.0}%) above it, answerable ones {ans}/{ans_n} ({:.0}%)",
        100.0 * adv as f64 / adv_n.max(1) as f64,
        100.0 * ans as f64 / ans_n.max(1) as f64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_dates_parse() {
        assert_eq!(
            parse_date("4:04 pm on 20 January, 2023"),
            Some(1_674_230_640_000)
        );
        assert_eq!(
            parse_date("12:30 am on 1 March, 2024"),
            Some(1_709_253_000_000)
        );
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date("13:00 pm on 40 May, 2023"), None);
    }

    #[test]
    fn counting_and_table() {
        let mut t = Tally::new();
        let evidence: HashSet<MemoryId> = [7].into();
        count(&mut t, 4, &[7, 1, 2], &evidence);
        count(&mut t, 4, &[1, 2, 3, 4, 5, 6, 7], &evidence);
        count(&mut t, 2, &[1], &evidence);
        assert_eq!(
            t[&4],
            Counts {
                hits: [1, 1, 2],
                questions: 2
            }
        );
        assert_eq!(total(&t).questions, 3);
        let table = table(&t, None);
        assert!(
            table.contains("| 4 single-hop | 2 | 0.500 | 0.500 | 1.000 |"),
            "{table}"
        );
        assert!(
            table.contains("| overall | 3 | 0.333 | 0.333 | 0.667 |"),
            "{table}"
        );
    }

    #[test]
    fn a_shared_photo_is_part_of_the_turn() {
        let turn = |caption: Option<&str>| Turn {
            speaker: "Tom".into(),
            dia_id: "D2:5".into(),
            text: "Look what I baked! ".into(),
            blip_caption: caption.map(str::to_string),
        };
        let photo = turn(Some("a photo of a cherry pie"));
        assert_eq!(
            photo.said(),
            "Look what I baked! [shares a photo of a cherry pie]"
        );
        assert_eq!(turn(None).said(), "Look what I baked! ");
        assert_eq!(turn(Some(" ")).said(), "Look what I baked! ");

        let conv = Conversation {
            name: "x".into(),
            sessions: vec![(0, vec![photo])],
            questions: Vec::new(),
            speakers: true,
        };
        let plain = conv.clone().without_captions();
        assert_eq!(plain.sessions[0].1[0].said(), "Look what I baked! ");
        // Another turn text is another store.
        assert_ne!(conv.fingerprint(), plain.fingerprint());
        assert_eq!(conv.fingerprint(), conv.clone().fingerprint());
        // Without speakers' names is another store too.
        assert_ne!(
            conv.fingerprint(),
            conv.clone().without_speakers().fingerprint()
        );
    }
}
