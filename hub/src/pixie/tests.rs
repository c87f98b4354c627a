//! The scheduler with a controllable clock: every `plan` and `set` takes the time, so these
//! tests walk through a household's evening and morning in milliseconds. The store, the
//! phrase parser and the decision are the real ones.

use hearth_shared::Presence;

use super::*;

fn berlin(local: &str) -> u64 {
    let dt: jiff::civil::DateTime = local.parse().unwrap();
    dt.to_zoned(TimeZone::get("Europe/Berlin").unwrap())
        .unwrap()
        .timestamp()
        .as_millisecond() as u64
}

fn config(dir: &std::path::Path) -> PixieConfig {
    PixieConfig {
        path: dir.join("pixie"),
        time_zone: "Europe/Berlin".into(),
        quiet_hours: "22:00-07:00".into(),
        cooldown_s: 300,
        ..PixieConfig::default()
    }
}

fn household() -> Rooms {
    let mut rooms = Rooms::default();
    for (terminal, room) in [("k1", "kitchen"), ("s1", "study"), ("b1", "bedroom")] {
        rooms.presence(Presence {
            terminal: terminal.into(),
            room: room.into(),
            online: true,
            at_ms: 0,
            capabilities: vec!["text".into()],
            will: None,
        });
    }
    rooms
}

fn offline(rooms: &mut Rooms, terminal: &str, room: &str) {
    rooms.presence(Presence {
        terminal: terminal.into(),
        room: room.into(),
        online: false,
        at_ms: 0,
        capabilities: vec![],
        will: None,
    });
}

/// Plans and records every delivery at `now`, as the service does after publishing.
fn tick(p: &Pixie, now: u64, rooms: &Rooms) -> Vec<Delivery> {
    let plan = p.plan(now, rooms).unwrap();
    for d in &plan {
        p.delivered(d, now).unwrap();
    }
    plan
}

fn set(p: &Pixie, what: &str, when: &str, room: &str, now: u64) -> String {
    p.set(Kind::Reminder, what, when, &[], room, now).unwrap().1
}

#[test]
fn a_reminder_set_in_the_kitchen_fires_on_time_where_the_user_was_last_heard() {
    let dir = tempfile::tempdir().unwrap();
    let evening = berlin("2026-11-23T20:00");
    let p = Pixie::open(config(dir.path()), evening).unwrap();
    let mut rooms = household();
    rooms.heard("kitchen", evening);
    let said = set(&p, "water the plants", "tomorrow at 8", "kitchen", evening);
    assert_eq!(
        said,
        "Okay, I'll remind you tomorrow at 8 am: water the plants."
    );
    // The next morning the user is heard in the study.
    rooms.heard("study", berlin("2026-11-24T07:40"));
    assert!(tick(&p, berlin("2026-11-24T07:59:59"), &rooms).is_empty());
    let plan = tick(&p, berlin("2026-11-24T08:00"), &rooms);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].targets, [("s1".to_string(), "study".to_string())]);
    assert_eq!(plan[0].speech.text, "Reminder: water the plants.");
    assert!(
        !plan[0].fallback && !plan[0].reminders[0].1,
        "on time, not late"
    );
    assert!(tick(&p, berlin("2026-11-24T08:00:01"), &rooms).is_empty());
    let all = p.reminders().all().unwrap();
    assert!(
        matches!(&all[0].state, reminders::State::Said { room, late: false, .. } if room == "study")
    );
}

