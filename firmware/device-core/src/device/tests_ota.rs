//! The OTA path of the device machine: download into the secondary slot,
//! verification of what is in flash (each check and its fault bypass),
//! test boot and confirmation. Signed with real keys, time passed in.

use alloc::string::String;
use alloc::vec::Vec;
use alloc::{format, vec};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::machines::url_path;
use super::ota_verify::{verify_image, VerifyRequest};
use super::tests::{boot_state, config, provisioned_region, Bench, T0};
use super::*;
use crate::faults::{Fault, FaultSet};
use crate::image::{sign, KeyType, SignOptions, SigningKey};
use crate::ota::{Job, OtaState, Phase, VerifyFailure};

const URL: &str = "https://hub.sacbench.test/firmware/fw-1.1.0.img";

/// A fresh key per test: what matters is trusted (built in) or not.
fn signing_key() -> SigningKey {
    SigningKey::generate(KeyType::Ed25519)
}

fn image(key: &SigningKey, minor: u8, counter: u32) -> Vec<u8> {
    let opts = SignOptions::versioned(1, minor, counter);
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    sign(&payload, key, &opts).unwrap()
}

fn sha_hex(bytes: &[u8]) -> String {
    crate::keystore::hex(&Sha256::digest(bytes))
}

fn target(img: &[u8], announced_sha: &str) -> Value {
    json!({ "firmware": { "version": "1.1.0", "url": URL, "sha256": announced_sha, "size": img.len() } })
}

fn req(img: &[u8]) -> VerifyRequest {
    VerifyRequest {
        expected_sha256: Sha256::digest(img).into(),
        expected_size: img.len() as u32,
        check_hash: true,
        check_signature: true,
        min_security_counter: Some(2),
        check_image: true,
    }
}

/// A device that trusts `key`, online, with `faults`.
fn online(key: &SigningKey, faults: FaultSet) -> Bench {
    let mut c = config(faults);
    c.image_keys = vec![key.trusted_key()];
    let mut b = Bench::with(
        c,
        boot_state(),
        provisioned_region(),
        None,
        CommandLog::default(),
    );
    b.online();
    b
}

/// Announces `img` (with `announced_sha`) and serves it in two chunks.
fn install(b: &mut Bench, img: &[u8], announced_sha: &str) {
    b.desired_patch(target(img, announced_sha));
    let half = img.len() / 2;
    b.event(Event::DownloadChunk {
        offset: 0,
        data: &img[..half],
    });
    b.event(Event::DownloadChunk {
        offset: half as u64,
        data: &img[half..],
    });
}

fn last_firmware(b: &Bench) -> Value {
    b.reported()
        .into_iter()
        .rev()
        .find_map(|r| r.get("firmware").cloned())
        .unwrap()
}

#[test]
fn a_good_image_is_downloaded_verified_marked_and_the_device_resets() {
    let key = signing_key();
    let img = image(&key, 1, 3);
    let mut b = online(&key, FaultSet::NONE);
    b.trace.clear();
    install(&mut b, &img, &sha_hex(&img));
    assert_eq!(
        b.downloads,
        vec![(String::from("/firmware/fw-1.1.0.img"), 0, false)]
    );
    let erase = b.position("EraseSecondary").unwrap();
    let first_write = b.position("WriteSecondary").unwrap();
    assert!(erase < first_write);
    assert!(b.has_log("OTA: downloading /firmware/fw-1.1.0.img from byte 0"));
    assert_eq!(
        b.logs
            .iter()
            .filter(|l| l.starts_with("OTA: receiving from byte"))
            .count(),
        1,
        "once per (re)start"
    );
    assert!(b.has_log("OTA verification: Ok(())"), "{:?}", b.logs);
    let mark = b.position("MarkTestBoot").unwrap();
    let reset = b.position("Reset").unwrap();
    let disconnect = b.position("Disconnect").unwrap();
    assert!(mark < disconnect && disconnect < reset, "{:?}", b.trace);
    assert!(b.has_log("OTA: resetting into the new image"));
    assert_eq!(last_firmware(&b)["state"], "rebooting");
    let record = OtaRecord::decode(b.ota.as_ref().unwrap()).unwrap();
    assert!(matches!(
        record.job,
        Some(Job {
            phase: Phase::Rebooting,
            ..
        })
    ));
    assert!(b.reset);
}

