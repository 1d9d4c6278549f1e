//! Building and signing images (feature `std`): the bench's equivalent of
//! `imgtool sign --pad-header`, producing images `imgtool verify` accepts.
//!
//! Layout written, as imgtool writes it: header (padded with 0xff to
//! `header_size`), payload, protected TLVs (SEC_CNT, if any), then the
//! unprotected TLVs SHA256, KEYHASH and the signature.

use std::fmt;
use std::string::String;
use std::vec::Vec;

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::Signer;
use p256::ecdsa::signature::hazmat::PrehashSigner;
use p256::pkcs8::LineEnding;
use sha2::{Digest, Sha256};

use crate::error::KeyError;
use crate::header::{ImageHeader, ImageVersion, HEADER_SIZE_ALIGN, IMAGE_HEADER_SIZE};
use crate::tlv;
use crate::trailer::{self, Trailer, TRAILER_SIZE};
use crate::{KeyType, TrustedKey};

/// A private key that signs images.
#[derive(Clone)]
pub struct SigningKey(Secret);

#[derive(Clone)]
enum Secret {
    Ed25519(ed25519_dalek::SigningKey),
    EcdsaP256(p256::ecdsa::SigningKey),
}

/// Never prints key material.
impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({:?})", self.key_type())
    }
}

impl SigningKey {
    /// Generates a fresh key from the OS random generator.
    pub fn generate(key_type: KeyType) -> Self {
        let mut rng = rand_core::OsRng;
        Self(match key_type {
            KeyType::Ed25519 => Secret::Ed25519(ed25519_dalek::SigningKey::generate(&mut rng)),
            KeyType::EcdsaP256 => Secret::EcdsaP256(p256::ecdsa::SigningKey::random(&mut rng)),
        })
    }

    /// Loads an unencrypted PKCS#8 PEM private key, as written by
    /// `imgtool keygen -t ed25519` or `-t ecdsa-p256`.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        // The algorithm OID inside tells the key type: try both.
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self(Secret::Ed25519(k)));
        }
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map(|k| Self(Secret::EcdsaP256(k)))
            .map_err(|_| KeyError::Malformed)
    }

    /// The key as unencrypted PKCS#8 PEM, loadable by imgtool.
    pub fn to_pkcs8_pem(&self) -> String {
        let pem = match &self.0 {
            // PKCS#8 v1 (no embedded public key): what imgtool writes, and
            // all that Python's `cryptography` (so imgtool) can load; the v2
            // form ed25519-dalek writes by default is refused there.
            Secret::Ed25519(k) => ed25519_dalek::pkcs8::KeypairBytes {
                secret_key: k.to_bytes(),
                public_key: None,
            }
            .to_pkcs8_pem(LineEnding::LF),
            Secret::EcdsaP256(k) => k.to_pkcs8_pem(LineEnding::LF),
        };
        // Encoding a valid in-memory key cannot fail.
        pem.map(|p| String::from(p.as_str()))
            .unwrap_or_else(|e| unreachable!("PKCS#8 encoding failed: {e}"))
    }

    /// The key's algorithm.
    pub fn key_type(&self) -> KeyType {
        match self.0 {
            Secret::Ed25519(_) => KeyType::Ed25519,
            Secret::EcdsaP256(_) => KeyType::EcdsaP256,
        }
    }

    /// The public key as DER SubjectPublicKeyInfo, byte-identical to
    /// `imgtool getpub --encoding raw` (what KEYHASH hashes).
    pub fn public_key_der(&self) -> Vec<u8> {
        let doc = match &self.0 {
            Secret::Ed25519(k) => k.verifying_key().to_public_key_der(),
            Secret::EcdsaP256(k) => k.verifying_key().to_public_key_der(),
        };
        doc.map(|d| d.into_vec())
            .unwrap_or_else(|e| unreachable!("SPKI encoding failed: {e}"))
    }

    /// The public key as PEM, like `imgtool getpub --encoding pem`.
    pub fn public_key_pem(&self) -> String {
        let doc = match &self.0 {
            Secret::Ed25519(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
            Secret::EcdsaP256(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
        };
        doc.unwrap_or_else(|e| unreachable!("SPKI encoding failed: {e}"))
    }

    /// The matching [`TrustedKey`] for verification.
    pub fn trusted_key(&self) -> TrustedKey {
        TrustedKey::from_spki_der(&self.public_key_der())
            .unwrap_or_else(|e| unreachable!("own public key does not load: {e}"))
    }

    /// The signature TLV for `digest`, as imgtool makes it.
    fn sign_digest(&self, digest: &[u8; 32]) -> (u16, Vec<u8>) {
        match &self.0 {
            // imgtool's Ed25519 is a DigestSigner: it signs the digest bytes.
            Secret::Ed25519(k) => (tlv::TLV_ED25519, k.sign(digest).to_bytes().to_vec()),
            // imgtool's ECDSA signs the hashed region with ECDSA-SHA256,
            // which is ECDSA over this very digest; DER, unpadded.
            Secret::EcdsaP256(k) => {
                let sig: p256::ecdsa::Signature = k
                    .sign_prehash(digest)
                    .unwrap_or_else(|e| unreachable!("prehash signing failed: {e}"));
                (tlv::TLV_ECDSA_SIG, sig.to_der().as_bytes().to_vec())
            }
        }
    }
}

/// Swap request written in the slot trailer by [`SignOptions::pad`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PadTrailer {
    /// Magic only: a test swap, reverted unless confirmed
    /// (imgtool `--pad`).
    Test,
    /// Magic and image_ok: a permanent swap (imgtool `--pad --confirm`).
    Permanent,
}

