//! How two facts relate, decided in code from their words: the same fact said again, a new
//! value for the same slot ("Tom lives in Leeds" → "Tom lives in York"), or two distinct facts
//! ("my locker code 3 is 411", "my locker code 4 is 548").
//!
//! A slot is a subject and an attribute: the words a fact shares with another up to a
//! predicate that takes one value ("lives in", "is married to", "my locker code is"). What
//! follows is the value. A predicate that takes many values ("likes", "went to", "is
//! allergic to") makes no slot: a new value is another fact, never an update.

use std::collections::BTreeSet;

use crate::words::{content_words, words};

/// Copulas: "X's code is Y" names its attribute before them.
const COPULAS: &[&str] = &["is", "are", "was", "were", "'s", "am", "i'm", "it's", "be"];

/// Words after which a value follows ("lives in", "founded by").
const PREPOSITIONS: &[&str] = &[
    "in", "to", "at", "for", "as", "of", "by", "with", "from", "on", "near", "called", "named",
];

/// Words that mark a predicate taking many values; near the end of the shared words they
/// make no slot.
const MANY_VALUED: &[&str] = &[
    "like", "likes", "liked", "love", "loves", "loved", "enjoy", "enjoys", "hate", "hates", "have",
    "has", "had", "visited", "visit", "visits", "went", "go", "goes", "been", "bought", "met",
    "saw", "seen", "want", "wants", "need", "needs", "allergic", "friends", "play", "plays",
    "played", "eat", "eats", "ate", "watch", "watches", "read", "reads", "know", "knows", "speak",
    "use", "uses", "collect", "collects", "and", "or", "also", "too",
];

/// Attribute-owning words: a copula after one of these names a slot ("my code is").
const OWNERS: &[&str] = &["my", "our", "his", "her", "their", "your", "of", "the"];

/// The particulars of a fact: its numbers and names (capitalised words after the first), in
/// lower case. Two facts with different particulars are different facts.
pub fn particulars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, raw) in text.split_whitespace().enumerate() {
        let w = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if w.is_empty() {
            continue;
        }
        let number = w.chars().any(|c| c.is_ascii_digit());
        let name = i > 0 && w.chars().next().is_some_and(char::is_uppercase) && w != "I";
        if number || name {
            out.insert(w.to_lowercase());
        }
    }
    out
}

/// Words that change no fact when added ("the bins go out on Tuesday *again*").
const NO_CONTENT: &[&str] = &[
    "again", "still", "really", "actually", "just", "always", "usually", "now", "though", "anyway",
    "think", "guess", "remember", "know", "told", "said", "like", "well", "yeah",
];

/// Whether `new` says `old` again: the same particulars (numbers, names), the same content
/// words both ways (a word of four letters or more may be the start of the other: "night",
/// "nights"), and at least `min_overlap` of all their words (Jaccard).
pub fn same_fact(new: &str, old: &str, min_overlap: f32) -> bool {
    let content = |t: &str| -> Vec<String> {
        content_words(t)
            .into_iter()
            .map(|w| possessive_off(&w).to_string())
            .filter(|w| !NO_CONTENT.contains(&w.as_str()))
            .collect()
    };
    let (a, b) = (content(new), content(old));
    particulars(new) == particulars(old)
        && mentions_all(&a, &b)
        && mentions_all(&b, &a)
        && crate::words::overlap(new, old) >= min_overlap
}

/// Whether every word of `want` is in `have` (see [`mentions`]).
fn mentions_all(have: &[String], want: &[String]) -> bool {
    want.iter().all(|t| have.iter().any(|w| same_word(w, t)))
}

/// The same word, or the same with an ending ("park", "parking"), or a number and its word
/// ("8", "eight").
fn same_word(w: &str, t: &str) -> bool {
    // Only an ending ("park", "parks", "parking"), never a longer word ("Parkinson's").
    let inflected = |long: &str, short: &str| {
        short.len() >= 3
            && long.strip_prefix(short).is_some_and(|end| {
                matches!(end, "s" | "es" | "ing" | "ed" | "d" | "er" | "ers" | "'s")
            })
    };
    w == t
        || inflected(w, t)
        || inflected(t, w)
        || number_word(w).is_some_and(|n| n == t)
        || number_word(t).is_some_and(|n| n == w)
}

