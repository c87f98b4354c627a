//! Personas: who answers, and how it sounds. A persona file (`personas/<name>.toml`) gives a
//! name, a wake phrase, a codex (a short charter of who it is and how it speaks, added to the
//! answer's system prompt), an adapter, sampling settings and a voice. Each room has a
//! persona (`[personas] default`, `[personas.rooms]`); "ask Brick ...", "Brick, ..." or
//! Brick's wake phrase at the start of a request picks Brick for that turn. Memory is shared:
//! every persona recalls the same memories, and each one's replies are kept under its name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use hearth_shared::Voice;
use serde::{Deserialize, Serialize};

use crate::config::expand_home;
use crate::llm::RolesConfig;

/// `[personas]`: where persona files are and which room has which.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PersonasConfig {
    /// A folder of persona files (`*.toml`, one persona each); empty: none, and the assistant
    /// answers as itself. `~/` is expanded.
    pub dir: PathBuf,
    /// The persona of a room that `rooms` does not list; empty: the assistant itself.
    pub default: String,
    /// A room's own persona, by room name ("kitchen" = "Brick").
    pub rooms: BTreeMap<String, String>,
    /// The personas read from `dir` by [`PersonasConfig::load`], by file name.
    #[serde(skip)]
    pub loaded: Vec<Persona>,
}

/// One persona file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Persona {
    /// What it is called, and asked by ("ask Brick ..."): one word of 1 to 32 letters.
    pub name: String,
    /// Words that pick it when a request starts with them ("yo brick"); "ask <name>",
    /// "hey <name>" and "<name>," always do.
    pub wake_phrase: String,
    /// Who it is and how it speaks, added to the answer's system prompt.
    pub codex: String,
    /// A LoRA adapter (GGUF) its answers run with, in place of the consciousness role's;
    /// empty: the role's. A relative path is in the persona folder.
    pub adapter: PathBuf,
    /// How strongly the adapter applies.
    pub adapter_scale: f32,
    /// Said in place of the codex while the adapter is set (what the adapter learned need
    /// not be said again); empty: the codex.
    pub minimal_codex: String,
    /// Its answers' sampling temperature; below 0: the consciousness role's.
    pub temperature: f32,
    /// The most tokens of one answer; 0: the consciousness role's.
    pub max_tokens: u32,
    /// How it sounds.
    pub voice: VoiceSettings,
}

impl Default for Persona {
    fn default() -> Self {
        Persona {
            name: String::new(),
            wake_phrase: String::new(),
            codex: String::new(),
            adapter: PathBuf::new(),
            adapter_scale: 1.0,
            minimal_codex: String::new(),
            temperature: -1.0,
            max_tokens: 0,
            voice: VoiceSettings::default(),
        }
    }
}

/// A persona's `[voice]`: a Piper voice the terminals know by name, or settings of their own
/// voice. Unset values keep the terminal's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoiceSettings {
    /// A voice by the name the terminals' `tts.voices` give it.
    pub model: Option<String>,
    /// The speaker, in a voice with several.
    pub speaker: Option<u32>,
    /// Pace: above 1 slower, below 1 faster (0.25 to 4).
    pub length_scale: Option<f32>,
    /// How much the sound varies (0 to 2).
    pub noise_scale: Option<f32>,
    /// How much the timing varies (0 to 2).
    pub noise_w: Option<f32>,
}

impl Persona {
    /// The voice its speech names, on the wire.
    pub fn voice(&self) -> Voice {
        let v = &self.voice;
        Voice {
            persona: self.name.clone(),
            model: v.model.clone(),
            speaker: v.speaker,
            length_scale: v.length_scale,
            noise_scale: v.noise_scale,
            noise_w: v.noise_w,
        }
    }

    /// Whether it has an adapter of its own.
    pub fn has_adapter(&self) -> bool {
        !self.adapter.as_os_str().is_empty()
    }

