//! Splits streamed model text into sentences, so that the terminal can start speaking the first
//! sentence while the model writes the second. A reply's first chunk may end sooner, at its
//! first clause, after a few words when its first clause is long, or after a few words once
//! its writing has taken a while (a busy model writes slowly), so that speech starts while
//! the model is still writing a long first sentence.

use std::time::{Duration, Instant};

use super::LlmConfig;

/// Accumulates text pieces and hands out complete sentences.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    buf: String,
    /// The first chunk may end at a clause (`,` `;` or a dash) with at least this many words
    /// before it; 0: sentences only.
    first_clause_words: usize,
    /// The first chunk ends after at most this many words (at an earlier clause mark, else
    /// before a joining word such as "and" or "which" where one comes late enough); 0: no
    /// limit.
    first_chunk_words: usize,
    /// Once this long has passed since the first piece, the first chunk ends at the next
    /// word when it has `first_clause_words` words (cut as a long one is); `None`: no limit.
    first_chunk_time: Option<Duration>,
    /// When the first piece came.
    first_piece_at: Option<Instant>,
    /// Whether a chunk has been handed out.
    started: bool,
}

impl SentenceSplitter {
    /// A splitter whose first chunk ends at its first clause of `clause_words` words or more,
    /// or after `most_words` words (0: either off), the rest at sentence ends.
    pub fn new(clause_words: usize, most_words: usize) -> Self {
        SentenceSplitter {
            first_clause_words: clause_words,
            first_chunk_words: most_words,
            ..SentenceSplitter::default()
        }
    }

    /// The first chunk also ends, at its next complete word from `first_clause_words` on,
    /// once `after` has passed since the first piece.
    pub fn with_first_chunk_time(mut self, after: Duration) -> Self {
        self.first_chunk_time = Some(after);
        self
    }

    /// The splitter for a reply: its first chunk as `llm.first_clause_words`,
    /// `llm.first_chunk_words` and `llm.first_chunk_ms` say, the rest at sentence ends.
    pub fn for_reply(config: &LlmConfig) -> Self {
        let splitter = SentenceSplitter::new(
            config.first_clause_words as usize,
            config.first_chunk_words as usize,
        );
        match config.first_chunk_ms {
            0 => splitter,
            ms => splitter.with_first_chunk_time(Duration::from_millis(ms)),
        }
    }

