//! espeak-rs-sys (under piper-rs) builds espeak-ng against the system's sonic library (Debian
//! `libsonic-dev`, installed by `scripts/setup`) but does not link it. Link it statically here,
//! so that the board needs no sonic at run time. `SONIC_LIB_DIR` names another folder.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=SONIC_LIB_DIR");
    let target = std::env::var("TARGET").unwrap_or_default();
    // x86_64-unknown-linux-gnu -> x86_64-linux-gnu, armv7-unknown-linux-gnueabihf ->
    // arm-linux-gnueabihf: Debian's multiarch folder names.
    let arch = target.split('-').next().unwrap_or_default();
    let abi = target.rsplit('-').next().unwrap_or_default();
    let arch = if arch.starts_with("armv7") {
        "arm"
    } else {
        arch
    };
    let candidates: Vec<PathBuf> = std::env::var_os("SONIC_LIB_DIR")
        .map(|d| vec![PathBuf::from(d)])
        .unwrap_or_else(|| {
            vec![
                PathBuf::from(format!("/usr/lib/{arch}-linux-{abi}")),
                PathBuf::from("/usr/lib"),
                PathBuf::from("/usr/local/lib"),
            ]
        });
    match candidates.iter().find(|d| d.join("libsonic.a").is_file()) {
        Some(dir) => println!("cargo:rustc-link-search=native={}", dir.display()),
        None => println!(
            "cargo:warning=libsonic.a not found in {}; install Debian's libsonic-dev \
             (scripts/setup does) or set SONIC_LIB_DIR",
            candidates
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
    println!("cargo:rustc-link-lib=static=sonic");
}
