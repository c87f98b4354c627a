use super::*;
use crate::memory::record::NewMemory;

const NOW: u64 = 1_800_000_000_000;
const HOUR: u64 = 3_600_000;

fn remember(m: &Memories, text: &str, hours_ago: u64, salience: f32, v: [f32; 3]) -> Memory {
    let at = NOW - hours_ago * HOUR;
    let memory = m
        .remember(NewMemory {
            text: text.into(),
            room: "kitchen".into(),
            speaker: Speaker::User,
            created_at_ms: at,
            salience,
            source: None,
        })
        .unwrap();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    m.set_vector(memory.id, &v.map(|x| x / n)).unwrap();
    memory
}

/// Logs `text` in the question log, asked `hours_ago`.
fn ask(m: &Memories, text: &str, hours_ago: u64) -> Memory {
    m.log_question(
        NewMemory {
            text: text.into(),
            room: "kitchen".into(),
            speaker: Speaker::User,
            created_at_ms: NOW - hours_ago * HOUR,
            salience: 0.0,
            source: None,
        },
        None,
    )
    .unwrap()
}

fn texts(hits: &[Hit]) -> Vec<&str> {
    hits.iter().map(|h| h.memory.text.as_str()).collect()
}

#[test]
fn bm25_and_vectors_both_contribute_and_weights_matter() {
    let m = Memories::temporary(3).unwrap();
    remember(&m, "Anna lives in Porto", 100, 0.5, [1.0, 0.0, 0.0]);
    remember(
        &m,
        "my sibling moved to the coast",
        100,
        0.5,
        [0.9, 0.1, 0.0],
    );
    remember(&m, "the boiler needs a service", 1, 0.5, [0.0, 0.0, 1.0]);
    let l = LifecycleConfig::default();
    let c = RetrievalConfig::default();
    // Words find the first, meaning (the vector) finds the second too.
    let hits = retrieve(
        &m,
        "Where does Anna live",
        Some(&[1.0, 0.0, 0.0]),
        2,
        NOW,
        &c,
        &l,
    )
    .unwrap();
    assert_eq!(
        texts(&hits),
        ["Anna lives in Porto", "my sibling moved to the coast"]
    );
    assert!(hits[0].signals.bm25 > 0.0 && hits[0].signals.cosine > 0.99);
    assert_eq!(hits[1].signals.bm25, 0.0, "found by the vector alone");
    // Recency alone favours the boiler.
    let recent = RetrievalConfig {
        w_bm25: 0.0,
        w_cosine: 0.0,
        w_recency: 1.0,
        w_importance: 0.0,
        w_strength: 0.0,
        ..c.clone()
    };
    let hits = retrieve(&m, "Anna", Some(&[0.0, 0.0, 1.0]), 1, NOW, &recent, &l).unwrap();
    assert_eq!(texts(&hits), ["the boiler needs a service"]);
}

#[test]
fn a_memory_is_found_by_its_best_passage() {
    let m = Memories::temporary(3).unwrap();
    // A long turn's whole vector blurs its sentences; one passage is what is asked.
    let long = m
        .remember(NewMemory {
            text: "Mel: Busy week at work. I signed up for a pottery class.".into(),
            room: "kitchen".into(),
            speaker: Speaker::User,
            created_at_ms: NOW - HOUR,
            salience: 0.5,
            source: None,
        })
        .unwrap();
    m.set_embedding(
        long.id,
        &crate::memory::Embedding {
            whole: vec![0.6, 0.0, 0.8],
            passages: vec![vec![0.0, 0.0, 1.0], vec![1.0, 0.0, 0.0]],
        },
    )
    .unwrap();
    remember(
        &m,
        "Mel: the kids loved the museum",
        1,
        0.5,
        [0.8, 0.0, 0.6],
    );
    let l = LifecycleConfig::default();
    let c = RetrievalConfig::default();
    let q = "which hobby did she choose";
    let hits = retrieve(&m, q, Some(&[1.0, 0.0, 0.0]), 2, NOW, &c, &l).unwrap();
    assert_eq!(hits[0].memory.id, long.id);
    assert_eq!(hits[0].signals.passage, 1.0);
    assert_eq!(hits[1].signals.passage, 0.0, "no passages of its own");
    let off = RetrievalConfig {
        w_passage: 0.0,
        ..c
    };
    let hits = retrieve(&m, q, Some(&[1.0, 0.0, 0.0]), 2, NOW, &off, &l).unwrap();
    assert_ne!(hits[0].memory.id, long.id);
}

