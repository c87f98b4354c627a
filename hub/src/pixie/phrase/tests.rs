//! The phrase table: every phrasing the parser knows, with the instant it gives.

use super::*;

fn berlin() -> TimeZone {
    TimeZone::get("Europe/Berlin").unwrap()
}

fn at(local: &str) -> u64 {
    let dt: jiff::civil::DateTime = local.parse().unwrap();
    dt.to_zoned(berlin()).unwrap().timestamp().as_millisecond() as u64
}

fn show(ms: u64) -> String {
    Timestamp::from_millisecond(ms as i64)
        .unwrap()
        .to_zoned(berlin())
        .strftime("%Y-%m-%dT%H:%M%:z")
        .to_string()
}

/// Saturday 28 March 2026, 10:00 CET; Berlin moves to CEST at 02:00 the next night.
const SPRING: &str = "2026-03-28T10:00";
/// Saturday 24 October 2026, 10:00 CEST; Berlin moves back to CET at 03:00 the next night.
const AUTUMN: &str = "2026-10-24T10:00";
/// Wednesday 25 November 2026, 21:30 CET.
const EVENING: &str = "2026-11-25T21:30";
/// Wednesday 25 November 2026, 23:45 CET: late in the evening.
const LATE: &str = "2026-11-25T23:45";
/// Thursday 26 November 2026, 00:40 CET: the small hours of Wednesday night.
const SMALL_HOURS: &str = "2026-11-26T00:40";
/// Sunday 31 January 2027, 10:00 CET: a month longer than the next.
const MONTH_END: &str = "2027-01-31T10:00";

