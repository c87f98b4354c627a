//! Malformed, wrong-version, oversized and inconsistent utterances each get a typed error, and
//! the hub goes on answering.

use std::time::Duration;

use hearth_shared::{decode, encode, ErrorCode, ErrorReport, Utterance};
use hearth_tests::{free_port, Hub, Observer};

use crate::collect_reply;

fn utterance(terminal: &str, text: &str) -> Utterance {
    Utterance {
        id: "u-ok".into(),
        terminal: terminal.into(),
        room: "lab".into(),
        text: text.into(),
        started_at_ms: 0,
        ended_at_ms: 0,
        audio: None,
        speaker: None,
    }
}

#[tokio::test]
async fn bad_payloads_get_typed_errors_and_the_hub_keeps_serving() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let port = free_port();
    // A burst of bad payloads from one client: above the per-terminal rate limit, which
    // counts every utterance, readable or not.
    let mut hub = Hub::start(dir.path(), port, "[trust]\nburst = 100\n").await?;
    let (utt, reply, error) = (
        "hearth/v1/terminal/probe/utterance",
        "hearth/v1/terminal/probe/reply",
        "hearth/v1/terminal/probe/error",
    );
    let mut obs = Observer::connect(port, &[reply, error]).await?;

    let mut wrong_version: serde_json::Value =
        serde_json::from_slice(&encode(&utterance("probe", "hi")))?;
    wrong_version["v"] = 7.into();
    // Over the hub's 64 KiB limit but under the broker's 256 KiB, so that the hub sees it.
    let oversized = encode(&utterance("probe", &"la ".repeat(40_000)));
    let cases: Vec<(&str, Vec<u8>, ErrorCode)> = vec![
        (
            "malformed JSON",
            b"{\"v\":1, \"text\": ".to_vec(),
            ErrorCode::Malformed,
        ),
        (
            "not JSON at all",
            vec![0xff, 0x00, 0x13],
            ErrorCode::Malformed,
        ),
        (
            "wrong version",
            serde_json::to_vec(&wrong_version)?,
            ErrorCode::UnsupportedVersion,
        ),
        ("oversized", oversized, ErrorCode::TooLarge),
        (
            "missing fields",
            br#"{"v":1,"text":"hi"}"#.to_vec(),
            ErrorCode::Malformed,
        ),
        (
            "another terminal's id",
            encode(&utterance("someone-else", "hi")),
            ErrorCode::Invalid,
        ),
        (
            "empty text",
            encode(&utterance("probe", "   ")),
            ErrorCode::Invalid,
        ),
    ];
    for (name, payload, code) in cases {
        obs.publish(utt, payload).await?;
        let (bytes, _) = obs.next_on(error, Duration::from_secs(30)).await?;
        let report: ErrorReport = decode(&bytes, usize::MAX)?;
        assert_eq!(report.code, code, "{name}: {}", report.message);
        assert!(!report.message.is_empty());
    }

    obs.publish(
        utt,
        encode(&utterance("probe", "Say hello in one sentence.")),
    )
    .await?;
    let chunks = collect_reply(&mut obs, reply).await?;
    assert!(chunks.iter().any(|(c, _)| !c.text.is_empty()), "{chunks:?}");
    assert!(chunks.iter().all(|(c, _)| c.utterance_id == "u-ok"));
    assert!(hub.child.try_wait()?.is_none(), "the hub is still running");

    let log = hub.log_text();
    for needle in [
        "code=Malformed",
        "code=UnsupportedVersion",
        "code=TooLarge",
        "code=Invalid",
    ] {
        assert!(
            log.lines()
                .any(|l| l.contains("rejected utterance") && l.contains(needle)),
            "no logged {needle}:\n{log}"
        );
    }
    Ok(())
}