#[test]
fn an_answer_inherits_its_question_and_the_levers_switch_off() {
    let m = Memories::temporary(3).unwrap();
    let v = [0.0, 1.0, 0.0];
    remember(&m, "Tom: What do you feed your kitten?", 3, 0.5, v);
    // Said in answer to it (as ingest marks a turn after one that asked something).
    let mut answer = remember(&m, "Maya: Mostly salmon pate, nothing else.", 3, 0.5, v);
    answer.answers = true;
    m.update(&answer).unwrap();
    remember(&m, "Maya: The kitten sleeps all day.", 2, 0.5, v);
    let l = LifecycleConfig::default();
    let c = RetrievalConfig {
        w_cosine: 0.0,
        ..RetrievalConfig::default()
    };
    let q = "What does Maya feed her kitten?";
    let hits = retrieve(&m, q, None, 3, NOW, &c, &l).unwrap();
    // The answer shares only its speaker's name with the question, but it follows the
    // turn that shares the rest.
    assert_eq!(
        hits[0].memory.text,
        "Maya: Mostly salmon pate, nothing else."
    );
    assert!(hits[0].signals.neighbour > 0.0);
    assert!(hits.iter().any(|h| h.signals.speaker));
    let off = RetrievalConfig {
        neighbour_weight: 0.0,
        answer_carry: 0.0,
        ..c.clone()
    };
    let hits = retrieve(&m, q, None, 3, NOW, &off, &l).unwrap();
    assert_ne!(
        hits[0].memory.text,
        "Maya: Mostly salmon pate, nothing else."
    );
    assert_eq!(
        hits[2].memory.text,
        "Maya: Mostly salmon pate, nothing else."
    );
}

#[test]
fn a_logged_question_lends_its_score_to_its_answer_and_is_never_a_hit() {
    let m = Memories::temporary(3).unwrap();
    let v = [0.0, 1.0, 0.0];
    // Asked without a question mark: the log says it was asked.
    let asked = ask(&m, "what do you feed your kitten", 3);
    assert!(asked.asked);
    // Said in answer to it (as ingest marks a turn whose context asked a question).
    let mut answer = remember(&m, "Mostly salmon pate, nothing else.", 3, 0.5, v);
    answer.answers = true;
    m.update(&answer).unwrap();
    remember(&m, "The kitten sleeps all day.", 2, 0.5, v);
    let l = LifecycleConfig::default();
    // Only what a question carries to the turn after it, no other neighbour's share.
    let c = RetrievalConfig {
        w_cosine: 0.0,
        neighbour_weight: 0.0,
        ..RetrievalConfig::default()
    };
    let q = "What does she feed her kitten?";
    let hits = retrieve(&m, q, None, 3, NOW, &c, &l).unwrap();
    assert_eq!(
        texts(&hits),
        [
            "Mostly salmon pate, nothing else.",
            "The kitten sleeps all day."
        ]
    );
    assert!(hits[0].signals.neighbour > 0.0);
    // Without the carry the answer shares no word with the question.
    let off = RetrievalConfig {
        answer_carry: 0.0,
        ..c
    };
    let hits = retrieve(&m, q, None, 3, NOW, &off, &l).unwrap();
    assert_eq!(texts(&hits)[0], "The kitten sleeps all day.");
    assert!(hits.iter().all(|h| !h.memory.asked));
}

#[test]
fn a_named_date_favours_what_was_said_then() {
    let m = Memories::temporary(3).unwrap();
    let utc = jiff::tz::TimeZone::UTC;
    let day = |y, mo, d| crate::memory::when::day_start_ms(y, mo, d, &utc).unwrap();
    for (text, at) in [
        ("we watched a film at home", day(2022, 5, 2)),
        ("we watched a film at the cinema", day(2022, 8, 20)),
    ] {
        m.remember(NewMemory {
            text: text.into(),
            room: "den".into(),
            speaker: Speaker::User,
            created_at_ms: at,
            salience: 0.5,
            source: None,
        })
        .unwrap();
    }
    let l = LifecycleConfig::default();
    let c = RetrievalConfig::default();
    let now = day(2022, 9, 1);
    let top = |q: &str, c: &RetrievalConfig| {
        retrieve(&m, q, None, 1, now, c, &l).unwrap()[0]
            .memory
            .text
            .clone()
    };
    assert_eq!(
        top("What film did we watch on 1 May, 2022?", &c),
        "we watched a film at home"
    );
    assert_eq!(
        top("What film did we watch in August?", &c),
        "we watched a film at the cinema"
    );
    assert!(
        retrieve(&m, "film in August", None, 1, now, &c, &l).unwrap()[0]
            .signals
            .period
    );
}

