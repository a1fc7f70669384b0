//! `cargo xtask firmware [--report]`: the bare-metal firmware examples, end to end.
//!
//! Cortex-M4F (`targets/cortex-m`, its own Cargo project outside the workspace):
//! 1. bert-tiny with a sentiment head trained on its frozen encoder (`cargo xtask train-head
//!    sentiment --encoder bert-tiny`, [`crate::train_head`]) is converted with a reduced
//!    vocabulary ([`crate::vocab`]: the recipe's `[variants.firmware]` in
//!    `models/bert-tiny.toml`, or `--keep-vocab`): the full 30,522-token blob (5.3 MB) does
//!    not fit a 4 MB flash. The head and the blob live in the cache of derived artefacts,
//!    keyed by their inputs, and are reused while they do not change
//!    ([`crate::blobs::blob_with_head`]);
//! 2. the firmware is built with [`crate::debian_cargo`] (`-Zbuild-std=core`,
//!    shared/toolchain.md) and the rustup toolchain's `rust-lld` on PATH, with
//!    `MICROBERT_FIRMWARE_BLOB` naming a content-named copy of the blob in the target
//!    directory (its `build.rs` copies it into `OUT_DIR` for `include_bytes!`; the copy keeps
//!    an unchanged blob from rebuilding the firmware), into the cache's
//!    `cross-target/firmware/cortex-m`;
//! 3. it runs under `qemu-system-arm -machine mps2-an386 -cpu cortex-m4` with semihosting
//!    (and a timeout); its `hash:` line is compared with `microbert embed --model <blob>
//!    --hash` on the host for the text the firmware printed (`text:`), and one line
//!    `cortex-m: match (hash ...)` or `cortex-m: MISMATCH ...` is printed (the command fails
//!    on a mismatch);
//! 4. the blob has a sequence classifier, so the same image then classifies its fixed
//!    reviews (`review:`, `logits:`, `label:` lines, `firmware-common/app.rs`); the logits
//!    and labels are compared with `microbert classify --logits` on the host for the same
//!    blob and texts: `cortex-m: classify match (...)` or `cortex-m: classify MISMATCH
//!    (...)`, which fails the command too, as does a firmware that classifies nothing with
//!    a blob that has a classifier (or classifies with one that has none).
//!
//! The Cortex-M firmware runs the DSP kernels (`microbert-cortex-m-kernels`, feature `dsp`)
//! and is built with feature `icount` and run under `-icount shift=0`: it counts the
//! instructions of its embedding (SysTick, `firmware-common/icount.rs`), which `--report`
//! prints. `targets/cortex-m55` is the same program with the Helium kernels, run the same
//! way under `qemu-system-arm -machine mps3-an547` (Cortex-M55).
//!
//! The same loop then runs two more bare-metal examples, each a line `<label>: match ...`:
//! `targets/riscv-virt` (riscv64 with RVV 1.0, `microbert_riscv::RvvKernels`, the same
//! reduced bert-tiny blob, `qemu-system-riscv64 -M virt -cpu rv64,v=true,vlen=128`, UART
//! output, exit through the SiFive test device) and `targets/cortex-a53` (AArch64 EL1 with the
//! MMU on, `microbert_cortex_a::NeonKernels`, the full MiniLM blob with its trained sentiment
//! head, `minilm-sentiment.blob` of `prepare`, `qemu-system-aarch64 -M virt -cpu cortex-a53`,
//! PL011 UART output, semihosting exit). Every board with a classifier blob is checked the
//! same way (the Cortex-M55 and RISC-V boards run the bert-tiny sentiment blob too).
//!
//! `cargo xtask capi` reuses the Cortex-M4F pieces for its C firmware: [`tiny_blob`],
//! [`cortex_m`] (the Rust firmware built and run by the same code), [`boot_cortex_m`] (an
//! ELF on the same board), [`Memory`] (sections) and [`host_hash`].
//!
//! `--report` adds the memory use against the mps2-an386 budgets (qemu's `hw/arm/mps2.c`:
//! 4 MB ZBT SSRAM1 at 0 holds the image, i.e. the "flash"; 4 MB SSRAM2&3 at 0x2000_0000 is the
//! data RAM): flash = code (`.vector_table` + `.text`) + read-only data (`.rodata` without
//! the blob) + the blob + `.data`'s initialisers; static RAM = `.data` + `.bss` (+ `.uninit`),
//! of which the scratch arena; the peak stack measured by the firmware (painting); the
//! scratch bytes the text needs.

