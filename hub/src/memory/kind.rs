//! What a turn is, decided in code for every turn before it may become a memory: a fact,
//! preference, event or plan about the household is stored; a question, a command to the
//! assistant or small talk is not.
//!
//! The rules read the shape of the sentence (how it starts, how it ends, what it asks of the
//! assistant), never its topic, so that they hold for any household. `bench/data/
//! household-turns.tsv` is the labelled set they are measured on (`hearth-bench writes`).

mod lexicon;

use self::lexicon::*;
use crate::words::{content_words, words};

/// What a turn is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Something true about the household ("my locker code is 4812").
    Fact,
    /// A like or dislike ("I can't stand coriander").
    Preference,
    /// Something that happened ("the boiler broke again").
    Event,
    /// Something that will happen ("we're going to Lisbon on the 14th").
    Plan,
    /// A question, to the assistant or rhetorical.
    Question,
    /// A request to the assistant ("turn the lights off", "tell me a joke").
    Command,
    /// Greetings, thanks, reactions, passing remarks.
    SmallTalk,
}

impl Kind {
    /// Whether a turn of this kind is worth remembering.
    pub fn stored(self) -> bool {
        matches!(
            self,
            Kind::Fact | Kind::Preference | Kind::Event | Kind::Plan
        )
    }

    /// The kind's name, as in the labelled set.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Fact => "fact",
            Kind::Preference => "preference",
            Kind::Event => "event",
            Kind::Plan => "plan",
            Kind::Question => "question",
            Kind::Command => "command",
            Kind::SmallTalk => "smalltalk",
        }
    }
}

/// Store/skip against labels: precision and recall of "store".
#[derive(Debug, Default)]
pub struct Scores {
    /// Labelled turns.
    pub rows: usize,
    /// Stored and labelled store.
    pub true_store: usize,
    /// Stored, labelled skip.
    pub false_store: usize,
    /// Skipped, labelled store.
    pub missed: usize,
    /// The turns decided against their label: (text, label "store"/"skip", kind given).
    pub wrong: Vec<(String, &'static str, Kind)>,
}

impl Scores {
    /// Classifies each (text, should be stored) and counts.
    pub fn of<'a>(rows: impl IntoIterator<Item = (&'a str, bool)>) -> Scores {
        let mut s = Scores::default();
        for (text, store) in rows {
            let kind = classify(text);
            s.rows += 1;
            match (store, kind.stored()) {
                (true, true) => s.true_store += 1,
                (false, true) => s.false_store += 1,
                (true, false) => s.missed += 1,
                (false, false) => {}
            }
            if store != kind.stored() {
                let label = if store { "store" } else { "skip" };
                s.wrong.push((text.to_string(), label, kind));
            }
        }
        s
    }

    /// The share of stored turns that should be.
    pub fn precision(&self) -> f64 {
        self.true_store as f64 / (self.true_store + self.false_store).max(1) as f64
    }

    /// The share of turns that should be stored that are.
    pub fn recall(&self) -> f64 {
        self.true_store as f64 / (self.true_store + self.missed).max(1) as f64
    }
}

impl std::fmt::Display for Scores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} turns: store precision {:.3}, recall {:.3} ({} stored wrongly, {} missed)",
            self.rows,
            self.precision(),
            self.recall(),
            self.false_store,
            self.missed
        )
    }
}

/// The rows of a labelled set (`label<TAB>kind<TAB>text`, a header first): (text, whether
/// it should be stored). An error names the first bad line.
pub fn labelled(tsv: &str) -> Result<Vec<(&str, bool)>, String> {
    tsv.lines()
        .enumerate()
        .skip(1)
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let mut fields = line.splitn(3, '\t');
            let (label, _kind, text) = (fields.next(), fields.next(), fields.next());
            match (label, text) {
                (Some("store"), Some(t)) => Ok((t, true)),
                (Some("skip"), Some(t)) => Ok((t, false)),
                _ => Err(format!("line {}: want store|skip<TAB>kind<TAB>text", i + 1)),
            }
        })
        .collect()
}

