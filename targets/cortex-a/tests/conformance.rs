//! The kernel conformance suite: `NeonKernels` must be bit-identical to `microbert::Scalar`
//! (under qemu for AArch64 builds: `cargo xtask cross`; trivially on other hosts, where the
//! type is the scalar fallback).

#[path = "shared/wide_operands.rs"]
mod wide_operands;

use microbert_cortex_a::NeonKernels;

#[test]
fn bit_identical_to_scalar() {
    let k = NeonKernels::new();
    println!("backend: {}", microbert::Kernels::name(&k));
    microbert::kernels::testing::run_all(&k);
}

#[test]
fn wide_operands_bit_identical_to_scalar() {
    let cases = wide_operands::run(&NeonKernels::new());
    println!("int16 and uint8 edge cases: {cases} products bit-identical to scalar");
}
