//! OTA image verification: the checks an image in the secondary slot must
//! pass before the device asks the bootloader to test-boot it. Pure: the
//! slot's bytes in (on a board, a slice of memory-mapped flash), a verdict
//! out.
//!
//! In order: the announced SHA-256 over the announced size, the MCUboot
//! structure, the size, the image's own hash TLV, the signature with the
//! firmware signing keys, the board identity (a protected TLV
//! [`TLV_BOARD`], when the image has one), the security counter against the
//! running image's (anti-rollback). Which checks run is the OTA machine's
//! [`VerifyRequest`] (its faults: `skip-hash`, `skip-signature`,
//! `allow-downgrade`, `trust-announced-hash`); which keys and board, the
//! device's (`any-known-signer`, `any-board`).

use sha2::{Digest, Sha256};

use crate::image::tlv::TLV_BOARD;
use crate::image::{parse, Image, TrustedKey};
use crate::ota::{OtaAction, VerifyFailure};

/// What to check (from [`OtaAction::Verify`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyRequest {
    /// SHA-256 the twin announced.
    pub expected_sha256: [u8; 32],
    /// Size the twin announced, bytes.
    pub expected_size: u32,
    /// Check the hashes (off: fault `skip-hash`).
    pub check_hash: bool,
    /// Check the signature (off: fault `skip-signature`).
    pub check_signature: bool,
    /// Refuse a lower security counter (`None`: fault `allow-downgrade`).
    pub min_security_counter: Option<u32>,
    /// Check the image beyond the announced hash and size (off: fault
    /// `trust-announced-hash`).
    pub check_image: bool,
}

impl VerifyRequest {
    /// The request in an [`OtaAction::Verify`]; `None` for any other action.
    pub fn from_action(action: &OtaAction) -> Option<VerifyRequest> {
        match *action {
            OtaAction::Verify {
                expected_sha256,
                expected_size,
                check_hash,
                check_signature,
                min_security_counter,
                check_image,
            } => Some(VerifyRequest {
                expected_sha256,
                expected_size,
                check_hash,
                check_signature,
                min_security_counter,
                check_image,
            }),
            _ => None,
        }
    }
}

/// Verifies the image at the start of `slot` (at least `expected_size`
/// bytes of it) as `req` asks, against the trusted `keys` and, if given,
/// this device's `board`.
pub fn verify_image(
    slot: &[u8],
    req: &VerifyRequest,
    keys: &[TrustedKey],
    board: Option<&str>,
) -> Result<(), VerifyFailure> {
    let Some(bytes) = slot.get(..req.expected_size as usize) else {
        return Err(VerifyFailure::Size {
            expected: req.expected_size,
            actual: slot.len().min(u32::MAX as usize) as u32,
        });
    };
    if req.check_hash && <[u8; 32]>::from(Sha256::digest(bytes)) != req.expected_sha256 {
        return Err(VerifyFailure::Hash);
    }
    if !req.check_image {
        // Fault trust-announced-hash: what the twin announced is all it checks.
        return Ok(());
    }
    let image = parse(bytes)
        .map_err(|e| VerifyFailure::Malformed(alloc::string::ToString::to_string(&e)))?;
    if image.len() != bytes.len() {
        return Err(VerifyFailure::Size {
            expected: req.expected_size,
            actual: image.len().min(u32::MAX as usize) as u32,
        });
    }
    if req.check_hash && image.check_hash().is_err() {
        return Err(VerifyFailure::Hash);
    }
    if req.check_signature {
        // Without the hash check (fault skip-hash) the signature is checked
        // over the stored hash TLV, as such a firmware would.
        let ok = if req.check_hash {
            image.check_signature(keys).is_ok()
        } else {
            image.check_signature_over_stored_hash(keys).is_ok()
        };
        if !ok {
            return Err(VerifyFailure::Signature);
        }
    }
    if let Some(device) = board {
        check_board(&image, device)?;
    }
    if let Some(minimum) = req.min_security_counter {
        let counter = image.security_counter().unwrap_or(0);
        if counter < minimum {
            return Err(VerifyFailure::SecurityCounter {
                image: counter,
                minimum,
            });
        }
    }
    Ok(())
}

/// The board the image names (its protected [`TLV_BOARD`]), if any, must be
/// `device`. Unprotected, the name would not be covered by the signature:
/// such an image is malformed.
fn check_board(image: &Image<'_>, device: &str) -> Result<(), VerifyFailure> {
    for t in image.tlvs().filter(|t| t.tlv_type == TLV_BOARD) {
        let name = core::str::from_utf8(t.value).unwrap_or("(not UTF-8)");
        if !t.protected {
            return Err(VerifyFailure::Malformed(alloc::format!(
                "board identity {name:?} outside the protected TLVs"
            )));
        }
        if t.value != device.as_bytes() {
            return Err(VerifyFailure::Board {
                image: name.into(),
                device: device.into(),
            });
        }
    }
    Ok(())
}
