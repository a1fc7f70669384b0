//! Host backend of microbert: [`HostKernels`] implements [`microbert::Kernels`] on x86-64
//! in tiers of instruction sets ([`Tier`]: AVX2, AVX-VNNI, AVX-512 VNNI, AMX-INT8), the best one
//! the CPU has chosen at run time, and the scalar reference elsewhere.
//!
//! Selection happens in exactly one place: [`HostKernels::detect`] takes the first tier of
//! [`Tier::AUTO`] that [`Tier::supported`] finds (`is_x86_feature_detected!`), and
//! [`HostKernels::with_tier`] forces one (`None` when the CPU lacks it). Every SIMD body is a
//! `#[target_feature(enable = ...)] unsafe fn` that only the methods of a `HostKernels`
//! of its tier call. The crate is built with the default x86-64 codegen (no
//! `target-cpu=native`), so one binary runs on every x86-64 machine.
//!
//! Every tier is bit-identical to [`microbert::Scalar`]: the arithmetic is integer and
//! exact. AVX2 sign-extends int8 to i16 and multiplies with `vpmaddwd` (which cannot
//! saturate on such inputs); the VNNI tiers multiply u8 by int8 with `vpdpbusd`, the int8
//! activations offset by 128 and the offset taken back through per-channel weight sums
//! (see `vnni.rs`). Sums wrap modulo 2^32 exactly as the scalar `i32` sums do in release
//! builds. `tests/conformance.rs` runs the runtime's conformance suite on every tier the CPU
//! has and names the ones it could not run.
//!
//! What is accelerated: the GEMM (dense layers, attention Q.K and P.V, the MLM head) on
//! weights packed in panels (prepared once per model by [`HostKernels::prepare_model`], or
//! packed by the call); the per-row passes (quantisation, requantisation, attention
//! logits, softmax, the P.V scale, LayerNorm, GELU, and the calibrated blobs' dense-input
//! quantisers: SmoothQuant-scaled int8, int16, u8 with an offset) with AVX2 on every SIMD tier:
//! `vpmuldq` 32 x 32 -> 64-bit products, an exact emulation of the 64-bit arithmetic shift
//! and table gathers (see `avx2/rows.rs`). Each pass hands the reference the rare chunks
//! or rows whose shifts or ranges its vector path does not cover, and every tail. The
//! AVX-512 VNNI tier runs requantisation, int8 quantisation, attention logits, softmax,
//! GELU and LayerNorm on `zmm` (`avx512.rs`). Every SIMD tier takes int8, u8 (with a zero
//! point) and int16 activations on channel-major or prepared weights, and u16
//! probabilities on depth-major values (P.V); the other combinations (int8, u8 or int16
//! times depth-major values, which the encoder does not use) go to the scalar reference.
//!
//! [`lines`] is the `microbert` command's line decoding (raw bytes to numbered UTF-8 lines,
//! one error per bad line, bounded memory), a library module so fuzz targets can reach it.
//!
//! ```
//! use microbert_host::HostKernels;
//! # fn main() -> Result<(), microbert::Error> {
//! # let blob = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/fixtures/tiny/model.blob"));
//! let model = microbert::parse(blob)?;
//! // The best tier the CPU has, with the dense weights prepared once for its GEMM.
//! let prepared = HostKernels::detect().prepare_model(&model);
//! let encoder = prepared.encoder(&model)?;
//! let mut arena = vec![0u8; microbert::scratch_bytes(&model, 3)];
//! let mut pooled = vec![0i32; model.config.hidden_size as usize];
//! encoder.embed(&[2, 7, 3], &mut arena, &mut pooled)?;
//! println!("kernels: {}", microbert::Kernels::name(encoder.kernels()));
//! # Ok(())
//! # }
//! ```
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

/// The README's Rust usage, compiled and run as doctests (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod blob_file;
pub mod cpu;
pub mod lines;
pub mod threads;
#[cfg(target_arch = "x86_64")]
mod vnni;

