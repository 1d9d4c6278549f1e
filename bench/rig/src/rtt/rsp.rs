//! The GDB remote serial protocol, as much of it as reading and writing
//! target memory through a gdbstub takes (QEMU's `-gdb`): sans-IO, the
//! socket is [`super::gdb`]'s.
//!
//! Framing: `$payload#cc`, `cc` the payload's byte sum mod 256 in hex; `}`
//! escapes `$ # } *` (the byte XOR 0x20); `*` run-length-encodes a repeat
//! in replies. Each packet is acknowledged with `+` (or `-`: send it again).
//! A lone 0x03 interrupts a running target, which then answers with a stop
//! reply (`S`/`T`). Requests used: `?`, `m addr,len`, `M addr,len:hex`, `c`.

/// The interrupt byte (Ctrl-C): stops a running target.
pub const INTERRUPT: u8 = 0x03;

/// The most bytes one `m` request asks for: its hex reply fits QEMU's 4 KiB
/// packet buffer with room to spare.
pub const MAX_READ: usize = 1024;

/// What arrives from the stub, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `+`: the last packet sent arrived intact.
    Ack,
    /// `-`: it arrived damaged; send it again.
    Nack,
    /// A packet whose checksum matched: its payload, unescaped and expanded.
    Packet(Vec<u8>),
    /// A packet whose checksum did not match (answer `-`).
    Corrupt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Body,
    Escape,
    Repeat,
    Sum1,
    Sum2(u8),
}

/// Cuts the stub's byte stream into [`Frame`]s.
#[derive(Debug, Clone)]
pub struct Decoder {
    state: State,
    payload: Vec<u8>,
    sum: u8,
    /// Longest payload kept; a longer packet is [`Frame::Corrupt`].
    limit: usize,
    overflow: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Idle,
            payload: Vec::new(),
            sum: 0,
            limit: 1 << 16,
            overflow: false,
        }
    }
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

impl Decoder {
    /// Feeds bytes; returns the frames they completed. Bytes outside a
    /// packet other than `+`/`-` (noise, console output) are dropped.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        for &b in bytes {
            match self.state {
                State::Idle => match b {
                    b'+' => out.push(Frame::Ack),
                    b'-' => out.push(Frame::Nack),
                    b'$' => {
                        self.payload.clear();
                        self.sum = 0;
                        self.overflow = false;
                        self.state = State::Body;
                    }
                    _ => {}
                },
                State::Body | State::Escape | State::Repeat if b == b'#' => {
                    self.state = State::Sum1
                }
                State::Body => {
                    self.sum = self.sum.wrapping_add(b);
                    match b {
                        b'}' => self.state = State::Escape,
                        b'*' => self.state = State::Repeat,
                        _ => self.keep(&[b]),
                    }
                }
                State::Escape => {
                    self.sum = self.sum.wrapping_add(b);
                    self.keep(&[b ^ 0x20]);
                    self.state = State::Body;
                }
                State::Repeat => {
                    // `X*n`: X once more for each of (n - 29) repeats.
                    self.sum = self.sum.wrapping_add(b);
                    match (self.payload.last().copied(), b.checked_sub(29)) {
                        (Some(last), Some(n)) => self.keep(&vec![last; n as usize]),
                        _ => self.overflow = true,
                    }
                    self.state = State::Body;
                }
                State::Sum1 => match hex_digit(b) {
                    Some(h) => self.state = State::Sum2(h),
                    None => {
                        out.push(Frame::Corrupt);
                        self.state = State::Idle;
                    }
                },
                State::Sum2(h) => {
                    let good = hex_digit(b).is_some_and(|l| (h << 4 | l) == self.sum);
                    out.push(if good && !self.overflow {
                        Frame::Packet(std::mem::take(&mut self.payload))
                    } else {
                        Frame::Corrupt
                    });
                    self.state = State::Idle;
                }
            }
        }
        out
    }

    fn keep(&mut self, bytes: &[u8]) {
        if self.payload.len() + bytes.len() > self.limit {
            self.overflow = true;
        } else {
            self.payload.extend_from_slice(bytes);
        }
    }
}

/// `payload` framed as a packet, `$ # } *` escaped.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 4);
    out.push(b'$');
    let mut sum = 0u8;
    for &b in payload {
        let bytes: &[u8] = match b {
            b'$' | b'#' | b'}' | b'*' => &[b'}', b ^ 0x20],
            _ => std::slice::from_ref(&b),
        };
        for &e in bytes {
            sum = sum.wrapping_add(e);
            out.push(e);
        }
    }
    out.extend_from_slice(format!("#{sum:02x}").as_bytes());
    out
}

/// `m addr,len`: read `len` bytes at `addr`.
pub fn read_memory(addr: u64, len: usize) -> Vec<u8> {
    format!("m{addr:x},{len:x}").into_bytes()
}

/// `M addr,len:hex`: write `data` at `addr`.
pub fn write_memory(addr: u64, data: &[u8]) -> Vec<u8> {
    let mut p = format!("M{addr:x},{:x}:", data.len()).into_bytes();
    p.extend(data.iter().flat_map(|b| format!("{b:02x}").into_bytes()));
    p
}

