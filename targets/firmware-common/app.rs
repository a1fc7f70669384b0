//! The application every firmware example runs, shared by `targets/cortex-m`,
//! `targets/riscv-virt` and `targets/cortex-a53` (each includes this file with `#[path]` and
//! adds its board's start-up, console, exit and stack painting).
//!
//! It embeds [`TEXT`] with the blob in flash and the scratch arena in `.bss`, and prints the
//! lines `cargo xtask firmware` reads: `text:`, `tokens:`, `arena:`, `hash:` (FNV-1a 64 of
//! the pooled Q.16 vector, as `microbert embed --hash`), and the pooled vector itself.
//! When the blob has a sequence classifier (the blob decides; a converted
//! `BertForSequenceClassification`), it then classifies each of [`REVIEWS`] with
//! `Encoder::classify` in the same arena: per review the lines `review:` (the text),
//! `review tokens:`, `logits:` (the integer Q.16 logits, as `microbert classify --logits`)
//! and `label:` (the largest logit's name from the blob's `id2label`). No float anywhere.
//! A board that counts instructions ([`main_counted`] with a [`Counter`]: the Cortex-M
//! boards under `qemu -icount`) adds `icount:` lines (the instructions of the embedding),
//! optionally `profile:` lines (per kernel method, from a second run through
//! `profile::Profiled`) and `sweep:` lines ([`SWEEP_TEXT`] at 32, 64 and 128 tokens).
//!
//! Memory: the model blob is `include_bytes!`-ed into the image (`.rodata`) and parsed
//! zero-copy; the arena is one `static` `microbert::Arena` handed out once as
//! `&'static mut` by a `static_cell::ConstStaticCell` (no `static mut`, no heap, no
//! `unsafe`). Its size is a `const fn` of the board's declared plan (`crate::PLAN`: the
//! model's dimensions and [`MAX_TOKENS`]), so no build script has to parse the blob; at run
//! time `Plan::check` confirms the blob fits what was declared.

use core::fmt::{self, Write};
use microbert::{Arena, Plan};
use static_cell::ConstStaticCell;

/// Longest token sequence accepted, `[CLS]` and `[SEP]` included (longer texts are
/// truncated by the tokenizer). The board's `PLAN` sizes the arena for it.
pub(crate) const MAX_TOKENS: usize = 128;

/// Hidden width (length of the pooled vector) of the declared plan.
const HIDDEN: usize = crate::PLAN.dims().hidden;
/// Bytes of the static arena.
const ARENA_BYTES: usize = crate::PLAN.arena_bytes();
const _: () = assert!(crate::PLAN.tokens() == MAX_TOKENS, "the plan's token count");

/// The sentence the firmware embeds (printed as `text:` so the host side uses the same).
pub(crate) const TEXT: &str =
    "Integer-only inference runs BERT encoders on microcontrollers without a floating point unit.";

/// The model, in flash.
static BLOB: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/model.blob"));

/// The scratch arena. All zero, so it lands in `.bss` (zeroed at start-up, no image bytes).
static ARENA: ConstStaticCell<Arena<ARENA_BYTES>> = ConstStaticCell::new(Arena::new());

/// Everything that can fail, for one message: the runtime's error or the console.
pub(crate) enum Error {
    Microbert(microbert::Error),
    Console,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Microbert(e) => write!(f, "{e}"),
            Self::Console => f.write_str("console write failed"),
        }
    }
}

impl From<microbert::BlobError> for Error {
    fn from(e: microbert::BlobError) -> Self {
        Self::Microbert(e.into())
    }
}

impl From<microbert::TokenizeError> for Error {
    fn from(e: microbert::TokenizeError) -> Self {
        Self::Microbert(e.into())
    }
}

impl From<microbert::RunError> for Error {
    fn from(e: microbert::RunError) -> Self {
        Self::Microbert(e.into())
    }
}

impl From<fmt::Error> for Error {
    fn from(_: fmt::Error) -> Self {
        Self::Console
    }
}

/// Instructions per kernel method (a board that counts instructions can ask for them).
#[path = "profile.rs"]
mod profile;
/// Every kernel call compared with the scalar reference on the device.
#[path = "check.rs"]
mod check;

/// A board's instruction counter (Cortex-M: SysTick under `qemu -icount shift=0`, see
/// `icount.rs`): a tick source and its calibration (`calibration_insns` instructions took
/// `calibration_ticks` ticks).
#[derive(Clone, Copy)]
#[allow(dead_code)] // constructed by the boards that count instructions (Cortex-M)
pub(crate) struct Counter {
    pub(crate) ticks: fn() -> u64,
    pub(crate) calibration_insns: u64,
    pub(crate) calibration_ticks: u64,
}

