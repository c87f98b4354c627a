//! `hearth-terminal wer`: each speech-to-text engine's word error rate and decode time on the
//! project's speech set, as a table.
//!
//! The set: household requests spoken by espeak-ng in several voices and by the terminal's own
//! Piper voice, and one clip of a real person (JFK's "ask not", fetched by `scripts/fetch-models
//! jfk-wav`). Words are compared after [`normalize`]: lower case, no punctuation, numbers as
//! words, so "Set a timer for 20 minutes." matches "set a timer for twenty minutes".

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audio::{wav, SPEECH_RATE};
use crate::config::{SttConfig, SttEngine, TerminalConfig};
use crate::stt::Stt;
use crate::tts::Tts;

/// What people ask a household assistant; every voice speaks each one.
pub const PHRASES: [&str; 8] = [
    "What is the weather like in the kitchen today?",
    "Remind me to water the plants tomorrow at eight.",
    "Set a timer for twenty minutes.",
    "Tell me a short story about a lighthouse keeper and his cat.",
    "Turn off the lights in the living room.",
    "What did I say about my sister's birthday?",
    "Add milk and eggs to the shopping list.",
    "How long does it take to boil an egg?",
];

/// The espeak-ng voices of the set.
pub const ESPEAK_VOICES: [&str; 3] = ["en-us", "en-gb", "en-us+f3"];

/// What JFK says in `jfk.wav`.
pub const JFK_TEXT: &str = "And so my fellow Americans, ask not what your country can do for \
                            you, ask what you can do for your country.";

/// One clip of the set.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Who spoke it: "espeak en-gb", "piper", "jfk (human)".
    pub speaker: String,
    /// What was said.
    pub text: String,
    /// 16 kHz mono samples.
    pub samples: Vec<f32>,
}

impl Sample {
    fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(SPEECH_RATE)
    }
}

/// An engine to measure: a label for the table and the `stt` section that loads it.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// "whisper ggml-tiny.en.bin", "moonshine moonshine-tiny-en".
    pub label: String,
    /// The config it loads with.
    pub stt: SttConfig,
}

impl Candidate {
    /// The config's own whisper and Moonshine models, then `whisper` files and `moonshine`
    /// folders besides.
    pub fn from_config(
        stt: &SttConfig,
        whisper: &[PathBuf],
        moonshine: &[PathBuf],
    ) -> Vec<Candidate> {
        let name = |p: &Path| {
            p.file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into())
        };
        let whisper_models = std::iter::once(&stt.model).chain(whisper);
        let moonshine_models = std::iter::once(&stt.moonshine_model).chain(moonshine);
        let mut out: Vec<Candidate> = whisper_models
            .map(|model| Candidate {
                label: format!("whisper {}", name(model)),
                stt: SttConfig {
                    engine: SttEngine::Whisper,
                    model: model.clone(),
                    ..stt.clone()
                },
            })
            .collect();
        out.extend(moonshine_models.map(|folder| Candidate {
            label: format!("moonshine {}", name(folder)),
            stt: SttConfig {
                engine: SttEngine::Moonshine,
                moonshine_model: folder.clone(),
                ..stt.clone()
            },
        }));
        out
    }
}