    /// Adds a piece of text and returns the sentences it completed, trimmed.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        self.push_at(piece, Instant::now())
    }

    /// `push`, with the piece coming at `now`.
    pub fn push_at(&mut self, piece: &str, now: Instant) -> Vec<String> {
        self.buf.push_str(piece);
        let first_at = *self.first_piece_at.get_or_insert(now);
        let overdue = self
            .first_chunk_time
            .is_some_and(|after| now.saturating_duration_since(first_at) >= after);
        let mut out = Vec::new();
        while let Some(end) = self.boundary(overdue) {
            let sentence: String = self.buf.drain(..end).collect();
            let sentence = sentence.trim();
            if !sentence.is_empty() {
                out.push(sentence.to_string());
                self.started = true;
            }
        }
        out
    }

    /// Returns what is left, trimmed, at the end of the stream.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.buf);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// The byte index just after the first sentence end that is followed by whitespace, or a
    /// newline. A full stop after an abbreviation ("Dr.", "e.g.", "1.") is not an end. Before
    /// the first chunk, a clause end after enough words is one too, and so is the cut of a
    /// long (or `overdue`) first chunk.
    fn boundary(&self, overdue: bool) -> Option<usize> {
        let clause = !self.started && self.first_clause_words > 0;
        let mut chars = self.buf.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let next = chars.peek().map(|&(_, n)| n);
            let end = i + c.len_utf8();
            if c == '\n' && !self.buf[..i].trim().is_empty() {
                return Some(end);
            }
            if clause
                && CLAUSE_MARKS.contains(&c)
                && next.is_some_and(char::is_whitespace)
                && self.buf[..i].split_whitespace().count() >= self.first_clause_words
            {
                return Some(end);
            }
            if matches!(c, '.' | '!' | '?' | '…')
                && next.is_some_and(char::is_whitespace)
                && !(c == '.' && is_abbreviation(&self.buf[..i]))
            {
                return Some(end);
            }
        }
        self.long_first_chunk(overdue)
    }

    /// Where a first chunk that has run to `first_chunk_words` words with no clause or
    /// sentence end is cut: after its last clause mark however few words come before it
    /// ("One day, | in the heart of the old harbour town"), else before its last joining word
    /// that leaves `first_clause_words` words (at least one) before it ("Owls are birds of
    /// prey | that hunt at night"), else after its words. Only words followed by whitespace
    /// count: the last one may be a part. An `overdue` first chunk is cut the same way at its
    /// complete words once it has `first_clause_words` (at least one).
    fn long_first_chunk(&self, overdue: bool) -> Option<usize> {
        let limit = match self.first_chunk_words {
            0 if !overdue => return None,
            0 => usize::MAX,
            n => n,
        };
        if self.started {
            return None;
        }
        // (start, end) byte spans of the complete words, up to `limit`.
        let mut words = Vec::new();
        let mut start = None;
        for (i, c) in self.buf.char_indices() {
            if !c.is_whitespace() {
                start.get_or_insert(i);
            } else if let Some(s) = start.take() {
                words.push((s, i));
                if words.len() == limit {
                    break;
                }
            }
        }
        let word = |j: usize| &self.buf[words[j].0..words[j].1];
        let least = self.first_clause_words.max(1);
        // An overdue chunk does not end on a word that leads into the next ("of", "the",
        // "and"): it waits for one more.
        let leads_on = |j: usize| {
            let w = word(j).to_lowercase();
            JOINING_WORDS.contains(&w.as_str()) || LEADING_WORDS.contains(&w.as_str())
        };
        let most = match words.len() {
            n if n == limit => n,
            n if overdue && n >= least && !leads_on(n - 1) => n,
            _ => return None,
        };
        let clause = (0..most).rev().find(|&j| word(j).ends_with(CLAUSE_MARKS));
        let joining = || {
            (least..most)
                .rev()
                .find(|&j| JOINING_WORDS.contains(&word(j).to_lowercase().as_str()))
        };
        Some(match (clause, joining()) {
            (Some(j), _) => words[j].1,
            (None, Some(j)) => words[j].0,
            (None, None) => words[most - 1].1,
        })
    }
}

/// What ends a clause: a comma, a semicolon or a dash.
const CLAUSE_MARKS: [char; 4] = [',', ';', '—', '–'];

/// Words that begin a clause or a phrase of their own, before which a long first chunk is
/// cut, so that the pause falls where a speaker could take a breath.
const JOINING_WORDS: &[&str] = &[
    "and", "but", "or", "so", "because", "which", "that", "who", "whose", "where", "when", "while",
    "if", "though", "although", "since", "until", "unless", "whereas",
];

/// Words that lead into the next one (articles and other determiners, prepositions,
/// possessives, auxiliaries, intensifiers), on which an overdue first chunk does not end.
const LEADING_WORDS: &[&str] = &[
    "a", "an", "the", "this", "these", "those", "some", "any", "all", "each", "every", "no",
    "such", "most", "more", "less", "of", "to", "in", "on", "at", "for", "with", "from", "by",
    "about", "into", "as", "than", "my", "your", "his", "her", "its", "our", "their", "is", "are",
    "was", "were", "be", "has", "have", "had", "will", "can", "would", "could", "should", "do",
    "does", "did", "not", "very", "really", "quite", "just", "also",
];

