//! `hearth-bench facts`: how the live memory ingest path handles facts that override earlier
//! ones, on MemoryAgentBench's FactConsolidation (6K: 455 numbered facts, 100 single-hop and
//! 100 multi-hop questions).
//!
//! Every fact goes, in order, through [`Subconscious::ingest`] (the path a spoken turn takes)
//! as an utterance from one room with no speaker and no context, a minute after the one before.
//! A later fact about the same subject and relation overrides the earlier one ("Hines Ward
//! plays the position of wide receiver." ... "Hines Ward plays the position of cornerback.").
//! A minute after the last fact, three things are measured:
//!
//! - **slots**: facts are grouped by subject and relation (the fact's text with its final
//!   value removed, from the data set's sentence templates, [`TEMPLATES`]). A slot passes when
//!   a *current* memory (not archived, and valid now: [`valid_at`]) holds its last stated value
//!   and no current memory still holds another of its values.
//! - **single-hop**: each question is recalled ([`Subconscious::recall`]); a hit when the top
//!   recalled memory's text contains a gold answer (case-insensitive).
//! - **multi-hop**: the same, reported only: one memory cannot hold a two-hop answer's chain.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use hearth_shared::Utterance;
use serde::Deserialize;

use hearth_hub::config::HubConfig;
use hearth_hub::llm::embed::Embedder;
use hearth_hub::memory::lifecycle::valid_at;
use hearth_hub::memory::{Memories, Memory, Tier};
use hearth_hub::subconscious::Subconscious;

/// The first fact's time: 3 March 2025, 08:00 UTC. Each next fact comes a minute later.
pub const START_MS: u64 = 1_740_988_800_000;
/// Between two facts.
pub const STEP_MS: u64 = 60_000;
/// The room every fact is said in.
pub const ROOM: &str = "facts";
/// Left in a `--store` folder, so that a later run may clear it (and no other folder).
const MARKER: &str = "hearth-bench-facts.marker";

/// One sentence template of the data set: a fact is `lead` + subject + `link` + value + ".",
/// and its slot key is everything before the value. Templates with a `lead` are tried first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// The fixed start ("The capital of "), or "" when the subject starts the fact.
    pub lead: &'static str,
    /// What joins the subject to the value (" is ", " plays the position of ").
    pub link: &'static str,
}

const fn t(lead: &'static str, link: &'static str) -> Template {
    Template { lead, link }
}

/// FactConsolidation's templates (those of MQuAKE's relations, typos included:
/// "univeristy", "origianl"). Every fact of the 6K data matches exactly one.
pub const TEMPLATES: &[Template] = &[
    t("The name of the current head of state in ", " is "),
    t("The name of the current head of the ", " government is "),
    t("The chief executive officer of ", " is "),
    t("The chairperson of ", " is "),
    t("The director of ", " is "),
    t("The headquarters of ", " is located in the city of "),
    t("The author of ", " is "),
    t("The univeristy where ", " was educated is "),
    t("The capital of ", " is "),
    t("The Prime Minister of ", " is "),
    t("The type of music that ", " plays is "),
    t("The official language of ", " is "),
    t("The company that produced ", " is "),
    t("The origianl broadcaster of ", " is "),
    t("", " was born in the city of "),
    t("", " died in the city of "),
    t("", " worked in the city of "),
    t("", " was founded in the city of "),
    t("", " was created in the country of "),
    t("", " is located in the continent of "),
    t("", " plays the position of "),
    t("", " is married to "),
    t("", " is a citizen of "),
    t("", " is associated with the sport of "),
    t("", " is affiliated with the religion of "),
    t("", " was founded by "),
    t("", " was performed by "),
    t("", " was created by "),
    t("", " was developed by "),
    t("", " is employed by "),
    t("", " speaks the language of "),
    t("", " was written in the language of "),
    t("", " is famous for "),
    t("", " works in the field of "),
    t("", "'s child is "),
];

