//! Dates named in a question ("on 1 May, 2022", "in July 2022", "in May"), turned into the
//! span of time whose memories should rank higher: the time-aware retrieval lever. Dates are
//! civil dates in the household's zone, through jiff, the hub's one calendar (the reminders'
//! time phrases use it too).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::Timestamp;

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

/// The first instant of civil date `y`-`m`-`d` in `tz`, in ms since the Unix epoch; `None`
/// for a date that does not exist or lies before 1970.
pub fn day_start_ms(y: i64, m: u32, d: i64, tz: &TimeZone) -> Option<u64> {
    let date = Date::new(
        i16::try_from(y).ok()?,
        i8::try_from(m).ok()?,
        i8::try_from(d).ok()?,
    )
    .ok()?;
    let ms = date.to_zoned(tz.clone()).ok()?.timestamp().as_millisecond();
    u64::try_from(ms).ok()
}

/// The civil date (year, month 1-12, day) of `at_ms` in `tz`.
pub fn civil_date(at_ms: u64, tz: &TimeZone) -> Option<(i64, u32, u32)> {
    let ts = Timestamp::from_millisecond(i64::try_from(at_ms).ok()?).ok()?;
    let date = ts.to_zoned(tz.clone()).date();
    Some((
        i64::from(date.year()),
        date.month() as u32,
        date.day() as u32,
    ))
}

/// The month number (1-12) of a month name.
pub fn month_number(word: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| *m == word.to_ascii_lowercase())
        .map(|i| i as u32 + 1)
}

/// Whether a word names a day of the week or a month ("Friday", "May"): in a question it
/// says when, not who.
pub fn calendar_word(word: &str) -> bool {
    month_number(word).is_some() || WEEKDAYS.contains(&word.to_ascii_lowercase().as_str())
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
    /// the `grace_days` after it ("last Friday I ..."). A month is a month in `tz`.
    pub fn covers(&self, at_ms: u64, grace_days: u64, tz: &TimeZone) -> bool {
        match *self {
            Period::Span { start, end } => at_ms >= start && at_ms < end + grace_days * DAY_MS,
            Period::Month(m) => civil_date(at_ms, tz).is_some_and(|(_, month, day)| {
                month == m || (month == m % 12 + 1 && u64::from(day) <= grace_days)
            }),
        }
    }
}

/// A text's words, lower case, without punctuation.
fn words(text: &str) -> Vec<String> {
    crate::words::words(text)
}

/// The period a question names, if any: "1 May, 2022", "May 1, 2022", "May 2022", "in May".
/// Days and months are those of `tz`.
pub fn period_in(text: &str, tz: &TimeZone) -> Option<Period> {
    let words = words(text);
    let number = |i: usize| words.get(i).and_then(|w| w.parse::<i64>().ok());
    let day_span = |y: i64, m: u32, d: i64| {
        if !(1..=31).contains(&d) || !(1900..=2200).contains(&y) {
            return None;
        }
        let start = day_start_ms(y, m, d, tz)?;
        let (ny, nm, nd) = civil_date(start + DAY_MS + DAY_MS / 2, tz)?;
        let end = day_start_ms(ny, nm, i64::from(nd), tz)?;
        Some(Period::Span { start, end })
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
                let (ny, nm) = if m == 12 {
                    (y.checked_add(1)?, 1)
                } else {
                    (y, m + 1)
                };
                let start = day_start_ms(y, m, 1, tz)?;
                let end = day_start_ms(ny, nm, 1, tz)?;
                return Some(Period::Span { start, end });
            }
            // in May
            _ if after_in => return Some(Period::Month(m)),
            _ => {}
        }
    }
    None
}