#[test]
fn the_phrase_table() {
    // (now, phrase, expected instant in Berlin with its offset, expected repeat)
    let table: &[(&str, &str, &str, Option<&str>)] = &[
        // Relative: real time, across the DST change too.
        (SPRING, "in 20 minutes", "2026-03-28T10:20+01:00", None),
        (SPRING, "in an hour", "2026-03-28T11:00+01:00", None),
        (SPRING, "in half an hour", "2026-03-28T10:30+01:00", None),
        (
            SPRING,
            "in an hour and a half",
            "2026-03-28T11:30+01:00",
            None,
        ),
        (
            SPRING,
            "in 1 hour and 20 minutes",
            "2026-03-28T11:20+01:00",
            None,
        ),
        (
            SPRING,
            "in twenty five minutes",
            "2026-03-28T10:25+01:00",
            None,
        ),
        (SPRING, "in 90 seconds", "2026-03-28T10:01+01:00", None),
        (SPRING, "for 10 minutes", "2026-03-28T10:10+01:00", None),
        (
            SPRING,
            "in a couple of minutes",
            "2026-03-28T10:02+01:00",
            None,
        ),
        (
            SPRING,
            "20 minutes from now",
            "2026-03-28T10:20+01:00",
            None,
        ),
        (SPRING, "in 24 hours", "2026-03-29T11:00+02:00", None),
        (AUTUMN, "in 24 hours", "2026-10-25T09:00+01:00", None),
        // Relative days are civil: the same wall-clock time.
        (SPRING, "in 2 days", "2026-03-30T09:00+02:00", None),
        (SPRING, "in 3 days at 6 pm", "2026-03-31T18:00+02:00", None),
        // Absolute times of day.
        (SPRING, "at 11:15", "2026-03-28T11:15+01:00", None),
        (SPRING, "at 8 pm", "2026-03-28T20:00+01:00", None),
        (SPRING, "at 8.30pm", "2026-03-28T20:30+01:00", None),
        (SPRING, "at 9 am", "2026-03-29T09:00+02:00", None),
        (SPRING, "at noon", "2026-03-28T12:00+01:00", None),
        (SPRING, "at midnight", "2026-03-29T00:00+01:00", None),
        (
            SPRING,
            "at half past 7 in the evening",
            "2026-03-28T19:30+01:00",
            None,
        ),
        (
            SPRING,
            "at quarter to 9 tonight",
            "2026-03-28T20:45+01:00",
            None,
        ),
        (SPRING, "at 20 past 4", "2026-03-28T16:20+01:00", None),
        (SPRING, "this evening", "2026-03-28T19:00+01:00", None),
        (SPRING, "tonight", "2026-03-28T21:00+01:00", None),
        (SPRING, "at 7 o'clock", "2026-03-28T19:00+01:00", None),
        // Tomorrow and named days; DST: the gap moves forward, 10:00 stays 10:00.
        (SPRING, "tomorrow at 10", "2026-03-29T10:00+02:00", None),
        (
            SPRING,
            "tomorrow at 2:30 am",
            "2026-03-29T03:30+02:00",
            None,
        ),
        (SPRING, "tomorrow morning", "2026-03-29T09:00+02:00", None),
        (SPRING, "tomorrow", "2026-03-29T09:00+02:00", None),
        (
            SPRING,
            "the day after tomorrow at 18:00",
            "2026-03-30T18:00+02:00",
            None,
        ),
        (
            AUTUMN,
            "tomorrow at 2:30 am",
            "2026-10-25T02:30+02:00",
            None,
        ),
        (AUTUMN, "tomorrow at 8", "2026-10-25T08:00+01:00", None),
        (SPRING, "on Monday at 7", "2026-03-30T07:00+02:00", None),
        (SPRING, "on Monday at 3", "2026-03-30T15:00+02:00", None),
        (
            SPRING,
            "next Tuesday at 9:45",
            "2026-03-31T09:45+02:00",
            None,
        ),
        (
            SPRING,
            "on Saturday at 9 pm",
            "2026-03-28T21:00+01:00",
            None,
        ),
        (
            SPRING,
            "next Saturday at 9 pm",
            "2026-04-04T21:00+02:00",
            None,
        ),
        (SPRING, "Friday evening", "2026-04-03T19:00+02:00", None),
        (SPRING, "next week", "2026-03-30T09:00+02:00", None),
        (EVENING, "this weekend", "2026-11-28T09:00+01:00", None),
        // Dates.
        (SPRING, "on the 5th", "2026-04-05T09:00+02:00", None),
        (
            SPRING,
            "on the 30th at 8 am",
            "2026-03-30T08:00+02:00",
            None,
        ),
        (
            SPRING,
            "on 3 December at 10 am",
            "2026-12-03T10:00+01:00",
            None,
        ),
        (SPRING, "on December 3rd", "2026-12-03T09:00+01:00", None),
        (
            SPRING,
            "on the 1st of March",
            "2027-03-01T09:00+01:00",
            None,
        ),
        // Ambiguous: a bare hour is the next one that comes.
        (SPRING, "at 8", "2026-03-28T20:00+01:00", None),
        (SPRING, "at 11", "2026-03-28T11:00+01:00", None),
        (EVENING, "at 8", "2026-11-26T08:00+01:00", None),
        (EVENING, "at 10", "2026-11-25T22:00+01:00", None),
        // Recurring.
        (
            SPRING,
            "every day at 8",
            "2026-03-29T08:00+02:00",
            Some("every day at 8 am"),
        ),
        (
            SPRING,
            "every morning",
            "2026-03-29T09:00+02:00",
            Some("every day at 9 am"),
        ),
        (
            SPRING,
            "every Monday at 7 pm",
            "2026-03-30T19:00+02:00",
            Some("every Monday at 7 pm"),
        ),
        (
            SPRING,
            "every Tuesday and Thursday at 6",
            "2026-03-31T18:00+02:00",
            Some("every Tuesday and Thursday at 6 pm"),
        ),
        (
            SPRING,
            "every weekday at 7",
            "2026-03-30T07:00+02:00",
            Some("every weekday at 7 am"),
        ),
        (
            SPRING,
            "on Mondays",
            "2026-03-30T09:00+02:00",
            Some("every Monday at 9 am"),
        ),
        (
            SPRING,
            "every 2 hours",
            "2026-03-28T12:00+01:00",
            Some("every 2 hours"),
        ),
        (
            SPRING,
            "hourly",
            "2026-03-28T11:00+01:00",
            Some("every hour"),
        ),
        (
            SPRING,
            "daily at 21:00",
            "2026-03-28T21:00+01:00",
            Some("every day at 9 pm"),
        ),
        (
            SPRING,
            "weekly on Friday",
            "2026-04-03T09:00+02:00",
            Some("every Friday at 9 am"),
        ),
        (
            SPRING,
            "every Saturday at 9",
            "2026-04-04T09:00+02:00",
            Some("every Saturday at 9 am"),
        ),
        (
            SPRING,
            "every day at midnight",
            "2026-03-29T00:00+01:00",
            Some("every day at midnight"),
        ),
        // Days and weeks from now count the calendar, at the default time.
        (SPRING, "in 3 days", "2026-03-31T09:00+02:00", None),
        (SPRING, "in a week", "2026-04-04T09:00+02:00", None),
        (SPRING, "in two weeks", "2026-04-11T09:00+02:00", None),
        (SPRING, "in a fortnight", "2026-04-11T09:00+02:00", None),
        (SPRING, "in 10 days at 9", "2026-04-07T09:00+02:00", None),
        (
            EVENING,
            "in a couple of days",
            "2026-11-27T09:00+01:00",
            None,
        ),
        (EVENING, "in a few days", "2026-11-28T09:00+01:00", None),
        (AUTUMN, "in a week at 6 pm", "2026-10-31T18:00+01:00", None),
        (SPRING, "a week from now", "2026-04-04T09:00+02:00", None),
        (SPRING, "a week from today", "2026-04-04T09:00+02:00", None),
        (
            SPRING,
            "a week from tomorrow",
            "2026-04-05T09:00+02:00",
            None,
        ),
        (SPRING, "a week today", "2026-04-04T09:00+02:00", None),
        (
            EVENING,
            "two weeks from today at noon",
            "2026-12-09T12:00+01:00",
            None,
        ),
        // Months: the same day of the month, the last where the month is shorter.
        (SPRING, "in a month", "2026-04-28T09:00+02:00", None),
        (MONTH_END, "in a month", "2027-02-28T09:00+01:00", None),
        (
            SPRING,
            "in 3 months at 8 am",
            "2026-06-28T08:00+02:00",
            None,
        ),
        (SPRING, "in a year", "2027-03-28T09:00+02:00", None),
        // The small hours belong to the night before.
        (
            SPRING,
            "at 2 in the morning",
            "2026-03-29T03:00+02:00",
            None,
        ),
        (
            EVENING,
            "at 2 in the morning",
            "2026-11-26T02:00+01:00",
            None,
        ),
        (
            EVENING,
            "at half past one at night",
            "2026-11-26T01:30+01:00",
            None,
        ),
        (EVENING, "at 1 am", "2026-11-26T01:00+01:00", None),
        (EVENING, "at 3am tonight", "2026-11-26T03:00+01:00", None),
        (LATE, "tonight at 1", "2026-11-26T01:00+01:00", None),
        (LATE, "at 12 tonight", "2026-11-26T00:00+01:00", None),
        (LATE, "tonight at midnight", "2026-11-26T00:00+01:00", None),
        (
            LATE,
            "tonight at half past 12",
            "2026-11-26T00:30+01:00",
            None,
        ),
        (SMALL_HOURS, "tonight at 3", "2026-11-26T03:00+01:00", None),
        (SMALL_HOURS, "at 5 am", "2026-11-26T05:00+01:00", None),
        (
            SPRING,
            "tomorrow night at 1 am",
            "2026-03-30T01:00+02:00",
            None,
        ),
        (
            SPRING,
            "on Friday night at 2",
            "2026-04-04T02:00+02:00",
            None,
        ),
        (
            SPRING,
            "Saturday night at 1",
            "2026-03-29T01:00+01:00",
            None,
        ),
        // The same time of day on another day: wall-clock, across the DST change too.
        (SPRING, "this time tomorrow", "2026-03-29T10:00+02:00", None),
        (AUTUMN, "this time tomorrow", "2026-10-25T10:00+01:00", None),
        (
            SPRING,
            "this time next week",
            "2026-04-04T10:00+02:00",
            None,
        ),
        (
            EVENING,
            "same time next week",
            "2026-12-02T21:30+01:00",
            None,
        ),
        (
            EVENING,
            "at the same time on Friday",
            "2026-11-27T21:30+01:00",
            None,
        ),
        (
            SPRING,
            "this time next month",
            "2026-04-28T10:00+02:00",
            None,
        ),
        (
            EVENING,
            "this time in 3 days",
            "2026-11-28T21:30+01:00",
            None,
        ),
        // The morning, said in the evening or in the night, is the next one.
        (EVENING, "in the morning", "2026-11-26T09:00+01:00", None),
        (EVENING, "tomorrow morning", "2026-11-26T09:00+01:00", None),
        (
            EVENING,
            "tomorrow morning at 6:30",
            "2026-11-26T06:30+01:00",
            None,
        ),
        (
            EVENING,
            "at 7 in the morning",
            "2026-11-26T07:00+01:00",
            None,
        ),
        (
            SMALL_HOURS,
            "in the morning",
            "2026-11-26T09:00+01:00",
            None,
        ),
        // First thing, and the end of the day.
        (
            EVENING,
            "first thing tomorrow",
            "2026-11-26T08:00+01:00",
            None,
        ),
        (
            EVENING,
            "first thing in the morning",
            "2026-11-26T08:00+01:00",
            None,
        ),
        (
            EVENING,
            "first thing tomorrow morning",
            "2026-11-26T08:00+01:00",
            None,
        ),
        (
            SPRING,
            "tomorrow first thing",
            "2026-03-29T08:00+02:00",
            None,
        ),
        (
            SPRING,
            "first thing on Monday",
            "2026-03-30T08:00+02:00",
            None,
        ),
        (
            SPRING,
            "first thing next week",
            "2026-03-30T08:00+02:00",
            None,
        ),
        (
            SPRING,
            "by the end of the day",
            "2026-03-28T17:00+01:00",
            None,
        ),
        (
            SPRING,
            "at the end of the day tomorrow",
            "2026-03-29T17:00+02:00",
            None,
        ),
        (SPRING, "end of day Friday", "2026-04-03T17:00+02:00", None),
        (
            EVENING,
            "by the end of the day on Monday",
            "2026-11-30T17:00+01:00",
            None,
        ),
        // Later today.
        (SPRING, "this afternoon", "2026-03-28T15:00+01:00", None),
        (
            SPRING,
            "this afternoon at 4",
            "2026-03-28T16:00+01:00",
            None,
        ),
        (SPRING, "later today at 5", "2026-03-28T17:00+01:00", None),
        (
            SPRING,
            "later this afternoon",
            "2026-03-28T15:00+01:00",
            None,
        ),
        (SPRING, "later at 8", "2026-03-28T20:00+01:00", None),
        (SPRING, "later on tonight", "2026-03-28T21:00+01:00", None),
        (
            SPRING,
            "later this evening at half past 8",
            "2026-03-28T20:30+01:00",
            None,
        ),
        (
            SMALL_HOURS,
            "later today at 11",
            "2026-11-26T11:00+01:00",
            None,
        ),
        // The weekend.
        (EVENING, "on the weekend", "2026-11-28T09:00+01:00", None),
        (
            EVENING,
            "at the weekend at 10",
            "2026-11-28T10:00+01:00",
            None,
        ),
        (EVENING, "over the weekend", "2026-11-28T09:00+01:00", None),
        (
            SPRING,
            "on the weekend at 8 pm",
            "2026-03-28T20:00+01:00",
            None,
        ),
        // Next month: its 1st, or the day named.
        (SPRING, "next month", "2026-04-01T09:00+02:00", None),
        (MONTH_END, "next month", "2027-02-01T09:00+01:00", None),
        (
            SPRING,
            "on the 1st of next month",
            "2026-04-01T09:00+02:00",
            None,
        ),
        (
            EVENING,
            "on the 15th of next month at 6 pm",
            "2026-12-15T18:00+01:00",
            None,
        ),
        (
            EVENING,
            "next month on the 3rd",
            "2026-12-03T09:00+01:00",
            None,
        ),
        // More days and times.
        (SPRING, "at noon tomorrow", "2026-03-29T12:00+02:00", None),
        (
            SPRING,
            "Sunday at half past ten",
            "2026-03-29T10:30+02:00",
            None,
        ),
    ];
    assert!(table.len() >= 100);
    for (now, phrase, want, repeat) in table {
        let due = parse(phrase, at(now), &berlin())
            .unwrap_or_else(|e| panic!("{phrase:?} at {now}: {e}"));
        assert_eq!(show(due.at_ms), *want, "{phrase:?} at {now}");
        assert_eq!(
            due.repeat.map(|r| r.describe()).as_deref(),
            *repeat,
            "{phrase:?}"
        );
    }
}

