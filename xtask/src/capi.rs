//! `cargo xtask gen-header [--check]` and `cargo xtask capi`: the C API (`targets/capi`) end
//! to end.
//!
//! `gen-header` writes `targets/capi/include/microbert.h` with cbindgen (the crates.io
//! crate pinned in xtask/Cargo.toml, used as a library; settings in
//! `targets/capi/cbindgen.toml`); `--check` fails when the committed header differs.
//!
//! `capi` runs, timing each step:
//! 1. the header check, and the header compiled alone as C99 and C++11 with
//!    `-Wall -Wextra -Werror -pedantic`;
//! 2. the host library (`cargo build -p microbert-capi --profile capi`: libmicrobert.a and
//!    libmicrobert.so; AVX2 kernels on x86-64) and the C program `examples/embed.c`, linked
//!    once statically and once against the shared library;
//! 3. `embed --check-errors` (the error contract through the header) on both blobs;
//! 4. the comparison: the same texts (`examples/texts.txt`, 100 movie-review sentences of
//!    the vader corpus, one whole State of the Union address as one line, some lines
//!    ending in CRLF) through `microbert embed --hash` and through both C programs, on the
//!    tiny fixture and the MiniLM blob, at the model's token limit and at 128: the token
//!    count, the hash of the Q.16 vector and the bits of every f32 must be identical;
//! 5. the library for `riscv32imac-unknown-none-elf` and `riscv32imc-unknown-none-elf`
//!    (ESP32-C6 and ESP32-C3 class; a build proof, nothing runs);
//! 6. the Cortex-M4F C firmware (`targets/cortex-m-c`, arm-none-eabi-gcc and newlib-nano,
//!    the staticlib built for `thumbv7em-none-eabihf`, the reduced bert-tiny blob of
//!    `cargo xtask firmware` in flash) under `qemu-system-arm -machine mps2-an386`: its hash
//!    against the host CLI's, and its code, read-only data and peak stack against the Rust
//!    firmware's (`targets/cortex-m`, built and run here the same way `cargo xtask firmware`
//!    does): each must be at most 10% larger.
//!
//! The Debian packages (rustc/cargo with the std sources for `-Zbuild-std`, the Arm GNU
//! toolchain and newlib, qemu from bookworm-backports) are installed when missing and root.

use anyhow::{Context, Result, ensure};
use core::fmt::Write as _;
use core::time::Duration;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

const HEADER: &str = "targets/capi/include/microbert.h";
const CRATE: &str = "targets/capi";
/// Warnings as errors, as a C user with a strict build would compile the header.
const STRICT: [&str; 4] = ["-Wall", "-Wextra", "-Werror", "-pedantic"];
const THUMB: &str = "thumbv7em-none-eabihf";
/// ESP32-C6/H2 and ESP32-C3 class: library builds only (a build proof).
const RISCV32: [&str; 2] = [
    "riscv32imac-unknown-none-elf",
    "riscv32imc-unknown-none-elf",
];
/// Tokens the firmware reads (its arena is sized for them), as `targets/firmware-common`.
const FIRMWARE_TOKENS: usize = 128;
/// At most this much larger than the Rust firmware (issue 10: "within 10%").
const SIZE_TOLERANCE: f64 = 0.10;
const QEMU_TIMEOUT: &str = "600";
const QEMU_M4: [&str; 9] = [
    "qemu-system-arm",
    "-machine",
    "mps2-an386",
    "-cpu",
    "cortex-m4",
    "-nographic",
    "-semihosting-config",
    "enable=on,target=native",
    "-kernel",
];
/// Vader movie-review sentences added to the comparison texts.
const VADER_LINES: usize = 100;

// ---------------------------------------------------------------------------------------
// gen-header

