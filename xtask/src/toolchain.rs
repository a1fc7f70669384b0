//! Every external tool the project uses: how to find it, read its version, the minimum
//! version, and the Debian package (and suite) that installs it. Each xtask step asks
//! [`ensure`] for the tools it needs; `cargo xtask doctor` lists them all ([`check`]).
//!
//! [`ensure`] installs what is missing or too old with apt-get when run as root (the recipe
//! of shared/toolchain.md: `apt-get update` once, then the packages; a package from
//! `bookworm-backports` adds that suite first, from the mirror the machine's own apt sources
//! name, when apt does not know it yet), checks again and prints the versions it found.
//! Packages are installed with `--no-install-recommends`: each tool names every package it
//! needs, and the recommends are large (newlib's C++ library alone is 1.5 GB installed; a
//! first install of the C firmware's toolchain with recommends pulled 2.5 GB).
//! Tools that come with the rustup toolchain cannot be installed here: a missing one is an
//! error naming what to do.
//!
//! Adding a tool is one entry in the `tools!` list below.

use crate::exec::{is_root, output};
use anyhow::{Context, Result, bail};
use core::sync::atomic::{AtomicBool, Ordering};
use std::path::PathBuf;
use std::process::Command;

/// How a tool is found and its version read.
#[derive(Debug)]
pub enum Probe {
    /// Runs `program args` (a name looked up on PATH, or an absolute path); present when it
    /// exits successfully; the version is read from the first line it prints.
    Command(&'static str, &'static [&'static str]),
    /// A file or directory; the version is its Debian package's.
    Path(&'static str),
    /// `rust-lld` of the rustup toolchain ([`rust_lld_dir`]), `-flavor gnu --version`.
    RustLld,
}

/// Where a tool comes from.
#[derive(Debug)]
pub enum Install {
    /// Debian packages, from the default suite (`None`) or the named one.
    Debian(&'static [&'static str], Option<&'static str>),
    /// Part of the rustup toolchain (cannot be installed here): how to get it.
    Rustup(&'static str),
}

/// One external tool.
#[derive(Debug)]
pub struct Spec {
    /// Name shown by `doctor` and in messages.
    pub name: &'static str,
    /// How to find it.
    pub probe: Probe,
    /// Minimum version (`"8.0"`), if any.
    pub min: Option<&'static str>,
    /// Where it comes from.
    pub install: Install,
    /// Why a missing one is not an error yet (no step uses it so far); `None`: required.
    pub optional: Option<&'static str>,
}

/// The minimum Rust version of the workspace (`rust-version` in Cargo.toml).
const RUST_VERSION: &str = env!("CARGO_PKG_RUST_VERSION");
const BACKPORTS: &str = "bookworm-backports";

macro_rules! tools {
    ($($(#[$doc:meta])* $id:ident = $spec:expr;)*) => {
        /// An external tool (see [`Spec`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Tool {
            $($(#[$doc])* $id,)*
        }
        impl Tool {
            /// Every tool, in `doctor`'s order.
            pub const ALL: &'static [Tool] = &[$(Tool::$id,)*];
            /// What is known about the tool.
            pub const fn spec(self) -> &'static Spec {
                match self {
                    $(Tool::$id => &$spec,)*
                }
            }
        }
    };
}

tools! {
    /// The rustup cargo that runs xtask.
    Cargo = Spec {
        name: "cargo",
        probe: Probe::Command("cargo", &["--version"]),
        min: Some(RUST_VERSION),
        install: Install::Rustup("the machine's rustup toolchain"),
        optional: None,
    };
    /// The rustup rustc.
    Rustc = Spec {
        name: "rustc",
        probe: Probe::Command("rustc", &["--version"]),
        min: Some(RUST_VERSION),
        install: Install::Rustup("the machine's rustup toolchain"),
        optional: None,
    };
    /// `cargo fmt`.
    Rustfmt = Spec {
        name: "rustfmt",
        probe: Probe::Command("rustfmt", &["--version"]),
        min: None,
        install: Install::Rustup("rustup component add rustfmt"),
        optional: None,
    };
    /// `cargo clippy`.
    Clippy = Spec {
        name: "clippy",
        probe: Probe::Command("cargo", &["clippy", "--version"]),
        min: None,
        install: Install::Rustup("rustup component add clippy"),
        optional: None,
    };
    /// Debian's rustc, for `-Zbuild-std` (shared/toolchain.md).
    DebianRustc = Spec {
        name: "/usr/bin/rustc (build-std)",
        probe: Probe::Command("/usr/bin/rustc", &["--version"]),
        min: Some(RUST_VERSION),
        install: Install::Debian(&["rustc-web"], None),
        optional: None,
    };
    /// Debian's cargo (the rustup one must not drive `-Zbuild-std` here).
    DebianCargo = Spec {
        name: "/usr/bin/cargo (build-std)",
        probe: Probe::Command("/usr/bin/cargo", &["--version"]),
        min: Some(RUST_VERSION),
        install: Install::Debian(&["cargo-web"], None),
        optional: None,
    };
    /// The standard library sources `-Zbuild-std` compiles.
    RustSrc = Spec {
        name: "rust std sources",
        probe: Probe::Path("/usr/lib/rustlib/src/rust/library"),
        min: Some(RUST_VERSION),
        install: Install::Debian(&["rust-web-src"], None),
        optional: None,
    };
    /// The bare-metal linker (Debian's rustc has none).
    RustLld = Spec {
        name: "rust-lld",
        probe: Probe::RustLld,
        min: None,
        install: Install::Rustup("ships with the rustup toolchain (lib/rustlib/<host>/bin)"),
        optional: None,
    };
    /// Linker for aarch64 Linux.
    Aarch64Gcc = Spec {
        name: "aarch64-linux-gnu-gcc",
        probe: Probe::Command("aarch64-linux-gnu-gcc", &["--version"]),
        min: None,
        install: Install::Debian(&["gcc-aarch64-linux-gnu"], None),
        optional: None,
    };
    /// glibc for aarch64 (link time and qemu-user's `-L`).
    Aarch64Libc = Spec {
        name: "aarch64 glibc (cross)",
        probe: Probe::Path("/usr/aarch64-linux-gnu/lib/libc.so"),
        min: None,
        install: Install::Debian(&["libc6-dev-arm64-cross"], None),
        optional: None,
    };
    /// Linker for riscv64 Linux.
    Riscv64Gcc = Spec {
        name: "riscv64-linux-gnu-gcc",
        probe: Probe::Command("riscv64-linux-gnu-gcc", &["--version"]),
        min: None,
        install: Install::Debian(&["gcc-riscv64-linux-gnu"], None),
        optional: None,
    };
    /// glibc for riscv64.
    Riscv64Libc = Spec {
        name: "riscv64 glibc (cross)",
        probe: Probe::Path("/usr/riscv64-linux-gnu/lib/libc.so"),
        min: None,
        install: Install::Debian(&["libc6-dev-riscv64-cross"], None),
        optional: None,
    };
    /// `-cpu max` with dotprod needs qemu 8 or later.
    QemuAarch64 = Spec {
        name: "qemu-aarch64",
        probe: Probe::Command("qemu-aarch64", &["--version"]),
        min: Some("8.0"),
        install: Install::Debian(&["qemu-user"], Some(BACKPORTS)),
        optional: None,
    };
    /// RVV 1.0 with `vlen=` needs qemu 8 or later.
    QemuRiscv64 = Spec {
        name: "qemu-riscv64",
        probe: Probe::Command("qemu-riscv64", &["--version"]),
        min: Some("8.0"),
        install: Install::Debian(&["qemu-user"], Some(BACKPORTS)),
        optional: None,
    };
    /// mps2-an386 (Cortex-M4F). Bookworm's 7.2 conflicts with the machine's backports
    /// qemu-utils: backports only.
    QemuSystemArm = Spec {
        name: "qemu-system-arm",
        probe: Probe::Command("qemu-system-arm", &["--version"]),
        min: Some("8.0"),
        install: Install::Debian(&["qemu-system-arm"], Some(BACKPORTS)),
        optional: None,
    };
    /// `virt` with a Cortex-A53 (Debian's qemu-system-arm package has it).
    QemuSystemAarch64 = Spec {
        name: "qemu-system-aarch64",
        probe: Probe::Command("qemu-system-aarch64", &["--version"]),
        min: Some("8.0"),
        install: Install::Debian(&["qemu-system-arm"], Some(BACKPORTS)),
        optional: None,
    };
    /// `virt` rv64 with RVV 1.0.
    QemuSystemRiscv64 = Spec {
        name: "qemu-system-riscv64",
        probe: Probe::Command("qemu-system-riscv64", &["--version"]),
        min: Some("8.0"),
        install: Install::Debian(&["qemu-system-misc"], Some(BACKPORTS)),
        optional: None,
    };
    /// Host disassembler (asm-report's AVX2 row).
    Objdump = Spec {
        name: "objdump",
        probe: Probe::Command("objdump", &["--version"]),
        min: None,
        install: Install::Debian(&["binutils"], None),
        optional: None,
    };
    /// aarch64 disassembler (asm-report).
    Aarch64Objdump = Spec {
        name: "aarch64-linux-gnu-objdump",
        probe: Probe::Command("aarch64-linux-gnu-objdump", &["--version"]),
        min: None,
        install: Install::Debian(&["binutils-aarch64-linux-gnu"], None),
        optional: None,
    };
    /// riscv64 disassembler and objcopy (asm-report).
    Riscv64Objdump = Spec {
        name: "riscv64-linux-gnu-objdump",
        probe: Probe::Command("riscv64-linux-gnu-objdump", &["--version"]),
        min: None,
        install: Install::Debian(&["binutils-riscv64-linux-gnu"], None),
        optional: None,
    };
    /// Arm disassembler (asm-report's Cortex-M rows: DSP and Helium).
    ArmObjdump = Spec {
        name: "arm-none-eabi-objdump",
        probe: Probe::Command("arm-none-eabi-objdump", &["--version"]),
        min: None,
        install: Install::Debian(&["binutils-arm-none-eabi"], None),
        optional: None,
    };
    /// Unpacks wheels (`python3 -m zipfile`).
    Python3 = Spec {
        name: "python3",
        probe: Probe::Command("python3", &["--version"]),
        min: None,
        install: Install::Debian(&["python3"], None),
        optional: None,
    };
    /// Downloads PyPI packages.
    Pip = Spec {
        name: "pip",
        probe: Probe::Command("python3", &["-m", "pip", "--version"]),
        min: None,
        install: Install::Debian(&["python3-pip"], None),
        optional: None,
    };
    /// Virtual environments (`python3 -m venv`) for the Python peers of `bench-peers`.
    Venv = Spec {
        name: "python3 venv",
        probe: Probe::Command("python3", &["-m", "venv", "--help"]),
        min: None,
        install: Install::Debian(&["python3-venv"], None),
        optional: None,
    };
    /// Downloads npm packages.
    Npm = Spec {
        name: "npm",
        probe: Probe::Command("npm", &["--version"]),
        min: None,
        install: Install::Debian(&["npm"], None),
        optional: None,
    };
    /// Unpacks source archives.
    Tar = Spec {
        name: "tar",
        probe: Probe::Command("tar", &["--version"]),
        min: None,
        install: Install::Debian(&["tar"], None),
        optional: None,
    };
    /// Bounds the firmware runs under qemu.
    Timeout = Spec {
        name: "timeout",
        probe: Probe::Command("timeout", &["--version"]),
        min: None,
        install: Install::Debian(&["coreutils"], None),
        optional: None,
    };
    /// Host C compiler (C programs against the C ABI).
    Cc = Spec {
        name: "cc",
        probe: Probe::Command("cc", &["--version"]),
        min: None,
        install: Install::Debian(&["gcc"], None),
        optional: None,
    };
    /// Host C++ compiler (the C header compiled as C++11).
    Cxx = Spec {
        name: "c++",
        probe: Probe::Command("c++", &["--version"]),
        min: None,
        install: Install::Debian(&["g++"], None),
        optional: None,
    };
    /// Builds the C firmware (`targets/cortex-m-c/Makefile`).
    Make = Spec {
        name: "make",
        probe: Probe::Command("make", &["--version"]),
        min: None,
        install: Install::Debian(&["make"], None),
        optional: None,
    };
    /// C firmware compiler (436 MB installed).
    ArmNoneEabiGcc = Spec {
        name: "arm-none-eabi-gcc",
        probe: Probe::Command("arm-none-eabi-gcc", &["--version"]),
        min: None,
        install: Install::Debian(&["gcc-arm-none-eabi"], None),
        optional: None,
    };
    /// The C library of the C firmware (369 MB installed, newlib-nano's `nano.specs`
    /// included; its recommended libstdc++-arm-none-eabi-newlib, 1.5 GB, is not needed).
    Newlib = Spec {
        name: "newlib (arm-none-eabi)",
        probe: Probe::Path("/usr/lib/arm-none-eabi/newlib/libc.a"),
        min: None,
        install: Install::Debian(&["libnewlib-arm-none-eabi"], None),
        optional: None,
    };
}

impl Spec {
    /// The command that installs the tool (as root, what [`ensure`] runs), or how to get it.
    pub fn install_command(&self) -> String {
        match &self.install {
            Install::Debian(packages, None) => format!(
                "apt-get install --no-install-recommends {}",
                packages.join(" ")
            ),
            Install::Debian(packages, Some(suite)) => format!(
                "apt-get install --no-install-recommends -t {suite} {}",
                packages.join(" ")
            ),
            Install::Rustup(how) => (*how).to_string(),
        }
    }
}

/// A tool as found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The version numbers read (empty if none could be read).
    pub version: Vec<u32>,
    /// Where it is.
    pub path: PathBuf,
}

/// The state of one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Present and new enough.
    Ok(Found),
    /// Present, older than the minimum.
    TooOld(Found),
    /// Not found.
    Missing,
}

impl State {
    /// Whether the tool can be used.
    pub fn ok(&self) -> bool {
        matches!(self, Self::Ok(_))
    }
}

/// The version numbers in a version line: the first word that starts with a digit and has
/// a dot (a Debian epoch `1:` is skipped): `qemu-aarch64 version 10.0.2 (Debian ...)` ->
/// `[10, 0, 2]`, `aarch64-linux-gnu-gcc (Debian 12.2.0-14) 12.2.0` -> `[12, 2, 0]`.
pub fn parse_version(line: &str) -> Option<Vec<u32>> {
    line.split(|c: char| c.is_whitespace() || c == '(' || c == ',')
        .map(|w| {
            w.split_once(':').map_or(w, |(epoch, rest)| {
                if epoch.chars().all(|c| c.is_ascii_digit()) {
                    rest
                } else {
                    w
                }
            })
        })
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()) && w.contains('.'))
        .map(|w| {
            // Numbers up to the first part with anything after its digits (`0-1` in
            // `3.3.0-1.3+deb12u1` ends the version at 3.3.0).
            let mut out = Vec::new();
            for part in w.split('.') {
                let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
                let Ok(n) = digits.parse() else { break };
                out.push(n);
                if digits.len() < part.len() {
                    break;
                }
            }
            out
        })
}

/// `version >= min`, comparing as many numbers as `min` has (missing ones are 0).
pub fn at_least(version: &[u32], min: &[u32]) -> bool {
    for (i, m) in min.iter().enumerate() {
        let v = version.get(i).copied().unwrap_or(0);
        if v != *m {
            return v > *m;
        }
    }
    true
}

/// `[10, 0, 2]` -> `10.0.2`.
pub fn show_version(v: &[u32]) -> String {
    v.iter().map(u32::to_string).collect::<Vec<_>>().join(".")
}

/// Looks the tool up and judges its version.
pub fn check(tool: Tool) -> State {
    let spec = tool.spec();
    let Some(found) = probe(spec) else {
        return State::Missing;
    };
    match spec.min.and_then(parse_version) {
        Some(min) if !at_least(&found.version, &min) => State::TooOld(found),
        _ => State::Ok(found),
    }
}

fn probe(spec: &Spec) -> Option<Found> {
    match spec.probe {
        Probe::Command(program, args) => {
            let line = first_line(Command::new(program).args(args))?;
            Some(Found {
                version: parse_version(&line).unwrap_or_default(),
                path: which(program)?,
            })
        }
        Probe::Path(path) => {
            let path = PathBuf::from(path);
            path.exists().then(|| Found {
                version: match &spec.install {
                    Install::Debian(packages, _) => package_version(packages[0])
                        .and_then(|v| parse_version(&v))
                        .unwrap_or_default(),
                    Install::Rustup(_) => Vec::new(),
                },
                path,
            })
        }
        Probe::RustLld => {
            let lld = rust_lld_dir().ok()?.join("rust-lld");
            let line = first_line(Command::new(&lld).args(["-flavor", "gnu", "--version"]))?;
            Some(Found {
                version: parse_version(&line).unwrap_or_default(),
                path: lld,
            })
        }
    }
}

/// The first non-empty line a successful command prints (stdout, else stderr).
fn first_line(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    let text = if out.stdout.iter().any(|b| !b.is_ascii_whitespace()) {
        out.stdout
    } else {
        out.stderr
    };
    Some(
        String::from_utf8_lossy(&text)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string(),
    )
}

/// The file a program name runs (PATH lookup; a path is returned as it is).
fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The installed version of a Debian package, if any.
pub fn package_version(package: &str) -> Option<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}|${Version}", package])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, version) = s.split_once('|')?;
    status.ends_with(" installed").then(|| version.to_string())
}