/// The digits of a number word ("eight" → "8"), up to twenty.
fn number_word(w: &str) -> Option<&'static str> {
    const WORDS: &[(&str, &str)] = &[
        ("zero", "0"),
        ("one", "1"),
        ("two", "2"),
        ("three", "3"),
        ("four", "4"),
        ("five", "5"),
        ("six", "6"),
        ("seven", "7"),
        ("eight", "8"),
        ("nine", "9"),
        ("ten", "10"),
        ("eleven", "11"),
        ("twelve", "12"),
        ("thirteen", "13"),
        ("fourteen", "14"),
        ("fifteen", "15"),
        ("sixteen", "16"),
        ("seventeen", "17"),
        ("eighteen", "18"),
        ("nineteen", "19"),
        ("twenty", "20"),
    ];
    WORDS.iter().find(|(word, _)| *word == w).map(|(_, n)| *n)
}

/// Where the value of a slot begins in `new`, if `new` gives a new value to the slot `old`
/// fills: they share their words up to a one-valued predicate and differ after it.
pub fn slot_value_at(new: &str, old: &str) -> Option<usize> {
    let (n, o) = (words(new), words(old));
    let mut shared = n.iter().zip(&o).take_while(|(a, b)| a == b).count();
    // A value of several words may begin alike ("Charles Dickens", "Charles Darwin"): the
    // value starts after the predicate, up to two words back.
    let diverge = shared < n.len() && shared < o.len();
    if let Some(back) = (shared.saturating_sub(3)..shared)
        .filter(|_| diverge)
        .rev()
        .find(|&j| is_predicate(&n[..=j]))
    {
        shared = back + 1;
    }
    // Both must go on after the shared words, and not by much: a value, not a story.
    if shared < 2 || shared >= n.len() || shared >= o.len() {
        return None;
    }
    if n.len() - shared > 10 || o.len() - shared > 10 {
        return None;
    }
    let prefix = &n[..shared];
    if content_words(&prefix.join(" ")).is_empty() {
        return None;
    }
    // A predicate after the shared words means they differ in the subject ("the capital of
    // Italy is ..." / "the capital of France is ..."), not in the value.
    if n[shared..]
        .iter()
        .chain(&o[shared..])
        .any(|w| COPULAS.contains(&w.as_str()))
    {
        return None;
    }
    // "Goes to", "is allergic to": a verb that takes many values. After a copula the
    // attribute is named before it ("the music that Tom plays is ..."), and one value fits.
    let tail_start = shared.saturating_sub(2);
    let copula = COPULAS.contains(&prefix[shared - 1].as_str());
    if !copula
        && prefix[tail_start..]
            .iter()
            .any(|w| MANY_VALUED.contains(&w.as_str()))
    {
        return None;
    }
    // The two values must differ in content, not only in when ("York" / "Leeds last year").
    let (nv, ov) = (n[shared..].join(" "), o[shared..].join(" "));
    if content_words(&nv).is_empty() || content_words(&ov).is_empty() {
        return None;
    }
    is_predicate(prefix).then_some(shared)
}

/// Whether `prefix` ends with a predicate that takes a value: a preposition ("lives in"),
/// or a copula after a named attribute ("my code is", "Mia's teacher is").
fn is_predicate(prefix: &[String]) -> bool {
    let Some((last, before)) = prefix.split_last() else {
        return false;
    };
    PREPOSITIONS.contains(&last.as_str())
        || (COPULAS.contains(&last.as_str())
            && before
                .iter()
                .any(|w| OWNERS.contains(&w.as_str()) || w.ends_with("'s")))
}