pub use blob_file::BlobFile;
use microbert::kernels::{
    Gemm, Kernels, LayerNormParams, LeI32s, Lhs, LogitScale, MatRef, PvScale, Requant, Rhs, scalar,
};
use microbert::{Encoder, ModelView, PreparedWeights, RunError};
pub use threads::Threads;

/// An instruction-set tier of the host backend: what its GEMM runs on. Every tier gives
/// results bit-identical to the scalar reference.
///
/// | tier | int8 and u8 GEMM | int16 GEMM | attention P.V | per-row passes |
/// |---|---|---|---|---|
/// | `scalar` | the reference | the reference | the reference | the reference |
/// | `avx2` | `vpmaddwd` on i16 pairs, 6 x 16 tiles | the same | `vpmaddwd` | AVX2 |
/// | `avx-vnni` | VEX `vpdpbusd` on `ymm`, 6 x 16 | two `vpdpbusd` products (high, low bytes) | AVX2 `vpmaddwd` | AVX2 |
/// | `avx512-vnni` | `vpdpbusd` on `zmm`, 8 x 48 | two `vpdpbusd` products (high, low bytes) | `vpdpwssd` `zmm`, 12 x 32 | mostly AVX-512 |
/// | `amx` | `tdpbusd` on AMX tiles, 16 x 48 x 64 (depth a multiple of 64, at least 8 rows; else as `avx512-vnni`) | two `tdpbusd` products | as `avx512-vnni` | as `avx512-vnni` |
///
/// A tier joins [`Tier::AUTO`] (what [`HostKernels::detect`] may choose) only once the
/// conformance suite has passed on a CPU that has it, because an unverified tier must never
/// be chosen automatically; the enum is `#[non_exhaustive]` so tiers can be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tier {
    /// The portable scalar reference (`microbert::Scalar`), on every CPU.
    Scalar,
    /// x86-64 AVX2.
    Avx2,
    /// AVX-VNNI (VEX `vpdpbusd` on `ymm`), with AVX2 for the rest.
    AvxVnni,
    /// AVX-512 VNNI (`vpdpbusd`, and `vpdpwssd` for P.V, on `zmm`; needs AVX-512 F and BW), with
    /// AVX2 for the per-row passes.
    Avx512Vnni,
    /// AMX-INT8 (`tdpbusd` on tiles) for the int8 GEMM, the AVX-512 VNNI tier for the rest;
    /// needs the operating system's permission to use tile data (Linux: `arch_prctl`).
    Amx,
}

impl Tier {
    /// Every tier, slowest first.
    pub const ALL: [Self; 5] = [
        Self::Scalar,
        Self::Avx2,
        Self::AvxVnni,
        Self::Avx512Vnni,
        Self::Amx,
    ];

    /// The tiers [`HostKernels::detect`] chooses from, best first: those that passed the
    /// conformance suite on real hardware (see the README for the CPUs).
    pub const AUTO: [Self; 5] = [
        Self::Amx,
        Self::Avx512Vnni,
        Self::AvxVnni,
        Self::Avx2,
        Self::Scalar,
    ];

    /// The tier's name (`--kernels`, [`Kernels::name`], benchmark tables).
    pub const fn name(self) -> &'static str {
        match self.c_name().to_str() {
            Ok(name) => name,
            Err(_) => "",
        }
    }

    /// [`Self::name`] NUL-terminated, for the C ABI (`microbert_kernels`); the one list of
    /// the names.
    pub const fn c_name(self) -> &'static core::ffi::CStr {
        match self {
            Self::Scalar => c"scalar",
            Self::Avx2 => c"avx2",
            Self::AvxVnni => c"avx-vnni",
            Self::Avx512Vnni => c"avx512-vnni",
            Self::Amx => c"amx",
        }
    }

    /// The tier called `name` ([`Self::name`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The CPU features it needs (`is_x86_feature_detected!` names, and `amx-int8` for AMX-TILE
    /// with AMX-INT8, [`cpu::amx_int8`]).
    pub const fn features(self) -> &'static [&'static str] {
        match self {
            Self::Scalar => &[],
            Self::Avx2 => &["avx2"],
            Self::AvxVnni => &["avx2", "avxvnni"],
            Self::Avx512Vnni => &["avx2", "avx512f", "avx512bw", "avx512vnni"],
            Self::Amx => &["avx2", "avx512f", "avx512bw", "avx512vnni", "amx-int8"],
        }
    }

    /// Whether this CPU has every feature the tier needs (checked at run time): the one
    /// place the host backend looks at the CPU.
    pub fn supported(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match self {
                Self::Scalar => true,
                Self::Avx2 => has!("avx2"),
                Self::AvxVnni => has!("avx2") && has!("avxvnni"),
                Self::Avx512Vnni => {
                    has!("avx2") && has!("avx512f") && has!("avx512bw") && has!("avx512vnni")
                }
                Self::Amx => {
                    Self::Avx512Vnni.supported() && cpu::amx_int8() && vnni::amx::permitted()
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == Self::Scalar
        }
    }
}