#[test]
fn what_the_parser_assumed_is_said_back() {
    let due = parse("at 8", at(SPRING), &berlin()).unwrap();
    assert_eq!(due.assumed, ["8 pm"]);
    let due = parse("on Friday", at(SPRING), &berlin()).unwrap();
    assert_eq!(due.assumed, ["9 am, the default time"]);
    let due = parse("at 8 pm", at(SPRING), &berlin()).unwrap();
    assert!(due.assumed.is_empty());
    let due = parse("later at 8", at(SPRING), &berlin()).unwrap();
    assert_eq!(due.assumed, ["8 pm"]);
    let due = parse("in a week", at(SPRING), &berlin()).unwrap();
    assert_eq!(due.assumed, ["9 am, the default time"]);
    assert!(!due.relative);
    let due = parse("this time tomorrow", at(SPRING), &berlin()).unwrap();
    assert!(due.assumed.is_empty());
    assert!(
        parse("in 5 minutes", at(SPRING), &berlin())
            .unwrap()
            .relative
    );
    assert!(!parse("at 5 pm", at(SPRING), &berlin()).unwrap().relative);
}

#[test]
fn a_recurring_reminder_keeps_its_wall_clock_time_across_dst() {
    let due = parse("every day at 8", at(SPRING), &berlin()).unwrap();
    let repeat = due.repeat.unwrap();
    let mut t = due.at_ms;
    let mut seen = vec![show(t)];
    for _ in 0..2 {
        t = repeat.next_after(t, &berlin()).unwrap();
        seen.push(show(t));
    }
    assert_eq!(
        seen,
        [
            "2026-03-29T08:00+02:00",
            "2026-03-30T08:00+02:00",
            "2026-03-31T08:00+02:00"
        ]
    );
    let hourly = Repeat::Every { ms: HOUR_MS };
    assert_eq!(hourly.next_after(5, &berlin()), Some(5 + HOUR_MS));
}