#[test]
fn named_rooms_get_it_and_an_offline_room_falls_back_without_losing_it() {
    let dir = tempfile::tempdir().unwrap();
    let now = berlin("2026-11-23T10:00");
    let p = Pixie::open(config(dir.path()), now).unwrap();
    let mut rooms = household();
    rooms.heard("study", now);
    p.set(
        Kind::Reminder,
        "the bins",
        "at 11",
        &["kitchen".into(), "bedroom".into()],
        "study",
        now,
    )
    .unwrap();
    let plan = tick(&p, berlin("2026-11-23T11:00"), &rooms);
    let mut rooms_said: Vec<&str> = plan[0].targets.iter().map(|(_, r)| r.as_str()).collect();
    rooms_said.sort();
    assert_eq!(rooms_said, ["bedroom", "kitchen"], "only the named rooms");

    // The study is where the user is, but its terminal is offline: the kitchen says it.
    p.set(Kind::Reminder, "stretch", "at 12", &[], "study", now)
        .unwrap();
    offline(&mut rooms, "s1", "study");
    rooms.heard("kitchen", berlin("2026-11-23T10:30"));
    rooms.heard("study", berlin("2026-11-23T11:30"));
    let plan = tick(&p, berlin("2026-11-23T12:00"), &rooms);
    assert_eq!(plan[0].targets, [("k1".to_string(), "kitchen".to_string())]);
    assert!(plan[0].fallback);

    // No terminal at all: it stays pending until one comes back.
    p.set(Kind::Reminder, "call Anna", "at 13:00", &[], "study", now)
        .unwrap();
    for (t, r) in [("k1", "kitchen"), ("b1", "bedroom")] {
        offline(&mut rooms, t, r);
    }
    assert!(tick(&p, berlin("2026-11-23T13:00"), &rooms).is_empty());
    assert!(tick(&p, berlin("2026-11-23T13:20"), &rooms).is_empty());
    assert_eq!(p.reminders().pending().unwrap().len(), 1);
    rooms.presence(Presence {
        terminal: "b1".into(),
        room: "bedroom".into(),
        online: true,
        at_ms: 0,
        capabilities: vec![],
        will: None,
    });
    let plan = tick(&p, berlin("2026-11-23T13:21"), &rooms);
    assert_eq!(plan[0].speech.text, "Reminder: call Anna.");
    assert!(p.reminders().pending().unwrap().is_empty());
}

#[test]
fn quiet_hours_delay_a_reminder_and_the_confirmation_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let evening = berlin("2026-11-23T20:00");
    let p = Pixie::open(config(dir.path()), evening).unwrap();
    let rooms = household();
    let said = set(&p, "take the bread out", "in 3 hours", "kitchen", evening);
    assert_eq!(
        said,
        "Okay, I'll remind you today at 11 pm: take the bread out. \
         That falls in quiet hours, so I'll say it tomorrow at 7 am."
    );
    // A timer is urgent enough for quiet hours.
    p.set(
        Kind::Timer,
        "5 minute",
        "in 5 minutes",
        &[],
        "kitchen",
        berlin("2026-11-23T22:55"),
    )
    .unwrap();
    let plan = tick(&p, berlin("2026-11-23T23:00"), &rooms);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].speech.text, "Your 5 minute timer is done.");
    assert!(tick(&p, berlin("2026-11-24T03:00"), &rooms).is_empty());
    assert!(tick(&p, berlin("2026-11-24T06:59"), &rooms).is_empty());
    let plan = tick(&p, berlin("2026-11-24T07:00"), &rooms);
    assert_eq!(plan[0].speech.text, "Reminder: take the bread out.");
    // Each decision is kept with its reason, newest first; a hold for the same reason is
    // kept once.
    let decisions = p.decisions();
    assert!(decisions[0].spoke, "{decisions:?}");
    assert!(
        decisions[0].what.contains("take the bread out"),
        "{decisions:?}"
    );
    assert!(
        decisions[0].what.contains(", said in the "),
        "{decisions:?}"
    );
    let held: Vec<_> = decisions.iter().filter(|d| !d.spoke).collect();
    assert_eq!(held.len(), 1, "{decisions:?}");
    assert!(held[0].why.contains("quiet"), "{decisions:?}");
}