/// The header cbindgen writes for the crate's current source.
fn render_header(root: &Path) -> Result<String> {
    let dir = root.join(CRATE);
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml"))
        .map_err(|e| anyhow::anyhow!("reading {CRATE}/cbindgen.toml: {e}"))?;
    let bindings = cbindgen::Builder::new()
        .with_config(config)
        .with_src(dir.join("src/lib.rs"))
        .generate()
        .map_err(|e| anyhow::anyhow!("cbindgen: {e}"))?;
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).context("cbindgen wrote non-UTF-8 text")
}

/// `cargo xtask gen-header [--check]`.
pub fn gen_header(root: &Path, check: bool) -> Result<()> {
    let want = render_header(root)?;
    crate::generated::write_or_check(root, HEADER, &want, "cargo xtask gen-header", check)
}

// ---------------------------------------------------------------------------------------
// capi

/// Wall time of each step, for the summary.
#[derive(Default)]
struct Steps(Vec<(String, Duration)>);

impl Steps {
    fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("==> capi: {name}");
        let t = Instant::now();
        let out = f().with_context(|| format!("capi step `{name}`"))?;
        let took = t.elapsed();
        eprintln!("    {name}: {took:.1?}");
        self.0.push((name.to_string(), took));
        Ok(out)
    }
}

/// `cargo xtask capi`: everything in the module docs; fails on any difference.
pub fn run(root: &Path) -> Result<()> {
    let start = Instant::now();
    let mut steps = Steps::default();
    let build = target_dir(root).join("capi");
    let work = build.join("xtask");
    std::fs::create_dir_all(&work)?;

    steps.run("header is current (cbindgen)", || gen_header(root, true))?;
    steps.run("header compiles (C99, C++11, -Werror -pedantic)", || {
        compile_header(root, &work)
    })?;
    let lib = steps.run("host library (cargo --profile capi)", || {
        host_library(root, &build)
    })?;
    let exes = steps.run("C program examples/embed.c (static and shared)", || {
        build_embed(root, &lib, &work)
    })?;
    let cli = steps.run("host CLI (cargo build --release -p microbert-host)", || {
        host_cli(root)
    })?;
    let fixture = root.join("models/fixtures/tiny/model.blob");
    let minilm = crate::blobs::blob("minilm")?;
    steps.run("error contract from C (embed --check-errors)", || {
        for exe in &exes {
            for blob in [&fixture, &minilm] {
                let out = output(Command::new(exe).arg("--check-errors").arg(blob))?;
                eprint!(
                    "    {}: {}",
                    blob.display(),
                    String::from_utf8_lossy(&out.stdout)
                );
            }
        }
        Ok(())
    })?;
    let texts = steps.run("comparison texts", || texts(root, &work))?;
    let mut table = String::new();
    for (blob, label) in [(&fixture, "tiny fixture"), (&minilm, "MiniLM")] {
        for cap in [None, Some(FIRMWARE_TOKENS)] {
            let name = match cap {
                None => format!("compare C and CLI: {label}, model's token limit"),
                Some(n) => format!("compare C and CLI: {label}, --max-tokens {n}"),
            };
            let line = steps.run(&name, || compare(&cli, &exes, blob, cap, &texts))?;
            writeln!(table, "  {label:<13} {:<22} {line}", limit_label(cap))?;
        }
    }
    println!("C program vs `microbert embed --hash` (tokens, hash, f32 bits):\n{table}");

    let packages = steps.run("Debian packages", ensure_packages)?;
    eprintln!("    {packages}");
    for triple in RISCV32 {
        let lib = steps.run(
            &format!("library for {triple} (Debian cargo, build-std)"),
            || cross_library(root, triple),
        )?;
        println!(
            "{triple}: {} ({} bytes)",
            lib.display(),
            std::fs::metadata(&lib)?.len()
        );
    }
    let thumb = steps.run(
        &format!("library for {THUMB} (Debian cargo, build-std)"),
        || cross_library(root, THUMB),
    )?;
    let blob = steps.run("reduced bert-tiny blob", reduced_blob)?;
    let c_elf = steps.run("C firmware (make, arm-none-eabi-gcc)", || {
        c_firmware(root, &thumb, &blob, &build.join("cortex-m-c"))
    })?;
    let c_run = steps.run("C firmware under qemu-system-arm", || qemu(&c_elf))?;
    let rust_elf = steps.run(
        "Rust firmware targets/cortex-m (for the comparison)",
        || rust_firmware(root, &blob),
    )?;
    let rust_run = steps.run("Rust firmware under qemu-system-arm", || qemu(&rust_elf))?;
    let host_hash = steps.run("host CLI hash of the firmware text", || {
        let text = field(&c_run, "text:")?;
        let lines = cli_lines(&cli, &blob, Some(FIRMWARE_TOKENS), &format!("{text}\n"))?;
        let line = lines.first().context("no CLI output")?;
        Ok(line.hash.clone())
    })?;
    let report = firmware_report(&c_elf, &c_run, &rust_elf, &rust_run, &blob, &host_hash);

    println!("capi steps:");
    for (name, took) in &steps.0 {
        println!("  {:>8.1?}  {name}", took);
    }
    println!("  {:>8.1?}  total", start.elapsed());
    report
}

