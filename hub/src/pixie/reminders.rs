//! Reminders and timers: what the user asks for, recognised in code, and the sled store that
//! keeps them until they are said.
//!
//! A reminder is written (and flushed) before the hub confirms it, and it is marked said only
//! after its speech was handed to the MQTT client, so a hub killed at any point loses none.
//! The window between the two (a crash after publishing and before the mark) repeats it once;
//! the speech id is the same both times (`r{id}-{due}`), so a terminal can drop the repeat.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::phrase::{self, Repeat};

/// Whether it is a reminder ("remind me to ...") or a timer ("set a timer for 10 minutes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Says what to do.
    Reminder,
    /// Says that the time is up.
    Timer,
}

/// Where a reminder is in its life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// Waiting to fall due (or to be said).
    Pending,
    /// Said (a repeating reminder stays pending with its next time instead).
    Said {
        /// When, in ms since the epoch.
        at_ms: u64,
        /// In which room.
        room: String,
        /// Whether it was said late (the hub was down when it fell due).
        late: bool,
    },
    /// Cancelled by the user.
    Cancelled {
        /// When, in ms since the epoch.
        at_ms: u64,
    },
}

/// One reminder, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reminder {
    /// Unique in the store.
    pub id: u64,
    /// Reminder or timer.
    pub kind: Kind,
    /// What to remind of, in the second person ("water your plants"); for a timer, how long
    /// it was set for ("10 minutes").
    pub what: String,
    /// The time phrase as said ("tomorrow at 8").
    pub when_said: String,
    /// When it is next due, in ms since the epoch.
    pub due_ms: u64,
    /// How it repeats.
    pub repeat: Option<Repeat>,
    /// The rooms it was asked for ("in the kitchen"); empty: wherever the user is.
    pub rooms: Vec<String>,
    /// The room it was set in.
    pub set_in: String,
    /// When it was set, in ms since the epoch.
    pub created_ms: u64,
    /// How much it may interrupt, 0 to 1 (see `interrupt`).
    pub urgency: f32,
    /// Pending, said or cancelled.
    pub state: State,
}

impl Reminder {
    /// The words to say when it falls due.
    pub fn spoken(&self, late_by_ms: Option<u64>) -> String {
        let body = match self.kind {
            Kind::Reminder => format!("Reminder: {}.", self.what.trim_end_matches('.')),
            Kind::Timer => format!("Your {} timer is done.", self.what),
        };
        match late_by_ms {
            Some(ms) => format!(
                "{body} This is late: it was due {} ago, while I was away.",
                spoken_duration(ms)
            ),
            None => body,
        }
    }
}

