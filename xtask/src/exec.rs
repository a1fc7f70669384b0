//! Running external commands: the cargo that runs xtask, a step with its output on the
//! terminal, a captured run, and the executable a cargo build produced.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Instant;

/// The flags of CI's workspace build (`cargo clippy`, `cargo test`): one optimised profile
/// for everything that runs models, so later steps reuse what the tests built.
pub const WORKSPACE_TEST: [&str; 5] = [
    "--profile",
    "test-release",
    "--workspace",
    "--features",
    "microbert/test-utils",
];

/// The cargo that runs xtask (so the same toolchain builds everything).
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs `cmd` with its output on the terminal; fails on a non-zero status.
pub fn run(cmd: &mut Command, what: &str) -> Result<()> {
    eprintln!("==> {what}");
    let start = Instant::now();
    let status = cmd
        .status()
        .with_context(|| format!("cannot start: {what}"))?;
    if !status.success() {
        bail!("failed ({status}): {what}");
    }
    eprintln!("    done in {:.1?}", start.elapsed());
    Ok(())
}

/// Runs `cmd` and captures its output (the status is the caller's to judge).
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))
}

/// Runs `cmd` capturing its output and copies it to stderr, indented (standard output is
/// kept for what a command prints last, e.g. a path); fails on a non-zero status.
pub fn run_logged(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("could not start {what}"))?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        eprintln!("  | {line}");
    }
    if !out.status.success() {
        bail!("{what} failed ({})", out.status);
    }
    Ok(())
}

/// Whether this process runs as root (and may install Debian packages).
pub fn is_root() -> bool {
    // The effective uid is the third field of `Uid:` in /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|r| r.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// The kind of a cargo target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `[[bin]]` (not its unit-test harness).
    Bin,
    /// An integration test (`tests/<name>.rs`).
    Test,
}

/// Runs a cargo build command (`build`, `test --no-run`, ...) with `--message-format=json`
/// and returns the executable of the target `name` of this kind.
pub fn cargo_executable(cmd: &mut Command, name: &str, kind: Kind) -> Result<PathBuf> {
    let out = output(cmd.arg("--message-format=json"))?;
    if !out.status.success() {
        bail!(
            "building `{name}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    executable_in(&String::from_utf8_lossy(&out.stdout), name, kind)
        .with_context(|| format!("cargo built no executable `{name}` ({kind:?})"))
}

/// The `executable` of the `compiler-artifact` message for target `name` of `kind` (a
/// library's unit-test harness has the library's name: it is not a `Bin`).
fn executable_in(json_lines: &str, name: &str, kind: Kind) -> Option<PathBuf> {
    let want = match kind {
        Kind::Bin => "bin",
        Kind::Test => "test",
    };
    json_lines
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find_map(|msg| {
            let target = &msg["target"];
            let is_kind = target["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k == want));
            let harness = msg["profile"]["test"] == true;
            (msg["reason"] == "compiler-artifact"
                && target["name"] == name
                && is_kind
                && (kind == Kind::Test || !harness))
                .then(|| msg["executable"].as_str().map(PathBuf::from))
                .flatten()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_named_executable() {
        let lines = concat!(
            r#"{"reason":"compiler-artifact","target":{"name":"serde","kind":["lib"]},"profile":{"test":false},"executable":null}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"microbert","kind":["lib"]},"profile":{"test":true},"executable":"/t/deps/microbert-1"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"microbert","kind":["bin"]},"profile":{"test":true},"executable":"/t/deps/microbert-2"}"#,
            "\n",
            r#"{"reason":"compiler-artifact","target":{"name":"microbert","kind":["bin"]},"profile":{"test":false},"executable":"/t/microbert"}"#,
            "\nnot json\n",
            r#"{"reason":"compiler-artifact","target":{"name":"conformance","kind":["test"]},"profile":{"test":true},"executable":"/t/deps/conformance-3"}"#,
            "\n",
            r#"{"reason":"build-finished","success":true}"#,
        );
        assert_eq!(
            executable_in(lines, "microbert", Kind::Bin),
            Some(PathBuf::from("/t/microbert"))
        );
        assert_eq!(
            executable_in(lines, "conformance", Kind::Test),
            Some(PathBuf::from("/t/deps/conformance-3"))
        );
        assert_eq!(executable_in(lines, "serde", Kind::Bin), None);
        assert_eq!(executable_in(lines, "microbert", Kind::Test), None);
        assert_eq!(executable_in(lines, "other", Kind::Bin), None);
    }
}