fn limit_label(cap: Option<usize>) -> String {
    cap.map_or("model's limit".to_string(), |n| format!("--max-tokens {n}"))
}

/// The cargo target directory of the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}

/// Runs a command; its output if it succeeded, else an error with its stderr.
fn output(cmd: &mut Command) -> Result<std::process::Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    ensure!(
        out.status.success(),
        "{:?} failed ({}):\n{}{}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(out)
}

/// The cargo that runs xtask.
fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The header alone in a C99 and a C++11 translation unit, warnings as errors.
fn compile_header(root: &Path, work: &Path) -> Result<()> {
    let include = root.join("targets/capi/include");
    let c = work.join("header_only.c");
    std::fs::write(
        &c,
        "#include \"microbert.h\"\nint main(void) { microbert_model m; (void)m; return 0; }\n",
    )?;
    output(
        Command::new("cc")
            .args(["-std=c99", "-fsyntax-only"])
            .args(STRICT)
            .arg("-I")
            .arg(&include)
            .arg(&c),
    )?;
    output(
        Command::new("c++")
            .args(["-x", "c++", "-std=c++11", "-fsyntax-only"])
            .args(STRICT)
            .arg("-I")
            .arg(&include)
            .arg(&c),
    )?;
    Ok(())
}

/// libmicrobert.a and libmicrobert.so for the host, in `build` (target/capi).
fn host_library(root: &Path, build: &Path) -> Result<PathBuf> {
    let status = cargo()
        .current_dir(root)
        .args([
            "build",
            "--quiet",
            "--profile",
            "capi",
            "-p",
            "microbert-capi",
        ])
        .status()
        .context("cannot run cargo build -p microbert-capi")?;
    ensure!(status.success(), "building microbert-capi failed");
    for lib in ["libmicrobert.a", "libmicrobert.so"] {
        let p = build.join(lib);
        ensure!(p.exists(), "{} was not built", p.display());
        println!(
            "host library: {} ({} bytes)",
            p.display(),
            std::fs::metadata(&p)?.len()
        );
    }
    Ok(build.to_path_buf())
}

