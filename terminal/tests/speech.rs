//! The terminal's speech parts on the real models (whisper tiny.en converted by the project's
//! own converter, Moonshine tiny-en and base-en, openWakeWord on onnxruntime, a Piper voice), fed
//! audio made by espeak-ng and Piper and one clip of a real person: what they hear, and how they
//! fail on bad audio and bad model files. Needs `scripts/setup` (models, espeak-ng).

use std::path::Path;

use hearth_terminal::audio::{Clip, SPEECH_RATE};
use hearth_terminal::config::{SttConfig, SttEngine, TerminalConfig, WakeConfig};
use hearth_terminal::stt::{Stt, SttError};
use hearth_terminal::wake::{WakeError, WakeWord, STEP};

fn config() -> TerminalConfig {
    TerminalConfig::with_fetched_models()
}

fn espeak(dir: &Path, text: &str) -> Clip {
    hearth_terminal::bench::espeak(text, &dir.join("speech.wav")).unwrap()
}

fn noise(seconds: f32, amplitude: f32) -> Vec<f32> {
    hearth_terminal::bench::noise(seconds, amplitude, 7)
}

fn max_score(wake: &mut WakeWord, samples: &[f32]) -> (f32, bool) {
    wake.reset();
    let mut peak = 0.0f32;
    let mut fired = false;
    for chunk in samples.chunks(STEP) {
        fired |= wake.push(chunk).unwrap().is_some();
        peak = peak.max(wake.last_score());
    }
    (peak, fired)
}

#[test]
fn speech_at_another_rate_is_transcribed_and_bad_audio_does_no_harm() {
    let dir = tempfile::tempdir().unwrap();
    let stt = Stt::load(&config().stt).unwrap();
    // espeak-ng speaks at 22,050 Hz; the terminal resamples to whisper's 16 kHz.
    let clip = espeak(dir.path(), "What is the weather like in the kitchen today?");
    assert_eq!(clip.rate, 22_050);
    let heard = stt.transcribe(&clip.at_rate(SPEECH_RATE).samples).unwrap();
    let text = heard.text.to_lowercase();
    for word in ["weather", "kitchen", "today"] {
        assert!(text.contains(word), "{word:?} not in {text:?}");
    }
    // Silence, a click, clipped full-scale noise: an answer (often empty), never a crash.
    for samples in [
        vec![0.0; 16_000],
        vec![1.0; 10],
        noise(2.0, 4.0).iter().map(|s| s.clamp(-1.0, 1.0)).collect(),
    ] {
        let heard = stt.transcribe(&samples).unwrap();
        assert!(heard.words() < 20, "{heard:?}");
    }
}

#[test]
fn the_wake_word_fires_on_hey_jarvis_only() {
    if hearth_terminal::wake::skip_without_onnxruntime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = config();
    let mut wake = WakeWord::load(&c.voice.onnxruntime, &c.wake).unwrap();
    let mut lead = vec![0.0; 8_000];
    lead.extend(
        espeak(dir.path(), "Hey Jarvis")
            .at_rate(SPEECH_RATE)
            .samples,
    );
    lead.extend(vec![0.0; 8_000]);
    let (peak, fired) = max_score(&mut wake, &lead);
    assert!(fired && peak > 0.5, "peak {peak}");
    for negative in [
        "Remind me to water the plants tomorrow at eight.",
        "Hey, are you there? Harvest the jars, Travis.",
    ] {
        let mut samples = espeak(dir.path(), negative).at_rate(SPEECH_RATE).samples;
        samples.extend(vec![0.0; 8_000]);
        let (peak, fired) = max_score(&mut wake, &samples);
        assert!(!fired, "{negative:?} fired the wake word (peak {peak})");
    }
    let (peak, fired) = max_score(&mut wake, &noise(3.0, 0.5));
    assert!(!fired, "noise fired the wake word (peak {peak})");
}