/// Splits a fact into its slot key (the text before the value, without the trailing space)
/// and its value (without the final full stop), with the one template it matches. `None`
/// when no template, or more than one, fits.
pub fn split_fact(fact: &str) -> Option<(String, String, Template)> {
    let body = fact.trim();
    let body = body.strip_suffix('.').unwrap_or(body);
    let once = |hay: &str, link: &str| hay.matches(link).count() == 1;
    let split_at = |link_at: usize, template: Template| {
        let end = link_at + template.link.len();
        let (key, value) = (body[..end].trim_end(), body[end..].trim());
        (!value.is_empty() && key.len() > template.link.trim().len())
            .then(|| (key.to_string(), value.to_string(), template))
    };
    // A fact with a fixed start: the link after it.
    for template in TEMPLATES.iter().filter(|t| !t.lead.is_empty()) {
        if let Some(rest) = body.strip_prefix(template.lead) {
            if once(rest, template.link) {
                let at = template.lead.len() + rest.find(template.link)?;
                return split_at(at, *template);
            }
        }
    }
    let mut found = TEMPLATES
        .iter()
        .filter(|t| t.lead.is_empty() && once(body, t.link));
    let template = *found.next()?;
    if found.next().is_some() {
        return None;
    }
    split_at(body.find(template.link)?, template)
}

/// Facts about one subject and relation, in the order they were stated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// The facts' text before the value ("Hines Ward plays the position of").
    pub key: String,
    /// The subject: the key without the template's words ("Hines Ward").
    pub subject: String,
    /// (fact index, value), in order; the last is the current one.
    pub values: Vec<(usize, String)>,
}

impl Slot {
    /// The value stated last.
    pub fn last(&self) -> &str {
        self.values.last().map_or("", |(_, v)| v.as_str())
    }
}

/// Groups facts into slots, in order of each slot's first fact. Also returns the indexes of
/// facts that no template fits (none in the 6K data), and how many templates were used.
pub fn slots(facts: &[String]) -> (Vec<Slot>, Vec<usize>, usize) {
    let mut out: Vec<Slot> = Vec::new();
    let mut by_key: HashMap<String, usize> = HashMap::new();
    let mut unmatched = Vec::new();
    let mut templates = Vec::new();
    for (i, fact) in facts.iter().enumerate() {
        let Some((key, value, template)) = split_fact(fact) else {
            unmatched.push(i);
            continue;
        };
        if !templates.contains(&template) {
            templates.push(template);
        }
        let slot = *by_key.entry(normal(&key)).or_insert_with(|| {
            let subject = key
                .get(template.lead.len()..key.len() - template.link.trim_end().len())
                .unwrap_or_default()
                .trim()
                .to_string();
            out.push(Slot {
                key,
                subject,
                values: Vec::new(),
            });
            out.len() - 1
        });
        out[slot].values.push((i, value));
    }
    (out, unmatched, templates.len())
}

/// Lower case, runs of whitespace as one space.
fn normal(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

fn is_word(c: Option<char>) -> bool {
    c.is_some_and(char::is_alphanumeric)
}

/// Where `needle` (normalised) stands in `hay` (normalised) as whole words: (start, end).
fn spans(hay: &str, needle: &str) -> Vec<(usize, usize)> {
    hay.match_indices(needle)
        .filter(|(at, _)| {
            !is_word(hay[..*at].chars().next_back())
                && !is_word(hay[at + needle.len()..].chars().next())
        })
        .map(|(at, _)| (at, at + needle.len()))
        .collect()
}

/// Which values of which slots a memory's text states, as (slot, value index) pairs: the
/// slot's key followed by the value, as whole words. A statement inside a longer one of
/// another slot ("Buddhism was founded by" inside "Shingon Buddhism was founded by") is the
/// longer one's.
pub fn stated(text: &str, slots: &[Slot]) -> Vec<(usize, usize)> {
    let text = normal(text);
    let mut found: Vec<(usize, usize, (usize, usize))> = Vec::new();
    for (s, slot) in slots.iter().enumerate() {
        let key = normal(&slot.key);
        if !text.contains(&key) {
            continue;
        }
        for (v, (_, value)) in slot.values.iter().enumerate() {
            for span in spans(&text, &format!("{key} {}", normal(value))) {
                found.push((s, v, span));
            }
        }
    }
    let inside = |a: (usize, usize), b: (usize, usize)| a != b && b.0 <= a.0 && a.1 <= b.1;
    let mut out: Vec<(usize, usize)> = found
        .iter()
        .filter(|(_, _, span)| !found.iter().any(|(_, _, other)| inside(*span, *other)))
        .map(|(s, v, _)| (*s, *v))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether a memory counts at `now_ms`: live (not archived) and valid then.
pub fn current(m: &Memory, now_ms: u64) -> bool {
    m.tier != Tier::Archived && valid_at(m, now_ms)
}

/// A question with its gold answers (any counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// The data set's id (`factconsolidation_sh_6k_no0`).
    pub id: String,
    /// The question.
    pub question: String,
    /// Gold answers.
    pub answers: Vec<String>,
}

impl Question {
    /// Whether `text` contains one of the gold answers, case-insensitive.
    pub fn answered_by(&self, text: &str) -> bool {
        let text = normal(text);
        self.answers
            .iter()
            .map(|a| normal(a))
            .any(|a| !a.is_empty() && text.contains(&a))
    }
}

/// The data: the facts in order, and both question sets.
#[derive(Debug, Clone, Default)]
pub struct Data {
    /// The facts without their numbers, in order.
    pub facts: Vec<String>,
    /// Single-hop questions.
    pub single_hop: Vec<Question>,
    /// Multi-hop questions.
    pub multi_hop: Vec<Question>,
}

#[derive(Deserialize)]
struct File {
    data: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    context: String,
    questions: Vec<String>,
    answers: Vec<Answers>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize, Default)]