impl Counter {
    /// Instructions of `ticks` ticks, rounded.
    fn insns(&self, ticks: u64) -> u64 {
        let cal = u128::from(self.calibration_ticks.max(1));
        ((u128::from(ticks) * u128::from(self.calibration_insns) + cal / 2) / cal) as u64
    }
}

/// What a counted run measures besides [`TEXT`].
#[derive(Clone, Copy)]
#[allow(dead_code)] // constructed by the boards that count instructions (Cortex-M)
pub(crate) struct Counting {
    pub(crate) counter: Counter,
    /// A second run of [`TEXT`] through `profile::Profiled` (instructions per kernel).
    pub(crate) profile: bool,
    /// [`SWEEP_TEXT`] truncated to each of [`SWEEP_TOKENS`] tokens, counted (and hashed).
    pub(crate) sweep: bool,
    /// A run of [`TEXT`] through `check::Checked` (`check:` line: kernel calls whose
    /// outputs differ from the scalar reference's on this core).
    pub(crate) check: bool,
}

/// Token counts of the sweep (each at most [`MAX_TOKENS`]).
pub(crate) const SWEEP_TOKENS: [usize; 3] = [32, 64, 128];
const _: () = assert!(SWEEP_TOKENS[SWEEP_TOKENS.len() - 1] <= MAX_TOKENS);

/// The movie reviews a blob with a sequence classifier classifies (`review:` lines): a
/// positive and a negative one from the held-out part of the sentiment task's split
/// (`microbert_tests::corpus::sentiment_split`: neither the heads' training reviews nor the
/// converter's calibration texts), picked among those that both firmware sentiment blobs
/// and their f32 checkpoints label right with a clear margin. The demo shows that the
/// device's bytes are the host's; the heads' accuracy is measured on all 2,500 (README.md).
pub(crate) const REVIEWS: [&str; 2] = [
    "Witty, touching and well paced.",
    "The movie's biggest offense is its complete and utter lack of tension.",
];

/// A text longer than [`MAX_TOKENS`] tokens, truncated for the sweep.
pub(crate) const SWEEP_TEXT: &str = "In the beginning the Universe was created. This has made a lot of people \
    very angry and been widely regarded as a bad move. Many were increasingly of the opinion that \
    they'd all made a big mistake in coming down from the trees in the first place. And some said \
    that even the trees had been a bad move, and that no one should ever have left the oceans. Far \
    out in the uncharted backwaters of the unfashionable end of the western spiral arm of the \
    Galaxy lies a small unregarded yellow sun. Orbiting this at a distance of roughly ninety-two \
    million miles is an utterly insignificant little blue green planet whose ape-descended life \
    forms are so amazingly primitive that they still think digital watches are a pretty neat idea.";

/// The whole firmware run: paints the stack, embeds [`TEXT`], prints any error and the
/// peak stack; returns the exit status (0, or 1 after an error) and the hash.
#[allow(dead_code)] // the boards that count instructions call `main_counted`
pub(crate) fn main<K: microbert::Kernels>(
    kernels: K,
    board: &str,
    out: &mut impl Write,
) -> (u32, Option<u64>) {
    main_counted(kernels, board, out, None)
}

/// [`main`], with the instructions of the embedding counted (`icount:` lines) when the
/// board has a counter.
pub(crate) fn main_counted<K: microbert::Kernels>(
    kernels: K,
    board: &str,
    out: &mut impl Write,
    counting: Option<Counting>,
) -> (u32, Option<u64>) {
    let painted = crate::stack::paint();
    let (status, hash) = match run(kernels, board, out, counting) {
        Ok(hash) => (0, Some(hash)),
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
            (1, None)
        }
    };
    let peak = crate::stack::peak();
    let _ = writeln!(
        out,
        "stack: peak {peak} bytes (painted {painted} bytes below the entry frame)"
    );
    (status, hash)
}

