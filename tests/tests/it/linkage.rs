//! The hub links llama.cpp and the terminal links whisper.cpp, never the other way round or
//! both in one binary: the two carry the same ggml symbols.

use hearth_tests::bin;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_hub_links_llama_cpp_and_the_terminal_whisper_cpp() {
    let hub = std::fs::read(bin("hearth-hub")).unwrap();
    let terminal = std::fs::read(bin("hearth-terminal")).unwrap();
    let (llama, whisper) = (&b"llama_decode"[..], &b"whisper_full_with_state"[..]);
    assert!(contains(&hub, llama), "the hub should link llama.cpp");
    assert!(!contains(&hub, whisper), "the hub links whisper.cpp");
    assert!(
        contains(&terminal, whisper),
        "the terminal should link whisper.cpp"
    );
    assert!(!contains(&terminal, llama), "the terminal links llama.cpp");
}
