//! The persistent credential store: a pure record format over a byte region
//! that the shell maps to a flash region (or a file, for the emulated board).
//!
//! [`Keystore::decode`] reads a region; every change is planned in memory
//! and returned as a list of [`Write`]s that the shell must apply **in
//! order**. After the last write the region decodes to exactly the
//! in-memory state; after a power cut at any point (even in the middle of a
//! write) it decodes to the state before the operation or the state after
//! it, never to a mixture.
//!
//! # Layout (little-endian, 4 KiB sectors)
//! ```text
//! offset  sector
//! 0x0000  header copy 0
//! 0x1000  header copy 1
//! 0x2000  slot 0: key record       0x3000  slot 0: certificate record
//! 0x4000  slot 1: key record       0x5000  slot 1: certificate record
//! ```
//! Every write covers one whole sector (the record padded with 0xff), so a
//! flash shell erases that sector and programs it; a file shell just writes.
//!
//! * header: `"SBKH"`, version 1, active slot, pending slot (0xff = none),
//!   0, seq u32, active generation u32, pending generation u32, CRC-32.
//! * key record: `"SBKK"`, generation u32, length u32, algorithm tag u8,
//!   3 × 0, PKCS#8 DER, CRC-32.
//! * certificate record: `"SBKC"`, generation u32, length u32, lifetime
//!   u32 (notAfter − notBefore in seconds; 0 = unknown, notBefore taken as
//!   stored-at), notAfter ms u64, stored-at ms u64, SHA-256 thumbprint (32), DER,
//!   CRC-32. The thumbprint must equal the SHA-256 of the DER.
//!
//! The CRC-32 (IEEE) covers the record from its magic up to the CRC.
//!
//! # Why every operation is atomic
//! * Of the two header copies the valid one with the higher `seq` wins. A
//!   header is always written to the *other* copy, with `seq + 1`, so the
//!   header in force is never touched; a torn header write fails its CRC and
//!   the old one stays in force. Flipping the header is the single commit
//!   point of every operation.
//! * Slot records belong to a credential only if their generation equals
//!   the one the header names for that slot. A generation is the `seq` of
//!   the header that introduced the credential, so it is never reused, and a
//!   stale record from an earlier credential in the same slot never matches.
//! * Records are only ever written into the slot that the header in force
//!   does not name as active, so the active credential is never touched
//!   until a header write makes the new one active.
//!
//! So: storing a pending key writes the key record, then a header naming it
//! pending (replacing a pending credential first writes a header without
//! it); storing the pending certificate writes one record (it matches
//! the pending generation, so it appears complete or not at all);
//! committing writes one header. Erasing first writes an "empty" header and
//! only then erases the rest.
//!
//! The one exception is [`Keystore::replace_active_cert_in_place`] /
//! [`Keystore::replace_active_key_in_place`], which exist only for the
//! `rotate-non-atomic` fault (see `rotation`).

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use sha2::{Digest, Sha256};

/// Size of a sector; every write covers exactly one.
pub const SECTOR_SIZE: usize = 0x1000;
/// Size of the whole region the shell must provide.
pub const REGION_SIZE: usize = 6 * SECTOR_SIZE;
/// Number of credential slots.
pub const SLOTS: u8 = 2;

const HEADER_MAGIC: &[u8; 4] = b"SBKH";
const KEY_MAGIC: &[u8; 4] = b"SBKK";
const CERT_MAGIC: &[u8; 4] = b"SBKC";
const VERSION: u8 = 1;
const NONE: u8 = 0xff;
const HEADER_LEN: usize = 24;
const KEY_HEAD: usize = 16;
const CERT_HEAD: usize = 64;

/// Largest private key (PKCS#8 DER) a slot holds.
pub const MAX_KEY_LEN: usize = SECTOR_SIZE - KEY_HEAD - 4;
/// Largest certificate (DER) a slot holds.
pub const MAX_CERT_LEN: usize = SECTOR_SIZE - CERT_HEAD - 4;

fn header_offset(copy: usize) -> usize {
    copy * SECTOR_SIZE
}

