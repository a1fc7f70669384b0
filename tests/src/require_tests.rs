//! Tests of [`crate::require`], kept out of `require.rs` itself because that file is also
//! compiled into the backend crates' tests (`targets/shared-tests`).

use crate::require::*;
use std::ffi::OsStr;

#[test]
fn ci_values() {
    for (value, ci) in [
        (None, false),
        (Some(""), false),
        (Some("0"), false),
        (Some("false"), false),
        (Some("FALSE"), false),
        (Some(" false "), false),
        (Some("true"), true),
        (Some("1"), true),
        (Some("yes"), true),
        (Some("woodpecker"), true),
    ] {
        assert_eq!(ci_value_means_ci(value.map(OsStr::new)), ci, "CI={value:?}");
    }
}

#[test]
fn present_inputs_pass_through() {
    assert_eq!(require_in(true, Ok::<_, String>(7), "x", "cmd"), Some(7));
    assert_eq!(require_in(false, Ok::<_, String>(7), "x", "cmd"), Some(7));
}

#[test]
fn missing_inputs_skip_outside_ci() {
    let got = require_in(
        false,
        Err::<u8, _>("no such file"),
        "blob",
        "cargo xtask prepare",
    );
    assert_eq!(got, None);
}

#[test]
fn missing_inputs_fail_under_ci_naming_the_command() {
    let panic = std::panic::catch_unwind(|| {
        require_in(
            true,
            Err::<u8, _>("no such file"),
            "minilm.blob",
            "cargo xtask prepare",
        )
    })
    .expect_err("a missing input under CI panics");
    let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        msg.starts_with("minilm.blob: no such file; run `cargo xtask prepare`"),
        "{msg}"
    );
}
