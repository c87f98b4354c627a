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
}

/// Recognises a control in an utterance; `None` for everything else.
pub fn parse(text: &str) -> Option<Control> {
    let t: String = text
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let words: Vec<&str> = t.split_whitespace().collect();
    let mut rest: &[&str] = &words;
    // Politeness and address: "hey hearth, please ..."
    while let Some((first, tail)) = rest.split_first() {
        if [
            "please", "hey", "hearth", "ok", "okay", "now", "could", "can", "would", "you",
        ]
        .contains(first)
        {
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
