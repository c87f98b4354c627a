//! The hub's one word tokenizer for matching text in code: controls, recurrences, emotion
//! cues, salience, the profile's cues, graph search, retrieval's query words and the dates a
//! question names. Two lexers differ on purpose: tantivy's analyzers in `memory::fulltext`
//! (a token stream with stemming), and the time-phrase grammar's (`pixie::phrase::tokens`,
//! `pixie::reminders`), which keeps clock times such as "8:30" in one piece.
//!
//! The rule: a word is a run of letters and digits, lower-cased. An apostrophe (`'` or `’`)
//! between two letters or digits stays inside the word, as `'` ("don't", "tom's"); every other
//! character, hyphens included, separates words ("de-stress" is "de" and "stress"). A
//! combining mark inside a word stays in it, so a word read twice is the same word: "İ"
//! lower-cases to "i" and a combining dot, which must not split into "i" on a second reading.

/// The words of `text`, in order.
pub fn words(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_alphanumeric() || (!word.is_empty() && combining(c)) {
            word.extend(c.to_lowercase());
            continue;
        }
        let apostrophe = matches!(c, '\'' | '’')
            && !word.is_empty()
            && chars.get(i + 1).is_some_and(|n| n.is_alphanumeric());
        if apostrophe {
            word.push('\'');
        } else if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// A combining mark (the Unicode blocks of combining diacritics), which belongs to the letter
/// before it.
fn combining(c: char) -> bool {
    matches!(c, '\u{0300}'..='\u{036F}'
        | '\u{1AB0}'..='\u{1AFF}'
        | '\u{1DC0}'..='\u{1DFF}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{FE20}'..='\u{FE2F}')
}

/// The words of each of `texts`, for [`says_any`]; a text without words is left out.
pub fn phrases(texts: &[String]) -> Vec<Vec<String>> {
    texts
        .iter()
        .map(|t| words(t))
        .filter(|p| !p.is_empty())
        .collect()
}

/// Whether `text` says one of `phrases` (from [`phrases`]): its words hold the phrase's
/// words in a row, case and punctuation aside, so that "Tom" is not found in "tomorrow".
pub fn says_any(text: &str, phrases: &[Vec<String>]) -> bool {
    let text = words(text);
    phrases
        .iter()
        .any(|p| text.windows(p.len()).any(|w| w == p.as_slice()))
}

/// Shared words over all words (Jaccard) of two texts; 1 when both have none.
pub fn overlap(a: &str, b: &str) -> f32 {
    use std::collections::HashSet;
    let a: HashSet<String> = words(a).into_iter().collect();
    let b: HashSet<String> = words(b).into_iter().collect();
    let union = a.union(&b).count();
    if union == 0 {
        return 1.0;
    }
    a.intersection(&b).count() as f32 / union as f32
}

/// Words that carry no content of their own: articles, pronouns, auxiliaries, prepositions
/// and conjunctions.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "but", "if", "of", "to", "in", "on", "at", "by", "for", "with",
    "from", "into", "as", "is", "are", "was", "were", "be", "been", "am", "do", "does", "did",
    "have", "has", "had", "i", "i'm", "me", "my", "you", "your", "he", "she", "it", "it's", "we",
    "they", "his", "her", "its", "our", "their", "them", "him", "us", "this", "that", "these",
    "those", "there", "then", "so", "not", "no", "yes", "what", "who", "where", "when", "how",
    "why", "which", "can", "will", "would", "should", "could", "just", "about", "some", "any",
    "all", "very", "too", "also", "now", "up", "out", "one", "oh",
];

/// The words of `text` that carry content: not function words, and (unless numbers) of at
/// least three letters.
pub fn content_words(text: &str) -> Vec<String> {
    words(text)
        .into_iter()
        .filter(|w| {
            !FUNCTION_WORDS.contains(&w.as_str())
                && (w.chars().count() >= 3 || w.chars().any(|c| c.is_ascii_digit()))
        })
        .collect()
}

/// How many distinct content words `a` and `b` share.
pub fn shared_content_words(a: &str, b: &str) -> usize {
    use std::collections::HashSet;
    let a: HashSet<String> = content_words(a).into_iter().collect();
    let b: HashSet<String> = content_words(b).into_iter().collect();
    a.intersection(&b).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phrase_is_said_in_whole_words() {
        let says = |text: &str, phrase: &str| says_any(text, &phrases(&[phrase.to_string()]));
        assert!(says("Tom moved to Leeds.", "tom"));
        assert!(says("Actually, Tom moved to York!", "tom moved"));
        assert!(!says("See you tomorrow.", "tom"));
        assert!(!says("Tom stayed and moved.", "tom moved"));
        assert!(!says("anything", ""));
        assert!(phrases(&["?!".into(), "Tom".into()]) == [["tom"]]);
    }

    #[test]
    fn one_rule_for_apostrophes_and_hyphens() {
        assert_eq!(
            words("Don't forget Tom’s keys -- it's 8:30, de-stress!"),
            ["don't", "forget", "tom's", "keys", "it's", "8", "30", "de", "stress"]
        );
        assert_eq!(
            words("'quoted' rock'n'roll ÄPFEL"),
            ["quoted", "rock'n'roll", "äpfel"]
        );
        assert!(words(" ... ").is_empty());
    }

    #[test]
    fn words_read_twice_are_the_same_words() {
        for text in ["forget İ ", "İstanbul café", "e\u{301}clair \u{301}x"] {
            let once = words(text);
            assert_eq!(words(&once.join(" ")), once, "{text:?}");
        }
        assert_eq!(words("forget İ"), ["forget", "i\u{307}"]);
    }

    #[test]
    fn overlap_is_jaccard() {
        assert_eq!(overlap("", ""), 1.0);
        assert_eq!(overlap("a b", "b c"), 1.0 / 3.0);
        assert_eq!(overlap("My code is 411.", "my CODE is 411"), 1.0);
    }

    #[test]
    fn content_words_leave_out_function_words() {
        assert_eq!(
            content_words("My brother Tom moved to Leeds in 2019, I think."),
            ["brother", "tom", "moved", "leeds", "2019", "think"]
        );
        assert_eq!(
            shared_content_words("Tom lives in Leeds", "Leeds? Tom is fine"),
            2
        );
    }
}