struct Metadata {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    qa_pair_ids: Option<Vec<String>>,
}

/// A gold answer: one string or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
enum Answers {
    One(String),
    Many(Vec<String>),
}

/// The numbered facts of a context ("Here is a list of facts:\n0. ...\n1. ..."), without
/// their numbers; the numbers must run 0, 1, 2...
pub fn parse_context(context: &str) -> anyhow::Result<Vec<String>> {
    let mut facts = Vec::new();
    for line in context.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some((n, text)) = line.split_once(". ") else {
            anyhow::ensure!(facts.is_empty(), "not a numbered fact: {line:?}");
            continue; // the heading
        };
        let Ok(n) = n.parse::<usize>() else {
            anyhow::ensure!(facts.is_empty(), "not a numbered fact: {line:?}");
            continue;
        };
        anyhow::ensure!(
            n == facts.len(),
            "fact {n} where fact {} was expected",
            facts.len()
        );
        facts.push(text.trim().to_string());
    }
    anyhow::ensure!(!facts.is_empty(), "no numbered facts in the context");
    Ok(facts)
}

/// Reads FactConsolidation in MemoryAgentBench's layout: `data`, one entry per subset
/// (`metadata.source` `factconsolidation_sh_6k` or `..._mh_...`), each with the same context.
pub fn load(path: &Path) -> anyhow::Result<Data> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let file: File = serde_json::from_str(&text)
        .with_context(|| format!("{} is not FactConsolidation JSON", path.display()))?;
    let mut data = Data::default();
    let mut context: Option<&str> = None;
    for (n, entry) in file.data.iter().enumerate() {
        match context {
            None => {
                data.facts = parse_context(&entry.context)
                    .with_context(|| format!("{}: entry {n}", path.display()))?;
                context = Some(&entry.context);
            }
            Some(c) => anyhow::ensure!(
                c == entry.context,
                "{}: entry {n} has another context; one store cannot answer both",
                path.display()
            ),
        }
        anyhow::ensure!(
            entry.questions.len() == entry.answers.len(),
            "{}: entry {n} has {} questions and {} answers",
            path.display(),
            entry.questions.len(),
            entry.answers.len()
        );
        let source = entry.metadata.source.clone().unwrap_or_default();
        let ids = entry.metadata.qa_pair_ids.clone().unwrap_or_default();
        let questions =
            entry
                .questions
                .iter()
                .zip(&entry.answers)
                .enumerate()
                .map(|(i, (q, a))| Question {
                    id: ids
                        .get(i)
                        .cloned()
                        .unwrap_or_else(|| format!("{source}_no{i}")),
                    question: q.clone(),
                    answers: match a {
                        Answers::One(a) => vec![a.clone()],
                        Answers::Many(a) => a.clone(),
                    },
                });
        if source.contains("_sh") {
            data.single_hop.extend(questions);
        } else if source.contains("_mh") {
            data.multi_hop.extend(questions);
        } else {
            anyhow::bail!(
                "{}: entry {n} is neither single-hop nor multi-hop (metadata.source {source:?})",
                path.display()
            );
        }
    }
    Ok(data)
}