    /// The answer's system prompt: `base` (the consciousness role's), then the codex, or
    /// the minimal codex while the adapter is set (when there is one).
    pub fn system_prompt(&self, base: &str) -> String {
        self.prompt_on(base, self.has_adapter())
    }

    /// [`Persona::system_prompt`] as it reads with its adapter set (`adapted`) or not.
    fn prompt_on(&self, base: &str, adapted: bool) -> String {
        let codex = if adapted && !self.minimal_codex.trim().is_empty() {
            &self.minimal_codex
        } else {
            &self.codex
        };
        match (base.trim().is_empty(), codex.trim().is_empty()) {
            (_, true) => base.to_string(),
            (true, false) => codex.trim().to_string(),
            (false, false) => format!("{}\n\n{}", base.trim_end(), codex.trim()),
        }
    }

    /// Its answers' system prompt: the consciousness role's prompt (`built_in` when the role
    /// sets none), then its codex. With its own adapter, which takes the role's place, the
    /// role's full prompt (its minimal one goes with the role's adapter) and the minimal
    /// codex.
    pub fn answer_prompt(&self, roles: &RolesConfig, built_in: &str) -> String {
        self.answer_on(roles, built_in, self.has_adapter())
    }

    /// [`Persona::answer_prompt`] as it reads with its adapter set (`adapted`) or not.
    fn answer_on(&self, roles: &RolesConfig, built_in: &str, adapted: bool) -> String {
        let base = if adapted {
            roles.full_answer_prompt(built_in)
        } else {
            roles.answer_prompt(built_in)
        };
        self.prompt_on(base, adapted)
    }

    /// What training replaces in its answers for its adapter: its answer prompt without the
    /// adapter, and with it, as the hub says it once the adapter is set. `None` when they are
    /// the same.
    pub fn shortened(&self, roles: &RolesConfig, built_in: &str) -> Option<(String, String)> {
        let full = self.answer_on(roles, built_in, false);
        let minimal = self.answer_on(roles, built_in, true);
        (full != minimal).then_some((full, minimal))
    }

    /// Whether a logged answer with this `system` prompt was its own: the prompt holds its
    /// codex, or its minimal codex while its adapter is set.
    pub fn prompted(&self, system: &str) -> bool {
        let codex = self.codex.trim();
        let minimal = self.minimal_codex.trim();
        (!codex.is_empty() && system.contains(codex))
            || (self.has_adapter() && !minimal.is_empty() && system.contains(minimal))
    }

    /// A value out of range, named by its file's key.
    fn check(&self) -> Result<(), String> {
        // One word of letters: what people say before a comma, and what the guard knows as
        // the assistant's own label ("Brick: ...").
        let name_ok = (1..=32).contains(&self.name.chars().count())
            && self.name.chars().all(char::is_alphabetic);
        if !name_ok {
            return Err(format!(
                "name {:?} must be one word of 1 to 32 letters",
                self.name
            ));
        }
        let wake = words(&self.wake_phrase);
        if !self.wake_phrase.is_empty() && wake.is_empty() {
            return Err(format!(
                "wake_phrase {:?} has no word in it",
                self.wake_phrase
            ));
        }
        if let [one] = wake.as_slice() {
            if LEADS.contains(&one.as_str()) || FILLERS.contains(&one.as_str()) {
                return Err(format!(
                    "wake_phrase {:?} is a word that starts many requests; give two words (\"hey {}\")",
                    self.wake_phrase,
                    self.name.to_lowercase()
                ));
            }
        }
        if !(self.adapter_scale > 0.0 && self.adapter_scale <= 10.0) {
            return Err(format!(
                "adapter_scale ({}) must be above 0 and at most 10",
                self.adapter_scale
            ));
        }
        if self.temperature > 5.0 || self.temperature.is_nan() {
            return Err(format!(
                "temperature ({}) must be at most 5 (below 0: the role's)",
                self.temperature
            ));
        }
        self.voice().check()
    }

