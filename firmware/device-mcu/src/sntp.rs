//! SNTP (RFC 4330) client messages, sans-IO: the request the device sends
//! over smoltcp UDP and the checks on the answer. The device's wall-clock
//! time for certificate checks comes from here; until an answer passes
//! these checks it has no time and makes no TLS connection.

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_TO_UNIX: u64 = 2_208_988_800;
/// Length of an SNTP message without extensions.
pub const LEN: usize = 48;

/// A request: client mode, version 4, with `nonce` as its transmit
/// timestamp, which the server must echo as the originate timestamp.
pub fn request(nonce: [u8; 8]) -> [u8; LEN] {
    let mut msg = [0u8; LEN];
    msg[0] = (4 << 3) | 3; // LI 0, VN 4, mode 3 (client)
    msg[40..48].copy_from_slice(&nonce);
    msg
}

/// Why an answer was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Rejected {
    /// Shorter than 48 bytes.
    Short,
    /// Not mode 4 (server).
    NotServer,
    /// Leap indicator 3 (clock not synchronised) or stratum 0 / > 15
    /// (kiss-o'-death or unsynchronised).
    Unsynchronised,
    /// Originate timestamp is not our nonce: not an answer to our request.
    NotOurs,
    /// Transmit timestamp zero.
    BadTime,
    /// Earlier than the provisioned time floor: a clock set back (which
    /// would make expired certificates valid again) is not taken.
    BeforeFloor,
}

/// The server's transmit time, in seconds since the Unix epoch, from an
/// answer to the request made with `nonce`; never earlier than `floor`
/// (Unix seconds, from provisioning).
pub fn parse(answer: &[u8], nonce: [u8; 8], floor: u64) -> Result<u64, Rejected> {
    if answer.len() < LEN {
        return Err(Rejected::Short);
    }
    if answer[0] & 0x7 != 4 {
        return Err(Rejected::NotServer);
    }
    let stratum = answer[1];
    if answer[0] >> 6 == 3 || stratum == 0 || stratum > 15 {
        return Err(Rejected::Unsynchronised);
    }
    if answer[24..32] != nonce {
        return Err(Rejected::NotOurs);
    }
    let mut secs = [0u8; 4];
    secs.copy_from_slice(&answer[40..44]);
    let ntp = u64::from(u32::from_be_bytes(secs));
    // Era 0 ends in 2036; a value below 2020's (in era 0) is taken as era 1.
    let ntp = if ntp < 3_786_825_600 {
        ntp + (1 << 32)
    } else {
        ntp
    };
    let unix = ntp - NTP_TO_UNIX;
    if ntp == (1 << 32) {
        return Err(Rejected::BadTime);
    }
    if unix < floor {
        return Err(Rejected::BeforeFloor);
    }
    Ok(unix)
}
