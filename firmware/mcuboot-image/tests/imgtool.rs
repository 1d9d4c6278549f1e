//! Interoperability with the real `imgtool` (MCUboot's signing tool, from
//! PyPI), both ways, for Ed25519 and ECDSA P-256. A missing imgtool is a
//! failure, never a skip.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use mcuboot_image::trailer::{self, BootAction, Trailer};
use mcuboot_image::{
    parse, sign, ImageVersion, KeyType, PadTrailer, SignOptions, SigningKey, TrustedKey,
    VerifyError,
};
use tempfile::TempDir;

const SLOT_SIZE: u32 = 0x20000;

fn imgtool(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut cmd = Command::new("imgtool");
    for a in args {
        cmd.arg(a);
    }
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "imgtool is not installed (or not on PATH): run `pip3 install imgtool`; \
             these interoperability tests need the real tool"
        ),
        Err(e) => panic!("cannot run imgtool: {e}"),
    }
}

/// Runs imgtool and requires success.
fn imgtool_ok(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let out = imgtool(args);
    assert!(
        out.status.success(),
        "imgtool {:?} failed: {}\n{}",
        args.iter()
            .map(|a| a.as_ref().to_owned())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn keygen_arg(kt: KeyType) -> &'static str {
    match kt {
        KeyType::Ed25519 => "ed25519",
        KeyType::EcdsaP256 => "ecdsa-p256",
    }
}

/// `imgtool keygen` into `dir/name`.
fn imgtool_keygen(dir: &Path, name: &str, kt: KeyType) -> PathBuf {
    let path = dir.join(name);
    imgtool_ok(&[&"keygen", &"-t", &keygen_arg(kt), &"-k", &path]);
    path
}

/// The public key of `key` as `imgtool getpub --encoding pem` prints it.
fn imgtool_pub(dir: &Path, key: &Path) -> TrustedKey {
    let out = dir.join(format!(
        "{}.pub.pem",
        key.file_name().unwrap().to_string_lossy()
    ));
    imgtool_ok(&[&"getpub", &"-k", &key, &"--encoding", &"pem", &"-o", &out]);
    TrustedKey::from_pem(&std::fs::read_to_string(&out).unwrap()).unwrap()
}

/// The DER public key of `key` as `imgtool getpub --encoding raw` writes it.
fn imgtool_pub_raw(dir: &Path, key: &Path) -> Vec<u8> {
    let out = dir.join("pub.der");
    imgtool_ok(&[&"getpub", &"-k", &key, &"--encoding", &"raw", &"-o", &out]);
    std::fs::read(out).unwrap()
}

/// A deterministic, non-trivial payload.
fn payload(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `imgtool sign` with the brief's options plus `extra`; returns the image.
fn imgtool_sign(dir: &Path, key: &Path, payload: &[u8], extra: &[&str]) -> Vec<u8> {
    let input = dir.join("payload.bin");
    let output = dir.join("signed.bin");
    std::fs::write(&input, payload).unwrap();
    let slot = format!("{SLOT_SIZE:#x}");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"sign",
        &"-k",
        &key,
        &"--header-size",
        &"0x200",
        &"--pad-header",
        &"--align",
        &"8",
        &"--version",
        &"1.2.3+4",
        &"--security-counter",
        &"5",
        &"--slot-size",
        &slot,
    ];
    for e in extra {
        args.push(e);
    }
    args.push(&input);
    args.push(&output);
    imgtool_ok(&args);
    std::fs::read(output).unwrap()
}

fn imgtool_images_verify_here(kt: KeyType) {
    let dir = TempDir::new().unwrap();
    let key = imgtool_keygen(dir.path(), "key.pem", kt);
    let other = imgtool_keygen(dir.path(), "other.pem", kt);
    let trusted = imgtool_pub(dir.path(), &key);
    let untrusted = imgtool_pub(dir.path(), &other);
    assert_eq!(trusted.key_type(), kt);
    let data = payload(3000, 7);

    let signed = imgtool_sign(dir.path(), &key, &data, &[]);
    let image = parse(&signed).unwrap();
    assert_eq!(image.version(), ImageVersion::new(1, 2, 3, 4));
    assert_eq!(image.version().to_string(), "1.2.3+4");
    assert_eq!(image.security_counter(), Some(5));
    assert_eq!(image.payload(), &data[..]);
    assert_eq!(image.header().hdr_size, 0x200);
    assert_eq!(image.len(), signed.len());
    image.check_hash().unwrap();
    let both = [untrusted.clone(), trusted.clone()];
    assert_eq!(
        image.check_signature(&both).unwrap().key_hash(),
        trusted.key_hash()
    );
    image.verify(std::slice::from_ref(&trusted), 5).unwrap();
    assert_eq!(
        image.verify(std::slice::from_ref(&trusted), 6),
        Err(VerifyError::SecurityCounterTooLow { counter: 5, min: 6 })
    );

    // Signed by a key that is not trusted.
    assert_eq!(
        image
            .check_signature(std::slice::from_ref(&untrusted))
            .unwrap_err(),
        VerifyError::UnknownKey
    );
    assert_eq!(
        image.verify(&[untrusted], 0).unwrap_err(),
        VerifyError::UnknownKey
    );

    // One payload byte flipped: the hash and the signature both fail.
    let mut tampered = signed.clone();
    tampered[0x200 + 1234] ^= 0x01;
    let image = parse(&tampered).unwrap();
    assert_eq!(image.check_hash(), Err(VerifyError::HashMismatch));
    assert_eq!(
        image
            .check_signature(std::slice::from_ref(&trusted))
            .unwrap_err(),
        VerifyError::BadSignature
    );
    assert_eq!(
        image.verify(std::slice::from_ref(&trusted), 0),
        Err(VerifyError::HashMismatch)
    );

    // `--public-key-format full`: a PUBKEY TLV instead of KEYHASH.
    let full = imgtool_sign(dir.path(), &key, &data, &["--public-key-format", "full"]);
    let image = parse(&full).unwrap();
    assert!(matches!(
        image.key_id(),
        Some(mcuboot_image::KeyId::PublicKey(_))
    ));
    image.verify(std::slice::from_ref(&trusted), 5).unwrap();

    // Our key loading agrees with imgtool on the private key and on the
    // exact public key bytes that KEYHASH hashes.
    let ours = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
    assert_eq!(ours.key_type(), kt);
    assert_eq!(ours.public_key_der(), imgtool_pub_raw(dir.path(), &key));
    assert_eq!(ours.trusted_key().key_hash(), trusted.key_hash());
}

#[test]
fn imgtool_signed_ed25519_verifies_here() {
    imgtool_images_verify_here(KeyType::Ed25519);
}

#[test]
fn imgtool_signed_ecdsa_p256_verifies_here() {
    imgtool_images_verify_here(KeyType::EcdsaP256);
}

/// imgtool `--pad-sig` zero-pads ECDSA signatures to 72 bytes (for old
/// MCUboot); over a few signatures some need 1-2 bytes of padding.
#[test]
fn imgtool_padded_ecdsa_signatures_verify_here() {
    let dir = TempDir::new().unwrap();
    let key = imgtool_keygen(dir.path(), "key.pem", KeyType::EcdsaP256);
    let trusted = imgtool_pub(dir.path(), &key);
    for seed in 0..4 {
        let signed = imgtool_sign(dir.path(), &key, &payload(500, seed), &["--pad-sig"]);
        let image = parse(&signed).unwrap();
        let sig = image.tlvs().find(|t| t.tlv_type == 0x22).unwrap();
        assert_eq!(sig.value.len(), 72);
        image.verify(std::slice::from_ref(&trusted), 5).unwrap();
    }
}

fn our_images_pass_imgtool(kt: KeyType) {
    let dir = TempDir::new().unwrap();
    let opts = SignOptions {
        version: ImageVersion::new(1, 2, 3, 4),
        security_counter: Some(5),
        header_size: 0x200,
        slot_size: Some(SLOT_SIZE),
        pad: None,
        custom_tlvs: Vec::new(),
    };
    let data = payload(2500, 11);

    // A key made by imgtool, and one made here (loadable by imgtool).
    let imgtool_key = imgtool_keygen(dir.path(), "imgtool.pem", kt);
    let our_key = SigningKey::generate(kt);
    let our_key_path = dir.path().join("ours.pem");
    std::fs::write(&our_key_path, our_key.to_pkcs8_pem()).unwrap();
    assert_eq!(
        our_key.public_key_der(),
        imgtool_pub_raw(dir.path(), &our_key_path)
    );
    let loaded = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&imgtool_key).unwrap());

    for (key, path) in [(loaded.unwrap(), &imgtool_key), (our_key, &our_key_path)] {
        let image = sign(&data, &key, &opts).unwrap();
        let file = dir.path().join("ours.bin");
        std::fs::write(&file, &image).unwrap();
        let out = imgtool_ok(&[&"verify", &"-k", path, &file]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("Image was correctly validated"), "{stdout}");
        assert!(stdout.contains("Image version: 1.2.3+4"), "{stdout}");
        // And it verifies here, with the key as imgtool prints it.
        let trusted = imgtool_pub(dir.path(), path);
        parse(&image).unwrap().verify(&[trusted], 5).unwrap();

        // imgtool is not a rubber stamp: it rejects a flipped payload byte.
        let mut tampered = image.clone();
        tampered[0x200 + 100] ^= 0x80;
        std::fs::write(&file, &tampered).unwrap();
        let out = imgtool(&[&"verify", &"-k", path, &file]);
        assert!(!out.status.success(), "imgtool accepted a tampered image");
    }
}

