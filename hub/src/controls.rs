//! Spoken memory controls, recognised in code so that they work the same with any model:
//! "forget that", "forget what I told you about my brother", "forget everything", "what do
//! you remember about X", corrections ("actually ...", "not Leeds but York", "I meant
//! 4813") and "stop". They are answered directly, without the language model, and are never
//! stored as memories.

/// A memory control the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Forget the last thing stored from this room.
    ForgetLast,
    /// Forget every memory about the topic (as said: "my brother", "where i park").
    ForgetAbout(String),
    /// Forget everything (asked first).
    ForgetAll,
    /// "Delete my locker code": forget the memories about the topic if there are any;
    /// otherwise the turn is a request for the model ("delete the 7am alarm").
    DeleteIfStored(String),
    /// List what is remembered about the topic.
    Recall(String),
    /// Replace the stored fact this corrects.
    Correct(Correction),
    /// Stop talking ("never mind", "stop", "be quiet"): the reply in flight, if any, is
    /// already cancelled by this newer utterance; nothing is said or stored.
    Stop,
}

/// A spoken correction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Correction {
    /// What is true, as said (the whole fact, or only its new part: "the code is 4813",
    /// "4813").
    pub said: String,
    /// The wrong value, when named ("not Leeds", "I said Tuesday").
    pub wrong: Option<String>,
    /// The right value, when it can be told apart from the rest ("York" in "not Leeds but
    /// York").
    pub value: Option<String>,
}

/// Politeness, address and fillers before a control: "hey hearth, please ...".
const ADDRESS: &[&str] = &[
    "please", "hey", "hearth", "ok", "okay", "now", "could", "can", "would", "you", "um", "uh",
    "so", "oh", "hmm", "well", "just",
];

/// Words that start a question or a request rather than a statement of fact.
const NOT_A_FACT: &[&str] = &[
    "what", "who", "where", "when", "why", "how", "which", "can", "could", "would", "will",
    "should", "do", "does", "did", "is", "are", "tell", "play", "set", "remind", "stop", "turn",
    "please", "let's", "lets", "never", "i", "thanks", "thank", "don't",
];

/// Recognises a control in an utterance; `None` for everything else.
pub fn parse(text: &str) -> Option<Control> {
    let words = crate::words::words(text);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let phrase = strip_address(&words).join(" ");
    let topic = |s: &str| {
        let s = s.trim_end_matches(" please").trim();
        (!s.is_empty()).then(|| s.to_string())
    };
    if matches!(
        phrase.as_str(),
        "never mind"
            | "nevermind"
            | "stop"
            | "stop it"
            | "stop talking"
            | "stop please"
            | "cancel"
            | "cancel that"
            | "be quiet"
            | "quiet"
            | "hush"
            | "shush"
            | "shut up"
            | "that's enough"
            | "that is enough"
            | "enough"
    ) {
        return Some(Control::Stop);
    }
    if let Some(forget) = forget(text) {
        return Some(forget);
    }
    if let Some(correction) = correction(text) {
        return Some(Control::Correct(correction));
    }
    for prefix in [
        "what do you remember about ",
        "what do you know about ",
        "what do you remember of ",
    ] {
        if let Some(rest) = phrase.strip_prefix(prefix) {
            return topic(rest).map(Control::Recall);
        }
    }
    None
}

/// Whether `text` speaks of forgetting or deleting in words the parser did not take as a
/// control: the language model is then asked (under a grammar) whether it is one.
pub fn mentions_forgetting(text: &str) -> bool {
    let phrase = crate::words::words(text).join(" ");
    [
        "forget",
        "delete",
        "erase",
        "wipe",
        "unlearn",
        "remove",
        "scrub",
        "purge",
        "get rid of",
        "don't remember",
        "stop remembering",
        "don't keep",
        "don't store",
        "don't save",
        "not remember",
    ]
    .iter()
    .any(|w| format!(" {phrase} ").contains(&format!(" {w} ")))
}

