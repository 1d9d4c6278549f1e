//! What the QEMU tests (`tls.rs`, `mqtt.rs`, `dns.rs`, `board_boot.rs`)
//! share: the test CA, the clock, one boot at a time, a test's own copy of
//! the image, reading numbers off console lines, mosquitto and the debug
//! port (`broker`).
#![allow(dead_code)] // each test binary uses its own part of it

pub mod broker;

use rcgen::{
    CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;

/// A self-signed CA named `name`, unconstrained.
pub fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// One QEMU boot at a time in this test binary (each keeps a host core
/// busy, and all use the same namespace addresses); a failed test's poison
/// does not stop the next.
pub fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static BOOTS: Mutex<()> = Mutex::new(());
    BOOTS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The image with the fault switches `faults` (none: the correct one),
/// built for the QEMU tests' network (the device at 10.0.17.2/24, the
/// bring-up diagnostic's peer at 10.0.17.1:7700), copied with its boot
/// stage into `dir` as the test's own: another test binary's build
/// replaces the target's.
pub fn own_image(dir: &Path, faults: &[&str]) -> PathBuf {
    let built =
        device_mcu_rig::build_image_with_faults("10.0.17.2/24", "10.0.17.1:7700", faults).unwrap();
    let elf = match faults {
        [] => dir.join("device-mcu.elf"),
        _ => dir.join(format!("device-mcu.faults-{}.elf", faults.join("+"))),
    };
    device_mcu_rig::copy_image(&built, &elf).unwrap();
    elf
}

/// The decimal number right after the first `key` in `line`.
pub fn number_after(line: &str, key: &str) -> u64 {
    let at = line
        .find(key)
        .unwrap_or_else(|| panic!("{key:?} in {line:?}"))
        + key.len();
    line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("a number after {key:?} in {line:?}"))
}

/// A certificate for `names` (subjectAltName) and `common_name`, for
/// `eku`, signed by `issuer`, valid from yesterday for a month.
pub fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: Vec<String>,
    common_name: &str,
    eku: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![eku];
    params.not_before = OffsetDateTime::now_utc() - time::Duration::days(1);
    params.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert, key)
}
