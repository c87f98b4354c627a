//! What the hub says in its own words (not the model's): confirmations, refusals and errors of
//! the turn pipeline. One module, so that a second language is one new file. Times in words
//! ("tomorrow at 9 am") are in `pixie::spoken`, and a reminder's own sentences in
//! `pixie::reminders`.

/// A memory control that changed a fact.
pub fn corrected(fact: &str) -> String {
    format!("Got it, I have updated that: {fact} I kept the old version as history.")
}

/// A memory write failed.
pub const CORRECTION_FAILED: &str =
    "Sorry, I could not update that; my memory store reported an error.";
/// A reply the output guard left nothing of (the model only echoed its instructions).
pub const NO_WORDS: &str = "Sorry, I lost my words there. Could you ask me again?";
/// "Forget that" worked.
pub const FORGOTTEN: &str = "Okay, I have forgotten that.";
/// "Forget that" failed.
pub const FORGET_FAILED: &str =
    "Sorry, I could not forget that; my memory store reported an error.";
/// "Forget that" with nothing stored from the room lately.
pub const NOTHING_TO_FORGET: &str = "There is nothing recent to forget.";
/// A memory search failed.
pub const MEMORY_FAILED: &str = "Sorry, my memory store reported an error.";
/// The reminder store failed.
pub const REMINDERS_FAILED: &str = "Sorry, my reminder store reported an error.";
/// A reminder request whose time could not be found.
pub const NO_WHEN: &str =
    "Sorry, I didn't catch when. Say, for example: remind me to water the plants tomorrow at 8.";

/// `topic` as the user said it, said back to them ("my brother" → "your brother").
pub fn yours(topic: &str) -> String {
    topic
        .split_whitespace()
        .map(|w| match w {
            "my" => "your",
            "me" => "you",
            "i" => "you",
            "i'm" => "you're",
            "mine" => "yours",
            "our" => "your",
            "we" => "you",
            "us" => "you",
            w => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Nothing is stored about `topic`.
pub fn nothing_about(topic: &str) -> String {
    format!("I don't remember anything about {}.", yours(topic))
}

/// `n` memories about `topic` were forgotten.
pub fn forgot_about(n: usize, topic: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!(
        "Okay, I have forgotten {n} thing{s} about {}.",
        yours(topic)
    )
}

/// What is remembered about `topic`.
pub fn remembered(topic: &str, items: &[String]) -> String {
    format!("About {}, I remember: {}", yours(topic), items.join(" "))
}

/// Asks before forgetting `n` memories, naming the first few.
pub fn forget_how_many(n: usize, topic: Option<&str>, items: &[String]) -> String {
    let about = topic.map_or(String::new(), |t| format!(" about {}", yours(t)));
    let more = n.saturating_sub(items.len());
    let more = if more > 0 {
        format!(", and {more} more")
    } else {
        String::new()
    };
    let listed = if items.is_empty() {
        String::new()
    } else {
        format!(": {}{more}", items.join("; "))
    };
    let things = if n == 1 { "thing" } else { "things" };
    format!("That would forget {n} {things}{about}{listed}. Shall I forget them? Say yes or no.")
}

/// The forget question was answered no, or not at all.
pub const KEPT: &str = "Okay, I have kept them.";

/// Either of two facts could be what a correction means.
pub fn which_one(a: &str, b: &str) -> String {
    format!(
        "Which one do you mean: {a} Or: {b} Please say the correction with a detail of the one you mean."
    )
}

/// The question before forgetting everything.
pub fn forget_everything_question(memories: usize, reminders: usize) -> String {
    let things = if memories == 1 { "thing" } else { "things" };
    let reminders = match reminders {
        0 => String::new(),
        1 => ", 1 reminder".to_string(),
        n => format!(", {n} reminders"),
    };
    format!(
        "That would forget everything: {memories} {things} I remember{reminders}, and what was said in every room. Shall I forget it all? Say yes or no."
    )
}

/// Everything was forgotten.
pub fn forgot_everything(memories: usize, reminders: usize) -> String {
    let memories = match memories {
        1 => "1 memory".to_string(),
        n => format!("{n} memories"),
    };
    match reminders {
        0 => format!("Okay, I have forgotten everything: {memories}."),
        1 => format!("Okay, I have forgotten everything: {memories} and 1 reminder."),
        n => format!("Okay, I have forgotten everything: {memories} and {n} reminders."),
    }
}
