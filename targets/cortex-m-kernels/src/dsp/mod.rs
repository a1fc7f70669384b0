//! Kernels with the DSP extension (`SXTB16`, `SMLAD`): Cortex-M4, M7, M33.
//!
//! **GEMM** (`Lhs::I8`, `Lhs::U8` with a zero point, `Lhs::I16` x channel-major or prepared
//! weights). Rows are taken 4 at a time: their activations, over a chunk of at most [`KC`]
//! depths, are widened into a stack panel of 16-bit pairs ([`pack`], 4 KiB: 4 rows x 512
//! depths x 2 bytes), zero-padded to a multiple of 16 depths; then [`kernel::dot_4x1`] runs
//! once per output channel over that panel and the channel's weights, read in place (any
//! alignment). 54 instructions per 64 multiply-accumulates in the inner loop (1.19 MAC per
//! instruction; CMSIS-NN's `arm_nn_mat_mult_nt_t_s8` DSP loop: 0.8), because the widening
//! of the activations is paid once per panel instead of once per output channel, and the
//! `SXTB16` of each weight word serves 4 rows. The weights are never widened in memory:
//! the prepared bytes are not used (`prepared_len` stays 0), flash holds the blob's int8.
//!
//! Products of a chunk read the weights a little past a row's `depth` (up to the 16-depth
//! padding) when the slice holds those bytes: they meet zero activations, so they add
//! nothing; the last rows of a matrix, where the slice ends, go through a zero-padded copy.
//!
//! **P.V** (`Lhs::U16` x `Rhs::Depths`, attention probabilities times values): a chunk of
//! keys' values is transposed into a stack buffer (channels become rows of keys, at most
//! [`VT_BYTES`]), and the probabilities `p` (0..=65,535) enter the same kernel as the 16-bit
//! `p - 32768`; `sum p v = sum (p - 32768) v + 32768 sum v`, with the column sums of `v`
//! taken while transposing, exact modulo 2^32 as the scalar i32 sum.
//!
//! Other operand kinds (`Lhs::U16` x channels, anything x `Rhs::Depths` but u16) go to the
//! scalar reference.

mod kernel;

use microbert::kernels::{Gemm, Lhs, MatMut, MatRef, Rhs, scalar};

/// Rows per panel (the micro-kernel's tile height).
const MR: usize = 4;
/// Depths per panel chunk (a multiple of 16): the panel is `MR * KC * 2` bytes of stack.
pub const KC: usize = 512;
/// 32-bit words of one 16-depth step of a panel (4 rows x 8 pairs).
const STEP_WORDS: usize = 32;
/// Bytes of the transposed values of one key chunk (P.V).
pub const VT_BYTES: usize = 4096;
/// Widest value rows the P.V path transposes (wider ones use the scalar reference).
const MAX_WIDTH: usize = VT_BYTES / 16;

/// `out = a x b` for the operand kinds this module accelerates, the scalar reference for
/// the rest.
pub fn gemm(g: Gemm<'_, '_>) {
    if g.rows() == 0 || g.channels() == 0 || g.depth() == 0 {
        return scalar::gemm(g);
    }
    let (a, b, mut out) = g.parts();
    let weights = match b {
        Rhs::Channels(w) => Some(w),
        Rhs::Prepared(p) => Some(p.raw()),
        _ => None,
    };
    let source = match a {
        Lhs::I8(x) => Some(Source::I8(x)),
        Lhs::U8 { values, zero_point } => Some(Source::U8(values, zero_point)),
        Lhs::I16(x) => Some(Source::I16(x)),
        _ => None,
    };
    match (source, weights, a, b) {
        (Some(src), Some(w), _, _) => dense(src, w, &mut out),
        (_, _, Lhs::U16(p), Rhs::Depths(v)) if v.cols() <= MAX_WIDTH => {
            weighted(p, v, &mut out);
        }
        _ => {
            if let Some(g) = Gemm::new(a, b, out) {
                scalar::gemm(g);
            }
        }
    }
}

