//! Puts the memory map of the board the suite runs on (`MICROBERT_BOARD`: `mps2` for
//! mps2-an385/an386/an500, `an505`, `an547`; default `mps2`) on the linker's search path as
//! `memory.x`, which cortex-m-rt's `link.x` includes.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo::rerun-if-env-changed=MICROBERT_BOARD");
    let board = std::env::var("MICROBERT_BOARD").unwrap_or_else(|_| "mps2".into());
    let file = manifest.join("memory").join(format!("{board}.x"));
    println!("cargo::rerun-if-changed={}", file.display());
    std::fs::copy(&file, out.join("memory.x"))
        .unwrap_or_else(|e| panic!("board memory map {}: {e}", file.display()));
    println!("cargo::rustc-link-search={}", out.display());
}