use crate::blobs::Request;
use crate::debian_cargo::DebianCargo;
use crate::recipe::KeepVocab;
use crate::toolchain::{Tool, ensure as ensure_tools};
use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Instant;

/// The tools of `firmware` (besides [`crate::debian_cargo::TOOLS`]).
const TOOLS: [Tool; 5] = [
    Tool::RustLld,
    Tool::QemuSystemArm,
    Tool::QemuSystemAarch64,
    Tool::QemuSystemRiscv64,
    Tool::Timeout,
];
/// The bert-tiny variant of `models/bert-tiny.toml` the firmware uses.
const VARIANT: &str = "firmware";
/// mps2-an386 budgets (bytes).
const FLASH_BUDGET: u64 = 4 << 20;
const RAM_BUDGET: u64 = 4 << 20;
/// Seconds qemu may run.
const QEMU_TIMEOUT: u32 = 600;
const TRIPLE: &str = "thumbv7em-none-eabihf";

/// Flags of `cargo xtask firmware`.
#[derive(clap::Args)]
pub struct FirmwareArgs {
    /// Print flash, static RAM, peak stack and scratch use against the board budgets.
    #[arg(long)]
    pub report: bool,
    /// Vocabulary kept in the bert-tiny blob (a count or a token-list file, as
    /// `convert --keep-vocab`); default: `[variants.firmware]` of models/bert-tiny.toml.
    #[arg(long, value_name = "SPEC")]
    pub keep_vocab: Option<String>,
}

/// One firmware example.
struct Firmware {
    /// Label of the result line.
    label: &'static str,
    /// Cargo project under `targets/`, also the directory under `target/firmware/`.
    project: &'static str,
    triple: &'static str,
    /// Binary name.
    bin: &'static str,
    /// qemu program and arguments before the ELF path.
    qemu: &'static [&'static str],
    /// Board description and (flash, RAM) budgets for `--report`.
    board: &'static str,
    budgets: (u64, u64),
    /// The model: bert-tiny with the reduced vocabulary, or the full MiniLM blob.
    minilm: bool,
    /// Cargo features of the build (`icount`: the firmware counts its instructions, run
    /// under `qemu -icount shift=0`).
    features: &'static str,
}

/// The firmware examples, in the order they run.
const FIRMWARE: [Firmware; 4] = [
    Firmware {
        label: "cortex-m",
        project: "cortex-m",
        triple: TRIPLE,
        bin: "microbert-cortex-m",
        qemu: &[
            "qemu-system-arm",
            "-machine",
            "mps2-an386",
            "-cpu",
            "cortex-m4",
            "-icount",
            "shift=0",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ],
        board: "mps2-an386: 4 MB flash = SSRAM1 at 0x0, 4 MB RAM = SSRAM2&3 at 0x2000_0000",
        budgets: (FLASH_BUDGET, RAM_BUDGET),
        minilm: false,
        // The DSP kernels (the project's default feature), counted.
        features: "icount",
    },
    Firmware {
        label: "cortex-m55",
        project: "cortex-m55",
        triple: "thumbv8m.main-none-eabihf",
        bin: "microbert-cortex-m55",
        qemu: &[
            "qemu-system-arm",
            "-machine",
            "mps3-an547",
            "-icount",
            "shift=0",
            "-nographic",
            "-semihosting-config",
            "enable=on,target=native",
            "-kernel",
        ],
        board: "mps3-an547: 8 MB QSPI flash at 0x3800_0000 (secure alias), 512 KB DTCM RAM at 0x3000_0000",
        budgets: (8 << 20, 512 << 10),
        minilm: false,
        // The Helium kernels (the project's default feature), counted.
        features: "icount",
    },
    Firmware {
        label: "riscv-virt",
        project: "riscv-virt",
        triple: "riscv64gc-unknown-none-elf",
        bin: "microbert-riscv-virt",
        qemu: &[
            "qemu-system-riscv64",
            "-M",
            "virt",
            "-cpu",
            "rv64,v=true,vlen=128",
            "-m",
            "128M",
            // No network device (as on the Cortex-A53 board: nothing uses it).
            "-nic",
            "none",
            "-nographic",
            "-bios",
            "none",
            "-kernel",
        ],
        board: "qemu virt, rv64gcv VLEN 128: the image runs from DRAM (128 MB with -m 128M)",
        budgets: (128 << 20, 128 << 20),
        minilm: false,
        features: "",
    },
    Firmware {
        label: "cortex-a53",
        project: "cortex-a53",
        triple: "aarch64-unknown-none",
        bin: "microbert-cortex-a53",
        qemu: &[
            "qemu-system-aarch64",
            "-M",
            "virt",
            "-cpu",
            "cortex-a53",
            "-m",
            "512M",
            // No network device: the default virtio NIC needs a PCI option ROM
            // (efi-virtio.rom, Debian's ipxe-qemu) that a fresh machine does not have and the
            // firmware never uses.
            "-nic",
            "none",
            "-nographic",
            "-semihosting",
            "-kernel",
        ],
        board: "qemu virt, Cortex-A53 EL1, MiniLM: the image runs from DRAM (256 MB linker region)",
        budgets: (256 << 20, 256 << 20),
        minilm: true,
        features: "",
    },
];

