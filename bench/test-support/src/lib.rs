//! What sacbench's tests repeat, in one place: the development image-signing
//! key, images signed with it the way the reference board boots them, and
//! pty pairs standing for serial lines, and the dependency graph that crate
//! boundaries are checked against. For tests only (a dev-dependency):
//! it panics with a message instead of returning errors.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use mcuboot_image::{SignOptions, SigningKey};

pub mod deps;

pub use sacbench_rig::pty::PtyPair;

/// The development image-signing key (Ed25519, PKCS#8 PEM) that the
/// reference device's DUT file names: `firmware/keys/dev-image-signing-ed25519.pem`.
pub fn dev_key_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../firmware/keys/dev-image-signing-ed25519.pem")
}

/// The development image-signing key, loaded.
pub fn dev_key() -> SigningKey {
    let path = dev_key_path();
    let pem = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("the development key {}: {e}", path.display()));
    SigningKey::from_pkcs8_pem(&pem)
        .unwrap_or_else(|e| panic!("the development key {}: {e:?}", path.display()))
}

/// `payload` signed with the development key as version `major.minor.0`,
/// security counter `counter`, with the 0x200-byte header the native board's
/// bootloader expects.
pub fn sign_dev(payload: &[u8], major: u8, minor: u8, counter: u32) -> Vec<u8> {
    let opts = SignOptions::versioned(major, minor, counter);
    mcuboot_image::sign(payload, &dev_key(), &opts).expect("the payload fits an image")
}

/// The executable at `payload` signed as v1.0.0 (counter 1) and written to
/// `dir/v1.img`: the image every reference-board test starts from. Its path.
pub fn write_v1_image(payload: &Path, dir: &Path) -> PathBuf {
    let bytes =
        std::fs::read(payload).unwrap_or_else(|e| panic!("the payload {}: {e}", payload.display()));
    let path = dir.join("v1.img");
    std::fs::write(&path, sign_dev(&bytes, 1, 0, 1))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

/// A serial line between two programs: a pty pair linked at `dir/a-name`
/// and `dir/b-name` (see [`PtyPair`]).
pub fn serial_line(dir: &Path, a: &str, b: &str) -> PtyPair {
    PtyPair::link(&dir.join(a), &dir.join(b)).expect("a pty pair")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dev_signed_image_verifies_with_the_dev_key_and_carries_its_version() {
        let image = sign_dev(b"payload", 1, 2, 3);
        let parsed = mcuboot_image::parse(&image).expect("parses");
        assert_eq!(parsed.payload(), b"payload");
        assert_eq!((parsed.version().major, parsed.version().minor), (1, 2));
    }
}
