//! Puts memory.x where cortex-m-rt's link.x finds it. (Provisioning is read
//! at run time from the provisioning region: src/provision.rs.)
//!
//! And turns the image's fault features (`--features listen-debug,…`,
//! named as device-core's catalogue names them, `src/faults.rs`) into the
//! list the image reads, `DEVICE_MCU_FAULT_LIST`.
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
    // The former interface: say what replaced it rather than ignore it.
    if env::var_os("DEVICE_MCU_FAULTS").is_some_and(|v| !v.is_empty()) {
        return Err("DEVICE_MCU_FAULTS is gone: build with cargo features, e.g. --features listen-debug,no-dedupe".into());
    }
    let on = APPLIED.iter().filter(|f| {
        let var = format!("CARGO_FEATURE_{}", f.name().to_uppercase().replace('-', "_"));
        env::var_os(var).is_some()
    });
    let set = FaultSet::from_names(on.map(|f| f.name()))
        .map_err(|unknown| format!("{unknown:?} is not a fault of device-core's catalogue"))?;
    let checked: Vec<&str> = set.iter().map(|f| f.name()).collect();
    println!(
        "cargo:rustc-env=DEVICE_MCU_FAULT_LIST={}",
        checked.join(",")
    );
    Ok(())
}