/// Issue 16: "in 8000000 days" panicked in jiff (`days()` past its span limit) and took the
/// answer with it; numbers past the calendar are an error the user hears.
#[test]
fn times_past_the_end_of_the_calendar_are_too_far_not_a_panic() {
    let now = at(SPRING);
    for phrase in [
        "in 8000000 days",
        "in 7000000 days",
        "in 4294967295 weeks",
        "in 99999 years",
        "in 4294967295 months",
        "a week and 8000000 days from now",
        "in 8000000 days and 1 day",
        // Real time: past the year 9999, or past what a u64 of ms holds.
        "in 2912400 days and a half",
        "in 4294967295 hours",
        "in 4294967295 fortnights and a half and 4294967295 fortnights and a half and \
         4294967295 fortnights and a half and 4294967295 fortnights and a half",
        "every 4294967295 hours",
    ] {
        assert_eq!(
            parse(phrase, now, &berlin()),
            Err(PhraseError::TooFar),
            "{phrase:?}"
        );
    }
    // The end of jiff's calendar: its last instant is 9999-12-30T22:00Z, so that every
    // zone has a civil time for it.
    let last = at("9999-12-29T10:00");
    assert_eq!(
        show(parse("tomorrow at 8", last, &berlin()).unwrap().at_ms),
        "9999-12-30T08:00+01:00"
    );
    for phrase in [
        "the day after tomorrow at 8",
        "in 3 days",
        "tomorrow at 11:30 pm",
        "on 2 January",
    ] {
        assert_eq!(
            parse(phrase, last, &berlin()),
            Err(PhraseError::TooFar),
            "{phrase:?}"
        );
    }
    // A clock past any u64 that jiff can read is no "now".
    assert!(matches!(
        parse("in 5 minutes", u64::MAX, &berlin()),
        Err(PhraseError::Unknown(_))
    ));
    // A stored repeat whose next time is past the calendar has none.
    assert_eq!(
        Repeat::Every { ms: u64::MAX }.next_after(now, &berlin()),
        None
    );
    assert_eq!(
        Repeat::Every {
            ms: 247_360_985_886_081_500
        }
        .next_after(18_199_383_087_823_470_116, &berlin()),
        None
    );
}