/// `embed` linked with libmicrobert.a, and `embed-shared` with libmicrobert.so.
fn build_embed(root: &Path, lib: &Path, work: &Path) -> Result<Vec<PathBuf>> {
    let src = root.join("targets/capi/examples/embed.c");
    let include = root.join("targets/capi/include");
    let cc = |out: &Path| {
        let mut cmd = Command::new("cc");
        cmd.args(["-std=c99", "-O2"])
            .args(STRICT)
            .arg("-I")
            .arg(&include)
            .arg(&src)
            .arg("-o")
            .arg(out);
        cmd
    };
    let stat = work.join("embed");
    // The system libraries a std staticlib needs (`rustc --print native-static-libs`).
    output(cc(&stat).arg(lib.join("libmicrobert.a")).args([
        "-lgcc_s",
        "-lutil",
        "-lrt",
        "-lpthread",
        "-lm",
        "-ldl",
        "-lc",
    ]))?;
    let shared = work.join("embed-shared");
    output(
        cc(&shared)
            .arg("-L")
            .arg(lib)
            .arg(format!("-Wl,-rpath,{}", lib.display()))
            .args(["-lmicrobert", "-lm"]),
    )?;
    let ldd = output(Command::new("ldd").arg(&shared))?;
    ensure!(
        String::from_utf8_lossy(&ldd.stdout).contains("libmicrobert.so"),
        "embed-shared does not load libmicrobert.so"
    );
    Ok(vec![stat, shared])
}

/// The host CLI, built with the cargo that runs xtask.
fn host_cli(root: &Path) -> Result<PathBuf> {
    let status = cargo()
        .current_dir(root)
        .args(["build", "--quiet", "--release", "-p", "microbert-host"])
        .status()
        .context("cannot run cargo build -p microbert-host")?;
    ensure!(status.success(), "building the host CLI failed");
    Ok(target_dir(root).join("release/microbert"))
}

/// The comparison input: the committed edge cases, vader sentences, one long address;
/// every third line ends in CRLF.
fn texts(root: &Path, work: &Path) -> Result<String> {
    let mut lines: Vec<String> =
        std::fs::read_to_string(root.join("targets/capi/examples/texts.txt"))?
            .lines()
            .map(str::to_owned)
            .collect();
    // The fetch prints the file itself for vader, the directory for sotu.
    let vader = crate::fetch::ensure_data("vader")?;
    let text =
        std::fs::read_to_string(&vader).with_context(|| format!("reading {}", vader.display()))?;
    lines.extend(
        text.lines()
            .filter_map(|l| l.trim_end_matches('\r').splitn(3, '\t').nth(2))
            .take(VADER_LINES)
            .map(str::to_owned),
    );
    let sotu = crate::fetch::ensure_data("sotu")?.join("1790_george_washington_n.txt");
    let address =
        std::fs::read_to_string(&sotu).with_context(|| format!("reading {}", sotu.display()))?;
    lines.push(address.split_whitespace().collect::<Vec<_>>().join(" "));
    let mut out = String::new();
    for (i, l) in lines.iter().enumerate() {
        out.push_str(l);
        out.push_str(if i % 3 == 2 { "\r\n" } else { "\n" });
    }
    std::fs::write(work.join("texts.txt"), &out)?;
    eprintln!("    {} texts, {} bytes", lines.len(), out.len());
    Ok(out)
}

/// One embedded text: token count, hash of the Q.16 vector, f32 bits.
#[derive(Debug, PartialEq, Eq)]
struct Line {
    tokens: usize,
    hash: String,
    bits: Vec<u32>,
}

/// Runs `cmd` with `input` on stdin; its stdout.
fn pipe(cmd: &mut Command, input: &str) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        use std::io::Write as _;
        stdin.write_all(input.as_bytes())
    });
    let out = child.wait_with_output()?;
    writer
        .join()
        .map_err(|_| anyhow::anyhow!("stdin writer panicked"))??;
    ensure!(
        out.status.success(),
        "{:?} failed ({}): {}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// `microbert embed --hash` on `input`, parsed; the f32 values are read back with
/// `str::parse::<f32>` (exact for the shortest round-trip form the CLI prints).
fn cli_lines(cli: &Path, blob: &Path, cap: Option<usize>, input: &str) -> Result<Vec<Line>> {
    let mut cmd = Command::new(cli);
    cmd.args(["embed", "--hash", "--model"]).arg(blob);
    if let Some(n) = cap {
        cmd.args(["--max-tokens", &n.to_string()]);
    }
    let stdout = pipe(&mut cmd, input)?;
    stdout
        .lines()
        .map(|l| {
            let json: serde_json::Value = serde_json::from_str(l)?;
            let embedding = l
                .split_once("\"embedding\":[")
                .and_then(|(_, r)| r.split_once(']'))
                .map(|(v, _)| v)
                .context("no embedding")?;
            let bits = embedding
                .split(',')
                .map(|x| x.parse::<f32>().map(f32::to_bits))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Line {
                tokens: json["tokens"].as_u64().context("no tokens")? as usize,
                hash: json["hash"].as_str().context("no hash")?.to_owned(),
                bits,
            })
        })
        .collect()
}

