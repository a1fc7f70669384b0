//! Running external commands: the cargo that runs xtask, a step with its output on the
//! terminal, a captured run, the executable a cargo build produced, and timed steps with
//! their summary table ([`Steps`], for `ci` and `capi`).
//!
//! Every command starts from [`command`]: under `cargo xtask ci` ([`set_ci`]) it carries
//! `CI=true`, so a test whose input is missing fails instead of skipping
//! (`microbert_tests::require`), whichever step (cargo test, cross, firmware, capi) runs it.

use anyhow::{Context, Result, bail};
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
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

/// Set by [`set_ci`]: the commands of [`command`] run with `CI=true`.
static CI: AtomicBool = AtomicBool::new(false);

/// From now on every command made by [`command`] (so [`cargo`] and
/// [`crate::debian_cargo::DebianCargo`] too) runs with `CI=true` (`cargo xtask ci`).
pub fn set_ci() {
    CI.store(true, Ordering::SeqCst);
}

/// A command for `program`, with `CI=true` once [`set_ci`] was called.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new(program);
    if CI.load(Ordering::SeqCst) {
        cmd.env("CI", "true");
    }
    cmd
}

/// The cargo that runs xtask (so the same toolchain builds everything).
pub fn cargo() -> Command {
    command(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// The `microbert` CLI of CI's workspace test build ([`WORKSPACE_TEST`]): after the test
/// step of `cargo xtask ci` nothing is built.
pub fn host_cli(root: &Path) -> Result<PathBuf> {
    cargo_executable(
        cargo()
            .current_dir(root)
            .args(["test", "--no-run"])
            .args(WORKSPACE_TEST),
        "microbert",
        Kind::Bin,
    )
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

/// Runs the test target `test` of `microbert-tests` in the `test-release` profile with
/// `env` set (a sweep's size), one test at a time when `one_thread` (timed by [`run`]).
pub fn sweep(test: &str, env: &[(&str, &str)], one_thread: bool) -> Result<()> {
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--profile",
        "test-release",
        "-p",
        "microbert-tests",
        "--test",
        test,
        "--",
        "--nocapture",
    ]);
    if one_thread {
        cmd.args(["--test-threads", "1"]);
    }
    cmd.envs(env.iter().copied());
    let vars: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    run(
        &mut cmd,
        &format!(
            "cargo test --profile test-release -p microbert-tests --test {test} -- --nocapture{} ({})",
            if one_thread { " --test-threads 1" } else { "" },
            vars.join(" ")
        ),
    )
}

/// Runs `cmd` and captures its output (the status is the caller's to judge).
pub fn output(cmd: &mut Command) -> Result<Output> {
    cmd.output()
        .with_context(|| format!("cannot start {:?}", cmd.get_program()))
}

/// Runs `cmd` (stdin empty) and captures its output; fails on a non-zero status with the
/// command, its stdout and its stderr.
pub fn checked(cmd: &mut Command) -> Result<Output> {
    let out = output(cmd.stdin(Stdio::null()))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// Runs `cmd` with `input` on stdin (written by a thread, so a large input cannot deadlock
/// against a full stdout pipe); its stdout, or an error with its stderr.
pub fn piped(cmd: &mut Command, input: &str) -> Result<String> {
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
        .map_err(|_| anyhow::anyhow!("the stdin writer of {:?} panicked", cmd.get_program()))??;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
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

/// How a timed step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Passed.
    Ok,
    /// Failed.
    Failed,
    /// Not run: an earlier step failed.
    NotRun,
}

/// The timed steps of one command: each prints its name as it starts and its time as it
/// ends; [`Steps::table`] lists every step with its time and status, and the total.
pub struct Steps {
    /// Prefix of the progress lines (`ci`, `capi`).
    label: &'static str,
    start: Instant,
    rows: Vec<(String, Duration, StepStatus)>,
}

impl Steps {
    /// No steps yet; the total counts from now.
    pub fn new(label: &'static str) -> Self {
        Self {
            label,
            start: Instant::now(),
            rows: Vec::new(),
        }
    }

    /// Runs `f` as the step `name` and records its time and status; its error gets the
    /// step's name as context.
    pub fn run<T>(&mut self, name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
        eprintln!("=== {} step: {name}", self.label);
        let t = Instant::now();
        let result = f();
        let took = t.elapsed();
        let status = match result {
            Ok(_) => StepStatus::Ok,
            Err(_) => StepStatus::Failed,
        };
        eprintln!(
            "=== {} step {name}: {} in {}",
            self.label,
            if status == StepStatus::Ok {
                "ok"
            } else {
                "FAILED"
            },
            clock(took)
        );
        self.rows.push((name.to_string(), took, status));
        result.with_context(|| format!("{} step `{name}` failed", self.label))
    }

    /// Records `name` as not run.
    pub fn not_run(&mut self, name: &str) {
        self.rows
            .push((name.to_string(), Duration::ZERO, StepStatus::NotRun));
    }

    /// The table of every step so far and the total.
    pub fn table(&self) -> String {
        step_table(self.label, &self.rows, self.start.elapsed())
    }
}

/// `83.4 s`, `12 min 05 s`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else {
        let whole = d.as_secs();
        format!("{} min {:02} s", whole / 60, whole % 60)
    }
}

