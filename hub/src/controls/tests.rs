use super::*;

fn correct(said: &str) -> Option<Control> {
    Some(Control::Correct(Correction {
        said: said.into(),
        wrong: None,
        value: None,
    }))
}

/// Issue 16: " but i meant " overlapping "i said " sliced the text backwards (a panic).
#[test]
fn i_said_but_i_meant_with_nothing_said_is_no_panic() {
    for text in ["I said but i meant ", "I said but i meant Wednesday"] {
        assert_eq!(parse(text), None, "{text:?}");
    }
    assert_eq!(
        parse("I said Tuesday but I meant Wednesday."),
        Some(Control::Correct(Correction {
            said: "Wednesday".into(),
            wrong: Some("Tuesday".into()),
            value: Some("Wednesday".into()),
        }))
    );
}

#[test]
fn recognises_controls_and_nothing_else() {
    let table = [
        ("Forget that.", Some(Control::ForgetLast)),
        ("Hey Hearth, please forget that!", Some(Control::ForgetLast)),
        ("forget what I just said", Some(Control::ForgetLast)),
        (
            "Forget about Anna.",
            Some(Control::ForgetAbout("anna".into())),
        ),
        (
            "Please forget everything about the boiler",
            Some(Control::ForgetAbout("the boiler".into())),
        ),
        (
            "What do you remember about Anna?",
            Some(Control::Recall("anna".into())),
        ),
        (
            "what do you know about my sister please",
            Some(Control::Recall("my sister".into())),
        ),
        (
            "Actually, Anna lives in Lisbon now.",
            correct("Anna lives in Lisbon now."),
        ),
        (
            "That's wrong, the boiler was serviced in May.",
            correct("the boiler was serviced in May."),
        ),
        (
            "not Leeds but York",
            Some(Control::Correct(Correction {
                said: "York".into(),
                wrong: Some("Leeds".into()),
                value: Some("York".into()),
            })),
        ),
        (
            "Correction. My brother's name is Tom, not Tim.",
            Some(Control::Correct(Correction {
                said: "My brother's name is Tom".into(),
                wrong: Some("Tim".into()),
                value: Some("Tom".into()),
            })),
        ),
        (
            "Delete my locker code",
            Some(Control::DeleteIfStored("my locker code".into())),
        ),
        ("Never mind.", Some(Control::Stop)),
        ("Hey Hearth, stop!", Some(Control::Stop)),
        ("okay, that's enough", Some(Control::Stop)),
        ("Stop the music in the kitchen", None),
        ("Actually, what time is it?", None),
        ("Actually, tell me a joke about cats", None),
        ("Actually yes", None),
        ("Forget about", None),
        ("I always forget that song", None),
        ("Don't forget that I'm out tomorrow", None),
        ("What do you remember?", None),
        ("My sister Anna lives in Porto.", None),
        ("", None),
    ];
    for (text, want) in table {
        assert_eq!(parse(text), want, "{text:?}");
    }
}

