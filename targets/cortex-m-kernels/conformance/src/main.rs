//! The kernel conformance suite on a Cortex-M core, bare metal: runs
//! `microbert::kernels::testing::run_all` on `CortexMKernels` (bit-identical to
//! `microbert::Scalar` on every case, or a panic naming the first difference), prints
//! `backend: <name>` and `conformance: ok` over semihosting and exits with status 0 (1 on a
//! panic). `cargo xtask cross` runs it under `qemu-system-arm` on each board and checks the
//! backend's name, so a build that fell back to the scalar kernels cannot pass as a SIMD one.
//!
//! The suite's buffers (about 170 KB) live on the stack, which is the board's RAM above
//! `.bss`.
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use microbert::Kernels as _;
use microbert_cortex_m_kernels::CortexMKernels;

#[entry]
fn main() -> ! {
    let k = CortexMKernels::new();
    hprintln!("backend: {}", k.name());
    microbert::kernels::testing::run_all(&k);
    hprintln!("conformance: ok");
    debug::exit(debug::EXIT_SUCCESS);
    #[allow(clippy::empty_loop)]
    loop {}
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    hprintln!("panic: {}", info);
    debug::exit(debug::EXIT_FAILURE);
    #[allow(clippy::empty_loop)]
    loop {}
}