/// The table of [`Steps::table`]: every step with its time and status, and the total.
fn step_table(label: &str, rows: &[(String, Duration, StepStatus)], total: Duration) -> String {
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0).max(5);
    let mut out = format!("\n{:<width$}  {:>12}  status\n", "step", "time");
    for (name, took, status) in rows {
        let (time, status) = match status {
            StepStatus::Ok => (clock(*took), "ok"),
            StepStatus::Failed => (clock(*took), "FAILED"),
            StepStatus::NotRun => ("-".to_string(), "not run"),
        };
        let _ = writeln!(out, "{name:<width$}  {time:>12}  {status}");
    }
    let verdict = if rows.iter().all(|r| r.2 == StepStatus::Ok) {
        "passed"
    } else {
        "FAILED"
    };
    let _ = writeln!(
        out,
        "{:<width$}  {:>12}  {label} {verdict}",
        "total",
        clock(total)
    );
    out
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
    fn step_table_lists_every_step_and_the_total() {
        let rows = [
            (
                "fmt".to_string(),
                Duration::from_millis(1500),
                StepStatus::Ok,
            ),
            (
                "cargo test (test-release)".to_string(),
                Duration::from_secs(725),
                StepStatus::Failed,
            ),
            ("cross".to_string(), Duration::ZERO, StepStatus::NotRun),
        ];
        let table = step_table("ci", &rows, Duration::from_secs(727));
        let want = "\n\
            step                               time  status\n\
            fmt                               1.5 s  ok\n\
            cargo test (test-release)   12 min 05 s  FAILED\n\
            cross                                 -  not run\n\
            total                       12 min 07 s  ci FAILED\n";
        assert_eq!(table, want);
        let ok = step_table("capi", &rows[..1], Duration::from_secs(2));
        assert!(ok.ends_with("total         2.0 s  capi passed\n"), "{ok}");
    }

    #[test]
    fn steps_record_status_and_stop_nothing() {
        let mut steps = Steps::new("test");
        assert_eq!(steps.run("one", || Ok(1)).unwrap(), 1);
        let err = steps.run("two", || -> Result<()> { bail!("boom") });
        assert!(format!("{:#}", err.unwrap_err()).contains("test step `two` failed: boom"));
        steps.not_run("three");
        let status: Vec<StepStatus> = steps.rows.iter().map(|r| r.2).collect();
        assert_eq!(
            status,
            [StepStatus::Ok, StepStatus::Failed, StepStatus::NotRun]
        );
        assert!(steps.table().contains("test FAILED"));
    }

    #[test]
    fn ci_mode_sets_ci_on_every_command() {
        // (DebianCargo's commands: debian_cargo.rs's tests.)
        set_ci();
        let ci = |cmd: &Command| {
            cmd.get_envs()
                .find(|(k, _)| *k == "CI")
                .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()))
        };
        assert_eq!(ci(&command("true")).as_deref(), Some("true"));
        assert_eq!(ci(&cargo()).as_deref(), Some("true"));
    }

    #[test]
    fn piped_and_checked_report_failures() {
        let out = piped(Command::new("cat").arg("-"), "a\nb\n").unwrap();
        assert_eq!(out, "a\nb\n");
        let big = "x".repeat(1 << 20);
        assert_eq!(
            piped(&mut Command::new("cat"), &big).unwrap().len(),
            1 << 20
        );
        let err = checked(Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]));
        let text = format!("{:#}", err.unwrap_err());
        assert!(text.contains("out") && text.contains("err"), "{text}");
        assert!(piped(Command::new("sh").args(["-c", "exit 1"]), "").is_err());
    }

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
