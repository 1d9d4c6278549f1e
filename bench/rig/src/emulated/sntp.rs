//! The emulated rig's time server: SNTP (RFC 4330) on UDP 123 of the
//! gateway's namespace, for boards that bring their own IP stack
//! (`network = "tap"`) and take the time from the network before they can
//! check a certificate's dates, as a lab's NTP server would serve them.
//! It answers from this host's clock: a board's time is then the hub's
//! (the case's hub runs on the same clock in a real-time case).
//!
//! [`answer`] is the protocol (pure, unit-tested); [`SntpServer`] serves it
//! ([`UdpService`]: the socket and its thread).

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::udp_service::UdpService;
use crate::RigError;

/// The NTP port.
pub const NTP_PORT: u16 = 123;

/// Seconds from the NTP era (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// A request or answer: the 48-byte NTP header (no extensions, no MAC).
const PACKET_LEN: usize = 48;

/// `time` as an NTP timestamp (seconds since 1900 and a binary fraction).
fn ntp_timestamp(time: SystemTime) -> [u8; 8] {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = (since.as_secs() + NTP_UNIX_OFFSET) as u32;
    let frac = ((u64::from(since.subsec_nanos()) << 32) / 1_000_000_000) as u32;
    let mut ts = [0u8; 8];
    ts[..4].copy_from_slice(&secs.to_be_bytes());
    ts[4..].copy_from_slice(&frac.to_be_bytes());
    ts
}

/// The server's answer to `request` at `now`, or `None` for anything but a
/// client request (mode 3) of at least the NTP header: a server mode (4)
/// packet of the request's version, stratum 2 (it serves a clock it does
/// not own a reference for: the host's), no leap warning, the request's
/// transmit time echoed as the originate time (how a client knows the
/// answer is to its request), receive and transmit time `now`.
pub fn answer(request: &[u8], now: SystemTime) -> Option<[u8; PACKET_LEN]> {
    if request.len() < PACKET_LEN {
        return None;
    }
    let (version, mode) = ((request[0] >> 3) & 0x7, request[0] & 0x7);
    if mode != 3 || !(1..=4).contains(&version) {
        return None;
    }
    let mut a = [0u8; PACKET_LEN];
    a[0] = (version << 3) | 4; // LI 0, VN, mode 4 (server)
    a[1] = 2; // stratum
    a[2] = request[2]; // poll, as asked
    a[3] = (-20i8) as u8; // precision ~1 µs
                          // Root delay 0; root dispersion 1/16 s; reference id 127.127.1.0 (the
                          // local clock's conventional id).
    a[8..12].copy_from_slice(&0x0000_1000u32.to_be_bytes());
    a[12..16].copy_from_slice(&[127, 127, 1, 0]);
    let ts = ntp_timestamp(now);
    a[16..24].copy_from_slice(&ts); // reference time
    a[24..32].copy_from_slice(&request[40..48]); // originate = their transmit
    a[32..40].copy_from_slice(&ts); // receive
    a[40..48].copy_from_slice(&ts); // transmit
    Some(a)
}

/// SNTP served on UDP 123 of a namespace until dropped.
pub struct SntpServer {
    _service: UdpService,
}

impl SntpServer {
    /// Binds UDP 123 on every address of `netns` and answers there.
    pub fn start(netns: PathBuf) -> Result<SntpServer, RigError> {
        let service =
            UdpService::start(netns, NTP_PORT, "the rig's SNTP server", |socket, got| {
                let Ok((request, from)) = got else { return };
                if let Some(a) = answer(request, SystemTime::now()) {
                    let _ = socket.send_to(&a, from);
                }
            })?;
        Ok(SntpServer { _service: service })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn request(version: u8, transmit: [u8; 8]) -> [u8; PACKET_LEN] {
        let mut r = [0u8; PACKET_LEN];
        r[0] = (version << 3) | 3;
        r[2] = 6;
        r[40..48].copy_from_slice(&transmit);
        r
    }

    #[test]
    fn a_client_request_gets_the_time_and_its_own_transmit_time_back() {
        let nonce = [1, 2, 3, 4, 5, 6, 7, 8];
        let now = UNIX_EPOCH + Duration::from_millis(1_790_000_000_500);
        let a = answer(&request(4, nonce), now).expect("answered");
        assert_eq!(a[0], (4 << 3) | 4, "LI 0, version 4, server mode");
        assert_eq!(a[1], 2, "stratum");
        assert_eq!(a[2], 6, "the poll asked for");
        assert_eq!(&a[24..32], &nonce, "originate = the request's transmit");
        let secs = u32::from_be_bytes([a[40], a[41], a[42], a[43]]);
        assert_eq!(u64::from(secs), 1_790_000_000 + NTP_UNIX_OFFSET);
        let frac = u32::from_be_bytes([a[44], a[45], a[46], a[47]]);
        assert_eq!(frac, 1 << 31, "half a second");
        assert_eq!(&a[32..40], &a[40..48], "received and sent at once");
        // An SNTPv3 client gets a version 3 answer.
        assert_eq!(
            answer(&request(3, nonce), now).expect("v3")[0],
            (3 << 3) | 4
        );
    }

    #[test]
    fn anything_but_a_client_request_gets_no_answer() {
        let now = SystemTime::now();
        let mut server = request(4, [0; 8]);
        server[0] = (4 << 3) | 4;
        assert!(answer(&server, now).is_none(), "a server packet");
        assert!(answer(&request(4, [0; 8])[..47], now).is_none(), "short");
        assert!(answer(&request(0, [0; 8]), now).is_none(), "version 0");
        assert!(answer(&[0x1b], now).is_none());
    }
}