/// What to build. `Default` is imgtool's defaults: version 0.0.0+0, no
/// security counter, 32-byte header, no slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    /// Header version (`--version`).
    pub version: ImageVersion,
    /// Protected SEC_CNT value (`--security-counter`); `None` writes none.
    pub security_counter: Option<u32>,
    /// Header size (`--header-size`); the header is always padded
    /// (`--pad-header`) with 0xff, so the payload needs no room for it.
    pub header_size: u16,
    /// Slot size (`--slot-size`): the image must leave room for the
    /// [`trailer`] block at the slot's end.
    pub slot_size: Option<u32>,
    /// Pad the output to `slot_size` with erased bytes (0xff) and end it
    /// with a trailer requesting this swap (`--pad`). Needs `slot_size`.
    pub pad: Option<PadTrailer>,
    /// Further protected TLVs, after SEC_CNT, in this order (imgtool's
    /// `--custom-tlv TAG VALUE`, vendor tags 0xa0..=0xfffe), e.g. sacbench's
    /// board identity [`tlv::TLV_BOARD`].
    pub custom_tlvs: Vec<(u16, Vec<u8>)>,
}

impl SignOptions {
    /// Version `major.minor.0` with security counter `counter`, the header
    /// padded to 0x200 bytes (imgtool's `--header-size 0x200`, what
    /// sacbench's native board and its OTA cases use).
    pub fn versioned(major: u8, minor: u8, counter: u32) -> SignOptions {
        SignOptions {
            version: ImageVersion {
                major,
                minor,
                revision: 0,
                build_num: 0,
            },
            security_counter: Some(counter),
            header_size: 0x200,
            ..SignOptions::default()
        }
    }
}

impl Default for SignOptions {
    fn default() -> Self {
        Self {
            version: ImageVersion::default(),
            security_counter: None,
            header_size: IMAGE_HEADER_SIZE as u16,
            slot_size: None,
            pad: None,
            custom_tlvs: Vec::new(),
        }
    }
}

/// Why [`sign`] could not build an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// `header_size` is below 32 or not a multiple of 4.
    BadHeaderSize(u16),
    /// The payload does not fit the 32-bit `img_size` field.
    PayloadTooLarge(usize),
    /// Image plus trailer exceed the slot.
    DoesNotFitSlot {
        /// Image length.
        image_len: usize,
        /// Slot size.
        slot_size: u32,
    },
    /// `pad` was asked without a `slot_size`.
    PadWithoutSlotSize,
    /// A custom TLV's tag is outside the vendor range 0xa0..=0xfffe, or the
    /// protected area would exceed 64 KiB.
    BadCustomTlv(u16),
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadHeaderSize(s) => {
                write!(f, "header size {s:#x} is below 32 or not a multiple of 4")
            }
            Self::PayloadTooLarge(n) => write!(f, "payload of {n} bytes exceeds 32 bits"),
            Self::DoesNotFitSlot {
                image_len,
                slot_size,
            } => write!(
                f,
                "image of {image_len:#x} bytes plus the {TRAILER_SIZE}-byte trailer exceeds slot size {slot_size:#x}"
            ),
            Self::PadWithoutSlotSize => write!(f, "padding needs a slot size"),
            Self::BadCustomTlv(t) => write!(
                f,
                "custom TLV {t:#x}: tag outside 0xa0..=0xfffe or protected area over 64 KiB"
            ),
        }
    }
}

