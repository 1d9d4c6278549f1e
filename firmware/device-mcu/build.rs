//! Puts memory.x where cortex-m-rt's link.x finds it. (Provisioning is read
//! at run time from the provisioning region: src/provision.rs.)
use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("memory.x"), include_bytes!("memory.x"))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    for var in [
        "DEVICE_MCU_IP",
        "DEVICE_MCU_PEER",
        "DEVICE_MCU_BACKOFF_BASE_MS",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    Ok(())
}
