//! Puts the boot stage's memory.x where cortex-m-rt's link.x finds it, and
//! the built-in image key (the public half of the development signing key,
//! `firmware/keys/dev-image-signing-ed25519.pub.pem`) as DER into OUT_DIR.
use std::{env, fs, path::PathBuf};

const KEY: &str = "../../keys/dev-image-signing-ed25519.pub.pem";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("memory.x"), include_bytes!("memory.x"))?;
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed={KEY}");
    let pem = fs::read_to_string(KEY).map_err(|e| format!("{KEY}: {e}"))?;
    let (label, der) =
        pem_rfc7468::decode_vec(pem.trim().as_bytes()).map_err(|e| format!("{KEY}: {e}"))?;
    if label != "PUBLIC KEY" {
        return Err(format!("{KEY}: a {label:?} block, not a PUBLIC KEY").into());
    }
    fs::write(out.join("image-key.der"), der)?;
    Ok(())
}