#[test]
fn our_ed25519_images_pass_imgtool_verify() {
    our_images_pass_imgtool(KeyType::Ed25519);
}

#[test]
fn our_ecdsa_p256_images_pass_imgtool_verify() {
    our_images_pass_imgtool(KeyType::EcdsaP256);
}

/// imgtool `--pad` / `--pad --confirm` write the trailer at the slot's end;
/// our trailer decoding reads it as a pending test / permanent swap, and
/// our own padded output requests the same.
#[test]
fn imgtool_padded_slot_trailers_decode_here() {
    let dir = TempDir::new().unwrap();
    let key = imgtool_keygen(dir.path(), "key.pem", KeyType::Ed25519);
    let trusted = imgtool_pub(dir.path(), &key);
    let ours = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&key).unwrap()).unwrap();
    let data = payload(1000, 3);
    for (extra, pad, action) in [
        (&["--pad"][..], PadTrailer::Test, BootAction::SwapTest),
        (
            &["--pad", "--confirm"][..],
            PadTrailer::Permanent,
            BootAction::SwapPermanent,
        ),
    ] {
        let theirs = imgtool_sign(dir.path(), &key, &data, extra);
        let opts = SignOptions {
            version: ImageVersion::new(1, 2, 3, 4),
            security_counter: Some(5),
            header_size: 0x200,
            slot_size: Some(SLOT_SIZE),
            pad: Some(pad),
            custom_tlvs: Vec::new(),
        };
        let mine = sign(&data, &ours, &opts).unwrap();
        for slot in [&theirs, &mine] {
            assert_eq!(slot.len(), SLOT_SIZE as usize);
            // The image parses from the whole slot; the rest is ignored.
            let image = parse(slot).unwrap();
            image.verify(std::slice::from_ref(&trusted), 5).unwrap();
            let t = Trailer::from_slot(slot).unwrap();
            assert_eq!(
                trailer::boot_decision(&Trailer::ERASED, &t, true),
                action,
                "{extra:?}"
            );
        }
        // Same magic and flags as imgtool (we also record the swap type).
        let (a, b) = (
            Trailer::from_slot(&theirs).unwrap(),
            Trailer::from_slot(&mine).unwrap(),
        );
        assert_eq!(
            (a.magic, a.image_ok, a.copy_done),
            (b.magic, b.image_ok, b.copy_done)
        );
    }
}