/// The C program's lines: `tokens N hash H f32 B...`.
fn c_lines(exe: &Path, blob: &Path, cap: Option<usize>, input: &str) -> Result<Vec<Line>> {
    let mut cmd = Command::new(exe);
    if let Some(n) = cap {
        cmd.args(["--max-tokens", &n.to_string()]);
    }
    cmd.arg(blob);
    let stdout = pipe(&mut cmd, input)?;
    stdout
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            ensure!(
                w.len() > 5 && w[0] == "tokens" && w[2] == "hash" && w[4] == "f32",
                "unexpected C output line `{l}`"
            );
            Ok(Line {
                tokens: w[1].parse()?,
                hash: w[3].to_owned(),
                bits: w[5..]
                    .iter()
                    .map(|b| u32::from_str_radix(b, 16))
                    .collect::<Result<_, _>>()?,
            })
        })
        .collect()
}

/// Both C programs against the CLI on one blob; a summary, or the first difference.
fn compare(
    cli: &Path,
    exes: &[PathBuf],
    blob: &Path,
    cap: Option<usize>,
    input: &str,
) -> Result<String> {
    let t = Instant::now();
    let want = cli_lines(cli, blob, cap, input)?;
    let cli_time = t.elapsed();
    let n_texts = input.lines().count();
    ensure!(
        want.len() == n_texts,
        "the CLI printed {} lines for {n_texts} texts",
        want.len()
    );
    let mut times = Vec::new();
    for exe in exes {
        let t = Instant::now();
        let have = c_lines(exe, blob, cap, input)?;
        times.push(t.elapsed());
        ensure!(
            have.len() == want.len(),
            "{} printed {} lines, the CLI {}",
            exe.display(),
            have.len(),
            want.len()
        );
        for (i, (h, w)) in have.iter().zip(&want).enumerate() {
            ensure!(
                h == w,
                "text {} differs on {} ({}): C {} tokens hash {}, CLI {} tokens hash {}; \
                 f32 bits equal: {}",
                i + 1,
                blob.display(),
                exe.display(),
                h.tokens,
                h.hash,
                w.tokens,
                w.hash,
                h.bits == w.bits
            );
        }
    }
    let tokens: usize = want.iter().map(|l| l.tokens).sum();
    let longest = want.iter().map(|l| l.tokens).max().unwrap_or(0);
    Ok(format!(
        "{n_texts} texts ({tokens} tokens, longest {longest}): identical; \
         CLI {cli_time:.1?}, C static {:.1?}, C shared {:.1?}",
        times.first().copied().unwrap_or_default(),
        times.get(1).copied().unwrap_or_default()
    ))
}

// ---------------------------------------------------------------------------------------
// Cross builds. lead: switch to the shared toolchain module (Debian cargo, packages).

const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";
const RUST_SRC: &str = "/usr/lib/rustlib/src/rust/library";
/// (package, apt suite or "" for the default) the cross steps need.
const PACKAGES: [(&str, &str); 6] = [
    ("rustc-web", ""),
    ("cargo-web", ""),
    ("rust-web-src", ""),
    ("gcc-arm-none-eabi", ""),
    ("libnewlib-arm-none-eabi", ""),
    ("qemu-system-arm", "bookworm-backports"),
];

