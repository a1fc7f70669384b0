//! The kernel conformance suite: `CortexMKernels` must be bit-identical to
//! `microbert::Scalar`. On the host this checks the portable parts of a build with features
//! (the scalar fallback without); the Cortex-M builds run the same suite bare metal under
//! qemu-system-arm (`targets/cortex-m-kernels/conformance`, run by `cargo xtask cross`).

use microbert_cortex_m_kernels::CortexMKernels;

#[test]
fn bit_identical_to_scalar() {
    let k = CortexMKernels::new();
    println!("backend: {}", microbert::Kernels::name(&k));
    microbert::kernels::testing::run_all(&k);
}
