//! The wake phrase in a transcript: whether speech to text heard it (the check of a low
//! wake-word score), and the request after it (an utterance that starts before the wake word,
//! so that a request run straight on keeps its first words).
//!
//! Small speech-to-text models spell a name loosely ("Jervis", "Javis", "Jarvis's"), so the
//! phrase's last word matches within a small edit distance: one edit for words of up to five
//! letters, two for longer ones.

/// The lower-cased words of `text` with their byte ranges.
fn words(text: &str) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (c.is_alphanumeric() || c == '\'', start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                let word: String = text[s..i].to_lowercase();
                let word = word.trim_end_matches("'s").trim_matches('\'').to_string();
                out.push((s, i, word));
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// Levenshtein distance over chars.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// The phrase's key word: its last word, lower-cased ("jarvis" of "hey jarvis").
fn key(phrase: &str) -> Option<String> {
    words(phrase).pop().map(|(_, _, w)| w)
}

fn matches(word: &str, key: &str) -> bool {
    let allowed = if key.chars().count() <= 5 { 1 } else { 2 };
    !word.is_empty() && distance(word, key) <= allowed
}

/// Where the phrase's key word ends in `text` (a byte offset), if it is among the first
/// `within` words.
fn key_end(text: &str, phrase: &str, within: usize) -> Option<usize> {
    let key = key(phrase)?;
    words(text)
        .into_iter()
        .take(within)
        .find(|(_, _, w)| matches(w, &key))
        .map(|(_, end, _)| end)
}

/// Whether `text` (the transcript of the audio around a low wake-word score) has the phrase.
pub fn heard(text: &str, phrase: &str) -> bool {
    key_end(text, phrase, usize::MAX).is_some()
}

/// The request in a transcript that starts before the wake word: the text after the phrase's
/// key word, if it is among the first eight words ("Hey Jarvis, set a timer." is "Set a
/// timer."); the whole text when it is not (a name misheard beyond matching stays, rather
/// than a word of the request going).
pub fn request(text: &str, phrase: &str) -> String {
    let Some(end) = key_end(text, phrase, 8) else {
        return text.trim().to_string();
    };
    let rest = text[end..].trim_start_matches(|c: char| !c.is_alphanumeric());
    let mut chars = rest.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect::<String>())
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_is_what_follows_the_wake_phrase() {
        let p = "hey jarvis";
        assert_eq!(
            request("Hey Jarvis, set a timer for twenty minutes.", p),
            "Set a timer for twenty minutes."
        );
        assert_eq!(
            request("Hey, Jervis! What time is it?", p),
            "What time is it?"
        );
        assert_eq!(request("and then hey Jarvis remind me", p), "Remind me");
        assert_eq!(request("Hey Jarvis.", p), "");
        // Not heard as the phrase: nothing of the request is cut.
        assert_eq!(
            request("What is the weather like?", p),
            "What is the weather like?"
        );
        assert_eq!(
            request("one two three four five six seven eight nine jarvis ten", p),
            "one two three four five six seven eight nine jarvis ten"
        );
    }

    #[test]
    fn loose_spellings_of_the_name_are_heard_and_other_words_are_not() {
        let p = "hey jarvis";
        for yes in [
            "Hey Jarvis",
            "hey javis",
            "Hi Jervis,",
            "Jarvis's here",
            "Hey, Garvis.",
        ] {
            assert!(heard(yes, p), "{yes:?}");
        }
        for no in ["Hey there", "service", "", "Harvest time", "jar"] {
            assert!(!heard(no, p), "{no:?}");
        }
        assert!(heard("OK computer", "ok computer"));
        assert!(!heard("anything", ""));
    }
}