/// Makes sure every tool in `tools` is present and new enough, installing the Debian
/// packages of those that are not (when root); prints what it found.
pub fn ensure(tools: &[Tool]) -> Result<()> {
    let bad = |tools: &[Tool]| -> Vec<Tool> {
        tools.iter().copied().filter(|t| !check(*t).ok()).collect()
    };
    let missing = bad(tools);
    if !missing.is_empty() {
        let rustup: Vec<String> = missing
            .iter()
            .filter(|t| matches!(t.spec().install, Install::Rustup(_)))
            .map(|t| describe(*t))
            .collect();
        if !rustup.is_empty() {
            bail!("{}", rustup.join("; "));
        }
        if !is_root() {
            let lines: Vec<String> = missing.iter().map(|t| describe(*t)).collect();
            bail!(
                "missing tools (run this command as root to install them, or install them \
                 yourself):\n  {}",
                lines.join("\n  ")
            );
        }
        apt_install(&missing)?;
        let still = bad(tools);
        if !still.is_empty() {
            let lines: Vec<String> = still.iter().map(|t| describe(*t)).collect();
            bail!(
                "still missing after apt-get install:\n  {}",
                lines.join("\n  ")
            );
        }
    }
    let versions: Vec<String> = tools
        .iter()
        .map(|t| match check(*t) {
            State::Ok(f) => format!("{} {}", t.spec().name, show_version(&f.version)),
            _ => format!("{} ?", t.spec().name),
        })
        .collect();
    eprintln!("==> tools: {}", versions.join(", "));
    Ok(())
}