#[test]
fn the_cooldown_spaces_proactive_speech_and_a_conversation_is_never_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let now = berlin("2026-11-23T07:30");
    let p = Pixie::open(config(dir.path()), now).unwrap();
    let mut rooms = household();
    rooms.heard("kitchen", now);
    set(&p, "feed the cat", "at 8", "kitchen", now);
    set(&p, "open the window", "at 8:02", "kitchen", now);
    assert_eq!(tick(&p, berlin("2026-11-23T08:00"), &rooms).len(), 1);
    // Due at 8:02, but the cooldown (300 s) holds it until 8:05.
    assert!(tick(&p, berlin("2026-11-23T08:02"), &rooms).is_empty());
    assert!(tick(&p, berlin("2026-11-23T08:04:59"), &rooms).is_empty());
    let plan = tick(&p, berlin("2026-11-23T08:05"), &rooms);
    assert_eq!(plan[0].speech.text, "Reminder: open the window.");

    // The user is talking in the kitchen: wait for the grace after the last words.
    set(&p, "leave for work", "at 8:30", "kitchen", now);
    rooms.heard("kitchen", berlin("2026-11-23T08:29:55"));
    assert!(tick(&p, berlin("2026-11-23T08:30"), &rooms).is_empty());
    rooms.answering("kitchen");
    assert!(tick(&p, berlin("2026-11-23T08:30:30"), &rooms).is_empty());
    rooms.answered("kitchen", berlin("2026-11-23T08:30:40"));
    assert!(tick(&p, berlin("2026-11-23T08:30:45"), &rooms).is_empty());
    assert_eq!(tick(&p, berlin("2026-11-23T08:30:50"), &rooms).len(), 1);
}

#[test]
fn a_reminder_due_during_an_outage_is_said_once_after_restart_and_marked_late() {
    let dir = tempfile::tempdir().unwrap();
    let rooms = household();
    {
        let before = berlin("2026-11-23T07:00");
        let p = Pixie::open(config(dir.path()), before).unwrap();
        set(&p, "water the plants", "at 8", "kitchen", before);
        set(&p, "stretch", "every day at 8:15", "kitchen", before);
        // The hub goes down at 7:10 and the store is closed with it.
    }
    let restart = berlin("2026-11-23T09:30");
    let p = Pixie::open(config(dir.path()), restart).unwrap();
    let plan = tick(&p, restart, &rooms);
    assert_eq!(plan.len(), 1, "both in one speech");
    assert_eq!(
        plan[0].speech.text,
        "Reminder: water the plants. This is late: it was due 90 minutes ago, while I was away. \
         Reminder: stretch. This is late: it was due 75 minutes ago, while I was away."
    );
    assert!(plan[0].reminders.iter().all(|(_, late)| *late));
    assert!(tick(&p, berlin("2026-11-23T09:31"), &rooms).is_empty());
    drop(p);
    // Another restart: nothing is said twice, and the daily one waits for tomorrow.
    let p = Pixie::open(config(dir.path()), berlin("2026-11-23T09:40")).unwrap();
    assert!(tick(&p, berlin("2026-11-23T09:40"), &rooms).is_empty());
    let pending = p.reminders().pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].due_ms, berlin("2026-11-24T08:15"));
    let plan = tick(&p, berlin("2026-11-24T08:15"), &rooms);
    assert_eq!(plan[0].speech.text, "Reminder: stretch.", "on time again");
}

#[test]
fn listing_and_cancelling_by_words() {
    let dir = tempfile::tempdir().unwrap();
    let now = berlin("2026-11-23T10:00");
    let p = Pixie::open(config(dir.path()), now).unwrap();
    assert_eq!(p.list(now).unwrap(), "You have no reminders.");
    set(&p, "water your plants", "tomorrow at 8", "kitchen", now);
    set(&p, "take your pills", "every day at 9 pm", "kitchen", now);
    p.set(
        Kind::Timer,
        "10 minute",
        "in 10 minutes",
        &[],
        "kitchen",
        now,
    )
    .unwrap();
    assert_eq!(
        p.list(now).unwrap(),
        "You have 3 reminders: a 10 minute timer, done in 10 minutes; every day at 9 pm, \
         take your pills; tomorrow at 8 am, water your plants."
    );
    assert_eq!(
        p.cancel(Some(""), true, now).unwrap(),
        "Okay, I've cancelled the 10 minute timer."
    );
    assert_eq!(
        p.cancel(Some("water my plants"), false, now).unwrap(),
        "Okay, I've cancelled the reminder: water your plants."
    );
    assert_eq!(
        p.cancel(Some("the boiler"), false, now).unwrap(),
        "I found no reminder about the boiler."
    );
    assert_eq!(
        p.cancel(None, false, now).unwrap(),
        "Okay, I've cancelled the reminder: take your pills."
    );
    assert_eq!(
        p.cancel(None, false, now).unwrap(),
        "You have no reminders to cancel."
    );
}

