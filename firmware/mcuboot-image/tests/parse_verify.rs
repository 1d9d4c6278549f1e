//! Parse and verify our own signed images, then every error the parser and
//! the checks report, on images corrupted at known places.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use mcuboot_image::tlv::{
    TLV_ECDSA_SIG, TLV_ED25519, TLV_KEYHASH, TLV_PUBKEY, TLV_SEC_CNT, TLV_SHA256, TLV_SHA384,
    TLV_SIG_PURE,
};
use mcuboot_image::{
    parse, sign, ImageVersion, KeyId, KeyType, ParseError, SignError, SignOptions, SigningKey,
    TrustedKey, VerifyError,
};

fn opts() -> SignOptions {
    SignOptions {
        version: ImageVersion::new(3, 1, 4, 15),
        security_counter: Some(9),
        header_size: 0x80,
        ..SignOptions::default()
    }
}

fn signed(kt: KeyType) -> (Vec<u8>, SigningKey) {
    let key = SigningKey::generate(kt);
    let payload: Vec<u8> = (0..700u32).map(|i| (i * 7 + 3) as u8).collect();
    (sign(&payload, &key, &opts()).unwrap(), key)
}

/// Offset of the first TLV of `tlv_type`.
fn tlv_offset(img: &[u8], tlv_type: u16) -> usize {
    parse(img)
        .unwrap()
        .tlvs()
        .find(|t| t.tlv_type == tlv_type)
        .unwrap()
        .offset
}

fn set_u16(img: &mut [u8], off: usize, v: u16) {
    img[off..off + 2].copy_from_slice(&v.to_le_bytes());
}

fn set_u32(img: &mut [u8], off: usize, v: u32) {
    img[off..off + 4].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn roundtrip_both_key_types() {
    for kt in [KeyType::Ed25519, KeyType::EcdsaP256] {
        let (img, key) = signed(kt);
        let image = parse(&img).unwrap();
        let trusted = key.trusted_key();
        assert_eq!(image.version().to_string(), "3.1.4+15");
        assert_eq!(image.security_counter(), Some(9));
        assert_eq!(image.payload().len(), 700);
        assert_eq!(image.header().protect_tlv_size, 12);
        assert_eq!(image.hashed_region().len(), 0x80 + 700 + 12);
        assert_eq!(image.key_id(), Some(KeyId::Hash(trusted.key_hash())));
        let types: Vec<(u16, bool)> = image.tlvs().map(|t| (t.tlv_type, t.protected)).collect();
        let sig = if kt == KeyType::Ed25519 {
            TLV_ED25519
        } else {
            TLV_ECDSA_SIG
        };
        assert_eq!(
            types,
            [
                (TLV_SEC_CNT, true),
                (TLV_SHA256, false),
                (TLV_KEYHASH, false),
                (sig, false)
            ]
        );
        assert_eq!(image.hash_tlv(), &image.digest());
        image.verify(std::slice::from_ref(&trusted), 9).unwrap();
        assert_eq!(image.check_security_counter(0), Ok(9));
        // The PEM round trip gives the same key.
        let again = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem()).unwrap();
        assert_eq!(again.public_key_der(), key.public_key_der());
        let from_pem = TrustedKey::from_pem(&key.public_key_pem()).unwrap();
        assert_eq!(from_pem.key_hash(), trusted.key_hash());
    }
}

#[test]
fn trailing_bytes_are_ignored() {
    let (mut img, key) = signed(KeyType::Ed25519);
    let len = img.len();
    img.extend_from_slice(&[0xff; 100]);
    let image = parse(&img).unwrap();
    assert_eq!(image.len(), len);
    image.verify(&[key.trusted_key()], 0).unwrap();
}

#[test]
fn no_security_counter() {
    let key = SigningKey::generate(KeyType::Ed25519);
    let o = SignOptions {
        security_counter: None,
        ..opts()
    };
    let img = sign(b"payload", &key, &o).unwrap();
    let image = parse(&img).unwrap();
    assert_eq!(image.header().protect_tlv_size, 0);
    assert_eq!(image.security_counter(), None);
    image.check_hash().unwrap();
    image.check_signature(&[key.trusted_key()]).unwrap();
    assert_eq!(
        image.verify(&[key.trusted_key()], 0),
        Err(VerifyError::MissingSecurityCounter)
    );
}

#[test]
fn sign_option_errors() {
    let key = SigningKey::generate(KeyType::Ed25519);
    let bad = |o: SignOptions| sign(&[0u8; 100], &key, &o).unwrap_err();
    assert_eq!(
        bad(SignOptions {
            header_size: 16,
            ..opts()
        }),
        SignError::BadHeaderSize(16)
    );
    assert_eq!(
        bad(SignOptions {
            header_size: 34,
            ..opts()
        }),
        SignError::BadHeaderSize(34)
    );
    assert_eq!(
        bad(SignOptions {
            pad: Some(mcuboot_image::PadTrailer::Test),
            ..opts()
        }),
        SignError::PadWithoutSlotSize
    );
    assert!(matches!(
        bad(SignOptions {
            slot_size: Some(300),
            ..opts()
        }),
        SignError::DoesNotFitSlot { slot_size: 300, .. }
    ));
}