/// A correction said in part ("the code is 4813") put into the fact it corrects ("my locker
/// code is 4812" → "my locker code is 4813"): the correction's last two words before its
/// value, found in `old`, anchor it. `None` when they are not there.
pub fn rebase(old: &str, correction: &str) -> Option<String> {
    let c = words(correction);
    // The correction's value starts after its last copula or preposition.
    let at = c
        .iter()
        .rposition(|w| COPULAS.contains(&w.as_str()) || PREPOSITIONS.contains(&w.as_str()))?;
    if at == 0 || at + 1 >= c.len() {
        return None;
    }
    let anchor = &c[at - 1..=at];
    // Find the anchor in the old text's words, keeping the old text as said.
    let tokens: Vec<&str> = old.split_whitespace().collect();
    let norm: Vec<String> = tokens.iter().map(|t| words(t).join("")).collect();
    let pos = norm.windows(2).position(|w| w == anchor)?;
    let value: Vec<&str> = correction.split_whitespace().skip(at + 1).collect();
    let mut out: Vec<&str> = tokens[..pos + 2].to_vec();
    out.extend(value);
    Some(out.join(" "))
}

/// The span of tokens of `text` (split at whitespace) whose words are `needle`'s words, if
/// it holds them in a row.
pub fn find_words(text: &str, needle: &str) -> Option<(usize, usize)> {
    let want = words(needle);
    if want.is_empty() {
        return None;
    }
    let tokens: Vec<Vec<String>> = text.split_whitespace().map(words).collect();
    for start in 0..tokens.len() {
        let mut got: Vec<&String> = Vec::new();
        for (end, t) in tokens.iter().enumerate().skip(start) {
            got.extend(t);
            if got.len() >= want.len() {
                if got.len() == want.len()
                    && got.iter().zip(&want).all(|(a, b)| {
                        *a == b || number_word(a) == Some(b) || number_word(b) == Some(a)
                    })
                {
                    return Some((start, end + 1));
                }
                break;
            }
        }
    }
    None
}

/// `text` with the tokens that say `wrong` replaced by `value`, keeping the punctuation after
/// them. `None` when `text` does not hold `wrong`.
pub fn replace_words(text: &str, wrong: &str, value: &str) -> Option<String> {
    let (start, end) = find_words(text, wrong)?;
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let last = tokens[end - 1];
    let trailing: String = last
        .chars()
        .rev()
        .take_while(|c| !c.is_alphanumeric())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let mut out: Vec<String> = tokens[..start].iter().map(|t| t.to_string()).collect();
    out.push(format!("{}{trailing}", value.trim()));
    out.extend(tokens[end..].iter().map(|t| t.to_string()));
    Some(out.join(" "))
}

/// `text` with the value of the same sort as `value` replaced by it: the last number for a
/// number ("I meant 4813"), else the last name for a name ("change that to York").
pub fn replace_like(text: &str, value: &str) -> Option<String> {
    let value = value.trim().trim_end_matches(['.', '!', ',']);
    let value = value.strip_prefix("it's ").unwrap_or(value);
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let number = value.chars().any(|c| c.is_ascii_digit());
    let at = tokens.iter().rposition(|t| {
        if number {
            t.chars().any(|c| c.is_ascii_digit())
        } else {
            t.starts_with(char::is_uppercase)
        }
    });
    let at = at.filter(|&i| number || i > 0)?;
    // "the 15th" in place of "14th" after "the".
    let mut value = value.to_string();
    if at > 0 {
        let before = tokens[at - 1].to_lowercase();
        if let Some(v) = value.strip_prefix(&format!("{before} ")) {
            value = v.to_string();
        }
    }
    let wrong = tokens[at].trim_end_matches(|c: char| !c.is_alphanumeric());
    replace_words(text, wrong, &value).or_else(|| {
        let mut out: Vec<String> = tokens.iter().map(|t| t.to_string()).collect();
        out[at] = value;
        Some(out.join(" "))
    })
}

/// Words for people by their relation to the speaker.
const RELATIONS: &[&str] = &[
    "brother",
    "sister",
    "mum",
    "mom",
    "mother",
    "dad",
    "father",
    "wife",
    "husband",
    "partner",
    "son",
    "daughter",
    "ex",
    "boss",
    "friend",
    "neighbour",
    "neighbor",
    "grandma",
    "grandpa",
    "granny",
    "grandad",
    "nana",
    "nan",
    "aunt",
    "auntie",
    "uncle",
    "cousin",
    "girlfriend",
    "boyfriend",
    "fiance",
    "fiancee",
    "colleague",
    "flatmate",
    "roommate",
    "niece",
    "nephew",
    "stepson",
    "stepdaughter",
    "dog",
    "cat",
    "doctor",
    "dentist",
    "therapist",
    "teacher",
];