/// Each check refuses its bad image; its fault alone lets that image through.
#[test]
fn every_check_refuses_and_only_its_fault_bypasses_it() {
    let key = signing_key();
    let other = signing_key();
    let good = image(&key, 1, 3);
    let mut tampered = good.clone();
    tampered[0x200 + 10] ^= 0xff; // a payload byte: the hash TLV no longer matches
    let foreign = image(&other, 1, 3);
    let downgrade = image(&key, 1, 1);
    let cases: [(&str, &[u8], String, Fault, &str); 5] = [
        (
            "announced sha256",
            &good,
            "ab".repeat(32),
            Fault::SkipHash,
            "sha256 mismatch",
        ),
        (
            "image hash TLV",
            &tampered,
            sha_hex(&tampered),
            Fault::SkipHash,
            "sha256 mismatch",
        ),
        (
            "signature",
            &foreign,
            sha_hex(&foreign),
            Fault::SkipSignature,
            "bad signature",
        ),
        (
            "anti-rollback",
            &downgrade,
            sha_hex(&downgrade),
            Fault::AllowDowngrade,
            "security counter 1",
        ),
        // A fault of another check does not bypass this one.
        (
            "signature vs skip-hash",
            &foreign,
            sha_hex(&foreign),
            Fault::SkipHash,
            "bad signature",
        ),
    ];
    for (what, img, sha, fault, reason) in cases {
        let mut b = online(&key, FaultSet::NONE);
        install(&mut b, img, &sha);
        let fw = last_firmware(&b);
        assert_eq!(fw["state"], "rejected", "{what}: {fw}");
        assert!(
            fw["reason"].as_str().unwrap().contains(reason),
            "{what}: {fw}"
        );
        assert!(!b.reset && b.position("MarkTestBoot").is_none(), "{what}");
        let bypassed = what != "signature vs skip-hash";
        let mut b = online(&key, FaultSet::NONE.with(fault));
        install(&mut b, img, &sha);
        assert_eq!(b.reset, bypassed, "{what} with {fault}: {:?}", b.logs);
        assert_eq!(
            last_firmware(&b)["state"],
            if bypassed { "rebooting" } else { "rejected" },
            "{what} with {fault}"
        );
    }
}

#[test]
fn verify_image_checks_size_structure_hash_signature_and_counter() {
    let key = signing_key();
    let keys = [key.trusted_key()];
    let img = image(&key, 1, 3);
    assert_eq!(verify_image(&img, &req(&img), &keys, None), Ok(()));
    // The slot holds more than the image (erased rest): only `size` counts.
    let mut slot = img.clone();
    slot.extend_from_slice(&[0xff; 100]);
    assert_eq!(verify_image(&slot, &req(&img), &keys, None), Ok(()));
    // Announced larger than the image: the size check (hash checks off).
    let mut r = req(&slot);
    r.check_hash = false;
    assert!(matches!(
        verify_image(&slot, &r, &keys, None),
        Err(VerifyFailure::Size { actual, .. }) if actual as usize == img.len()
    ));
    // The slot is shorter than announced.
    let r = req(&img);
    assert!(matches!(
        verify_image(&img[..100], &r, &keys, None),
        Err(VerifyFailure::Size { actual: 100, .. })
    ));
    // Not an MCUboot image at all.
    let junk = vec![0x42u8; 600];
    assert!(matches!(
        verify_image(&junk, &req(&junk), &keys, None),
        Err(VerifyFailure::Malformed(_))
    ));
    // No trusted key: the signature fails; unchecked, it passes.
    assert_eq!(
        verify_image(&img, &req(&img), &[], None),
        Err(VerifyFailure::Signature)
    );
    let mut r = req(&img);
    r.check_signature = false;
    assert_eq!(verify_image(&img, &r, &[], None), Ok(()));
    // Anti-rollback: equal passes, lower fails, unchecked passes.
    let mut r = req(&img);
    r.min_security_counter = Some(3);
    assert_eq!(verify_image(&img, &r, &keys, None), Ok(()));
    r.min_security_counter = Some(4);
    assert_eq!(
        verify_image(&img, &r, &keys, None),
        Err(VerifyFailure::SecurityCounter {
            image: 3,
            minimum: 4
        })
    );
    r.min_security_counter = None;
    assert_eq!(verify_image(&img, &r, &keys, None), Ok(()));
}

#[test]
fn verification_reads_what_is_in_flash_not_what_was_downloaded() {
    let key = signing_key();
    let img = image(&key, 1, 3);
    let mut b = online(&key, FaultSet::NONE);
    b.desired_patch(target(&img, &sha_hex(&img)));
    b.event(Event::DownloadChunk {
        offset: 0,
        data: &img[..100],
    });
    // A flash bit flips under the written bytes.
    b.slot[50] ^= 0x01;
    b.event(Event::DownloadChunk {
        offset: 100,
        data: &img[100..],
    });
    assert_eq!(last_firmware(&b)["state"], "rejected");
    assert!(!b.reset);
}

