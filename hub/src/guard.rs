//! The guard between the model and the speaker: what the model writes is made fit to be
//! spoken before it reaches a terminal.
//!
//! A model sometimes echoes its prompt's provenance labels ("[USER SAID THIS TURN] ..."),
//! writes the chat template's role markers or special tokens, starts writing the user's next
//! turn itself ("User: ..."), or falls into a loop and says the same sentence twenty times.
//! A small model does all of it often, a big one sometimes; none of it may reach the speaker.
//!
//! [`Guard::pass`] sees the reply one sentence at a time, as it streams, and says whether to
//! speak a sentence (cleaned), skip it, or end the reply there. [`clean`] does the cleaning
//! alone, for model text spoken whole (a follow-up question).

use crate::words::words;

/// What to do with one sentence of a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pass {
    /// Speak this (the sentence, cleaned).
    Say(String),
    /// Nothing is left of it once cleaned; go on with the next one.
    Skip,
    /// End the reply here: speak `.0` first if it is not empty. `.1` says why, for the log.
    End(String, &'static str),
}

/// Role markers the chat template or a dialogue transcript uses. A reply may begin with its
/// own ("Hearth: ..."), which is dropped; any other, or one later in the reply, means the
/// model has started writing another turn, and the reply ends before it.
const OWN_ROLES: &[&str] = &["hearth", "assistant", "model", "ai", "bot", "jarvis"];
const OTHER_ROLES: &[&str] = &["user", "human", "system", "person", "me", "you", "speaker"];

/// Special tokens of common chat templates, written out as text by a confused model.
const SPECIAL_TOKENS: &[&str] = &[
    "<start_of_turn>",
    "<end_of_turn>",
    "<bos>",
    "<eos>",
    "<s>",
    "</s>",
    "<pad>",
    "[INST]",
    "[/INST]",
];

/// The most times a run of words may repeat back to back inside one sentence.
const MAX_RUN_REPEATS: usize = 3;

/// A new sentence sharing at least this share of its words with one already said (and at
/// least `MIN_NEAR_WORDS` words long) is a repeat.
const NEAR_REPEAT_OVERLAP: f32 = 0.8;
const MIN_NEAR_WORDS: usize = 5;

/// Watches one reply as it streams.
#[derive(Debug, Default)]
pub struct Guard {
    /// The words of each sentence said so far.
    said: Vec<Vec<String>>,
    /// Whether a sentence has been said (a leading role marker is only allowed before).
    started: bool,
    /// Other names the assistant goes by (lower case), whose labels are its own.
    names: Vec<String>,
    /// The words of each sentence of the prompt's instructions (the system prompt, the tone
    /// line): a reply sentence that copies one is the prompt, not an answer.
    instructions: Vec<Vec<String>>,
    /// The instruction the last sentence copied, if it did.
    echoing: Option<usize>,
}

/// The fewest words an instruction sentence needs to be recognised when echoed (shorter
/// ones, "Be brief.", are what an answer may say in its own right).
const MIN_INSTRUCTION_WORDS: usize = 4;

/// The fewest words of a clause copied word for word from inside an instruction that make
/// it an echo ("One step at a time." is a fair thing to say to someone stressed).
const MIN_COPIED_RUN: usize = 6;

impl Guard {
    /// A guard for a new reply.
    pub fn new() -> Guard {
        Guard::default()
    }

    /// A guard for a new reply of an assistant that also goes by `names` (a persona's): a
    /// label of one of them ("Brick: ...") is its own, like "Hearth:".
    pub fn with_names(names: &[String]) -> Guard {
        Guard {
            names: names.iter().map(|n| n.to_lowercase()).collect(),
            ..Guard::default()
        }
    }

    /// The same guard, also skipping sentences that copy one of `instructions` (the text
    /// the model was instructed with: the system prompt, the tone line).
    pub fn instructed_by(mut self, instructions: &str) -> Guard {
        self.instructions = sentences(instructions)
            .map(|s| numbers_alike(words(s)))
            .filter(|w| w.len() >= MIN_INSTRUCTION_WORDS)
            .collect();
        self
    }