    /// The word sequences that pick it at the start of a request, longest first: a lead
    /// word and its name, and its wake phrase.
    fn addresses(&self) -> Vec<Vec<String>> {
        let name = words(&self.name);
        let mut out: Vec<Vec<String>> = LEADS
            .into_iter()
            .map(|w| std::iter::once(w.to_string()).chain(name.clone()).collect())
            .collect();
        let wake = words(&self.wake_phrase);
        if !wake.is_empty() && !out.contains(&wake) {
            out.push(wake);
        }
        out.sort_by_key(|a| std::cmp::Reverse(a.len()));
        out
    }
}

/// The words before a persona's name that address it ("ask Brick", "hey Brick").
const LEADS: [&str; 6] = ["ask", "hey", "hi", "hello", "ok", "okay"];

/// Words that may come before an address ("and ask Brick", "please, Brick, ...").
const FILLERS: [&str; 5] = ["and", "please", "now", "so", "then"];

/// The persona a turn is answered by, and the request without the words that picked it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Picked<'a> {
    /// The persona; `None`: the assistant itself.
    pub persona: Option<&'a Persona>,
    /// Whether the request named the persona (not the room's).
    pub addressed: bool,
    /// The request without the address ("ask Brick what time it is" -> "What time it is"),
    /// when the request named a persona and said more than that.
    pub request: Option<String>,
}