fn key_offset(slot: u8) -> usize {
    (2 + 2 * usize::from(slot)) * SECTOR_SIZE
}

fn cert_offset(slot: u8) -> usize {
    key_offset(slot) + SECTOR_SIZE
}

/// Algorithm of a stored private key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum KeyAlg {
    /// ECDSA on P-256 (the reference device's default).
    EcdsaP256 = 1,
    /// ECDSA on P-384.
    EcdsaP384 = 2,
    /// RSA (≥ 2048 bits).
    Rsa = 3,
    /// Ed25519.
    Ed25519 = 4,
}

impl KeyAlg {
    /// The tag byte stored in a key record.
    pub fn tag(self) -> u8 {
        self as u8
    }

    /// The algorithm of a tag byte.
    pub fn from_tag(tag: u8) -> Option<KeyAlg> {
        [
            KeyAlg::EcdsaP256,
            KeyAlg::EcdsaP384,
            KeyAlg::Rsa,
            KeyAlg::Ed25519,
        ]
        .into_iter()
        .find(|a| a.tag() == tag)
    }
}

/// A private key as stored: algorithm and PKCS#8 DER.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    /// The key's algorithm (the record's tag byte).
    pub alg: KeyAlg,
    /// The key, PKCS#8 DER (at most [`MAX_KEY_LEN`] bytes); `Debug` never
    /// prints it.
    pub pkcs8_der: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    // Never print key material, not even in test failures or logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrivateKey({:?}, {} bytes)",
            self.alg,
            self.pkcs8_der.len()
        )
    }
}

/// A stored certificate and what the device needs to know about it without
/// parsing X.509.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The X.509 certificate, DER, as the hub issued it (at most
    /// [`MAX_CERT_LEN`] bytes).
    pub der: Vec<u8>,
    /// SHA-256 of `der` (the hub's thumbprint).
    pub thumbprint: [u8; 32],
    /// The certificate's notAfter, Unix ms (the shell parsed it).
    pub not_after_ms: u64,
    /// The certificate's notBefore, Unix ms (the shell parsed it; where
    /// unknown, when it was stored). Renewal is timed on notBefore..notAfter.
    pub not_before_ms: u64,
    /// Device time (Unix ms) when it was stored.
    pub stored_at_ms: u64,
}

impl Certificate {
    /// A certificate record for `der`; computes the thumbprint. Its
    /// notBefore is taken as `stored_at_ms` until [`Certificate::valid_from`].
    pub fn new(der: Vec<u8>, not_after_ms: u64, stored_at_ms: u64) -> Certificate {
        let thumbprint = Sha256::digest(&der).into();
        Certificate {
            der,
            thumbprint,
            not_after_ms,
            not_before_ms: stored_at_ms.min(not_after_ms),
            stored_at_ms,
        }
    }

    /// The same record with its notBefore (Unix ms; ignored unless before notAfter).
    pub fn valid_from(mut self, not_before_ms: u64) -> Certificate {
        if not_before_ms < self.not_after_ms {
            self.not_before_ms = not_before_ms;
        }
        self
    }

    /// notAfter − notBefore in whole seconds, as the record stores it (0:
    /// notBefore unknown, i.e. taken as stored-at).
    fn lifetime_s(&self) -> u32 {
        if self.not_before_ms == self.stored_at_ms.min(self.not_after_ms) {
            return 0;
        }
        let s = self.not_after_ms.saturating_sub(self.not_before_ms) / 1000;
        u32::try_from(s).unwrap_or(u32::MAX)
    }

    /// The thumbprint as the hub writes it: lower-case hex.
    pub fn thumbprint_hex(&self) -> String {
        hex(&self.thumbprint)
    }
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes
        .iter()
        .flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]])
        .map(char::from)
        .collect()
}

/// A complete credential in a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// The slot (0 or 1) holding its key and certificate records.
    pub slot: u8,
    /// Generation its records carry: the `seq` of the header that introduced
    /// it, never reused.
    pub generation: u32,
    /// The private key the certificate is for.
    pub key: PrivateKey,
    /// The client certificate presented to the hub.
    pub cert: Certificate,
}