/// The Cortex-M4F example, whose board also runs the C firmware of `cargo xtask capi`.
const CORTEX_M: &Firmware = &FIRMWARE[0];

/// `cargo xtask firmware`.
pub fn run(root: &Path, args: &FirmwareArgs) -> Result<()> {
    let start = Instant::now();
    let tools: Vec<Tool> = crate::debian_cargo::TOOLS
        .iter()
        .chain(&TOOLS)
        .copied()
        .collect();
    ensure_tools(&tools)?;
    let tiny = tiny_blob(args.keep_vocab.as_deref())?;
    let minilm = minilm_blob()?;
    let mut host = Host::new(root);
    let mut failed = Vec::new();
    for fw in &FIRMWARE {
        let blob = if fw.minilm { &minilm } else { &tiny };
        let blob_len = std::fs::metadata(blob)?.len();
        let run = build_and_run(root, fw, blob)?;
        let device_hash = run.field("hash:")?;
        let text = run.field("text:")?;
        // The host CLI on the same blob and text.
        let host_hash = host.hash(blob, &text)?;
        if host_hash == device_hash {
            println!("{}: match (hash {device_hash})", fw.label);
        } else {
            println!(
                "{}: MISMATCH (firmware {device_hash}, host {host_hash})",
                fw.label
            );
            failed.push(fw.label.to_owned());
        }
        if let Some(line) = compare_classified(fw.label, &run, blob, &mut host)? {
            println!("{line}");
            if line.contains("MISMATCH") {
                failed.push(format!("{} classify", fw.label));
            }
        }
        if args.report {
            report(fw, &run, blob_len)?;
        }
    }
    eprintln!("firmware: done in {:.1?}", start.elapsed());
    if !failed.is_empty() {
        bail!("firmware output differs from the host CLI's: {failed:?}");
    }
    Ok(())
}

/// The trained head the bert-tiny firmware blob carries (`train-head sentiment --encoder
/// bert-tiny`).
const TINY_HEAD: &str = "sentiment";

/// The reduced bert-tiny blob of the Cortex-M4F, Cortex-M55 and RISC-V examples: bert-tiny
/// with the sentiment head trained on its frozen encoder ([`TINY_HEAD`],
/// [`crate::blobs::blob_with_head`]), converted with the recipe's `[variants.firmware]` (or
/// `keep_vocab` as `convert --keep-vocab`), from the cache of derived artefacts.
pub fn tiny_blob(keep_vocab: Option<&str>) -> Result<PathBuf> {
    crate::blobs::blob_with_head(
        "bert-tiny",
        &Request {
            variant: Some(VARIANT),
            keep_vocab: keep_vocab.map(KeepVocab::parse),
        },
        TINY_HEAD,
    )
}

/// The MiniLM blob of the Cortex-A53 example: `minilm-sentiment.blob`, all-MiniLM-L6-v2
/// with the sentiment head trained on its frozen encoder, as `prepare` makes it
/// ([`crate::heads::prepare`]: reused while its inputs do not change).
fn minilm_blob() -> Result<PathBuf> {
    let name = "minilm-sentiment.blob";
    crate::heads::prepare()?
        .into_iter()
        .find(|p| p.file_name().is_some_and(|f| f == name))
        .with_context(|| format!("gen-heads made no {name}"))
}

/// The host CLI's answers, each computed once per blob and text.
struct Host<'a> {
    root: &'a Path,
    cli: Option<PathBuf>,
    hashes: Vec<(PathBuf, String, String)>,
    classified: Vec<(PathBuf, Vec<String>, Vec<Classified>)>,
}