#[test]
fn a_name_used_only_to_speak_to_someone_is_told_apart() {
    assert_eq!(named("What did Caroline's sister research?"), ["Caroline"]);
    assert_eq!(
        named("Where does Tom live now, and does I matter?"),
        ["Tom"]
    );
    assert!(named("Tom moved where?").is_empty());
    for text in [
        "Thanks, Tom!",
        "Hey Tom, how was the trip?",
        "Tom, your dentist called.",
        "That sounds great, Tom.",
    ] {
        assert!(addresses(text, "Tom"), "{text}");
    }
    for text in [
        "Tom moved to York.",
        "Thanks, Tom! Tom's sister called.",
        "I told Tom.",
        "Tommy, hi.",
        "They Tom, no.",
    ] {
        assert!(!addresses(text, "Tom"), "{text}");
    }
}

#[test]
fn a_memory_that_only_speaks_to_the_one_asked_about_ranks_lower() {
    let m = Memories::temporary(3).unwrap();
    let v = [1.0, 0.0, 0.0];
    remember(&m, "Good luck with the research, Caroline!", 2, 0.5, v);
    remember(&m, "Researching adoption agencies is my dream.", 2, 0.5, v);
    // With a speaker's name the memory says who said it: no penalty.
    remember(&m, "Mel: Good luck with the research, Caroline!", 2, 0.5, v);
    let l = LifecycleConfig::default();
    let q = "What did Caroline research?";
    let texts = |c: &RetrievalConfig| -> Vec<String> {
        retrieve(&m, q, None, 3, NOW, c, &l)
            .unwrap()
            .into_iter()
            .map(|h| h.memory.text)
            .collect()
    };
    let off = RetrievalConfig {
        w_addressed: 0.0,
        ..RetrievalConfig::default()
    };
    let on = RetrievalConfig {
        w_addressed: 3.0,
        ..off.clone()
    };
    assert_eq!(texts(&off)[2], "Researching adoption agencies is my dream.");
    assert_eq!(
        texts(&on),
        [
            "Mel: Good luck with the research, Caroline!",
            "Researching adoption agencies is my dream.",
            "Good luck with the research, Caroline!",
        ]
    );
}

#[test]
fn a_when_question_favours_the_memory_that_says_when() {
    let m = Memories::temporary(3).unwrap();
    let v = [1.0, 0.0, 0.0];
    remember(&m, "Mel: the pottery class felt great", 2, 0.5, v);
    remember(&m, "Mel: the pottery class began yesterday", 2, 0.5, v);
    let l = LifecycleConfig::default();
    let c = RetrievalConfig::default();
    let q = "When did Mel take the pottery class?";
    let top = |c: &RetrievalConfig| retrieve(&m, q, None, 2, NOW, c, &l).unwrap();
    let hits = top(&c);
    assert_eq!(
        hits[0].memory.text,
        "Mel: the pottery class began yesterday"
    );
    assert!(hits[0].signals.tells_when && !hits[1].signals.tells_when);
    // Without the lever, the tie goes to the older memory.
    let off = RetrievalConfig { w_when: 0.0, ..c };
    assert_eq!(
        top(&off)[0].memory.text,
        "Mel: the pottery class felt great"
    );
}