/// The JSON schema the language model answers a possible forget request with.
pub fn forget_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "request": {"type": "string", "enum": ["none", "last", "topic", "everything"]},
            "topic": {"type": "string", "maxLength": 60}
        },
        "required": ["request", "topic"],
        "additionalProperties": false
    })
}

/// Reads the model's answer to [`forget_schema`] for `text`. A topic must be made of the
/// words of `text` (the model may not invent what to forget); anything unusable is `None`.
pub fn parse_forget_answer(answer: &str, text: &str) -> Option<Control> {
    #[derive(serde::Deserialize)]
    struct Answer {
        request: String,
        topic: String,
    }
    let a: Answer = serde_json::from_str(answer.trim()).ok()?;
    match a.request.as_str() {
        "last" => Some(Control::ForgetLast),
        "everything" => Some(Control::ForgetAll),
        "topic" => {
            let said = crate::words::words(text);
            let topic = crate::words::words(&a.topic);
            let from_text = !topic.is_empty() && topic.iter().all(|w| said.contains(w));
            from_text.then(|| Control::ForgetAbout(topic.join(" ")))
        }
        _ => None,
    }
}

/// Whether `text` is one clause: a control said alone ("forget that") is done at once; one
/// said with more ("forget it, I'll do it myself") is asked about first.
pub fn alone(text: &str) -> bool {
    clauses(text).len() <= 1
}

/// A yes or a no to a question the hub asked ("shall I forget them?"); `None` for anything
/// else.
pub fn answer(text: &str) -> Option<bool> {
    let words = crate::words::words(text);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let phrase = strip_address(&words).join(" ");
    let yes = [
        "yes",
        "yeah",
        "yep",
        "yup",
        "sure",
        "do it",
        "go ahead",
        "ok",
        "okay",
        "confirm",
        "please do",
        "yes please",
        "yes do it",
        "yes forget them",
        "yes forget it",
        "yes forget everything",
        "forget them",
        "correct",
        "right",
        "absolutely",
        "of course",
    ];
    let no = [
        "no",
        "nope",
        "nah",
        "don't",
        "do not",
        "no thanks",
        "no thank you",
        "cancel",
        "keep them",
        "keep it",
        "no keep them",
        "never mind",
        "no don't",
        "stop",
    ];
    let phrase = phrase.trim_end_matches(" please").trim();
    if yes.contains(&phrase) {
        Some(true)
    } else if no.contains(&phrase) {
        Some(false)
    } else {
        None
    }
}

/// `words` without the address and fillers in front.
fn strip_address<'a, 'b>(mut words: &'b [&'a str]) -> &'b [&'a str] {
    while let Some((first, tail)) = words.split_first() {
        if ADDRESS.contains(first) {
            words = tail;
        } else {
            break;
        }
    }
    words
}

/// The clauses of `text` (split at , ; . ! ?), each as its words without the address and
/// fillers in front.
fn clauses(text: &str) -> Vec<String> {
    // "Dr. Patel" is one name, not two clauses.
    let mut text = text.to_string();
    for title in [
        "Dr.", "Mr.", "Mrs.", "Ms.", "St.", "dr.", "mr.", "mrs.", "ms.", "st.",
    ] {
        text = text.replace(
            &format!("{title} "),
            &format!("{} ", &title[..title.len() - 1]),
        );
    }
    text.split([',', ';', '.', '!', '?'])
        .map(|c| {
            let words = crate::words::words(c);
            let words: Vec<&str> = words.iter().map(String::as_str).collect();
            let mut words = strip_address(&words);
            while let Some((first, tail)) = words.split_first() {
                if CORRECTION_LEADS.contains(first) || *first == "actually" {
                    words = strip_address(tail);
                } else {
                    break;
                }
            }
            words.join(" ")
        })
        .filter(|c| !c.is_empty())
        .collect()
}

/// Verbs that ask to forget, always a memory control.
const FORGET_VERBS: &[&str] = &[
    "forget",
    "unlearn",
    "stop remembering",
    "stop storing",
    "stop saving",
    "don't remember",
    "do not remember",
    "don't save",
    "don't store",
    "don't keep",
    "i don't want you to remember",
    "i'd rather you didn't remember",
    "i would rather you didn't remember",
    "i want you to forget",
    "i need you to forget",
    "start over and forget",
    "you didn't hear",
    "you did not hear",
];