/// Whether a turn's words open with a request's verb.
fn opens_with_request(turn: &[String]) -> bool {
    let Some(first) = turn.first().map(String::as_str) else {
        return false;
    };
    IMPERATIVES.contains(&first)
        || (VERB_OR_NOUN.contains(&first)
            && turn
                .get(1)
                .is_some_and(|w| OBJECT_OPENERS.contains(&w.as_str())))
}

/// Decides what `text` is. A turn of several sentences is what its most telling sentence
/// is: "Thanks! I signed up for a pottery class yesterday. Have you tried it?" is an event.
pub fn classify(text: &str) -> Kind {
    let sentences = sentences(text);
    if sentences.len() <= 1 {
        return classify_one(text);
    }
    let kinds: Vec<Kind> = sentences.iter().map(|s| classify_one(s)).collect();
    kinds
        .iter()
        .copied()
        .find(|k| k.stored())
        .or_else(|| kinds.iter().copied().find(|k| *k != Kind::SmallTalk))
        .unwrap_or(Kind::SmallTalk)
}

/// The sentences of `text`: split after `.`, `!` or `?` followed by a space.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = text.as_bytes();
    for (i, c) in text.char_indices() {
        if matches!(c, '.' | '!' | '?') && bytes.get(i + 1).is_some_and(|b| *b == b' ') {
            let s = text[start..=i].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = i + 1;
        }
    }
    let s = text[start..].trim();
    if !s.is_empty() {
        out.push(s);
    }
    out
}

/// What one sentence is. Said to someone else in the room by name ("Kofi, can you shut the
/// door", "Ollie put your shoes on") it is what it would be to the assistant.
fn classify_one(text: &str) -> Kind {
    let kind = classify_plain(text);
    if !kind.stored() {
        return kind;
    }
    if greets_by_name(text) {
        return Kind::SmallTalk;
    }
    let mut tokens = text.split_whitespace();
    let first = tokens.next().unwrap_or("");
    let name = first.trim_end_matches([',', ':']);
    let rest: Vec<&str> = tokens.collect();
    if is_name(name) && !rest.is_empty() {
        let rest = rest.join(" ");
        let asked = words(&rest);
        let request = REQUESTS.iter().any(|r| starts_with(&asked.join(" "), r))
            || (opens_with_request(&asked)
                && asked
                    .first()
                    .is_some_and(|w| !NOT_VERBS.contains(&w.as_str())));
        // "Kofi, is dinner ready?" asks; "Mia is eight" tells.
        let addressed = first.ends_with(',') && classify_plain(&rest) == Kind::Question;
        if request {
            return Kind::Command;
        }
        if addressed {
            return Kind::Question;
        }
    }
    kind
}

/// Whether a sentence is small talk said to someone by name: "Morning Jarvis", "Thanks,
/// Tom!", "Good night Anna Lee". The name is one or two capitalised words after a whole
/// greeting; "Hi, I'm Tom" tells a name, and "No, York" answers or corrects.
fn greets_by_name(text: &str) -> bool {
    let tokens: Vec<&str> = text
        .split_whitespace()
        .map(|t| t.trim_matches(|c: char| !c.is_alphanumeric() && c != '\''))
        .filter(|t| !t.is_empty())
        .collect();
    (1..tokens.len()).any(|k| {
        let phrase = tokens[..k].join(" ").to_lowercase();
        let names = &tokens[k..];
        GREETINGS.contains(&phrase.as_str()) && names.len() <= 2 && names.iter().all(|n| is_name(n))
    })
}

/// Whether `word` reads as someone's name: capitalised, letters only, more than one, and no
/// word the rules know.
fn is_name(word: &str) -> bool {
    word.len() > 1
        && word.chars().next().is_some_and(char::is_uppercase)
        && word.chars().all(char::is_alphabetic)
        && !is_known_word(&word.to_lowercase())
}