#[test]
fn header_errors() {
    let (img, _) = signed(KeyType::Ed25519);
    let mut b = img.clone();
    b[3] = 0;
    assert!(matches!(parse(&b), Err(ParseError::BadImageMagic { .. })));
    let mut b = img.clone();
    set_u16(&mut b, 8, 8);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::HeaderTooSmall { hdr_size: 8 }
    );
    let mut b = img.clone();
    set_u16(&mut b, 8, 0x82);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::HeaderUnaligned { hdr_size: 0x82 }
    );
    let mut b = img.clone();
    set_u32(&mut b, 12, u32::MAX);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::SizeOverflow {
            what: "header + image size"
        }
    );
    let mut b = img.clone();
    set_u32(&mut b, 12, 100_000);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::Truncated {
            what: "payload",
            offset: 0x80,
            needed: 100_000,
            available: img.len() - 0x80
        }
    );
    assert!(matches!(
        parse(&img[..0x40]),
        Err(ParseError::Truncated {
            what: "image header",
            needed: 0x80,
            ..
        })
    ));
}

#[test]
fn tlv_area_errors() {
    let (img, _) = signed(KeyType::Ed25519);
    let prot = 0x80 + 700;
    let unprot = prot + 12;

    let mut b = img.clone();
    set_u16(&mut b, 10, 16);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::ProtectedTlvSizeMismatch {
            offset: prot,
            header: 16,
            info: 12
        }
    );
    let mut b = img.clone();
    set_u16(&mut b, 10, 0);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::ProtectedTlvSizeMismatch {
            offset: prot,
            header: 0,
            info: 12
        }
    );
    let mut b = img.clone();
    set_u16(&mut b, prot, 0x6907);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::BadTlvInfoMagic {
            offset: prot,
            expected: 0x6908,
            found: 0x6907
        }
    );
    let mut b = img.clone();
    set_u16(&mut b, unprot, 0x1234);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::BadTlvInfoMagic {
            offset: unprot,
            expected: 0x6907,
            found: 0x1234
        }
    );
    let mut b = img.clone();
    set_u16(&mut b, unprot + 2, 2);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::TlvInfoTooSmall {
            offset: unprot,
            tlv_tot: 2
        }
    );
    let mut b = img.clone();
    set_u16(&mut b, unprot + 2, 0xffff);
    assert!(matches!(
        parse(&b),
        Err(ParseError::Truncated {
            what: "TLV area",
            ..
        })
    ));
    // SHA256 entry's length made to run past the area.
    let mut b = img.clone();
    set_u16(&mut b, unprot + 6, 0x400);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::TlvPastArea {
            offset: unprot + 4,
            tlv_type: TLV_SHA256,
            area_end: img.len()
        }
    );
    // SEC_CNT with a wrong length (and the protected sizes kept coherent).
    let mut b = img.clone();
    set_u16(&mut b, prot + 6, 2);
    b.drain(prot + 10..prot + 12);
    set_u16(&mut b, 10, 10);
    set_u16(&mut b, prot + 2, 10);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::BadTlvLength {
            offset: prot + 4,
            tlv_type: TLV_SEC_CNT,
            len: 2
        }
    );
}

#[test]
fn tlv_placement_and_duplicates() {
    let (img, _) = signed(KeyType::Ed25519);
    let prot = 0x80 + 700;
    let keyhash = tlv_offset(&img, TLV_KEYHASH);
    let sha = tlv_offset(&img, TLV_SHA256);

    // SEC_CNT turned into SHA256 (protected): not allowed there.
    let mut b = img.clone();
    set_u16(&mut b, prot + 4, TLV_SHA256);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::TlvNotAllowed {
            offset: prot + 4,
            tlv_type: TLV_SHA256,
            protected: true
        }
    );
    // An unprotected entry of a type that must be hashed.
    let mut b = img.clone();
    set_u16(&mut b, keyhash, TLV_SEC_CNT);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::TlvNotAllowed {
            offset: keyhash,
            tlv_type: TLV_SEC_CNT,
            protected: false
        }
    );
    // KEYHASH turned into a second SHA256.
    let mut b = img.clone();
    set_u16(&mut b, keyhash, TLV_SHA256);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::DuplicateTlv {
            offset: keyhash,
            tlv_type: TLV_SHA256
        }
    );
    // SHA256 turned into KEYHASH: two key ids.
    let mut b = img.clone();
    set_u16(&mut b, sha, TLV_KEYHASH);
    assert_eq!(
        parse(&b).unwrap_err(),
        ParseError::DuplicateTlv {
            offset: keyhash,
            tlv_type: TLV_KEYHASH
        }
    );
    // SHA256 turned into SHA384: no SHA-256 left.
    let mut b = img.clone();
    set_u16(&mut b, sha, TLV_SHA384);
    assert_eq!(parse(&b).unwrap_err(), ParseError::MissingHash);
    let msg = ParseError::TlvPastArea {
        offset: 0x31c,
        tlv_type: 0x10,
        area_end: 0x340,
    }
    .to_string();
    assert!(msg.contains("0x31c") && msg.contains("0x10"), "{msg}");
}

