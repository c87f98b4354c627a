//! A missing or corrupt model file is a clear error naming the path, never an abort.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use hearth_tests::{bin, free_port, hub_toml, smollm2};

fn copy_prefix(from: &Path, to: &Path, len: u64) {
    let mut bytes = Vec::new();
    std::fs::File::open(from)
        .unwrap()
        .take(len)
        .read_to_end(&mut bytes)
        .unwrap();
    std::fs::write(to, bytes).unwrap();
}

#[test]
fn missing_and_corrupt_models_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("bad-magic.gguf"),
        b"GGML\x03\x00\x00\x00 this is not a model",
    )
    .unwrap();
    std::fs::write(d.join("empty.gguf"), b"").unwrap();
    copy_prefix(&smollm2(), &d.join("header-only.gguf"), 4096);
    copy_prefix(&smollm2(), &d.join("half.gguf"), 50_000_000);
    let cases = [
        ("missing.gguf", "cannot read model file"),
        ("bad-magic.gguf", "is not a GGUF file"),
        ("empty.gguf", "truncated"),
        ("header-only.gguf", "truncated"),
        ("half.gguf", "truncated"),
    ];
    for (file, needle) in cases {
        let path = d.join(file);
        let port = free_port();
        let config = d.join(format!("{file}.toml"));
        let toml = hub_toml(d, port, "").replace(
            &smollm2().display().to_string(),
            &path.display().to_string(),
        );
        std::fs::write(&config, toml).unwrap();
        let out = std::process::Command::new(bin("hearth-hub"))
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.signal(),
            None,
            "{file}: killed by a signal:\n{stderr}"
        );
        assert_eq!(out.status.code(), Some(1), "{file}:\n{stderr}");
        assert!(
            stderr.contains(&path.display().to_string()),
            "{file} names the path:\n{stderr}"
        );
        assert!(stderr.contains(needle), "{file} says {needle:?}:\n{stderr}");

        let check = std::process::Command::new(bin("hearth-hub"))
            .arg("check-model")
            .arg(&path)
            .output()
            .unwrap();
        assert_eq!(check.status.code(), Some(1), "check-model {file}");
    }
    let ok = std::process::Command::new(bin("hearth-hub"))
        .arg("check-model")
        .arg(smollm2())
        .output()
        .unwrap();
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("chat template: yes"));
}