/// What to run.
#[derive(Debug, Clone)]
pub struct FactsOptions {
    /// The data file.
    pub data: PathBuf,
    /// Ingest only the first this many facts, and ask only questions whose gold answer is in
    /// one of them.
    pub limit: Option<usize>,
    /// Ask at most this many questions of each kind.
    pub max_questions: Option<usize>,
    /// Make the store in this folder and keep it, instead of a temporary one.
    pub store: Option<PathBuf>,
    /// The command line, printed with the table.
    pub command: String,
}

/// Questions asked of one kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hits {
    /// Questions whose top recalled memory contains a gold answer.
    pub top: usize,
    /// ...whose recalled memories (`memory.recall_k` of them) have one in any.
    pub any: usize,
    /// Questions asked.
    pub asked: usize,
}

impl Hits {
    /// `top / asked`, 0 when nothing was asked.
    pub fn top_share(&self) -> f64 {
        share(self.top, self.asked)
    }

    /// `any / asked`, 0 when nothing was asked.
    pub fn any_share(&self) -> f64 {
        share(self.any, self.asked)
    }
}

fn share(n: usize, of: usize) -> f64 {
    if of == 0 {
        0.0
    } else {
        n as f64 / of as f64
    }
}

/// Slot counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SlotCounts {
    /// Slots.
    pub slots: usize,
    /// Whose current memory holds the last value and no other value is current.
    pub right: usize,
    /// Whose last value no current memory holds.
    pub last_missing: usize,
    /// With an earlier value still current.
    pub stale: usize,
}

impl SlotCounts {
    /// `right / slots`, 0 without slots.
    pub fn share(&self) -> f64 {
        share(self.right, self.slots)
    }
}

/// What a run gave.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Facts ingested.
    pub facts: usize,
    /// Facts stored as new memories.
    pub stored: usize,
    /// Facts that re-warmed a stored memory instead.
    pub rewarmed: usize,
    /// Facts not stored (chatter, or not worth remembering).
    pub dropped: usize,
    /// Memories current at the end.
    pub current_memories: usize,
    /// Memories archived at the end.
    pub archived: usize,
    /// Memories live but no longer valid at the end (superseded).
    pub superseded: usize,
    /// Templates the facts used.
    pub templates: usize,
    /// Facts no template fits (left out of the slots).
    pub unmatched: usize,
    /// Every slot.
    pub all: SlotCounts,
    /// Slots stated more than once (an override).
    pub overridden: SlotCounts,
    /// Slots stated once.
    pub once: SlotCounts,
    /// Single-hop questions.
    pub single_hop: Hits,
    /// Multi-hop questions.
    pub multi_hop: Hits,
    /// Time to ingest every fact.
    pub ingest: Duration,
    /// Recall time per question.
    pub recall: Vec<Duration>,
    /// Up to 5 slots that failed: (key, last value, values current).
    pub failed_examples: Vec<(String, String, Vec<String>)>,
    /// Up to 5 single-hop questions missed: (question, gold answers, top memory's text).
    pub missed_examples: Vec<(String, Vec<String>, String)>,
}

/// Whether the ingested facts can answer `q`: for a single-hop question, a slot whose
/// subject it names has a gold answer as its last value; for a multi-hop one, a gold answer
/// is some fact's value.
pub fn answerable(q: &Question, slots: &[Slot], single_hop: bool) -> bool {
    let question = normal(&q.question);
    let gold = |v: &str| q.answers.iter().any(|a| normal(a) == normal(v));
    slots.iter().any(|s| {
        if single_hop {
            gold(s.last()) && !s.subject.is_empty() && question.contains(&normal(&s.subject))
        } else {
            s.values.iter().any(|(_, v)| gold(v))
        }
    })
}

/// The questions asked: with a limit, only those the ingested facts can answer
/// ([`answerable`]); at most `max` of them.
fn asked<'a>(
    questions: &'a [Question],
    slots: &[Slot],
    single_hop: bool,
    limited: bool,
    max: Option<usize>,
) -> Vec<&'a Question> {
    questions
        .iter()
        .filter(|q| !limited || answerable(q, slots, single_hop))
        .take(max.unwrap_or(usize::MAX))
        .collect()
}

