//! The preprocessor role: a room's older exchanges, folded into a few sentences that stay in
//! the prompt (see [`crate::conversation::Fold`]).
//!
//! The model writes the summary of the newly folded exchanges only; it is added to the
//! room's summary so far, which the model never rewrites, so that a weak model cannot lose
//! what an earlier fold kept. What a fold adds is decided in code ([`accept`]): every fact,
//! preference, event or plan the person stated (as `memory::kind` decides), in their own
//! words, then those of the model's sentences (labels and loops removed) that say more. A
//! model text that is empty or longer than what it replaces is not used. Over its limit, a
//! summary loses the model's sentences first, then the oldest statements ([`within`]).

use crate::conversation::{estimate_tokens, Fold};
use crate::llm::{ChatMessage, GenerateRequest, JobRole, LlmError, LlmHandle, Role};
use crate::memory::kind;
use crate::words::{content_words, words};

/// The built-in system prompt of the preprocessor (`roles.preprocessor.system_prompt`
/// replaces it).
const SYSTEM: &str = "You compress a conversation between a person and Hearth, their voice \
    assistant, into notes for Hearth. Keep every fact, name, number, date, plan and \
    preference the person gave. Leave out greetings and small talk. Write a few short plain \
    sentences about the person, nothing else.";

/// The preprocessor's messages for `fold`'s exchanges.
pub fn prompt(fold: &Fold) -> Vec<ChatMessage> {
    let mut said = String::new();
    for (user, assistant) in &fold.exchanges {
        said.push_str(&format!("User: {user}\nHearth: {assistant}\n"));
    }
    vec![
        ChatMessage::new(Role::System, SYSTEM),
        ChatMessage::new(
            Role::User,
            format!("{said}\nWrite the notes about the person."),
        ),
    ]
}

/// A fold's outcome.
#[derive(Debug, Clone)]
pub struct Folded {
    /// The room's new summary: the one before, then what this fold adds.
    pub summary: String,
    /// The messages the model was given.
    pub given: Vec<ChatMessage>,
    /// What the model wrote, cleaned ([`cleaned`]): what a training example should be.
    pub written: String,
    /// Whether the model's text was used (false: the person's statements alone).
    pub kept: bool,
}

/// How a person's statement opens in a summary.
const STATEMENT: &str = "They said: \"";

/// Folds `fold` with the model: the room's summary so far, then the checked summary of the
/// folded exchanges ([`accept`]), within `limit` estimated tokens ([`within`]). When the
/// model fails, the person's statements alone; `None` when it could not take the job (busy,
/// stopped) or it was cancelled, to be tried again after a later turn.
pub async fn summarise(llm: &LlmHandle, fold: &Fold, limit: usize) -> Option<Folded> {
    let request = GenerateRequest::background(JobRole::Preprocessor, prompt(fold), limit as u32);
    let given = llm.given(&request);
    let written = match llm.complete(request).await {
        Ok((_, stats)) if !stats.cancelled => stats.text,
        Ok(_) => return None,
        Err(e @ (LlmError::Busy { .. } | LlmError::Stopped)) => {
            tracing::info!(room = %fold.room, error = %e, "the preprocessor cannot run now; the room folds later");
            return None;
        }
        Err(e) => {
            tracing::warn!(room = %fold.room, error = %e, "the preprocessor failed; keeping the person's statements");
            String::new()
        }
    };
    let (new, kept) = accept(&written, &fold.exchanges);
    Some(Folded {
        summary: within(&join(&fold.summary, &new), limit),
        given,
        written: cleaned(&written).join(" "),
        kept,
    })
}

/// What a fold adds to the summary: each fact, preference, event or plan the person stated,
/// in their words, then the sentences of the model's text `written` (cleaned of labels, role
/// markers and repeats) that say more than those statements do. Empty model text, or text
/// longer than the exchanges it replaces, gives the statements alone (and false).
pub fn accept(written: &str, exchanges: &[(String, String)]) -> (String, bool) {
    let statements: Vec<String> = exchanges
        .iter()
        .map(|(user, _)| kind::told(user.trim()))
        .filter(|u| kind::classify(u).stored())
        .map(quote)
        .collect();
    let replaced: usize = exchanges
        .iter()
        .map(|(u, a)| estimate_tokens(u) + estimate_tokens(a))
        .sum();
    let sentences = cleaned(written);
    let summary = sentences.join(" ");
    if summary.is_empty() || estimate_tokens(&summary) > replaced {
        return (statements.join(" "), false);
    }
    // The person's statements stand in their words; the model's sentences add what they
    // do not say, and are the first to go when the summary is over its limit.
    let said = statements.join(" ");
    let added = sentences.into_iter().filter(|s| !keeps(&said, s));
    let out: Vec<String> = statements.iter().cloned().chain(added).collect();
    (out.join(" "), true)
}