impl PersonasConfig {
    /// Reads the persona files in `dir` into `loaded` (none when `dir` is empty) and checks
    /// the section. Each error names the file or the key.
    pub fn load(&mut self) -> Result<(), String> {
        self.loaded.clear();
        if self.dir.as_os_str().is_empty() {
            return self.check();
        }
        let dir = expand_home(&self.dir);
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            format!(
                "personas.dir {} cannot be read: {e} (make the folder, or leave personas.dir empty)",
                dir.display()
            )
        })?;
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(format!(
                "personas.dir {} has no persona files (*.toml); see config/personas/ for examples",
                dir.display()
            ));
        }
        for file in files {
            let persona = read(&file, &dir)?;
            self.loaded.push(persona);
        }
        self.check()
    }

    /// Checks what was loaded: names and wake phrases are unique, and `default` and `rooms`
    /// name loaded personas.
    pub fn check(&self) -> Result<(), String> {
        let mut seen: Vec<Vec<String>> = Vec::new();
        for p in &self.loaded {
            p.check()
                .map_err(|e| format!("persona {:?}: {e}", p.name))?;
            // Its bare name ("Brick, ...") picks it too.
            for address in p.addresses().into_iter().chain([words(&p.name)]) {
                if seen.contains(&address) {
                    return Err(format!(
                        "persona {:?}: {:?} already picks another persona (names and wake phrases must differ)",
                        p.name,
                        address.join(" ")
                    ));
                }
                seen.push(address);
            }
        }
        let known = |name: &str, key: &str| {
            if name.is_empty() || self.find(name).is_some() {
                Ok(())
            } else {
                Err(format!(
                    "{key} names the persona {name:?}, and personas.dir has none by that name (it has {:?})",
                    self.loaded.iter().map(|p| p.name.as_str()).collect::<Vec<_>>()
                ))
            }
        };
        known(&self.default, "personas.default")?;
        for (room, name) in &self.rooms {
            known(name, &format!("personas.rooms.{room}"))?;
        }
        Ok(())
    }

    /// The persona called `name` (in any case).
    pub fn find(&self, name: &str) -> Option<&Persona> {
        let name = name.trim().to_lowercase();
        self.loaded.iter().find(|p| p.name.to_lowercase() == name)
    }

    /// The persona of `room`: its own, else the default, else none.
    pub fn of_room(&self, room: &str) -> Option<&Persona> {
        let name = self.rooms.get(room).unwrap_or(&self.default);
        self.find(name)
    }

    /// Every persona's name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.loaded.iter().map(|p| p.name.as_str())
    }

    /// Every persona adapter, as (name, file, scale).
    pub fn adapters(&self) -> Vec<(String, PathBuf, f32)> {
        self.loaded
            .iter()
            .filter(|p| p.has_adapter())
            .map(|p| (p.name.clone(), p.adapter.clone(), p.adapter_scale))
            .collect()
    }

    /// Who answers `text` said in `room`: a persona it starts by addressing ("ask Brick",
    /// "hey Brick", "Brick, ...", a wake phrase), else the room's.
    pub fn pick(&self, room: &str, text: &str) -> Picked<'_> {
        let spans = word_spans(text);
        let lower: Vec<String> = spans
            .iter()
            .map(|&(a, b)| text[a..b].to_lowercase())
            .collect();
        // Words that may come first: "and ask Brick", "please, Brick, ...".
        let start = lower
            .iter()
            .take_while(|w| FILLERS.contains(&w.as_str()))
            .count();
        let rest = &lower[start..];
        let mut best: Option<(&Persona, usize)> = None;
        for p in &self.loaded {
            for address in p.addresses() {
                if rest.starts_with(&address) && best.is_none_or(|(_, n)| address.len() > n) {
                    best = Some((p, address.len()));
                }
            }
            // "Brick, what ...": the bare name, set off by punctuation (or alone).
            let name = words(&p.name);
            if !name.is_empty() && rest.starts_with(&name) && best.is_none() {
                let end = spans[start + name.len() - 1].1;
                let after = text[end..].trim_start();
                if after.is_empty() || after.starts_with([',', ':', ';', '!', '.', '?']) {
                    best = Some((p, name.len()));
                }
            }
        }
        // "Ask Rick, ...": speech to text mishears names. When no name was said as it is, a
        // name of five letters or more, one letter off after "ask" or "hey", is taken as said.
        if best.is_none() {
            if let [lead, heard, ..] = rest {
                best = (self.loaded.iter())
                    .find(|p| {
                        let name = p.name.to_lowercase();
                        name.chars().count() >= 5 && distance(heard, &name) == 1
                    })
                    .filter(|_| matches!(lead.as_str(), "ask" | "hey"))
                    .map(|p| (p, 2));
            }
        }
        // "Nova stop": a bare name before a control that names nothing ("stop", "never
        // mind", "forget that"). Not before a correction: "Brick ate three, not two" is about
        // someone called Brick.
        if best.is_none() {
            if let (Some(first), Some(&(_, end))) = (rest.first(), spans.get(start)) {
                use crate::controls::Control;
                let bare = |said: &str| {
                    matches!(
                        crate::controls::parse(said),
                        Some(Control::Stop | Control::ForgetLast | Control::ForgetAll)
                    )
                };
                best = (self.loaded.iter())
                    .find(|p| p.name.to_lowercase() == *first)
                    .filter(|_| bare(&text[end..]))
                    .map(|p| (p, 1));
            }
        }
        let Some((persona, n)) = best else {
            return self.called_last(text).unwrap_or(Picked {
                persona: self.of_room(room),
                addressed: false,
                request: None,
            });
        };
        let end = spans[start + n - 1].1;
        let mut request = text[end..]
            .trim_start_matches(|c: char| c.is_whitespace() || ",:;!.?-".contains(c))
            .to_string();
        // "ask Brick to tell me a joke": the request is "tell me a joke".
        if lower.get(start).is_some_and(|w| w == "ask") {
            if let Some(r) = request.strip_prefix("to ") {
                request = r.to_string();
            }
        }
        let request = request.trim();
        Picked {
            persona: Some(persona),
            addressed: true,
            request: words(request).first().map(|_| capitalised(request)),
        }
    }
}