impl<'a> Host<'a> {
    fn new(root: &'a Path) -> Self {
        Self {
            root,
            cli: None,
            hashes: Vec::new(),
            classified: Vec::new(),
        }
    }

    /// The CLI, built on first use.
    fn cli(&mut self) -> Result<PathBuf> {
        if let Some(cli) = &self.cli {
            return Ok(cli.clone());
        }
        let cli = crate::exec::host_cli(self.root)?;
        self.cli = Some(cli.clone());
        Ok(cli)
    }

    /// [`host_hash`] of `text` with `blob`.
    fn hash(&mut self, blob: &Path, text: &str) -> Result<String> {
        if let Some((_, _, h)) = self.hashes.iter().find(|(b, t, _)| b == blob && t == text) {
            return Ok(h.clone());
        }
        let h = host_hash(&self.cli()?, blob, text)?;
        self.hashes
            .push((blob.to_path_buf(), text.to_owned(), h.clone()));
        Ok(h)
    }

    /// [`host_classify`] of `texts` with `blob`.
    fn classify(&mut self, blob: &Path, texts: &[String]) -> Result<Vec<Classified>> {
        if let Some((_, _, c)) = self
            .classified
            .iter()
            .find(|(b, t, _)| b == blob && t == texts)
        {
            return Ok(c.clone());
        }
        let c = host_classify(&self.cli()?, blob, texts)?;
        self.classified
            .push((blob.to_path_buf(), texts.to_vec(), c.clone()));
        Ok(c)
    }
}

/// One text classified: its integer Q16.16 logits and the label (the host CLI gives none
/// for a one-label head).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The text.
    pub text: String,
    /// The logits, Q16.16.
    pub logits: Vec<i64>,
    /// The name of the largest logit.
    pub label: Option<String>,
}

impl Classified {
    fn describe(&self) -> String {
        let logits: Vec<String> = self.logits.iter().map(i64::to_string).collect();
        format!(
            "{} [{}]",
            self.label.as_deref().unwrap_or("(no label)"),
            logits.join(" ")
        )
    }
}

/// The reviews the firmware classified: each `review:` line with the `logits:` and
/// `label:` lines after it.
pub fn device_classified(console: &str) -> Result<Vec<Classified>> {
    let mut out: Vec<Classified> = Vec::new();
    for line in console.lines() {
        if let Some(text) = line.strip_prefix("review:") {
            out.push(Classified {
                text: text.trim().to_owned(),
                logits: Vec::new(),
                label: None,
            });
        } else if let Some(rest) = line.strip_prefix("logits:") {
            let last = out
                .last_mut()
                .context("a `logits:` line before any `review:`")?;
            last.logits = rest
                .split_whitespace()
                .map(|w| w.parse().with_context(|| format!("logit `{w}`")))
                .collect::<Result<_>>()?;
        } else if let Some(label) = line.strip_prefix("label:") {
            let last = out
                .last_mut()
                .context("a `label:` line before any `review:`")?;
            last.label = Some(label.trim().to_owned());
        }
    }
    Ok(out)
}

/// `microbert classify --logits --max-tokens 128` (the CLI `cli`) of `texts`, one per line.
pub fn host_classify(cli: &Path, blob: &Path, texts: &[String]) -> Result<Vec<Classified>> {
    let input: String = texts.iter().map(|t| format!("{t}\n")).collect();
    let stdout = crate::exec::piped(
        crate::exec::command(cli)
            .args(["classify", "--logits", "--max-tokens", "128", "--model"])
            .arg(blob),
        &input,
    )?;
    let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
    ensure!(
        lines.len() == texts.len(),
        "microbert classify printed {} lines for {} texts",
        lines.len(),
        texts.len()
    );
    texts
        .iter()
        .zip(lines)
        .map(|(text, line)| {
            let json: serde_json::Value = serde_json::from_str(line)
                .with_context(|| format!("microbert classify printed `{line}`, not JSON"))?;
            let logits = json["logits"]
                .as_array()
                .with_context(|| format!("no \"logits\" in `{line}`"))?
                .iter()
                .map(|v| v.as_i64().with_context(|| format!("a logit of `{line}`")))
                .collect::<Result<_>>()?;
            Ok(Classified {
                text: text.clone(),
                logits,
                label: json["label"].as_str().map(str::to_owned),
            })
        })
        .collect()
}