#[test]
fn a_memory_that_says_more_and_a_close_spelling_both_count() {
    let m = Memories::temporary(3).unwrap();
    let v = [1.0, 0.0, 0.0];
    remember(&m, "Mel: pottery, wow", 2, 0.5, v);
    remember(
        &m,
        "Mel: pottery on Thursdays with my sister keeps me calm",
        2,
        0.5,
        v,
    );
    let l = LifecycleConfig::default();
    let c = RetrievalConfig::default();
    // The two match the question's vector alike: what they say decides, and without
    // the lever the tie goes to the older memory.
    let alike = RetrievalConfig {
        w_bm25: 0.0,
        w_grams: 0.0,
        w_passage: 0.0,
        ..c.clone()
    };
    let top = |c: &RetrievalConfig| {
        retrieve(&m, "What about pottery?", Some(&v), 2, NOW, c, &l).unwrap()[0]
            .memory
            .text
            .clone()
    };
    assert_eq!(
        top(&alike),
        "Mel: pottery on Thursdays with my sister keeps me calm"
    );
    let off = RetrievalConfig {
        w_substance: 0.0,
        ..c.clone()
    };
    assert_eq!(
        top(&RetrievalConfig {
            w_substance: 0.0,
            ..alike
        }),
        "Mel: pottery, wow"
    );

    // "Thursdys" is no word of either; its trigrams are most of "Thursdays". Both are
    // candidates by their vectors, which tie.
    let q = "Is it on Thursdys?";
    let hits = retrieve(&m, q, Some(&v), 2, NOW, &off, &l).unwrap();
    assert_eq!(
        hits[0].memory.text,
        "Mel: pottery on Thursdays with my sister keeps me calm"
    );
    assert!(hits[0].signals.grams > 0.0 && hits[0].signals.bm25 == 0.0);
    let no_grams = RetrievalConfig {
        w_grams: 0.0,
        ..off
    };
    let hits = retrieve(&m, q, Some(&v), 2, NOW, &no_grams, &l).unwrap();
    assert!(hits.iter().all(|h| h.signals.grams == 0.0));
    assert_eq!(hits[0].memory.text, "Mel: pottery, wow");
}

#[test]
fn archived_and_superseded_memories_are_left_out_unless_asked() {
    let m = Memories::temporary(3).unwrap();
    let mut old = remember(&m, "Anna lives in Lisbon", 200, 0.6, [1.0, 0.0, 0.0]);
    let new = remember(&m, "Anna lives in Porto", 1, 0.6, [1.0, 0.1, 0.0]);
    crate::memory::lifecycle::supersede(&mut old, new.id, NOW - 2 * HOUR);
    m.update(&old).unwrap();
    let mut faded = remember(&m, "Anna liked the old café", 900, 0.1, [1.0, 0.0, 0.1]);
    faded.tier = Tier::Archived;
    m.update(&faded).unwrap();
    let l = LifecycleConfig::default();
    let c = RetrievalConfig::default();
    let hits = retrieve(&m, "Anna", Some(&[1.0, 0.0, 0.0]), 5, NOW, &c, &l).unwrap();
    assert_eq!(texts(&hits), ["Anna lives in Porto"]);
    let all = RetrievalConfig {
        include_archived: true,
        ..c
    };
    let hits = retrieve(&m, "Anna", Some(&[1.0, 0.0, 0.0]), 5, NOW, &all, &l).unwrap();
    assert_eq!(hits.len(), 3);
}

#[test]
fn context_is_labelled_and_fits_the_budget() {
    let m = Memories::temporary(3).unwrap();
    let fact = remember(&m, "Anna lives in Porto", 1, 0.6, [1.0, 0.0, 0.0]);
    let mut long = fact.clone();
    long.tier = Tier::LongTerm;
    m.update(&long).unwrap();
    remember(&m, "Anna called about the weekend", 1, 0.6, [1.0, 0.0, 0.0]);
    let hits = retrieve(
        &m,
        "Anna",
        None,
        5,
        NOW,
        &RetrievalConfig::default(),
        &LifecycleConfig::default(),
    )
    .unwrap();
    let all = render_context(&hits, 1000);
    assert!(
        all.contains("[FACT FROM LONG-TERM MEMORY] Anna lives in Porto\n"),
        "{all}"
    );
    assert!(
        all.contains("[USER SAID EARLIER] Anna called about the weekend\n"),
        "{all}"
    );
    let small = render_context(&hits, 50);
    assert!(small.len() <= 50 && small.lines().count() == 1, "{small:?}");
    assert!(render_context(&hits, 5).is_empty());
}

#[test]
fn a_logged_question_lends_nothing_to_words_that_do_not_answer_it() {
    // A household asks where it parked, the assistant answers, and the next words are about
    // something else: asked again, the fact comes first, not what followed the questions.
    let m = Memories::temporary(3).unwrap();
    remember(
        &m,
        "I parked on level 3 by the lift",
        30,
        0.5,
        [1.0, 0.0, 0.0],
    );
    for (hours_ago, next) in [
        (20, "I need to buy milk"),
        (15, "the boiler needs a service"),
    ] {
        ask(&m, "where did I park?", hours_ago);
        remember(&m, next, hours_ago, 0.5, [0.0, 0.0, 1.0]);
    }
    let l = LifecycleConfig::default();
    let c = RetrievalConfig::default();
    let q = "where did I park?";
    let hits = retrieve(&m, q, Some(&[1.0, 0.0, 0.0]), 3, NOW, &c, &l).unwrap();
    assert_eq!(texts(&hits)[0], "I parked on level 3 by the lift");
    assert!(
        hits.iter().all(|h| h.signals.neighbour == 0.0),
        "{:?}",
        texts(&hits)
    );
    // Had they answered it (the assistant asked back), they would have been lent its score.
    for h in &hits[1..] {
        let mut told = h.memory.clone();
        told.answers = true;
        m.update(&told).unwrap();
    }
    let hits = retrieve(&m, q, Some(&[1.0, 0.0, 0.0]), 3, NOW, &c, &l).unwrap();
    assert_ne!(texts(&hits)[0], "I parked on level 3 by the lift");
}