impl PersonasConfig {
    /// "Stop, Nova.", "Thanks, Brick!": a persona's name at the end, after a comma, said as a
    /// name (capitalised, as speech to text writes names), and not the last of a list ("buy
    /// eggs, milk, sage").
    fn called_last(&self, text: &str) -> Option<Picked<'_>> {
        let &(a, b) = word_spans(text).last()?;
        let before = text[..a].trim_end();
        let after = text[b..].trim();
        let set_off = before.ends_with(',') && after.chars().all(|c| ".!?".contains(c));
        let list = before.trim_end_matches(',').contains(',');
        let named = text[a..b].starts_with(char::is_uppercase);
        let persona = self
            .find(&text[a..b])
            .filter(|_| set_off && named && !list)?;
        let request = format!("{}{after}", before.trim_end_matches(',').trim_end());
        Some(Picked {
            persona: Some(persona),
            addressed: true,
            request: words(&request).first().map(|_| capitalised(&request)),
        })
    }
}

/// Reads and checks one persona file; a relative adapter path is taken in `dir`.
fn read(file: &Path, dir: &Path) -> Result<Persona, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("persona file {} cannot be read: {e}", file.display()))?;
    let mut p: Persona = toml::from_str(&text)
        .map_err(|e| format!("persona file {} is invalid: {e}", file.display()))?;
    p.check()
        .map_err(|e| format!("persona file {}: {e}", file.display()))?;
    if p.has_adapter() {
        let path = expand_home(&p.adapter);
        p.adapter = if path.is_relative() {
            dir.join(path)
        } else {
            path
        };
    }
    Ok(p)
}