/// Whether the blob at `path` has a sequence classifier.
fn classifies(path: &Path) -> Result<bool> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let model = microbert::parse(&bytes)
        .map_err(|e| anyhow::anyhow!("{} does not parse: {e}", path.display()))?;
    Ok(matches!(
        model.tasks.classifier,
        Some((microbert::blob::ClassifierKind::Sequence, _))
    ))
}

/// The firmware's classifications (when the blob has a sequence classifier) against the
/// host CLI's on the same blob and texts: `<label>: classify match (...)` or `<label>:
/// classify MISMATCH (...)`; `None` for a blob without one that the firmware (rightly) did
/// not classify with.
fn compare_classified(
    label: &str,
    run: &Run,
    blob: &Path,
    host: &mut Host<'_>,
) -> Result<Option<String>> {
    verdict(
        label,
        &device_classified(&run.console)?,
        classifies(blob)?,
        |texts| host.classify(blob, texts),
    )
}

/// [`compare_classified`] of what the device printed (`device`), whether its blob has a
/// sequence classifier, and the host's classification of the device's texts.
fn verdict(
    label: &str,
    device: &[Classified],
    expected: bool,
    host: impl FnOnce(&[String]) -> Result<Vec<Classified>>,
) -> Result<Option<String>> {
    if device.is_empty() {
        return Ok(expected.then(|| {
            format!(
                "{label}: classify MISMATCH (the blob has a sequence classifier; the firmware \
                 classified nothing)"
            )
        }));
    }
    if !expected {
        return Ok(Some(format!(
            "{label}: classify MISMATCH (the firmware classified with a blob that has no \
             sequence classifier)"
        )));
    }
    let texts: Vec<String> = device.iter().map(|c| c.text.clone()).collect();
    let reference = host(&texts)?;
    ensure!(
        reference.len() == device.len(),
        "the host classified {} of {} texts",
        reference.len(),
        device.len()
    );
    let differ: Vec<String> = device
        .iter()
        .zip(&reference)
        .filter(|(d, h)| {
            d.logits != h.logits
                || h.label
                    .as_ref()
                    .is_some_and(|l| d.label.as_ref() != Some(l))
        })
        .map(|(d, h)| {
            format!(
                "\"{}\": firmware {}, host {}",
                d.text,
                d.describe(),
                h.describe()
            )
        })
        .collect();
    let all: Vec<String> = device.iter().map(Classified::describe).collect();
    Ok(Some(if differ.is_empty() {
        format!(
            "{label}: classify match ({} reviews: {})",
            device.len(),
            all.join(", ")
        )
    } else {
        format!("{label}: classify MISMATCH ({})", differ.join("; "))
    }))
}

/// A firmware built and run: its ELF and what it printed.
pub struct Run {
    /// The ELF file.
    pub elf: PathBuf,
    /// The console: qemu's standard output (semihosting `:tt` writes, UARTs), then its
    /// standard error (semihosting `SYS_WRITE0` text).
    pub console: String,
}

impl Run {
    /// The value after `key` on its line of the console.
    pub fn field(&self, key: &str) -> Result<String> {
        self.console
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .with_context(|| {
                format!(
                    "no `{key}` line in the output of {}:\n{}",
                    self.elf.display(),
                    self.console
                )
            })
    }

    /// The first number after `key` on its line (`stack: peak 9852 bytes` -> 9852).
    pub fn number(&self, key: &str) -> Option<u64> {
        let rest = self.console.lines().find_map(|l| l.strip_prefix(key))?;
        rest.split_whitespace().find_map(|w| w.parse().ok())
    }
}

/// The Rust Cortex-M4F firmware (`targets/cortex-m`) built with `blob` and run, exactly as
/// `cargo xtask firmware` does (the same target directory: built once, then reused).
pub fn cortex_m(root: &Path, blob: &Path) -> Result<Run> {
    build_and_run(root, CORTEX_M, blob)
}

/// Any ELF for the Cortex-M4F board (the C firmware of `cargo xtask capi`) run under the
/// same qemu command as the Rust one.
pub fn boot_cortex_m(elf: &Path) -> Result<Run> {
    boot(CORTEX_M, elf)
}

