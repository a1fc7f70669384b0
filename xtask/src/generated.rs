//! Generated files committed to git (`gen-tables`, `gen-unicode`, `gen-header`): written
//! from what the generator makes now, or with `--check` compared with it (CI fails on a
//! stale file).

use anyhow::{Context, Result, bail};
use std::path::Path;

/// Writes `want` to `root/path` when it differs, or with `check` fails instead, naming
/// `command` (`cargo xtask gen-...`) that rewrites it.
pub fn write_or_check(
    root: &Path,
    path: &str,
    want: &str,
    command: &str,
    check: bool,
) -> Result<()> {
    let full = root.join(path);
    let have = std::fs::read_to_string(&full).unwrap_or_default();
    if have == want {
        println!("{path} is up to date");
        return Ok(());
    }
    if check {
        bail!("{path} is stale: run `{command}` and commit the result");
    }
    if let Some(dir) = full.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&full, want).with_context(|| format!("writing {}", full.display()))?;
    println!("wrote {path}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_checks_and_reports_stale_files() {
        let root = std::env::temp_dir().join(format!("xtask-generated-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let err = write_or_check(&root, "a/b.txt", "one", "gen", true).unwrap_err();
        assert!(
            err.to_string().contains("a/b.txt is stale: run `gen`"),
            "{err}"
        );
        write_or_check(&root, "a/b.txt", "one", "gen", false).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("a/b.txt")).unwrap(),
            "one"
        );
        write_or_check(&root, "a/b.txt", "one", "gen", true).unwrap();
        assert!(write_or_check(&root, "a/b.txt", "two", "gen", true).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
