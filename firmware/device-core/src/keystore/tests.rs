use alloc::format;
use alloc::vec;
use alloc::vec::Vec;

use super::*;

fn key(n: u32) -> PrivateKey {
    PrivateKey {
        alg: KeyAlg::EcdsaP256,
        pkcs8_der: format!("pkcs8-key-{n}").into_bytes(),
    }
}

fn cert(n: u32) -> Certificate {
    Certificate::new(
        format!("cert-for-key-{n}").into_bytes(),
        1_800_000_000_000 + u64::from(n),
        1_000 * u64::from(n),
    )
}

fn erased() -> Vec<u8> {
    vec![0xff; REGION_SIZE]
}

/// What a power cut may leave: the credential in use and the pending one.
/// (`seq` and the header copy differ legitimately between "old" and "a torn
/// write that changed nothing".)
fn logical(ks: &Keystore) -> (Option<Credential>, Option<Pending>, bool) {
    (ks.active().cloned(), ks.pending().cloned(), ks.is_damaged())
}

/// Region contents after `writes[..i]` fully and `writes[i]` torn in every
/// way flash or a file can tear it: a prefix of the new bytes over the old
/// ones; a prefix of new bytes over an erased sector (erase done, program
/// cut); a partially erased sector (erase cut).
fn cut_states(region: &[u8], writes: &[Write]) -> Vec<Vec<u8>> {
    let mut states = Vec::new();
    let mut base = region.to_vec();
    for w in writes {
        states.push(base.clone());
        let start = w.offset as usize;
        let len = w.bytes.len();
        let cuts = (0..=70).chain((71..len).step_by(97)).chain([len - 1]);
        for k in cuts {
            let mut over_old = base.clone();
            over_old[start..start + k].copy_from_slice(&w.bytes[..k]);
            states.push(over_old);
            let mut over_erased = base.clone();
            over_erased[start..start + len].fill(0xff);
            over_erased[start..start + k].copy_from_slice(&w.bytes[..k]);
            states.push(over_erased);
            let mut half_erased = base.clone();
            half_erased[start..start + k].fill(0xff);
            states.push(half_erased);
        }
        apply(&mut base, core::slice::from_ref(w)).unwrap();
    }
    states.push(base);
    states
}

/// Runs `op` on the decoded `region`, checks the planned state equals what
/// the written region decodes to, and that a cut anywhere leaves the old or
/// the new state. Returns the new region.
fn check_atomic(region: &[u8], op: impl FnOnce(&mut Keystore) -> Vec<Write>) -> Vec<u8> {
    check_atomic_via(region, op, None)
}

/// [`check_atomic`], also allowing one documented intermediate state.
fn check_atomic_via(
    region: &[u8],
    op: impl FnOnce(&mut Keystore) -> Vec<Write>,
    between: Option<(Option<Credential>, Option<Pending>, bool)>,
) -> Vec<u8> {
    let old = Keystore::decode(region).unwrap();
    let mut planned = old.clone();
    let writes = op(&mut planned);
    for w in &writes {
        assert_eq!(w.bytes.len(), SECTOR_SIZE, "a write must cover one sector");
        assert_eq!(w.offset as usize % SECTOR_SIZE, 0);
    }
    let mut new_region = region.to_vec();
    apply(&mut new_region, &writes).unwrap();
    assert_eq!(
        Keystore::decode(&new_region).unwrap(),
        planned,
        "the plan and the written region disagree"
    );
    let (before, after) = (logical(&old), logical(&planned));
    for (i, state) in cut_states(region, &writes).iter().enumerate() {
        let got = logical(&Keystore::decode(state).unwrap());
        assert!(
            got == before || got == after || Some(&got) == between.as_ref(),
            "cut state {i}: {got:?}\nold {before:?}\nnew {after:?}"
        );
    }
    new_region
}

fn provision(region: &[u8], n: u32) -> Vec<u8> {
    let region = check_atomic(region, |ks| ks.store_pending_key(key(n)).unwrap());
    let region = check_atomic(&region, |ks| ks.store_pending_cert(cert(n)).unwrap());
    check_atomic(&region, |ks| ks.commit_pending().unwrap())
}

#[test]
fn crc32_is_the_ieee_one() {
    assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    assert_eq!(crc32(b""), 0);
}