    /// Whether a sentence (or a clause, as the reply streams) of `words` copies an
    /// instruction: most of its words, or six or more of them word for word. The clause
    /// after one that did is skipped when it goes on copying the same instruction (two
    /// words or more).
    fn echoes_instructions(&mut self, words: &[String]) -> bool {
        if words.is_empty() {
            return false;
        }
        let words = &numbers_alike(words.to_vec());
        let going_on = words.len() >= 2
            && self
                .echoing
                .and_then(|i| self.instructions.get(i))
                .is_some_and(|i| contains_run(i, words));
        if going_on {
            return true;
        }
        self.echoing = if words.len() < MIN_INSTRUCTION_WORDS {
            None
        } else {
            self.instructions.iter().position(|i| {
                jaccard(i, words) >= NEAR_REPEAT_OVERLAP
                    || (words.len() >= MIN_COPIED_RUN && contains_run(i, words))
            })
        };
        self.echoing.is_some()
    }

    /// Decides what becomes of the next sentence the model wrote.
    pub fn pass(&mut self, sentence: &str) -> Pass {
        let (cleaned, other_turn) = strip(sentence, !self.started, &self.names);
        let (cleaned, looped) = cut_loop(&cleaned);
        let words = words(&cleaned);
        if self.echoes_instructions(&words) {
            return if other_turn {
                Pass::End(String::new(), "the model began writing another turn")
            } else {
                Pass::Skip
            };
        }
        if !words.is_empty() && self.repeats(&words) {
            return Pass::End(String::new(), "the reply began repeating itself");
        }
        let end = if other_turn {
            Some("the model began writing another turn")
        } else if looped {
            Some("the reply began repeating itself")
        } else {
            None
        };
        if !words.is_empty() {
            self.said.push(words);
            self.started = true;
        }
        match end {
            Some(why) => Pass::End(cleaned, why),
            None if cleaned.is_empty() => Pass::Skip,
            None => Pass::Say(cleaned),
        }
    }

    /// Whether a sentence of `words` repeats one already said.
    fn repeats(&self, words: &[String]) -> bool {
        self.said.iter().any(|said| {
            said == words
                || (words.len() >= MIN_NEAR_WORDS
                    && said.len() >= MIN_NEAR_WORDS
                    && jaccard(said, words) >= NEAR_REPEAT_OVERLAP)
        })
    }
}

/// `text` cleaned of labels, role markers and special tokens, and cut before any turn the
/// model began writing for someone else; for model text that is spoken whole.
pub fn clean(text: &str) -> String {
    let (cleaned, _) = strip(text, true, &[]);
    cut_loop(&cleaned).0
}

/// Removes labels, special tokens and role markers from `text`. A role marker at the start
/// of the reply (`at_start`) that is the assistant's own is dropped; any other cuts the text
/// there, and the flag says so.
fn strip(text: &str, at_start: bool, names: &[String]) -> (String, bool) {
    // A template turn written out: the user's is another turn, the model's own is dropped.
    let mut text = text
        .replace("<start_of_turn>user", "\nUser:")
        .replace("<start_of_turn>model", " ");
    for token in SPECIAL_TOKENS {
        text = text.replace(token, " ");
    }
    let text = strip_labels(&text);
    let text = strip_angle_tokens(&text);
    let (text, cut) = cut_at_role(&text, at_start, names);
    (tidy(&text), cut)
}

/// Removes `[SOME LABEL]` spans: square brackets around upper-case words (the prompt's
/// provenance labels, "[TONE]", "[USER SAID THIS TURN]").
fn strip_labels(text: &str) -> String {
    strip_spans(text, '[', ']', is_label)
}

/// Whether the inside of square brackets is a label: letters, mostly upper case, with
/// spaces and punctuation between.
fn is_label(inside: &str) -> bool {
    let letters: Vec<char> = inside.chars().filter(|c| c.is_alphabetic()).collect();
    if letters.len() < 2 || inside.len() > 60 {
        return false;
    }
    let upper = letters.iter().filter(|c| c.is_uppercase()).count();
    upper * 10 >= letters.len() * 8
        && inside
            .chars()
            .all(|c| c.is_alphanumeric() || " ,.'_-/:".contains(c))
}

/// Removes `<|...|>` and `<word>`-style tokens a template may leave in the text.
fn strip_angle_tokens(text: &str) -> String {
    strip_spans(text, '<', '>', |inside| {
        inside.len() <= 24
            && !inside.is_empty()
            && inside
                .chars()
                .all(|c| c.is_alphanumeric() || "|_/".contains(c))
    })
}