/// Ingests the facts into a fresh store in `dir` (which must be empty or absent) through the
/// live path, then measures slots and asks the questions.
pub async fn run(
    data: &Data,
    config: &HubConfig,
    embedder: &Embedder,
    dir: &Path,
    limit: Option<usize>,
    max_questions: Option<usize>,
) -> anyhow::Result<Outcome> {
    let facts = &data.facts[..limit.unwrap_or(usize::MAX).min(data.facts.len())];
    let limited = facts.len() < data.facts.len();
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let memories = Arc::new(Memories::open(dir, embedder.dim())?);
    anyhow::ensure!(
        memories.store().is_empty(),
        "{} already holds memories",
        dir.display()
    );
    let subconscious = Subconscious::new(
        Arc::clone(&memories),
        embedder.clone(),
        config.memory.clone(),
    )
    .with_emotion(config.emotion.clone());
    let mut out = Outcome {
        facts: facts.len(),
        ..Outcome::default()
    };

    let started = Instant::now();
    for (i, fact) in facts.iter().enumerate() {
        let when = START_MS + i as u64 * STEP_MS;
        let u = Utterance {
            id: format!("fact-{i}"),
            terminal: "factconsolidation".into(),
            room: ROOM.into(),
            text: fact.clone(),
            started_at_ms: when,
            ended_at_ms: when,
            audio: None,
            speaker: None,
        };
        let before = memories.store().len();
        match subconscious.ingest(&u, None, None, when).await {
            Some(_) if memories.store().len() > before => out.stored += 1,
            Some(_) => out.rewarmed += 1,
            None => out.dropped += 1,
        }
    }
    out.ingest = started.elapsed();
    // A minute after the last fact.
    let now = START_MS + facts.len() as u64 * STEP_MS;

    // Slots: which values the current memories hold.
    let (slots, unmatched, templates) = self::slots(facts);
    out.templates = templates;
    out.unmatched = unmatched.len();
    let mut held: Vec<Vec<bool>> = slots.iter().map(|s| vec![false; s.values.len()]).collect();
    for m in memories.store().iter() {
        let m = m?;
        if m.asked {
            continue;
        }
        if !current(&m, now) {
            if m.tier == Tier::Archived {
                out.archived += 1;
            } else {
                out.superseded += 1;
            }
            continue;
        }
        out.current_memories += 1;
        for (s, v) in stated(&m.text, &slots) {
            held[s][v] = true;
        }
    }
    for (slot, held) in slots.iter().zip(&held) {
        let n = held.len();
        let last = held[n - 1];
        let stale = held[..n - 1].iter().any(|h| *h);
        let right = last && !stale;
        for counts in [
            &mut out.all,
            if n > 1 {
                &mut out.overridden
            } else {
                &mut out.once
            },
        ] {
            counts.slots += 1;
            counts.right += usize::from(right);
            counts.last_missing += usize::from(!last);
            counts.stale += usize::from(stale);
        }
        if !right && out.failed_examples.len() < 5 {
            let current = slot
                .values
                .iter()
                .zip(held)
                .filter(|(_, h)| **h)
                .map(|((_, v), _)| v.clone())
                .collect();
            out.failed_examples
                .push((slot.key.clone(), slot.last().to_string(), current));
        }
    }

    // Questions.
    for (questions, hits, single) in [
        (&data.single_hop, &mut out.single_hop, true),
        (&data.multi_hop, &mut out.multi_hop, false),
    ] {
        for q in asked(questions, &slots, single, limited, max_questions) {
            let t = Instant::now();
            let recall = subconscious.recall(&q.question, now).await;
            out.recall.push(t.elapsed());
            hits.asked += 1;
            let top = recall.recalled.first();
            if top.is_some_and(|m| q.answered_by(&m.text)) {
                hits.top += 1;
            } else if single && out.missed_examples.len() < 5 {
                out.missed_examples.push((
                    q.question.clone(),
                    q.answers.clone(),
                    top.map(|m| m.text.clone()).unwrap_or_default(),
                ));
            }
            if recall.recalled.iter().any(|m| q.answered_by(&m.text)) {
                hits.any += 1;
            }
        }
    }
    Ok(out)
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// The results table, as markdown.
pub fn table(out: &Outcome, recall_k: usize) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "| measure | n | score | top {recall_k} recalled |\n|---|---|---|---|\n"
    ));
    let slot_row = |s: &mut String, name: &str, c: &SlotCounts| {
        s.push_str(&format!("| {name} | {} | {:.3} | |\n", c.slots, c.share()));
    };
    slot_row(
        &mut s,
        "slots: the current memory holds the last value, no other value current",
        &out.all,
    );
    slot_row(&mut s, "... slots stated more than once", &out.overridden);
    slot_row(&mut s, "... slots stated once", &out.once);
    let hits_row = |s: &mut String, name: &str, h: &Hits| {
        s.push_str(&format!(
            "| {name} | {} | {:.3} | {:.3} |\n",
            h.asked,
            h.top_share(),
            h.any_share()
        ));
    };
    hits_row(
        &mut s,
        "single-hop: the top recalled memory holds a gold answer",
        &out.single_hop,
    );
    hits_row(
        &mut s,
        "multi-hop (reported only): the same",
        &out.multi_hop,
    );
    s
}