/// A credential being built in the non-active slot: never used to connect
/// until [`Keystore::commit_pending`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The slot it is written to: never the active credential's.
    pub slot: u8,
    /// Generation its records carry: the `seq` of the header that named it
    /// pending.
    pub generation: u32,
    /// The new private key (stored first).
    pub key: PrivateKey,
    /// The certificate the hub issued for `key`; `None` until stored, and
    /// until then [`Keystore::commit_pending`] refuses.
    pub cert: Option<Certificate>,
}

/// One write the shell must perform: `bytes` at `offset` of the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// Offset in the region, bytes; always the start of a sector.
    pub offset: u32,
    /// The sector's new contents: exactly [`SECTOR_SIZE`] bytes.
    pub bytes: Vec<u8>,
}

/// What can go wrong planning a keystore operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeystoreError {
    /// The region is smaller than [`REGION_SIZE`].
    RegionTooSmall {
        /// Length of the region given, bytes.
        len: usize,
    },
    /// A write falls outside the region.
    WriteOutOfRange {
        /// Where the write starts, bytes into the region.
        offset: u32,
        /// Length of the write, bytes.
        len: usize,
    },
    /// A private key longer than [`MAX_KEY_LEN`].
    KeyTooLarge {
        /// Length of the key's PKCS#8 DER, bytes.
        len: usize,
    },
    /// A certificate longer than [`MAX_CERT_LEN`].
    CertTooLarge {
        /// Length of the certificate's DER, bytes.
        len: usize,
    },
    /// The operation needs a pending key and there is none.
    NoPending,
    /// Commit needs the pending certificate and it was not stored.
    PendingIncomplete,
    /// The operation needs an active credential and there is none.
    NoActive,
}

impl fmt::Display for KeystoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeystoreError::RegionTooSmall { len } => {
                write!(f, "keystore region is {len} bytes, needs {REGION_SIZE}")
            }
            KeystoreError::WriteOutOfRange { offset, len } => {
                write!(
                    f,
                    "write of {len} bytes at {offset:#x} is outside the keystore region"
                )
            }
            KeystoreError::KeyTooLarge { len } => {
                write!(f, "private key of {len} bytes, at most {MAX_KEY_LEN}")
            }
            KeystoreError::CertTooLarge { len } => {
                write!(f, "certificate of {len} bytes, at most {MAX_CERT_LEN}")
            }
            KeystoreError::NoPending => f.write_str("no pending key"),
            KeystoreError::PendingIncomplete => {
                f.write_str("the pending credential has no certificate yet")
            }
            KeystoreError::NoActive => f.write_str("no active credential"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for KeystoreError {}

/// Applies `writes` in order to `region` (for shells that hold the region in
/// memory, and for tests).
pub fn apply(region: &mut [u8], writes: &[Write]) -> Result<(), KeystoreError> {
    for w in writes {
        let start = w.offset as usize;
        let dst =
            region
                .get_mut(start..start + w.bytes.len())
                .ok_or(KeystoreError::WriteOutOfRange {
                    offset: w.offset,
                    len: w.bytes.len(),
                })?;
        dst.copy_from_slice(&w.bytes);
    }
    Ok(())
}

/// The decoded (or planned) state of the keystore.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Keystore {
    /// `seq` of the header in force (0: none).
    seq: u32,
    /// Which header copy is in force.
    in_force: Option<usize>,
    active: Option<Credential>,
    pending: Option<Pending>,
    damaged: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    seq: u32,
    active: Option<(u8, u32)>,
    pending: Option<(u8, u32)>,
}

