//! The hub links llama.cpp; the terminal must not, because the voice terminal links
//! whisper.cpp and the two carry the same ggml symbols.

use hearth_tests::bin;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn only_the_hub_links_llama_cpp() {
    let hub = std::fs::read(bin("hearth-hub")).unwrap();
    let terminal = std::fs::read(bin("hearth-terminal")).unwrap();
    for symbol in [&b"llama_decode"[..], b"ggml_graph_compute"] {
        assert!(
            contains(&hub, symbol),
            "the hub should link {}",
            String::from_utf8_lossy(symbol)
        );
        assert!(
            !contains(&terminal, symbol),
            "the terminal links {}",
            String::from_utf8_lossy(symbol)
        );
    }
}
