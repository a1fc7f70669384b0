//! `cargo xtask doctor`: one line per external tool the project uses ([`crate::toolchain`]):
//! its version (or `missing`), whether it is usable, and the command that installs it; then
//! the CPU model and the x86 SIMD features the kernels are selected by. Exits non-zero when a
//! required tool is missing or too old. It installs nothing (every step installs what it
//! needs: run the step, as root).

use crate::toolchain::{State, Tool, check, show_version};
use anyhow::{Result, bail};
use core::fmt::Write as _;

/// The x86 SIMD features (Linux `/proc/cpuinfo` flag names) that select kernel tiers.
const SIMD: [&str; 5] = ["avx2", "avx_vnni", "avx512f", "avx512_vnni", "amx_int8"];

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Tool name.
    pub tool: String,
    /// Version, or `missing`.
    pub version: String,
    /// `ok`, `MISSING`, `TOO OLD (< 8.0)`, `optional` (missing, not counted).
    pub status: String,
    /// What installs it.
    pub install: String,
    /// Where it was found.
    pub path: String,
    /// Whether the row makes `doctor` fail.
    pub fails: bool,
}

/// The row of one tool on this machine.
fn row(tool: Tool) -> Row {
    let spec = tool.spec();
    let (version, path, status, fails) = match check(tool) {
        State::Ok(f) => (
            version_text(&f.version),
            f.path.display().to_string(),
            "ok".to_string(),
            false,
        ),
        State::TooOld(f) => (
            version_text(&f.version),
            f.path.display().to_string(),
            format!("TOO OLD (< {})", spec.min.unwrap_or("?")),
            spec.optional.is_none(),
        ),
        State::Missing => match spec.optional {
            Some(_) => ("missing".into(), String::new(), "optional".into(), false),
            None => ("missing".into(), String::new(), "MISSING".into(), true),
        },
    };
    Row {
        tool: spec.name.to_string(),
        version,
        status,
        install: spec.install_command(),
        path,
        fails,
    }
}

fn version_text(v: &[u32]) -> String {
    if v.is_empty() {
        "present".to_string()
    } else {
        show_version(v)
    }
}

/// The table: a header, then one aligned line per row.
pub fn format_table(rows: &[Row]) -> String {
    let w = |f: fn(&Row) -> &str, title: &str| {
        rows.iter()
            .map(|r| f(r).len())
            .max()
            .unwrap_or(0)
            .max(title.len())
    };
    let (wt, wv, ws, wi) = (
        w(|r| &r.tool, "tool"),
        w(|r| &r.version, "version"),
        w(|r| &r.status, "status"),
        w(|r| &r.install, "install (as root)"),
    );
    let mut out = String::new();
    let mut line = |a: &str, b: &str, c: &str, d: &str, e: &str| {
        let l = format!("{a:<wt$}  {b:<wv$}  {c:<ws$}  {d:<wi$}  {e}");
        let _ = writeln!(out, "{}", l.trim_end());
    };
    line("tool", "version", "status", "install (as root)", "path");
    for r in rows {
        line(&r.tool, &r.version, &r.status, &r.install, &r.path);
    }
    out
}

/// `model name` and the listed SIMD flags of a `/proc/cpuinfo` text.
pub fn cpu_summary(cpuinfo: &str) -> (String, Vec<(&'static str, bool)>) {
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == key).then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    let model = field("model name");
    let flags = field("flags");
    let have: Vec<&str> = flags.split_whitespace().collect();
    (
        if model.is_empty() {
            "unknown".into()
        } else {
            model
        },
        SIMD.iter().map(|f| (*f, have.contains(f))).collect(),
    )
}

/// `cargo xtask doctor`.
pub fn doctor() -> Result<()> {
    let rows: Vec<Row> = Tool::ALL.iter().map(|t| row(*t)).collect();
    print!("{}", format_table(&rows));
    for t in Tool::ALL {
        if let (Some(why), false) = (t.spec().optional, check(*t).ok()) {
            println!(
                "optional: {} is needed by {why}; not counted",
                t.spec().name
            );
        }
    }
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let (model, simd) = cpu_summary(&cpuinfo);
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    println!("\ncpu: {model} ({cores} cores available)");
    let simd: Vec<String> = simd
        .iter()
        .map(|(f, has)| format!("{f} {}", if *has { "yes" } else { "no" }))
        .collect();
    println!("x86 SIMD: {}", simd.join(", "));
    let failing: Vec<&str> = rows
        .iter()
        .filter(|r| r.fails)
        .map(|r| r.tool.as_str())
        .collect();
    if !failing.is_empty() {
        bail!(
            "{} tool(s) missing or too old: {} (the xtask step that needs a tool installs it \
             when run as root)",
            failing.len(),
            failing.join(", ")
        );
    }
    println!("all required tools present");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(tool: &str, version: &str, status: &str, install: &str, path: &str) -> Row {
        Row {
            tool: tool.into(),
            version: version.into(),
            status: status.into(),
            install: install.into(),
            path: path.into(),
            fails: status != "ok",
        }
    }

    #[test]
    fn table_is_aligned() {
        let rows = [
            r("cargo", "1.95.0", "ok", "rustup", "/c/cargo"),
            r(
                "qemu-system-arm",
                "missing",
                "MISSING",
                "apt-get install -t bookworm-backports qemu-system-arm",
                "",
            ),
        ];
        let want = "\
tool             version  status   install (as root)                                      path
cargo            1.95.0   ok       rustup                                                 /c/cargo
qemu-system-arm  missing  MISSING  apt-get install -t bookworm-backports qemu-system-arm
";
        assert_eq!(format_table(&rows), want);
    }

    #[test]
    fn cpu_model_and_simd_flags() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 9B14\nflags\t\t: fpu sse2 avx2 \
                    avx512f avx512_vnni\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 9B14\n";
        let (model, simd) = cpu_summary(text);
        assert_eq!(model, "AMD EPYC 9B14");
        assert_eq!(
            simd,
            vec![
                ("avx2", true),
                ("avx_vnni", false),
                ("avx512f", true),
                ("avx512_vnni", true),
                ("amx_int8", false)
            ]
        );
        assert_eq!(cpu_summary("").0, "unknown");
    }

    /// Every tool of the table gets a row, and an optional missing tool does not fail.
    #[test]
    fn rows_for_every_tool() {
        let rows: Vec<Row> = Tool::ALL.iter().map(|t| row(*t)).collect();
        assert_eq!(rows.len(), Tool::ALL.len());
        for (t, row) in Tool::ALL.iter().zip(&rows) {
            if t.spec().optional.is_some() {
                assert!(!row.fails, "{row:?}");
            }
            assert!(!row.install.is_empty());
        }
    }
}