/// The AMX-INT8 peak micro-benchmark (`bench-peers`): runs `rounds` rounds of independent
/// full-tile `tdpbusd` on zero tiles and returns the multiply-accumulates done, or `None`
/// without running when [`Tier::Amx`] is not [supported](Tier::supported). Time it to get
/// the machine's tile peak.
pub fn amx_peak_loop(rounds: u64) -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    if Tier::Amx.supported() {
        // SAFETY: AMX-INT8 is present and permitted (`Tier::supported`).
        unsafe { vnni::amx::peak_loop(rounds) };
        return Some(rounds * vnni::amx::PEAK_CHAINS * vnni::amx::TILE_MACS);
    }
    let _ = rounds;
    None
}

/// The register-tile geometry of a tier's int8 GEMM (the associated constants of its
/// micro-kernel): `mr` rows by `nr` channels, `ku` depths per instruction step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Rows of activations per register tile.
    pub mr: usize,
    /// Output channels per packed panel.
    pub nr: usize,
    /// Depths each multiply-accumulate instruction sums per lane.
    pub ku: usize,
}

impl Tier {
    /// The geometry of the tier's int8 GEMM (`None` for the scalar reference).
    pub fn geometry(self) -> Option<Geometry> {
        #[cfg(target_arch = "x86_64")]
        {
            use vnni::MicroKernel;
            fn of<K: MicroKernel>() -> Option<Geometry> {
                Some(Geometry {
                    mr: K::MR,
                    nr: K::NR,
                    ku: K::KU,
                })
            }
            match self {
                Self::Scalar => None,
                Self::Avx2 => Some(Geometry {
                    mr: avx2::MR,
                    nr: avx2::NR,
                    ku: 2,
                }),
                Self::AvxVnni => of::<vnni::ymm::Ymm6x16>(),
                Self::Avx512Vnni => of::<vnni::zmm::Zmm8x48>(),
                Self::Amx => Some(Geometry {
                    mr: 16,
                    nr: 48,
                    ku: 64,
                }),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            None
        }
    }
}

impl core::fmt::Display for Tier {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The host's kernels: the best tier this CPU supports, or one chosen by its [`Tier`].
///
/// A value of this type with a SIMD tier exists only after a successful run-time check
/// ([`Tier::supported`]), which is what makes calling that tier's bodies sound.
///
/// The SIMD tiers prepare weights ([`Kernels::prepare`]): each dense layer's matrix
/// re-laid out in the panels its GEMM reads (about the size of the int8 weights, plus one
/// i32 per channel on the VNNI tiers), made once per model ([`Self::prepare_model`]);
/// operands that were not prepared (the keys and values of attention) are packed by each
/// call. Each tier's prepared layout is its own (prepared weights are tied to
/// [`Kernels::name`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostKernels {
    tier: Tier,
}

impl HostKernels {
    /// The best verified tier this CPU supports (the first of [`Tier::AUTO`] it has).
    pub fn detect() -> Self {
        let tier = Tier::AUTO
            .into_iter()
            .find(|t| t.supported())
            .unwrap_or(Tier::Scalar);
        Self { tier }
    }

