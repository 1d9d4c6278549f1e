//! OTA-04's crash: a new image that dies at a fixed point of its boot,
//! before it can reach the hub, so only the bootloader can recover.

use std::path::{Path, PathBuf};

use sacbench_rig::dut::EventName::ConnectionFailed;

use super::test_booted;
use crate::case::{sign, Case, Fail, GUARD};
use crate::cases::support::fail;
use crate::events;

/// OTA-04's new image, for sacbench's native board: the DUT's firmware
/// (with its own fault switches, so a firmware that confirms itself too
/// early is caught) provisioned for a closed port, so it cannot reach the
/// hub; [`crash_test_image`] aborts it (SIGABRT) at its first failed
/// connection (the DUT's `connection_failed` event): a crash at a fixed
/// point of its boot, after everything the firmware does before its first
/// session. The payload is one `exec` (a shell builtin): the bench writes
/// the crash provisioning directory itself.
pub(super) fn crashing_image(case: &Case) -> Result<(Vec<u8>, PathBuf), Fail> {
    let exe = std::fs::canonicalize(case.sacbench_bin.join("device-native"))?;
    let provisioning = case.rig_dir().join("provisioning");
    let crash = case.rig_dir().join("provisioning.crash");
    let mut record =
        sacbench_provisioning::read(&provisioning).map_err(|e| Fail::bench(e.to_string()))?;
    record.device.hub_host = "127.0.0.1".into();
    record.device.mqtt_port = 9;
    record.device.https_port = 9;
    sacbench_provisioning::write(&crash, &record).map_err(|e| Fail::bench(e.to_string()))?;
    let crash = std::fs::canonicalize(&crash)?;
    let quoted = |p: &Path| {
        let text = p.display().to_string();
        if text.contains('\'') {
            return Err(Fail::bench(format!("{text}: a path with a single quote")));
        }
        Ok(format!("'{text}'"))
    };
    // "$@" = app --flash FLASH --provisioning DIR (from the bootloader).
    let script = format!(
        "#!/bin/sh\nexec {} \"$1\" \"$2\" \"$3\" \"$4\" {}\n",
        quoted(&exe)?,
        quoted(&crash)?
    );
    Ok((
        sign(script.as_bytes(), 1, 1, 2, &case.signing_key()?),
        crash,
    ))
}

/// Once the crashing image (provisioned from `crash_dir`) has test-booted
/// and failed a connection, ends its payload with SIGABRT, as a
/// start-up abort would (not SIGSEGV: Rust's runtime handles a SIGSEGV that
/// is not a stack overflow by resetting the handler and returning, so a
/// sent one is swallowed); the line of the failed connection.
pub(super) async fn crash_test_image(case: &Case, crash_dir: &Path) -> Result<String, Fail> {
    test_booted(case, "1.1.0", 3 * GUARD).await?;
    // Its failures so far may already hold the test image's first: then it
    // is crashed at its next (it retries; only its payload is chosen below).
    let skip = case.count_events(ConnectionFailed, events::any).await?;
    let line = case
        .event_after(ConnectionFailed, skip, GUARD, events::any)
        .await?
        .ok_or_else(|| {
            fail(
                "the crashing image to try its (closed) hub port",
                "no connection_failed event after its test boot",
                "device.log",
            )
        })?;
    let board = case
        .rig
        .board_pid()
        .ok_or_else(|| Fail::bench("the board is not running"))?;
    // The bootloader's child running from the crash provisioning: the test
    // image's payload, never a later one.
    let children = std::fs::read_to_string(format!("/proc/{board}/task/{board}/children"))?;
    let crash_arg = crash_dir.as_os_str().as_encoded_bytes();
    let payload = children
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == crash_arg))
        })
        .ok_or_else(|| {
            Fail::bench(format!(
                "the crashing image's payload was gone before the bench could crash it (after: {line})"
            ))
        })?;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(payload),
        nix::sys::signal::Signal::SIGABRT,
    )
    .map_err(|e| Fail::bench(format!("SIGABRT to the payload {payload}: {e}")))?;
    Ok(line)
}