#[test]
fn an_erased_region_is_empty_and_a_short_one_an_error() {
    let ks = Keystore::decode(&erased()).unwrap();
    assert!(ks.is_empty() && ks.active().is_none() && ks.pending().is_none());
    assert_eq!(ks.pending_slot(), 0);
    assert_eq!(
        Keystore::decode(&[0xff; 100]),
        Err(KeystoreError::RegionTooSmall { len: 100 })
    );
    // Zeroed (never formatted) flash is empty too, not an error.
    assert!(Keystore::decode(&vec![0; REGION_SIZE]).unwrap().is_empty());
}

#[test]
fn provisioning_goes_through_pending_and_every_cut_is_old_or_new() {
    let region = provision(&erased(), 1);
    let ks = Keystore::decode(&region).unwrap();
    let active = ks.active().unwrap();
    assert_eq!(
        (active.slot, &active.key, &active.cert),
        (0, &key(1), &cert(1))
    );
    assert!(ks.pending().is_none() && !ks.is_damaged());
    // The thumbprint is the SHA-256 of the DER, lower-case hex.
    assert_eq!(
        Certificate::new(b"abc".to_vec(), 0, 0).thumbprint_hex(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn rotations_alternate_slots_and_survive_a_cut_at_every_byte() {
    let mut region = provision(&erased(), 1);
    for n in 2..6 {
        let before = Keystore::decode(&region).unwrap().active().unwrap().slot;
        region = check_atomic(&region, |ks| ks.store_pending_key(key(n)).unwrap());
        let ks = Keystore::decode(&region).unwrap();
        let pending = ks.pending().unwrap();
        assert_ne!(
            pending.slot, before,
            "a pending key must never go to the active slot"
        );
        // The slot's certificate area still holds credential n-2's
        // certificate: it must not be taken for the pending one.
        assert_eq!(pending.cert, None);
        assert_eq!(ks.active().unwrap().key, key(n - 1));
        region = check_atomic(&region, |ks| ks.store_pending_cert(cert(n)).unwrap());
        assert_eq!(
            Keystore::decode(&region).unwrap().active().unwrap().cert,
            cert(n - 1)
        );
        region = check_atomic(&region, |ks| ks.commit_pending().unwrap());
        let active = Keystore::decode(&region)
            .unwrap()
            .active()
            .cloned()
            .unwrap();
        assert_eq!((active.key, active.cert), (key(n), cert(n)));
        assert_ne!(active.slot, before);
    }
}

#[test]
fn discard_and_replace_pending_leave_the_active_credential_alone() {
    let region = provision(&erased(), 1);
    let region = check_atomic(&region, |ks| ks.store_pending_key(key(2)).unwrap());
    // A second pending key replaces the first (e.g. a retried rotation),
    // passing through "no pending".
    let active = Keystore::decode(&region).unwrap().active().cloned();
    let region = check_atomic_via(
        &region,
        |ks| ks.store_pending_key(key(3)).unwrap(),
        Some((active, None, false)),
    );
    assert_eq!(
        Keystore::decode(&region).unwrap().pending().unwrap().key,
        key(3)
    );
    let region = check_atomic(&region, |ks| ks.store_pending_cert(cert(3)).unwrap());
    let region = check_atomic(&region, |ks| ks.discard_pending());
    let ks = Keystore::decode(&region).unwrap();
    assert!(ks.pending().is_none());
    assert_eq!(ks.active().unwrap().key, key(1));
    // Discarding nothing writes nothing.
    assert!(ks.clone().discard_pending().is_empty());
}

#[test]
fn erase_all_is_atomic_and_leaves_an_erased_region() {
    let region = provision(&erased(), 1);
    let region = check_atomic(&region, |ks| ks.store_pending_key(key(2)).unwrap());
    let region = check_atomic(&region, |ks| ks.erase_all());
    assert_eq!(region, erased());
    assert!(Keystore::decode(&region).unwrap().is_empty());
    // Erasing an empty store just erases.
    let region = check_atomic(&region, |ks| ks.erase_all());
    assert_eq!(region, erased());
}

#[test]
fn operations_refuse_what_they_cannot_do() {
    let mut ks = Keystore::decode(&erased()).unwrap();
    assert_eq!(
        ks.store_pending_cert(cert(1)),
        Err(KeystoreError::NoPending)
    );
    assert_eq!(ks.commit_pending(), Err(KeystoreError::NoPending));
    assert_eq!(
        ks.replace_active_cert_in_place(cert(1)),
        Err(KeystoreError::NoActive)
    );
    let big = PrivateKey {
        alg: KeyAlg::Rsa,
        pkcs8_der: vec![1; MAX_KEY_LEN + 1],
    };
    assert_eq!(
        ks.store_pending_key(big),
        Err(KeystoreError::KeyTooLarge {
            len: MAX_KEY_LEN + 1
        })
    );
    ks.store_pending_key(key(1)).unwrap();
    assert_eq!(ks.commit_pending(), Err(KeystoreError::PendingIncomplete));
    let big = Certificate::new(vec![1; MAX_CERT_LEN + 1], 0, 0);
    assert_eq!(
        ks.store_pending_cert(big),
        Err(KeystoreError::CertTooLarge {
            len: MAX_CERT_LEN + 1
        })
    );
    // The failed operations planned nothing: the state is just "pending key 1".
    assert_eq!(ks.pending().unwrap().cert, None);
    assert!(ks.active().is_none());
    assert!(apply(
        &mut [0u8; 10],
        &[Write {
            offset: 8,
            bytes: vec![0; 4]
        }]
    )
    .is_err());
}

#[test]
fn the_largest_records_round_trip() {
    let region = check_atomic(&erased(), |ks| {
        ks.store_pending_key(PrivateKey {
            alg: KeyAlg::Ed25519,
            pkcs8_der: vec![7; MAX_KEY_LEN],
        })
        .unwrap()
    });
    let region = check_atomic(&region, |ks| {
        ks.store_pending_cert(Certificate::new(vec![9; MAX_CERT_LEN], 5, 6))
            .unwrap()
    });
    let region = check_atomic(&region, |ks| ks.commit_pending().unwrap());
    let ks = Keystore::decode(&region).unwrap();
    assert_eq!(ks.active().unwrap().key.pkcs8_der.len(), MAX_KEY_LEN);
    assert_eq!(ks.active().unwrap().cert.der.len(), MAX_CERT_LEN);
}

#[test]
fn a_corrupted_active_record_is_reported_as_damage_not_as_another_credential() {
    let mut region = provision(&erased(), 1);
    let cert_sector = 3 * SECTOR_SIZE;
    region[cert_sector + CERT_HEAD] ^= 1;
    let ks = Keystore::decode(&region).unwrap();
    assert!(ks.is_damaged() && ks.active().is_none() && !ks.is_empty());
    for tag in 1..=4 {
        assert_eq!(KeyAlg::from_tag(tag).unwrap().tag(), tag);
    }
    assert_eq!(KeyAlg::from_tag(0), None);
}

#[test]
fn in_place_replacement_is_not_atomic() {
    // The rotate-non-atomic fault's writes: a cut between them leaves the
    // new certificate with the old key, which is neither old nor new.
    let mut region = provision(&erased(), 1);
    let mut ks = Keystore::decode(&region).unwrap();
    apply(
        &mut region,
        &ks.replace_active_cert_in_place(cert(2)).unwrap(),
    )
    .unwrap();
    let mid = Keystore::decode(&region)
        .unwrap()
        .active()
        .cloned()
        .unwrap();
    assert_eq!((mid.key, mid.cert), (key(1), cert(2)));
    apply(
        &mut region,
        &ks.replace_active_key_in_place(key(2)).unwrap(),
    )
    .unwrap();
    assert_eq!(Keystore::decode(&region).unwrap(), ks);
    assert_eq!(ks.active().unwrap().key, key(2));
}

#[test]
fn key_material_is_never_printed() {
    let text = format!("{:?}", key(42));
    assert!(!text.contains("pkcs8-key-42"), "{text}");
}

#[test]
fn a_certificates_not_before_survives_the_record() {
    let mut ks = Keystore::decode(&erased()).unwrap();
    let c = Certificate::new(
        b"short-lived".to_vec(),
        1_800_000_075_000,
        1_800_000_010_000,
    )
    .valid_from(1_800_000_000_000);
    let mut region = erased();
    let mut writes = ks.store_pending_key(key(1)).unwrap();
    writes.extend(ks.store_pending_cert(c.clone()).unwrap());
    writes.extend(ks.commit_pending().unwrap());
    for w in writes {
        region[w.offset as usize..][..w.bytes.len()].copy_from_slice(&w.bytes);
    }
    let back = Keystore::decode(&region).unwrap();
    assert_eq!(back.active().unwrap().cert, c);
    assert_eq!(back.active().unwrap().cert.not_before_ms, 1_800_000_000_000);
}