    /// The kernels of `tier`, or `None` when this CPU lacks one of its features.
    pub fn with_tier(tier: Tier) -> Option<Self> {
        tier.supported().then_some(Self { tier })
    }

    /// AVX2 kernels (`with_tier(Tier::Avx2)`).
    pub fn avx2() -> Option<Self> {
        Self::with_tier(Tier::Avx2)
    }

    /// The scalar reference, whatever the CPU.
    pub const fn scalar() -> Self {
        Self { tier: Tier::Scalar }
    }

    /// The tier in use.
    pub const fn tier(&self) -> Tier {
        self.tier
    }

    /// Prepares `model`'s dense weights for these kernels into owned storage (nothing for
    /// the scalar backend); see [`PreparedModel::encoder`].
    pub fn prepare_model(&self, model: &ModelView<'_>) -> PreparedModel {
        let mut bytes = vec![0u8; microbert::prepared_bytes(self, model)];
        // The storage has exactly the size asked for, so this cannot fail.
        let written = microbert::prepare_weights(self, model, &mut bytes).is_ok();
        if !written {
            bytes.clear();
        }
        PreparedModel {
            kernels: *self,
            bytes,
        }
    }
}

impl Default for HostKernels {
    fn default() -> Self {
        Self::detect()
    }
}

/// A model's weights prepared by [`HostKernels::prepare_model`], in owned storage.
#[derive(Debug, Clone)]
pub struct PreparedModel {
    kernels: HostKernels,
    bytes: Vec<u8>,
}

impl PreparedModel {
    /// The kernels they were prepared for.
    pub const fn kernels(&self) -> HostKernels {
        self.kernels
    }

    /// Bytes of prepared weights (0 for the scalar backend).
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing was prepared (the scalar backend).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The prepared weights of `model` (the model they were made from).
    ///
    /// # Errors
    /// [`RunError::PreparedMismatch`] for a model of another shape.
    pub fn weights<'p>(&'p self, model: &ModelView<'_>) -> Result<PreparedWeights<'p>, RunError> {
        PreparedWeights::from_bytes(&self.kernels, model, &self.bytes)
    }

    /// An encoder for `model` with these kernels and prepared weights.
    ///
    /// # Errors
    /// As [`Self::weights`].
    pub fn encoder<'m, 'a>(
        &'m self,
        model: &'m ModelView<'a>,
    ) -> Result<Encoder<'m, 'a, HostKernels>, RunError> {
        Encoder::new(model, self.kernels).with_prepared(self.weights(model)?)
    }
}

/// Whether a tier runs the AVX2 per-row passes (every SIMD tier does).
#[cfg(target_arch = "x86_64")]
const fn simd_rows(tier: Tier) -> bool {
    !matches!(tier, Tier::Scalar)
}

/// Whether a tier runs the AVX-512 per-row passes and P.V (AVX-512 VNNI, and AMX, which
/// has it).
#[cfg(target_arch = "x86_64")]
const fn zmm(tier: Tier) -> bool {
    matches!(tier, Tier::Avx512Vnni | Tier::Amx)
}

impl Kernels for HostKernels {
    fn name(&self) -> &'static str {
        self.tier.name()
    }

    fn gemm(&self, g: Gemm<'_, '_>) {
        #[cfg(target_arch = "x86_64")]
        if self.tier != Tier::Scalar && g.rows() > 0 && g.channels() > 0 && g.depth() > 0 {
            let (a, b, out) = g.parts();
            let handled = match self.tier {
                Tier::Avx2 => avx2_gemm(a, b, out),
                Tier::AvxVnni => vnni_gemm::<vnni::ymm::AvxVnni>(self.tier, a, b, out),
                Tier::Avx512Vnni => vnni_gemm::<vnni::zmm::Avx512Vnni>(self.tier, a, b, out),
                Tier::Amx => vnni_gemm::<vnni::amx::Amx>(self.tier, a, b, out),
                Tier::Scalar => Some((a, b, out)),
            };
            if let Some((a, b, out)) = handled
                && let Some(g) = Gemm::new(a, b, out)
            {
                scalar::gemm(g);
            }
            return;
        }
        scalar::gemm(g);
    }

