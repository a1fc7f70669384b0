//! Test inputs that may be missing: where the prepared ones live ([`cache_dir`]) and the one
//! rule for a missing one ([`require`]).
//!
//! The rule: under CI ([`in_ci`]: `CI` set to anything but empty, `0` or `false`) a
//! missing input is a test **failure** whose message names the command that prepares it
//! (`cargo xtask prepare`, `cargo xtask cross`, ...); outside CI the test prints one line
//! saying what it skipped and returns. No test passes by skipping under CI.
//!
//! ```ignore
//! let Some(bytes) = require(std::fs::read(&path), path.display(), "cargo xtask prepare") else {
//!     return;
//! };
//! ```
//!
//! This file uses nothing but `std`: `targets/shared-tests/minilm_end_to_end.rs` includes it
//! with `#[path]`, because the backend crates it is compiled into (`targets/cortex-a`,
//! `targets/riscv`, cross-built with `-Zbuild-std` for `cargo xtask cross`) do not depend on
//! `microbert-tests` and its std-only dependencies.

use core::fmt::Display;
use std::ffi::OsStr;
use std::path::PathBuf;

/// The cache directory: `$MICROBERT_CACHE`, else `$XDG_CACHE_HOME/microbert`, else
/// `$HOME/.cache/microbert` (else `./.cache/microbert`).
pub fn cache_dir() -> PathBuf {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(dir) = var("MICROBERT_CACHE") {
        return dir;
    }
    if let Some(dir) = var("XDG_CACHE_HOME") {
        return dir.join("microbert");
    }
    var("HOME")
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".cache")
        .join("microbert")
}

/// Whether the tests run under CI: the `CI` variable is set to anything but empty, `0` or
/// `false` (any case).
pub fn in_ci() -> bool {
    ci_value_means_ci(std::env::var_os("CI").as_deref())
}

/// [`in_ci`] for a given value of `CI`.
pub fn ci_value_means_ci(value: Option<&OsStr>) -> bool {
    let Some(value) = value else {
        return false;
    };
    let value = value.to_string_lossy();
    let value = value.trim();
    !(value.is_empty() || value == "0" || value.eq_ignore_ascii_case("false"))
}

/// `Some(value)` when the input is there. When it is missing (`Err`): under CI, panics
/// with "`what`: `error`; run `prepare`"; outside CI, prints one line saying which test
/// skipped what and why, and returns `None` (the caller returns).
#[track_caller]
pub fn require<T, E: Display>(input: Result<T, E>, what: impl Display, prepare: &str) -> Option<T> {
    require_in(in_ci(), input, what, prepare)
}

/// [`require`] with the CI decision given.
#[track_caller]
pub fn require_in<T, E: Display>(
    ci: bool,
    input: Result<T, E>,
    what: impl Display,
    prepare: &str,
) -> Option<T> {
    let error = match input {
        Ok(value) => return Some(value),
        Err(e) => e,
    };
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    if ci {
        panic!("{what}: {error}; run `{prepare}` (CI is set: a missing input fails the test)");
    }
    println!("skipped {test}: {what}: {error}; run `{prepare}` to run it (CI unset)");
    None
}