/// The content words of `phrase` that are not chatter ("stuff", "thing", ...).
fn substance(phrase: &str) -> Vec<String> {
    content_words(phrase)
        .into_iter()
        .filter(|w| !CHATTER.contains(&w.as_str()))
        .collect()
}

/// Whether `w` is one of the words the rules know (so not a name).
fn is_known_word(w: &str) -> bool {
    FILLERS.contains(&w)
        || QUESTION_OPENERS.contains(&w)
        || IMPERATIVES.contains(&w)
        || VERB_OR_NOUN.contains(&w)
        || SUBJECTS.contains(&w)
        || crate::words::content_words(w).is_empty()
}

/// How many of `words` at the start are fillers ("um, so, oh and ...").
fn fillers(words: &[String]) -> usize {
    words
        .iter()
        .take_while(|w| FILLERS.contains(&w.as_str()))
        .count()
}

/// What one sentence is, read as said to the assistant.
fn classify_plain(text: &str) -> Kind {
    let all = words(text);
    let start = fillers(&all);
    let turn = &all[start..];
    if turn.is_empty() {
        return Kind::SmallTalk;
    }
    let phrase = turn.join(" ");
    for cue in ANNOUNCING {
        if let Some(rest) = strip_phrase(&phrase, cue) {
            if !content_words(rest).is_empty() {
                return classify_plain(rest);
            }
        }
    }
    // "Remember that ..." hands over a statement to remember.
    for cue in REMEMBER_THIS {
        if let Some(rest) = strip_phrase(&phrase, cue) {
            if content_words(rest).is_empty() {
                return Kind::Command;
            }
            return statement_kind(rest).unwrap_or(Kind::Fact);
        }
    }
    // "Can't wait!" is small talk; "can't wait to show my paintings at the fair" looks
    // forward to something.
    for cue in LOOKING_FORWARD {
        if let Some(rest) = strip_phrase(&phrase, cue) {
            if substance(rest).len() >= 2 {
                return Kind::Plan;
            }
        }
    }
    if SMALL_TALK.contains(&phrase.as_str())
        || SMALL_TALK_OPENERS.iter().any(|o| starts_with(&phrase, o))
    {
        return Kind::SmallTalk;
    }
    // A request that says how the user wants things is a preference about them ("call me
    // Jo", "use celsius with me, I prefer metric").
    let preference = ADDRESS_ME.iter().any(|p| starts_with(&phrase, p))
        || STATED_PREFERENCE
            .iter()
            .any(|p| contains_phrase(&phrase, p));
    if REQUESTS.iter().any(|r| starts_with(&phrase, r)) {
        return if preference {
            Kind::Preference
        } else {
            Kind::Command
        };
    }
    if is_question(text, turn, &phrase) {
        return Kind::Question;
    }
    if opens_with_request(turn) {
        return if preference {
            Kind::Preference
        } else {
            Kind::Command
        };
    }
    if is_passing(turn, &phrase) {
        return Kind::SmallTalk;
    }
    statement_kind(&phrase).unwrap_or(Kind::SmallTalk)
}

/// Whether a statement is a passing remark: it says nothing but chatter, or announces what
/// the speaker does this minute ("I'm just popping to the shop"), or ends in a question tag
/// ("..., do you").
fn is_passing(turn: &[String], phrase: &str) -> bool {
    let has_number = phrase.chars().any(|c| c.is_ascii_digit());
    if substance(phrase).is_empty() && !has_number {
        return true;
    }
    let now = [
        "i'm just",
        "i'm popping",
        "just popping",
        "i'm off to work",
        "i'm heading",
    ]
    .iter()
    .any(|p| starts_with(phrase, p));
    let later = PLAN.iter().any(|p| {
        !matches!(*p, "going to" | "gonna" | "soon" | "later") && contains_phrase(phrase, p)
    });
    if now && !later {
        return true;
    }
    let n = turn.len();
    n >= 3
        && matches!(
            turn[n - 2].as_str(),
            "do" | "don't"
                | "does"
                | "doesn't"
                | "is"
                | "isn't"
                | "are"
                | "aren't"
                | "did"
                | "didn't"
                | "can"
                | "can't"
                | "will"
                | "won't"
                | "was"
                | "wasn't"
                | "have"
                | "haven't"
        )
        && matches!(
            turn[n - 1].as_str(),
            "you" | "i" | "it" | "they" | "we" | "he" | "she"
        )
}

