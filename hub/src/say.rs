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

/// Nothing is stored about `topic`.
pub fn nothing_about(topic: &str) -> String {
    format!("I don't remember anything about {topic}.")
}

/// `n` memories about `topic` were forgotten.
pub fn forgot_about(n: usize, topic: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("Okay, I have forgotten {n} thing{s} about {topic}.")
}

/// What is remembered about `topic`.
pub fn remembered(topic: &str, items: &[String]) -> String {
    format!("About {topic}, I remember: {}", items.join(" "))
}
