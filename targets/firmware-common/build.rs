//! Build script shared by the firmware examples (`build = "../firmware-common/build.rs"`).
//!
//! - The model blob: `$MICROBERT_FIRMWARE_BLOB` (set by `cargo xtask firmware`), else the
//!   committed tiny test fixture `models/fixtures/tiny/model.blob`, is copied to
//!   `$OUT_DIR/model.blob` and `include_bytes!`-ed into flash by the shared application
//!   (its scratch arena is sized by a `const fn` of the board's declared plan, not here).
//! - The board's linker script goes to `$OUT_DIR`, on the linker's search path:
//!   `memory.x` (Cortex-M: cortex-m-rt's `link.x` includes it) or `link.x` (qemu virt DRAM).

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));

    println!("cargo:rerun-if-env-changed=MICROBERT_FIRMWARE_BLOB");
    let blob_path = match std::env::var_os("MICROBERT_FIRMWARE_BLOB") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => manifest.join("../../models/fixtures/tiny/model.blob"),
    };
    println!("cargo:rerun-if-changed={}", blob_path.display());
    std::fs::copy(&blob_path, out.join("model.blob"))
        .unwrap_or_else(|e| panic!("copying the model blob {}: {e}", blob_path.display()));

    let script = ["memory.x", "link.x"]
        .into_iter()
        .find(|f| manifest.join(f).exists())
        .expect("the firmware project has memory.x or link.x");
    std::fs::copy(manifest.join(script), out.join(script)).expect("copying the linker script");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={script}");
    // This script lives outside the firmware project: name its real path.
    println!(
        "cargo:rerun-if-changed={}",
        manifest.join("../firmware-common/build.rs").display()
    );
    if std::env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
}
