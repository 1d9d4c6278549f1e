//! Shared by the OTA and KR cases: flashing, and sacbench's native board's
//! precise power switch (a signed payload that cuts power at the N-th flash
//! write). Cases that use the switch declare `native_board`.

use std::path::{Path, PathBuf};

use crate::case::{sign, Case, Fail};

/// Writes `image` to the primary slot (the board must be off).
pub(super) async fn flash_primary(case: &mut Case, name: &str, image: &[u8]) -> Result<(), Fail> {
    let path = case.rig_dir().join(name);
    std::fs::write(&path, image)?;
    case.rig.flash(&path).await?;
    Ok(())
}

fn abs(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The reference firmware behind the rig's precise power switch
/// (`SACBENCH_POWER_CUT_AFTER_WRITES`), signed as `major.minor` with
/// `counter`. The rig starts the board with no such variable; this signed
/// payload arms it from files the case writes (each used once):
/// `cut-app` = N: the firmware loses power at its N-th flash write;
/// `cut-boot` = N: a bootloader run from here loses power at its N-th write
/// (its swap). When the payload dies, the board's own bootloader powers on
/// again on the same flash, as after a power loss.
pub(super) fn switched_firmware(
    case: &Case,
    major: u8,
    minor: u8,
    counter: u32,
) -> Result<Vec<u8>, Fail> {
    let d = abs(&case.rig_dir());
    // The native board's own executable (its bootloader and firmware shell).
    let exe = abs(&case.sacbench_bin.join("device-native"));
    let (d, exe) = (d.display(), exe.display());
    // "$@" = app --flash FLASH --provisioning PROV (from the bootloader).
    // Shell builtins only: the board consumes the file itself, at its first
    // flash write (see `POWER_CUT_FROM_FILE_ENV` in device-native's flash
    // layer); a payload started by the armed bootloader (which still has the
    // variable) does not start another one.
    let script = format!(
        "#!/bin/sh\n\
         unset SACBENCH_POWER_CUT_AFTER_WRITES\n\
         if [ -f '{d}/cut-boot' ] && [ -z \"$SACBENCH_POWER_CUT_FROM_FILE\" ]; then\n\
           SACBENCH_POWER_CUT_FROM_FILE='{d}/cut-boot' exec '{exe}' boot --flash \"$3\" --provisioning \"$5\" --run-dir '{d}/run-inner'\n\
         fi\n\
         SACBENCH_POWER_CUT_FROM_FILE='{d}/cut-app' exec '{exe}' \"$@\"\n"
    );
    Ok(sign(
        script.as_bytes(),
        major,
        minor,
        counter,
        &case.signing_key()?,
    ))
}

/// Arms the precise power cut for the next start of [`switched_firmware`].
pub(super) fn arm_cut(case: &Case, which: &str, writes: u64) -> Result<(), Fail> {
    std::fs::write(case.rig_dir().join(which), writes.to_string())?;
    Ok(())
}