#[test]
fn a_cut_whisper_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    // A truncated copy of the real whisper model: refused before whisper.cpp reads it.
    let real = std::fs::read(config().stt.model).unwrap();
    let cut = dir.path().join("cut.bin");
    std::fs::write(&cut, &real[..real.len().min(100_000)]).unwrap();
    let err = Stt::load(&SttConfig {
        model: cut.clone(),
        ..config().stt
    })
    .unwrap_err();
    assert!(matches!(err, SttError::Invalid { .. }), "{err}");
    assert!(err.to_string().contains("cut.bin"), "{err}");
}

#[test]
fn missing_and_corrupt_wake_models_are_clear_errors() {
    if hearth_terminal::wake::skip_without_onnxruntime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = config();
    let garbage = dir.path().join("garbage.onnx");
    std::fs::write(&garbage, vec![7u8; 4096]).unwrap();
    for model in [dir.path().join("missing.onnx"), garbage] {
        let err = WakeWord::load(
            &c.voice.onnxruntime,
            &WakeConfig {
                model: model.clone(),
                ..c.wake.clone()
            },
        )
        .unwrap_err();
        assert!(matches!(err, WakeError::Model { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(model.file_name().unwrap().to_str().unwrap()),
            "{err}"
        );
    }
}

#[test]
fn piper_speech_is_heard_back_by_whisper_and_a_bad_voice_is_a_clear_error() {
    use hearth_terminal::config::TtsConfig;
    use hearth_terminal::tts::{Tts, TtsError};
    if hearth_terminal::wake::skip_without_onnxruntime() {
        return;
    }
    let c = config();
    let mut tts = Tts::load(&c.voice.onnxruntime, &c.tts).unwrap();
    let spoken = tts
        .synthesize("Remember to water the plants in the kitchen.")
        .unwrap();
    assert_eq!(spoken.clip.rate, tts.rate());
    assert!(
        (1.0..6.0).contains(&spoken.clip.seconds()),
        "{}",
        spoken.clip.seconds()
    );
    let heard = Stt::load(&c.stt)
        .unwrap()
        .transcribe(&spoken.clip.clone().at_rate(SPEECH_RATE).samples)
        .unwrap();
    let text = heard.text.to_lowercase();
    for word in ["water", "plants", "kitchen"] {
        assert!(text.contains(word), "{word:?} not in {text:?}");
    }
    // Nothing to say is silence, not an error.
    assert!(tts.synthesize(" ... ").unwrap().clip.samples.is_empty());

    // Without the voice's noise, a text is spoken the same way every time.
    let mut tts = Tts::load(&c.voice.onnxruntime, &c.tts.without_noise()).unwrap();
    let text = "Remember to water the plants.";
    let first = tts.synthesize(text).unwrap().clip.samples;
    assert!(!first.is_empty());
    assert_eq!(first, tts.synthesize(text).unwrap().clip.samples);

    let dir = tempfile::tempdir().unwrap();
    let missing = TtsConfig {
        voice: dir.path().join("nothing.onnx"),
        ..c.tts.clone()
    };
    let err = Tts::load(&c.voice.onnxruntime, &missing).unwrap_err();
    assert!(matches!(err, TtsError::Voice { .. }), "{err}");
    assert!(err.to_string().contains("nothing.onnx"), "{err}");
    // A truncated model next to a good config: onnxruntime's refusal, not a crash.
    let bytes = std::fs::read(&c.tts.voice).unwrap();
    let truncated = dir.path().join("cut.onnx");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    std::fs::copy(
        c.tts.voice.with_extension("onnx.json"),
        dir.path().join("cut.onnx.json"),
    )
    .unwrap();
    let cut = TtsConfig {
        voice: truncated,
        ..c.tts.clone()
    };
    let err = Tts::load(&c.voice.onnxruntime, &cut).unwrap_err();
    assert!(err.to_string().contains("cut.onnx"), "{err}");
    // A config that is not a Piper voice's.
    std::fs::write(dir.path().join("cut.onnx.json"), "{\"audio\": 1}").unwrap();
    let err = Tts::load(&c.voice.onnxruntime, &cut).unwrap_err();
    assert!(
        err.to_string().contains("not a Piper voice config"),
        "{err}"
    );
}

fn moonshine(model: &str) -> SttConfig {
    let c = config();
    SttConfig {
        engine: SttEngine::Moonshine,
        moonshine_model: c.stt.moonshine_model.with_file_name(model),
        ..c.stt
    }
}

fn assert_heard(heard: &str, words: &[&str]) {
    let text = heard.to_lowercase();
    for word in words {
        assert!(text.contains(word), "{word:?} not in {text:?}");
    }
}

#[test]
fn moonshine_hears_espeak_piper_and_a_person_and_bad_audio_does_no_harm() {
    use hearth_terminal::bench::wer::{word_errors, JFK_TEXT};
    use hearth_terminal::tts::Tts;
    if hearth_terminal::wake::skip_without_onnxruntime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let c = config();
    // One thread, as stt.threads says; the result does not depend on it.
    let stt = Stt::load(&SttConfig {
        threads: 1,
        ..moonshine("moonshine-tiny-en")
    })
    .unwrap();
    assert_eq!(stt.engine(), SttEngine::Moonshine);
    let clip = espeak(dir.path(), "What is the weather like in the kitchen today?");
    let heard = stt.transcribe(&clip.at_rate(SPEECH_RATE).samples).unwrap();
    assert_heard(&heard.text, &["weather", "kitchen", "today"]);

    let mut tts = Tts::load(&c.voice.onnxruntime, &c.tts).unwrap();
    let spoken = tts
        .synthesize("Remember to water the plants in the kitchen.")
        .unwrap();
    let heard = stt
        .transcribe(&spoken.clip.at_rate(SPEECH_RATE).samples)
        .unwrap();
    assert_heard(&heard.text, &["water", "plants", "kitchen"]);

    // A real person: JFK's "ask not", at most one word wrong in 22.
    let jfk = c.stt.model.with_file_name("jfk.wav");
    let person = hearth_terminal::audio::wav::read(&jfk)
        .unwrap_or_else(|e| panic!("{e} (scripts/fetch-models jfk-wav)"))
        .at_rate(SPEECH_RATE);
    let heard = stt.transcribe(&person.samples).unwrap();
    let (errors, words) = word_errors(JFK_TEXT, &heard.text);
    assert!(
        errors <= 1,
        "{errors} of {words} words wrong: {:?}",
        heard.text
    );

    // Silence, a click, clipped full-scale noise: an answer (often empty), never a crash.
    for samples in [
        vec![0.0; 16_000],
        vec![1.0; 10],
        vec![],
        noise(2.0, 4.0).iter().map(|s| s.clamp(-1.0, 1.0)).collect(),
    ] {
        let heard = stt.transcribe(&samples).unwrap();
        assert!(heard.words() < 20, "{heard:?}");
    }
}

#[test]
fn moonshine_base_loads_the_same_way() {
    if hearth_terminal::wake::skip_without_onnxruntime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let stt = Stt::load(&moonshine("moonshine-base-en")).unwrap();
    let clip = espeak(dir.path(), "What is the weather like in the kitchen today?");
    let heard = stt.transcribe(&clip.at_rate(SPEECH_RATE).samples).unwrap();
    assert_heard(&heard.text, &["weather", "kitchen", "today"]);
}

#[test]
fn missing_and_corrupt_moonshine_files_are_clear_errors() {
    if hearth_terminal::wake::skip_without_onnxruntime() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = moonshine("moonshine-tiny-en").moonshine_model;
    let copy = |to: &Path| {
        std::fs::create_dir_all(to).unwrap();
        for file in [
            "encoder_model.ort",
            "decoder_model_merged.ort",
            "tokenizer.bin",
        ] {
            std::fs::copy(good.join(file), to.join(file)).unwrap();
        }
    };
    let load = |folder: &Path| {
        Stt::load(&SttConfig {
            moonshine_model: folder.to_path_buf(),
            ..moonshine("moonshine-tiny-en")
        })
    };
    let expect = |err: SttError, file: &str| {
        assert!(matches!(err, SttError::Moonshine { .. }), "{err}");
        assert!(err.to_string().contains(file), "{err}");
        assert!(err.to_string().contains("stt.moonshine_model"), "{err}");
    };

    // No such folder.
    expect(
        load(&dir.path().join("nothing")).unwrap_err(),
        "encoder_model.ort",
    );
    // Each file cut short, one at a time: onnxruntime's refusal or ours, never a crash.
    for (file, keep) in [
        ("encoder_model.ort", 100_000),
        ("decoder_model_merged.ort", 1_000_000),
        ("decoder_model_merged.ort", 6),
        ("tokenizer.bin", 100_000),
    ] {
        let folder = dir.path().join(format!("cut-{file}-{keep}"));
        copy(&folder);
        let bytes = std::fs::read(folder.join(file)).unwrap();
        std::fs::write(folder.join(file), &bytes[..keep]).unwrap();
        expect(load(&folder).unwrap_err(), file);
    }
    // The encoder where the decoder should be: a real model, but not the one expected.
    let swapped = dir.path().join("swapped");
    copy(&swapped);
    std::fs::copy(
        good.join("encoder_model.ort"),
        swapped.join("decoder_model_merged.ort"),
    )
    .unwrap();
    expect(load(&swapped).unwrap_err(), "decoder_model_merged.ort");
    // A whisper model is not a Moonshine folder's file either.
    let foreign = dir.path().join("foreign");
    copy(&foreign);
    std::fs::write(foreign.join("encoder_model.ort"), vec![7u8; 4096]).unwrap();
    expect(load(&foreign).unwrap_err(), "encoder_model.ort");
}

#[test]
fn a_personas_voice_sets_the_pace_and_picks_a_named_voice() {
    use hearth_shared::Voice;
    use hearth_terminal::config::TtsConfig;
    use hearth_terminal::tts::Tts;
    if hearth_terminal::wake::skip_without_onnxruntime() {
        return;
    }
    let c = config();
    // A second voice by name: the same model, whose config says 16 kHz (so that its clips
    // tell which voice spoke them).
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.onnx");
    std::fs::copy(&c.tts.voice, &other).unwrap();
    let json = std::fs::read_to_string(c.tts.voice.with_extension("onnx.json")).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&json).unwrap();
    json["audio"]["sample_rate"] = 16_000.into();
    std::fs::write(dir.path().join("other.onnx.json"), json.to_string()).unwrap();
    let tts_config = TtsConfig {
        voices: [("other".to_string(), other.clone())].into(),
        ..c.tts.without_noise()
    };
    let mut tts = Tts::load(&c.voice.onnxruntime, &tts_config).unwrap();
    let text = "Remember to water the plants.";
    let own = tts.synthesize(text).unwrap().clip.samples;
    let voice = |model: Option<&str>, pace: Option<f32>| Voice {
        persona: "Brick".into(),
        model: model.map(str::to_string),
        length_scale: pace,
        ..Voice::default()
    };
    // The named voice speaks; one the terminal lacks falls back to its own; either way the
    // persona's pace applies.
    let named = tts.synthesize_as(text, Some(&voice(Some("other"), None)));
    assert_eq!(named.unwrap().clip.rate, 16_000);
    let missing = tts
        .synthesize_as(text, Some(&voice(Some("amy"), None)))
        .unwrap();
    assert_eq!(
        (missing.clip.rate, missing.clip.samples),
        (tts.rate(), own.clone())
    );
    let slow = tts
        .synthesize_as(text, Some(&voice(Some("amy"), Some(2.0))))
        .unwrap();
    let ratio = slow.clip.samples.len() as f32 / own.len() as f32;
    assert!(
        (1.6..2.4).contains(&ratio),
        "twice the pace took {ratio:.2} times as long"
    );
    // A named voice whose file is missing is an error at start, naming it.
    let broken = TtsConfig {
        voices: [("gone".to_string(), dir.path().join("gone.onnx"))].into(),
        ..c.tts.clone()
    };
    let err = Tts::load(&c.voice.onnxruntime, &broken).unwrap_err();
    assert!(
        err.to_string().contains("gone.onnx") && err.to_string().contains("tts.voices.gone"),
        "{err}"
    );
}