/// When a fact said at `said_ms` holds, from the time words inside it: "moved to Leeds last
/// year" holds from the start of last year, "since 2019" from 1 January 2019, "three weeks
/// ago" from then; "until Friday" holds to the end of Friday, "for the next two weeks" to
/// then. `(None, None)` when it names no such time: the fact holds from when it was said.
/// A start is never after `said_ms` (a plan is known now, whenever it happens).
pub fn validity(text: &str, said_ms: u64, tz: &TimeZone) -> (Option<u64>, Option<u64>) {
    let w = words(text);
    let Some((year, month, day)) = civil_date(said_ms, tz) else {
        return (None, None);
    };
    let number = |s: &str| -> Option<u64> {
        s.parse::<u64>().ok().or_else(|| {
            let n = [
                "a", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve",
            ]
            .iter()
            .position(|n| *n == s)?;
            Some(n.max(1) as u64)
        })
    };
    let unit_ms = |u: &str| -> Option<u64> {
        match u.trim_end_matches('s') {
            "day" => Some(DAY_MS),
            "week" => Some(7 * DAY_MS),
            "fortnight" => Some(14 * DAY_MS),
            "month" => Some(30 * DAY_MS),
            "year" => Some(365 * DAY_MS),
            _ => None,
        }
    };
    let mut from: Option<u64> = None;
    let mut until: Option<u64> = None;
    for i in 0..w.len() {
        let at = |k: usize| w.get(i + k).map(String::as_str).unwrap_or("");
        match at(0) {
            // "last year", "last month", "last week"
            "last" => {
                let start = match at(1) {
                    "year" => day_start_ms(year - 1, 1, 1, tz),
                    "month" => {
                        let (y, m) = if month == 1 {
                            (year - 1, 12)
                        } else {
                            (year, month - 1)
                        };
                        day_start_ms(y, m, 1, tz)
                    }
                    "week" => Some(said_ms.saturating_sub(7 * DAY_MS)),
                    _ => None,
                };
                from = from.or(start);
            }
            // "three weeks ago", "a year ago"
            "ago" if i >= 2 => {
                if let (Some(n), Some(u)) = (number(&w[i - 2]), unit_ms(&w[i - 1])) {
                    from = from.or(Some(said_ms.saturating_sub(n.saturating_mul(u))));
                }
            }
            "yesterday" => {
                from = from
                    .or(day_start_ms(year, month, i64::from(day), tz)
                        .map(|d| d.saturating_sub(DAY_MS)));
            }
            // "since 2019", "since May", "since last year"
            "since" => {
                if let Some(y) = at(1)
                    .parse::<i64>()
                    .ok()
                    .filter(|y| (1900..=year).contains(y))
                {
                    from = from.or(day_start_ms(y, 1, 1, tz));
                } else if let Some(m) = month_number(at(1)) {
                    let y = if m > month { year - 1 } else { year };
                    from = from.or(day_start_ms(y, m, 1, tz));
                }
            }
            // "in 2019" (a year gone by)
            "in" => {
                if let Some(y) = at(1)
                    .parse::<i64>()
                    .ok()
                    .filter(|y| (1900..year).contains(y))
                {
                    from = from.or(day_start_ms(y, 1, 1, tz));
                }
            }
            // "until Friday", "till the 14th", "until next week"
            // Only a day: "open until 10 pm" is a habit, not a fact that ends today.
            "until" | "till" | "til" | "through" if names_a_day(&w[i + 1..]) => {
                let rest = w[i + 1..].join(" ");
                for phrase in [rest.clone(), format!("on {rest}")] {
                    let end = crate::pixie::phrase::parse(&phrase, said_ms, tz)
                        .ok()
                        .filter(|d| d.repeat.is_none())
                        .and_then(|d| {
                            // The end of that day: the start of the next.
                            let (y, m, dd) = civil_date(d.at_ms, tz)?;
                            let start = day_start_ms(y, m, i64::from(dd), tz)?;
                            let (ny, nm, nd) = civil_date(start + DAY_MS + DAY_MS / 2, tz)?;
                            day_start_ms(ny, nm, i64::from(nd), tz)
                        });
                    if end.is_some() {
                        until = until.or(end);
                        break;
                    }
                }
            }
            // "for the next two weeks"
            "next" if i >= 2 && w[i - 2] == "for" && w[i - 1] == "the" => {
                if let (Some(n), Some(u)) = (number(at(1)), unit_ms(at(2))) {
                    until = until.or(Some(said_ms.saturating_add(n.saturating_mul(u))));
                }
            }
            _ => {}
        }
    }
    (
        from.filter(|f| *f <= said_ms),
        until.filter(|u| *u > from.unwrap_or(0)),
    )
}