/// `text` without the spans from `open` to `close` whose inside `remove` accepts; each
/// leaves a space.
fn strip_spans(text: &str, open: char, close: char, remove: impl Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(open) {
        let after = &rest[at + open.len_utf8()..];
        match after.find(close) {
            Some(end) if remove(&after[..end]) => {
                out.push_str(&rest[..at]);
                out.push(' ');
                rest = &after[end + close.len_utf8()..];
            }
            _ => {
                out.push_str(&rest[..at + open.len_utf8()]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Finds role markers ("User:", "Hearth:", or one of `names`): the assistant's own at the very
/// start is dropped; any other cuts the text before it (true: the model began another turn).
fn cut_at_role(text: &str, at_start: bool, names: &[String]) -> (String, bool) {
    let mut start = 0;
    let mut first = true;
    for (i, c) in text.char_indices() {
        if c != ':' {
            continue;
        }
        // The word before the colon, and where it begins.
        let before = &text[..i];
        let word_start = before.rfind(|c: char| !c.is_alphabetic()).map_or(0, |p| {
            p + before[p..].chars().next().map_or(1, char::len_utf8)
        });
        let word = before[word_start..].to_lowercase();
        // A role marker starts the text, a line, or a sentence.
        let lead = before[..word_start].trim_end();
        let at_boundary = lead.is_empty() || lead.ends_with(['.', '!', '?', '\n', '"']);
        if word.is_empty() || !at_boundary {
            continue;
        }
        let at_very_start = lead.is_empty() && first;
        let own = OWN_ROLES.contains(&word.as_str()) || names.contains(&word);
        if own && at_very_start && at_start {
            start = i + 1;
            first = false;
            continue;
        }
        if own || OTHER_ROLES.contains(&word.as_str()) {
            return (text[start..word_start].to_string(), true);
        }
    }
    (text[start..].to_string(), false)
}

/// Cuts a sentence where a run of words starts repeating back to back more than
/// [`MAX_RUN_REPEATS`] times ("and then and then and then and then ..."), or where a run
/// of three or more words comes a third time: keeps the text up to the end of its first
/// occurrence. True when it cut.
fn cut_loop(text: &str) -> (String, bool) {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let norm: Vec<String> = tokens
        .iter()
        .map(|t| {
            t.trim_matches(|c: char| !c.is_alphanumeric())
                .to_lowercase()
        })
        .collect();
    let n = norm.len();
    for start in 0..n {
        for len in 1..=8.min(n - start) {
            let run = &norm[start..start + len];
            if run.iter().all(String::is_empty) {
                continue;
            }
            let mut repeats = 1;
            let mut at = start + len;
            while at + len <= n && norm[at..at + len] == *run {
                repeats += 1;
                at += len;
            }
            // One word may be said twice or thrice ("very, very"); a phrase twice. Digits
            // repeat in codes ("4, 4, 4, 4").
            if len == 1 && run[0].chars().all(|c| c.is_ascii_digit()) {
                continue;
            }
            let limit = if len == 1 { MAX_RUN_REPEATS } else { 2 };
            if repeats > limit {
                let kept = tokens[..start + len].join(" ");
                return (kept, true);
            }
        }
    }
    (text.to_string(), false)
}

/// Collapses the whitespace the removals left, and stray punctuation at the start.
fn tidy(text: &str) -> String {
    let joined = text.split_whitespace().collect::<Vec<_>>().join(" ");
    joined
        .trim_start_matches([',', ';', ':', '-', '.'])
        .trim()
        .to_string()
}

/// The sentences of `text`: split at line ends, and at `.`, `!` or `?` before a space (so
/// that "-0.40" stays whole).
fn sentences(text: &str) -> impl Iterator<Item = &str> {
    text.lines().flat_map(|line| {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = line.as_bytes();
        for (i, b) in bytes.iter().enumerate() {
            let ends = matches!(b, b'.' | b'!' | b'?')
                && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace());
            if ends {
                out.push(&line[start..=i]);
                start = i + 1;
            }
        }
        out.push(&line[start..]);
        out
    })
}

/// Whether `run` appears in `words` word for word.
/// `words` with every number as one word, "#": an instruction copied with its numbers
/// changed ("valence 0.40" for "valence -0.38") is still the instruction.
fn numbers_alike(mut words: Vec<String>) -> Vec<String> {
    for w in &mut words {
        if w.chars().all(|c| c.is_ascii_digit()) {
            *w = "#".to_string();
        }
    }
    words
}

fn contains_run(words: &[String], run: &[String]) -> bool {
    !run.is_empty() && words.windows(run.len()).any(|w| w == run)
}

fn jaccard(a: &[String], b: &[String]) -> f32 {
    let a: std::collections::HashSet<&String> = a.iter().collect();
    let b: std::collections::HashSet<&String> = b.iter().collect();
    let union = a.union(&b).count();
    if union == 0 {
        return 0.0;
    }
    a.intersection(&b).count() as f32 / union as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_that_copies_its_instructions_says_nothing_of_them() {
        let tone = "[TONE] The user sounds low (valence -0.40, arousal -0.18). Be gentle and warm, and do not be cheerful.";
        let mut guard = Guard::new().instructed_by(&format!(
            "You are Hearth, a voice assistant in a home.\n{tone}"
        ));
        assert_eq!(
            guard.pass("[TONE] The user sounds low (valence -0.40, arousal -0.18)."),
            Pass::Skip
        );
        assert_eq!(
            guard.pass("Be gentle and warm, and do not be cheerful."),
            Pass::Skip
        );
        assert_eq!(
            guard.pass("You are Hearth, a voice assistant in a home."),
            Pass::Skip
        );
        // Streamed a clause at a time, the copy is caught from its first clause on.
        let mut guard = Guard::new().instructed_by(tone);
        assert_eq!(
            guard.pass("The user sounds low (valence -0.40,"),
            Pass::Skip
        );
        assert_eq!(guard.pass("arousal -0.18)."), Pass::Skip);
        assert_eq!(guard.pass("I am here."), Pass::Say("I am here.".into()));
        // Copied with other numbers (seen in a test run: the tone line said other numbers
        // than the reply), it is still the tone line, whole or a clause at a time.
        let mut guard = Guard::new().instructed_by(tone);
        assert_eq!(
            guard.pass("The user sounds low (valence 0.40, arousal -0.08)."),
            Pass::Skip
        );
        let mut guard = Guard::new().instructed_by(tone);
        assert_eq!(
            guard.pass("The user sounds low (valence -0.52,"),
            Pass::Skip
        );
        assert_eq!(guard.pass("arousal +0.1)."), Pass::Skip);
        // Numbers in an answer of its own are said.
        assert_eq!(
            guard.pass("It is 4 degrees in Leeds, 0.4 below yesterday."),
            Pass::Say("It is 4 degrees in Leeds, 0.4 below yesterday.".into())
        );
        // An answer that shares a few words with them is an answer.
        assert_eq!(
            guard.pass("I am sorry you feel low; a warm drink may help."),
            Pass::Say("I am sorry you feel low; a warm drink may help.".into())
        );
        assert_eq!(guard.pass("Be gentle."), Pass::Say("Be gentle.".into()));
        // A short clause from inside an instruction is fair to say.
        let mut guard = Guard::new().instructed_by(
            "[TONE] The user sounds stressed. Be calm, brief and practical: one step at a time.",
        );
        assert_eq!(
            guard.pass("One step at a time."),
            Pass::Say("One step at a time.".into())
        );
    }

    fn run(sentences: &[&str]) -> (Vec<String>, Option<&'static str>) {
        let mut guard = Guard::new();
        let mut said = Vec::new();
        for s in sentences {
            match guard.pass(s) {
                Pass::Say(t) => said.push(t),
                Pass::Skip => {}
                Pass::End(t, why) => {
                    if !t.is_empty() {
                        said.push(t);
                    }
                    return (said, Some(why));
                }
            }
        }
        (said, None)
    }

    #[test]
    fn labels_role_markers_and_tokens_are_removed() {
        let table = [
            (
                "[USER SAID THIS TURN] Tom lives in Leeds.",
                "Tom lives in Leeds.",
            ),
            (
                "[PROFILE, CONSOLIDATED FROM MEMORY] You like tea.",
                "You like tea.",
            ),
            (
                "Sure! [FACT FROM LONG-TERM MEMORY] Anna lives in Porto.",
                "Sure! Anna lives in Porto.",
            ),
            ("Hearth: It is sunny.", "It is sunny."),
            ("Assistant: Hello there.", "Hello there."),
            ("<start_of_turn>model\nHello.", "Hello."),
            ("Hello.<end_of_turn>", "Hello."),
            ("Fine <|im_end|>", "Fine"),
            ("[TONE] Be calm. Breathe in.", "Be calm. Breathe in."),
            // Not labels: ordinary brackets and colons stay.
            (
                "The list [milk, eggs] is short.",
                "The list [milk, eggs] is short.",
            ),
            ("It is 10:30 now.", "It is 10:30 now."),
            ("Note: bring an umbrella.", "Note: bring an umbrella."),
            ("I <3 tea.", "I <3 tea."),
        ];
        for (raw, want) in table {
            assert_eq!(run(&[raw]), (vec![want.to_string()], None), "{raw:?}");
        }
    }

    #[test]
    fn the_model_writing_the_users_turn_ends_the_reply() {
        let (said, why) = run(&[
            "Leeds is lovely.",
            "User: [PROFILE, CONSOLIDATED FROM MEMORY] what about York?",
            "York is nice too.",
        ]);
        assert_eq!(said, ["Leeds is lovely."]);
        assert!(why.is_some());
        let (said, why) = run(&["It rains. User: and tomorrow?"]);
        assert_eq!(said, ["It rains."]);
        assert!(why.is_some());
        // Its own marker later in the reply is a new turn too.
        let (said, _) = run(&["Hi.", "Hearth: Hi again."]);
        assert_eq!(said, ["Hi."]);
    }

    #[test]
    fn another_name_of_the_assistant_labels_its_own_turn() {
        let mut guard = Guard::with_names(&["Brick".to_string()]);
        assert_eq!(
            guard.pass("Brick: Right away, sir."),
            Pass::Say("Right away, sir.".into())
        );
        assert!(matches!(guard.pass("Brick: And more."), Pass::End(..)));
        // Without the name, it is not a label.
        let mut plain = Guard::new();
        assert_eq!(
            plain.pass("Brick: Right away, sir."),
            Pass::Say("Brick: Right away, sir.".into())
        );
    }

    #[test]
    fn a_repeated_sentence_ends_the_reply_after_it_was_said_once() {
        let mut sentences = vec!["Hello!"];
        sentences.extend(std::iter::repeat_n(
            "I am here to help you with anything you need.",
            20,
        ));
        let (said, why) = run(&sentences);
        assert_eq!(
            said,
            ["Hello!", "I am here to help you with anything you need."]
        );
        assert_eq!(why, Some("the reply began repeating itself"));
        // Nearly the same sentence again is a repeat too.
        let (said, why) = run(&[
            "Tom lives in Leeds with his cat Max.",
            "Tom lives in Leeds with his cat, Max!",
        ]);
        assert_eq!(said.len(), 1);
        assert!(why.is_some());
    }

    #[test]
    fn a_loop_inside_one_sentence_is_cut_after_its_first_run() {
        let (said, why) = run(&["Sure, and then and then and then and then and then"]);
        assert_eq!(said, ["Sure, and then"]);
        assert!(why.is_some());
        let (said, why) = run(&["no no no no no no no no"]);
        assert_eq!(said, ["no"]);
        assert!(why.is_some());
        // Said twice or thrice is speech, not a loop.
        let (said, why) = run(&["It was very, very good.", "Your PIN is 4, 4, 4, 4."]);
        assert_eq!(said, ["It was very, very good.", "Your PIN is 4, 4, 4, 4."]);
        assert_eq!(why, None);
    }

    #[test]
    fn ordinary_replies_pass_untouched() {
        let reply = [
            "Good morning!",
            "It's 7 degrees and cloudy in Leeds.",
            "Take an umbrella: rain is likely after 3 pm.",
            "Have a good day.",
        ];
        let (said, why) = run(&reply);
        assert_eq!(said, reply);
        assert_eq!(why, None);
    }

    #[test]
    fn a_label_only_sentence_is_skipped() {
        let (said, why) = run(&["[USER SAID THIS TURN]", "Yes."]);
        assert_eq!(said, ["Yes."]);
        assert_eq!(why, None);
    }

    #[test]
    fn clean_text_for_speech() {
        assert_eq!(
            clean("[USER SAID EARLIER] How did the exam go? User: fine"),
            "How did the exam go?"
        );
    }
}