#[test]
fn signature_check_errors() {
    let (img, key) = signed(KeyType::Ed25519);
    let keys = [key.trusted_key()];
    let keyhash = tlv_offset(&img, TLV_KEYHASH);
    let sig = tlv_offset(&img, TLV_ED25519);
    let check = |b: &[u8]| parse(b).unwrap().check_signature(&keys).map(|_| ());

    let mut b = img.clone();
    set_u16(&mut b, keyhash, TLV_SHA384);
    assert_eq!(check(&b), Err(VerifyError::NoKeyId));
    // A PUBKEY holding something else than the trusted key.
    let mut b = img.clone();
    set_u16(&mut b, keyhash, TLV_PUBKEY);
    assert_eq!(check(&b), Err(VerifyError::UnknownKey));
    let mut b = img.clone();
    set_u16(&mut b, sig, TLV_ECDSA_SIG);
    assert_eq!(
        check(&b),
        Err(VerifyError::MissingSignature {
            key_type: KeyType::Ed25519
        })
    );
    let mut b = img.clone();
    set_u16(&mut b, sig, TLV_SIG_PURE);
    assert_eq!(check(&b), Err(VerifyError::UnsupportedSignature));
    let mut b = img.clone();
    b[sig + 4 + 10] ^= 1;
    assert_eq!(check(&b), Err(VerifyError::BadSignature));
    // The hash TLV alone changed: the hash check fails, the signature
    // (over the computed digest) still holds.
    let mut b = img.clone();
    b[tlv_offset(&img, TLV_SHA256) + 4] ^= 1;
    assert_eq!(
        parse(&b).unwrap().check_hash(),
        Err(VerifyError::HashMismatch)
    );
    assert_eq!(check(&b), Ok(()));

    // ECDSA: a corrupted DER header is malformed, not merely bad.
    let (img, key) = signed(KeyType::EcdsaP256);
    let sig = tlv_offset(&img, TLV_ECDSA_SIG);
    let mut b = img.clone();
    b[sig + 4] = 0x31;
    assert_eq!(
        parse(&b)
            .unwrap()
            .check_signature(&[key.trusted_key()])
            .unwrap_err(),
        VerifyError::MalformedSignature
    );
    // A trusted key of the other type with a colliding hash cannot exist,
    // but a list of only the wrong key must fail.
    let other = SigningKey::generate(KeyType::Ed25519).trusted_key();
    assert_eq!(
        parse(&img).unwrap().check_signature(&[other]).unwrap_err(),
        VerifyError::UnknownKey
    );
}

#[test]
fn custom_tlvs_are_protected_and_signed() {
    let key = SigningKey::generate(KeyType::Ed25519);
    let o = SignOptions {
        custom_tlvs: vec![(mcuboot_image::tlv::TLV_BOARD, b"board-a".to_vec())],
        ..opts()
    };
    let mut img = sign(b"payload", &key, &o).unwrap();
    let image = parse(&img).unwrap();
    let board: Vec<_> = image
        .tlvs()
        .filter(|t| t.tlv_type == mcuboot_image::tlv::TLV_BOARD)
        .collect();
    assert_eq!(board.len(), 1);
    assert!(board[0].protected);
    assert_eq!(board[0].value, b"board-a");
    image.verify(&[key.trusted_key()], 9).unwrap();
    // The name is hashed: changing it breaks the hash and the signature.
    let at = tlv_offset(&img, mcuboot_image::tlv::TLV_BOARD) + 4;
    img[at] = b'B';
    let image = parse(&img).unwrap();
    assert_eq!(image.check_hash(), Err(VerifyError::HashMismatch));
    assert!(image.check_signature(&[key.trusted_key()]).is_err());
    // Only vendor tags.
    let bad = SignOptions {
        custom_tlvs: vec![(0x50, vec![1, 0, 0, 0])],
        ..opts()
    };
    assert_eq!(
        sign(b"payload", &key, &bad).unwrap_err(),
        SignError::BadCustomTlv(0x50)
    );
}