/// Whether `words` name a day: a weekday, a month, a date, "tomorrow", "next week".
fn names_a_day(words: &[String]) -> bool {
    words.iter().take(4).any(|w| {
        matches!(
            w.as_str(),
            "monday"
                | "tuesday"
                | "wednesday"
                | "thursday"
                | "friday"
                | "saturday"
                | "sunday"
                | "tomorrow"
                | "week"
                | "weekend"
                | "month"
                | "year"
                | "christmas"
        ) || month_number(w).is_some()
            || w.ends_with("st") && w[..w.len() - 2].parse::<u32>().is_ok()
            || w.ends_with("nd") && w[..w.len() - 2].parse::<u32>().is_ok()
            || w.ends_with("rd") && w[..w.len() - 2].parse::<u32>().is_ok()
            || w.ends_with("th") && w[..w.len() - 2].parse::<u32>().is_ok()
    })
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

    const UTC: TimeZone = TimeZone::UTC;

    fn day(y: i64, m: u32, d: i64) -> u64 {
        day_start_ms(y, m, d, &UTC).unwrap()
    }

    #[test]
    fn civil_dates_in_a_zone() {
        assert_eq!(day(2023, 1, 1), 19_358 * DAY_MS);
        assert_eq!(civil_date(19_358 * DAY_MS, &UTC), Some((2023, 1, 1)));
        assert_eq!(day_start_ms(2023, 2, 30, &UTC), None);
        // Lisbon is UTC+1 in summer: its 1 May starts at 23:00 UTC on 30 April.
        let lisbon = TimeZone::get("Europe/Lisbon").unwrap();
        assert_eq!(
            day_start_ms(2022, 5, 1, &lisbon),
            Some(day(2022, 5, 1) - 3_600_000)
        );
        assert_eq!(
            civil_date(day(2022, 5, 1) - 1_800_000, &lisbon),
            Some((2022, 5, 1))
        );
        // The day the clocks go forward is 23 hours long.
        let span = period_in("on 27 March 2022", &lisbon).unwrap();
        assert!(matches!(span, Period::Span { start, end } if end - start == 23 * 3_600_000));
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
        let may1 = day(2022, 5, 1);
        assert_eq!(
            period_in("What movie did Joanna watch on 1 May, 2022?", &UTC),
            Some(Period::Span {
                start: may1,
                end: may1 + DAY_MS
            })
        );
        assert_eq!(
            period_in("What happened on May 1, 2022?", &UTC),
            period_in("on 1 May 2022", &UTC)
        );
        let july = day(2022, 7, 1);
        let august = day(2022, 8, 1);
        assert_eq!(
            period_in("Where did Joanna travel to in July 2022?", &UTC),
            Some(Period::Span {
                start: july,
                end: august
            })
        );
        assert_eq!(
            period_in("Which spot did she visit in May?", &UTC),
            Some(Period::Month(5))
        );
        assert_eq!(period_in("You may go now", &UTC), None);
        assert_eq!(
            period_in("When did Nate win his third tourney?", &UTC),
            None
        );
        let p = period_in("in March", &UTC).unwrap();
        assert!(p.covers(day(2023, 3, 20), 7, &UTC));
        assert!(p.covers(day(2023, 4, 3), 7, &UTC));
        assert!(!p.covers(day(2023, 4, 20), 7, &UTC));
    }

    /// Issue 16: numbers past u64 and i64 overflowed (a panic with overflow checks).
    #[test]
    fn numbers_too_large_saturate() {
        let now = day(2026, 3, 28);
        assert_eq!(
            validity("I moved here 18446744073709551615 years ago", now, &UTC),
            (Some(0), None)
        );
        assert_eq!(
            validity("I'm away for the next 99999999999999 years", now, &UTC),
            (None, Some(u64::MAX))
        );
        assert_eq!(
            period_in("What happened in December 9223372036854775807?", &UTC),
            None
        );
    }

    #[test]
    fn the_time_a_fact_holds() {
        let tz = UTC;
        let now = day(2026, 12, 2) + 15 * 3_600_000;
        let v = |t: &str| validity(t, now, &tz);
        assert_eq!(
            v("My brother Tom moved to Leeds last year."),
            (Some(day(2025, 1, 1)), None)
        );
        assert_eq!(
            v("I've played the cello since 2019"),
            (Some(day(2019, 1, 1)), None)
        );
        assert_eq!(
            v("we've lived here since May"),
            (Some(day(2026, 5, 1)), None)
        );
        assert_eq!(
            v("I started at the bakery three weeks ago").0,
            Some(now - 21 * DAY_MS)
        );
        assert_eq!(v("Mia broke her arm yesterday").0, Some(day(2026, 12, 1)));
        assert_eq!(
            v("I'm in Leeds until Friday"),
            (None, Some(day(2026, 12, 5)))
        );
        assert_eq!(
            v("Gran is staying with us for the next two weeks"),
            (None, Some(now + 14 * DAY_MS))
        );
        assert_eq!(v("We're going to Lisbon next week"), (None, None));
        assert_eq!(v("The corner shop is open until 10 pm"), (None, None));
        assert_eq!(v("my locker code is 4812"), (None, None));
    }
}
