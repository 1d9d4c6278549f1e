//! `parse` and the checks must never panic and must never accept a damaged
//! image: every byte flipped, every truncation, huge length fields, and
//! deterministic random garbage.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use mcuboot_image::{parse, sign, ImageVersion, KeyType, SignOptions, SigningKey, TrustedKey};

/// xorshift64: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Small valid images: both key types, with and without a protected area.
fn samples() -> Vec<(Vec<u8>, TrustedKey)> {
    let mut out = Vec::new();
    for kt in [KeyType::Ed25519, KeyType::EcdsaP256] {
        for counter in [Some(3), None] {
            let key = SigningKey::generate(kt);
            let opts = SignOptions {
                version: ImageVersion::new(1, 0, 0, 0),
                security_counter: counter,
                header_size: 32,
                ..SignOptions::default()
            };
            out.push((sign(&[0x5a; 48], &key, &opts).unwrap(), key.trusted_key()));
        }
    }
    out
}

/// Runs everything on `bytes`; returns whether the hash and signature checks
/// both passed (the security counter is checked, but the samples without
/// one must not be rejected for that reason alone).
fn accepted(bytes: &[u8], keys: &[TrustedKey]) -> bool {
    let Ok(image) = parse(bytes) else {
        return false;
    };
    // Exercise every accessor and check too: none may panic.
    let _ = (image.payload(), image.version(), image.security_counter());
    let _ = (image.tlvs().count(), image.key_id(), image.len());
    let hash = image.check_hash().is_ok();
    let sig = image.check_signature(keys).is_ok();
    let cnt = image.check_security_counter(0).is_ok();
    let all = image.verify(keys, 0).is_ok();
    assert_eq!(all, hash && sig && cnt);
    hash && sig
}

#[test]
fn every_byte_flipped_is_rejected() {
    for (img, key) in samples() {
        let keys = [key];
        assert!(accepted(&img, &keys));
        for i in 0..img.len() {
            for mask in [0xff, 0x01, 0x80] {
                let mut b = img.clone();
                b[i] ^= mask;
                assert!(!accepted(&b, &keys), "byte {i} ^ {mask:#x} accepted");
            }
        }
    }
}

#[test]
fn every_truncation_is_a_parse_error() {
    for (img, _) in samples() {
        for n in 0..img.len() {
            assert!(parse(&img[..n]).is_err(), "truncated to {n} parsed");
        }
    }
}

#[test]
fn huge_length_fields_are_errors() {
    for (img, key) in samples() {
        let keys = [key];
        let image = parse(&img).unwrap();
        let tlv_offsets: Vec<usize> = image.tlvs().map(|t| t.offset).collect();
        let prot = 32 + 48;
        let unprot = prot + usize::from(image.header().protect_tlv_size);
        // (offset, width) of every size field.
        let mut fields = vec![(8, 2), (10, 2), (12, 4), (unprot + 2, 2)];
        if unprot != prot {
            fields.push((prot + 2, 2));
        }
        fields.extend(tlv_offsets.iter().map(|o| (o + 2, 2)));
        for (off, width) in fields {
            for v in [
                u32::MAX,
                u32::MAX - 31,
                0x8000_0000,
                0xffff,
                0xfffc,
                0x7fff,
                0,
            ] {
                let mut b = img.clone();
                b[off..off + width].copy_from_slice(&v.to_le_bytes()[..width]);
                if b != img {
                    assert!(!accepted(&b, &keys), "field at {off} = {v:#x} accepted");
                }
            }
        }
    }
}

#[test]
fn random_garbage_and_random_damage() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let samples = samples();
    for round in 0..20_000 {
        let (img, key) = &samples[round % samples.len()];
        let keys = [key.clone()];
        let b = match round % 3 {
            // Pure garbage, sometimes with the image magic to get past it.
            0 => {
                let mut g: Vec<u8> = (0..rng.below(400)).map(|_| rng.next() as u8).collect();
                if g.len() >= 4 && rng.below(2) == 0 {
                    g[..4].copy_from_slice(&0x96f3_b83du32.to_le_bytes());
                }
                g
            }
            // A valid image with a few random bytes changed.
            1 => {
                let mut b = img.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] ^= 1 + rng.below(255) as u8;
                }
                b
            }
            // A valid image cut and extended with garbage.
            _ => {
                let mut b = img[..rng.below(img.len())].to_vec();
                b.extend((0..rng.below(64)).map(|_| rng.next() as u8));
                b
            }
        };
        // A cut image whose garbage happens to restore the cut bytes is the
        // valid image followed by ignored bytes (about once per 40 runs).
        if !b.starts_with(img) {
            assert!(!accepted(&b, &keys), "round {round} accepted");
        }
    }
}