    fn prepared_len(&self, channels: usize, depth: usize) -> usize {
        let len = match self.tier {
            Tier::Scalar => Some(0),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx2 => avx2::panel_len(channels, depth),
            #[cfg(target_arch = "x86_64")]
            Tier::AvxVnni => vnni::prepared_len::<vnni::ymm::AvxVnni>(channels, depth),
            #[cfg(target_arch = "x86_64")]
            Tier::Avx512Vnni => vnni::prepared_len::<vnni::zmm::Avx512Vnni>(channels, depth),
            #[cfg(target_arch = "x86_64")]
            Tier::Amx => vnni::prepared_len::<vnni::amx::Amx>(channels, depth),
            #[cfg(not(target_arch = "x86_64"))]
            _ => Some(0),
        };
        len.unwrap_or(usize::MAX)
    }

    fn prepare(&self, w: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        match self.tier {
            Tier::Avx2 => {
                if avx2::panel_len(w.rows(), w.cols()).is_some_and(|len| len <= out.len()) {
                    // SAFETY: AVX2 was detected (`Tier::supported`); `out` holds the packing.
                    unsafe { avx2::pack_channels(w, bytemuck::cast_slice_mut(out)) };
                    return true;
                }
            }
            Tier::AvxVnni => {
                // SAFETY: the tier's features were detected (`Tier::supported`); `pack`
                // checks the length of `out` itself.
                return unsafe { <vnni::ymm::AvxVnni as vnni::VnniTier>::pack(w, out) };
            }
            Tier::Avx512Vnni => {
                // SAFETY: as above.
                return unsafe { <vnni::zmm::Avx512Vnni as vnni::VnniTier>::pack(w, out) };
            }
            Tier::Amx => {
                // SAFETY: as above.
                return unsafe { <vnni::amx::Amx as vnni::VnniTier>::pack(w, out) };
            }
            Tier::Scalar => {}
        }
        let _ = (w, out);
        false
    }

    fn prepared_depths_len(&self, depth: usize, width: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        if zmm(self.tier) {
            return vnni::prepared_depths_len_zmm(depth, width).unwrap_or(usize::MAX);
        }
        let _ = (depth, width);
        0
    }

    fn prepare_depths(&self, v: MatRef<'_, i8>, out: &mut [u8]) -> bool {
        #[cfg(target_arch = "x86_64")]
        if zmm(self.tier) {
            // SAFETY: the tier's features were detected (`Tier::supported`);
            // `prepare_depths_zmm` checks the length of `out` itself.
            return unsafe { vnni::prepare_depths_zmm(v, out) };
        }
        let _ = (v, out);
        false
    }

    fn requantize_row(&self, acc: &[i32], amax: u32, rq: &Requant<'_>, out: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if zmm(self.tier) {
            // SAFETY: the tier has AVX-512 F and AVX2 (`Tier::supported`); the body checks
            // every length itself.
            unsafe { avx512::requantize_row(acc, amax, rq, out) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (every SIMD tier needs it, see `Tier::supported`);
            // the body checks every length itself.
            unsafe { avx2::requantize_row(acc, amax, rq, out) };
            return;
        }
        scalar::requantize_row(acc, amax, rq, out);
    }