/// Whether `word` names a person (or pet) by relation.
pub fn is_relation(word: &str) -> bool {
    RELATIONS.contains(&word)
}

/// The words a topic is searched by: its content words, without a possessive "'s".
pub fn topic_words(topic: &str) -> Vec<String> {
    // A relation counts however short ("my ex").
    let relations = words(topic)
        .into_iter()
        .filter(|w| is_relation(possessive_off(w)));
    let mut out: Vec<String> = content_words(topic)
        .into_iter()
        .chain(relations)
        .map(|w| possessive_off(&w).to_string())
        .filter(|w| !w.is_empty())
        .collect();
    let mut seen = std::collections::HashSet::new();
    out.retain(|w| seen.insert(w.clone()));
    out
}

fn possessive_off(w: &str) -> &str {
    w.strip_suffix("'s")
        .or_else(|| w.strip_suffix("’s"))
        .unwrap_or(w)
}

/// Whether `text` mentions every one of `topic` words (as topic_words gives them): the same
/// word, or one of at least four letters that starts the other ("park", "parking").
pub fn mentions(text: &str, topic: &[String]) -> bool {
    let said: Vec<String> = words(text)
        .iter()
        .map(|w| possessive_off(w).to_string())
        .collect();
    mentions_all(&said, topic)
}