/// The sentences of the model's text without labels, role turns, headings and repeats.
/// Line by line: cleaning joins lines, and a list's items are sentences.
pub fn cleaned(written: &str) -> Vec<String> {
    let mut sentences: Vec<String> = Vec::new();
    for line in written.lines() {
        let cleaned = crate::guard::clean(line);
        for s in split_sentences(strip_heading(&cleaned)) {
            let key = words(&s).join(" ");
            if !key.is_empty() && !sentences.iter().any(|t| words(t).join(" ") == key) {
                sentences.push(s);
            }
        }
    }
    sentences
}

/// A person's statement in their words: `They said: "...".`
fn quote(text: &str) -> String {
    let text = text.trim().trim_end_matches(['.', '!']);
    format!("{STATEMENT}{text}.\"")
}

/// `summary` within `limit` estimated tokens: the model's sentences go first, oldest first,
/// then the person's statements, oldest first; a last sentence still too long is cut at a
/// word.
pub fn within(summary: &str, limit: usize) -> String {
    let mut sentences = summary_sentences(summary);
    let size = |s: &[&str]| estimate_tokens(&s.join(" "));
    while size(&sentences) > limit && sentences.len() > 1 {
        let i = sentences
            .iter()
            .position(|s| !s.starts_with(STATEMENT))
            .unwrap_or(0);
        sentences.remove(i);
    }
    let joined = sentences.join(" ");
    if estimate_tokens(&joined) <= limit {
        return joined;
    }
    let mut out = String::new();
    for word in joined.split_whitespace() {
        let longer = if out.is_empty() {
            word.to_string()
        } else {
            format!("{out} {word}")
        };
        if estimate_tokens(&longer) > limit {
            break;
        }
        out = longer;
    }
    out
}