    fn quantize_row_i8(&self, row: &[i32], out: &mut [i8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if zmm(self.tier) {
            // SAFETY: the tier has AVX-512 F (`Tier::supported`); the body checks every
            // length itself.
            return unsafe { avx512::quantize_row_i8(row, out) };
        }
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`); the body checks every length.
            return unsafe { avx2::quantize_row_i8(row, out) };
        }
        microbert::quant::quantize_row_i8(row, out)
    }

    fn quantize_row_i8_scaled(&self, row: &[i32], factors: LeI32s<'_>, out: &mut [i8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`); the body checks every length.
            return unsafe { avx2::quantize_row_i8_scaled(row, factors, out) };
        }
        scalar::quantize_row_i8_scaled(row, factors, out)
    }

    fn quantize_row_i16(
        &self,
        row: &[i32],
        factors: Option<LeI32s<'_>>,
        qmax: i32,
        out: &mut [i16],
    ) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`); the body checks every length.
            return unsafe { avx2::quantize_row_i16(row, factors, qmax, out) };
        }
        scalar::quantize_row_i16(row, factors, qmax, out)
    }

    fn quantize_row_u8_offset(&self, row: &[i32], offset: i32, out: &mut [u8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`); the body checks every length.
            return unsafe { avx2::quantize_row_u8_offset(row, offset, out) };
        }
        scalar::quantize_row_u8_offset(row, offset, out)
    }

    fn quantize_row_pow2(&self, row: &[i32], out: &mut [i8]) -> u32 {
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`); the body checks every length.
            return unsafe { avx2::quantize_row_pow2(row, out) };
        }
        microbert::quant::quantize_row_pow2(row, out)
    }

    fn attention_logits_row(&self, acc: &mut [i32], q_amax: u32, k_exp: &[u32], scale: LogitScale) {
        #[cfg(target_arch = "x86_64")]
        if zmm(self.tier) {
            // SAFETY: the tier has AVX-512 F and AVX2 (`Tier::supported`); the body checks
            // every length itself.
            unsafe { avx512::attention_logits_row(acc, q_amax, k_exp, scale) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`); the body checks every length.
            unsafe { avx2::attention_logits_row(acc, q_amax, k_exp, scale) };
            return;
        }
        scalar::attention_logits_row(acc, q_amax, k_exp, scale);
    }

    fn softmax_row(&self, logits: &[i32], v_amax: &[u32], p: &mut [u16]) -> PvScale {
        #[cfg(target_arch = "x86_64")]
        if zmm(self.tier) {
            // SAFETY: the tier has AVX-512 F (`Tier::supported`); the body checks every
            // length itself.
            return unsafe { avx512::softmax_row(logits, v_amax, p) };
        }
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`); the body checks every length.
            return unsafe { avx2::softmax_row(logits, v_amax, p) };
        }
        scalar::softmax_row(logits, v_amax, p)
    }

    fn pv_scale_row(&self, acc: &[i32], scale: PvScale, out: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`); the body checks every length.
            unsafe { avx2::pv_scale_row(acc, scale, out) };
            return;
        }
        scalar::pv_scale_row(acc, scale, out);
    }

    fn gelu_row(&self, row: &mut [i32]) {
        #[cfg(target_arch = "x86_64")]
        if zmm(self.tier) {
            // SAFETY: the tier has AVX-512 F (`Tier::supported`).
            unsafe { avx512::gelu_row(row) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`).
            unsafe { avx2::gelu_row(row) };
            return;
        }
        scalar::gelu_row(row);
    }

    fn layer_norm_row(&self, row: &mut [i32], ln: &LayerNormParams<'_>) {
        #[cfg(target_arch = "x86_64")]
        if zmm(self.tier) {
            // SAFETY: the tier has AVX-512 F (`Tier::supported`); the body checks every
            // length itself.
            unsafe { avx512::layer_norm_row(row, ln) };
            return;
        }
        #[cfg(target_arch = "x86_64")]
        if simd_rows(self.tier) {
            // SAFETY: AVX2 was detected (`Tier::supported`); the body checks every length.
            unsafe { avx2::layer_norm_row(row, ln) };
            return;
        }
        scalar::layer_norm_row(row, ln);
    }
}

/// The operands of a product a tier leaves to the scalar reference.
type Unhandled<'a, 'o> = Option<(Lhs<'a>, Rhs<'a>, microbert::kernels::MatMut<'o, i32>)>;

/// The AVX2 tier's products; the operands back for those it does not accelerate.
#[cfg(target_arch = "x86_64")]
fn avx2_gemm<'a, 'o>(
    a: Lhs<'a>,
    b: Rhs<'a>,
    out: microbert::kernels::MatMut<'o, i32>,
) -> Unhandled<'a, 'o> {
    let acts = match a {
        Lhs::I8(m) => Some(avx2::Activations::I8(m)),
        Lhs::U8 { values, zero_point } => Some(avx2::Activations::U8(values, zero_point)),
        Lhs::I16(m) => Some(avx2::Activations::I16(m)),
        _ => None,
    };
    match (acts, a, b) {
        (Some(a), _, Rhs::Channels(b)) => {
            // SAFETY: the tier is AVX2 only after `Tier::supported` found it; `Gemm::new`
            // checked that the shapes agree.
            unsafe { avx2::gemm_channels(a, b, out) };
        }
        (Some(a), _, Rhs::Prepared(p)) => {
            let raw = p.raw();
            let bytes: &[i8] = bytemuck::cast_slice(p.bytes());
            match avx2::Panels::new(bytes, raw.rows(), raw.cols()) {
                // SAFETY: as above; the panels have the weights' shape.
                Some(panels) => unsafe { avx2::gemm_prepared(a, panels, out) },
                // Prepared bytes too short for the shape: the blob's weights.
                // SAFETY: as above.
                None => unsafe { avx2::gemm_channels(a, raw, out) },
            }
        }
        (None, Lhs::U16(p), Rhs::Depths(v)) => {
            // SAFETY: as above.
            unsafe { avx2::weighted_sums(p, v, out) };
        }
        (_, a, b) => return Some((a, b, out)),
    }
    None
}

/// A VNNI tier's products (`T` is `tier`'s implementation); the operands back for those
/// it does not accelerate.
#[cfg(target_arch = "x86_64")]
fn vnni_gemm<'a, 'o, T: vnni::VnniTier>(
    tier: Tier,
    a: Lhs<'a>,
    b: Rhs<'a>,
    out: microbert::kernels::MatMut<'o, i32>,
) -> Unhandled<'a, 'o> {
    let act = match a {
        Lhs::I8(x) => Some(vnni::Act::I8(x)),
        Lhs::U8 { values, zero_point } => Some(vnni::Act::U8(values, zero_point)),
        Lhs::I16(x) => Some(vnni::Act::I16(x)),
        _ => None,
    };
    match (act, a, b) {
        (Some(act), _, Rhs::Channels(w)) => {
            // SAFETY: `tier` (whose implementation `T` is) exists only after
            // `Tier::supported` found its features; `Gemm::new` checked the shapes.
            unsafe { vnni::gemm::<T>(act, w, None, out) };
        }
        (Some(act), _, Rhs::Prepared(p)) => {
            // SAFETY: as above; prepared bytes too short for the shape are not used.
            unsafe { vnni::gemm::<T>(act, p.raw(), Some(p.bytes()), out) };
        }
        (None, Lhs::U16(p), Rhs::Depths(v)) => match tier {
            // SAFETY: as above (the AVX-512 VNNI and AMX tiers have AVX-512 F, BW, VNNI and
            // AVX2).
            Tier::Avx512Vnni | Tier::Amx => unsafe { vnni::weighted_sums_zmm(p, v, out) },
            // SAFETY: as above (every VNNI tier has AVX2).
            _ => unsafe { avx2::weighted_sums(p, v, out) },
        },
        (None, Lhs::U16(p), Rhs::PreparedDepths(v)) => {
            let (keys, width) = (v.raw().rows(), v.raw().cols());
            let fits = vnni::prepared_depths_len_zmm(keys, width)
                .is_some_and(|len| len <= v.bytes().len());
            match tier {
                // SAFETY: as above; the packing was checked to cover the shape.
                Tier::Avx512Vnni | Tier::Amx if fits => unsafe {
                    vnni::weighted_sums_zmm_packed(p, v.bytes(), width, keys, out)
                },
                // SAFETY: as above (AVX-512 F, BW, VNNI and AVX2).
                Tier::Avx512Vnni | Tier::Amx => unsafe { vnni::weighted_sums_zmm(p, v.raw(), out) },
                // SAFETY: as above (every VNNI tier has AVX2).
                _ => unsafe { avx2::weighted_sums(p, v.raw(), out) },
            }
        }
        (_, a, b) => return Some((a, b, out)),
    }
    None
}
