//! Instruction counts on Cortex-M under `qemu-system-arm -icount shift=0` (included with
//! `#[path]` by the Cortex-M firmware examples).
//!
//! Debian's qemu has no TCG plugins and models no DWT cycle counter, so the count comes from
//! virtual time: with `-icount shift=0` qemu advances its virtual clock by exactly 1 ns per
//! guest instruction, and every timer of the board runs on that clock. SysTick, clocked by
//! the core clock (25 MHz on mps2-an386/an500, 32 MHz on mps3-an547 as qemu models them),
//! then ticks once per 40 (or 31.25) instructions; a 24-bit down counter with a wrap count
//! kept by its exception makes it a 64-bit tick count.
//!
//! [`calibrate`] turns ticks into instructions without trusting any clock figure: it times
//! a loop of exactly [`CALIBRATION_INSNS`] instructions (`subs` + `bne`), and a measured
//! tick count `t` stands for `t * CALIBRATION_INSNS / calibration_ticks` instructions. A
//! reading is good to one tick (40 instructions on mps2) plus the few instructions of the
//! reads themselves; without `-icount` the ratio is wall-clock noise, and the firmware's
//! `icount:` line says what it measured so `cargo xtask firmware` can check it.

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::SYST;
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m_rt::exception;

/// SysTick reload: the whole 24-bit range.
const RELOAD: u32 = 0x00FF_FFFF;
/// Iterations of the calibration loop (2 instructions each).
const CALIBRATION_LOOPS: u32 = 10_000_000;
/// Instructions the calibration loop executes.
pub(crate) const CALIBRATION_INSNS: u64 = 2 * CALIBRATION_LOOPS as u64;

/// SysTick wraps since [`start`].
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[exception]
fn SysTick() {
    WRAPS.fetch_add(1, Ordering::Relaxed);
}

/// Starts SysTick on the core clock, free running, with its wrap exception enabled.
pub(crate) fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(RELOAD);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Ticks since [`start`] (64-bit: wraps counted by the SysTick exception).
///
/// After [`start`] clears it the counter reads 0, loads `RELOAD` on the first tick and
/// counts down; reaching 0 again pends the exception. So `current` stands for
/// `(RELOAD + 1 - current) mod (RELOAD + 1)` ticks into the current period.
pub(crate) fn ticks() -> u64 {
    let period = u64::from(RELOAD) + 1;
    loop {
        let wraps = WRAPS.load(Ordering::Relaxed);
        let current = u64::from(SYST::get_current());
        // A wrap between the two reads: read again.
        if WRAPS.load(Ordering::Relaxed) == wraps {
            return u64::from(wraps) * period + (period - current) % period;
        }
    }
}

/// Ticks taken by [`CALIBRATION_INSNS`] instructions.
pub(crate) fn calibrate() -> u64 {
    let t0 = ticks();
    // SAFETY: a register-only countdown loop; it touches no memory and no stack.
    unsafe {
        core::arch::asm!(
            "2:",
            "subs {n}, {n}, #1",
            "bne 2b",
            n = inout(reg) CALIBRATION_LOOPS => _,
            options(nomem, nostack),
        );
    }
    ticks() - t0
}

/// The tick source and its calibration, for `app::Counter`.
pub(crate) fn counter() -> crate::app::Counter {
    let calibration_ticks = calibrate();
    crate::app::Counter {
        ticks,
        calibration_insns: CALIBRATION_INSNS,
        calibration_ticks,
    }
}