impl Keystore {
    /// Decodes a region. An erased region (all 0xff) — or one whose headers
    /// are all invalid — is an empty keystore. Invalid records are not
    /// errors: they are what an interrupted write leaves, and the format
    /// makes them harmless.
    pub fn decode(region: &[u8]) -> Result<Keystore, KeystoreError> {
        if region.len() < REGION_SIZE {
            return Err(KeystoreError::RegionTooSmall { len: region.len() });
        }
        let mut best: Option<(usize, Header)> = None;
        for copy in 0..2 {
            if let Some(h) = decode_header(&region[header_offset(copy)..][..SECTOR_SIZE]) {
                if best.is_none_or(|(_, b)| h.seq > b.seq) {
                    best = Some((copy, h));
                }
            }
        }
        let Some((copy, header)) = best else {
            return Ok(Keystore::default());
        };
        let mut ks = Keystore {
            seq: header.seq,
            in_force: Some(copy),
            ..Keystore::default()
        };
        if let Some((slot, generation)) = header.active {
            let key = decode_key(region, slot, generation);
            let cert = decode_cert(region, slot, generation);
            match (key, cert) {
                (Some(key), Some(cert)) => {
                    ks.active = Some(Credential {
                        slot,
                        generation,
                        key,
                        cert,
                    })
                }
                // The header names a credential that is not there: only a
                // non-atomic writer (the fault) or a flash defect does that.
                _ => ks.damaged = true,
            }
        }
        if let Some((slot, generation)) = header.pending {
            // A pending credential whose key is gone is no credential at all.
            if let Some(key) = decode_key(region, slot, generation) {
                let cert = decode_cert(region, slot, generation);
                ks.pending = Some(Pending {
                    slot,
                    generation,
                    key,
                    cert,
                });
            }
        }
        Ok(ks)
    }

    /// The credential to connect with, if any.
    pub fn active(&self) -> Option<&Credential> {
        self.active.as_ref()
    }

    /// The credential being built, if any.
    pub fn pending(&self) -> Option<&Pending> {
        self.pending.as_ref()
    }

    /// The header names an active credential whose records are missing or
    /// invalid (the device has no working credential).
    pub fn is_damaged(&self) -> bool {
        self.damaged
    }

    /// Nothing stored at all.
    pub fn is_empty(&self) -> bool {
        self.active.is_none() && self.pending.is_none() && !self.damaged
    }

    /// The slot a new pending credential goes to: never the active one.
    pub fn pending_slot(&self) -> u8 {
        match &self.active {
            Some(c) => (c.slot + 1) % SLOTS,
            None => 0,
        }
    }

    /// Plans storing `key` as the pending key: the key record, then the
    /// header naming it pending. An existing pending credential is first
    /// discarded (a header write), so a cut leaves the old pending, none, or
    /// the new one — the active credential is never touched.
    pub fn store_pending_key(&mut self, key: PrivateKey) -> Result<Vec<Write>, KeystoreError> {
        if key.pkcs8_der.len() > MAX_KEY_LEN {
            return Err(KeystoreError::KeyTooLarge {
                len: key.pkcs8_der.len(),
            });
        }
        let mut writes = self.discard_pending();
        let slot = self.pending_slot();
        let generation = self.seq + 1;
        writes.push(key_write(slot, generation, &key));
        self.pending = Some(Pending {
            slot,
            generation,
            key,
            cert: None,
        });
        writes.push(self.header_write());
        Ok(writes)
    }

    /// Plans storing the pending credential's certificate: one record in the
    /// pending slot (it belongs to the pending generation, so it shows up
    /// whole or not at all).
    pub fn store_pending_cert(&mut self, cert: Certificate) -> Result<Vec<Write>, KeystoreError> {
        if cert.der.len() > MAX_CERT_LEN {
            return Err(KeystoreError::CertTooLarge {
                len: cert.der.len(),
            });
        }
        let pending = self.pending.as_mut().ok_or(KeystoreError::NoPending)?;
        let write = cert_write(pending.slot, pending.generation, &cert);
        pending.cert = Some(cert);
        Ok(vec![write])
    }

    /// Plans making the complete pending credential the active one: a
    /// single header write, the commit point.
    pub fn commit_pending(&mut self) -> Result<Vec<Write>, KeystoreError> {
        let pending = self.pending.as_ref().ok_or(KeystoreError::NoPending)?;
        let cert = pending
            .cert
            .clone()
            .ok_or(KeystoreError::PendingIncomplete)?;
        let pending = self.pending.take().ok_or(KeystoreError::NoPending)?;
        self.active = Some(Credential {
            slot: pending.slot,
            generation: pending.generation,
            key: pending.key,
            cert,
        });
        self.damaged = false;
        Ok(vec![self.header_write()])
    }

