//! The ids (`$.mid`) of the cloud-to-device commands already applied, so that a
//! redelivered command is acknowledged without being applied twice.
//!
//! The hub redelivers every command that was not PUBACKed, on the next
//! session, possibly after a power cut; the device therefore has to remember
//! across power cuts what it applied. The set is bounded (the hub's queue holds
//! at most 50 commands and redelivers in order, so the last 128 ids cover every
//! command that can still come back) and has a compact byte form that the shell
//! persists before the PUBACK goes out.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// How many applied ids are remembered; the oldest is forgotten first.
pub const APPLIED_CAPACITY: usize = 128;

/// Longest `$.mid` accepted, in bytes (IoT Hub allows 128 characters; the
/// encoding stores the length in one byte).
pub const MAX_MID_LEN: usize = 255;

const MAGIC: &[u8; 2] = b"AI";
const VERSION: u8 = 1;

/// Bounded, insertion-ordered set of applied command ids.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedIds {
    ids: VecDeque<String>,
}

/// Why persisted bytes were not an [`AppliedIds`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppliedIdsError {
    /// Not this format or not this version.
    BadHeader,
    /// Ends early, has bytes left over, or an entry is not UTF-8.
    Corrupt,
    /// The checksum does not match: a torn or damaged write.
    Checksum,
}

impl fmt::Display for AppliedIdsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AppliedIdsError::BadHeader => "not an applied-ids record (magic or version)",
            AppliedIdsError::Corrupt => "applied-ids record is truncated or malformed",
            AppliedIdsError::Checksum => "applied-ids record checksum mismatch",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for AppliedIdsError {}

impl AppliedIds {
    /// An empty set (a device that never applied a command).
    pub fn new() -> Self {
        Self::default()
    }

    /// True when `mid` was applied (and is still remembered).
    pub fn contains(&self, mid: &str) -> bool {
        self.ids.iter().any(|m| m == mid)
    }

    /// Records `mid` as applied; false when it already was. When full, the
    /// oldest id is forgotten. An id longer than [`MAX_MID_LEN`] is refused
    /// (false), since it could not be persisted.
    pub fn insert(&mut self, mid: &str) -> bool {
        if mid.len() > MAX_MID_LEN || self.contains(mid) {
            return false;
        }
        if self.ids.len() == APPLIED_CAPACITY {
            self.ids.pop_front();
        }
        self.ids.push_back(mid.to_string());
        true
    }

    /// Number of remembered ids.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The remembered ids, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(String::as_str)
    }

    /// The persisted form: `"AI"`, version `1`, count (1 byte), then per id
    /// its length (1 byte) and UTF-8 bytes, oldest first, then an FNV-1a
    /// 32-bit checksum (little-endian) of everything before it, so that a torn
    /// write is detected instead of silently forgetting ids.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.ids.iter().map(|m| m.len() + 1).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        // Both bounds hold by construction: insert() caps count and length.
        out.push(self.ids.len() as u8);
        for mid in &self.ids {
            out.push(mid.len() as u8);
            out.extend_from_slice(mid.as_bytes());
        }
        let sum = fnv1a(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses bytes made by [`AppliedIds::encode`].
    pub fn decode(bytes: &[u8]) -> Result<Self, AppliedIdsError> {
        if bytes.len() < 4 || &bytes[..2] != MAGIC || bytes[2] != VERSION {
            return Err(AppliedIdsError::BadHeader);
        }
        let (body, sum) =
            bytes.split_at(bytes.len().checked_sub(4).ok_or(AppliedIdsError::Corrupt)?);
        if body.len() < 4 {
            return Err(AppliedIdsError::Corrupt);
        }
        if fnv1a(body).to_le_bytes() != sum {
            return Err(AppliedIdsError::Checksum);
        }
        let count = usize::from(body[3]);
        if count > APPLIED_CAPACITY {
            return Err(AppliedIdsError::Corrupt);
        }
        let mut rest = &body[4..];
        let mut ids = VecDeque::with_capacity(count);
        for _ in 0..count {
            let (&len, tail) = rest.split_first().ok_or(AppliedIdsError::Corrupt)?;
            let len = usize::from(len);
            if tail.len() < len {
                return Err(AppliedIdsError::Corrupt);
            }
            let mid = core::str::from_utf8(&tail[..len]).map_err(|_| AppliedIdsError::Corrupt)?;
            ids.push_back(mid.to_string());
            rest = &tail[len..];
        }
        if !rest.is_empty() {
            return Err(AppliedIdsError::Corrupt);
        }
        Ok(Self { ids })
    }
}

/// FNV-1a, 32 bits: enough to catch a torn flash write, no dependency.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}