/// `qemu-system-arm: missing (apt-get install --no-install-recommends -t bookworm-backports
/// qemu-system-arm)`.
fn describe(tool: Tool) -> String {
    let spec = tool.spec();
    let state = match check(tool) {
        State::Ok(f) => show_version(&f.version),
        State::TooOld(f) => format!(
            "{} is older than {}",
            show_version(&f.version),
            spec.min.unwrap_or("?")
        ),
        State::Missing => "missing".to_string(),
    };
    format!("{}: {state} ({})", spec.name, spec.install_command())
}

/// Set once `apt-get update` has run in this process.
static APT_UPDATED: AtomicBool = AtomicBool::new(false);

fn apt(args: &[&str]) -> Result<()> {
    eprintln!("==> apt-get {}", args.join(" "));
    // Another apt-get (another engineer's step) may hold the lock: wait for it.
    let status = Command::new("apt-get")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["-o", "DPkg::Lock::Timeout=600"])
        .args(args)
        .status()
        .context("cannot start apt-get")?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Makes sure apt knows `package` (a download of it needs the package lists, which a fresh
/// machine may not have): runs `apt-get update` once in this process when it does not.
pub fn apt_knows(package: &str) -> Result<()> {
    let known = |p: &str| {
        Command::new("apt-cache")
            .args(["show", p])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !known(package) && !APT_UPDATED.swap(true, Ordering::SeqCst) {
        apt(&["update", "-q"])?;
    }
    Ok(())
}

/// Installs the Debian packages of `tools`, adding bookworm-backports first when a package
/// needs it and apt does not know the suite.
fn apt_install(tools: &[Tool]) -> Result<()> {
    let mut by_suite: Vec<(Option<&str>, Vec<&str>)> = Vec::new();
    for tool in tools {
        if let Install::Debian(packages, suite) = tool.spec().install {
            let i = match by_suite.iter().position(|(s, _)| *s == suite) {
                Some(i) => i,
                None => {
                    by_suite.push((suite, Vec::new()));
                    by_suite.len() - 1
                }
            };
            for p in packages {
                if !by_suite[i].1.contains(p) {
                    by_suite[i].1.push(p);
                }
            }
        }
    }
    if !APT_UPDATED.swap(true, Ordering::SeqCst) {
        apt(&["update", "-q"])?;
    }
    if by_suite.iter().any(|(s, _)| *s == Some(BACKPORTS)) {
        let policy = output(Command::new("apt-cache").arg("policy"))?;
        if !String::from_utf8_lossy(&policy.stdout).contains(BACKPORTS) {
            let mirror = debian_mirror().context("no Debian mirror in /etc/apt sources")?;
            let list = "/etc/apt/sources.list.d/bookworm-backports.list";
            std::fs::write(list, format!("deb {mirror} {BACKPORTS} main\n"))
                .with_context(|| format!("writing {list}"))?;
            eprintln!("==> added {BACKPORTS} from {mirror} ({list})");
            apt(&["update", "-q"])?;
        }
    }
    for (suite, packages) in &by_suite {
        apt(&install_args(*suite, packages))?;
    }
    Ok(())
}

/// The `apt-get` arguments that install `packages` from `suite` (the default one if
/// `None`), without their recommends.
fn install_args<'a>(suite: Option<&'a str>, packages: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    if let Some(s) = suite {
        args.extend(["-t", s]);
    }
    args.extend(packages.iter().copied());
    args
}

/// The Debian mirror named by an active (uncommented) entry of the apt sources: a `URIs:`
/// field of a deb822 `.sources` file or a `deb` line, ending in `/debian`.
fn debian_mirror() -> Option<String> {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|text| mirror_in(&text))
}

