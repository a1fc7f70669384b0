//! The AMX-INT8 tier: the int8 GEMM on AMX tiles (`tdpbusd`), everything else as the
//! AVX-512 VNNI tier ([`super::zmm`]) does it.
//!
//! **Operands.** `tdpbusd tmm_c, tmm_a, tmm_b` is the tile form of `vpdpbusd`: unsigned
//! bytes of `a` times signed bytes of `b`, four products summed into each i32 of `c`,
//! wrapping. So the tier takes the VNNI tiers' operands unchanged: the activations as words
//! of four bytes offset by 128 (int8), as they are (u8 with a zero point), or split into
//! high and low bytes (int16), and the weights in the AVX-512 VNNI tier's prepared panels
//! of 48 channels ([`super::panels`]), whose per-channel sums take the offset back. The
//! results are therefore bit-identical to the scalar reference as well.
//!
//! **Tiles.** A row of an A tile is 16 words (64 depths) of one activation row, read in
//! place (stride: the row's words). A B tile is 16 groups of 16 channels: in a panel, group
//! `g` is 192 bytes (48 channels x 4 depths), so the 16 channels `16j..16j + 16` of groups
//! `g0..g0 + 16` are the 64 bytes at `g0 * 192 + 64 j`, 192 bytes apart: the panel is read
//! in place too. Per row tile (16 rows, or the call's last few) and panel: three C tiles
//! (`tmm0`-`tmm2`, the panel's 48 channels), one A tile (`tmm4`) and three B tiles
//! (`tmm5`-`tmm7`); per 64 depths, four tile loads feed three `tdpbusd`. The C tiles are
//! stored to a buffer and the accumulator start (`factor * sum`) added on the way out.
//!
//! **When.** AMX needs whole tiles of depth: a product whose depth is not a multiple of 64
//! (attention's Q.K at a head width of 32, the tiny fixture) runs on the AVX-512 VNNI
//! kernel, as do products of fewer than [`MIN_ROWS`] rows, for which a tile would be mostly
//! empty.
//!
//! **Set-up.** Linux hands AMX's 8 KiB of tile data to a process only after
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` ([`permitted`], asked once); the
//! tile configuration is per thread, loaded (`ldtilecfg`) by each call and released
//! (`tilerelease`) at its end, so no tile state outlives a call.

use super::panels::{Group, Panels};
use super::zmm::{Avx512Vnni, Zmm8x48};
use super::{MicroKernel, VnniTier};
use core::arch::asm;
use core::arch::x86_64::{
    __m512i, _mm512_add_epi32, _mm512_loadu_si512, _mm512_mask_storeu_epi32, _mm512_mullo_epi32,
    _mm512_set1_epi32, _mm512_storeu_si512,
};
use microbert::kernels::{MatMut, MatRef};

/// Rows of an A and a C tile.
const TILE_ROWS: usize = 16;
/// Groups of four depths per A row and B tile (64 bytes).
const TILE_GROUPS: usize = 16;
/// Channels per panel: the AVX-512 VNNI tier's packing (three B tiles of 16).
const NR: usize = 48;
/// Bytes of one group of a panel.
const GROUP_BYTES: usize = 4 * NR;
/// Products with fewer rows run on the `zmm` kernel.
pub(crate) const MIN_ROWS: usize = 8;

/// Whether this process may use AMX tile data: asks Linux once
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`) and remembers the answer; false
/// off Linux.
pub(crate) fn permitted() -> bool {
    #[cfg(target_os = "linux")]
    {
        static PERMITTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *PERMITTED.get_or_init(|| {
            const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
            const XFEATURE_XTILEDATA: libc::c_long = 18;
            // SAFETY: `arch_prctl` with these arguments only changes the process's
            // permission to use a state component; it reads and writes no memory of ours.
            let status = unsafe {
                libc::syscall(
                    libc::SYS_arch_prctl,
                    ARCH_REQ_XCOMP_PERM,
                    XFEATURE_XTILEDATA,
                )
            };
            status == 0
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// The 64-byte operand of `ldtilecfg` (palette 1): bytes per row and rows of each tile.
#[repr(C, align(64))]
struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 8],
    reserved2: [u8; 16],
    rows: [u8; 8],
    reserved3: [u8; 8],
}

impl TileConfig {
    /// C tiles `tmm0`-`tmm2` and the A tile `tmm4` of `rows` rows, B tiles `tmm5`-`tmm7` of
    /// 16 rows; every row 64 bytes; `tmm3` unused.
    fn new(rows: usize) -> Self {
        let r = rows.min(TILE_ROWS) as u8;
        let mut colsb = [64u16; 8];
        colsb[3] = 0;
        Self::with([r, r, r, 0, r, 16, 16, 16], colsb)
    }

    /// Every tile 16 rows of 64 bytes (the peak loop's).
    fn full() -> Self {
        Self::with([TILE_ROWS as u8; 8], [64; 8])
    }

    /// Palette 1 with these rows and bytes per row of `tmm0`-`tmm7`.
    fn with(rows: [u8; 8], colsb: [u16; 8]) -> Self {
        Self {
            palette: 1,
            start_row: 0,
            reserved: [0; 14],
            colsb,
            reserved2: [0; 16],
            rows,
            reserved3: [0; 8],
        }
    }

    /// Loads it (`ldtilecfg`), zeroing every tile.
    ///
    /// # Safety
    /// AMX-TILE and [`permitted`].
    #[inline(always)]
    unsafe fn load(&self) {
        // SAFETY: the caller's; the operand is this 64-byte configuration.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) core::ptr::from_ref(self), options(nostack, readonly))
        };
    }
}

/// `tdpbusd` per round of [`peak_loop`].
pub(crate) const PEAK_CHAINS: u64 = 6;
/// Multiply-accumulates of one full-tile `tdpbusd` (16 rows x 16 channels x 64 depths).
pub(crate) const TILE_MACS: u64 = (TILE_ROWS * 16 * 4 * TILE_GROUPS) as u64;

/// The peak micro-benchmark's loop: `rounds` rounds of [`PEAK_CHAINS`] independent
/// full-tile `tdpbusd` (`tmm0`-`tmm5` accumulate `tmm6` x `tmm7`, all zero), nothing else.
///
/// # Safety
/// AMX-TILE and AMX-INT8, [`permitted`].
pub(crate) unsafe fn peak_loop(rounds: u64) {
    if rounds == 0 {
        return;
    }
    // SAFETY: the caller's (AMX, permitted); the configuration is 64 bytes of ours, the
    // loop touches only tiles and counts `n` down, and the tiles are released at the end.
    unsafe {
        TileConfig::full().load();
        asm!(
            "2:",
            "tdpbusd tmm0, tmm6, tmm7",
            "tdpbusd tmm1, tmm6, tmm7",
            "tdpbusd tmm2, tmm6, tmm7",
            "tdpbusd tmm3, tmm6, tmm7",
            "tdpbusd tmm4, tmm6, tmm7",
            "tdpbusd tmm5, tmm6, tmm7",
            "dec {n}",
            "jnz 2b",
            "tilerelease",
            n = inout(reg) rounds => _,
            options(nomem, nostack),
        );
    }
}

/// The tier for the shared drivers: AMX tiles for the int8 GEMM, the AVX-512 VNNI tier's
/// packing and everything else.
pub(crate) struct Amx;

impl VnniTier for Amx {
    const NR: usize = NR;

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
    unsafe fn gemm_quads(a: &[u32], lda: usize, b: Panels<'_>, factor: i32, out: MatMut<'_, i32>) {
        let fits = b.group() == Group::Quad
            && b.groups() > 0
            && b.groups().is_multiple_of(TILE_GROUPS)
            && out.rows() >= MIN_ROWS;
        if fits {
            // SAFETY: the tier exists only where AMX-INT8 was found and permitted
            // (`Tier::supported`); the rest is the caller's, and the shape was checked.
            unsafe { gemm_tiles(a, lda, b, factor, out) };
        } else {
            // SAFETY: AVX-512 F, BW and VNNI are enabled here; the rest is the caller's.
            unsafe { super::gemm_panels::<Zmm8x48>(a, lda, b, factor, out) };
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
    unsafe fn pack(b: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        // SAFETY: the features are enabled here.
        unsafe { <Avx512Vnni as VnniTier>::pack(b, out) }
    }
}

const _: () = assert!(<Avx512Vnni as VnniTier>::NR == NR && Zmm8x48::NR == NR);

/// `out[r][c] = factor * sum_c + sum_g a[r][g] . b[c][g]` on AMX tiles.
///
/// # Safety
/// AVX-512 F, AMX-TILE and AMX-INT8, [`permitted`]; `b` packed in [`NR`]-channel
/// [`Group::Quad`] panels with a multiple of [`TILE_GROUPS`] groups; `a` holds
/// `out.rows()` rows of `lda >= b.groups()` words; `out.cols() == b.n()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
unsafe fn gemm_tiles(a: &[u32], lda: usize, b: Panels<'_>, factor: i32, mut out: MatMut<'_, i32>) {
    let (m, n, groups) = (out.rows(), b.n(), b.groups());
    debug_assert!(out.cols() == n && lda >= groups && groups.is_multiple_of(TILE_GROUPS));
    debug_assert!(m == 0 || a.len() >= (m - 1) * lda + groups);
    let ldo = out.ld();
    let out = out.data_mut();
    let a_stride = 4 * lda;
    // The C tiles of one row tile and panel, 48 i32 per row.
    let mut c = [0i32; TILE_ROWS * NR];
    let mut loaded = 0;
    for r0 in (0..m).step_by(TILE_ROWS) {
        let rows = (m - r0).min(TILE_ROWS);
        if rows != loaded {
            // SAFETY: the caller's (AMX, permitted).
            unsafe { TileConfig::new(rows).load() };
            loaded = rows;
        }
        for q in 0..n.div_ceil(NR) {
            let (panel, sums) = (b.panel(q), b.sums(q));
            debug_assert!(panel.len() >= groups * GROUP_BYTES && sums.len() >= 4 * NR);
            let a0 = a.as_ptr().wrapping_add(r0 * lda).cast::<u8>();
            // SAFETY: the configuration above is loaded. Each A tile reads `rows` rows of
            // 64 bytes, `a_stride` apart, from word `r0 * lda + 16 kc`: rows
            // `r0..r0 + rows <= m` of `a`, words below `groups <= lda` (the caller's). Each
            // B tile reads 16 rows of 64 bytes, 192 apart, from byte `kc * 16 * 192 + 64 j`
            // (`j < 3`) of the panel: below `(kc + 1) * 16 * 192 <= groups * 192`, the
            // panel's length. The stores write `rows` rows of 64 bytes, 192 apart, inside
            // `c`.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    options(nomem, nostack)
                );
                for kc in 0..groups / TILE_GROUPS {
                    let at = a0.add(kc * 4 * TILE_GROUPS);
                    let bt = panel.as_ptr().add(kc * TILE_GROUPS * GROUP_BYTES);
                    asm!(
                        "tileloadd tmm4, [{a} + {sa} * 1]",
                        "tileloadd tmm5, [{b0} + {sb} * 1]",
                        "tileloadd tmm6, [{b1} + {sb} * 1]",
                        "tileloadd tmm7, [{b2} + {sb} * 1]",
                        "tdpbusd tmm0, tmm4, tmm5",
                        "tdpbusd tmm1, tmm4, tmm6",
                        "tdpbusd tmm2, tmm4, tmm7",
                        a = in(reg) at,
                        sa = in(reg) a_stride,
                        b0 = in(reg) bt,
                        b1 = in(reg) bt.add(64),
                        b2 = in(reg) bt.add(128),
                        sb = in(reg) GROUP_BYTES,
                        options(nostack, readonly)
                    );
                }
                let cp = c.as_mut_ptr().cast::<u8>();
                asm!(
                    "tilestored [{c0} + {s} * 1], tmm0",
                    "tilestored [{c1} + {s} * 1], tmm1",
                    "tilestored [{c2} + {s} * 1], tmm2",
                    c0 = in(reg) cp,
                    c1 = in(reg) cp.add(64),
                    c2 = in(reg) cp.add(128),
                    s = in(reg) 4 * NR,
                    options(nostack)
                );
            }
            let c0 = q * NR;
            let cols = NR.min(n - c0);
            // SAFETY: AVX-512 F is enabled here. `sums` holds 48 i32 (checked by the
            // `Panels` view, asserted above), `c` 16 rows of 48; `out` (the `MatMut`
            // invariant: rows `0..m` of stride `ldo`, `c0 + cols <= n <= ldo`) holds the
            // `cols` elements of each row `r0 + r < m` written, the masked lanes past
            // `cols` being neither written nor faulting.
            unsafe {
                let f = _mm512_set1_epi32(factor);
                let start: [__m512i; 3] = core::array::from_fn(|v| {
                    _mm512_mullo_epi32(_mm512_loadu_si512(sums.as_ptr().add(64 * v).cast()), f)
                });
                for r in 0..rows {
                    let dst = out.as_mut_ptr().add((r0 + r) * ldo + c0);
                    for (v, s) in start.iter().enumerate() {
                        let lane0 = 16 * v;
                        if lane0 >= cols {
                            break;
                        }
                        let x = _mm512_add_epi32(
                            _mm512_loadu_si512(c.as_ptr().add(r * NR + lane0).cast()),
                            *s,
                        );
                        let left = cols - lane0;
                        if left >= 16 {
                            _mm512_storeu_si512(dst.add(lane0).cast(), x);
                        } else {
                            _mm512_mask_storeu_epi32(
                                dst.add(lane0).cast(),
                                ((1u32 << left) - 1) as u16,
                                x,
                            );
                        }
                    }
                }
            }
        }
    }
    if loaded != 0 {
        // SAFETY: AMX-TILE (the caller's); releases this thread's tile state.
        unsafe { asm!("tilerelease", options(nomem, nostack)) };
    }
}