#[test]
fn fault_ota_over_http_asks_for_a_cleartext_download() {
    let key = signing_key();
    let img = image(&key, 1, 3);
    let mut b = online(&key, FaultSet::NONE.with(Fault::OtaOverHttp));
    b.desired_patch(target(&img, &sha_hex(&img)));
    assert!(b.downloads[0].2, "cleartext");
}

#[test]
fn an_interrupted_download_resumes_at_its_offset_unless_no_resume() {
    let key = signing_key();
    let img = image(&key, 1, 3);
    for (faults, resume_at) in [
        (FaultSet::NONE, 1000u64),
        (FaultSet::NONE.with(Fault::NoResume), 0),
    ] {
        let mut b = online(&key, faults);
        b.desired_patch(target(&img, &sha_hex(&img)));
        b.event(Event::DownloadChunk {
            offset: 0,
            data: &img[..1000],
        });
        b.event(Event::DownloadEnded(Err("link down")));
        b.event(Event::TransportDown {
            reason: "link down",
        });
        b.at(b.now + 750);
        b.online();
        assert_eq!(b.downloads.len(), 2, "{faults:?}");
        assert_eq!(b.downloads[1].1, resume_at, "{faults:?}");
        assert!(b.has_log(&format!(
            "OTA: downloading /firmware/fw-1.1.0.img from byte {resume_at}"
        )));
        let from = resume_at as usize;
        b.event(Event::DownloadChunk {
            offset: resume_at,
            data: &img[from..],
        });
        assert!(b.reset, "{faults:?}: {:?}", b.logs);
    }
}

/// A device booted as a test of `1.1.0`, its record saying it rebooted into it.
fn test_boot(faults: FaultSet) -> Bench {
    let key = signing_key();
    let img = image(&key, 1, 3);
    let record = OtaRecord {
        job: Some(Job {
            target: crate::ota::FirmwareTarget {
                version: "1.1.0".into(),
                url: URL.into(),
                sha256: Sha256::digest(&img).into(),
                size: img.len() as u32,
            },
            phase: Phase::Rebooting,
        }),
        ..OtaRecord::default()
    };
    let mut boot = boot_state();
    boot.version = "1.1.0".into();
    boot.test_boot = true;
    Bench::with(
        config(faults),
        boot,
        provisioned_region(),
        Some(record.encode()),
        CommandLog::default(),
    )
}

#[test]
fn a_test_image_confirms_only_once_it_reached_the_hub() {
    let mut b = test_boot(FaultSet::NONE);
    assert_eq!(b.dev.ota().state(), OtaState::Testing);
    assert!(b.position("ConfirmImage").is_none());
    b.online();
    let confirm = b.position("ConfirmImage").expect("confirmed after SUBACK");
    let suback_logged = b.position("log subscribed").unwrap();
    assert!(suback_logged < confirm);
    assert!(b.has_log("OTA: image confirmed"));
    assert_eq!(last_firmware(&b)["state"], "confirmed");
}

#[test]
fn fault_confirm_at_boot_confirms_before_any_connection() {
    let b = test_boot(FaultSet::NONE.with(Fault::ConfirmAtBoot));
    let confirm = b.position("ConfirmImage").expect("confirmed at power-on");
    assert_eq!(b.connects, 0);
    assert!(confirm < b.trace.len());
    assert_eq!(b.dev.ota().state(), OtaState::Confirmed);
}

#[test]
fn a_test_image_that_never_reaches_the_hub_resets_unconfirmed() {
    let mut b = test_boot(FaultSet::NONE);
    for _ in 0..3 {
        b.timeout();
        b.event(Event::TransportDown { reason: "no hub" });
    }
    b.at(T0 + OtaConfig::default().test_timeout_ms);
    b.timeout();
    assert!(b.reset);
    assert!(b.position("ConfirmImage").is_none());
}

#[test]
fn the_download_path_is_the_urls_path_on_the_provisioned_hub() {
    assert_eq!(
        url_path("https://evil.example/firmware/a.img"),
        "/firmware/a.img"
    );
    assert_eq!(url_path("https://hub"), "/");
    assert_eq!(url_path("/firmware/x"), "/firmware/x");
}

#[path = "tests_ota_more.rs"]
mod more;