/// What a reply packet says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `S` or `T`: the target stopped (with this signal).
    Stopped(u8),
    /// `OK`.
    Ok,
    /// `Exx`: the request failed with this error number.
    Error(u8),
    /// The empty packet: the stub does not know the request.
    Unsupported,
    /// `W`/`X`: the target exited or was killed.
    Exited,
    /// Anything else (e.g. the hex of an `m` reply).
    Data(Vec<u8>),
}

/// Classifies a reply payload.
pub fn reply(payload: &[u8]) -> Reply {
    let two_hex = |p: &[u8]| {
        (p.len() >= 3)
            .then(|| Some(hex_digit(p[1])? << 4 | hex_digit(p[2])?))
            .flatten()
    };
    match payload.first() {
        None => Reply::Unsupported,
        Some(b'S' | b'T') if two_hex(payload).is_some() => {
            Reply::Stopped(two_hex(payload).unwrap_or_default())
        }
        Some(b'E') if payload.len() == 3 && two_hex(payload).is_some() => {
            Reply::Error(two_hex(payload).unwrap_or_default())
        }
        Some(b'W' | b'X') => Reply::Exited,
        _ if payload == b"OK" => Reply::Ok,
        _ => Reply::Data(payload.to_vec()),
    }
}

/// The bytes of an `m` reply's hex; `None` if it is not `2 * len` hex digits.
pub fn memory(reply: &[u8], len: usize) -> Option<Vec<u8>> {
    if reply.len() != 2 * len {
        return None;
    }
    reply
        .chunks(2)
        .map(|p| Some(hex_digit(p[0])? << 4 | hex_digit(p[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_checksums() {
        assert_eq!(encode(b"?"), b"$?#3f");
        assert_eq!(encode(b"m20000000,4"), b"$m20000000,4#4f".to_vec());
        assert_eq!(encode(b"OK"), b"$OK#9a");
        let mut d = Decoder::default();
        assert_eq!(
            d.push(b"+$OK#9a-$T05thread:01;#07junk+"),
            [
                Frame::Ack,
                Frame::Packet(b"OK".to_vec()),
                Frame::Nack,
                Frame::Packet(b"T05thread:01;".to_vec()),
                Frame::Ack
            ]
        );
        assert_eq!(d.push(b"$OK#9b"), [Frame::Corrupt], "wrong checksum");
        assert_eq!(d.push(b"$OK#zz"), [Frame::Corrupt], "not hex");
    }

    #[test]
    fn split_anywhere() {
        let wire = encode(b"0102ff");
        for cut in 0..wire.len() {
            let mut d = Decoder::default();
            let mut got = d.push(&wire[..cut]);
            got.extend(d.push(&wire[cut..]));
            assert_eq!(got, [Frame::Packet(b"0102ff".to_vec())], "cut at {cut}");
        }
    }

    #[test]
    fn escapes_round_trip() {
        let payload = b"M0,4:$#}*".to_vec();
        let wire = encode(&payload);
        assert_eq!(&wire[..10], b"$M0,4:}\x04}\x03");
        assert_eq!(Decoder::default().push(&wire), [Frame::Packet(payload)]);
    }

    #[test]
    fn run_length() {
        // "0* " = '0' and 3 more ('  ' is 32 = 29 + 3).
        let body = b"0* ";
        let sum = body.iter().fold(0u8, |s, b| s.wrapping_add(*b));
        let mut wire = b"$".to_vec();
        wire.extend_from_slice(body);
        wire.extend_from_slice(format!("#{sum:02x}").as_bytes());
        assert_eq!(
            Decoder::default().push(&wire),
            [Frame::Packet(b"0000".to_vec())]
        );
    }

    #[test]
    fn oversized_is_corrupt() {
        let mut d = Decoder {
            limit: 4,
            ..Decoder::default()
        };
        assert_eq!(d.push(&encode(b"12345")), [Frame::Corrupt]);
        assert_eq!(d.push(&encode(b"1234")), [Frame::Packet(b"1234".to_vec())]);
    }

    #[test]
    fn requests_and_replies() {
        assert_eq!(read_memory(0x2000_903c, 0x400), b"m2000903c,400");
        assert_eq!(
            write_memory(0x2000_9060, &[0x10, 0, 0, 0]),
            b"M20009060,4:10000000"
        );
        assert_eq!(reply(b"T05thread:01;"), Reply::Stopped(5));
        assert_eq!(reply(b"S02"), Reply::Stopped(2));
        assert_eq!(reply(b"OK"), Reply::Ok);
        assert_eq!(reply(b"E14"), Reply::Error(0x14));
        assert_eq!(reply(b""), Reply::Unsupported);
        assert_eq!(reply(b"W00"), Reply::Exited);
        assert_eq!(reply(b"5345"), Reply::Data(b"5345".to_vec()));
        assert_eq!(memory(b"5345ff", 3), Some(vec![0x53, 0x45, 0xff]));
        assert_eq!(memory(b"5345", 3), None, "short");
        assert_eq!(memory(b"53zz", 2), None, "not hex");
    }
}