/// Builds one firmware with the blob and runs it under qemu.
fn build_and_run(root: &Path, fw: &Firmware, blob: &Path) -> Result<Run> {
    let t = Instant::now();
    let project = root.join("targets").join(fw.project);
    let target_dir = crate::cache::cross_target_dir(root, &format!("firmware/{}", fw.project));
    let staged = stage_blob(&target_dir, blob)?;
    let mut cmd = DebianCargo::new(&project, &target_dir)
        .rust_lld()?
        .command();
    cmd.env("MICROBERT_FIRMWARE_BLOB", &staged).args([
        "build",
        "--release",
        "-Zbuild-std=core",
        "--target",
        fw.triple,
    ]);
    if !fw.features.is_empty() {
        cmd.args(["--features", fw.features]);
    }
    let out = cmd.output().context("cannot start /usr/bin/cargo")?;
    if !out.status.success() {
        bail!(
            "building the {} firmware failed:\n{}",
            fw.label,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let elf = target_dir.join(fw.triple).join("release").join(fw.bin);
    eprintln!(
        "==> {} built ({:.1?}): {}",
        fw.label,
        t.elapsed(),
        elf.display()
    );
    boot(fw, &elf)
}

/// A copy of `blob` in the firmware's target directory, named by its content and written
/// only when missing. The build script reruns when the blob's modification time changes
/// (`rerun-if-changed`), and the cache of derived artefacts marks every reused blob as
/// just used by that time: given the cached file, each run (and `cargo xtask capi` after
/// `firmware` in CI) would rebuild every firmware.
fn stage_blob(target_dir: &Path, blob: &Path) -> Result<PathBuf> {
    let hash = crate::cache::sha256_file(blob)?;
    let staged = target_dir
        .join("blobs")
        .join(format!("{}.blob", &hash[..16]));
    crate::cache::publish(blob, &staged)?;
    Ok(staged)
}

/// Runs an ELF on the board of `fw` under qemu (with a timeout) and echoes its console
/// (without the long `pooled` line).
fn boot(fw: &Firmware, elf: &Path) -> Result<Run> {
    let t = Instant::now();
    let out = crate::exec::command("timeout")
        .arg(QEMU_TIMEOUT.to_string())
        .args(fw.qemu)
        .arg(elf)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {}", fw.qemu[0]))?;
    let console = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "==> {} ran under {} ({:.1?})",
        elf.display(),
        fw.qemu[0],
        t.elapsed()
    );
    if !out.status.success() {
        bail!(
            "{} failed under {} ({}):\n{console}",
            elf.display(),
            fw.qemu[0],
            out.status,
        );
    }
    for line in console.lines().filter(|l| !l.starts_with("pooled")) {
        eprintln!("    | {line}");
    }
    Ok(Run {
        elf: elf.to_path_buf(),
        console,
    })
}

/// The hash `microbert embed --hash --max-tokens 128` (the CLI `cli`) prints for `text`.
pub fn host_hash(cli: &Path, blob: &Path, text: &str) -> Result<String> {
    let stdout = crate::exec::piped(
        crate::exec::command(cli)
            .args(["embed", "--hash", "--max-tokens", "128", "--model"])
            .arg(blob),
        &format!("{text}\n"),
    )?;
    let line = stdout.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let json: serde_json::Value = serde_json::from_str(line)
        .with_context(|| format!("microbert embed printed `{line}`, not JSON"))?;
    json["hash"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("no \"hash\" in `{line}`"))
}

/// One ELF section: name, size, whether it occupies file bytes (not NOBITS).
pub(crate) struct Section {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) progbits: bool,
    pub(crate) alloc: bool,
}

/// The section headers of a little-endian ELF file (ELF32: Cortex-M, ELF64: riscv64).
pub(crate) fn sections(elf: &[u8]) -> Result<Vec<Section>> {
    ensure!(
        elf.len() > 64 && &elf[..4] == b"\x7fELF" && elf[5] == 1,
        "not a little-endian ELF file"
    );
    let wide = match elf[4] {
        1 => false,
        2 => true,
        c => bail!("unknown ELF class {c}"),
    };
    let int = |o: usize, n: usize| -> Result<u64> {
        let b = elf.get(o..o + n).context("truncated ELF")?;
        Ok(b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
    };
    // (e_shoff, e_shentsize..) offsets and the section header field (offset, width) layout.
    let (shoff, shentsize, shnum, shstrndx) = if wide {
        (int(0x28, 8)?, int(0x3a, 2)?, int(0x3c, 2)?, int(0x3e, 2)?)
    } else {
        (int(0x20, 4)?, int(0x2e, 2)?, int(0x30, 2)?, int(0x32, 2)?)
    };
    let w = if wide { 8 } else { 4 };
    // name 0 (4), type 4 (4), flags 8 (w), addr 8+w (w), offset 8+2w (w), size 8+3w (w).
    let field = |h: usize, i: usize| -> Result<u64> {
        match i {
            0 => int(h, 4),
            1 => int(h + 4, 4),
            _ => int(h + 8 + (i - 2) * w, w),
        }
    };
    let (shoff, shentsize, shnum) = (shoff as usize, shentsize as usize, shnum as usize);
    let strtab = field(shoff + shstrndx as usize * shentsize, 4)? as usize;
    let mut out = Vec::new();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        let name_off = strtab + field(h, 0)? as usize;
        let end = elf
            .get(name_off..)
            .and_then(|r| r.iter().position(|&b| b == 0))
            .context("bad section name")?;
        out.push(Section {
            name: String::from_utf8_lossy(&elf[name_off..name_off + end]).into_owned(),
            progbits: field(h, 1)? != 8,
            alloc: field(h, 2)? & 2 != 0,
            size: field(h, 5)?,
        });
    }
    Ok(out)
}

