//! Verification decisions of the OTA-13…16 cases: an image cut short, a
//! single byte, an image for another board, an image signed by a key the
//! device knows for something else (TLS); and the fault that lets each in.

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use super::*;
use crate::faults::{Fault, FaultSet};
use crate::image::tlv::TLV_BOARD;
use crate::image::{sign, SignOptions, SigningKey};
use crate::ota::VerifyFailure;

fn board_image(key: &SigningKey, board: Option<&str>) -> Vec<u8> {
    let opts = SignOptions {
        custom_tlvs: board
            .map(|b| vec![(TLV_BOARD, b.as_bytes().to_vec())])
            .unwrap_or_default(),
        ..SignOptions::versioned(1, 1, 3)
    };
    let payload: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    sign(&payload, key, &opts).unwrap()
}

/// A device trusting `firmware` for images and knowing `other` (its TLS
/// anchor's key), on board `test-board`, online, with `faults`.
fn device(firmware: &SigningKey, other: &SigningKey, faults: FaultSet) -> Bench {
    let mut c = config(faults);
    c.image_keys = vec![firmware.trusted_key()];
    c.other_keys = vec![other.trusted_key()];
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

/// Serves `img` as announced (the twin's hash and size are of `img`).
fn offer(b: &mut Bench, img: &[u8]) {
    let sha = crate::keystore::hex(&Sha256::digest(img));
    b.desired_patch(json!({ "firmware": {
        "version": "1.1.0", "url": "https://hub/firmware/x.img", "sha256": sha, "size": img.len() } }));
    b.event(Event::DownloadChunk {
        offset: 0,
        data: img,
    });
}

fn firmware_state(b: &Bench) -> (String, String) {
    let fw = b
        .reported()
        .into_iter()
        .rev()
        .find_map(|r| r.get("firmware").cloned())
        .unwrap();
    let s = |k: &str| String::from(fw[k].as_str().unwrap_or(""));
    (s("state"), s("reason"))
}

use serde_json::json;

/// Each bad image is refused as its own kind, before any reboot; its fault
/// alone installs it.
#[test]
fn truncated_tiny_foreign_board_and_tls_signed_images_are_refused() {
    let firmware = SigningKey::generate(crate::image::KeyType::Ed25519);
    let tls = SigningKey::generate(crate::image::KeyType::EcdsaP256);
    let good = board_image(&firmware, Some("test-board"));
    let truncated = good[..good.len() / 2].to_vec();
    let cases: [(&str, Vec<u8>, &str, Fault); 5] = [
        (
            "truncated",
            truncated,
            "malformed",
            Fault::TrustAnnouncedHash,
        ),
        (
            "one byte",
            good[..1].to_vec(),
            "malformed",
            Fault::TrustAnnouncedHash,
        ),
        (
            "other board",
            board_image(&firmware, Some("other-board")),
            "wrong board",
            Fault::AnyBoard,
        ),
        (
            "TLS key",
            board_image(&tls, Some("test-board")),
            "bad signature",
            Fault::AnyKnownSigner,
        ),
        // A fault of another check does not let it in.
        (
            "TLS key vs any-board",
            board_image(&tls, None),
            "bad signature",
            Fault::AnyBoard,
        ),
    ];
    for (what, img, reason, fault) in cases {
        let mut b = device(&firmware, &tls, FaultSet::NONE);
        offer(&mut b, &img);
        let (state, why) = firmware_state(&b);
        assert_eq!(state, "rejected", "{what}: {why}");
        assert!(why.contains(reason), "{what}: {why}");
        assert!(!b.reset && b.position("MarkTestBoot").is_none(), "{what}");
        let mut b = device(&firmware, &tls, FaultSet::NONE.with(fault));
        offer(&mut b, &img);
        let bypassed = !what.contains(" vs ");
        assert_eq!(b.reset, bypassed, "{what} with {fault}: {:?}", b.logs);
    }
    // The good image, and one naming no board, are installed.
    for img in [good, board_image(&firmware, None)] {
        let mut b = device(&firmware, &tls, FaultSet::NONE);
        offer(&mut b, &img);
        assert!(b.reset, "{:?}", b.logs);
    }
}

#[test]
fn the_board_check_reads_only_the_protected_board_tlv() {
    let key = SigningKey::generate(crate::image::KeyType::Ed25519);
    let keys = [key.trusted_key()];
    let img = board_image(&key, Some("b1"));
    let req = ota_verify::VerifyRequest {
        expected_sha256: Sha256::digest(&img).into(),
        expected_size: img.len() as u32,
        check_hash: true,
        check_signature: true,
        min_security_counter: Some(1),
        check_image: true,
    };
    assert_eq!(
        ota_verify::verify_image(&img, &req, &keys, Some("b1")),
        Ok(())
    );
    assert_eq!(
        ota_verify::verify_image(&img, &req, &keys, Some("b2")),
        Err(VerifyFailure::Board {
            image: "b1".into(),
            device: "b2".into()
        })
    );
    assert_eq!(ota_verify::verify_image(&img, &req, &keys, None), Ok(()));
}