    /// Plans forgetting the pending credential (one header write; nothing if
    /// there is none). The active credential is untouched.
    pub fn discard_pending(&mut self) -> Vec<Write> {
        if self.pending.take().is_none() {
            return Vec::new();
        }
        vec![self.header_write()]
    }

    /// Plans erasing everything: first a header that names nothing (the
    /// commit point), then the other header copy, then that header and the
    /// slots. Every prefix of these writes decodes as "old" or "empty".
    pub fn erase_all(&mut self) -> Vec<Write> {
        let mut writes = Vec::new();
        let first = match self.in_force {
            Some(_) => {
                self.active = None;
                self.pending = None;
                self.damaged = false;
                writes.push(self.header_write());
                self.in_force
            }
            None => None,
        };
        let erased = || vec![0xff; SECTOR_SIZE];
        let order = match first {
            Some(copy) => [1 - copy, copy],
            None => [0, 1],
        };
        for copy in order {
            writes.push(Write {
                offset: header_offset(copy) as u32,
                bytes: erased(),
            });
        }
        for slot in 0..SLOTS {
            writes.push(Write {
                offset: key_offset(slot) as u32,
                bytes: erased(),
            });
            writes.push(Write {
                offset: cert_offset(slot) as u32,
                bytes: erased(),
            });
        }
        *self = Keystore::default();
        writes
    }

    /// **Not atomic; only for the `rotate-non-atomic` fault.** Overwrites the
    /// active slot's certificate in place. Until the matching
    /// [`Keystore::replace_active_key_in_place`] lands, the active
    /// credential pairs the new certificate with the old key.
    pub fn replace_active_cert_in_place(
        &mut self,
        cert: Certificate,
    ) -> Result<Vec<Write>, KeystoreError> {
        if cert.der.len() > MAX_CERT_LEN {
            return Err(KeystoreError::CertTooLarge {
                len: cert.der.len(),
            });
        }
        let active = self.active.as_mut().ok_or(KeystoreError::NoActive)?;
        let write = cert_write(active.slot, active.generation, &cert);
        active.cert = cert;
        Ok(vec![write])
    }

    /// **Not atomic; only for the `rotate-non-atomic` fault.** Overwrites the
    /// active slot's private key in place.
    pub fn replace_active_key_in_place(
        &mut self,
        key: PrivateKey,
    ) -> Result<Vec<Write>, KeystoreError> {
        if key.pkcs8_der.len() > MAX_KEY_LEN {
            return Err(KeystoreError::KeyTooLarge {
                len: key.pkcs8_der.len(),
            });
        }
        let active = self.active.as_mut().ok_or(KeystoreError::NoActive)?;
        let write = key_write(active.slot, active.generation, &key);
        active.key = key;
        Ok(vec![write])
    }

    /// The next header (seq + 1, naming the in-memory active and pending
    /// credentials) written to the copy that is not in force.
    fn header_write(&mut self) -> Write {
        let copy = match self.in_force {
            Some(c) => 1 - c,
            None => 0,
        };
        self.seq += 1;
        self.in_force = Some(copy);
        let header = Header {
            seq: self.seq,
            active: self.active.as_ref().map(|c| (c.slot, c.generation)),
            pending: self.pending.as_ref().map(|p| (p.slot, p.generation)),
        };
        Write {
            offset: header_offset(copy) as u32,
            bytes: encode_header(&header),
        }
    }
}

fn sector(mut record: Vec<u8>) -> Vec<u8> {
    let crc = crc32(&record);
    record.extend_from_slice(&crc.to_le_bytes());
    record.resize(SECTOR_SIZE, 0xff);
    record
}

fn encode_header(h: &Header) -> Vec<u8> {
    let mut r = Vec::with_capacity(SECTOR_SIZE);
    r.extend_from_slice(HEADER_MAGIC);
    r.push(VERSION);
    r.push(h.active.map_or(NONE, |a| a.0));
    r.push(h.pending.map_or(NONE, |p| p.0));
    r.push(0);
    r.extend_from_slice(&h.seq.to_le_bytes());
    r.extend_from_slice(&h.active.map_or(0, |a| a.1).to_le_bytes());
    r.extend_from_slice(&h.pending.map_or(0, |p| p.1).to_le_bytes());
    sector(r)
}