/// The installed version of a Debian package, if any.
fn installed_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}|${Version}", package])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, version) = s.split_once('|')?;
    status.ends_with(" installed").then(|| version.to_string())
}

fn apt(args: &[&str]) -> Result<()> {
    eprintln!("==> apt-get {}", args.join(" "));
    let status = Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(args)
        .status()
        .context("cannot start apt-get")?;
    ensure!(
        status.success(),
        "apt-get {} failed ({status})",
        args.join(" ")
    );
    Ok(())
}

/// The Debian mirror of an active `deb` line or `URIs:` field of the apt sources.
fn debian_mirror() -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    files.iter().find_map(|f| {
        let text = std::fs::read_to_string(f).ok()?;
        text.lines().map(str::trim).find_map(|line| {
            let uris = line
                .strip_prefix("URIs:")
                .or_else(|| line.strip_prefix("deb "))?;
            uris.split_whitespace()
                .map(|u| u.trim_end_matches('/'))
                .find(|u| u.starts_with("http") && u.ends_with("/debian"))
                .map(str::to_owned)
        })
    })
}

/// Installs the missing [`PACKAGES`] (as root); returns their versions.
fn ensure_packages() -> Result<String> {
    let missing: Vec<(&str, &str)> = PACKAGES
        .into_iter()
        .filter(|(p, _)| installed_version(p).is_none())
        .collect();
    if !missing.is_empty() {
        let uid = output(Command::new("id").arg("-u"))?;
        ensure!(
            String::from_utf8_lossy(&uid.stdout).trim() == "0",
            "missing Debian packages {missing:?}: run `cargo xtask capi` as root to install them"
        );
        apt(&["update", "-q"])?;
        let policy = output(Command::new("apt-cache").arg("policy"))?;
        if missing.iter().any(|(_, s)| !s.is_empty())
            && !String::from_utf8_lossy(&policy.stdout).contains("bookworm-backports")
        {
            let mirror = debian_mirror().context("no Debian mirror in the apt sources")?;
            std::fs::write(
                "/etc/apt/sources.list.d/bookworm-backports.list",
                format!("deb {mirror} bookworm-backports main\n"),
            )?;
            apt(&["update", "-q"])?;
        }
        for suite in ["", "bookworm-backports"] {
            let names: Vec<&str> = missing
                .iter()
                .filter(|(_, s)| *s == suite)
                .map(|(p, _)| *p)
                .collect();
            if names.is_empty() {
                continue;
            }
            let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
            if !suite.is_empty() {
                args.extend(["-t", suite]);
            }
            args.extend(names);
            apt(&args)?;
        }
    }
    ensure!(Path::new(RUST_SRC).exists(), "{RUST_SRC} missing");
    let mut versions = String::new();
    for (p, _) in PACKAGES {
        let v = installed_version(p).with_context(|| format!("{p} is not installed"))?;
        write!(versions, "{p} {v}; ")?;
    }
    Ok(versions.trim_end_matches("; ").to_string())
}