/// Forget requests in people's words, written apart from the parser: (phrase, "last",
/// "all" or the topic searched).
const FORGET_TABLE: &[(&str, &str)] = &[
    ("forget that", "last"),
    ("don't remember that", "last"),
    ("scratch that", "last"),
    ("delete that", "last"),
    ("hey hearth, forget that", "last"),
    ("please forget what I just said", "last"),
    ("forget what I just told you", "last"),
    ("um actually don't save that", "last"),
    ("never mind, don't remember that", "last"),
    ("ignore what I just said", "last"),
    ("delete the last thing I said", "last"),
    ("hey hearth scratch that please", "last"),
    ("oh no, forget that", "last"),
    ("don't keep that", "last"),
    ("can you forget that please?", "last"),
    ("erase that", "last"),
    ("forget I said that", "last"),
    ("you didn't hear that", "last"),
    ("hearth, delete that last one", "last"),
    ("please don't remember that.", "last"),
    ("that was private, forget it", "last"),
    ("don't store that", "last"),
    ("remove that from your memory", "last"),
    ("Forget that, I shouldn't have said it.", "last"),
    ("no no don't remember that one", "last"),
    ("strike that from the record", "last"),
    ("forget what I told you about my brother", "my brother"),
    ("delete everything about Tom", "tom"),
    ("stop remembering where I park", "where i park"),
    ("please erase what you know about my ex", "my ex"),
    ("wipe my locker code", "my locker code"),
    ("I don't want you to remember my address", "my address"),
    ("hey hearth forget my PIN", "my pin"),
    ("forget about Mia's school", "mia's school"),
    ("delete what I said about the dentist", "the dentist"),
    ("can you forget everything about Sam's job?", "sam's job"),
    ("erase my bank details", "my bank details"),
    (
        "um, forget the stuff about my mum's health",
        "my mum's health",
    ),
    ("stop remembering my ex's name", "my ex's name"),
    (
        "don't remember anything about Grandpa's diagnosis",
        "grandpa's diagnosis",
    ),
    ("please delete my safe code", "my safe code"),
    (
        "remove the wifi password from your memory",
        "the wifi password",
    ),
    ("forget what I said about the party", "the party"),
    ("wipe everything you know about Priya", "priya"),
    ("forget anything to do with work", "work"),
    ("I'd rather you didn't remember my weight", "my weight"),
    (
        "get rid of what you know about my medication",
        "my medication",
    ),
    ("delete the stuff about Biscuit's vet", "biscuit's vet"),
    ("Forget about Lisbon.", "lisbon"),
    ("can you unlearn my alarm code", "my alarm code"),
    ("forget that Tom moved to Leeds", "tom moved to leeds"),
    ("hearth, stop storing stuff about Leo", "leo"),
    (
        "please forget where the spare key is",
        "where the spare key is",
    ),
    (
        "forget the thing about the argument with Sam",
        "the argument with sam",
    ),
    (
        "so erase what I told you about the redundancy",
        "the redundancy",
    ),
    ("don't remember my blood type anymore", "my blood type"),
    (
        "hey hearth, could you please forget my gym membership number",
        "my gym membership number",
    ),
    ("forget everything", "all"),
    ("wipe your memory", "all"),
    ("hey hearth, forget everything you know", "all"),
    ("delete all my memories", "all"),
    ("erase everything you've learned about us", "all"),
    ("reset your memory please", "all"),
    ("clear your memory", "all"),
    ("um can you forget everything I've ever told you?", "all"),
    ("wipe it all", "all"),
    (
        "start over and forget everything about this household",
        "all",
    ),
    ("delete everything you remember", "all"),
    ("please wipe everything, all of it.", "all"),
    ("factory reset your memory", "all"),
    ("Hearth, forget all of it. Everything.", "all"),
];

/// Corrections in people's words: (phrase, the fact stored before or "").
const CORRECTION_TABLE: &[(&str, &str)] = &[
    ("actually Tom moved to York", ""),
    (
        "no, it's Thursday not Tuesday",
        "the plumber is coming on Tuesday",
    ),
    ("not Leeds but York", "Tom moved to Leeds"),
    ("sorry I meant 4813", "my locker code is 4812"),
    ("I was wrong, the dentist is on Friday", ""),
    ("correction: Mia is 9", ""),
    ("that's not right, my sister lives in Porto now", ""),
    ("wait, no, the code is 4813", "the code is 4812"),
    ("oh actually the party's at 3 not 2", "the party is at 2"),
    ("no no, Sam's flight is on Friday", ""),
    ("sorry, I got that wrong, Leo's in year 5", ""),
    ("let me correct that, the bins go out on Tuesday night", ""),
    (
        "hey hearth, correction, mum's birthday is the 4th of March",
        "",
    ),
    (
        "um actually I'm allergic to amoxicillin, not penicillin",
        "",
    ),
    ("no wait, the spare key is under the blue pot", ""),
    (
        "I meant Lisbon, not Porto",
        "we're going to Porto on the 14th",
    ),
    (
        "update that, the wifi password is in the red drawer now",
        "",
    ),
    (
        "actually it's the 15th",
        "we're going to Lisbon on the 14th",
    ),
    ("that's wrong, Biscuit is five not four", ""),
    ("oops, I mean Mr Patel's first name is Raj", ""),
    ("no sorry, the MOT is due in November", ""),
    ("to correct what I said earlier, Sam works days now", ""),
    ("make that 8:30 not 8:45", "Mia's school starts at 8:45"),
    ("hmm no, Ava's teacher is Mrs Lawson, she got married", ""),
    (
        "I said Tuesday but I meant Wednesday",
        "the new sofa is being delivered on Tuesday",
    ),
    ("not 1234, it's 1243", "my PIN is 1234"),
    ("change that to York", "Tom moved to Leeds"),
    (
        "it was 2015 actually, not 2014",
        "we got married in 2014 in Galway",
    ),
    (
        "fix that, Grandpa's pills are at 9 not 8",
        "Grandpa Joe takes his blood pressure pills every morning at eight",
    ),
    ("actually the recycling is every Thursday now", ""),
    (
        "Correction. My brother's name is Tom, not Tim.",
        "my brother's name is Tim",
    ),
];

