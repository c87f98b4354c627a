use super::*;

fn data() -> Data {
    load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("data/factconsolidation-6k.json")).unwrap()
}

#[test]
fn the_data_loads_whole() {
    let d = data();
    assert_eq!(d.facts.len(), 455);
    assert_eq!(
        d.facts[3],
        "Hines Ward plays the position of wide receiver."
    );
    assert_eq!(d.facts[36], "Hines Ward plays the position of cornerback.");
    assert_eq!((d.single_hop.len(), d.multi_hop.len()), (100, 100));
    assert_eq!(
        d.single_hop[42].question,
        "What position does Hines Ward play?"
    );
    assert_eq!(d.single_hop[42].answers, ["cornerback"]);
    assert_eq!(d.single_hop[0].id, "factconsolidation_sh_6k_no0");
    assert_eq!(d.multi_hop[0].id, "factconsolidation_mh_6k_no0");
}

#[test]
fn facts_split_into_slots() {
    let d = data();
    let (slots, unmatched, templates) = slots(&d.facts);
    assert!(unmatched.is_empty(), "{unmatched:?}");
    assert_eq!(templates, TEMPLATES.len());
    assert_eq!(slots.len(), 294);
    assert_eq!(slots.iter().filter(|s| s.values.len() > 1).count(), 161);
    assert!(slots.iter().all(|s| s.values.len() <= 2));
    let hines = slots
        .iter()
        .find(|s| s.key == "Hines Ward plays the position of")
        .unwrap();
    assert_eq!(
        hines.values,
        [
            (3, "wide receiver".to_string()),
            (36, "cornerback".to_string())
        ]
    );
    // The value keeps its own full stop; the fact's is dropped.
    let (key, value, _) =
        split_fact("Pedro Pierluisi worked in the city of Washington, D.C..").unwrap();
    assert_eq!(
        (key.as_str(), value.as_str()),
        ("Pedro Pierluisi worked in the city of", "Washington, D.C.")
    );
    let (key, value, _) =
        split_fact("The headquarters of University of California, Berkeley is located in the city of Botevgrad.")
            .unwrap();
    assert_eq!(
        key,
        "The headquarters of University of California, Berkeley is located in the city of"
    );
    assert_eq!(value, "Botevgrad");
    assert_eq!(split_fact("Nice weather today."), None);
    assert_eq!(hines.subject, "Hines Ward");
    let head = slots
        .iter()
        .find(|s| {
            s.key
                .starts_with("The name of the current head of the Tucson")
        })
        .unwrap();
    assert_eq!(head.subject, "Tucson");
    // Every question can be answered from the whole data: a single-hop gold answer is
    // the last value of the slot the question names.
    assert!(d.single_hop.iter().all(|q| answerable(q, &slots, true)));
    assert!(d.multi_hop.iter().all(|q| answerable(q, &slots, false)));
    // From the first 60 facts, Hines Ward's position can be answered; the sport of
    // goaltender (pesäpallo, fact 310) cannot, though fact 59 names pesäpallo.
    let (first, _, _) = super::slots(&d.facts[..60]);
    let q = |i: usize| &d.single_hop[i];
    assert_eq!(q(42).question, "What position does Hines Ward play?");
    assert!(answerable(q(42), &first, true));
    assert_eq!(q(0).question, "Which sport is goaltender associated with?");
    assert!(!answerable(q(0), &first, true));
}

#[test]
fn a_memory_states_whole_values_of_its_own_slot() {
    let d = data();
    let (slots, _, _) = slots(&d.facts);
    let find = |key: &str| slots.iter().position(|s| s.key == key).unwrap();
    let hines = find("Hines Ward plays the position of");
    assert_eq!(stated(&d.facts[36], &slots), [(hines, 1)]);
    assert_eq!(
        stated("hines   ward plays the position of WIDE RECEIVER", &slots),
        [(hines, 0)]
    );
    // A longer value is not the shorter one.
    assert_eq!(
        stated("Hines Ward plays the position of wide receivers", &slots),
        []
    );
    // "Buddhism was founded by" inside "Shingon Buddhism was founded by" is not
    // Buddhism's; and Kūkai is no value of Buddhism anyway.
    let shingon = find("Shingon Buddhism was founded by");
    assert_eq!(stated(&d.facts[20], &slots), [(shingon, 0)]);
    let buddhism = find("Buddhism was founded by");
    assert_eq!(stated(&d.facts[67], &slots), [(buddhism, 0)]);
    assert_eq!(stated("I like tea.", &slots), []);
}

#[test]
fn gold_answers_match_case_insensitively() {
    let q = Question {
        id: "x".into(),
        question: "?".into(),
        answers: vec!["Rugby Union".into(), "rugby league".into()],
    };
    assert!(q.answered_by("Gala RFC is associated with the sport of rugby union."));
    assert!(!q.answered_by("Gala RFC is associated with the sport of rugby."));
}

#[test]
fn a_store_folder_is_cleared_only_if_this_bench_made_it() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let (made, temporary) = store_dir(Some(&dir)).unwrap();
    assert_eq!(made, dir);
    assert!(temporary.is_none());
    std::fs::write(dir.join("old"), "x").unwrap();
    store_dir(Some(&dir)).unwrap();
    assert!(
        !dir.join("old").exists(),
        "an earlier run's store is cleared"
    );
    let other = root.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("mine"), "x").unwrap();
    assert!(store_dir(Some(&other)).is_err());
    assert!(other.join("mine").exists(), "another folder is left alone");
    let (made, temporary) = store_dir(None).unwrap();
    assert_eq!(temporary.unwrap().path(), made);
}

#[test]
fn contexts_must_be_numbered_in_order() {
    assert_eq!(
        parse_context("Here is a list of facts:\n0. A is B.\n1. C is D.\n").unwrap(),
        ["A is B.", "C is D."]
    );
    assert!(parse_context("Here is a list of facts:\n0. A is B.\n2. C is D.\n").is_err());
    assert!(parse_context("Here is a list of facts:\n").is_err());
}