/// The statement a turn hands over to be remembered, as said: the words after "remember
/// that" and its kin, or the whole turn.
pub fn told(text: &str) -> &str {
    let all = words(text);
    let start = fillers(&all);
    let phrase = all[start..].join(" ");
    let Some(cue) = REMEMBER_THIS
        .iter()
        .find(|cue| strip_phrase(&phrase, cue).is_some_and(|r| !r.is_empty()))
    else {
        return text;
    };
    // Skip as many words of the text as the fillers and the cue have.
    let skip = start + cue.split_whitespace().count();
    let mut rest = text;
    for _ in 0..skip {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    rest.trim_start_matches(|c: char| c.is_whitespace() || ",:;-".contains(c))
}

/// Whether anything in `text` is asked: one of its sentences ends as a question ("Congrats!
/// What made you run again? I'd vote for you."), so what is said next may answer it.
pub fn asks_anything(text: &str) -> bool {
    text.contains('?')
}

/// Whether a turn asks something.
fn is_question(text: &str, turn: &[String], phrase: &str) -> bool {
    if text.trim_end().ends_with('?') {
        return true;
    }
    if ASKING.iter().any(|a| starts_with(phrase, a)) {
        return true;
    }
    let first = turn[0].as_str();
    if !QUESTION_OPENERS.contains(&first) {
        return false;
    }
    // "When I was a kid I had a dog": a clause, then a statement.
    let clause = matches!(first, "when" | "where" | "how" | "what" | "which")
        && turn.get(1).is_some_and(|w| SUBJECTS.contains(&w.as_str()))
        && turn.len() >= 6;
    // "Do ..." and "don't ..." also open requests ("don't forget the milk").
    let request = matches!(first, "do" | "don't") && !turn.get(1).is_some_and(|w| is_pronoun(w));
    !clause && !request
}

fn is_pronoun(w: &str) -> bool {
    matches!(
        w,
        "i" | "you" | "we" | "they" | "he" | "she" | "it" | "my" | "your" | "our" | "their"
    )
}

/// The kind of a statement, or `None` when it says too little to be worth keeping.
fn statement_kind(phrase: &str) -> Option<Kind> {
    let content = content_words(phrase);
    let has_number = phrase.chars().any(|c| c.is_ascii_digit());
    if content.is_empty() || (content.len() == 1 && !has_number) {
        return None;
    }
    let has = |list: &[&str]| list.iter().any(|p| contains_phrase(phrase, p));
    Some(if has(PREFERENCE) {
        Kind::Preference
    } else if has(PLAN) {
        Kind::Plan
    } else if has(EVENT) {
        Kind::Event
    } else {
        Kind::Fact
    })
}

/// Whether `phrase` (words joined by single spaces) starts with the words of `prefix`.
fn starts_with(phrase: &str, prefix: &str) -> bool {
    phrase == prefix || phrase.starts_with(&format!("{prefix} "))
}

/// `phrase` after the words of `prefix`.
fn strip_phrase<'a>(phrase: &'a str, prefix: &str) -> Option<&'a str> {
    if phrase == prefix {
        return Some("");
    }
    phrase.strip_prefix(prefix)?.strip_prefix(' ')
}