/// The byte spans of the words in `text`: letters and digits, with apostrophes and hyphens
/// inside a word ("Brick's", "brick-layer" are one word each).
fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(i, c)) in chars.iter().enumerate() {
        let joins = matches!(c, '\'' | '\u{2019}' | '-')
            && start.is_some()
            && chars.get(k + 1).is_some_and(|(_, n)| n.is_alphanumeric());
        let inside = c.is_alphanumeric() || joins;
        match (inside, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}

/// The lower-case words of `text`.
fn words(text: &str) -> Vec<String> {
    word_spans(text)
        .into_iter()
        .map(|(a, b)| text[a..b].to_lowercase())
        .collect()
}

/// The Levenshtein distance between `a` and `b`, in characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// `text` with its first letter in upper case.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persona(name: &str, wake: &str) -> Persona {
        Persona {
            name: name.into(),
            wake_phrase: wake.into(),
            codex: format!("You are {name}."),
            ..Persona::default()
        }
    }

    fn household() -> PersonasConfig {
        PersonasConfig {
            default: "Nova".into(),
            rooms: [("study".to_string(), "Brick".to_string())].into(),
            loaded: vec![persona("Brick", "yo brick"), persona("Nova", "")],
            ..PersonasConfig::default()
        }
    }

    #[test]
    fn a_request_that_addresses_a_persona_picks_it_for_that_turn() {
        let h = household();
        let pick = |room: &str, text: &str| {
            let p = h.pick(room, text);
            (p.persona.map(|p| p.name.as_str()), p.request)
        };
        // The room's own persona, or the default.
        assert_eq!(pick("study", "What time is it?"), (Some("Brick"), None));
        assert_eq!(pick("kitchen", "What time is it?"), (Some("Nova"), None));
        // Asked by name, in the words people use.
        for (text, request) in [
            (
                "Ask Brick what the capital of France is.",
                "What the capital of France is.",
            ),
            ("ask brick to tell me a joke", "Tell me a joke"),
            ("Hey Brick, how are you?", "How are you?"),
            ("Brick, how are you?", "How are you?"),
            ("And ask Brick: is it raining?", "Is it raining?"),
            ("Yo Brick! Play something.", "Play something."),
            // As whisper hears "Ask Brick, ...".
            ("ask Rick, what is the capital?", "What is the capital?"),
        ] {
            assert_eq!(
                pick("kitchen", text),
                (Some("Brick"), Some(request.to_string())),
                "{text}"
            );
        }
        // Called at the end, or before a control.
        for (text, who, request) in [
            ("Stop, Nova.", "Nova", "Stop."),
            ("Thanks, Brick!", "Brick", "Thanks!"),
            ("Nova stop", "Nova", "Stop"),
            ("brick never mind", "Brick", "Never mind"),
        ] {
            assert_eq!(
                pick("study", text),
                (Some(who), Some(request.to_string())),
                "{text}"
            );
        }
        assert_eq!(pick("kitchen", "I met Brick"), (Some("Nova"), None));
        assert_eq!(pick("kitchen", "Brick walls"), (Some("Nova"), None));
        // A list, a word that is not said as a name, or a correction about someone called so.
        assert_eq!(
            pick("study", "Buy eggs, milk, Nova."),
            (Some("Brick"), None)
        );
        assert_eq!(
            pick("study", "Look at the stars, nova."),
            (Some("Brick"), None)
        );
        assert_eq!(
            pick("kitchen", "Brick ate three biscuits, not two."),
            (Some("Nova"), None)
        );
        // Only the name: Brick answers the words as they were.
        assert_eq!(pick("kitchen", "Hey Brick"), (Some("Brick"), None));
        // A name inside a word, or one with no persona, picks nothing.
        assert_eq!(
            pick("kitchen", "Brick-by-brick, how?"),
            (Some("Nova"), None)
        );
        assert_eq!(pick("kitchen", "Hey Brick’s mate"), (Some("Nova"), None));
        assert_eq!(pick("kitchen", "OK, trick question."), (Some("Nova"), None));
        assert_eq!(
            pick("kitchen", "Brick walls keep the heat in?"),
            (Some("Nova"), None)
        );
        assert_eq!(
            pick("kitchen", "Tell Brick I said hi."),
            (Some("Nova"), None)
        );
        assert_eq!(pick("study", "Ask Bob about it."), (Some("Brick"), None));
        // A short name is not guessed at: "Ask Eva" is not Nova.
        assert_eq!(pick("study", "Ask Eva about it."), (Some("Brick"), None));
        assert_eq!(distance("rick", "brick"), 1);
        assert_eq!(distance("brick", "bricks"), 1);
        assert_eq!(distance("walls", "brick"), 5);
        assert_eq!(
            pick("study", "Ask Nova about it."),
            (Some("Nova"), Some("About it.".into()))
        );
        // No personas: no one.
        let none = PersonasConfig::default();
        assert_eq!(none.pick("kitchen", "Ask Brick.").persona, None);
    }

    #[test]
    fn the_codex_follows_the_roles_prompt_and_shrinks_with_an_adapter() {
        let mut p = persona("Brick", "");
        assert_eq!(
            p.system_prompt("Answer briefly."),
            "Answer briefly.\n\nYou are Brick."
        );
        assert_eq!(p.system_prompt(""), "You are Brick.");
        p.minimal_codex = "Brick.".into();
        assert_eq!(
            p.system_prompt("A."),
            "A.\n\nYou are Brick.",
            "no adapter yet"
        );
        p.adapter = "brick.gguf".into();
        assert_eq!(p.system_prompt("A."), "A.\n\nBrick.");
        let v = p.voice();
        assert_eq!((v.persona.as_str(), v.length_scale), ("Brick", None));
        // Training for the adapter replaces the codex with the minimal codex; Brick's adapter
        // takes the role's place, and with it the role's full prompt, not its minimal one.
        let mut roles = RolesConfig::default();
        roles.consciousness.system_prompt = "A.".into();
        assert_eq!(
            p.shortened(&roles, "built in"),
            Some(("A.\n\nYou are Brick.".into(), "A.\n\nBrick.".into()))
        );
        roles.consciousness.adapter = "role.gguf".into();
        roles.consciousness.minimal_prompt = "a.".into();
        assert_eq!(p.answer_prompt(&roles, "built in"), "A.\n\nBrick.");
        let plain = persona("Nova", "");
        assert_eq!(
            plain.answer_prompt(&roles, "built in"),
            "a.\n\nYou are Nova."
        );
        assert!(p.prompted("A.\n\nYou are Brick.\n\nSummary: ...") && p.prompted("A.\n\nBrick."));
        assert!(!persona("Nova", "").prompted("A.\n\nYou are Brick."));
        p.minimal_codex.clear();
        roles.consciousness.adapter = PathBuf::new();
        assert_eq!(p.shortened(&roles, "built in"), None);
    }

    #[test]
    fn the_shipped_examples_load() {
        let mut c = PersonasConfig {
            dir: Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/personas"),
            default: "Nova".into(),
            ..PersonasConfig::default()
        };
        c.load().unwrap();
        assert_eq!(c.names().collect::<Vec<_>>(), ["Brick", "Nova"]);
        let brick = c.find("brick").unwrap();
        assert!(brick.codex.contains("Right then"));
        assert_eq!(brick.voice().length_scale, Some(1.25));
        assert!(c.adapters().is_empty());
    }

    #[test]
    fn persona_files_load_and_their_mistakes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "brick.toml",
            "name = \"Brick\"\ncodex = \"You are Brick.\"\nadapter = \"brick.gguf\"\n\
             [voice]\nlength_scale = 1.6\n",
        );
        write("nova.toml", "name = \"Nova\"\n[voice]\nmodel = \"amy\"\n");
        write("notes.txt", "not a persona");
        let mut c = PersonasConfig {
            dir: dir.path().to_path_buf(),
            default: "nova".into(),
            ..PersonasConfig::default()
        };
        c.load().unwrap();
        assert_eq!(c.names().collect::<Vec<_>>(), ["Brick", "Nova"]);
        assert_eq!(
            c.adapters(),
            [("Brick".to_string(), dir.path().join("brick.gguf"), 1.0)]
        );
        assert_eq!(
            c.of_room("hall").unwrap().voice().model.as_deref(),
            Some("amy")
        );

        let fails = |c: &mut PersonasConfig, part: &str| {
            let err = c.load().unwrap_err();
            assert!(err.contains(part), "{part:?} not in {err}");
        };
        c.rooms.insert("hall".into(), "Bob".into());
        fails(&mut c, "personas.rooms.hall names the persona \"Bob\"");
        c.rooms.clear();
        write("twin.toml", "name = \"brick\"\n");
        fails(&mut c, "already picks another persona");
        write("twin.toml", "name = \"Twin\"\nwake_phrase = \"Brick\"\n");
        fails(&mut c, "\"brick\" already picks another persona");
        write("twin.toml", "name = \"Twin\"\nwake_phrase = \"hey\"\n");
        fails(&mut c, "starts many requests");
        write("twin.toml", "name = \"Big Brick\"\n");
        fails(&mut c, "one word");
        // A wake phrase that is one of its own addresses is no clash.
        write("twin.toml", "name = \"Twin\"\nwake_phrase = \"hey twin\"\n");
        c.load().unwrap();
        write(
            "twin.toml",
            "name = \"Twin\"\n[voice]\nlength_scale = 9.0\n",
        );
        fails(&mut c, "voice.length_scale");
        write("twin.toml", "name = \"Twin\"\nvoice_pitch = 2\n");
        fails(&mut c, "twin.toml is invalid");
        write("twin.toml", "name = \"\"\n");
        fails(&mut c, "twin.toml: name");
        std::fs::remove_file(dir.path().join("twin.toml")).unwrap();
        c.load().unwrap();
        c.dir = dir.path().join("missing");
        fails(&mut c, "cannot be read");
        // No folder: no personas, and a default naming one is an error.
        c.dir = PathBuf::new();
        fails(&mut c, "personas.default names the persona \"nova\"");
        c.default.clear();
        c.load().unwrap();
        assert!(c.loaded.is_empty());
    }
}