fn key_write(slot: u8, generation: u32, key: &PrivateKey) -> Write {
    let mut r = Vec::with_capacity(SECTOR_SIZE);
    r.extend_from_slice(KEY_MAGIC);
    r.extend_from_slice(&generation.to_le_bytes());
    r.extend_from_slice(&(key.pkcs8_der.len() as u32).to_le_bytes());
    r.extend_from_slice(&[key.alg.tag(), 0, 0, 0]);
    r.extend_from_slice(&key.pkcs8_der);
    Write {
        offset: key_offset(slot) as u32,
        bytes: sector(r),
    }
}

fn cert_write(slot: u8, generation: u32, cert: &Certificate) -> Write {
    let mut r = Vec::with_capacity(SECTOR_SIZE);
    r.extend_from_slice(CERT_MAGIC);
    r.extend_from_slice(&generation.to_le_bytes());
    r.extend_from_slice(&(cert.der.len() as u32).to_le_bytes());
    r.extend_from_slice(&cert.lifetime_s().to_le_bytes());
    r.extend_from_slice(&cert.not_after_ms.to_le_bytes());
    r.extend_from_slice(&cert.stored_at_ms.to_le_bytes());
    r.extend_from_slice(&cert.thumbprint);
    r.extend_from_slice(&cert.der);
    Write {
        offset: cert_offset(slot) as u32,
        bytes: sector(r),
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// The record of `body_len` bytes after `head` bytes, if its CRC holds.
fn checked(sector: &[u8], magic: &[u8; 4], head: usize, body_len: usize) -> Option<usize> {
    let end = head.checked_add(body_len)?;
    if &sector[..4] != magic
        || end + 4 > sector.len()
        || u32_at(sector, end) != crc32(&sector[..end])
    {
        return None;
    }
    Some(end)
}

fn decode_header(s: &[u8]) -> Option<Header> {
    checked(s, HEADER_MAGIC, HEADER_LEN - 4, 0)?;
    if s[4] != VERSION {
        return None;
    }
    let slot = |b: u8, generation: u32| match b {
        NONE => Some(None),
        b if b < SLOTS => Some(Some((b, generation))),
        _ => None,
    };
    Some(Header {
        seq: u32_at(s, 8),
        active: slot(s[5], u32_at(s, 12))?,
        pending: slot(s[6], u32_at(s, 16))?,
    })
}

fn decode_key(region: &[u8], slot: u8, generation: u32) -> Option<PrivateKey> {
    let s = &region[key_offset(slot)..][..SECTOR_SIZE];
    let len = u32_at(s, 8) as usize;
    let end = checked(s, KEY_MAGIC, KEY_HEAD, len)?;
    if u32_at(s, 4) != generation {
        return None;
    }
    Some(PrivateKey {
        alg: KeyAlg::from_tag(s[12])?,
        pkcs8_der: s[KEY_HEAD..end].to_vec(),
    })
}

fn decode_cert(region: &[u8], slot: u8, generation: u32) -> Option<Certificate> {
    let s = &region[cert_offset(slot)..][..SECTOR_SIZE];
    let len = u32_at(s, 8) as usize;
    let end = checked(s, CERT_MAGIC, CERT_HEAD, len)?;
    if u32_at(s, 4) != generation {
        return None;
    }
    let mut cert = Certificate::new(s[CERT_HEAD..end].to_vec(), u64_at(s, 16), u64_at(s, 24));
    let lifetime_ms = u64::from(u32_at(s, 12)) * 1000;
    if lifetime_ms != 0 {
        let from = cert.not_after_ms.saturating_sub(lifetime_ms);
        cert = cert.valid_from(from);
    }
    (cert.thumbprint[..] == s[32..64]).then_some(cert)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib), bitwise: the records are small
/// and a 1 KiB table is not worth the flash.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[cfg(test)]
mod tests;