/// Whether the words of `needle` occur in `phrase` as whole words.
fn contains_phrase(phrase: &str, needle: &str) -> bool {
    format!(" {phrase} ").contains(&format!(" {needle} "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_common_cases() {
        let table = [
            ("My brother Tom moved to Leeds last year.", Kind::Event),
            ("my locker code is 4812", Kind::Fact),
            ("I can't stand coriander", Kind::Preference),
            ("We're going to Lisbon on the 14th.", Kind::Plan),
            ("What is the capital of France?", Kind::Question),
            ("where does Tom live now", Kind::Question),
            ("tell me a joke", Kind::Command),
            ("Turn the lights off in the kitchen", Kind::Command),
            ("can you play some jazz", Kind::Command),
            ("thanks!", Kind::SmallTalk),
            ("Haha that's funny", Kind::SmallTalk),
            ("um, good morning", Kind::SmallTalk),
            ("Morning Jarvis", Kind::SmallTalk),
            ("Can't wait!", Kind::SmallTalk),
            ("can't wait to see you", Kind::SmallTalk),
            (
                "Can't wait to surprise my family with a lasagne!",
                Kind::Plan,
            ),
            (
                "I can't wait 'til the studio opens to dancers of all ages",
                Kind::Plan,
            ),
            ("Thanks, Tom!", Kind::SmallTalk),
            ("Good night Anna Lee.", Kind::SmallTalk),
            ("Hi, I'm Tom and I live in Leeds.", Kind::Fact),
            ("Hi Jarvis, my sister Anna moved to Porto.", Kind::Event),
            ("When I was a kid I had a dog called Rex", Kind::Event),
            (
                "oh and remember that the plumber's number is 0161 555 0199",
                Kind::Fact,
            ),
            ("don't forget the milk", Kind::Command),
            ("I wonder if it will rain", Kind::Question),
            // Requests of other verbs, and news announced before it is told.
            ("Name a famous river in Europe.", Kind::Command),
            ("Choose a song for me.", Kind::Command),
            ("Teach me a word in French.", Kind::Command),
            ("Create a shopping list.", Kind::Command),
            ("Draft an email to my boss.", Kind::Command),
            ("Sum up the news.", Kind::Command),
            ("Guess what, I got the job!", Kind::Event),
            ("you know what, my locker code is 4812", Kind::Fact),
            ("Guess what?", Kind::Question),
            ("Flip a coin", Kind::Command),
            ("Think of a number", Kind::Command),
            ("Water the plants at six", Kind::Command),
            ("Record a message for Tom", Kind::Command),
            ("Warm up the house", Kind::Command),
            // The same words as nouns tell something.
            ("Water is leaking from the boiler", Kind::Fact),
            ("Change is hard for Nan", Kind::Fact),
            ("Plan a picnic for Saturday.", Kind::Command),
            ("Plan is to leave at six", Kind::Plan),
            ("Guess what, did you hear about Tom?", Kind::Question),
        ];
        for (text, want) in table {
            assert_eq!(classify(text), want, "{text:?}");
        }
    }

    #[test]
    fn the_fact_handed_over() {
        assert_eq!(
            told("can you remember that my PIN is 2468"),
            "my PIN is 2468"
        );
        assert_eq!(
            told("Oh, and remember that: the key is blue."),
            "the key is blue."
        );
        assert_eq!(told("Tom lives in Leeds"), "Tom lives in Leeds");
    }

    /// The labelled household turns (`bench/data/household-turns.tsv`, written apart from
    /// these rules): store/skip precision and recall both at least 0.9.
    #[test]
    fn the_labelled_household_turns() {
        let data = include_str!("../../../bench/data/household-turns.tsv");
        let s = Scores::of(labelled(data).expect("the labelled set parses"));
        for (text, want, got) in &s.wrong {
            eprintln!("{want:>5} {:>10}  {text}", got.name());
        }
        eprintln!("{s}");
        assert!(s.rows >= 200, "{} rows", s.rows);
        assert!(s.precision() >= 0.9 && s.recall() >= 0.9, "{s}");
    }
}