/// Sentences with control words in them that are not memory controls.
const NOT_CONTROLS: &[&str] = &[
    "I always forget my keys",
    "don't forget the milk",
    "actually that was a great film",
    "no thanks",
    "remember when we went to Paris?",
    "delete the shopping list",
    "is that correct?",
    "I forgot to call mum yesterday",
    "I can never remember Priya's husband's name",
    "remember to take the chicken out of the freezer",
    "Mia forgot her PE kit again",
    "Nana's starting to forget things, it's worrying",
    "the council took the wrong bin again, third time this month",
    "did I remember to lock the door?",
    "delete the 7am alarm",
    "can you delete my last text to Sam",
    "no, the other light",
    "actually, turn it up a bit",
    "no I don't want this song",
    "you got the wrong song",
    "correct me if I'm wrong but isn't it Sam's turn to cook",
    "what's the correct spelling of rhythm",
    "Leo got all his spelling correct today",
    "play Unforgettable by Nat King Cole",
    "I'll never forget that holiday in Crete",
    "actually, I'm in Leeds this weekend",
    "erase the whiteboard before school, Leo",
    "wrong number, sorry",
    "I'm so forgetful today",
    "remind me what I told you about the plumber",
    "what do you remember about Tom",
    "do you remember my locker code",
    "clear the timer",
    "wipe the table down please, Ava",
    "the dentist said I've been brushing wrong",
    "no",
    "I never remember to water the plants",
    "no one ever remembers the recycling",
    "scratch card won a tenner, ha",
];

#[test]
fn forget_in_peoples_words() {
    assert!(FORGET_TABLE.len() >= 40);
    for (phrase, want) in FORGET_TABLE {
        let got = parse(phrase);
        let ok = match (*want, &got) {
            ("last", Some(Control::ForgetLast)) | ("all", Some(Control::ForgetAll)) => true,
            (topic, Some(Control::ForgetAbout(t) | Control::DeleteIfStored(t))) => {
                crate::memory::facts::topic_words(t) == crate::memory::facts::topic_words(topic)
            }
            _ => false,
        };
        assert!(ok, "{phrase:?}: want {want:?}, got {got:?}");
    }
}

#[test]
fn corrections_in_peoples_words() {
    assert!(CORRECTION_TABLE.len() >= 20);
    for (phrase, _) in CORRECTION_TABLE {
        assert!(
            matches!(parse(phrase), Some(Control::Correct(_))),
            "{phrase:?}: {:?}",
            parse(phrase)
        );
    }
}

#[test]
fn control_words_in_other_sentences_forget_nothing() {
    for phrase in NOT_CONTROLS {
        let got = parse(phrase);
        // A "correction" or "delete" that matches nothing stored goes to the model.
        assert!(
            matches!(
                got,
                None | Some(Control::Correct(_) | Control::DeleteIfStored(_) | Control::Recall(_))
            ),
            "{phrase:?}: {got:?}"
        );
    }
}

#[test]
fn yes_and_no() {
    assert_eq!(answer("Yes please."), Some(true));
    assert_eq!(answer("hey hearth, go ahead"), Some(true));
    assert_eq!(answer("no, keep them"), Some(false));
    assert_eq!(answer("No."), Some(false));
    assert_eq!(answer("what's the time"), None);
}

#[test]
fn the_models_answer_to_a_forget_request_is_checked() {
    let text = "could you make yourself not know my ex's number";
    assert_eq!(
        parse_forget_answer(r#"{"request":"topic","topic":"my ex's number"}"#, text),
        Some(Control::ForgetAbout("my ex's number".into()))
    );
    // A topic the person did not say is refused.
    assert_eq!(
        parse_forget_answer(r#"{"request":"topic","topic":"my bank details"}"#, text),
        None
    );
    assert_eq!(
        parse_forget_answer(r#"{"request":"none","topic":""}"#, text),
        None
    );
    assert_eq!(parse_forget_answer("not json", text), None);
    assert!(mentions_forgetting("Please purge the thing about my ex"));
    assert!(!mentions_forgetting("My sister lives in Porto"));
}

#[test]
fn no_panic_and_no_correction_from_other_scripts_and_negations() {
    for text in [
        "İpek is not Özge's sister",
        "not İzmir but Ürgüp",
        "İpek: I said Übung but I meant Yoga",
        "not İİ, a",
    ] {
        let _ = parse(text);
    }
    for text in [
        "We're not going to Lisbon",
        "The bins are not collected on Monday",
        "Tom is not Anna's brother",
        "Don't remember, sorry",
    ] {
        assert_eq!(parse(text), None, "{text:?}");
    }
    // Not a forget request (a "correction" of nothing stored goes to the model).
    assert!(!matches!(
        parse("Sorry, didn't hear that"),
        Some(Control::ForgetLast | Control::ForgetAbout(_) | Control::ForgetAll)
    ));
    assert_eq!(
        parse("Forget Dr. Patel's number"),
        Some(Control::ForgetAbout("dr patel's number".into()))
    );
    assert!(alone("Forget that."));
    assert!(!alone("Forget it, I'll do it myself."));
}