/// Other numbers out of range are what they always were: not a number, not a time, no
/// such date.
#[test]
fn huge_and_impossible_numbers_are_errors() {
    let now = at(SPRING);
    for phrase in [
        "in 99999999999999999999 minutes",
        "in 18446744073709551616 days",
        "every 0 days",
        "every 0 minutes",
        "at 99:99",
        "at 24:00",
        "at 0 to 8",
        "at 4294967295",
        "at 127:00",
        "at 128:00",
        "on the 99999th",
    ] {
        assert!(
            matches!(parse(phrase, now, &berlin()), Err(PhraseError::Unknown(_))),
            "{phrase:?}: {:?}",
            parse(phrase, now, &berlin())
        );
    }
    for phrase in ["on February 30", "on 31 April", "on the 31st of next month"] {
        assert!(
            matches!(
                parse(phrase, at(AUTUMN), &berlin()),
                Err(PhraseError::NoSuchDate(_))
            ),
            "{phrase:?}: {:?}",
            parse(phrase, at(AUTUMN), &berlin())
        );
    }
}

#[test]
fn unknown_past_and_impossible_phrases_are_errors() {
    let now = at(SPRING);
    for phrase in [
        "",
        "whenever",
        "at banana",
        "at 25:00",
        "at 8 at 9",
        "in 2 hours tomorrow",
        "every other day",
        "at 13 pm",
        "later",
        "later on",
        "this time",
        "this time tomorrow at 8",
        "every day at this time",
        "in a month and a half",
        "every 2 weeks",
        "every fortnight",
        "in a week on Friday",
        "in 2 hours from today",
        "every Monday at midnight",
    ] {
        assert!(
            matches!(parse(phrase, now, &berlin()), Err(PhraseError::Unknown(_))),
            "{phrase:?}: {:?}",
            parse(phrase, now, &berlin())
        );
    }
    assert!(matches!(
        parse("today at 9 am", now, &berlin()),
        Err(PhraseError::Past(_))
    ));
    assert_eq!(parse("today", now, &berlin()), Err(PhraseError::NoTime));
    assert_eq!(
        parse("later today", now, &berlin()),
        Err(PhraseError::NoTime)
    );
    assert!(matches!(
        parse("on 31 April", now, &berlin()),
        Err(PhraseError::NoSuchDate(_))
    ));
    assert!(matches!(
        parse("on the 30th of next month", at(MONTH_END), &berlin()),
        Err(PhraseError::NoSuchDate(_))
    ));
    // Today's times that have gone, said in the evening or in the small hours.
    for (now, phrase) in [
        (EVENING, "by the end of the day"),
        (EVENING, "later this afternoon"),
        (EVENING, "later at 8"),
        (SMALL_HOURS, "tonight at half past 12"),
    ] {
        assert!(
            matches!(parse(phrase, at(now), &berlin()), Err(PhraseError::Past(_))),
            "{phrase:?} at {now}: {:?}",
            parse(phrase, at(now), &berlin())
        );
    }
}

#[test]
fn tokens_split_meridiems_and_dots() {
    assert_eq!(tokens("At 8.30PM, please!"), ["at", "8:30", "pm", "please"]);
    assert_eq!(tokens("7 o'clock a.m."), ["7", "oclock", "am"]);
    assert_eq!(tokens("twenty-five"), ["twenty", "five"]);
}
