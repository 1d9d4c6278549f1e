//! Verification checks, separate so the caller decides which to run.
//!
//! What imgtool (and MCUboot) sign, read from imgtool's `image.py` and
//! `keys/*.py`:
//! - the digest is SHA-256 over header + payload + protected TLV area;
//! - Ed25519 (TLV 0x24) signs the 32-byte digest itself (imgtool's
//!   `sign_digest`), unless `--pure`, which adds a SIG_PURE TLV and signs
//!   the image: not supported here ([`VerifyError::UnsupportedSignature`]);
//! - ECDSA P-256 (TLV 0x22) is ECDSA-SHA256 over the hashed region, i.e.
//!   over the same digest, DER-encoded, optionally zero-padded to 72 bytes
//!   (`--pad-sig`); the DER length byte tells where padding starts;
//! - KEYHASH (0x01) is SHA-256 of the DER SubjectPublicKeyInfo of the key.
//!
//! The signature is verified over the digest *computed* from the image, not
//! over the SHA256 TLV value, as MCUboot does: skipping [`Image::check_hash`]
//! therefore does not let a modified payload pass [`Image::check_signature`].

use p256::ecdsa::signature::hazmat::PrehashVerifier;
use sha2::{Digest, Sha256};
use spki::der::asn1::ObjectIdentifier;

use crate::error::{KeyError, VerifyError};
use crate::image::{Image, KeyId};

/// id-Ed25519 (RFC 8410).
const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
/// id-ecPublicKey (RFC 5480).
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
/// secp256r1 / prime256v1.
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");

/// Signature algorithm of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// Ed25519 (imgtool `-t ed25519`), TLV 0x24.
    Ed25519,
    /// ECDSA on NIST P-256 with SHA-256 (imgtool `-t ecdsa-p256`), TLV 0x22.
    EcdsaP256,
}

#[derive(Debug, Clone)]
enum PublicKey {
    Ed25519(ed25519_dalek::VerifyingKey),
    EcdsaP256(p256::ecdsa::VerifyingKey),
}

/// A public key the device trusts to sign images, with the key hash that
/// images name it by.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    key: PublicKey,
    key_hash: [u8; 32],
}

impl TrustedKey {
    /// Loads a DER SubjectPublicKeyInfo, as `imgtool getpub --encoding raw`
    /// prints it and as MCUboot embeds it. Ed25519 and ECDSA P-256 only.
    ///
    /// The key hash is SHA-256 of exactly these bytes, which is what imgtool
    /// puts in KEYHASH (DER is canonical, and trailing bytes are refused).
    pub fn from_spki_der(der: &[u8]) -> Result<Self, KeyError> {
        let spki = spki::SubjectPublicKeyInfoRef::try_from(der).map_err(|_| KeyError::Malformed)?;
        let bits = spki
            .subject_public_key
            .as_bytes()
            .ok_or(KeyError::Malformed)?;
        let key = if spki.algorithm.oid == OID_ED25519 {
            if spki.algorithm.parameters.is_some() {
                return Err(KeyError::Malformed);
            }
            let raw = <&[u8; 32]>::try_from(bits).map_err(|_| KeyError::InvalidKey)?;
            PublicKey::Ed25519(
                ed25519_dalek::VerifyingKey::from_bytes(raw).map_err(|_| KeyError::InvalidKey)?,
            )
        } else if spki.algorithm.oid == OID_EC_PUBLIC_KEY {
            let curve = spki
                .algorithm
                .parameters_oid()
                .map_err(|_| KeyError::Malformed)?;
            if curve != OID_P256 {
                return Err(KeyError::UnsupportedAlgorithm);
            }
            PublicKey::EcdsaP256(
                p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                    .map_err(|_| KeyError::InvalidKey)?,
            )
        } else {
            return Err(KeyError::UnsupportedAlgorithm);
        };
        Ok(Self {
            key,
            key_hash: Sha256::digest(der).into(),
        })
    }

    /// Loads a PEM `PUBLIC KEY`, as printed by
    /// `imgtool getpub --encoding pem`.
    #[cfg(feature = "std")]
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let (label, der) =
            spki::der::pem::decode_vec(pem.trim().as_bytes()).map_err(|_| KeyError::Malformed)?;
        if label != "PUBLIC KEY" {
            return Err(KeyError::Malformed);
        }
        Self::from_spki_der(&der)
    }

    /// The key's algorithm.
    pub fn key_type(&self) -> KeyType {
        match self.key {
            PublicKey::Ed25519(_) => KeyType::Ed25519,
            PublicKey::EcdsaP256(_) => KeyType::EcdsaP256,
        }
    }

    /// SHA-256 of the key's DER SubjectPublicKeyInfo (the KEYHASH value).
    pub fn key_hash(&self) -> &[u8; 32] {
        &self.key_hash
    }
}

/// Compares without an early exit, so timing does not tell how many leading
/// bytes of a forged hash were right.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Strips imgtool's optional zero padding from a DER ECDSA signature:
/// the SEQUENCE length byte (short form: P-256 signatures are under 128
/// bytes) gives the DER length; anything after must be zeros.
fn strip_ecdsa_padding(sig: &[u8]) -> Option<&[u8]> {
    let len = usize::from(*sig.get(1)?);
    if len >= 0x80 {
        return None;
    }
    let (der, pad) = sig.split_at_checked(len + 2)?;
    pad.iter().all(|&b| b == 0).then_some(der)
}