/// Embeds [`TEXT`] with `kernels` on `board`, printing to `out`; returns the hash.
fn run<K: microbert::Kernels>(
    kernels: K,
    board: &str,
    out: &mut impl Write,
    counting: Option<Counting>,
) -> Result<u64, Error> {
    writeln!(out, "microbert {board}: {} kernels", kernels.name())?;
    let model = microbert::parse(BLOB)?;
    writeln!(
        out,
        "model: {} layers, hidden {}, vocab {}, blob {} bytes",
        model.config.num_hidden_layers,
        model.config.hidden_size,
        model.config.vocab_size,
        BLOB.len()
    )?;
    let mut ids = [0u32; MAX_TOKENS];
    let enc = microbert::Tokenizer::new(&model).encode(TEXT, &mut ids)?;
    writeln!(out, "text: {TEXT}")?;
    let truncated = if enc.truncated { " (truncated)" } else { "" };
    writeln!(out, "tokens: {}{truncated}", enc.len)?;
    // The blob must fit the plan the arena was declared for.
    crate::PLAN.check(&Plan::for_model(&model, MAX_TOKENS))?;
    let arena = ARENA.take().bytes();
    writeln!(
        out,
        "arena: {ARENA_BYTES} bytes static (scratch for {MAX_TOKENS} tokens), {} needed for this text",
        microbert::scratch_bytes(&model, enc.len)
    )?;
    let mut pooled = [0i32; HIDDEN];
    let encoder = microbert::Encoder::new(&model, &kernels);
    let t0 = counting.map(|c| (c.counter.ticks)());
    encoder.embed(&ids[..enc.len], arena, &mut pooled)?;
    let hash = microbert::output::hash(&pooled);
    if let (Some(c), Some(t0)) = (counting, t0) {
        let ticks = (c.counter.ticks)() - t0;
        let c = c.counter;
        writeln!(
            out,
            "icount: calibration {} instructions in {} ticks",
            c.calibration_insns, c.calibration_ticks
        )?;
        writeln!(
            out,
            "icount: embed {} instructions ({ticks} ticks, {} tokens)",
            c.insns(ticks),
            enc.len
        )?;
    }
    writeln!(out, "hash: {hash:016x}")?;
    write!(out, "pooled (Q.16, {HIDDEN}):")?;
    for v in pooled {
        write!(out, " {v}")?;
    }
    writeln!(out)?;
    if let Some(c) = counting {
        if c.profile {
            profiled_run(&model, &kernels, c.counter, &ids[..enc.len], arena, hash, out)?;
        }
        if c.sweep {
            sweep(&model, &kernels, c.counter, arena, out)?;
        }
        if c.check {
            checked_run(&model, &kernels, &ids[..enc.len], arena, hash, out)?;
        }
    }
    if matches!(
        model.tasks.classifier,
        Some((microbert::blob::ClassifierKind::Sequence, _))
    ) {
        classify(&model, &kernels, counting.map(|c| c.counter), arena, out)?;
    }
    Ok(hash)
}

/// Classifies each of [`REVIEWS`] with the blob's sequence classifier (in the embedding's
/// arena: the heads' scratch is part of the plan, `Plan::with_heads`): first the peak stack
/// so far (`stack after the embedding:`), then per review the lines `review:`,
/// `review tokens:` (with the scratch the length needs), `icount: classify` on a board that
/// counts, `logits:` (Q.16) and `label:`, the first largest logit's name from the blob, else
/// `LABEL_i` (as `microbert classify`).
fn classify<K: microbert::Kernels>(
    model: &microbert::ModelView<'_>,
    kernels: &K,
    counter: Option<Counter>,
    arena: &mut [u8],
    out: &mut impl Write,
) -> Result<(), Error> {
    let labels = model.tasks.num_labels().unwrap_or(0);
    writeln!(
        out,
        "stack after the embedding: peak {} bytes",
        crate::stack::peak()
    )?;
    writeln!(out, "classify: sequence classifier, {labels} labels")?;
    let encoder = microbert::Encoder::new(model, kernels);
    let tokenizer = microbert::Tokenizer::new(model);
    // At most `hidden_size` labels (the blob is validated so); the plan's width is the
    // model's, or the embedding above would have failed.
    let mut buffer = [0i32; HIDDEN];
    let logits = buffer
        .get_mut(..labels)
        .ok_or(microbert::RunError::OutputSize {
            given: HIDDEN,
            needed: labels,
        })?;
    for review in REVIEWS {
        let mut ids = [0u32; MAX_TOKENS];
        let enc = tokenizer.encode(review, &mut ids)?;
        writeln!(out, "review: {review}")?;
        let truncated = if enc.truncated { " (truncated)" } else { "" };
        writeln!(
            out,
            "review tokens: {}{truncated} (scratch {} bytes)",
            enc.len,
            microbert::scratch_bytes(model, enc.len)
        )?;
        let t0 = counter.map(|c| (c.ticks)());
        encoder.classify(&ids[..enc.len], None, arena, logits)?;
        if let (Some(c), Some(t0)) = (counter, t0) {
            let ticks = (c.ticks)() - t0;
            writeln!(
                out,
                "icount: classify {} instructions ({ticks} ticks, {} tokens)",
                c.insns(ticks),
                enc.len
            )?;
        }
        write!(out, "logits:")?;
        for l in logits.iter() {
            write!(out, " {l}")?;
        }
        writeln!(out)?;
        // The first of equal largest logits, as the host CLI picks.
        let best = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
        match model.tasks.label(best) {
            Some(name) => writeln!(out, "label: {name}")?,
            None => writeln!(out, "label: LABEL_{best}")?,
        }
    }
    Ok(())
}