/// Makes the store folder: a temporary one, or `--store` (absent, empty, or made by an
/// earlier run of this bench, which is cleared).
fn store_dir(store: Option<&Path>) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    let Some(dir) = store else {
        let temporary = tempfile::tempdir()?;
        return Ok((temporary.path().to_path_buf(), Some(temporary)));
    };
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            anyhow::ensure!(
                dir.join(MARKER).exists(),
                "{} is not empty and was not made by `hearth-bench facts`; choose another folder",
                dir.display()
            );
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("cannot clear {}", dir.display()))?;
        }
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(MARKER),
        "made by `hearth-bench facts`; the next run clears this folder\n",
    )
    .with_context(|| format!("cannot write in {}", dir.display()))?;
    Ok((dir.to_path_buf(), None))
}

/// Runs the benchmark and prints the table.
pub async fn bench(config: HubConfig, opts: FactsOptions) -> anyhow::Result<()> {
    let wall = Instant::now();
    let data = load(&opts.data)?;
    let (dir, _temporary) = store_dir(opts.store.as_deref())?;
    let (embedder, _t) = Embedder::start(config.embeddings.clone()).await?;
    let n = opts.limit.unwrap_or(usize::MAX).min(data.facts.len());
    eprintln!(
        "ingesting {n} of {} facts through the live path, then up to {} + {} questions",
        data.facts.len(),
        data.single_hop.len(),
        data.multi_hop.len()
    );
    let mut out = run(
        &data,
        &config,
        &embedder,
        &dir,
        opts.limit,
        opts.max_questions,
    )
    .await?;
    out.recall.sort();
    println!();
    println!("$ {}", opts.command);
    println!(
        "FactConsolidation ({}): {} facts through Subconscious::ingest, one room, no speaker, a minute apart ({} stored, {} re-warmed a memory, {} not stored); a minute after the last: {} memories current, {} superseded, {} archived",
        opts.data.file_name().and_then(|f| f.to_str()).unwrap_or("?"),
        out.facts,
        out.stored,
        out.rewarmed,
        out.dropped,
        out.current_memories,
        out.superseded,
        out.archived
    );
    println!(
        "slots: subject + relation from {} sentence templates; {} slots, {} stated more than once{}",
        out.templates,
        out.all.slots,
        out.overridden.slots,
        if out.unmatched > 0 {
            format!("; {} facts fit no template and are left out", out.unmatched)
        } else {
            String::new()
        }
    );
    print!("{}", table(&out, config.memory.recall_k));
    println!();
    println!(
        "slot failures: last value not current in {}, an earlier value still current in {}",
        out.all.last_missing, out.all.stale
    );
    for (key, last, current) in &out.failed_examples {
        println!("  e.g. \"{key} ...\": last {last:?}, current {current:?}");
    }
    if !out.missed_examples.is_empty() {
        println!("single-hop misses (question, gold, top recalled memory):");
    }
    for (question, gold, top) in &out.missed_examples {
        println!("  {question:?} {gold:?}: {top:?}");
    }
    println!(
        "ingest: {:.1} s, {:.1} ms per fact; recall per question: p50 {:.1} ms, p99 {:.1} ms; wall time {:.1} s",
        out.ingest.as_secs_f64(),
        out.ingest.as_secs_f64() * 1e3 / out.facts.max(1) as f64,
        percentile(&out.recall, 0.5),
        percentile(&out.recall, 0.99),
        wall.elapsed().as_secs_f64()
    );
    if let Some(store) = &opts.store {
        println!("store kept in {}", store.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