/// The speech set: every phrase in every espeak voice and the Piper voice, and `jfk` if given.
pub fn speech_set(config: &TerminalConfig, jfk: Option<&Path>) -> anyhow::Result<Vec<Sample>> {
    let dir = std::env::temp_dir().join(format!("hearth-wer-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let mut set = Vec::new();
    let spoken = (|| -> anyhow::Result<()> {
        for voice in ESPEAK_VOICES {
            for (i, phrase) in PHRASES.iter().enumerate() {
                let path = dir.join(format!("{i}.wav"));
                let clip = super::espeak_voice(phrase, voice, &path)?;
                set.push(Sample {
                    speaker: format!("espeak {voice}"),
                    text: phrase.to_string(),
                    samples: clip.at_rate(SPEECH_RATE).samples,
                });
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    spoken?;
    let mut tts = Tts::load(&config.voice.onnxruntime, &config.tts)?;
    for phrase in PHRASES {
        let spoken = tts.synthesize(phrase)?;
        set.push(Sample {
            speaker: "piper".into(),
            text: phrase.to_string(),
            samples: spoken.clip.at_rate(SPEECH_RATE).samples,
        });
    }
    if let Some(path) = jfk {
        set.push(Sample {
            speaker: "jfk (human)".into(),
            text: JFK_TEXT.into(),
            samples: wav::read(path)?.at_rate(SPEECH_RATE).samples,
        });
    }
    Ok(set)
}

/// One engine's results on the set.
#[derive(Debug, Clone)]
pub struct Score {
    /// The candidate's label.
    pub label: String,
    /// Per speaker, in the set's order: word errors and reference words.
    pub by_speaker: Vec<(String, usize, usize)>,
    /// Each clip's decode time, in the set's order.
    pub took: Vec<Duration>,
    /// Each clip's transcript, in the set's order.
    pub heard: Vec<String>,
    /// CPU time of the whole process (every thread) over the set, where /proc tells it.
    pub cpu: Option<Duration>,
}

impl Score {
    /// Word errors over reference words, all speakers together.
    pub fn wer(&self) -> f64 {
        let (e, n) = self
            .by_speaker
            .iter()
            .fold((0, 0), |(e, n), s| (e + s.1, n + s.2));
        e as f64 / n.max(1) as f64
    }
}

/// Transcribes the set with `candidate` (after one untimed warm-up run).
pub fn score(candidate: &Candidate, set: &[Sample]) -> anyhow::Result<Score> {
    let stt = Stt::load(&candidate.stt)?;
    if let Some(first) = set.first() {
        stt.transcribe(&first.samples)?;
    }
    let mut by_speaker: Vec<(String, usize, usize)> = Vec::new();
    let mut took = Vec::new();
    let mut heard = Vec::new();
    let cpu0 = process_cpu();
    for sample in set {
        let t = stt.transcribe(&sample.samples)?;
        let (errors, words) = word_errors(&sample.text, &t.text);
        match by_speaker.iter_mut().find(|s| s.0 == sample.speaker) {
            Some(s) => {
                s.1 += errors;
                s.2 += words;
            }
            None => by_speaker.push((sample.speaker.clone(), errors, words)),
        }
        took.push(t.took);
        heard.push(t.text);
    }
    let cpu = process_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    Ok(Score {
        label: candidate.label.clone(),
        by_speaker,
        took,
        heard,
        cpu,
    })
}

/// User and system CPU time of this process, every thread together, including threads that
/// have ended (whisper.cpp starts its own per decode), from /proc/self/stat. The kernel counts
/// it in ticks of 1/100 s (USER_HZ, 100 on Linux); over a whole set that is precise enough.
fn process_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// Measures every candidate on the set and prints the table (and, with `verbose`, every
/// transcript that is not word-perfect).
pub fn run(
    config: &TerminalConfig,
    candidates: &[Candidate],
    jfk: Option<&Path>,
    verbose: bool,
) -> anyhow::Result<()> {
    let set = speech_set(config, jfk)?;
    let audio_s: f64 = set.iter().map(Sample::seconds).sum();
    let mut scores = Vec::new();
    for candidate in candidates {
        let score = score(candidate, &set)?;
        if verbose {
            for (sample, heard) in set.iter().zip(&score.heard) {
                let (errors, _) = word_errors(&sample.text, heard);
                if errors > 0 {
                    println!(
                        "{} / {}: {errors} errors: {heard:?} for {:?}",
                        score.label, sample.speaker, sample.text
                    );
                }
            }
        }
        scores.push(score);
    }
    print!("{}", table(&scores, &set, audio_s));
    Ok(())
}

/// The table: word error rate per speaker and overall, decode time per clip (p50, p90, ms),
/// the real-time factor over the whole set, and CPU seconds (all threads) per second of
/// speech, which a busy machine disturbs less than the wall-clock times.
pub fn table(scores: &[Score], set: &[Sample], audio_s: f64) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let speakers: Vec<String> = scores
        .first()
        .map(|s| s.by_speaker.iter().map(|b| b.0.clone()).collect())
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "word error rate and decode time ({} clips, {audio_s:.0} s of speech)",
        set.len()
    );
    let _ = write!(out, "| {:<30} |", "engine");
    for s in &speakers {
        let _ = write!(out, " {s:>14} |");
    }
    let _ = writeln!(
        out,
        " {:>6} | {:>8} | {:>8} | {:>5} | {:>7} |",
        "all", "p50 ms", "p90 ms", "RTF", "CPU s/s"
    );
    let _ = write!(out, "|{}|", "-".repeat(32));
    for _ in &speakers {
        let _ = write!(out, "{}:|", "-".repeat(15));
    }
    let _ = writeln!(out, "-------:|---------:|---------:|------:|--------:|");
    for score in scores {
        let _ = write!(out, "| {:<30} |", score.label);
        for (_, errors, words) in &score.by_speaker {
            let _ = write!(
                out,
                " {:>13.1}% |",
                100.0 * *errors as f64 / (*words).max(1) as f64
            );
        }
        let mut ms: Vec<f64> = score
            .took
            .iter()
            .map(|d| d.as_secs_f64() * 1000.0)
            .collect();
        ms.sort_by(f64::total_cmp);
        let total: f64 = ms.iter().sum::<f64>() / 1000.0;
        let cpu = score.cpu.map_or("n/a".to_string(), |cpu| {
            format!("{:.3}", cpu.as_secs_f64() / audio_s.max(1e-9))
        });
        let _ = writeln!(
            out,
            " {:>5.1}% | {:>8.0} | {:>8.0} | {:>5.3} | {cpu:>7} |",
            100.0 * score.wer(),
            super::percentile(&ms, 0.5),
            super::percentile(&ms, 0.9),
            total / audio_s.max(1e-9)
        );
    }
    out
}

/// Word errors (substitutions, deletions, insertions) of `hypothesis` against `reference`, and
/// the reference's word count, both after [`normalize`].
pub fn word_errors(reference: &str, hypothesis: &str) -> (usize, usize) {
    let r = normalize(reference);
    let h = normalize(hypothesis);
    // Levenshtein distance over words, one row at a time.
    let mut row: Vec<usize> = (0..=h.len()).collect();
    for (i, rw) in r.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let substitute = diagonal + usize::from(rw != hw);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    (row[h.len()], r.len())
}

/// Lower-case words without punctuation (an apostrophe inside a word stays), and whole
/// numbers up to 9,999 as words ("20" is "twenty", "8:00" is "eight").
pub fn normalize(text: &str) -> Vec<String> {
    let lower = text.to_lowercase().replace(":00", "");
    let spaced: String = lower
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '\u{2019}' {
                c
            } else {
                ' '
            }
        })
        .collect();
    let mut words = Vec::new();
    for word in spaced.split_whitespace() {
        let word = word.trim_matches(|c| c == '\'' || c == '\u{2019}');
        match word.parse::<u32>() {
            Ok(n) if n < 10_000 => words.extend(number_words(n)),
            _ if !word.is_empty() => words.push(word.replace('\u{2019}', "'")),
            _ => {}
        }
    }
    words
}

fn number_words(n: u32) -> Vec<String> {
    const ONES: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
    ];
    const TENS: [&str; 10] = [
        "", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
    ];
    let mut out = Vec::new();
    let (thousands, rest) = (n / 1000, n % 1000);
    if thousands > 0 {
        out.push(ONES[thousands as usize].to_string());
        out.push("thousand".into());
    }
    let (hundreds, rest) = (rest / 100, rest % 100);
    if hundreds > 0 {
        out.push(ONES[hundreds as usize].to_string());
        out.push("hundred".into());
    }
    if rest >= 20 {
        out.push(TENS[(rest / 10) as usize].to_string());
        if rest % 10 > 0 {
            out.push(ONES[(rest % 10) as usize].to_string());
        }
    } else if rest > 0 || out.is_empty() {
        out.push(ONES[rest as usize].to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_normalized() {
        assert_eq!(
            normalize("Set a timer for 20 minutes."),
            normalize("set a timer for twenty minutes")
        );
        assert_eq!(
            normalize("What did I say about my sister’s birthday?"),
            ["what", "did", "i", "say", "about", "my", "sister's", "birthday"]
        );
        assert_eq!(
            normalize("at 8:00, 1,205"),
            ["at", "eight", "one", "two", "hundred", "five"]
        );
        assert_eq!(number_words(0), ["zero"]);
        assert_eq!(
            number_words(1999).join(" "),
            "one thousand nine hundred ninety nine"
        );
        assert_eq!(normalize("well-known 'quote'"), ["well", "known", "quote"]);
    }

    #[test]
    fn word_errors_count_edits() {
        assert_eq!(word_errors("ask not what", "Ask not, what?"), (0, 3));
        // A substitution, a deletion and an insertion.
        assert_eq!(word_errors("a b c d", "a x c"), (2, 4));
        assert_eq!(word_errors("a b", "a b c"), (1, 2));
        assert_eq!(word_errors("a b", ""), (2, 2));
        assert_eq!(word_errors("", "a"), (1, 0));
    }

    #[test]
    fn the_table_has_a_row_per_engine() {
        let set = vec![Sample {
            speaker: "piper".into(),
            text: "a b".into(),
            samples: vec![0.0; 16_000],
        }];
        let score = Score {
            label: "moonshine tiny".into(),
            by_speaker: vec![("piper".into(), 1, 2)],
            took: vec![Duration::from_millis(100)],
            heard: vec!["a".into()],
            cpu: Some(Duration::from_millis(150)),
        };
        let table = table(&[score], &set, 1.0);
        assert!(table.contains("| moonshine tiny"), "{table}");
        assert!(table.contains("50.0%"), "{table}");
        assert!(table.contains("0.100"), "{table}");
        assert!(table.contains("0.150"), "{table}");
        assert!(process_cpu().is_some());
    }
}
