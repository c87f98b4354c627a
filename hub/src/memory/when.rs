//! Dates named in a question ("on 1 May, 2022", "in July 2022", "in May"), turned into the
//! span of time whose memories should rank higher: the time-aware retrieval lever. Dates are
//! civil dates in UTC; the household time zone arrives with the reminders work.

const DAY_MS: u64 = 86_400_000;

/// The month names, lower case, January first.
pub(crate) const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month 1-12, day) of a day count since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The month number (1-12) of a month name.
pub fn month_number(word: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == word.to_ascii_lowercase())
        .map(|i| i as u32 + 1)
}

/// A span of time a question names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// From `start` (ms since the Unix epoch) to `end`, exclusive.
    Span {
        /// The first instant.
        start: u64,
        /// The instant after the last.
        end: u64,
    },
    /// A month of any year ("in May").
    Month(u32),
}

impl Period {
    /// Whether something said at `at_ms` may be about this period: said during it, or in
    /// the `grace_days` after it ("last Friday I ...").
    pub fn covers(&self, at_ms: u64, grace_days: u64) -> bool {
        match *self {
            Period::Span { start, end } => at_ms >= start && at_ms < end + grace_days * DAY_MS,
            Period::Month(m) => {
                let (_, month, day) = civil_from_days((at_ms / DAY_MS) as i64);
                month == m || (month == m % 12 + 1 && u64::from(day) <= grace_days)
            }
        }
    }
}

/// A text's words, lower case, without punctuation.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(|w| w.to_ascii_lowercase())
        .collect()
}

/// The period a question names, if any: "1 May, 2022", "May 1, 2022", "May 2022", "in May".
pub fn period_in(text: &str) -> Option<Period> {
    let words = words(text);
    let number = |i: usize| words.get(i).and_then(|w| w.parse::<i64>().ok());
    let day_span = |y: i64, m: u32, d: i64| {
        if !(1..=31).contains(&d) || !(1900..=2200).contains(&y) {
            return None;
        }
        let start = days_from_civil(y, i64::from(m), d) as u64 * DAY_MS;
        Some(Period::Span {
            start,
            end: start + DAY_MS,
        })
    };
    for (i, w) in words.iter().enumerate() {
        let Some(m) = month_number(w) else {
            continue;
        };
        // "may" is also a verb: a month without a day or year counts only after "in".
        let after_in = i > 0 && words[i - 1] == "in";
        match (
            i.checked_sub(1).and_then(number),
            number(i + 1),
            number(i + 2),
        ) {
            // 1 May 2022
            (Some(d), Some(y), _) if d <= 31 && y > 1000 => return day_span(y, m, d),
            // May 1 2022
            (_, Some(d), Some(y)) if d <= 31 && y > 1000 => return day_span(y, m, d),
            // May 2022
            (_, Some(y), _) if y > 1000 => {
                let start = days_from_civil(y, i64::from(m), 1) as u64 * DAY_MS;
                let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                let end = days_from_civil(ny, i64::from(nm), 1) as u64 * DAY_MS;
                return Some(Period::Span { start, end });
            }
            // in May
            _ if after_in => return Some(Period::Month(m)),
            _ => {}
        }
    }
    None
}

/// Whether a question asks when something happened: "When did...", "How long ago...",
/// "What year...", "Since when...".
pub fn asks_when(question: &str) -> bool {
    let words = words(question);
    words.first().is_some_and(|w| w == "when")
        || words.windows(2).any(|w| {
            matches!(
                (w[0].as_str(), w[1].as_str()),
                ("how", "long")
                    | ("what", "year" | "month" | "day" | "date" | "time" | "week")
                    | ("which", "year" | "month" | "day" | "date" | "week")
                    | ("since", "when")
            )
        })
}

/// The weekday names, lower case, Monday first.
pub(crate) const WEEKDAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

/// Whether a text says when something happened, relative to when it was said or on the
/// calendar: "yesterday", "last Friday", "two weeks ago", "next month", "in 2019", "since May".
/// The answer to a "when" question is the memory that says so.
pub fn tells_when(text: &str) -> bool {
    let words = words(text);
    let unit = |w: &str| {
        matches!(
            w.trim_end_matches('s'),
            "day"
                | "week"
                | "weekend"
                | "month"
                | "year"
                | "night"
                | "morning"
                | "evening"
                | "summer"
                | "winter"
                | "spring"
                | "autumn"
                | "fall"
        ) || WEEKDAYS.contains(&w.trim_end_matches('s'))
            || matches!(
                w,
                "mon" | "tue" | "tues" | "wed" | "thu" | "thur" | "thurs" | "fri"
            )
            || MONTHS.contains(&w)
    };
    words.iter().enumerate().any(|(i, w)| {
        let next = words.get(i + 1).map_or("", String::as_str);
        match w.as_str() {
            "yesterday" | "today" | "tonight" | "tomorrow" | "ago" | "recently" | "lately" => true,
            "last" | "next" | "this" | "past" | "since" | "on" | "in" => unit(next),
            w if w.len() == 4 && (w.starts_with("19") || w.starts_with("20")) => {
                w.chars().all(|c| c.is_ascii_digit())
            }
            w => MONTHS.contains(&w) && w != "may",
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_round_trip() {
        for z in [-1000, 0, 59, 60, 365, 19_000, 20_000, 50_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), z);
        }
        assert_eq!(civil_from_days(19_358), (2023, 1, 1));
    }

    #[test]
    fn when_questions_and_memories_that_say_when() {
        for q in [
            "When did Anna go to Porto?",
            "how long has Tom had the cat?",
            "In what year did we move?",
            "Which month was the party?",
        ] {
            assert!(asks_when(q), "{q}");
        }
        for q in ["What did Anna paint?", "Where is the whenever café?"] {
            assert!(!asks_when(q), "{q}");
        }
        for t in [
            "I went there yesterday",
            "We moved two years ago.",
            "Tom: see you next Friday!",
            "back in 2019 it rained",
            "since March I run every day",
            "last weekend was fun",
            "I joined a new group last Tues.",
        ] {
            assert!(tells_when(t), "{t}");
        }
        for t in [
            "I love painting lakes",
            "We may go",
            "the year was great",
            "on the table",
        ] {
            assert!(!tells_when(t), "{t}");
        }
    }

    #[test]
    fn periods_in_questions() {
        let may1 = days_from_civil(2022, 5, 1) as u64 * DAY_MS;
        assert_eq!(
            period_in("What movie did Joanna watch on 1 May, 2022?"),
            Some(Period::Span {
                start: may1,
                end: may1 + DAY_MS
            })
        );
        assert_eq!(
            period_in("What happened on May 1, 2022?"),
            period_in("on 1 May 2022")
        );
        let july = days_from_civil(2022, 7, 1) as u64 * DAY_MS;
        let august = days_from_civil(2022, 8, 1) as u64 * DAY_MS;
        assert_eq!(
            period_in("Where did Joanna travel to in July 2022?"),
            Some(Period::Span {
                start: july,
                end: august
            })
        );
        assert_eq!(
            period_in("Which spot did she visit in May?"),
            Some(Period::Month(5))
        );
        assert_eq!(period_in("You may go now"), None);
        assert_eq!(period_in("When did Nate win his third tourney?"), None);
        let p = period_in("in March").unwrap();
        assert!(p.covers(days_from_civil(2023, 3, 20) as u64 * DAY_MS, 7));
        assert!(p.covers(days_from_civil(2023, 4, 3) as u64 * DAY_MS, 7));
        assert!(!p.covers(days_from_civil(2023, 4, 20) as u64 * DAY_MS, 7));
    }
}
