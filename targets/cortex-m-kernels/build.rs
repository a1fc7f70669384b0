//! Tells the kernels which Armv8-M code their assembly needs: `naked_asm!` bodies are
//! assembled as module-level assembly, which sees the target's base features but not
//! `-C target-feature`, so on thumbv8m.main they name the core (`.cpu cortex-m33` for the
//! DSP extension, `.cpu cortex-m55` for MVE); thumbv7em has the DSP extension in its base.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(microbert_armv8m)");
    println!("cargo::rerun-if-env-changed=TARGET");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv8m.main") || target.starts_with("thumbv8.1m.main") {
        println!("cargo::rustc-cfg=microbert_armv8m");
    }
}
