//! The kernel conformance suite: `RvvKernels` must be bit-identical to `microbert::Scalar`
//! (under qemu for riscv64 +v builds: `cargo xtask cross`; trivially on other hosts, where the
//! type is the scalar fallback).

#[path = "../../cortex-a/tests/shared/wide_operands.rs"]
mod wide_operands;

use microbert_riscv::RvvKernels;

#[test]
fn bit_identical_to_scalar() {
    let k = RvvKernels::new();
    println!("backend: {}", microbert::Kernels::name(&k));
    microbert::kernels::testing::run_all(&k);
}

#[test]
fn wide_operands_bit_identical_to_scalar() {
    let cases = wide_operands::run(&RvvKernels::new());
    println!("int16 and uint8 edge cases: {cases} products bit-identical to scalar");
}
