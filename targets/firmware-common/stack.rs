//! Stack painting, shared by the firmware examples (included with `#[path]`): at entry every
//! word between the lowest address the stack may reach (`_stack_end`, from the linker
//! script) and a little below the current stack pointer is filled with [`PAINT`]; after the
//! work, the lowest word that no longer holds it gives the deepest the stack went.

/// The paint (truncated to the word size on 32-bit cores).
pub(crate) const PAINT: usize = 0xC0DE_5EED_C0DE_5EED_u64 as usize;
/// Left unpainted below the stack pointer at entry, for the painting loop's own frame.
const MARGIN: usize = 512;
const WORD: usize = core::mem::size_of::<usize>();

unsafe extern "C" {
    /// Top of the stack.
    static _stack_start: usize;
    /// Lowest address the stack may reach.
    static _stack_end: usize;
}

fn bounds() -> (usize, usize) {
    // Only the addresses of the linker symbols are taken, never their values.
    (
        core::ptr::addr_of!(_stack_end) as usize,
        core::ptr::addr_of!(_stack_start) as usize,
    )
}

fn sp() -> usize {
    let sp: usize;
    // SAFETY: reads the stack pointer register into a general register; nothing else.
    #[cfg(target_arch = "riscv64")]
    unsafe {
        core::arch::asm!("mv {}, sp", out(reg) sp)
    };
    // SAFETY: as above (`mov` from `sp` is valid on AArch64 and on Thumb-2).
    #[cfg(not(target_arch = "riscv64"))]
    unsafe {
        core::arch::asm!("mov {}, sp", out(reg) sp)
    };
    sp
}

/// Paints `[_stack_end, sp - MARGIN)`; returns the bytes painted.
pub(crate) fn paint() -> usize {
    let (low, _) = bounds();
    let high = (sp() - MARGIN) & !(WORD - 1);
    let mut p = low;
    while p < high {
        // SAFETY: `[_stack_end, sp - MARGIN)` is the linker script's stack region below every
        // live frame (the stack grows down from `sp`, and this function's frame lies above
        // `sp - MARGIN`); no Rust object lives there.
        unsafe { core::ptr::write_volatile(p as *mut usize, PAINT) };
        p += WORD;
    }
    high.saturating_sub(low)
}

/// Bytes between the top of the stack and the lowest word that no longer holds the paint.
pub(crate) fn peak() -> usize {
    let (low, top) = bounds();
    let mut p = low;
    // SAFETY: aligned word reads inside the stack region.
    while p < top && unsafe { core::ptr::read_volatile(p as *const usize) } == PAINT {
        p += WORD;
    }
    top - p
}
