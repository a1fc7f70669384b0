//! The one Debian-cargo command set-up for builds with `-Zbuild-std` (shared/toolchain.md):
//! Debian's `/usr/bin/cargo` driving Debian's rustc (which ships the standard library
//! sources), `RUSTC_BOOTSTRAP=1` to unlock the unstable flag, a target directory of its own
//! per configuration (a different `target-feature` rebuilds std), the caller's flags cleared
//! from the environment, and per-target settings through `CARGO_TARGET_<TRIPLE>_*`.
//!
//! The command comes from [`crate::exec::command`] (so it has `CI=true` under `cargo xtask
//! ci`). Used by `no-std`, `cross`, `asm-report`, `firmware` and `capi`; they ask [`crate::toolchain`] for
//! the tools first ([`TOOLS`] plus their own).

use crate::toolchain::Tool;
use anyhow::Result;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The tools every Debian-cargo build needs.
pub const TOOLS: [Tool; 3] = [Tool::DebianCargo, Tool::DebianRustc, Tool::RustSrc];

/// Variables of the calling environment that would leak into the build.
const CLEARED: [&str; 5] = [
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_TARGET",
];

/// A Debian-cargo command being set up.
pub struct DebianCargo {
    cmd: Command,
}

impl DebianCargo {
    /// `/usr/bin/cargo` run in `dir` with its target directory `target_dir`.
    pub fn new(dir: &Path, target_dir: &Path) -> Self {
        let mut cmd = crate::exec::command("/usr/bin/cargo");
        cmd.current_dir(dir)
            .env("RUSTC", "/usr/bin/rustc")
            .env("RUSTDOC", "/usr/bin/rustdoc")
            .env("RUSTC_BOOTSTRAP", "1")
            .env("CARGO_TARGET_DIR", target_dir);
        for var in CLEARED {
            cmd.env_remove(var);
        }
        Self { cmd }
    }

    /// Sets `CARGO_TARGET_<TRIPLE>_<KEY>` (`RUSTFLAGS`, `LINKER`, `RUNNER`). A value set here
    /// replaces the project's `.cargo/config.toml` value for that key.
    pub fn target(mut self, triple: &str, key: &str, value: &str) -> Self {
        self.cmd.env(target_var(triple, key), value);
        self
    }

    /// Puts the rustup toolchain's `rust-lld` first on PATH (bare-metal links).
    pub fn rust_lld(mut self) -> Result<Self> {
        let lld = crate::toolchain::rust_lld_dir()?;
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let path = std::env::join_paths(
            core::iter::once(lld).chain(std::env::split_paths(&rest).collect::<Vec<PathBuf>>()),
        )?;
        self.cmd.env("PATH", path);
        Ok(self)
    }

    /// The command, to add arguments to and run.
    pub fn command(self) -> Command {
        self.cmd
    }
}

/// `CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER` for (`aarch64-unknown-linux-gnu`, `RUNNER`).
pub fn target_var(triple: &str, key: &str) -> String {
    format!(
        "CARGO_TARGET_{}_{key}",
        triple.to_uppercase().replace(['-', '.'], "_")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_variables() {
        assert_eq!(
            target_var("aarch64-unknown-linux-gnu", "RUNNER"),
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER"
        );
        assert_eq!(
            target_var("thumbv7em-none-eabihf", "RUSTFLAGS"),
            "CARGO_TARGET_THUMBV7EM_NONE_EABIHF_RUSTFLAGS"
        );
    }

    #[test]
    fn environment_is_set_and_cleared() {
        let cmd = DebianCargo::new(Path::new("/w"), Path::new("/t"))
            .target(
                "riscv64gc-unknown-linux-gnu",
                "LINKER",
                "riscv64-linux-gnu-gcc",
            )
            .command();
        let envs: Vec<(String, Option<String>)> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        let get = |k: &str| envs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(cmd.get_program(), "/usr/bin/cargo");
        assert_eq!(get("RUSTC"), Some(Some("/usr/bin/rustc".into())));
        assert_eq!(get("RUSTC_BOOTSTRAP"), Some(Some("1".into())));
        assert_eq!(get("CARGO_TARGET_DIR"), Some(Some("/t".into())));
        assert_eq!(get("RUSTFLAGS"), Some(None), "removed");
        assert_eq!(
            get("CARGO_TARGET_RISCV64GC_UNKNOWN_LINUX_GNU_LINKER"),
            Some(Some("riscv64-linux-gnu-gcc".into()))
        );
        assert_eq!(cmd.get_current_dir(), Some(Path::new("/w")));
    }

    /// Under `cargo xtask ci` the builds (and the tests they run) see `CI=true`.
    #[test]
    fn ci_mode_reaches_debian_cargo() {
        crate::exec::set_ci();
        let cmd = DebianCargo::new(Path::new("/w"), Path::new("/t")).command();
        let ci = cmd
            .get_envs()
            .find(|(k, _)| *k == "CI")
            .and_then(|(_, v)| v.map(|v| v.to_string_lossy().into_owned()));
        assert_eq!(ci.as_deref(), Some("true"));
    }
}
