//! The kernel conformance suite: `RvvKernels` must be bit-identical to `microbert::Scalar`
//! (under qemu for riscv64 +v builds: `cargo xtask cross`; trivially on other hosts, where the
//! type is the scalar fallback).

use microbert_riscv::RvvKernels;

#[test]
fn bit_identical_to_scalar() {
    let k = RvvKernels::new();
    println!("backend: {}", microbert::Kernels::name(&k));
    microbert::kernels::testing::run_all(&k);
}
