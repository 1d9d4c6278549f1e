//! How a device keeps small records in flash so that a power cut never
//! loses the last good one: each record cell is two copies, each a 16-byte
//! header (sequence number, length, checksum) and the body; a write goes
//! over the *older* copy, and at power-on the newer valid copy wins — a torn
//! write fails its checksum and leaves the previous record. Pure byte
//! logic: the shells (device-native's flash file, device-mcu's
//! memory-mapped flash) read and write the copies.
//!
//! The command state ([`crate::device::CommandLog`]) is stored as JSON
//! ([`encode_commands`]), the form device-native has always written.

use alloc::vec::Vec;

use sha2::{Digest, Sha256};

use crate::device::CommandLog;

/// A copy's header: sequence number (u32 LE), body length (u32 LE), the
/// first 8 bytes of SHA-256(seq ‖ body).
pub const RECORD_HEAD: usize = 4 + 4 + 8;

fn checksum(seq: u32, body: &[u8]) -> [u8; 8] {
    let mut h = Sha256::new();
    h.update(seq.to_le_bytes());
    h.update(body);
    let mut out = [0u8; 8];
    out.copy_from_slice(&h.finalize()[..8]);
    out
}

/// A valid copy's sequence number and body; `None` for an erased, torn or
/// foreign copy (`raw` is the whole copy, header included).
pub fn parse_copy(raw: &[u8]) -> Option<(u32, &[u8])> {
    let head = raw.get(..RECORD_HEAD)?;
    let seq = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let len = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let body = raw.get(RECORD_HEAD..RECORD_HEAD.checked_add(len)?)?;
    (head[8..16] == checksum(seq, body)).then_some((seq, body))
}

/// Of a cell's two copies, the newer valid one: its index (0 or 1), its
/// sequence number and its body. Sequence numbers wrap: "newer" is the one
/// less than half the number space ahead.
pub fn newest(copies: [&[u8]; 2]) -> Option<(usize, u32, &[u8])> {
    let a = parse_copy(copies[0]).map(|(s, b)| (0, s, b));
    let b = parse_copy(copies[1]).map(|(s, b)| (1, s, b));
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.1.wrapping_sub(a.1) < u32::MAX / 2 {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// Where and what to write to store `body` in a cell whose copies are now
/// `copies`: the index of the copy to overwrite (the older one) and its new
/// bytes (header and body). `None` if the body does not fit `capacity`.
pub fn plan_write(copies: [&[u8]; 2], capacity: usize, body: &[u8]) -> Option<(usize, Vec<u8>)> {
    if body.len() > capacity.checked_sub(RECORD_HEAD)? {
        return None;
    }
    let (target, seq) = match newest(copies) {
        Some((i, seq, _)) => (1 - i, seq.wrapping_add(1)),
        None => (0, 1),
    };
    let len = u32::try_from(body.len()).ok()?;
    let mut raw = Vec::with_capacity(RECORD_HEAD + body.len());
    raw.extend_from_slice(&seq.to_le_bytes());
    raw.extend_from_slice(&len.to_le_bytes());
    raw.extend_from_slice(&checksum(seq, body));
    raw.extend_from_slice(body);
    Some((target, raw))
}

/// The command state as stored (JSON).
pub fn encode_commands(log: &CommandLog) -> Vec<u8> {
    // Serialising plain data to a Vec cannot fail.
    serde_json::to_vec(log).unwrap_or_default()
}

/// The stored command state; `None` if `body` is not one.
pub fn decode_commands(body: &[u8]) -> Option<CommandLog> {
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn cell() -> [Vec<u8>; 2] {
        [vec![0xff; 64], vec![0xff; 64]]
    }

    fn store(cell: &mut [Vec<u8>; 2], body: &[u8]) {
        let (i, raw) = plan_write([&cell[0], &cell[1]], 64, body).expect("fits");
        cell[i][..raw.len()].copy_from_slice(&raw);
    }

    #[test]
    fn the_newer_copy_wins_and_a_torn_write_keeps_the_old_record() {
        let mut c = cell();
        assert_eq!(newest([&c[0], &c[1]]), None, "erased");
        for v in 1..=5u8 {
            store(&mut c, &[v; 3]);
            assert_eq!(newest([&c[0], &c[1]]).map(|n| n.2), Some(&[v; 3][..]));
        }
        // Copy 0 holds 5 (written 1st, 3rd, 5th): the next write goes to copy 1; tear it.
        store(&mut c, &[6; 3]);
        c[1][RECORD_HEAD] ^= 0x40;
        assert_eq!(newest([&c[0], &c[1]]).map(|n| n.2), Some(&[5; 3][..]));
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut c = cell();
        let (_, raw) = plan_write([&c[0], &c[1]], 64, b"old").expect("fits");
        let mut raw = raw;
        raw[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        let sum = checksum(u32::MAX, b"old");
        raw[8..16].copy_from_slice(&sum);
        c[0][..raw.len()].copy_from_slice(&raw);
        store(&mut c, b"new");
        assert_eq!(
            newest([&c[0], &c[1]]).map(|n| (n.1, n.2)),
            Some((0, &b"new"[..]))
        );
    }

    #[test]
    fn a_body_over_the_capacity_is_refused() {
        let c = cell();
        assert!(plan_write([&c[0], &c[1]], 64, &[0; 49]).is_none());
        assert!(plan_write([&c[0], &c[1]], 64, &[0; 48]).is_some());
    }

    #[test]
    fn the_command_record_keeps_its_json_form() {
        // As device-native wrote it before `subscribed_once` existed.
        let old = br#"{"applied":[1,2,3],"next_seq":4,"unreported":[{"seq":3,"mid":"m-3","payload":"open"}]}"#;
        let log = decode_commands(old).expect("decodes");
        assert_eq!((log.next_seq, log.subscribed_once), (4, false));
        assert_eq!(log.unreported[0].mid, "m-3");
        assert_eq!(
            encode_commands(&log),
            br#"{"applied":[1,2,3],"next_seq":4,"unreported":[{"seq":3,"mid":"m-3","payload":"open"}],"subscribed_once":false}"#
        );
        assert_eq!(decode_commands(b"not json"), None);
    }
}