/// The first `http(s)://.../debian` URI of an active entry in an apt sources text.
fn mirror_in(text: &str) -> Option<String> {
    for line in text.lines().map(str::trim) {
        // Commented lines match neither prefix; options like `[signed-by=...]` are
        // skipped by the `http` test below.
        let uris = line
            .strip_prefix("URIs:")
            .or_else(|| line.strip_prefix("deb "));
        for uri in uris.unwrap_or("").split_whitespace() {
            let uri = uri.trim_end_matches('/');
            if uri.starts_with("http") && uri.ends_with("/debian") {
                return Some(uri.to_string());
            }
        }
    }
    None
}

/// The directory holding `rust-lld`: the rustup toolchain's (Debian's rustc has none).
pub fn rust_lld_dir() -> Result<PathBuf> {
    let host = "lib/rustlib/x86_64-unknown-linux-gnu/bin";
    let mut candidates = Vec::new();
    for args in [
        &["+stable", "--print", "sysroot"][..],
        &["--print", "sysroot"],
    ] {
        if let Ok(o) = Command::new("rustc")
            .env_remove("RUSTC")
            .args(args)
            .output()
            && o.status.success()
        {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join(host));
        }
    }
    if let Some(home) = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))
        && let Ok(dir) = std::fs::read_dir(home.join("toolchains"))
    {
        candidates.extend(dir.filter_map(|e| e.ok()).map(|e| e.path().join(host)));
    }
    candidates
        .into_iter()
        .find(|d| d.join("rust-lld").exists())
        .context("no rust-lld found (the rustup toolchain ships it; see shared/toolchain.md)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_real_version_lines() {
        let cases: [(&str, &[u32]); 12] = [
            ("3.3.0-1.3+deb12u1", &[3, 3, 0]),
            (
                "arm-none-eabi-gcc (15:12.2.rel1-1+23) 12.2.1 20221205",
                &[12, 2],
            ),
            (
                "rustc 1.96.0 (17067e9ac 2026-05-25) (built from a source tarball)",
                &[1, 96, 0],
            ),
            ("cargo 1.95.0 (f2d3ce0bd 2026-03-21)", &[1, 95, 0]),
            (
                "qemu-aarch64 version 10.0.2 (Debian 1:10.0.2+ds-2+deb13u1~bpo12+1)",
                &[10, 0, 2],
            ),
            (
                "aarch64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0",
                &[12, 2, 0],
            ),
            ("GNU objdump (GNU Binutils for Debian) 2.40", &[2, 40]),
            ("Python 3.11.7", &[3, 11, 7]),
            (
                "pip 23.2.1 from /root/.pyenv/versions/3.11.7/lib (python 3.11)",
                &[23, 2, 1],
            ),
            ("LLD 20.1.8 (compatible with GNU linkers)", &[20, 1, 8]),
            ("1:10.0.2+ds-2+deb13u1~bpo12+1", &[10, 0, 2]),
            ("11.19.1", &[11, 19, 1]),
        ];
        for (line, want) in cases {
            assert_eq!(parse_version(line).as_deref(), Some(want), "{line}");
        }
        assert_eq!(parse_version("no version here"), None);
    }

    #[test]
    fn minimum_versions() {
        assert!(at_least(&[10, 0, 2], &[8, 0]));
        assert!(at_least(&[8, 0, 0], &[8, 0]));
        assert!(!at_least(&[7, 2, 9], &[8, 0]));
        assert!(at_least(&[1, 96, 0], &[1, 95]));
        assert!(!at_least(&[1, 94, 1], &[1, 95]));
        assert!(!at_least(&[], &[1]));
        assert!(at_least(&[], &[]));
    }

    #[test]
    fn apt_installs_without_recommends() {
        assert_eq!(
            install_args(None, &["gcc-arm-none-eabi", "libnewlib-arm-none-eabi"]),
            [
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "gcc-arm-none-eabi",
                "libnewlib-arm-none-eabi"
            ]
        );
        assert_eq!(
            install_args(Some(BACKPORTS), &["qemu-system-arm"]),
            [
                "install",
                "-y",
                "-q",
                "--no-install-recommends",
                "-t",
                "bookworm-backports",
                "qemu-system-arm"
            ]
        );
    }

    #[test]
    fn install_commands() {
        assert_eq!(
            Tool::QemuSystemArm.spec().install_command(),
            "apt-get install --no-install-recommends -t bookworm-backports qemu-system-arm"
        );
        assert_eq!(
            Tool::DebianRustc.spec().install_command(),
            "apt-get install --no-install-recommends rustc-web"
        );
        assert_eq!(
            Tool::Rustfmt.spec().install_command(),
            "rustup component add rustfmt"
        );
    }

    /// Every tool has a name of its own, and every minimum version parses.
    #[test]
    fn table_is_consistent() {
        let mut names: Vec<&str> = Tool::ALL.iter().map(|t| t.spec().name).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "duplicate tool names");
        for t in Tool::ALL {
            if let Some(min) = t.spec().min {
                assert!(
                    parse_version(min).is_some_and(|v| !v.is_empty()),
                    "{t:?}: {min}"
                );
            }
        }
        assert_eq!(parse_version(RUST_VERSION), Some(vec![1, 95]));
    }

    #[test]
    fn mirror_from_apt_sources() {
        let deb822 = "Types: deb\nURIs: http://deb.example.org/debian\nSuites: bookworm\n";
        assert_eq!(
            mirror_in(deb822).as_deref(),
            Some("http://deb.example.org/debian")
        );
        let list = "# deb http://old.example.org/debian bookworm main\n\
                    deb [signed-by=/k.gpg] https://m.example.org/debian/ bookworm main\n";
        assert_eq!(
            mirror_in(list).as_deref(),
            Some("https://m.example.org/debian")
        );
        assert_eq!(
            mirror_in("deb http://security.example.org/debian-security x main"),
            None
        );
    }
}