/// Verbs that ask to delete, a memory control when their object is something remembered
/// (see [`Control::ForgetAbout`]) or memory itself.
const DELETE_VERBS: &[&str] = &[
    "delete",
    "erase",
    "remove",
    "wipe",
    "clear",
    "scratch",
    "strike",
    "reset",
    "factory reset",
    "get rid of",
    "ignore",
];

/// Objects that mean the last thing said.
const LAST: &[&str] = &[
    "that",
    "it",
    "this",
    "that one",
    "that last one",
    "that last bit",
    "the last one",
    "last one",
    "what i just said",
    "what i just told you",
    "what i said",
    "the last thing i said",
    "the last thing i told you",
    "i said that",
    "i said it",
    "that from your memory",
    "that from the record",
    "that please",
];

/// Objects that mean everything.
const ALL: &[&str] = &[
    "everything",
    "all",
    "it all",
    "all of it",
    "everything you know",
    "everything you remember",
    "everything you've learned",
    "everything i've told you",
    "everything i've ever told you",
    "everything i ever told you",
    "all my memories",
    "all memories",
    "all your memories",
    "your memory",
    "your memories",
    "memory",
    "everything you've learned about us",
    "everything about this household",
    "everything about us",
];

/// Words in front of a topic that say nothing about it.
const TOPIC_LEADS: &[&str] = &[
    "everything you know about ",
    "everything you remember about ",
    "what you know about ",
    "what you remember about ",
    "what i told you about ",
    "what i've told you about ",
    "what i said about ",
    "anything to do with ",
    "anything about ",
    "everything about ",
    "all about ",
    "the stuff about ",
    "the thing about ",
    "stuff about ",
    "things about ",
    "about ",
    "that ",
    "the fact that ",
];

/// Words after a topic that say nothing about it.
const TOPIC_TAILS: &[&str] = &[
    " from your memory",
    " from memory",
    " anymore",
    " any more",
    " please",
    " for me",
];

/// A forget request in `text`, if any clause of it is one.
fn forget(text: &str) -> Option<Control> {
    for clause in clauses(text) {
        // "You didn't hear that": "you" is otherwise taken for address ("could you ...").
        let heard = clause.starts_with("didn't hear") || clause.starts_with("did not hear");
        let clause = if heard && text.to_ascii_lowercase().contains(&format!("you {clause}")) {
            format!("you {clause}")
        } else {
            clause
        };
        let always = FORGET_VERBS
            .iter()
            .find_map(|v| rest_after(&clause, v).map(|r| (r, true)));
        let found = always.or_else(|| {
            DELETE_VERBS
                .iter()
                .find_map(|v| rest_after(&clause, v).map(|r| (r, false)))
        });
        let Some((object, always)) = found else {
            continue;
        };
        let mut object = object.trim().to_string();
        for tail in TOPIC_TAILS {
            if let Some(o) = object.strip_suffix(tail) {
                object = o.to_string();
            }
        }
        if object.is_empty() {
            // "Don't remember, sorry", "didn't hear": no object, no request.
            continue;
        }
        if LAST.contains(&object.as_str()) {
            // "Forget that", "delete that".
            return Some(Control::ForgetLast);
        }
        if ALL.contains(&object.as_str()) || ALL.iter().any(|a| object == format!("{a} please")) {
            return Some(Control::ForgetAll);
        }
        if object == "about" {
            return None;
        }
        let mentions_memory = [
            "everything",
            "anything",
            "all ",
            "what ",
            "the stuff",
            "the thing",
            "stuff ",
            "things ",
        ]
        .iter()
        .any(|w| object.starts_with(w))
            || object.contains("you know")
            || object.contains("you remember")
            || object.contains("i told you")
            || object.contains("i said")
            || text.to_lowercase().contains("memory");
        let mut topic = object.as_str();
        for lead in TOPIC_LEADS {
            if let Some(t) = topic.strip_prefix(lead) {
                topic = t;
                break;
            }
        }
        let topic = topic.trim();
        if topic.is_empty() {
            return Some(Control::ForgetLast);
        }
        if always || mentions_memory {
            return Some(Control::ForgetAbout(topic.to_string()));
        }
        return Some(Control::DeleteIfStored(topic.to_string()));
    }
    None
}