impl Image<'_> {
    /// SHA-256 of [`Image::hashed_region`], computed (not read from the TLV).
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.hashed_region()).into()
    }

    /// Checks the SHA256 TLV against the computed digest.
    pub fn check_hash(&self) -> Result<(), VerifyError> {
        if ct_eq(&self.digest(), self.hash) {
            Ok(())
        } else {
            Err(VerifyError::HashMismatch)
        }
    }

    /// Selects the key named by the image's KEYHASH (or PUBKEY) among
    /// `keys` and checks the signature with it; returns that key.
    ///
    /// This does not require [`Image::check_hash`]: the signature is checked
    /// over the computed digest.
    pub fn check_signature<'k>(
        &self,
        keys: &'k [TrustedKey],
    ) -> Result<&'k TrustedKey, VerifyError> {
        self.check_signature_with_digest(keys, &self.digest())
    }

    /// The signature checked over the hash stored in the SHA256 TLV instead
    /// of the computed digest. This is the weak check a firmware does when
    /// it skips the hash comparison: a corrupted payload with the original
    /// TLVs passes it. It exists for the reference device's `skip-hash`
    /// fault switch, so that the conformance case is proven able to fail.
    pub fn check_signature_over_stored_hash<'k>(
        &self,
        keys: &'k [TrustedKey],
    ) -> Result<&'k TrustedKey, VerifyError> {
        self.check_signature_with_digest(keys, self.hash_tlv())
    }

    fn check_signature_with_digest<'k>(
        &self,
        keys: &'k [TrustedKey],
        digest: &[u8; 32],
    ) -> Result<&'k TrustedKey, VerifyError> {
        if self.sig_pure {
            return Err(VerifyError::UnsupportedSignature);
        }
        let wanted: [u8; 32] = match self.key_id {
            Some(KeyId::Hash(h)) => *h,
            Some(KeyId::PublicKey(der)) => Sha256::digest(der).into(),
            None => return Err(VerifyError::NoKeyId),
        };
        let key = keys
            .iter()
            .find(|k| k.key_hash == wanted)
            .ok_or(VerifyError::UnknownKey)?;
        let missing = VerifyError::MissingSignature {
            key_type: key.key_type(),
        };
        match &key.key {
            PublicKey::Ed25519(vk) => {
                let sig = self.ed25519_sig.ok_or(missing)?;
                let sig = ed25519_dalek::Signature::from_slice(sig)
                    .map_err(|_| VerifyError::MalformedSignature)?;
                // Strict: refuses small-order keys and non-canonical
                // signatures, which an honest signer never produces.
                vk.verify_strict(digest, &sig)
                    .map_err(|_| VerifyError::BadSignature)?;
            }
            PublicKey::EcdsaP256(vk) => {
                let sig = self.ecdsa_sig.ok_or(missing)?;
                let der = strip_ecdsa_padding(sig).ok_or(VerifyError::MalformedSignature)?;
                let sig = p256::ecdsa::Signature::from_der(der)
                    .map_err(|_| VerifyError::MalformedSignature)?;
                vk.verify_prehash(digest, &sig)
                    .map_err(|_| VerifyError::BadSignature)?;
            }
        }
        Ok(key)
    }

    /// Checks the protected security counter against the device's minimum
    /// (anti-rollback); returns the image's counter. An image without a
    /// SEC_CNT TLV fails, as in MCUboot with `MCUBOOT_HW_ROLLBACK_PROT`.
    pub fn check_security_counter(&self, min: u32) -> Result<u32, VerifyError> {
        let counter = self
            .security_counter
            .ok_or(VerifyError::MissingSecurityCounter)?;
        if counter < min {
            return Err(VerifyError::SecurityCounterTooLow { counter, min });
        }
        Ok(counter)
    }

    /// All checks: hash, signature with one of `keys`, and security counter
    /// at least `min_security_counter`. Hashes the image once.
    pub fn verify(
        &self,
        keys: &[TrustedKey],
        min_security_counter: u32,
    ) -> Result<(), VerifyError> {
        let digest = self.digest();
        if !ct_eq(&digest, self.hash) {
            return Err(VerifyError::HashMismatch);
        }
        self.check_signature_with_digest(keys, &digest)?;
        self.check_security_counter(min_security_counter)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_padding_is_stripped_only_when_zero() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01];
        assert_eq!(strip_ecdsa_padding(&der), Some(&der[..]));
        let mut padded = der.to_vec();
        padded.extend_from_slice(&[0, 0]);
        assert_eq!(strip_ecdsa_padding(&padded), Some(&der[..]));
        padded.push(1);
        assert_eq!(strip_ecdsa_padding(&padded), None);
        assert_eq!(strip_ecdsa_padding(&der[..5]), None);
        assert_eq!(strip_ecdsa_padding(&[0x30, 0x81, 0x00]), None);
    }

    #[test]
    fn spki_rejects_garbage_and_other_algorithms() {
        assert_eq!(
            TrustedKey::from_spki_der(&[0x30, 0x00]).unwrap_err(),
            KeyError::Malformed
        );
        // X25519 (1.3.101.110) SubjectPublicKeyInfo: well-formed, unsupported.
        let mut x25519 = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
        ];
        x25519.extend_from_slice(&[9u8; 32]);
        assert_eq!(
            TrustedKey::from_spki_der(&x25519).unwrap_err(),
            KeyError::UnsupportedAlgorithm
        );
        // The same with the Ed25519 OID loads, and trailing bytes are refused.
        x25519[8] = 0x70;
        let k = TrustedKey::from_spki_der(&x25519).unwrap();
        assert_eq!(k.key_type(), KeyType::Ed25519);
        assert_eq!(k.key_hash(), &<[u8; 32]>::from(Sha256::digest(&x25519)));
        x25519.push(0);
        assert_eq!(
            TrustedKey::from_spki_der(&x25519).unwrap_err(),
            KeyError::Malformed
        );
    }
}