/// The board identity TLV is imgtool's `--custom-tlv`: with the same
/// (deterministic, Ed25519) key imgtool and `sign` write the same image.
#[test]
fn custom_tlvs_are_written_as_imgtool_writes_them() {
    let dir = TempDir::new().unwrap();
    let key_path = imgtool_keygen(dir.path(), "k.pem", KeyType::Ed25519);
    let key = SigningKey::from_pkcs8_pem(&std::fs::read_to_string(&key_path).unwrap()).unwrap();
    let data = payload(1500, 3);
    let board = b"sacbench-native";
    let theirs = imgtool_sign(
        dir.path(),
        &key_path,
        &data,
        &["--custom-tlv", "0xa0", &format!("0x{}", hex_of(board))],
    );
    let opts = SignOptions {
        version: ImageVersion::new(1, 2, 3, 4),
        security_counter: Some(5),
        header_size: 0x200,
        slot_size: Some(SLOT_SIZE),
        pad: None,
        custom_tlvs: vec![(mcuboot_image::tlv::TLV_BOARD, board.to_vec())],
    };
    let mine = sign(&data, &key, &opts).unwrap();
    let image = parse(&theirs).unwrap();
    assert_eq!(
        image.as_bytes(),
        &mine[..],
        "imgtool's image, byte for byte"
    );
    let tlv = image
        .tlvs()
        .find(|t| t.tlv_type == mcuboot_image::tlv::TLV_BOARD)
        .unwrap();
    assert!(tlv.protected);
    assert_eq!(tlv.value, board);
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
