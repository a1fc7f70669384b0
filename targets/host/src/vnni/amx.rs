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
//! in place too. The rows are cut into pairs of row tiles and the column tiles (16
//! channels) taken in pairs: four C tiles (`tmm0`-`tmm3`), two A tiles (`tmm4`, `tmm5`)
//! and two B tiles (`tmm6`, `tmm7`); per 64 depths, four tile loads feed four `tdpbusd`
//! (see [`gemm_tiles`]). The C tiles are stored to a buffer and the accumulator start
//! (`factor * sum`) added on the way out.
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
    _mm512_add_epi32, _mm512_loadu_si512, _mm512_mask_storeu_epi32, _mm512_mullo_epi32,
    _mm512_set1_epi32,
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
    /// Two row tiles of `rows0` and `rows1` rows by two column tiles: C tiles `tmm0`,
    /// `tmm1` and the A tile `tmm4` of `rows0` rows, `tmm2`, `tmm3` and `tmm5` of `rows1`,
    /// the B tiles `tmm6`, `tmm7` of 16; every row 64 bytes.
    fn pair(rows0: usize, rows1: usize) -> Self {
        let (r0, r1) = (rows0.min(TILE_ROWS) as u8, rows1.min(TILE_ROWS) as u8);
        Self::with([r0, r0, r1, r1, r0, r1, 16, 16], [64; 8])
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

/// `out[r][c] = factor * sum_c + sum_g a[r][g] . b[c][g]` on AMX tiles, two row tiles by
/// two column tiles at a time.
///
/// The rows are cut into an even number of row tiles of nearly equal height (at most 16
/// rows each), taken in pairs; the panels' column tiles of 16 channels are taken in pairs
/// too (a pair may straddle two panels; an odd last one pairs with itself). Per pair of
/// pairs, the four C tiles `tmm0`-`tmm3` accumulate over the depth: per 64 depths, two A
/// tiles (`tmm4`, `tmm5`) and two B tiles (`tmm6`, `tmm7`) are loaded for four `tdpbusd`,
/// so each B tile is loaded once for both row tiles and each A tile once for both column
/// tiles.
///
/// # Safety
/// AVX-512 F, AMX-TILE and AMX-INT8, [`permitted`]; `b` packed in [`NR`]-channel
/// [`Group::Quad`] panels with a multiple of [`TILE_GROUPS`] groups; `a` holds
/// `out.rows()` rows of `lda >= b.groups()` words; `out.cols() == b.n()`;
/// `out.rows() >= 2`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx2")]
unsafe fn gemm_tiles(a: &[u32], lda: usize, b: Panels<'_>, factor: i32, mut out: MatMut<'_, i32>) {
    let (m, n, groups) = (out.rows(), b.n(), b.groups());
    debug_assert!(out.cols() == n && lda >= groups && groups.is_multiple_of(TILE_GROUPS));
    debug_assert!(m >= 2 && a.len() >= (m - 1) * lda + groups);
    let ldo = out.ld();
    let out = out.data_mut();
    let a_stride = 4 * lda;
    // Row tiles: an even number, heights `m / tiles` or one more (the first `m % tiles`).
    let row_tiles = 2 * m.div_ceil(2 * TILE_ROWS);
    let height = |t: usize| m / row_tiles + usize::from(t < m % row_tiles);
    let start = |t: usize| t * (m / row_tiles) + t.min(m % row_tiles);
    // Column tiles of 16 channels that hold output channels.
    let col_tiles = n.div_ceil(16);
    // The four C tiles of one step: 32 rows of 32 i32.
    let mut c = [0i32; 2 * TILE_ROWS * 32];
    const C_STRIDE: usize = 4 * 32;
    let mut loaded = (0, 0);
    // Column pairs outermost: a pair's B tiles are read again for every row pair.
    for j0 in (0..col_tiles).step_by(2) {
        let both = j0 + 1 < col_tiles;
        for pair in 0..row_tiles / 2 {
            let (t0, t1) = (2 * pair, 2 * pair + 1);
            let (rows0, rows1) = (height(t0), height(t1));
            let (r0, r1) = (start(t0), start(t1));
            if loaded != (rows0, rows1) {
                // SAFETY: the caller's (AMX, permitted).
                unsafe { TileConfig::pair(rows0, rows1).load() };
                loaded = (rows0, rows1);
            }
            // Column tile `j`: 64 bytes at `64 (j % 3)` in each group of panel `j / 3`.
            let tile = |j: usize| b.panel(j / 3).as_ptr().wrapping_add(64 * (j % 3));
            // An odd last column tile is computed twice (`b1 = b0`) and stored once.
            let (b0, b1) = (tile(j0), tile(if both { j0 + 1 } else { j0 }));
            let a0 = a.as_ptr().wrapping_add(r0 * lda).cast::<u8>();
            let a1 = a.as_ptr().wrapping_add(r1 * lda).cast::<u8>();
            let cp = c.as_mut_ptr().cast::<u8>();
            debug_assert!(b.panel(col_tiles.div_ceil(3) - 1).len() >= groups * GROUP_BYTES);
            // SAFETY: the configuration for these heights is loaded. The A tiles read
            // `rows0` (`rows1`) rows of 64 bytes, `a_stride` apart, from word
            // `r0 * lda + 16 kc` (`r1 * lda + ...`): rows below `r1 + rows1 <= m`, words
            // below `groups <= lda` (the caller's). Each B tile reads 16 rows of 64 bytes,
            // 192 apart, from byte `kc * 16 * 192 + 64 (j % 3)` of panel `j / 3`, which
            // holds `groups * 192` bytes (`j < col_tiles <= 3 * panels`). The stores write
            // at most 16 rows of 64 bytes, `C_STRIDE` apart, at byte offsets 0 and 64 of
            // rows 0 and 16 of `c`.
            unsafe {
                asm!(
                    "tilezero tmm0",
                    "tilezero tmm1",
                    "tilezero tmm2",
                    "tilezero tmm3",
                    "2:",
                    "tileloadd tmm4, [{a0} + {sa} * 1]",
                    "tileloadd tmm6, [{b0} + {sb} * 1]",
                    "tdpbusd tmm0, tmm4, tmm6",
                    "tileloadd tmm7, [{b1} + {sb} * 1]",
                    "tdpbusd tmm1, tmm4, tmm7",
                    "tileloadd tmm5, [{a1} + {sa} * 1]",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    "add {a0}, 64",
                    "add {a1}, 64",
                    "add {b0}, {bstep}",
                    "add {b1}, {bstep}",
                    "dec {k}",
                    "jnz 2b",
                    "tilestored [{c0} + {sc} * 1], tmm0",
                    "tilestored [{c1} + {sc} * 1], tmm1",
                    "tilestored [{c2} + {sc} * 1], tmm2",
                    "tilestored [{c3} + {sc} * 1], tmm3",
                    a0 = inout(reg) a0 => _,
                    a1 = inout(reg) a1 => _,
                    b0 = inout(reg) b0 => _,
                    b1 = inout(reg) b1 => _,
                    k = inout(reg) groups / TILE_GROUPS => _,
                    sa = in(reg) a_stride,
                    sb = in(reg) GROUP_BYTES,
                    bstep = in(reg) TILE_GROUPS * GROUP_BYTES,
                    c0 = in(reg) cp,
                    c1 = in(reg) cp.add(64),
                    c2 = in(reg) cp.add(TILE_ROWS * C_STRIDE),
                    c3 = in(reg) cp.add(TILE_ROWS * C_STRIDE + 64),
                    sc = in(reg) C_STRIDE,
                    options(nostack)
                );
            }
            for (half, j) in [j0, j0 + 1]
                .into_iter()
                .take(1 + usize::from(both))
                .enumerate()
            {
                let (c0, sums) = (16 * j, b.sums(j / 3));
                let cols = 16.min(n - c0);
                debug_assert!(sums.len() >= 4 * NR);
                // SAFETY: AVX-512 F is enabled here. `sums` holds 48 i32 (the `Panels`
                // view, asserted above), of which lanes `16 (j % 3)..+16` are read; `c`
                // holds 32 rows of 32 i32, of which lanes `16 half..+16` of rows
                // `0..rows0` and `16..16 + rows1` are read. `out` (the `MatMut` invariant:
                // rows `0..m` of stride `ldo`, `c0 + cols <= n <= ldo`) holds the `cols`
                // elements of each row `r0 + r < m` (`r1 + r < m`) written, the masked
                // lanes past `cols` being neither written nor faulting.
                unsafe {
                    let s = _mm512_mullo_epi32(
                        _mm512_loadu_si512(sums.as_ptr().add(64 * (j % 3)).cast()),
                        _mm512_set1_epi32(factor),
                    );
                    let mask = if cols == 16 {
                        u16::MAX
                    } else {
                        ((1u32 << cols) - 1) as u16
                    };
                    for (first, rows, tile_row) in [(r0, rows0, 0), (r1, rows1, TILE_ROWS)] {
                        for r in 0..rows {
                            let x = _mm512_add_epi32(
                                _mm512_loadu_si512(
                                    c.as_ptr().add((tile_row + r) * 32 + 16 * half).cast(),
                                ),
                                s,
                            );
                            _mm512_mask_storeu_epi32(
                                out.as_mut_ptr().add((first + r) * ldo + c0).cast(),
                                mask,
                                x,
                            );
                        }
                    }
                }
            }
        }
    }
    if loaded != (0, 0) {
        // SAFETY: AMX-TILE (the caller's); releases this thread's tile state.
        unsafe { asm!("tilerelease", options(nomem, nostack)) };
    }
}
