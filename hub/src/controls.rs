//! Spoken memory controls, recognised in code so that they work the same with any model:
//! "forget that", "forget about X", and "what do you remember about X". They are answered
//! directly, without the language model, and are never stored as memories.

/// A memory control the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Forget the last thing stored from this room.
    ForgetLast,
    /// Forget every memory that mentions the topic.
    ForgetAbout(String),
    /// List what is remembered about the topic.
    Recall(String),
    /// Replace the stored fact this corrects ("actually, Anna lives in Lisbon now").
    Correct(String),
    /// Stop talking ("never mind", "stop", "be quiet"): the reply in flight, if any, is
    /// already cancelled by this newer utterance; nothing is said or stored.
    Stop,
}

/// Politeness and address before a control: "hey hearth, please ...".
const ADDRESS: &[&str] = &[
    "please", "hey", "hearth", "ok", "okay", "now", "could", "can", "would", "you",
];

/// Words that start a question or a request rather than a statement of fact.
const NOT_A_FACT: &[&str] = &[
    "what", "who", "where", "when", "why", "how", "which", "can", "could", "would", "will",
    "should", "do", "does", "did", "is", "are", "tell", "play", "set", "remind", "stop", "turn",
    "please", "let's", "lets", "never",
];

/// Recognises a control in an utterance; `None` for everything else.
pub fn parse(text: &str) -> Option<Control> {
    let words = crate::words::words(text);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let mut rest: &[&str] = &words;
    // Politeness and address: "hey hearth, please ..."
    while let Some((first, tail)) = rest.split_first() {
        if ADDRESS.contains(first) {
            rest = tail;
        } else {
            break;
        }
    }
    let phrase = rest.join(" ");
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
    if matches!(
        phrase.as_str(),
        "forget that"
            | "forget it"
            | "forget this"
            | "forget what i just said"
            | "forget what i said"
    ) {
        return Some(Control::ForgetLast);
    }
    for prefix in [
        "forget everything about ",
        "forget what i said about ",
        "forget about ",
    ] {
        if let Some(rest) = phrase.strip_prefix(prefix) {
            return topic(rest).map(Control::ForgetAbout);
        }
    }
    for prefix in [
        "correction ",
        "that's wrong ",
        "that is wrong ",
        "that's not right ",
        "that's not true ",
        "that's outdated ",
        "actually ",
    ] {
        if let Some(rest) = phrase.strip_prefix(prefix) {
            let fact = rest.trim_start_matches("now ").trim();
            let first = fact.split_whitespace().next().unwrap_or("");
            if fact.split_whitespace().count() >= 3
                && !NOT_A_FACT.contains(&first)
                && !text.trim_end().ends_with('?')
            {
                // The fact as said, punctuation and case kept, after the cue words.
                let cue_words = prefix.split_whitespace().count();
                let said: Vec<&str> = text
                    .split_whitespace()
                    .skip_while(|w| {
                        let w = w
                            .trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                            .to_lowercase();
                        w.is_empty() || ADDRESS.contains(&w.as_str())
                    })
                    .skip(cue_words)
                    .collect();
                let said = said.join(" ");
                let said = said.trim_start_matches([',', ':', ';', '-', ' ']);
                return Some(Control::Correct(said.to_string()));
            }
            return None;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_controls_and_nothing_else() {
        let table = [
            ("Forget that.", Some(Control::ForgetLast)),
            ("Hey Hearth, please forget that!", Some(Control::ForgetLast)),
            ("forget what I just said", Some(Control::ForgetLast)),
            (
                "Forget about Anna.",
                Some(Control::ForgetAbout("anna".into())),
            ),
            (
                "Please forget everything about the boiler",
                Some(Control::ForgetAbout("the boiler".into())),
            ),
            (
                "What do you remember about Anna?",
                Some(Control::Recall("anna".into())),
            ),
            (
                "what do you know about my sister please",
                Some(Control::Recall("my sister".into())),
            ),
            (
                "Actually, Anna lives in Lisbon now.",
                Some(Control::Correct("Anna lives in Lisbon now.".into())),
            ),
            (
                "Correction: my dentist is Dr. Sousa, not Dr. Silva.",
                Some(Control::Correct(
                    "my dentist is Dr. Sousa, not Dr. Silva.".into(),
                )),
            ),
            (
                "That's wrong, the boiler was serviced in May.",
                Some(Control::Correct("the boiler was serviced in May.".into())),
            ),
            ("Never mind.", Some(Control::Stop)),
            ("Hey Hearth, stop!", Some(Control::Stop)),
            ("okay, that's enough", Some(Control::Stop)),
            ("Stop the music in the kitchen", None),
            ("Actually, what time is it?", None),
            ("Actually, tell me a joke about cats", None),
            ("Actually yes", None),
            ("Forget about", None),
            ("I always forget that song", None),
            ("Don't forget that I'm out tomorrow", None),
            ("What do you remember?", None),
            ("My sister Anna lives in Porto.", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(parse(text), want, "{text:?}");
        }
    }
}
