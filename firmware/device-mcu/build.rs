//! Puts memory.x where cortex-m-rt's link.x finds it, and copies the
//! build-time provisioning (the stand-in for provisioning in flash) into
//! OUT_DIR: the files of the folder `DEVICE_MCU_PROVISION` names — ca.der,
//! client.der, client.key.der (PKCS#8), seed.bin (32 bytes) — or empty files
//! when it is unset (the bring-up image, which makes no TLS connection).
use std::{env, fs, path::PathBuf};

const FILES: [&str; 4] = ["ca.der", "client.der", "client.key.der", "seed.bin"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("memory.x"), include_bytes!("memory.x"))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    for var in [
        "DEVICE_MCU_IP",
        "DEVICE_MCU_PEER",
        "DEVICE_MCU_PROVISION",
        "DEVICE_MCU_HUB",
        "DEVICE_MCU_HUB_NAME",
        "DEVICE_MCU_SNTP",
        "DEVICE_MCU_TIME_FLOOR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let dest = out.join("provision");
    fs::create_dir_all(&dest)?;
    let source = env::var_os("DEVICE_MCU_PROVISION").map(PathBuf::from);
    for name in FILES {
        let bytes = match &source {
            Some(dir) => {
                let path = dir.join(name);
                println!("cargo:rerun-if-changed={}", path.display());
                fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?
            }
            None => Vec::new(),
        };
        fs::write(dest.join(name), bytes)?;
    }
    Ok(())
}