/// The sentences of a summary: each ends at `.`, `!` or `?` (and a closing quote) before a
/// space; a person's statement is one, whatever sentences it quotes.
fn summary_sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        if !matches!(c, '.' | '!' | '?') {
            continue;
        }
        let mut end = i + c.len_utf8();
        let mut next = k + 1;
        let quoted = chars.get(next).is_some_and(|&(_, q)| q == '"');
        if quoted {
            end += 1;
            next += 1;
        } else if text[start..].trim_start().starts_with(STATEMENT) {
            continue;
        }
        if chars.get(next).is_none_or(|&(_, s)| s == ' ') {
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// Whether `summary` says what `statement` says: every number and name in it (a capitalised
/// word past the first), or, with none, at least half of its content words.
fn keeps(summary: &str, statement: &str) -> bool {
    let have: std::collections::HashSet<String> = words(summary).into_iter().collect();
    let said = statement.trim_start_matches(STATEMENT);
    let keys: Vec<String> = said
        .split_whitespace()
        .skip(1)
        .filter(|w| w.chars().next().is_some_and(char::is_uppercase) && *w != "I")
        .chain(
            said.split_whitespace()
                .filter(|w| w.chars().any(|c| c.is_ascii_digit())),
        )
        .flat_map(words)
        .collect();
    if !keys.is_empty() {
        return keys.iter().all(|k| have.contains(k));
    }
    let content = content_words(said);
    let found = content.iter().filter(|w| have.contains(*w)).count();
    found * 2 >= content.len()
}

/// Drops a leading "Notes:" or "Summary:" the model may write.
fn strip_heading(text: &str) -> &str {
    let t = text.trim();
    for heading in [
        "notes about the person:",
        "notes:",
        "summary:",
        "updated summary:",
    ] {
        if t.get(..heading.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(heading))
        {
            return t[heading.len()..].trim_start();
        }
    }
    t
}

/// The sentences of one line, each ending in its mark (a period added where it had none).
fn split_sentences(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars() {
        current.push(c);
        if matches!(c, '.' | '!' | '?') {
            push_sentence(&mut out, &mut current);
        }
    }
    push_sentence(&mut out, &mut current);
    out
}

fn push_sentence(out: &mut Vec<String>, current: &mut String) {
    let s = current.trim().trim_start_matches(['-', '*', '•']).trim();
    if s.chars().any(char::is_alphanumeric) {
        let mut s = s.to_string();
        if !s.ends_with(['.', '!', '?']) {
            s.push('.');
        }
        out.push(s);
    }
    current.clear();
}

/// The summary so far followed by what a fold adds.
fn join(before: &str, new: &str) -> String {
    match (before.trim(), new.trim()) {
        ("", new) => new.to_string(),
        (before, "") => before.to_string(),
        (before, new) => format!("{before} {new}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchanges(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(u, a)| (u.to_string(), a.to_string()))
            .collect()
    }

    #[test]
    fn a_fact_the_model_dropped_is_added_in_the_persons_words() {
        let ex = exchanges(&[
            (
                "My locker code at the gym is 4471.",
                "Got it, I'll remember that.",
            ),
            (
                "What is the capital of France?",
                "Paris is the capital of France.",
            ),
            ("My sister Ada lives in Porto.", "Porto is a lovely city."),
        ]);
        let said = "They said: \"My locker code at the gym is 4471.\" \
            They said: \"My sister Ada lives in Porto.\"";
        // The sister is said already; France is more. A question is not a statement.
        let (summary, kept) = accept(
            "The person asked about France. Their sister lives in Porto.",
            &ex,
        );
        assert!(kept);
        assert_eq!(summary, format!("{said} The person asked about France."));

        let (whole, kept) = accept(
            "Their gym locker code is 4471. Their sister Ada lives in Porto.",
            &ex,
        );
        assert_eq!((whole.as_str(), kept), (said, true), "nothing more to add");
    }

    #[test]
    fn labels_loops_and_empty_or_long_summaries_fall_back_to_the_statements() {
        let ex = exchanges(&[("I start the new job at the bakery on Monday.", "Good luck!")]);
        let statement = "They said: \"I start the new job at the bakery on Monday.\"";
        assert_eq!(accept("", &ex), (statement.to_string(), false));
        assert_eq!(
            accept(
                &"They start at the bakery on Monday. They love it. ".repeat(9),
                &ex
            )
            .0,
            format!("{statement} They love it."),
            "a sentence said again is said once"
        );
        let (echoed, _) = accept(
            "[USER SAID THIS TURN] Notes: They start a job at the bakery on Monday. \
             They start a job at the bakery on Monday. User: thanks",
            &ex,
        );
        assert_eq!(echoed, statement, "labels and role turns go");
        assert_eq!(join("Earlier.", &echoed), format!("Earlier. {echoed}"));
    }

    #[test]
    fn an_over_long_summary_loses_the_models_sentences_before_the_statements() {
        let summary = "They like tea. They said: \"My locker code is 4471.\" They asked about \
            owls. They said: \"My sister Ada lives in Porto.\" They like long walks.";
        assert_eq!(within(summary, 200), summary, "within the limit it is kept");
        assert_eq!(
            within(summary, 30),
            "They said: \"My locker code is 4471.\" They said: \"My sister Ada lives in Porto.\""
        );
        assert_eq!(
            within(summary, 16),
            "They said: \"My sister Ada lives in Porto.\"",
            "then the oldest statement"
        );
        assert_eq!(within(summary, 5), "They said: \"My", "cut at a word");
        let two = "They said: \"I live in St. Albans. My son is allergic to eggs.\" They like jam.";
        assert_eq!(
            within(two, 25),
            "They said: \"I live in St. Albans. My son is allergic to eggs.\"",
            "a statement is one sentence"
        );
    }

    #[test]
    fn small_talk_and_questions_add_nothing() {
        let ex = exchanges(&[
            ("Thanks!", "You're welcome."),
            ("How are you?", "Well, thanks."),
        ]);
        assert_eq!(accept("", &ex).0, "");
        assert_eq!(
            accept("- They said thanks\n- They asked how Hearth is", &ex).0,
            "They said thanks. They asked how Hearth is."
        );
    }
}