/// Memory of a firmware ELF by section.
pub struct Memory {
    /// `.vector_table` + `.text`.
    pub code: u64,
    /// `.rodata`, the blob included.
    pub rodata: u64,
    /// `.data` (its initialisers are in the image too).
    pub data: u64,
    /// `.bss` + `.uninit` (the scratch arena, the model).
    pub bss: u64,
    /// The image: every allocated section with file contents.
    pub flash: u64,
}

impl Memory {
    /// The sections of the ELF file `elf`.
    pub fn of(elf: &Path) -> Result<Self> {
        let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
        let secs = sections(&bytes)?;
        let size = |names: &[&str]| -> u64 {
            secs.iter()
                .filter(|s| names.contains(&s.name.as_str()))
                .map(|s| s.size)
                .sum()
        };
        Ok(Self {
            code: size(&[".vector_table", ".text"]),
            rodata: size(&[".rodata"]),
            data: size(&[".data"]),
            bss: size(&[".bss", ".uninit"]),
            flash: secs
                .iter()
                .filter(|s| s.alloc && s.progbits)
                .map(|s| s.size)
                .sum(),
        })
    }

    /// Read-only data without a blob of `blob_len` bytes; `None` if `.rodata` is smaller
    /// (the blob is not in it).
    pub fn rodata_without(&self, blob_len: u64) -> Option<u64> {
        self.rodata.checked_sub(blob_len)
    }
}

