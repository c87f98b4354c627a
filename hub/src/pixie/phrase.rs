//! Spoken time phrases ("tomorrow at 8", "in 20 minutes", "every Monday at 7 pm") turned into
//! instants in the household's time zone.
//!
//! The parser is deterministic and knows the common phrasings; the language model is asked
//! only when it does not (see `reminders::extract`), and what the model writes is parsed here
//! again. Wall-clock times ("at 8") are resolved in the zone, so they stay at 8 across a DST
//! change; durations ("in 3 hours") are added to the instant, so they are 3 real hours. A time
//! that falls in a DST gap moves forward by the gap; one that falls in a fold takes the
//! earlier instant (RFC 5545's rule, jiff's `compatible`).
//!
//! Where a phrase is ambiguous the parser picks, and says what it picked in
//! [`Due::assumed`], so that the spoken confirmation names it ("at 8 pm"):
//! - a bare hour from 1 to 12 ("at 8") is the next such time when no day is named (8 am or
//!   8 pm, whichever comes first), and on a named day 7 to 11 are morning, 12 is noon and 1
//!   to 6 are afternoon;
//! - "next Friday" is the Friday after the coming one only when the coming one is today, so
//!   on a Wednesday it is the same as "on Friday";
//! - a day without a time is at `DEFAULT_HOUR`, a part of the day at its own hour;
//! - "in 3 days", "in a week" and "a week from today" count days on the calendar and are at
//!   `DEFAULT_HOUR` too, "in a month" is the same day of the month (the last day where the
//!   month is shorter), and "next month" is its 1st, as "next week" is its Monday;
//! - "this time tomorrow" and "this time next week" are at the current time of day;
//! - the small hours of a night ("tonight at 2", "Friday night at 1 am") are early the next
//!   day, except that "tonight" said in the small hours is the night that is on now;
//! - "first thing" is at 8 am, "the end of the day" at 5 pm and, with no day named, today;
//! - "later" is today: "later at 8" is whichever 8 is still to come today.

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Span, Timestamp, ToSpan, Zoned};
use serde::{Deserialize, Serialize};

use super::spoken::{month_name, spoken_clock, spoken_date};

/// The hour of a reminder for a named day without a time ("remind me on Friday").
pub const DEFAULT_HOUR: i8 = 9;

/// The hour at which the small hours of a night end: "tonight at 2" is on the next day's
/// date, "tonight at 7" is not.
const SMALL_HOURS_END: i8 = 6;

/// How a reminder repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Repeat {
    /// A fixed interval of real time: "every 2 hours".
    Every {
        /// The interval in ms.
        ms: u64,
    },
    /// Days of the week at a wall-clock time: "every weekday at 7".
    Days {
        /// Bit 0 is Monday, bit 6 is Sunday.
        mask: u8,
        /// Hour, 0 to 23.
        hour: i8,
        /// Minute, 0 to 59.
        minute: i8,
    },
}

/// When something is due.
#[derive(Debug, Clone, PartialEq)]
pub struct Due {
    /// The first instant, in ms since the Unix epoch.
    pub at_ms: u64,
    /// How it repeats, if it does.
    pub repeat: Option<Repeat>,
    /// What the parser assumed, in words, for the confirmation ("8 pm").
    pub assumed: Vec<String>,
    /// Whether the phrase was a duration from now ("in 20 minutes") rather than a time of
    /// day: a timer.
    pub relative: bool,
}

/// Why a phrase gives no instant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhraseError {
    /// The phrasing is not one the parser knows.
    #[error("I don't know when {0:?} is")]
    Unknown(String),
    /// The phrase names a time that has gone.
    #[error("{0} has already passed")]
    Past(String),
    /// The phrase names a date that does not exist.
    #[error("there is no {0}")]
    NoSuchDate(String),
    /// The phrase names a day but no time, and the day is today.
    #[error("I need a time for today")]
    NoTime,
    /// The phrase names a time past the end of the calendar (the year 9999), or a number
    /// too large to count with ("in 8000000 days").
    #[error("that is too far ahead")]
    TooFar,
}

/// Parses `phrase` (only the time part: "tomorrow at 8") relative to `now_ms` in `tz`.
pub fn parse(phrase: &str, now_ms: u64, tz: &TimeZone) -> Result<Due, PhraseError> {
    let words = tokens(phrase);
    let unknown = || PhraseError::Unknown(phrase.trim().to_string());
    if words.is_empty() {
        return Err(unknown());
    }
    let parts = Parts::read(&words).ok_or_else(unknown)?;
    let now = i64::try_from(now_ms)
        .ok()
        .and_then(|ms| Timestamp::from_millisecond(ms).ok())
        .ok_or_else(unknown)?
        .to_zoned(tz.clone());
    parts.resolve(&now, tz).map_err(|e| match e {
        PhraseError::Unknown(_) => unknown(),
        e => e,
    })
}

