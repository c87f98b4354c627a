//! Times in words, as the hub says them: "in 20 minutes", "tomorrow at 9 am", "every
//! Monday and Thursday at 7 pm". The parser that turns such phrases into instants is
//! `phrase.rs`; this is the other direction, so that a second language is a new file here.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

use super::phrase::{Repeat, ALL_DAYS, HOUR_MS, WEEKDAYS, WEEKEND};

impl Repeat {
    /// In words: "every day at 8 am", "every Monday and Thursday at 7 pm", "every 2 hours".
    pub fn describe(&self) -> String {
        match *self {
            Repeat::Every { ms } => {
                let (n, unit) = if ms % HOUR_MS == 0 {
                    (ms / HOUR_MS, "hour")
                } else if ms % 60_000 == 0 {
                    (ms / 60_000, "minute")
                } else {
                    (ms / 1000, "second")
                };
                if n == 1 {
                    format!("every {unit}")
                } else {
                    format!("every {n} {unit}s")
                }
            }
            Repeat::Days { mask, hour, minute } => {
                let days = match mask {
                    ALL_DAYS => "every day".to_string(),
                    WEEKDAYS => "every weekday".to_string(),
                    WEEKEND => "every weekend day".to_string(),
                    _ => {
                        let names: Vec<&str> = (0..7)
                            .filter(|i| mask & (1 << i) != 0)
                            .map(|i| weekday_name(Weekday::from_monday_zero_offset(i).unwrap()))
                            .collect();
                        format!("every {}", join_and(&names))
                    }
                };
                format!("{days} at {}", spoken_clock(hour, minute))
            }
        }
    }
}

/// When something is due, in words relative to now: "in 20 minutes", "today at 8 pm",
/// "tomorrow at 9 am", "on Friday, 27 November at 9 am".
pub fn describe(at_ms: u64, now_ms: u64, tz: &TimeZone) -> String {
    let (Ok(at), Ok(now)) = (
        Timestamp::from_millisecond(at_ms as i64),
        Timestamp::from_millisecond(now_ms as i64),
    ) else {
        return "at an unknown time".to_string();
    };
    let (at, now) = (at.to_zoned(tz.clone()), now.to_zoned(tz.clone()));
    let ahead_ms = at_ms.saturating_sub(now_ms);
    if at_ms > now_ms && ahead_ms < 90 * 60_000 {
        let minutes = (ahead_ms + 30_000) / 60_000;
        return match minutes {
            0 => format!("in {} seconds", ahead_ms.div_ceil(1000)),
            1 => "in 1 minute".to_string(),
            m => format!("in {m} minutes"),
        };
    }
    let clock = spoken_clock(at.hour(), at.minute());
    let (today, date) = (now.date(), at.date());
    if date == today {
        format!("today at {clock}")
    } else if today.tomorrow().ok() == Some(date) {
        format!("tomorrow at {clock}")
    } else {
        format!("on {} at {clock}", spoken_date(date))
    }
}

/// "8 am", "8:30 pm", "noon", "midnight".
pub fn spoken_clock(hour: i8, minute: i8) -> String {
    match (hour, minute) {
        (12, 0) => "noon".to_string(),
        (0, 0) | (24, 0) => "midnight".to_string(),
        _ => {
            let (h, m) = (hour % 24, minute);
            let suffix = if h < 12 { "am" } else { "pm" };
            let h12 = if h % 12 == 0 { 12 } else { h % 12 };
            if m == 0 {
                format!("{h12} {suffix}")
            } else {
                format!("{h12}:{m:02} {suffix}")
            }
        }
    }
}

/// "Friday, 27 November".
pub fn spoken_date(date: Date) -> String {
    format!(
        "{}, {} {}",
        weekday_name(date.weekday()),
        date.day(),
        month_name(date.month())
    )
}

pub(super) fn weekday_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Monday => "Monday",
        Weekday::Tuesday => "Tuesday",
        Weekday::Wednesday => "Wednesday",
        Weekday::Thursday => "Thursday",
        Weekday::Friday => "Friday",
        Weekday::Saturday => "Saturday",
        Weekday::Sunday => "Sunday",
    }
}

pub(super) fn month_name(m: i8) -> &'static str {
    [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ]
    .get((m - 1).max(0) as usize)
    .copied()
    .unwrap_or("?")
}

/// "a, b and c".
pub(crate) fn join_and(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => one.to_string(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    /// A Berlin wall-clock time, in ms.
    fn at(civil: &str) -> u64 {
        let dt: jiff::civil::DateTime = civil.parse().unwrap();
        dt.to_zoned(berlin()).unwrap().timestamp().as_millisecond() as u64
    }

    /// Saturday before the spring DST change in Berlin, at 10:00.
    const SPRING: &str = "2026-03-28T10:00";

    #[test]
    fn due_times_are_said_in_words() {
        let tz = berlin();
        let now = at(SPRING);
        assert_eq!(describe(now + 20 * 60_000, now, &tz), "in 20 minutes");
        assert_eq!(
            describe(at("2026-03-28T20:30"), now, &tz),
            "today at 8:30 pm"
        );
        assert_eq!(
            describe(at("2026-03-29T09:00"), now, &tz),
            "tomorrow at 9 am"
        );
        assert_eq!(
            describe(at("2026-04-03T12:00"), now, &tz),
            "on Friday, 3 April at noon"
        );
    }

    #[test]
    fn repeats_and_lists_are_said_in_words() {
        assert_eq!(
            Repeat::Every { ms: 2 * HOUR_MS }.describe(),
            "every 2 hours"
        );
        let mondays = Repeat::Days {
            mask: 1 | 1 << 3,
            hour: 19,
            minute: 0,
        };
        assert_eq!(mondays.describe(), "every Monday and Thursday at 7 pm");
        assert_eq!(join_and(&["a", "b", "c"]), "a, b and c");
    }
}