impl std::error::Error for SignError {}

fn push_tlv(buf: &mut Vec<u8>, tlv_type: u16, value: &[u8]) {
    buf.extend_from_slice(&tlv_type.to_le_bytes());
    // Values here are at most 72 bytes, custom ones at most 32 KiB (checked).
    buf.extend_from_slice(&(value.len() as u16).to_le_bytes());
    buf.extend_from_slice(value);
}

/// Builds a signed image from a raw payload.
pub fn sign(payload: &[u8], key: &SigningKey, opts: &SignOptions) -> Result<Vec<u8>, SignError> {
    let hdr_size = opts.header_size;
    if usize::from(hdr_size) < IMAGE_HEADER_SIZE || hdr_size % HEADER_SIZE_ALIGN != 0 {
        return Err(SignError::BadHeaderSize(hdr_size));
    }
    let img_size =
        u32::try_from(payload.len()).map_err(|_| SignError::PayloadTooLarge(payload.len()))?;
    if opts.pad.is_some() && opts.slot_size.is_none() {
        return Err(SignError::PadWithoutSlotSize);
    }

    let mut protected = Vec::new();
    if let Some(counter) = opts.security_counter {
        push_tlv(&mut protected, tlv::TLV_SEC_CNT, &counter.to_le_bytes());
    }
    for (tlv_type, value) in &opts.custom_tlvs {
        if !(tlv::TLV_VENDOR_MIN..=tlv::TLV_VENDOR_MAX).contains(tlv_type) {
            return Err(SignError::BadCustomTlv(*tlv_type));
        }
        if value.len() > usize::from(u16::MAX / 2) {
            return Err(SignError::BadCustomTlv(*tlv_type));
        }
        push_tlv(&mut protected, *tlv_type, value);
    }
    if protected.len() + tlv::TLV_INFO_SIZE > usize::from(u16::MAX) {
        return Err(SignError::BadCustomTlv(u16::MAX));
    }
    let protect_tlv_size = if protected.is_empty() {
        0
    } else {
        (tlv::TLV_INFO_SIZE + protected.len()) as u16
    };

    let header = ImageHeader {
        load_addr: 0,
        hdr_size,
        protect_tlv_size,
        img_size,
        flags: 0,
        version: opts.version,
    };
    let mut image = Vec::with_capacity(usize::from(hdr_size) + payload.len() + 256);
    image.extend_from_slice(&header.to_bytes());
    image.resize(usize::from(hdr_size), 0xff);
    image.extend_from_slice(payload);
    if protect_tlv_size != 0 {
        image.extend_from_slice(&tlv::TLV_PROT_INFO_MAGIC.to_le_bytes());
        image.extend_from_slice(&protect_tlv_size.to_le_bytes());
        image.extend_from_slice(&protected);
    }

    let digest: [u8; 32] = Sha256::digest(&image).into();
    let (sig_type, sig) = key.sign_digest(&digest);
    let key_hash: [u8; 32] = Sha256::digest(key.public_key_der()).into();
    let mut unprotected = Vec::new();
    push_tlv(&mut unprotected, tlv::TLV_SHA256, &digest);
    push_tlv(&mut unprotected, tlv::TLV_KEYHASH, &key_hash);
    push_tlv(&mut unprotected, sig_type, &sig);
    image.extend_from_slice(&tlv::TLV_INFO_MAGIC.to_le_bytes());
    image.extend_from_slice(&((tlv::TLV_INFO_SIZE + unprotected.len()) as u16).to_le_bytes());
    image.extend_from_slice(&unprotected);

    if let Some(slot_size) = opts.slot_size {
        let slot = slot_size as usize;
        if image.len() + TRAILER_SIZE > slot {
            return Err(SignError::DoesNotFitSlot {
                image_len: image.len(),
                slot_size,
            });
        }
        if let Some(pad) = opts.pad {
            let t = match pad {
                PadTrailer::Test => trailer::request_test(&Trailer::ERASED),
                PadTrailer::Permanent => trailer::request_permanent(&Trailer::ERASED),
            };
            // Requests on an erased trailer always succeed.
            let t = t.unwrap_or_else(|e| unreachable!("request on erased trailer: {e}"));
            image.resize(slot - TRAILER_SIZE, trailer::ERASED_BYTE);
            image.extend_from_slice(&t.encode());
        }
    }
    Ok(image)
}