/// Lower case words; "8am" and "8.30pm" are split into "8" "am" and "8:30" "pm".
pub(crate) fn tokens(text: &str) -> Vec<String> {
    let t = text
        .to_lowercase()
        .replace("a.m.", "am")
        .replace("p.m.", "pm")
        .replace("o'clock", "oclock")
        .replace("o clock", "oclock");
    let mut out = Vec::new();
    for raw in t.split(|c: char| c.is_whitespace() || matches!(c, ',' | '!' | '?' | ';' | '-')) {
        let w = raw.trim_matches(|c: char| !c.is_alphanumeric());
        if w.is_empty() {
            continue;
        }
        let w = if w.starts_with(|c: char| c.is_ascii_digit()) {
            w.replace('.', ":")
        } else {
            w.to_string()
        };
        match w
            .strip_suffix("am")
            .map(|n| (n, "am"))
            .or_else(|| w.strip_suffix("pm").map(|n| (n, "pm")))
        {
            Some((n, m)) if !n.is_empty() && n.starts_with(|c: char| c.is_ascii_digit()) => {
                out.push(n.to_string());
                out.push(m.to_string());
            }
            _ => out.push(w),
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum DaySpec {
    Today,
    Tomorrow,
    /// Months, then days, on the calendar from today.
    Ahead {
        months: i64,
        days: i64,
    },
    Weekday {
        day: Weekday,
        next: bool,
    },
    Date {
        month: Option<i8>,
        day: i8,
    },
    NextWeek,
    Weekend,
    /// A day of next month, its 1st when none is named.
    NextMonth {
        day: Option<i8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Meridiem {
    Am,
    Pm,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Clock {
    /// 0 to 23, or 24 for midnight at the end of the day.
    hour: i8,
    minute: i8,
    meridiem: Option<Meridiem>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum PartOfDay {
    Morning,
    Afternoon,
    Evening,
    Night,
    /// "first thing": early in the morning.
    FirstThing,
    /// "by the end of the day": the end of the working day.
    EndOfDay,
}

impl PartOfDay {
    fn hour(self) -> i8 {
        match self {
            PartOfDay::Morning => 9,
            PartOfDay::Afternoon => 15,
            PartOfDay::Evening => 19,
            PartOfDay::Night => 21,
            PartOfDay::FirstThing => 8,
            PartOfDay::EndOfDay => 17,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Every {
    Interval(u64),
    Days(u8),
}

/// A duration from now: real time, and whole days and months on the calendar.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Offset {
    /// Real time, in ms.
    ms: u64,
    /// Whole days.
    days: i64,
    /// Whole months.
    months: i64,
}

impl Offset {
    /// Whether it counts days or months on the calendar.
    fn civil(&self) -> bool {
        self.days > 0 || self.months > 0
    }
}

/// The pieces of a phrase, each at most once.
#[derive(Debug, Default)]
struct Parts {
    /// A duration from now.
    offset: Option<Offset>,
    day: Option<DaySpec>,
    clock: Option<Clock>,
    part: Option<PartOfDay>,
    every: Option<Every>,
    /// "this time tomorrow": the clock is now's, filled in when resolved.
    same_time: bool,
    /// "later today", "later at 8": today, and a bare hour is the one still to come.
    later: bool,
}

pub(super) const HOUR_MS: u64 = 3_600_000;
pub(super) const WEEKDAYS: u8 = 0b001_1111;
pub(super) const WEEKEND: u8 = 0b110_0000;
pub(super) const ALL_DAYS: u8 = 0b111_1111;

fn weekday(w: &str) -> Option<Weekday> {
    let w = w.strip_suffix('s').unwrap_or(w);
    Some(match w {
        "monday" | "mon" => Weekday::Monday,
        "tuesday" | "tue" | "tues" => Weekday::Tuesday,
        "wednesday" | "wed" => Weekday::Wednesday,
        "thursday" | "thu" | "thurs" => Weekday::Thursday,
        "friday" | "fri" => Weekday::Friday,
        "saturday" | "sat" => Weekday::Saturday,
        "sunday" | "sun" => Weekday::Sunday,
        _ => return None,
    })
}

fn bit(day: Weekday) -> u8 {
    1 << day.to_monday_zero_offset()
}

fn month(w: &str) -> Option<i8> {
    crate::memory::when::MONTHS
        .iter()
        .position(|m| *m == w || (w.len() >= 3 && m.starts_with(w)))
        .map(|i| i as i8 + 1)
}

/// A small number in digits or words ("7", "twenty five", "a"); returns it and the words used.
fn number(words: &[String]) -> Option<(f64, usize)> {
    let first = words.first()?;
    if let Ok(n) = first.parse::<u32>() {
        return Some((n as f64, 1));
    }
    const UNITS: [&str; 20] = [
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
    const TENS: [&str; 4] = ["twenty", "thirty", "forty", "fifty"];
    if let Some(n) = UNITS.iter().position(|u| u == first) {
        return Some((n as f64, 1));
    }
    if let Some(t) = TENS.iter().position(|u| u == first) {
        let tens = (t as f64 + 2.0) * 10.0;
        if let Some(u) = words
            .get(1)
            .and_then(|w| UNITS[1..10].iter().position(|u| u == w))
        {
            return Some((tens + u as f64 + 1.0, 2));
        }
        return Some((tens, 1));
    }
    match first.as_str() {
        "a" | "an" => match words.get(1).map(String::as_str) {
            Some("couple") => Some((
                2.0,
                2 + usize::from(words.get(2).is_some_and(|w| w == "of")),
            )),
            Some("few") => Some((3.0, 2)),
            _ => Some((1.0, 1)),
        },
        "couple" => Some((
            2.0,
            1 + usize::from(words.get(1).is_some_and(|w| w == "of")),
        )),
        "few" => Some((3.0, 1)),
        "half" => Some((
            0.5,
            1 + usize::from(words.get(1).is_some_and(|w| w == "an" || w == "a")),
        )),
        _ => None,
    }
}

/// An ordinal day of the month: "5", "5th", "fifth" is not supported (rare in speech to a
/// terminal's transcriber, which writes digits).
fn ordinal(w: &str) -> Option<i8> {
    let digits = ["st", "nd", "rd", "th"]
        .iter()
        .find_map(|s| w.strip_suffix(s))
        .unwrap_or(w);
    digits.parse::<i8>().ok().filter(|d| (1..=31).contains(d))
}

/// A unit of time.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unit {
    /// Real time, in ms.
    Real(u64),
    /// Days on the calendar.
    Days(i64),
    /// Months on the calendar.
    Months(i64),
}

fn unit(w: &str) -> Option<Unit> {
    Some(match w {
        "second" | "seconds" | "sec" | "secs" => Unit::Real(1_000),
        "minute" | "minutes" | "min" | "mins" => Unit::Real(60_000),
        "hour" | "hours" | "hr" | "hrs" => Unit::Real(HOUR_MS),
        "day" | "days" => Unit::Days(1),
        "week" | "weeks" => Unit::Days(7),
        "fortnight" | "fortnights" => Unit::Days(14),
        "month" | "months" => Unit::Months(1),
        "year" | "years" => Unit::Months(12),
        _ => return None,
    })
}

/// "3 hours", "an hour and a half", "1 hour and 20 minutes", "a fortnight": the offset and
/// words used.
fn duration(words: &[String]) -> Option<(Offset, usize)> {
    let (mut d, mut i) = (Offset::default(), 0);
    loop {
        let (n, used) = number(&words[i..])?;
        let unit = unit(words.get(i + used)?)?;
        i += used + 1;
        let mut n = n;
        // "an hour and a half"
        if words[i..].starts_with(&["and".into(), "a".into(), "half".into()]) {
            n += 0.5;
            i += 3;
        }
        // Saturating: a sum past any calendar is too far ahead when it is resolved, and a
        // float cast to an integer saturates too.
        match unit {
            Unit::Real(ms) => d.ms = d.ms.saturating_add((n * ms as f64) as u64),
            // "a day and a half": real time.
            Unit::Days(days) if n.fract() != 0.0 => {
                d.ms =
                    d.ms.saturating_add((n * days as f64 * 24.0 * HOUR_MS as f64) as u64);
            }
            Unit::Days(days) => d.days = d.days.saturating_add((n as i64).saturating_mul(days)),
            // "half a month" has no one length.
            Unit::Months(_) if n.fract() != 0.0 => return None,
            Unit::Months(months) => {
                d.months = d.months.saturating_add((n as i64).saturating_mul(months))
            }
        }
        // "1 hour and 20 minutes"
        if words.get(i).is_some_and(|w| w == "and") && number(&words[i + 1..]).is_some() {
            i += 1;
            continue;
        }
        return Some((d, i));
    }
}

/// What makes a duration one from now when it comes after it: "from now", "later", and for
/// whole days "from today", "from tomorrow", "today" ("a week today") and "tomorrow" ("a
/// week tomorrow"). Returns the offset and the words used after the duration.
fn from_now(d: Offset, words: &[String]) -> Option<(Offset, usize)> {
    let w = |k: usize| words.get(k).map(String::as_str);
    let whole_days = d.ms == 0;
    let from = usize::from(w(0) == Some("from"));
    match w(from) {
        Some("today") if whole_days => Some((d, from + 1)),
        Some("tomorrow") if whole_days => Some((
            Offset {
                days: d.days.saturating_add(1),
                ..d
            },
            from + 1,
        )),
        Some("now") if from == 1 => Some((d, 2)),
        _ if from == 1 => Some((d, 1)),
        Some("later") => Some((d, 1)),
        _ => None,
    }
}

/// "this time", "at this time", "the same time", "at the same time": words used.
fn same_time(words: &[String]) -> Option<usize> {
    let w = |k: usize| words.get(k).map(String::as_str);
    let mut k = usize::from(matches!(w(0), Some("at" | "by")));
    k += usize::from(w(k) == Some("the") && w(k + 1) == Some("same"));
    (matches!(w(k), Some("this" | "same")) && w(k + 1) == Some("time")).then_some(k + 2)
}

/// "by the end of the day", "at the end of today", "end of day": words used.
fn end_of_day(words: &[String]) -> Option<usize> {
    let w = |k: usize| words.get(k).map(String::as_str);
    let mut k = usize::from(matches!(w(0), Some("by" | "at" | "before")));
    k += usize::from(w(k) == Some("the"));
    if w(k) != Some("end") || w(k + 1) != Some("of") {
        return None;
    }
    k += 2;
    match w(k) {
        Some("day" | "today") => Some(k + 1),
        Some("the") if w(k + 1) == Some("day") => Some(k + 2),
        _ => None,
    }
}

fn part_of_day(w: &str) -> Option<PartOfDay> {
    Some(match w {
        "morning" => PartOfDay::Morning,
        "afternoon" => PartOfDay::Afternoon,
        "evening" => PartOfDay::Evening,
        "night" => PartOfDay::Night,
        _ => return None,
    })
}

fn clock_value(words: &[String]) -> Option<(Clock, usize)> {
    let w = |i: usize| words.get(i).map(String::as_str);
    let plain = |hour: i8, minute: i8| Clock {
        hour,
        minute,
        meridiem: None,
    };
    let (mut clock, mut used) = match w(0)? {
        "noon" | "midday" => (
            Clock {
                hour: 12,
                minute: 0,
                meridiem: Some(Meridiem::Pm),
            },
            1,
        ),
        "midnight" => (
            Clock {
                hour: 24,
                minute: 0,
                meridiem: Some(Meridiem::Am),
            },
            1,
        ),
        "half" | "quarter" if matches!(w(1), Some("past" | "to" | "after")) => {
            let minutes = if w(0) == Some("half") { 30 } else { 15 };
            let (h, _) = number(&words[2..]).filter(|(h, _)| (1.0..=12.0).contains(h))?;
            let h = h as i8;
            if w(1) == Some("to") {
                (plain(h, 60 - minutes).to_before(), 3)
            } else {
                (plain(h, minutes), 3)
            }
        }
        first => {
            if let Some((h, m)) = first.split_once(':') {
                let (h, m) = (h.parse::<i8>().ok()?, m.parse::<i8>().ok()?);
                if !(0..=23).contains(&h) || !(0..=59).contains(&m) {
                    return None;
                }
                (plain(h, m), 1)
            } else {
                let (n, used) = number(words)?;
                if n.fract() != 0.0 || !(0.0..=23.0).contains(&n) || first == "a" || first == "an" {
                    return None;
                }
                // "20 past 7", "10 minutes to 8"
                let minutes_word = used + usize::from(w(used) == Some("minutes"));
                if matches!(w(minutes_word), Some("past" | "to" | "after")) && n <= 30.0 {
                    let skip = minutes_word + 1;
                    let (h, hused) = number(&words[skip..])?;
                    if !(1.0..=12.0).contains(&h) {
                        return None;
                    }
                    let h = h as i8;
                    let c = if w(minutes_word) == Some("to") {
                        // "0 to 8" would be 7:60.
                        if n < 1.0 {
                            return None;
                        }
                        plain(h, 60 - n as i8).to_before()
                    } else {
                        plain(h, n as i8)
                    };
                    (c, skip + hused)
                } else if let Some(m) = w(used)
                    .and_then(|m| m.parse::<i8>().ok())
                    .filter(|m| (10..=59).contains(m))
                {
                    // "7 30"
                    (plain(n as i8, m), used + 1)
                } else {
                    (plain(n as i8, 0), used)
                }
            }
        }
    };
    match w(used) {
        Some("oclock") => used += 1,
        Some("am") => {
            clock.meridiem = Some(Meridiem::Am);
            used += 1;
        }
        Some("pm") => {
            clock.meridiem = Some(Meridiem::Pm);
            used += 1;
        }
        _ => {}
    }
    if clock.meridiem.is_some() && !(1..=12).contains(&clock.hour) && clock.hour != 24 {
        return None;
    }
    Some((clock, used))
}

impl Clock {
    /// "quarter to 9" was built as (8 wrapped, 45): fix the hour for the hour before.
    fn to_before(self) -> Clock {
        let hour = if self.hour == 1 { 12 } else { self.hour - 1 };
        Clock { hour, ..self }
    }

    /// The time of day of `now`, to the minute ("this time tomorrow").
    fn of(now: &Zoned) -> Clock {
        let meridiem = if now.hour() < 12 {
            Meridiem::Am
        } else {
            Meridiem::Pm
        };
        Clock {
            hour: now.hour(),
            minute: now.minute(),
            meridiem: Some(meridiem),
        }
    }

    /// Whether am/pm is unknown ("at 8").
    fn ambiguous(&self) -> bool {
        self.meridiem.is_none() && (1..=12).contains(&self.hour)
    }

    /// The 24-hour hour for a meridiem.
    fn hour_for(&self, m: Meridiem) -> i8 {
        match (m, self.hour) {
            (_, 24) => 24,
            (Meridiem::Am, 12) => 0,
            (Meridiem::Am, h) => h,
            (Meridiem::Pm, 12) => 12,
            (Meridiem::Pm, h) if h < 12 => h + 12,
            (Meridiem::Pm, h) => h,
        }
    }
}

impl Parts {
    /// Reads every word into a part; `None` when a word fits none or a part comes twice.
    fn read(words: &[String]) -> Option<Parts> {
        let mut parts = Parts::default();
        let mut i = 0;
        while i < words.len() {
            let w = |k: usize| words.get(i + k).map(String::as_str);
            let rest = &words[i..];
            // Fillers.
            if matches!(
                w(0),
                Some("please" | "and" | "then" | "starting" | "from" | "of")
            ) {
                i += 1;
                continue;
            }
            // A duration from now: "in 20 minutes", "for 10 minutes", "20 minutes from now".
            if matches!(w(0), Some("in" | "after" | "for" | "within")) {
                if let Some((d, used)) = duration(&rest[1..]) {
                    if !set(&mut parts.offset, d) {
                        return None;
                    }
                    i += 1 + used;
                    continue;
                }
            }
            // "a week from today", "a week tomorrow".
            if let Some((d, used)) = duration(rest) {
                if let Some((d, after)) = from_now(d, &rest[used..]) {
                    if !set(&mut parts.offset, d) {
                        return None;
                    }
                    i += used + after;
                    continue;
                }
            }
            // "later today", "later on", "later at 8".
            if w(0) == Some("later") {
                if parts.later {
                    return None;
                }
                parts.later = true;
                i += 1 + usize::from(w(1) == Some("on"));
                continue;
            }
            // Repetition.
            if let Some(("every" | "each", tail)) = rest.split_first().map(|(a, b)| (a.as_str(), b))
            {
                let (every, used, part) = every(tail)?;
                if !set(&mut parts.every, every) {
                    return None;
                }
                if let Some(p) = part {
                    if !set(&mut parts.part, p) {
                        return None;
                    }
                }
                i += 1 + used;
                continue;
            }
            match w(0) {
                Some("daily") => {
                    if !set(&mut parts.every, Every::Days(ALL_DAYS)) {
                        return None;
                    }
                    i += 1;
                    continue;
                }
                Some("hourly") => {
                    if !set(&mut parts.every, Every::Interval(HOUR_MS)) {
                        return None;
                    }
                    i += 1;
                    continue;
                }
                Some("weekly") => {
                    // "weekly on Friday": the weekday comes next; alone, today's.
                    if !set(&mut parts.every, Every::Days(0)) {
                        return None;
                    }
                    i += 1;
                    continue;
                }
                _ => {}
            }
            // "on Mondays": plural weekdays repeat.
            if w(0) == Some("on") && w(1).is_some_and(|d| d.ends_with('s') && weekday(d).is_some())
            {
                let mut mask = 0;
                let mut k = 1;
                while let Some(d) = w(k).filter(|d| d.ends_with('s')).and_then(weekday) {
                    mask |= bit(d);
                    k += if w(k + 1) == Some("and") { 2 } else { 1 };
                }
                if !set(&mut parts.every, Every::Days(mask)) {
                    return None;
                }
                i += k;
                continue;
            }
            // "this time tomorrow", "at the same time next week".
            if let Some(used) = same_time(rest) {
                if parts.same_time {
                    return None;
                }
                parts.same_time = true;
                i += used;
                continue;
            }
            // "by the end of the day".
            if let Some(used) = end_of_day(rest) {
                if !set_part(&mut parts.part, PartOfDay::EndOfDay) {
                    return None;
                }
                i += used;
                continue;
            }
            // "first thing tomorrow", "first thing in the morning".
            if w(0) == Some("first") && w(1) == Some("thing") {
                if !set_part(&mut parts.part, PartOfDay::FirstThing) {
                    return None;
                }
                i += 2;
                continue;
            }
            // Days.
            if let Some((day, used, part)) = day(rest) {
                if let (Some(Every::Days(0)), DaySpec::Weekday { day: d, .. }) = (parts.every, day)
                {
                    parts.every = Some(Every::Days(bit(d)));
                } else if !set(&mut parts.day, day) {
                    return None;
                }
                if let Some(p) = part {
                    if !set_part(&mut parts.part, p) {
                        return None;
                    }
                }
                i += used;
                continue;
            }
            // Parts of the day: "in the morning", "this evening", "at night".
            let skip = match (w(0), w(1)) {
                (Some("in" | "during"), Some("the")) => 2,
                (Some("this" | "at" | "in"), _) => 1,
                _ => 0,
            };
            if let Some(p) = w(skip).and_then(part_of_day) {
                if !set_part(&mut parts.part, p) {
                    return None;
                }
                i += skip + 1;
                continue;
            }
            // Clock times: "at 8", "by half past 7", "8 pm".
            let skip = usize::from(matches!(w(0), Some("at" | "by" | "around" | "about")));
            if skip == 1
                || w(0)
                    .is_some_and(|t| t.contains(':') || t.starts_with(|c: char| c.is_ascii_digit()))
            {
                if let Some((c, used)) = clock_value(&rest[skip..]) {
                    // A bare number is a time only when something says so.
                    let said =
                        skip == 1 || c.meridiem.is_some() || rest[0].contains(':') || used > 1;
                    if said {
                        if !set(&mut parts.clock, c) {
                            return None;
                        }
                        i += skip + used;
                        continue;
                    }
                }
            }
            if matches!(w(0), Some("noon" | "midday" | "midnight")) {
                let (c, used) = clock_value(rest)?;
                if !set(&mut parts.clock, c) {
                    return None;
                }
                i += used;
                continue;
            }
            return None;
        }
        parts.settle()
    }

    /// Checks the parts that only make sense together and fills in what they imply; `None`
    /// when they do not fit.
    fn settle(mut self) -> Option<Parts> {
        let bare = self.day.is_none() && self.offset.is_none() && self.every.is_none();
        // "this time" is a day's time: it comes with a day, and not with another time.
        let timed = self.clock.is_some() || self.part.is_some();
        if self.same_time && (timed || bare || self.every.is_some()) {
            return None;
        }
        if self.later && (self.offset.is_some() || self.every.is_some()) {
            return None;
        }
        if self.same_time {
            // "this time next week" is a week from now, not Monday; "next month" a month.
            self.day = match self.day {
                Some(DaySpec::NextWeek) => Some(DaySpec::Ahead { months: 0, days: 7 }),
                Some(DaySpec::NextMonth { day: None }) => {
                    Some(DaySpec::Ahead { months: 1, days: 0 })
                }
                day => day,
            };
        }
        let anything = !bare || timed;
        if bare && (self.later || self.part == Some(PartOfDay::EndOfDay)) {
            // "later at 8", "by the end of the day": today's.
            self.day = Some(DaySpec::Today);
        }
        anything.then_some(self)
    }

    fn resolve(mut self, now: &Zoned, tz: &TimeZone) -> Result<Due, PhraseError> {
        let unknown = || PhraseError::Unknown(String::new());
        let mut assumed = Vec::new();
        let now_ms = now.timestamp().as_millisecond() as u64;
        let today = now.date();
        let at = |date: Date, hour: i8, minute: i8| zoned(date, hour, minute, tz);
        if self.same_time {
            self.clock = Some(Clock::of(now));
        }
        if self.later && self.day == Some(DaySpec::Today) {
            // "later at 8": the 8 still to come today, else 8 pm (which has gone too).
            if let Some(c) = self.clock.filter(|c| c.ambiguous() && self.part.is_none()) {
                let m = if at(today, c.hour_for(Meridiem::Am), c.minute)? > *now {
                    Meridiem::Am
                } else {
                    Meridiem::Pm
                };
                assumed.push(spoken_clock(c.hour_for(m) % 24, c.minute));
                self.clock = Some(Clock {
                    meridiem: Some(m),
                    ..c
                });
            }
        }
        if let Some(every) = self.every {
            if self.offset.is_some() || self.day.is_some() {
                return Err(unknown());
            }
            return match every {
                Every::Interval(ms) => {
                    if self.clock.is_some() || self.part.is_some() {
                        return Err(unknown());
                    }
                    Ok(Due {
                        at_ms: add_ms(now_ms, ms)?,
                        repeat: Some(Repeat::Every { ms }),
                        assumed,
                        relative: true,
                    })
                }
                Every::Days(mask) => {
                    let mask = if mask == 0 { bit(now.weekday()) } else { mask };
                    let (hour, minute) = self.time_of_day(&mut assumed, true);
                    let hour = match hour {
                        // "every day at midnight"; for some days, the start or the end of
                        // the day named is anyone's guess.
                        24 if mask & ALL_DAYS == ALL_DAYS => 0,
                        24 => return Err(unknown()),
                        hour => hour,
                    };
                    let repeat = Repeat::Days { mask, hour, minute };
                    let at_ms = repeat
                        .next_after(now_ms.saturating_sub(1), tz)
                        .ok_or_else(unknown)?;
                    Ok(Due {
                        at_ms,
                        repeat: Some(repeat),
                        assumed,
                        relative: false,
                    })
                }
            };
        }
        let offset = self.offset.unwrap_or_default();
        if offset.ms > 0 {
            if self.day.is_some() || self.clock.is_some() || self.part.is_some() || offset.civil() {
                return Err(unknown());
            }
            return Ok(Due {
                at_ms: add_ms(now_ms, offset.ms)?,
                repeat: None,
                assumed,
                relative: true,
            });
        }
        let day = match (self.day, offset.civil()) {
            (Some(_), true) => return Err(unknown()),
            (None, true) => Some(DaySpec::Ahead {
                months: offset.months,
                days: offset.days,
            }),
            (day, false) => day,
        };
        let timed = self.clock.is_some() || self.part.is_some();
        let Some(day) = day else {
            // No day: the next time the clock shows it.
            if let Some(clock) = self.clock.filter(|c| c.ambiguous() && self.part.is_none()) {
                let mut best: Option<Zoned> = None;
                for date in [Some(today), today.tomorrow().ok()].into_iter().flatten() {
                    for m in [Meridiem::Am, Meridiem::Pm] {
                        let z = at(date, clock.hour_for(m), clock.minute)?;
                        if z > *now && best.as_ref().is_none_or(|b| z < *b) {
                            best = Some(z);
                        }
                    }
                }
                let best = best.ok_or_else(unknown)?;
                assumed.push(spoken_clock(best.hour(), best.minute()));
                return Ok(self.due(best, assumed));
            }
            let (hour, minute) = self.time_of_day(&mut assumed, true);
            let mut z = at(today, hour, minute)?;
            if z <= *now {
                z = at(
                    today.tomorrow().map_err(|_| PhraseError::TooFar)?,
                    hour,
                    minute,
                )?;
            }
            return Ok(self.due(z, assumed));
        };
        let date = match day {
            // "tonight at 2" said at 1 am is the night that is on now, which began yesterday.
            DaySpec::Today if self.small_hours() && now.hour() < SMALL_HOURS_END => {
                today.yesterday().map_err(|_| unknown())?
            }
            DaySpec::Today => today,
            DaySpec::Tomorrow => today.tomorrow().map_err(|_| PhraseError::TooFar)?,
            // `months.months()` and `days.days()` would panic past jiff's limits (about
            // 20,000 years): "in 8000000 days".
            DaySpec::Ahead { months, days } => Span::new()
                .try_months(months)
                .and_then(|span| span.try_days(days))
                .and_then(|span| today.checked_add(span))
                .map_err(|_| PhraseError::TooFar)?,
            DaySpec::Weekday { day: wd, next } => {
                let ahead =
                    (wd.to_monday_zero_offset() - today.weekday().to_monday_zero_offset() + 7) % 7;
                let ahead = if ahead == 0 && next { 7 } else { ahead };
                let mut date = today
                    .checked_add((ahead as i64).days())
                    .map_err(|_| PhraseError::TooFar)?;
                if ahead == 0 && self.on(date, tz, &mut Vec::new(), false)? <= *now {
                    date = date
                        .checked_add(7.days())
                        .map_err(|_| PhraseError::TooFar)?;
                }
                date
            }
            DaySpec::NextWeek => {
                let ahead = 7 - today.weekday().to_monday_zero_offset() as i64;
                today
                    .checked_add(ahead.days())
                    .map_err(|_| PhraseError::TooFar)?
            }
            DaySpec::Weekend => {
                let ahead = (5 - today.weekday().to_monday_zero_offset() as i64 + 7) % 7;
                today
                    .checked_add(ahead.days())
                    .map_err(|_| PhraseError::TooFar)?
            }
            DaySpec::NextMonth { day: d } => {
                let first = today
                    .first_of_month()
                    .checked_add(1.month())
                    .map_err(|_| PhraseError::TooFar)?;
                let d = d.unwrap_or(1);
                Date::new(first.year(), first.month(), d).map_err(|_| {
                    PhraseError::NoSuchDate(format!(
                        "{d} {} {}",
                        month_name(first.month()),
                        first.year()
                    ))
                })?
            }
            DaySpec::Date { month, day: d } => {
                let name = |y: i16, m: i8| format!("{d} {} {y}", month_name(m));
                let pick = |y: i16, m: i8| -> Result<Date, PhraseError> {
                    if y > 9999 {
                        return Err(PhraseError::TooFar);
                    }
                    Date::new(y, m, d).map_err(|_| PhraseError::NoSuchDate(name(y, m)))
                };
                match month {
                    Some(m) => {
                        let this = pick(today.year(), m);
                        match this {
                            Ok(date) if date >= today => date,
                            _ => pick(today.year() + 1, m)?,
                        }
                    }
                    None => {
                        let this = pick(today.year(), today.month());
                        match this {
                            Ok(date) if date >= today => date,
                            _ => {
                                let next = today
                                    .first_of_month()
                                    .checked_add(1.month())
                                    .map_err(|_| PhraseError::TooFar)?;
                                pick(next.year(), next.month())?
                            }
                        }
                    }
                }
            }
        };
        if !timed && date == today {
            return Err(PhraseError::NoTime);
        }
        let z = self.on(date, tz, &mut assumed, true)?;
        if z <= *now {
            return Err(PhraseError::Past(format!(
                "{} on {}",
                spoken_clock(z.hour(), z.minute()),
                spoken_date(z.date())
            )));
        }
        Ok(self.due(z, assumed))
    }

    /// The instant of the phrase's time on the day or night of `date`.
    fn on(
        &self,
        date: Date,
        tz: &TimeZone,
        assumed: &mut Vec<String>,
        note: bool,
    ) -> Result<Zoned, PhraseError> {
        let (hour, minute) = self.time_of_day(assumed, note);
        let date = if self.small_hours() {
            date.tomorrow().map_err(|_| PhraseError::TooFar)?
        } else {
            date
        };
        zoned(date, hour, minute, tz)
    }

    /// Whether the phrase names the small hours of a night ("tonight at 2", "Friday night at
    /// 1 am"), which fall on the next day's date.
    fn small_hours(&self) -> bool {
        let (hour, _) = self.time_of_day(&mut Vec::new(), false);
        self.part == Some(PartOfDay::Night) && self.clock.is_some() && hour < SMALL_HOURS_END
    }

    fn due(&self, z: Zoned, assumed: Vec<String>) -> Due {
        Due {
            at_ms: z.timestamp().as_millisecond() as u64,
            repeat: None,
            assumed,
            relative: false,
        }
    }

    /// The wall-clock time the phrase means, noting what was assumed.
    fn time_of_day(&self, assumed: &mut Vec<String>, note: bool) -> (i8, i8) {
        let mut note = |s: String| {
            if note {
                assumed.push(s)
            }
        };
        match (self.clock, self.part) {
            (Some(c), part) => {
                let m = match (c.meridiem, part) {
                    (Some(m), _) => m,
                    (None, _) if !c.ambiguous() => Meridiem::Am,
                    (None, Some(PartOfDay::Morning | PartOfDay::FirstThing)) => Meridiem::Am,
                    (None, Some(PartOfDay::Night)) if c.hour == 12 || c.hour < 5 => Meridiem::Am,
                    (None, Some(_)) => Meridiem::Pm,
                    (None, None) => {
                        let m = if (7..=11).contains(&c.hour) {
                            Meridiem::Am
                        } else {
                            Meridiem::Pm
                        };
                        note(spoken_clock(c.hour_for(m) % 24, c.minute));
                        m
                    }
                };
                (c.hour_for(m), c.minute)
            }
            (None, Some(p)) => (p.hour(), 0),
            (None, None) => {
                note(format!(
                    "{}, the default time",
                    spoken_clock(DEFAULT_HOUR, 0)
                ));
                (DEFAULT_HOUR, 0)
            }
        }
    }
}

/// `ms` after `now_ms`, if the calendar goes that far.
fn add_ms(now_ms: u64, ms: u64) -> Result<u64, PhraseError> {
    now_ms
        .checked_add(ms)
        .filter(|at| i64::try_from(*at).is_ok_and(|at| Timestamp::from_millisecond(at).is_ok()))
        .ok_or(PhraseError::TooFar)
}

/// Fills an empty slot; `false` when the part came before (a phrase with two times).
fn set<T>(slot: &mut Option<T>, value: T) -> bool {
    if slot.is_some() {
        return false;
    }
    *slot = Some(value);
    true
}

/// [`set`] for a part of the day, where "first thing" and "morning" say the same thing
/// ("first thing tomorrow morning") and the first thing wins.
fn set_part(slot: &mut Option<PartOfDay>, part: PartOfDay) -> bool {
    match (*slot, part) {
        (Some(PartOfDay::FirstThing), PartOfDay::Morning) => true,
        (Some(PartOfDay::Morning), PartOfDay::FirstThing) => {
            *slot = Some(part);
            true
        }
        _ => set(slot, part),
    }
}

/// `date` at `hour`:`minute` in `tz`, where hour 24 is midnight at the end of the day; too
/// far past the end of jiff's calendar (9999-12-30 in UTC, so that every zone has it).
fn zoned(date: Date, hour: i8, minute: i8, tz: &TimeZone) -> Result<Zoned, PhraseError> {
    let (date, hour) = if hour == 24 {
        (date.tomorrow().map_err(|_| PhraseError::TooFar)?, 0)
    } else {
        (date, hour)
    };
    let time = Time::new(hour, minute, 0, 0).map_err(|_| PhraseError::Unknown(String::new()))?;
    date.to_datetime(time)
        .to_zoned(tz.clone())
        .map_err(|_| PhraseError::TooFar)
}

/// "every 2 hours", "every Monday and Thursday", "every weekday", "every morning".
fn every(words: &[String]) -> Option<(Every, usize, Option<PartOfDay>)> {
    let w = |k: usize| words.get(k).map(String::as_str);
    match w(0)? {
        "day" => return Some((Every::Days(ALL_DAYS), 1, None)),
        "weekday" | "weekdays" => return Some((Every::Days(WEEKDAYS), 1, None)),
        "weekend" => return Some((Every::Days(WEEKEND), 1, None)),
        "week" => return Some((Every::Days(0), 1, None)),
        "hour" => return Some((Every::Interval(HOUR_MS), 1, None)),
        "minute" => return Some((Every::Interval(60_000), 1, None)),
        "other" if w(1) == Some("day") => return None,
        w0 => {
            if let Some(p) = part_of_day(w0) {
                return Some((Every::Days(ALL_DAYS), 1, Some(p)));
            }
        }
    }
    if weekday(w(0)?).is_some() {
        let mut mask = 0;
        let mut k = 0;
        while let Some(d) = w(k).and_then(weekday) {
            mask |= bit(d);
            k += 1;
            if w(k) == Some("and") && w(k + 1).and_then(weekday).is_some() {
                k += 1;
            }
        }
        return Some((Every::Days(mask), k, None));
    }
    let (d, used) = duration(words)?;
    if d.civil() {
        // "every 2 days" is not a weekly pattern; not supported.
        return None;
    }
    (d.ms > 0).then_some((Every::Interval(d.ms), used, None))
}

/// "tomorrow", "on Friday", "next Monday", "on the 5th", "on 3 December", "December 3rd",
/// "tonight", "tomorrow morning", "over the weekend", "next month", "the 1st of next month".
fn day(words: &[String]) -> Option<(DaySpec, usize, Option<PartOfDay>)> {
    let w = |k: usize| words.get(k).map(String::as_str);
    let with_part = |spec: DaySpec, used: usize| {
        let part = w(used).and_then(part_of_day);
        Some((spec, used + usize::from(part.is_some()), part))
    };
    match (w(0)?, w(1), w(2), w(3)) {
        ("today", ..) => return with_part(DaySpec::Today, 1),
        ("tonight", ..) => return Some((DaySpec::Today, 1, Some(PartOfDay::Night))),
        ("tomorrow", ..) => return with_part(DaySpec::Tomorrow, 1),
        ("the", Some("day"), Some("after"), Some("tomorrow")) => {
            return with_part(DaySpec::Ahead { months: 0, days: 2 }, 4)
        }
        ("day", Some("after"), Some("tomorrow"), _) => {
            return with_part(DaySpec::Ahead { months: 0, days: 2 }, 3)
        }
        ("next", Some("week"), ..) => return Some((DaySpec::NextWeek, 2, None)),
        ("next", Some("month"), ..) => return Some(next_month(&words[2..])),
        ("this" | "at" | "on" | "over", Some("the"), Some("weekend"), _) => {
            return Some((DaySpec::Weekend, 3, None))
        }
        ("this" | "next", Some("weekend"), ..) => return Some((DaySpec::Weekend, 2, None)),
        _ => {}
    }
    let mut k = usize::from(w(0) == Some("on"));
    let next = match w(k) {
        Some("next") => {
            k += 1;
            true
        }
        Some("this" | "coming") => {
            k += 1;
            false
        }
        Some("the") if w(k + 1) == Some("coming") => {
            k += 2;
            false
        }
        _ => false,
    };
    if let Some(d) = w(k)
        .filter(|d| !d.ends_with('s') || *d == "tues" || *d == "thurs")
        .and_then(weekday)
    {
        return with_part(DaySpec::Weekday { day: d, next }, k + 1);
    }
    if next {
        return None;
    }
    // Dates: "the 5th", "the 5th of December", "5 December", "December 5th".
    let mut k = usize::from(w(0) == Some("on"));
    k += usize::from(w(k) == Some("the"));
    if let Some(d) = w(k).and_then(ordinal) {
        let is_ordinal = w(k).is_some_and(|t| !t.chars().all(|c| c.is_ascii_digit()));
        let of = usize::from(w(k + 1) == Some("of"));
        if let Some(m) = w(k + 1 + of).and_then(month) {
            return with_part(
                DaySpec::Date {
                    month: Some(m),
                    day: d,
                },
                k + 2 + of,
            );
        }
        // "the 1st of next month"
        if is_ordinal && w(k + 1 + of) == Some("next") && w(k + 2 + of) == Some("month") {
            return with_part(DaySpec::NextMonth { day: Some(d) }, k + 3 + of);
        }
        if is_ordinal {
            return with_part(
                DaySpec::Date {
                    month: None,
                    day: d,
                },
                k + 1,
            );
        }
        return None;
    }
    if let Some(m) = w(k).and_then(month) {
        let d = w(k + 1).and_then(ordinal)?;
        return with_part(
            DaySpec::Date {
                month: Some(m),
                day: d,
            },
            k + 2,
        );
    }
    None
}

/// After "next month": "on the 5th" names its day ("next month on the 5th"); the words used
/// counting "next month".
fn next_month(words: &[String]) -> (DaySpec, usize, Option<PartOfDay>) {
    let w = |k: usize| words.get(k).map(String::as_str);
    let mut k = usize::from(w(0) == Some("on"));
    let the = w(k) == Some("the");
    k += usize::from(the);
    let named = w(k).filter(|t| the || !t.chars().all(|c| c.is_ascii_digit()));
    match named.and_then(ordinal) {
        Some(d) => (DaySpec::NextMonth { day: Some(d) }, 2 + k + 1, None),
        None => (DaySpec::NextMonth { day: None }, 2, None),
    }
}

impl Repeat {
    /// The first time after `after_ms` that this repeats, `None` for an empty day mask, a
    /// time of day that does not exist, or a time past the end of the calendar.
    pub fn next_after(&self, after_ms: u64, tz: &TimeZone) -> Option<u64> {
        match *self {
            Repeat::Every { ms } => add_ms(after_ms, ms.max(1)).ok(),
            Repeat::Days { mask, hour, minute } => {
                if mask & ALL_DAYS == 0 {
                    return None;
                }
                let after = Timestamp::from_millisecond(i64::try_from(after_ms).ok()?).ok()?;
                let mut date = after.to_zoned(tz.clone()).date();
                for _ in 0..8 {
                    if mask & bit(date.weekday()) != 0 {
                        let z = zoned(date, hour, minute, tz).ok()?;
                        if z.timestamp() > after {
                            return Some(z.timestamp().as_millisecond() as u64);
                        }
                    }
                    date = date.tomorrow().ok()?;
                }
                None
            }
        }
    }
}

/// The household time zone from its IANA name; empty means the system's zone.
pub fn zone(name: &str) -> Result<TimeZone, String> {
    if name.trim().is_empty() {
        return Ok(TimeZone::system());
    }
    TimeZone::get(name).map_err(|e| format!("unknown time zone {name:?}: {e}"))
}

#[cfg(test)]
mod tests;
