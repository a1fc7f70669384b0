//! Build script shared by the firmware examples (`build = "../firmware-common/build.rs"`).
//!
//! - The model blob: `$MICROBERT_FIRMWARE_BLOB` (set by `cargo xtask firmware`), else the
//!   committed tiny test fixture `models/fixtures/tiny/model.blob`, is copied to
//!   `$OUT_DIR/model.blob` and `include_bytes!`-ed into flash by `src/main.rs`.
//! - The blob is parsed here with the runtime itself (a host build of `microbert`) so the
//!   static arena is sized exactly: `$OUT_DIR/model_consts.rs` gets `ARENA_BYTES`
//!   (`microbert::scratch_bytes(model, MAX_TOKENS)`) and `HIDDEN`.
//! - the board's linker script goes to `$OUT_DIR`, on the linker's search path:
//!   `memory.x` (Cortex-M: cortex-m-rt's `link.x` includes it) or `link.x` (qemu virt DRAM).

use std::path::PathBuf;

/// Longest token sequence the firmware accepts (`[CLS]` and `[SEP]` included); the arena is
/// sized for it. Keep in step with `MAX_TOKENS` in `src/main.rs` (checked at compile time).
const MAX_TOKENS: usize = 128;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));

    println!("cargo:rerun-if-env-changed=MICROBERT_FIRMWARE_BLOB");
    let blob_path = match std::env::var_os("MICROBERT_FIRMWARE_BLOB") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => manifest.join("../../models/fixtures/tiny/model.blob"),
    };
    println!("cargo:rerun-if-changed={}", blob_path.display());
    let blob = std::fs::read(&blob_path)
        .unwrap_or_else(|e| panic!("reading the model blob {}: {e}", blob_path.display()));
    let model = microbert::parse(&blob)
        .unwrap_or_else(|e| panic!("{} does not validate: {e}", blob_path.display()));
    let arena = microbert::scratch_bytes(&model, MAX_TOKENS);
    assert!(
        arena != usize::MAX,
        "scratch size overflows for {MAX_TOKENS} tokens"
    );
    std::fs::write(out.join("model.blob"), &blob).expect("writing OUT_DIR/model.blob");
    std::fs::write(
        out.join("model_consts.rs"),
        format!(
            "/// `microbert::scratch_bytes(model, {MAX_TOKENS})` for the embedded blob.\n\
             pub const ARENA_BYTES: usize = {arena};\n\
             /// Hidden width (length of the pooled vector).\n\
             pub const HIDDEN: usize = {};\n\
             /// `MAX_TOKENS` the build script sized the arena for.\n\
             pub const BUILD_MAX_TOKENS: usize = {MAX_TOKENS};\n",
            model.config.hidden_size,
        ),
    )
    .expect("writing OUT_DIR/model_consts.rs");

    let script = ["memory.x", "link.x"]
        .into_iter()
        .find(|f| manifest.join(f).exists())
        .expect("the firmware project has memory.x or link.x");
    std::fs::copy(manifest.join(script), out.join(script)).expect("copying the linker script");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg=-Tdefmt.x");
    }
}