#[test]
fn a_turn_that_answers_a_question_asked_in_passing_gets_the_answer_share() {
    // "Congrats! What made you switch? ..." is a fact with a question inside: stored, and
    // the turn after it answers the question (as ingest marks it).
    let m = Memories::temporary(3).unwrap();
    let v = [0.0, 1.0, 0.0];
    remember(
        &m,
        "Congrats on the new job! What made you switch to nursing? I'm still at the bakery.",
        3,
        0.5,
        v,
    );
    let answer = remember(&m, "I wanted to help people every day.", 3, 0.5, v);
    remember(&m, "The kitten sleeps all day.", 2, 0.5, v);
    let l = LifecycleConfig::default();
    let c = RetrievalConfig {
        w_cosine: 0.0,
        neighbour_weight: 0.0,
        ..RetrievalConfig::default()
    };
    let q = "Why did she switch to nursing?";
    let share = |hits: &[Hit]| {
        hits.iter()
            .find(|h| h.memory.id == answer.id)
            .map_or(0.0, |h| h.signals.neighbour)
    };
    // Not marked as an answer: a statement lends only the neighbours' share (0 here).
    let hits = retrieve(&m, q, None, 3, NOW, &c, &l).unwrap();
    assert_eq!(share(&hits), 0.0, "{:?}", texts(&hits));
    let mut told = answer.clone();
    told.answers = true;
    m.update(&told).unwrap();
    let hits = retrieve(&m, q, None, 3, NOW, &c, &l).unwrap();
    assert!(share(&hits) > 0.0, "{:?}", texts(&hits));
    assert_eq!(
        texts(&hits)[1],
        "I wanted to help people every day.",
        "after the question, before the kitten"
    );
}

#[test]
fn a_question_without_its_names_keeps_what_it_asks_and_when() {
    for (question, unnamed) in [
        ("Where did Tom move to?", Some("Where did move to?")),
        (
            "What did Anna's sister say in May?",
            Some("What did sister say in May?"),
        ),
        (
            "What did Caroline and Melanie paint?",
            Some("What did and paint?"),
        ),
        ("Where did I park the car?", None),
        ("When is the dentist on Friday?", None),
        ("Tom?", None),
    ] {
        assert_eq!(without_names(question).as_deref(), unnamed, "{question}");
    }
    let mut v = [1.0, 0.0, 0.0];
    blend(&mut v, &[0.0, 1.0, 0.0], 0.5);
    let h = std::f32::consts::FRAC_1_SQRT_2;
    assert!((v[0] - h).abs() < 1e-6 && (v[1] - h).abs() < 1e-6, "{v:?}");
}

#[test]
fn a_question_at_the_end_of_a_fact_lends_nothing_to_words_that_do_not_answer_it() {
    // "I got the job! Can you believe it?" is a fact, stored; the assistant answers, and the
    // next words are about something else: they are not its answer.
    let m = Memories::temporary(3).unwrap();
    let v = [0.0, 1.0, 0.0];
    remember(&m, "I got the nursing job! Can you believe it?", 3, 0.5, v);
    let next = remember(&m, "I need to buy milk.", 3, 0.5, v);
    let l = LifecycleConfig::default();
    let c = RetrievalConfig {
        w_cosine: 0.0,
        neighbour_weight: 0.0,
        ..RetrievalConfig::default()
    };
    let hits = retrieve(&m, "Where did I get the nursing job?", None, 3, NOW, &c, &l).unwrap();
    let lent = hits.iter().find(|h| h.memory.id == next.id);
    assert!(
        lent.is_none_or(|h| h.signals.neighbour == 0.0),
        "{:?}",
        texts(&hits)
    );
}