/// Debian's cargo and rustc in `dir`, `-Zbuild-std` unlocked, building into `target_dir`.
fn debian_cargo(dir: &Path, target_dir: &Path) -> Command {
    let mut cmd = Command::new(DEBIAN_CARGO);
    cmd.current_dir(dir)
        .env("RUSTC", DEBIAN_RUSTC)
        .env("RUSTDOC", "/usr/bin/rustdoc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// A cross build directory in the cache (core built from source is reused by every clone).
fn cross_dir(root: &Path, sub: &str) -> PathBuf {
    crate::cache::cache_dir()
        .map(|c| c.join("cross-target").join(sub))
        .unwrap_or_else(|_| target_dir(root).join(sub))
}

/// libmicrobert.a for a bare-metal `triple` (no_std, scalar kernels, `panic = "abort"`).
fn cross_library(root: &Path, triple: &str) -> Result<PathBuf> {
    let dir = cross_dir(root, "capi");
    output(debian_cargo(root, &dir).args([
        "rustc",
        "--quiet",
        "-p",
        "microbert-capi",
        "--lib",
        "--profile",
        "capi",
        "--no-default-features",
        "--crate-type",
        "staticlib",
        "-Zbuild-std=core",
        "--target",
        triple,
    ]))?;
    let lib = dir.join(triple).join("capi/libmicrobert.a");
    ensure!(lib.exists(), "{} was not built", lib.display());
    Ok(lib)
}

/// The reduced bert-tiny blob of `cargo xtask firmware` (the recipe's `firmware` variant,
/// from the shared derived-artefact cache).
fn reduced_blob() -> Result<PathBuf> {
    crate::blobs::blob_of(
        "bert-tiny",
        &crate::blobs::Request {
            variant: Some("firmware"),
            keep_vocab: None,
        },
    )
}

/// `make` in targets/cortex-m-c with the library, the blob and the sizes from the blob.
fn c_firmware(root: &Path, lib: &Path, blob: &Path, out: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(blob)?;
    let model = microbert::parse(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hidden = model.config.hidden_size as usize;
    // `microbert_scratch_bytes`: the runtime's arena plus the pooled vector and its 3
    // alignment bytes (targets/capi src/glue.rs); the firmware checks it again with the
    // library at run time.
    let arena = microbert::scratch_bytes(&model, FIRMWARE_TOKENS) + 4 * hidden + 3;
    output(
        Command::new("make")
            .current_dir(root.join("targets/cortex-m-c"))
            .arg("-B")
            .arg("--quiet")
            .arg(format!("LIB={}", lib.display()))
            .arg(format!("BLOB={}", blob.display()))
            .arg(format!("ARENA_BYTES={arena}"))
            .arg(format!("HIDDEN={hidden}"))
            .arg(format!("OUT={}", out.display())),
    )?;
    Ok(out.join("firmware.elf"))
}

/// The rustup toolchain's directory with `rust-lld` (Debian's rustc has none).
fn lld_dir() -> Result<PathBuf> {
    let out = output(
        Command::new("rustc")
            .env_remove("RUSTC")
            .args(["+stable", "--print", "sysroot"]),
    )?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        .join("lib/rustlib/x86_64-unknown-linux-gnu/bin");
    ensure!(
        dir.join("rust-lld").exists(),
        "no rust-lld in {}",
        dir.display()
    );
    Ok(dir)
}

/// The Rust Cortex-M firmware, built as `cargo xtask firmware` builds it (same target dir).
fn rust_firmware(root: &Path, blob: &Path) -> Result<PathBuf> {
    let dir = cross_dir(root, "firmware/cortex-m");
    let path = std::env::join_paths(core::iter::once(lld_dir()?).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))?;
    output(
        debian_cargo(&root.join("targets/cortex-m"), &dir)
            .env("PATH", path)
            .env("MICROBERT_FIRMWARE_BLOB", blob)
            .args([
                "build",
                "--quiet",
                "--release",
                "-Zbuild-std=core",
                "--target",
                THUMB,
            ]),
    )?;
    Ok(dir.join(THUMB).join("release/microbert-cortex-m"))
}

/// Runs a Cortex-M4 ELF under qemu (with a timeout); its console output: standard output
/// (the Rust firmware writes to the semihosting `:tt` file) then standard error (where
/// qemu puts SYS_WRITE0 text, which the C firmware uses).
fn qemu(elf: &Path) -> Result<String> {
    let out = output(
        Command::new("timeout")
            .arg(QEMU_TIMEOUT)
            .args(QEMU_M4)
            .arg(elf),
    )?;
    let stdout = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for line in stdout.lines().filter(|l| !l.starts_with("pooled")) {
        eprintln!("    | {line}");
    }
    Ok(stdout)
}

/// The value after `key` on its line of a firmware's output.
fn field(stdout: &str, key: &str) -> Result<String> {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .with_context(|| format!("no `{key}` line in:\n{stdout}"))
}

/// Section sizes of an ELF (`arm-none-eabi-size -A`).
fn section_sizes(elf: &Path) -> Result<Vec<(String, u64)>> {
    let out = output(Command::new("arm-none-eabi-size").arg("-A").arg(elf))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?;
            let size = w.next()?.parse().ok()?;
            name.starts_with('.').then(|| (name.to_string(), size))
        })
        .collect())
}