/// `--report`: memory use against the board's budgets.
fn report(fw: &Firmware, run: &Run, blob_len: u64) -> Result<()> {
    let Memory {
        code: text,
        rodata,
        data,
        bss,
        flash,
    } = Memory::of(&run.elf)?;
    let other = flash.saturating_sub(text + rodata + data);
    let arena = run.number("arena:").unwrap_or(0);
    let stack = run.number("stack: peak").unwrap_or(0);
    let needed = run
        .console
        .lines()
        .find_map(|l| l.strip_prefix("arena:"))
        .and_then(|r| r.split(", ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|w| w.parse::<u64>().ok())
        .unwrap_or(0);
    let tokens = run.number("tokens:").unwrap_or(0);
    let (flash_budget, ram_budget) = fw.budgets;
    let kib = |b: u64| b as f64 / 1024.0;
    let pct = |b: u64, of: u64| 100.0 * b as f64 / of as f64;
    // A budget in whole MB, else KB (the Cortex-M55's 512 KB of DTCM).
    let size = |b: u64| {
        if b.is_multiple_of(1 << 20) {
            format!("{} MB", b >> 20)
        } else {
            format!("{} KB", b >> 10)
        }
    };
    println!("{} memory ({}):", fw.label, fw.board);
    println!(
        "  flash/image {:>9} B ({:>7.1} KiB, {:>5.1}% of {})",
        flash,
        kib(flash),
        pct(flash, flash_budget),
        size(flash_budget)
    );
    println!(
        "    code (.vector_table + .text)  {:>9} B ({:.1} KiB)",
        text,
        kib(text)
    );
    println!(
        "    read-only data without blob   {:>9} B ({:.1} KiB)",
        rodata.saturating_sub(blob_len),
        kib(rodata.saturating_sub(blob_len))
    );
    println!(
        "    model blob (in .rodata)       {:>9} B ({:.1} KiB)",
        blob_len,
        kib(blob_len)
    );
    println!("    .data initialisers + other    {:>9} B", data + other);
    println!(
        "  static RAM  {:>9} B ({:.1} KiB, {:.1}% of {}): .data {data} + .bss {bss}, of which the scratch arena {arena} (sized for 128 tokens)",
        data + bss,
        kib(data + bss),
        pct(data + bss, ram_budget),
        size(ram_budget)
    );
    println!(
        "  peak stack  {:>9} B ({:.1} KiB), measured by stack painting",
        stack,
        kib(stack)
    );
    if let Some(embedding) = run.number("stack after the embedding: peak") {
        println!(
            "    {:<30}{embedding:>9} B (then classifying the reviews)",
            "of the embedding alone"
        );
    }
    if let Some(insns) = run.number("icount: embed") {
        println!(
            "  instructions {insns:>8} for this text ({tokens} tokens): qemu -icount shift=0, SysTick read by the firmware (firmware-common/icount.rs)"
        );
    }
    if let Some(insns) = run.number("icount: classify") {
        let review = run.number("review tokens:").unwrap_or(0);
        println!("  instructions {insns:>8} to classify the first review ({review} tokens)");
    }
    println!(
        "  scratch     {:>9} B needed for this text ({tokens} tokens); static RAM + peak stack {} B ({:.1}% of {})",
        needed,
        data + bss + stack,
        pct(data + bss + stack, ram_budget),
        size(ram_budget)
    );
    ensure!(
        flash <= flash_budget,
        "the {} firmware needs {flash} bytes of flash, over the budget",
        fw.label
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONSOLE: &str = "hash: 0123456789abcdef\n\
        stack after the embedding: peak 100 bytes\n\
        classify: sequence classifier, 2 labels\n\
        review: Witty, touching and well paced.\n\
        review tokens: 10 (scratch 78591 bytes)\n\
        icount: classify 7884600 instructions (197115 ticks, 10 tokens)\n\
        logits: -81388 81388\n\
        label: positive\n\
        review: Dull.\n\
        review tokens: 4 (scratch 1 bytes)\n\
        logits: 5 -5\n\
        label: negative\n\
        stack: peak 200 bytes\n";

    fn classified(text: &str, logits: [i64; 2], label: &str) -> Classified {
        Classified {
            text: text.to_owned(),
            logits: logits.to_vec(),
            label: Some(label.to_owned()),
        }
    }

    #[test]
    fn the_device_lines_parse_in_order() {
        let got = device_classified(CONSOLE).unwrap();
        assert_eq!(
            got,
            [
                classified(
                    "Witty, touching and well paced.",
                    [-81388, 81388],
                    "positive"
                ),
                classified("Dull.", [5, -5], "negative"),
            ]
        );
        assert!(device_classified("logits: 1 2\n").is_err());
        assert!(device_classified("review: x\nlogits: 1 two\n").is_err());
        assert!(device_classified("hash: 1\n").unwrap().is_empty());
    }

    #[test]
    fn any_difference_is_a_mismatch() {
        let device = device_classified(CONSOLE).unwrap();
        let host = |logits: [i64; 2], label: &str| {
            let mut h = device.clone();
            h[1] = classified("Dull.", logits, label);
            move |_: &[String]| Ok(h)
        };
        let same = verdict("b", &device, true, host([5, -5], "negative")).unwrap();
        assert!(same.unwrap().starts_with("b: classify match (2 reviews"));
        for (logits, label) in [([5, -4], "negative"), ([5, -5], "positive")] {
            let line = verdict("b", &device, true, host(logits, label))
                .unwrap()
                .unwrap();
            assert!(
                line.contains("MISMATCH") && line.contains("Dull."),
                "{line}"
            );
        }
        // A one-label head: the host gives no label, the logits decide.
        let mut unlabelled = device.clone();
        unlabelled.iter_mut().for_each(|c| c.label = None);
        let line = verdict("b", &device, true, |_| Ok(unlabelled)).unwrap();
        assert!(line.unwrap().contains("classify match"));
        // Nothing classified: right without a classifier, a mismatch with one.
        assert_eq!(verdict("b", &[], false, |_| unreachable!()).unwrap(), None);
        let none = verdict("b", &[], true, |_| unreachable!()).unwrap();
        assert!(none.unwrap().contains("MISMATCH"));
        let stray = verdict("b", &device, false, |_| unreachable!()).unwrap();
        assert!(stray.unwrap().contains("MISMATCH"));
        assert!(verdict("b", &device, true, |_| Ok(Vec::new())).is_err());
    }
}