/// `clause` after the words of `verb` at its start.
fn rest_after<'a>(clause: &'a str, verb: &str) -> Option<&'a str> {
    if clause == verb {
        return Some("");
    }
    clause.strip_prefix(verb)?.strip_prefix(' ')
}

/// Cues that open a correction, after any "no", "sorry", "wait".
const CORRECTION_CUES: &[&str] = &[
    "correction",
    "to correct what i said earlier",
    "to correct what i said",
    "let me correct that",
    "i got that wrong",
    "i was wrong",
    "that's wrong",
    "that is wrong",
    "that's not right",
    "that is not right",
    "that's not true",
    "that's outdated",
    "update that",
    "fix that",
    "actually",
    "i mean",
    "i meant",
    "change that to",
    "make that",
    "no no",
    "no",
];

/// Words before a correction cue.
const CORRECTION_LEADS: &[&str] = &["sorry", "wait", "oops", "oh", "no", "um", "hmm"];

/// A correction in `text`, if it is one.
fn correction(text: &str) -> Option<Correction> {
    // ASCII lower case keeps byte offsets: they slice `text` below.
    let lower = text.to_ascii_lowercase();
    // Where the words start, in the text as said (case and punctuation kept).
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let norm: Vec<String> = tokens
        .iter()
        .map(|t| crate::words::words(t).join(" "))
        .collect();
    let mut at = 0;
    let skip = |at: &mut usize, list: &[&str]| {
        while *at < norm.len() && (norm[*at].is_empty() || list.contains(&norm[*at].as_str())) {
            *at += 1;
        }
    };
    skip(&mut at, ADDRESS);
    let lead_start = at;
    skip(&mut at, CORRECTION_LEADS);
    let led = at > lead_start;
    // "I said Tuesday but I meant Wednesday."
    if let Some(said) = lower.find("i said ").map(|i| i + "i said ".len()) {
        // Searched after "i said ", which " but i meant " may overlap ("I said but i meant").
        if let Some(meant) = lower[said..].find(" but i meant ") {
            let wrong = clean_value(&text[said..said + meant]);
            let value = clean_value(&text[said + meant + " but i meant ".len()..]);
            return (!wrong.is_empty() && !value.is_empty()).then(|| Correction {
                said: value.clone(),
                wrong: Some(wrong),
                value: Some(value),
            });
        }
    }
    let rest_norm = norm[at.min(norm.len())..].join(" ");
    let cue = CORRECTION_CUES
        .iter()
        .find(|c| rest_norm == **c || rest_norm.starts_with(&format!("{c} ")));
    let mut said_start = at;
    if let Some(cue) = cue {
        said_start += cue.split_whitespace().count();
    } else if !led && !lower.trim_start().starts_with("not ") {
        // "It was 2015 actually, not 2014": a wrong number or name, named.
        let (wrong, _, _) = split_not(text.trim());
        if !wrong.is_some_and(|w| has_particular(&w)) {
            return None;
        }
    }
    let said: Vec<&str> = tokens.iter().skip(said_start).copied().collect();
    let said = said.join(" ");
    let said = said
        .trim_start_matches([',', ':', ';', '-', '.', ' '])
        .trim();
    if said.is_empty() || text.trim_end().ends_with('?') {
        return None;
    }
    let first = crate::words::words(said)
        .into_iter()
        .next()
        .unwrap_or_default();
    // "Actually, tell me a joke", "no thanks", "no, the other light".
    let (wrong, value, said) = split_not(said);
    let words = crate::words::words(&said);
    let short = words.len() <= 3;
    let statement = words.len() >= 3 && !NOT_A_FACT.contains(&first.as_str());
    // "Actually it's the 15th", "change that to York", "I meant 4813": a new value alone.
    let value_alone = short && cue.is_some() && has_particular(&said);
    if wrong.is_none() && !statement && !value_alone {
        return None;
    }
    if crate::memory::kind::classify(&said) == crate::memory::kind::Kind::Command {
        return None;
    }
    Some(Correction { said, wrong, value })
}