/// "3 minutes", "2 hours", "1 day".
pub fn spoken_duration(ms: u64) -> String {
    let minutes = ms / 60_000;
    let (n, unit) = if minutes < 1 {
        (ms / 1000, "second")
    } else if minutes < 120 {
        (minutes, "minute")
    } else if minutes < 48 * 60 {
        (minutes / 60, "hour")
    } else {
        (minutes / (24 * 60), "day")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A reminder to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReminder {
    /// Reminder or timer.
    pub kind: Kind,
    /// What to remind of, second person.
    pub what: String,
    /// The time phrase as said.
    pub when_said: String,
    /// The first due time.
    pub due_ms: u64,
    /// How it repeats.
    pub repeat: Option<Repeat>,
    /// Rooms asked for; empty for wherever the user is.
    pub rooms: Vec<String>,
    /// Where it was set.
    pub set_in: String,
    /// When it was set.
    pub created_ms: u64,
    /// How much it may interrupt.
    pub urgency: f32,
}

/// Why the reminder store failed.
#[derive(Debug, thiserror::Error)]
pub enum ReminderError {
    /// sled failed (a full disk, a damaged file, a second process holding the lock).
    #[error("reminder store: {0}")]
    Storage(#[from] sled::Error),
    /// A stored record does not decode.
    #[error("reminder {id} is damaged: {source}")]
    Damaged {
        /// Its key.
        id: u64,
        /// What serde said.
        source: serde_json::Error,
    },
}

/// The reminder store: one sled database, flushed after every write.
#[derive(Debug, Clone)]
pub struct Reminders {
    db: sled::Db,
    tree: sled::Tree,
}

impl Reminders {
    /// Opens (or creates) the store in `path`.
    pub fn open(path: &Path) -> Result<Reminders, ReminderError> {
        let db = crate::memory::store::open_db(path)?;
        let tree = db.open_tree("reminders")?;
        Ok(Reminders { db, tree })
    }

    /// The database, shared with Pixie's task queue.
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Stores a new reminder, durably, and returns it.
    pub fn add(&self, new: NewReminder) -> Result<Reminder, ReminderError> {
        let reminder = Reminder {
            id: crate::memory::store::next_id(&self.db)?,
            kind: new.kind,
            what: new.what,
            when_said: new.when_said,
            due_ms: new.due_ms,
            repeat: new.repeat,
            rooms: new.rooms,
            set_in: new.set_in,
            created_ms: new.created_ms,
            urgency: new.urgency,
            state: State::Pending,
        };
        self.put(&reminder)?;
        Ok(reminder)
    }

    fn put(&self, r: &Reminder) -> Result<(), ReminderError> {
        let value = serde_json::to_vec(r).expect("a reminder always serialises");
        self.tree.insert(r.id.to_be_bytes(), value)?;
        self.db.flush()?;
        Ok(())
    }

    /// Every reminder, oldest first. A damaged record is logged and skipped, never fatal.
    pub fn all(&self) -> Result<Vec<Reminder>, ReminderError> {
        let mut out = Vec::new();
        for item in self.tree.iter() {
            let (key, value) = item?;
            let id = u64::from_be_bytes(key.as_ref().try_into().unwrap_or([0; 8]));
            match serde_json::from_slice::<Reminder>(&value) {
                Ok(r) => out.push(r),
                Err(source) => {
                    tracing::error!(error = %ReminderError::Damaged { id, source }, "skipping a damaged reminder")
                }
            }
        }
        Ok(out)
    }

    /// Pending reminders, soonest first.
    pub fn pending(&self) -> Result<Vec<Reminder>, ReminderError> {
        let mut out: Vec<Reminder> = self
            .all()?
            .into_iter()
            .filter(|r| r.state == State::Pending)
            .collect();
        out.sort_by_key(|r| (r.due_ms, r.id));
        Ok(out)
    }

    /// Pending reminders due at `now_ms` or before.
    pub fn due(&self, now_ms: u64) -> Result<Vec<Reminder>, ReminderError> {
        let mut due = self.pending()?;
        due.retain(|r| r.due_ms <= now_ms);
        Ok(due)
    }

    /// Records that `r` was said in `room` at `now_ms`: a one-off is done, a repeating one
    /// moves to its next time after now (occurrences missed while the hub was down are said
    /// once, not once each).
    pub fn said(
        &self,
        r: &Reminder,
        room: &str,
        now_ms: u64,
        late: bool,
        tz: &jiff::tz::TimeZone,
    ) -> Result<Reminder, ReminderError> {
        let mut r = r.clone();
        match r
            .repeat
            .and_then(|rep| rep.next_after(now_ms.max(r.due_ms), tz))
        {
            Some(next) => r.due_ms = next,
            None => {
                r.state = State::Said {
                    at_ms: now_ms,
                    room: room.to_string(),
                    late,
                }
            }
        }
        self.put(&r)?;
        Ok(r)
    }

    /// Cancels a pending reminder; `false` when there is none with that id.
    pub fn cancel(&self, id: u64, now_ms: u64) -> Result<bool, ReminderError> {
        let Some(mut r) = self.pending()?.into_iter().find(|r| r.id == id) else {
            return Ok(false);
        };
        r.state = State::Cancelled { at_ms: now_ms };
        self.put(&r)?;
        Ok(true)
    }
}

/// What the user asked of reminders, recognised in code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Set one: `what` and `when` split by the time-phrase parser.
    Set {
        /// Reminder or timer.
        kind: Kind,
        /// What to remind of, second person.
        what: String,
        /// The time phrase.
        when: String,
        /// Rooms named ("in the kitchen").
        rooms: Vec<String>,
    },
    /// A reminder request whose time the parser could not find; the language model splits it.
    Unsplit {
        /// What followed "remind me".
        body: String,
        /// Rooms named.
        rooms: Vec<String>,
    },
    /// "What are my reminders?"
    List,
    /// "Cancel the reminder to water the plants", "cancel all reminders", "cancel the timer".
    Cancel {
        /// Words naming the one to cancel; `None` for all of them.
        about: Option<String>,
        /// Whether only timers are meant.
        timers: bool,
    },
}

const ADDRESS: &[&str] = &[
    "please", "hey", "hearth", "ok", "okay", "now", "could", "can", "would", "you",
];

/// Lower-case words without punctuation (apostrophes kept).
fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'' && c != ':')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Recognises a reminder request; `None` for everything else. `rooms` are the rooms the hub
/// knows, so that "in the kitchen" is a room and "in the morning" is not.
pub fn parse_request(text: &str, rooms: &[String]) -> Option<Request> {
    let all = words(text);
    let start = all
        .iter()
        .position(|w| !ADDRESS.contains(&w.as_str()))
        .unwrap_or(all.len());
    let w = &all[start..];
    let phrase = w.join(" ");
    let has = |s: &str| phrase.contains(s);
    let mentions_reminders = has("reminder") || has("timer") || has("alarm");
    // Listing.
    if mentions_reminders
        && (phrase.starts_with("what")
            || phrase.starts_with("which")
            || phrase.starts_with("list")
            || phrase.starts_with("do i have")
            || phrase.starts_with("tell me my")
            || phrase.starts_with("read"))
    {
        return Some(Request::List);
    }
    // Cancelling.
    if mentions_reminders
        && matches!(
            w.first().map(String::as_str),
            Some("cancel" | "delete" | "remove" | "stop" | "clear")
        )
    {
        let timers = has("timer") && !has("reminder");
        let all_of_them = has("all") || has("every");
        let about = phrase
            .split_once(" to ")
            .or_else(|| phrase.split_once(" about "))
            .or_else(|| phrase.split_once(" for "))
            .map(|(_, rest)| rest.trim().to_string())
            .filter(|s| !s.is_empty());
        return Some(Request::Cancel {
            about: if all_of_them {
                None
            } else {
                about.or(Some(String::new()))
            },
            timers,
        });
    }
    // Timers: "set a timer for 10 minutes", "timer for 5 minutes", "start a 10 minute timer".
    let timer_body = phrase
        .strip_prefix("set a timer for ")
        .or_else(|| phrase.strip_prefix("set a timer ")) // "set a timer in 10 minutes"
        .or_else(|| phrase.strip_prefix("start a timer for "))
        .or_else(|| phrase.strip_prefix("timer for "));
    if let Some(body) = timer_body {
        let (body, named) = take_rooms(body, rooms);
        let when = if body.starts_with("in ") || body.starts_with("for ") {
            body.clone()
        } else {
            format!("in {body}")
        };
        let what = body
            .trim_start_matches("in ")
            .trim_start_matches("for ")
            .to_string();
        return Some(Request::Set {
            kind: Kind::Timer,
            what: what.trim_end_matches('s').to_string(),
            when,
            rooms: named,
        });
    }
    let body = [
        "remind me ",
        "remind us ",
        "set a reminder ",
        "set a reminder for me ",
    ]
    .iter()
    .find_map(|p| phrase.strip_prefix(p))?;
    let (body, named) = take_rooms(body, rooms);
    let body_words: Vec<&str> = body.split_whitespace().collect();
    let n = body_words.len();
    let lead = |s: &str| {
        for p in ["to ", "that ", "about ", "of "] {
            if let Some(rest) = s.strip_prefix(p) {
                return rest.to_string();
            }
        }
        s.to_string()
    };
    let parses = |ws: &[&str]| {
        // Any instant will do: only whether the words are a time phrase matters here.
        let phrase = ws.join(" ");
        !matches!(
            phrase::parse(&phrase, 1_800_000_000_000, &jiff::tz::TimeZone::UTC),
            Err(phrase::PhraseError::Unknown(_))
        )
    };
    // "to water the plants tomorrow at 8": the longest time phrase at the end.
    for i in 1..n {
        if parses(&body_words[i..]) {
            let what = lead(&body_words[..i].join(" "));
            if !what.is_empty() {
                return Some(Request::Set {
                    kind: Kind::Reminder,
                    what: second_person(&what),
                    when: body_words[i..].join(" "),
                    rooms: named,
                });
            }
        }
    }
    // "tomorrow at 8 to water the plants": the longest time phrase at the start.
    for i in (1..n).rev() {
        if matches!(body_words[i], "to" | "that" | "about") && parses(&body_words[..i]) {
            let what = body_words[i + 1..].join(" ");
            if !what.is_empty() {
                return Some(Request::Set {
                    kind: Kind::Reminder,
                    what: second_person(&what),
                    when: body_words[..i].join(" "),
                    rooms: named,
                });
            }
        }
    }
    Some(Request::Unsplit { body, rooms: named })
}

/// Takes "in the kitchen", "in the study and the kitchen", "everywhere" / "in every room"
/// out of a request; returns the rest and the rooms (all of `known` for everywhere).
fn take_rooms(body: &str, known: &[String]) -> (String, Vec<String>) {
    let mut named = Vec::new();
    let mut out: Vec<&str> = Vec::new();
    let ws: Vec<&str> = body.split_whitespace().collect();
    let mut i = 0;
    let is_room = |w: &str| known.iter().any(|r| r.eq_ignore_ascii_case(w));
    while i < ws.len() {
        if ws[i] == "everywhere" || ws[i..].starts_with(&["in", "every", "room"]) {
            named = known.to_vec();
            i += if ws[i] == "everywhere" { 1 } else { 3 };
            continue;
        }
        if matches!(ws[i], "in" | "and") {
            let k = i + 1 + usize::from(ws.get(i + 1) == Some(&"the"));
            if let Some(room) = ws.get(k).filter(|w| is_room(w)) {
                if ws[i] == "in" || !named.is_empty() {
                    named.push(room.to_string());
                    i = k + 1;
                    continue;
                }
            }
        }
        out.push(ws[i]);
        i += 1;
    }
    named.dedup();
    (out.join(" "), named)
}

/// "call my sister" -> "call your sister".
pub fn second_person(text: &str) -> String {
    text.split_whitespace()
        .map(|w| match w {
            "i" | "me" | "we" | "us" => "you",
            "my" | "our" => "your",
            "mine" | "ours" => "yours",
            "myself" | "ourselves" => "yourself",
            "i'm" | "we're" => "you're",
            "i've" | "we've" => "you've",
            "i'll" | "we'll" => "you'll",
            "am" => "are",
            w => w,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The JSON schema the language model fills when the parser cannot split a request.
pub fn split_schema() -> serde_json::Value {
    serde_json::json!({
        "type": "object",
        "properties": {
            "what": { "type": "string", "maxLength": 120 },
            "when": { "type": "string", "maxLength": 60 }
        },
        "required": ["what", "when"],
        "additionalProperties": false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rooms() -> Vec<String> {
        vec!["kitchen".into(), "study".into()]
    }

    fn set(kind: Kind, what: &str, when: &str, rooms: &[&str]) -> Option<Request> {
        Some(Request::Set {
            kind,
            what: what.into(),
            when: when.into(),
            rooms: rooms.iter().map(|r| r.to_string()).collect(),
        })
    }

    #[test]
    fn requests_are_recognised_and_split() {
        use Kind::*;
        let table = [
            (
                "Remind me to water the plants tomorrow at 8.",
                set(Reminder, "water the plants", "tomorrow at 8", &[]),
            ),
            (
                "Hey Hearth, remind me tomorrow at 8 to call my sister",
                set(Reminder, "call your sister", "tomorrow at 8", &[]),
            ),
            (
                "remind me in the kitchen to take my pills every day at 9 am",
                set(
                    Reminder,
                    "take your pills",
                    "every day at 9 am",
                    &["kitchen"],
                ),
            ),
            (
                "Remind me to feed the cat in 20 minutes in the study",
                set(Reminder, "feed the cat", "in 20 minutes", &["study"]),
            ),
            (
                "remind us about the bins every Monday at 7 pm everywhere",
                set(
                    Reminder,
                    "the bins",
                    "every monday at 7 pm",
                    &["kitchen", "study"],
                ),
            ),
            (
                "Set a timer for 10 minutes",
                set(Timer, "10 minute", "in 10 minutes", &[]),
            ),
            (
                "Remind me to do the thing at some point",
                Some(Request::Unsplit {
                    body: "to do the thing at some point".into(),
                    rooms: vec![],
                }),
            ),
            ("What are my reminders?", Some(Request::List)),
            ("do I have any timers", Some(Request::List)),
            (
                "Cancel the reminder to water the plants",
                Some(Request::Cancel {
                    about: Some("water the plants".into()),
                    timers: false,
                }),
            ),
            (
                "cancel all my reminders",
                Some(Request::Cancel {
                    about: None,
                    timers: false,
                }),
            ),
            (
                "stop the timer",
                Some(Request::Cancel {
                    about: Some(String::new()),
                    timers: true,
                }),
            ),
            ("What time is it?", None),
            ("I reminded him yesterday", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_request(text, &rooms()), want, "{text:?}");
        }
    }

    /// Issue 16: this panicked in the time-phrase parser, which `parse_request` asks whether
    /// the words at the end are a time.
    #[test]
    fn a_request_too_far_ahead_is_still_split() {
        assert_eq!(
            parse_request("remind me to call Anna in 8000000 days", &rooms()),
            set(Kind::Reminder, "call anna", "in 8000000 days", &[])
        );
    }

    #[test]
    fn the_store_keeps_reminders_across_a_reopen_and_repeats_move_on() {
        let dir = tempfile::tempdir().unwrap();
        let tz = jiff::tz::TimeZone::UTC;
        let new = |what: &str, due_ms, repeat| NewReminder {
            kind: Kind::Reminder,
            what: what.into(),
            when_said: "x".into(),
            due_ms,
            repeat,
            rooms: vec![],
            set_in: "kitchen".into(),
            created_ms: 0,
            urgency: 0.7,
        };
        let (once, daily) = {
            let store = Reminders::open(dir.path()).unwrap();
            let once = store.add(new("water the plants", 1_000, None)).unwrap();
            let daily = store
                .add(new(
                    "stretch",
                    2_000,
                    Some(Repeat::Every { ms: 86_400_000 }),
                ))
                .unwrap();
            (once, daily)
        };
        let store = Reminders::open(dir.path()).unwrap();
        assert_eq!(store.due(1_500).unwrap(), std::slice::from_ref(&once));
        assert_eq!(store.due(5_000).unwrap().len(), 2);
        store.said(&once, "study", 5_000, true, &tz).unwrap();
        let moved = store.said(&daily, "study", 5_000, false, &tz).unwrap();
        assert_eq!(moved.due_ms, 5_000 + 86_400_000);
        assert!(store.due(5_000).unwrap().is_empty());
        assert_eq!(store.pending().unwrap(), std::slice::from_ref(&moved));
        assert!(store.cancel(moved.id, 6_000).unwrap());
        assert!(!store.cancel(moved.id, 6_000).unwrap());
        assert!(store.pending().unwrap().is_empty());
        assert_eq!(store.all().unwrap().len(), 2);
    }

    #[test]
    fn speech_says_late_and_timers_say_done() {
        let r = Reminder {
            id: 1,
            kind: Kind::Reminder,
            what: "water your plants".into(),
            when_said: "at 8".into(),
            due_ms: 0,
            repeat: None,
            rooms: vec![],
            set_in: "kitchen".into(),
            created_ms: 0,
            urgency: 0.7,
            state: State::Pending,
        };
        assert_eq!(r.spoken(None), "Reminder: water your plants.");
        assert_eq!(
            r.spoken(Some(3 * 3_600_000)),
            "Reminder: water your plants. This is late: it was due 3 hours ago, while I was away."
        );
        let t = Reminder {
            kind: Kind::Timer,
            what: "10 minute".into(),
            ..r
        };
        assert_eq!(t.spoken(None), "Your 10 minute timer is done.");
    }
}
