//! Puts memory.x where cortex-m-rt's link.x finds it. (Provisioning is read
//! at run time from the provisioning region: src/provision.rs.)
//!
//! And checks the image's fault switches, `DEVICE_MCU_FAULTS` (a comma-separated
//! list of names from device-core's catalogue, `src/faults.rs`): an unknown
//! name, or a catalogue fault this image does not apply, is a build error
//! naming it; the checked list reaches the image as `DEVICE_MCU_FAULT_LIST`.
use std::{env, fs, path::PathBuf};

use device_core::faults::{Fault, FaultSet};

/// The catalogue faults this image applies (keep in step with src/faults.rs).
const APPLIED: &[Fault] = &[Fault::ListenDebug, Fault::NoServerVerify, Fault::NoDedupe];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("memory.x"), include_bytes!("memory.x"))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    for var in [
        "DEVICE_MCU_IP",
        "DEVICE_MCU_PEER",
        "DEVICE_MCU_BACKOFF_BASE_MS",
        "DEVICE_MCU_BACKOFF_STABLE_MS",
        "DEVICE_MCU_FAULTS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let list = env::var("DEVICE_MCU_FAULTS").unwrap_or_default();
    let names = list.split(',').map(str::trim).filter(|n| !n.is_empty());
    let set = FaultSet::from_names(names).map_err(|unknown| {
        format!("DEVICE_MCU_FAULTS: {unknown:?} is not a fault of device-core's catalogue")
    })?;
    if let Some(f) = set.iter().find(|f| !APPLIED.contains(f)) {
        let applied: Vec<&str> = APPLIED.iter().map(|f| f.name()).collect();
        return Err(format!(
            "DEVICE_MCU_FAULTS: {:?} is in device-core's catalogue but this image does not apply it (it applies {})",
            f.name(),
            applied.join(", ")
        )
        .into());
    }
    let checked: Vec<&str> = set.iter().map(|f| f.name()).collect();
    println!(
        "cargo:rustc-env=DEVICE_MCU_FAULT_LIST={}",
        checked.join(",")
    );
    Ok(())
}