#[test]
fn a_time_that_has_passed_is_refused_in_words() {
    let dir = tempfile::tempdir().unwrap();
    let now = berlin("2026-11-23T10:00");
    let p = Pixie::open(config(dir.path()), now).unwrap();
    let err = p
        .set(Kind::Reminder, "x", "today at 9 am", &[], "kitchen", now)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "Sorry, 9 am on Monday, 23 November has already passed. Say, for example: remind me \
         to water the plants tomorrow at 8."
    );
    assert!(p.reminders().all().unwrap().is_empty());
}

#[test]
fn a_follow_up_is_asked_in_its_room_unless_the_user_is_stressed_or_away() {
    let dir = tempfile::tempdir().unwrap();
    let now = berlin("2026-11-23T10:00");
    let p = Pixie::open(config(dir.path()), now).unwrap();
    let mut rooms = household();
    let follow_up = Work::FollowUp {
        room: "study".into(),
        topic: "the exam".into(),
        question: "How did the exam go?".into(),
    };
    p.tasks()
        .schedule(follow_up, berlin("2026-11-23T13:00"), now)
        .unwrap();
    assert!(tick(&p, berlin("2026-11-23T12:59"), &rooms).is_empty());
    // Nobody heard for hours: not worth it yet.
    assert!(tick(&p, berlin("2026-11-23T13:00"), &rooms).is_empty());
    // Heard, but stressed: it waits.
    rooms.heard("kitchen", berlin("2026-11-23T13:01"));
    rooms.felt(true, berlin("2026-11-23T13:01"));
    assert!(tick(&p, berlin("2026-11-23T13:02"), &rooms).is_empty());
    // Calm again: asked in the study, its room, expecting an answer.
    rooms.felt(false, berlin("2026-11-23T13:05"));
    let plan = tick(&p, berlin("2026-11-23T13:06"), &rooms);
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].targets, [("s1".to_string(), "study".to_string())]);
    assert_eq!(plan[0].speech.text, "How did the exam go?");
    assert_eq!(plan[0].speech.reason, SpeechReason::Pixie);
    assert!(plan[0].speech.expects_answer);
    assert!(p.tasks().pending().unwrap().is_empty(), "asked once");

    // One that waits past follow_up_expire_hours is dropped, not asked a day late.
    let stale = Work::FollowUp {
        room: "study".into(),
        topic: "the boiler".into(),
        question: "Did the boiler get fixed?".into(),
    };
    p.tasks()
        .schedule(stale, berlin("2026-11-23T14:00"), now)
        .unwrap();
    assert!(tick(&p, berlin("2026-11-24T15:00"), &rooms).is_empty());
    assert!(p.tasks().pending().unwrap().is_empty());
}

#[test]
fn sweeps_and_reflections_are_jobs_for_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let now = berlin("2026-11-23T10:00");
    let p = Pixie::open(config(dir.path()), now).unwrap();
    p.tasks().schedule(Work::Sweep, now, now).unwrap();
    p.tasks()
        .schedule(
            Work::Reflect {
                room: "kitchen".into(),
            },
            now + 300_000,
            now,
        )
        .unwrap();
    let jobs = p.jobs(now).unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].work, Work::Sweep);
    assert_eq!(p.jobs(now + 300_000).unwrap().len(), 2);
}