/// Splits "X not Y", "not Y but X", "not Y, it's X" into (Y, X, the statement without the
/// "not Y" part).
fn split_not(said: &str) -> (Option<String>, Option<String>, String) {
    // ASCII lower case keeps byte offsets: they slice `said` below.
    let lower = said.to_ascii_lowercase();
    // "not Leeds but York", "not 1234, it's 1243".
    if let Some(rest) = lower.strip_prefix("not ") {
        let cut = rest.find(" but ").map(|i| (i, 5)).or_else(|| {
            rest.find(", it's ")
                .map(|i| (i, 7))
                .or_else(|| rest.find(", it is ").map(|i| (i, 8)))
                .or_else(|| rest.find(", ").map(|i| (i, 2)))
        });
        if let Some((i, len)) = cut {
            let wrong = clean_value(&said[4..4 + i]);
            let value = clean_value(&said[4 + i + len..]);
            if !wrong.is_empty() && !value.is_empty() {
                return (Some(wrong), Some(value.clone()), value);
            }
        }
        return (None, None, said.to_string());
    }
    // "the party's at 3 not 2", "I'm allergic to amoxicillin, not penicillin".
    for sep in [", not ", " not "] {
        if let Some(i) = lower.rfind(sep) {
            let wrong = clean_value(&said[i + sep.len()..]);
            let before = said[..i].trim_end_matches([',', ' ']);
            let before = before.strip_suffix(" actually").unwrap_or(before);
            // "We're not going", "the bins are not collected": a negation, not a value set
            // right.
            let last = crate::words::words(before).pop().unwrap_or_default();
            if sep == " not " && (AUXILIARIES.contains(&last.as_str()) || last.ends_with("'re")) {
                continue;
            }
            let wrong_words = crate::words::words(&wrong).len();
            if !wrong.is_empty() && wrong_words <= 3 && !before.is_empty() {
                // The right value is the words before "not" that match the wrong one's
                // length ("8:30 not 8:45", "Tom, not Tim").
                let tokens: Vec<&str> = before.split_whitespace().collect();
                let take = wrong.split_whitespace().count().min(tokens.len());
                let value = clean_value(&tokens[tokens.len() - take..].join(" "));
                let statement = before.to_string();
                return (Some(wrong), Some(value), statement);
            }
        }
    }
    (None, None, said.to_string())
}

/// Whether `said` names a number or a name.
fn has_particular(said: &str) -> bool {
    said.chars().any(|c| c.is_ascii_digit())
        || said.split_whitespace().any(|w| {
            w.starts_with(char::is_uppercase)
                && !matches!(
                    w.trim_matches(|c: char| !c.is_alphanumeric()),
                    "Yes" | "No" | "Ok" | "Okay" | "Sure" | "Thanks" | "I" | "Fine"
                )
        })
}

/// Verbs a negation follows ("is not", "we're not").
const AUXILIARIES: &[&str] = &[
    "is", "are", "am", "was", "were", "be", "do", "does", "did", "will", "would", "can", "could",
    "should", "has", "have", "had", "i'm", "it's", "he's", "she's", "that's", "may", "might",
    "must", "shall", "why", "or", "if", "but", "and", "so", "just", "still",
];

/// A value as said, without the punctuation and filler words around it.
fn clean_value(s: &str) -> String {
    let s = s
        .trim()
        .trim_matches(|c: char| c == ',' || c == '.' || c == '!' || c.is_whitespace());
    let s = s.strip_suffix(" actually").unwrap_or(s);
    let s = s.strip_prefix("it's ").unwrap_or(s);
    s.trim().to_string()
}

#[cfg(test)]
mod tests;