/// An activation operand as the panel sees it: every element a 16-bit value.
#[derive(Clone, Copy)]
enum Source<'a> {
    I8(MatRef<'a, i8>),
    /// Values and zero point: element `q - zp`.
    U8(MatRef<'a, u8>, u8),
    I16(MatRef<'a, i16>),
    /// Probabilities, entering as `p - 32768` (the caller adds `32768 * sum w`).
    U16(MatRef<'a, u16>),
}

impl Source<'_> {
    fn rows(&self) -> usize {
        match self {
            Self::I8(m) => m.rows(),
            Self::U8(m, _) => m.rows(),
            Self::I16(m) => m.rows(),
            Self::U16(m) => m.rows(),
        }
    }

    /// Elements `k0..k0 + len` of row `r` as 16-bit values into `dst` (`len` entries).
    fn widen(&self, r: usize, k0: usize, dst: &mut [i16]) {
        let len = dst.len();
        match self {
            Self::I8(m) => {
                for (d, &x) in dst.iter_mut().zip(&m.row(r)[k0..k0 + len]) {
                    *d = i16::from(x);
                }
            }
            Self::U8(m, zp) => {
                for (d, &x) in dst.iter_mut().zip(&m.row(r)[k0..k0 + len]) {
                    *d = i16::from(x) - i16::from(*zp);
                }
            }
            Self::I16(m) => dst.copy_from_slice(&m.row(r)[k0..k0 + len]),
            Self::U16(m) => {
                for (d, &x) in dst.iter_mut().zip(&m.row(r)[k0..k0 + len]) {
                    *d = (x ^ 0x8000) as i16;
                }
            }
        }
    }
}

/// The 4 bytes `b0 b1 b2 b3` of `c` (4 bytes, any alignment) as the sign-extended pairs
/// `[b0, b2]` and `[b1, b3]`: `LDR` (Armv7-M reads unaligned words unless
/// `CCR.UNALIGN_TRP` is set, which no microbert firmware does) and two `SXTB16`.
#[inline(always)]
fn split_i8x4(c: &[i8]) -> (u32, u32) {
    let p = c[..4].as_ptr();
    let (even, odd): (u32, u32);
    // SAFETY: `c` holds at least 4 readable bytes (the slice index above); registers only
    // otherwise.
    unsafe {
        core::arch::asm!(
            "ldr {w}, [{p}]",
            "sxtb16 {odd}, {w}, ror #8",
            "sxtb16 {even}, {w}",
            p = in(reg) p,
            w = out(reg) _,
            even = lateout(reg) even,
            odd = lateout(reg) odd,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    (even, odd)
}

/// The 16-bit pair `[lo, hi]` as one word (`lo` in the low halfword).
#[inline]
fn pair(lo: i16, hi: i16) -> u32 {
    u32::from(lo as u16) | (u32::from(hi as u16) << 16)
}

/// Packs rows `r0..r0 + rows` (`rows <= MR`) of `src`, depths `k0..k0 + kc`, into `panel`
/// (`steps * STEP_WORDS` words, `steps = ceil(kc / 16)`): per 4 depths `4s..4s + 4`, row
/// `i`'s even word `[a(4s), a(4s + 2)]` at `8s + 2i` and its odd word `[a(4s + 1), a(4s + 3)]`
/// at `8s + 2i + 1`; missing rows and depths are zero.
fn pack(src: Source<'_>, r0: usize, rows: usize, k0: usize, kc: usize, panel: &mut [u32]) {
    let steps = kc.div_ceil(16);
    panel[..steps * STEP_WORDS].fill(0);
    if let Source::I8(a) = src {
        // int8 rows: one unaligned `LDR` and two `SXTB16` per 4 depths (the partial last
        // step through the general path below).
        let full = kc / 4;
        for i in 0..rows {
            let row = &a.row(r0 + i)[k0..k0 + 4 * full];
            for (s, c) in row.chunks_exact(4).enumerate() {
                let (even, odd) = split_i8x4(c);
                panel[8 * s + 2 * i] = even;
                panel[8 * s + 2 * i + 1] = odd;
            }
        }
        if full * 4 == kc {
            return;
        }
    }
    let mut row = [0i16; KC];
    for i in 0..rows {
        let vals = &mut row[..kc.div_ceil(4) * 4];
        vals.fill(0);
        src.widen(r0 + i, k0, &mut vals[..kc]);
        for (s, q) in vals.chunks_exact(4).enumerate() {
            panel[8 * s + 2 * i] = pair(q[0], q[2]);
            panel[8 * s + 2 * i + 1] = pair(q[1], q[3]);
        }
    }
}

/// Where one output channel's weights of a chunk come from: a row of `w` in place, or a
/// zero-padded copy when the padded read would leave the slice.
struct ChannelRows<'a> {
    data: &'a [i8],
    ld: usize,
    k0: usize,
    kc: usize,
}

impl ChannelRows<'_> {
    /// How many channels from the first read `16 * steps` bytes inside the slice.
    fn in_place(&self, steps: usize) -> usize {
        let need = self.k0 + 16 * steps;
        match self.data.len().checked_sub(need) {
            Some(room) if self.ld > 0 => room / self.ld + 1,
            Some(_) => usize::MAX,
            None => 0,
        }
    }

    /// A pointer to `16 * steps` readable bytes starting at channel `c`, depth `k0`: in
    /// place when the slice holds them, else the row chunk copied into `tail`.
    fn ptr(&self, c: usize, steps: usize, tail: &mut [i8; KC]) -> *const i8 {
        let start = c * self.ld + self.k0;
        match self.data.get(start..start + 16 * steps) {
            Some(s) => s.as_ptr(),
            None => {
                let t = &mut tail[..16 * steps];
                t.fill(0);
                t[..self.kc].copy_from_slice(&self.data[start..start + self.kc]);
                t.as_ptr()
            }
        }
    }
}

/// Runs the panel of rows `r0..r0 + rows` against every channel of `w`, storing (first
/// chunk) or adding (later chunks) the sums into `out`.
fn panel_products(
    panel: &[u32],
    steps: usize,
    w: &ChannelRows<'_>,
    channels: usize,
    out: &mut MatMut<'_, i32>,
    r0: usize,
    rows: usize,
    first: bool,
) {
    assert!(
        steps >= 1 && panel.len() >= steps * STEP_WORDS && rows <= MR,
        "dsp panel: internal shape invariant"
    );
    let ldo = out.ld();
    let o = out.data_mut();
    // A full panel's first chunk: the channels whose padded reads stay in the slice in one
    // call that stores the sums itself.
    let mut c0 = 0;
    if rows == MR && first {
        c0 = w.in_place(steps).min(channels);
        if c0 > 0 {
            let args = kernel::Panel {
                panel: panel.as_ptr(),
                w: w.data[w.k0..].as_ptr(),
                ldb: w.ld,
                iterations: steps,
                channels: c0,
                out: o[r0 * ldo..].as_mut_ptr(),
                ldo: 4 * ldo,
            };
            // SAFETY: `panel` holds `steps * STEP_WORDS` aligned words (asserted above);
            // channels `0..c0` read `16 * steps` bytes inside `w.data`
            // (`ChannelRows::in_place`); rows `r0..r0 + 4` of `out` exist (`rows == MR`)
            // and hold `channels >= c0` sums each (the `MatMut` invariant).
            unsafe { kernel::dot_4xn(&args) };
        }
    }
    let mut tail = [0i8; KC];
    for c in c0..channels {
        let wp = w.ptr(c, steps, &mut tail);
        let mut acc = [0i32; MR];
        // SAFETY: `panel` holds `steps * STEP_WORDS` aligned words (asserted above),
        // `wp` points at `16 * steps` readable bytes (`ChannelRows::ptr`), `steps >= 1`,
        // and `acc` is a local array of 4 `i32`.
        unsafe { kernel::dot_4x1(panel.as_ptr(), wp, steps, &mut acc) };
        for (i, &v) in acc.iter().enumerate().take(rows) {
            let at = (r0 + i) * ldo + c;
            o[at] = if first { v } else { o[at].wrapping_add(v) };
        }
    }
}

/// `out = src x w^T` (`w`: one row of depth per output channel), panel by panel.
fn dense(src: Source<'_>, w: MatRef<'_, i8>, out: &mut MatMut<'_, i32>) {
    let (m, n, depth) = (src.rows(), w.rows(), w.cols());
    let mut panel = [0u32; KC / 16 * STEP_WORDS];
    for r0 in (0..m).step_by(MR) {
        let rows = MR.min(m - r0);
        for k0 in (0..depth).step_by(KC) {
            let kc = KC.min(depth - k0);
            let steps = kc.div_ceil(16);
            pack(src, r0, rows, k0, kc, &mut panel);
            let weights = ChannelRows {
                data: w.data(),
                ld: w.ld(),
                k0,
                kc,
            };
            panel_products(&panel, steps, &weights, n, out, r0, rows, k0 == 0);
        }
    }
}

/// `out[r][t] = sum_j p[r][j] * v[j][t]` (attention P.V), `v.cols() <= MAX_WIDTH`.
fn weighted(p: MatRef<'_, u16>, v: MatRef<'_, i8>, out: &mut MatMut<'_, i32>) {
    let (m, keys, width) = (p.rows(), p.cols(), v.cols());
    // Keys per chunk: the transposed chunk (`width` rows of `kc` keys, padded to 16) fits
    // `VT_BYTES`, and the probabilities' chunk fits a panel.
    let chunk = (VT_BYTES / width / 16 * 16).min(KC);
    let mut vt = [0i8; VT_BYTES];
    let mut col_sums = [0i32; MAX_WIDTH];
    let mut panel = [0u32; KC / 16 * STEP_WORDS];
    for j0 in (0..keys).step_by(chunk) {
        let kc = chunk.min(keys - j0);
        let steps = kc.div_ceil(16);
        let padded = 16 * steps;
        // Channels (value columns) become rows of keys, zero past `kc`.
        vt[..width * padded].fill(0);
        for j in 0..kc {
            for (t, &x) in v.row(j0 + j).iter().enumerate() {
                vt[t * padded + j] = x;
                col_sums[t] = col_sums[t].wrapping_add(i32::from(x));
            }
        }
        let weights = ChannelRows {
            data: &vt[..width * padded],
            ld: padded,
            k0: 0,
            kc,
        };
        for r0 in (0..m).step_by(MR) {
            let rows = MR.min(m - r0);
            pack(Source::U16(p), r0, rows, j0, kc, &mut panel);
            panel_products(&panel, steps, &weights, width, out, r0, rows, j0 == 0);
        }
    }
    // The `p - 32768` offset: `+ 32768 * sum_j v[j][t]`.
    for r in 0..m {
        for (o, &s) in out.row_mut(r).iter_mut().zip(&col_sums[..width]) {
            *o = o.wrapping_add(s.wrapping_mul(32_768));
        }
    }
}
