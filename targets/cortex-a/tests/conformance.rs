//! The kernel conformance suite: `NeonKernels` must be bit-identical to `microbert::Scalar`
//! (under qemu for AArch64 builds: `cargo xtask cross`; trivially on other hosts, where the
//! type is the scalar fallback).

use microbert_cortex_a::NeonKernels;

#[test]
fn bit_identical_to_scalar() {
    let k = NeonKernels::new();
    println!("backend: {}", microbert::Kernels::name(&k));
    microbert::kernels::testing::run_all(&k);
}