/// The name a text gives the person it calls `relation`: "my brother Tom", "Tom is my
/// brother", "Tom, my brother", "my brother's name is Tom".
pub fn name_of(text: &str, relation: &str) -> Option<String> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let bare = |t: &str| {
        possessive_off(t.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != '’'))
            .to_string()
    };
    let is_name = |t: &str| {
        let b = bare(t);
        b.chars().next().is_some_and(char::is_uppercase)
            && b.chars().all(|c| c.is_alphabetic() || c == '-')
            && b != "I"
    };
    for (i, t) in tokens.iter().enumerate() {
        let w = bare(t).to_lowercase();
        if w != relation {
            continue;
        }
        let owned = i > 0 && matches!(bare(tokens[i - 1]).to_lowercase().as_str(), "my" | "our");
        if !owned {
            continue;
        }
        // "my brother Tom"
        if let Some(next) = tokens.get(i + 1) {
            if is_name(next) {
                return Some(bare(next));
            }
        }
        // "my brother's name is Tom"
        if t.ends_with("'s") || t.ends_with("’s") {
            let rest: Vec<String> = tokens[i + 1..]
                .iter()
                .map(|t| bare(t).to_lowercase())
                .collect();
            if rest.len() >= 3 && rest[0] == "name" && rest[1] == "is" && is_name(tokens[i + 3]) {
                return Some(bare(tokens[i + 3]));
            }
        }
        // "Tom is my brother", "Tom, my brother"
        let before = i.checked_sub(2).map(|j| tokens[j]);
        let before_is = i.checked_sub(3).map(|j| tokens[j]);
        if let Some(b) = before.filter(|b| is_name(b) && b.ends_with(',')) {
            return Some(bare(b));
        }
        if let (Some(verb), Some(name)) = (before, before_is) {
            if bare(verb).to_lowercase() == "is" && is_name(name) {
                return Some(bare(name));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_particulars_are_distinct_facts() {
        assert!(!same_fact(
            "my locker code 4 is 548",
            "my locker code 3 is 411",
            0.5
        ));
        assert!(same_fact("My code is 411.", "my code is 411", 0.5));
        assert!(!same_fact(
            "Anna lives in Porto",
            "Anna lives in Lisbon",
            0.5
        ));
    }

    #[test]
    fn slots_and_their_values() {
        let updates = [
            ("Tom lives in York", "Tom lives in Leeds"),
            (
                "my brother Tom moved to York",
                "My brother Tom moved to Leeds last year.",
            ),
            ("my locker code is 548", "my locker code is 411"),
            (
                "Hines Ward plays the position of cornerback.",
                "Hines Ward plays the position of wide receiver.",
            ),
            (
                "The author of Our Mutual Friend is Charles Darwin.",
                "The author of Our Mutual Friend is Charles Dickens.",
            ),
            (
                "Chanel was founded by Andy Warhol.",
                "Chanel was founded by Coco Chanel.",
            ),
            ("Mia's teacher is Mrs Patel", "Mia's teacher is Mr Jones"),
            (
                "The type of music that John McVie plays is rap rock.",
                "The type of music that John McVie plays is rock music.",
            ),
        ];
        for (new, old) in updates {
            assert!(slot_value_at(new, old).is_some(), "{new:?} updates {old:?}");
        }
        let distinct = [
            ("my locker code 4 is 548", "my locker code 3 is 411"),
            ("I like pasta", "I like pizza"),
            ("I'm allergic to cats", "I'm allergic to nuts"),
            ("Tom is a doctor", "Tom is tall"),
            (
                "The capital of Italy is Rome.",
                "The capital of France is Paris.",
            ),
            ("We went to Rome in May", "We went to Paris in June"),
            ("Tom moved to Leeds last year", "Tom moved to Leeds"),
            (
                "My sister lives in Porto with her husband",
                "My sister lives in Porto",
            ),
        ];
        for (new, old) in distinct {
            assert!(slot_value_at(new, old).is_none(), "{new:?} vs {old:?}");
        }
    }

    #[test]
    fn a_partial_correction_is_put_into_its_fact() {
        assert_eq!(
            rebase("My locker code is 4812.", "the code is 4813").as_deref(),
            Some("My locker code is 4813")
        );
        assert_eq!(
            rebase(
                "Mia's piano lesson is on Tuesday",
                "the lesson is on Thursday"
            )
            .as_deref(),
            Some("Mia's piano lesson is on Thursday")
        );
        assert_eq!(rebase("Tom lives in Leeds", "it is sunny"), None);
    }

    #[test]
    fn values_are_replaced_where_they_were_said() {
        assert_eq!(
            replace_words("My brother Tom moved to Leeds last year.", "leeds", "York").as_deref(),
            Some("My brother Tom moved to York last year.")
        );
        assert_eq!(
            replace_words("Mia's school starts at 8:45.", "8:45", "8:30").as_deref(),
            Some("Mia's school starts at 8:30.")
        );
        assert_eq!(replace_words("Tom lives in Leeds", "york", "Hull"), None);
        assert_eq!(
            replace_like("my locker code is 4812", "4813").as_deref(),
            Some("my locker code is 4813")
        );
        assert_eq!(
            replace_like("we're going to Lisbon on the 14th", "the 15th").as_deref(),
            Some("we're going to Lisbon on the 15th")
        );
        assert_eq!(
            replace_like("Tom moved to Leeds", "York").as_deref(),
            Some("Tom moved to York")
        );
    }

    #[test]
    fn relations_resolve_to_names() {
        let cases = [
            (
                "My brother Tom moved to Leeds last year.",
                "brother",
                Some("Tom"),
            ),
            ("Tom is my brother.", "brother", Some("Tom")),
            ("Anna, my sister, lives in Porto", "sister", Some("Anna")),
            ("My brother's name is Tom", "brother", Some("Tom")),
            ("my brother is a nurse", "brother", None),
            ("Her brother Max is nice", "brother", None),
        ];
        for (text, relation, want) in cases {
            assert_eq!(name_of(text, relation).as_deref(), want, "{text:?}");
        }
        let topic = topic_words("where I park");
        assert!(mentions("I usually park on level 2", &topic));
        assert!(mentions("Parking is on level 2", &topic));
        assert!(mentions(
            "Mia's school starts at 8",
            &topic_words("Mia's school")
        ));
        assert!(!mentions(
            "Tom lives in Leeds",
            &topic_words("my locker code")
        ));
    }
}