/// One firmware's numbers.
struct Sizes {
    code: u64,
    rodata: u64,
    data: u64,
    bss: u64,
    stack: u64,
}

fn sizes(elf: &Path, stdout: &str, blob_len: u64) -> Result<Sizes> {
    let secs = section_sizes(elf)?;
    let size = |names: &[&str]| -> u64 {
        secs.iter()
            .filter(|(n, _)| names.contains(&n.as_str()))
            .map(|(_, s)| s)
            .sum()
    };
    let stack = field(stdout, "stack: peak")?;
    Ok(Sizes {
        code: size(&[".vector_table", ".text"]),
        rodata: size(&[".rodata"])
            .checked_sub(blob_len)
            .context(".rodata is smaller than the blob: the blob is not in .rodata")?,
        data: size(&[".data"]),
        bss: size(&[".bss", ".uninit"]),
        stack: stack
            .split_whitespace()
            .next()
            .and_then(|w| w.parse().ok())
            .context("no peak stack number")?,
    })
}

/// The hashes and texts of both firmware against the host, the size table, the 10% check.
fn firmware_report(
    c_elf: &Path,
    c_run: &str,
    rust_elf: &Path,
    rust_run: &str,
    blob: &Path,
    host_hash: &str,
) -> Result<()> {
    let (c_text, rust_text) = (field(c_run, "text:")?, field(rust_run, "text:")?);
    ensure!(
        c_text == rust_text,
        "the C firmware embeds `{c_text}`, the Rust one `{rust_text}`"
    );
    let (c_hash, rust_hash) = (field(c_run, "hash:")?, field(rust_run, "hash:")?);
    println!("cortex-m C firmware: hash {c_hash}; Rust firmware {rust_hash}; host CLI {host_hash}");
    ensure!(
        c_hash == host_hash && rust_hash == host_hash,
        "firmware hashes differ from the host CLI's"
    );
    println!(
        "cortex-m-c: match (hash {c_hash}, {} tokens)",
        field(c_run, "tokens:")?
    );

    let blob_len = std::fs::metadata(blob)?.len();
    let c = sizes(c_elf, c_run, blob_len)?;
    let r = sizes(rust_elf, rust_run, blob_len)?;
    let pct = |c: u64, r: u64| match r {
        0 => "-".to_string(),
        _ => format!("{:+.1}%", 100.0 * (c as f64 - r as f64) / r as f64),
    };
    println!("Cortex-M4F firmware, bert-tiny blob {blob_len} B in flash (mps2-an386 under qemu):");
    println!(
        "  {:<30} {:>12} {:>12} {:>9}",
        "", "Rust", "C API", "C vs Rust"
    );
    let rows = [
        ("code (.vector_table + .text)", c.code, r.code, true),
        ("read-only data without blob", c.rodata, r.rodata, true),
        ("peak stack (painted)", c.stack, r.stack, true),
        (".data", c.data, r.data, false),
        (".bss (arena, model, ...)", c.bss, r.bss, false),
    ];
    let mut over = Vec::new();
    for (name, cv, rv, checked) in rows {
        println!("  {name:<30} {rv:>10} B {cv:>10} B {:>9}", pct(cv, rv));
        if checked && cv as f64 > rv as f64 * (1.0 + SIZE_TOLERANCE) {
            over.push(name);
        }
    }
    ensure!(
        over.is_empty(),
        "the C firmware is more than {:.0}% larger than the Rust one in {over:?}",
        SIZE_TOLERANCE * 100.0
    );
    Ok(())
}