/// The embedding of `ids` again through `profile::Profiled`: one `profile:` line per kernel
/// method (calls, instructions) and the hash, which must not change.
fn profiled_run<K: microbert::Kernels>(
    model: &microbert::ModelView<'_>,
    kernels: &K,
    counter: Counter,
    ids: &[u32],
    arena: &mut [u8],
    hash: u64,
    out: &mut impl Write,
) -> Result<(), Error> {
    let profiled = profile::Profiled::new(kernels, counter.ticks);
    let mut pooled = [0i32; HIDDEN];
    let t0 = (counter.ticks)();
    microbert::Encoder::new(model, &profiled).embed(ids, arena, &mut pooled)?;
    let total = (counter.ticks)() - t0;
    let mut in_kernels = 0;
    for (name, t) in profile::SLOTS.iter().zip(profiled.tallies()) {
        if t.calls > 0 {
            in_kernels += t.ticks;
            writeln!(
                out,
                "profile: {name}: {} calls, {} instructions",
                t.calls,
                counter.insns(t.ticks)
            )?;
        }
    }
    writeln!(
        out,
        "profile: other: {} instructions; total {} (with the profiler's own reads)",
        counter.insns(total.saturating_sub(in_kernels)),
        counter.insns(total)
    )?;
    let again = microbert::output::hash(&pooled);
    writeln!(
        out,
        "profile: hash {again:016x} ({})",
        if again == hash { "same" } else { "DIFFERS" }
    )?;
    Ok(())
}

/// The embedding of `ids` through `check::Checked`: one `check:` line.
fn checked_run<K: microbert::Kernels>(
    model: &microbert::ModelView<'_>,
    kernels: &K,
    ids: &[u32],
    arena: &mut [u8],
    hash: u64,
    out: &mut impl Write,
) -> Result<(), Error> {
    let checked = check::Checked::new(kernels);
    let mut pooled = [0i32; HIDDEN];
    microbert::Encoder::new(model, &checked).embed(ids, arena, &mut pooled)?;
    let (calls, unchecked, differ, first) = checked.summary();
    let again = microbert::output::hash(&pooled);
    writeln!(
        out,
        "check: {calls} kernel calls, {differ} differ from the scalar reference on this core (first: {}), {unchecked} too large to compare; hash {}",
        first.unwrap_or("none"),
        if again == hash { "same" } else { "DIFFERS" }
    )?;
    Ok(())
}

/// [`SWEEP_TEXT`] truncated to each of [`SWEEP_TOKENS`]: one `sweep:` line each with the
/// instructions, the hash and the scratch the length needs.
fn sweep<K: microbert::Kernels>(
    model: &microbert::ModelView<'_>,
    kernels: &K,
    counter: Counter,
    arena: &mut [u8],
    out: &mut impl Write,
) -> Result<(), Error> {
    writeln!(out, "sweep text: {SWEEP_TEXT}")?;
    let encoder = microbert::Encoder::new(model, kernels);
    let tokenizer = microbert::Tokenizer::new(model);
    for n in SWEEP_TOKENS {
        let mut ids = [0u32; MAX_TOKENS];
        let enc = tokenizer.encode(SWEEP_TEXT, &mut ids[..n])?;
        let mut pooled = [0i32; HIDDEN];
        let t0 = (counter.ticks)();
        encoder.embed(&ids[..enc.len], arena, &mut pooled)?;
        let ticks = (counter.ticks)() - t0;
        writeln!(
            out,
            "sweep: {} tokens, {} instructions, hash {:016x}, scratch {} bytes",
            enc.len,
            counter.insns(ticks),
            microbert::output::hash(&pooled),
            microbert::scratch_bytes(model, enc.len)
        )?;
    }
    Ok(())
}