/// Whether the word just before a full stop is an abbreviation or a list number rather than
/// the end of a sentence: one character ("J.", "1."), a short capitalised word ("Dr.", "Mrs."),
/// or a common lower-case one ("e.g.", "etc.").
fn is_abbreviation(before: &str) -> bool {
    let word = before.rsplit(char::is_whitespace).next().unwrap_or("");
    let word = word.trim_start_matches(|c: char| !c.is_alphanumeric());
    let len = word.chars().count();
    len <= 1
        || (len <= 3 && word.chars().next().is_some_and(char::is_uppercase))
        || ["e.g", "i.e", "etc", "vs", "approx"].contains(&word.to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_stream(pieces: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::default();
        let mut out: Vec<String> = pieces.iter().flat_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn splits_on_sentence_ends_across_pieces() {
        assert_eq!(
            split_stream(&[
                "The moon",
                " is bright",
                " tonight. It is",
                " full! Is it",
                " not?"
            ]),
            vec!["The moon is bright tonight.", "It is full!", "Is it not?"]
        );
    }

    #[test]
    fn the_first_chunk_may_end_at_a_clause_and_the_rest_at_sentences() {
        let mut s = SentenceSplitter::new(4, 0);
        // Too few words before the comma: the sentence goes on.
        assert!(s.push("Sure, once upon a time").is_empty());
        assert_eq!(
            s.push(", in a town by the sea, there lived"),
            vec!["Sure, once upon a time,"]
        );
        // After the first chunk, commas no longer end one; a number's comma never does.
        assert!(s.push(" a keeper with 1,000 lamps").is_empty());
        assert_eq!(
            s.push(". He was"),
            vec!["in a town by the sea, there lived a keeper with 1,000 lamps."]
        );
        assert_eq!(s.finish().as_deref(), Some("He was"));
        // Off: sentences only.
        assert_eq!(
            split_stream(&["Once upon a time, in a town, a keeper. Yes."]),
            vec!["Once upon a time, in a town, a keeper.", "Yes."]
        );
        // A short sentence ends first.
        let mut s = SentenceSplitter::new(4, 0);
        assert_eq!(s.push("It is noon. Then, a"), vec!["It is noon."]);
        assert!(s.push(" b, c").is_empty());
    }

    #[test]
    fn a_long_first_clause_is_cut_after_a_few_words_before_a_joining_word() {
        // Eight words and no clause end: cut before the last joining word after four.
        let mut s = SentenceSplitter::new(4, 8);
        assert!(s
            .push("Owls are nocturnal birds of prey that hunt")
            .is_empty());
        assert_eq!(s.push(" at"), vec!["Owls are nocturnal birds of prey"]);
        // Then sentences only.
        assert!(s.push(" night and sleep by day, mostly").is_empty());
        assert_eq!(
            s.push(". Yes"),
            vec!["that hunt at night and sleep by day, mostly."]
        );
        // Before it, a clause mark however early: "Once," would wait for four words.
        let mut s = SentenceSplitter::new(4, 8);
        assert_eq!(
            s.push("Once, in the heart of the old harbour town "),
            vec!["Once,"]
        );
        // No joining word late enough ("and" is the second word): cut after eight words.
        let mut s = SentenceSplitter::new(4, 8);
        assert_eq!(
            s.push("Salt and pepper go well with most roasted winter vegetables"),
            vec!["Salt and pepper go well with most roasted"]
        );
        assert_eq!(s.finish().as_deref(), Some("winter vegetables"));
        // A clause or sentence end within the words comes first; a word still being
        // written does not count.
        let mut s = SentenceSplitter::new(4, 8);
        assert_eq!(
            s.push("The Danube flows through ten countries, from"),
            vec!["The Danube flows through ten countries,"]
        );
        let mut s = SentenceSplitter::new(4, 8);
        assert!(s.push("One two three four five six seven eigh").is_empty());
        assert_eq!(
            s.push("t "),
            vec!["One two three four five six seven eight"]
        );
        // Off: the first sentence, however long.
        assert_eq!(
            split_stream(&["One two three four five six seven eight nine ten. Yes."]),
            vec!["One two three four five six seven eight nine ten.", "Yes."]
        );
    }

    #[test]
    fn a_slow_first_chunk_ends_at_its_next_word_once_overdue() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let slow = || SentenceSplitter::new(4, 8).with_first_chunk_time(Duration::from_millis(500));
        // Before the time, the words wait for a clause end or the eighth word.
        let mut s = slow();
        assert!(s.push_at("Owls are", at(0)).is_empty());
        assert!(s.push_at(" nocturnal", at(300)).is_empty());
        // After it, fewer than four complete words still wait ("birds" may go on)...
        assert!(s.push_at(" birds", at(600)).is_empty());
        // ...and four go.
        assert_eq!(s.push_at(" of", at(700)), vec!["Owls are nocturnal birds"]);
        assert!(s.push_at(" prey.", at(800)).is_empty());
        assert_eq!(s.finish().as_deref(), Some("of prey."));
        // A word that leads into the next ("at") waits for one more.
        let mut s = slow();
        assert!(s.push_at("Most owls hunt at", at(0)).is_empty());
        assert!(s.push_at(" night", at(600)).is_empty());
        assert_eq!(s.push_at(" and", at(700)), vec!["Most owls hunt at night"]);
        // An earlier clause mark or a joining word after four words is the cut, as for a
        // long first chunk.
        let mut s = slow();
        assert!(s.push_at("One day, in", at(0)).is_empty());
        assert_eq!(s.push_at(" the heart ", at(600)), vec!["One day,"]);
        let mut s = slow();
        assert!(s.push_at("Salt goes well with", at(0)).is_empty());
        assert_eq!(
            s.push_at(" roasts because it ", at(600)),
            vec!["Salt goes well with roasts"]
        );
        // Only the first chunk: the rest waits for sentence ends however long it takes.
        assert!(s.push_at("brings out the flavour", at(5000)).is_empty());
        // Without the time limit, nothing changes however slow the words come.
        let mut s = SentenceSplitter::new(4, 8);
        assert!(s.push_at("Owls are nocturnal birds ", at(0)).is_empty());
        assert!(s.push_at("of prey ", at(9000)).is_empty());
        // `first_chunk_ms = 0` turns it off; the default sets it.
        let off = LlmConfig {
            first_chunk_ms: 0,
            ..LlmConfig::default()
        };
        assert_eq!(SentenceSplitter::for_reply(&off).first_chunk_time, None);
        assert_eq!(
            SentenceSplitter::for_reply(&LlmConfig::default()).first_chunk_time,
            Some(Duration::from_millis(500))
        );
    }

    #[test]
    fn waits_for_the_space_after_the_stop() {
        let mut s = SentenceSplitter::default();
        assert!(s.push("It costs 3.").is_empty());
        assert!(s.push("50 euros").is_empty());
        assert_eq!(s.push(". Then"), vec!["It costs 3.50 euros."]);
        assert_eq!(s.finish().as_deref(), Some("Then"));
    }

    #[test]
    fn short_abbreviations_do_not_split() {
        assert_eq!(
            split_stream(&["Ask Dr. Smith about it. Okay."]),
            vec!["Ask Dr. Smith about it.", "Okay."]
        );
    }

    #[test]
    fn newlines_end_a_chunk_and_blank_text_is_dropped() {
        assert_eq!(
            split_stream(&["- milk\n", "\n", "- eggs\n  "]),
            vec!["- milk", "- eggs"]
        );
        assert!(split_stream(&["   ", "\n"]).is_empty());
    }

    #[test]
    fn handles_multibyte_text() {
        assert_eq!(
            split_stream(&["Ça va très bien. Ünïcødé 🌱 works… ", "yes"]),
            vec!["Ça va très bien.", "Ünïcødé 🌱 works…", "yes"]
        );
    }
}
