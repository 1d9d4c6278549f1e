//! A serial console over the network: RFC 2217 (telnet with the
//! COM-PORT-OPTION), what ser2net serves and labgrid exports as a
//! `NetworkSerialPort`. A small sans-IO codec ([`Telnet`]: bytes in, console
//! data and negotiation replies out) and a blocking reader around a TCP stream
//! ([`Rfc2217Port`]) that the console thread reads like a serial port.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const IAC: u8 = 255;
const DONT: u8 = 254;
const DO: u8 = 253;
const WONT: u8 = 252;
const WILL: u8 = 251;
const SB: u8 = 250;
const SE: u8 = 240;
/// Telnet options the client agrees to: binary, echo (server side only),
/// suppress-go-ahead, and RFC 2217's COM-PORT-OPTION.
const BINARY: u8 = 0;
const ECHO: u8 = 1;
const SGA: u8 = 3;
const COM_PORT: u8 = 44;
/// COM-PORT-OPTION sub-command: set the line's baud rate (RFC 2217 §3).
const SET_BAUDRATE: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Data,
    Iac,
    Verb(u8),
    Sub,
    SubIac,
}

/// The telnet side of an RFC 2217 client: strips negotiation from the byte
/// stream and answers it; no I/O.
#[derive(Debug)]
pub struct Telnet {
    state: State,
    /// Options this side has said WILL to / asked the server to DO.
    we_will: BTreeSet<u8>,
    we_do: BTreeSet<u8>,
    /// The current sub-negotiation's bytes (the server's COM-PORT answers; dropped).
    sub: Vec<u8>,
}

impl Telnet {
    /// A client that will set `baud`; returns it and the bytes to send first:
    /// WILL COM-PORT-OPTION and BINARY, DO BINARY and SGA, and SET-BAUDRATE.
    pub fn start(baud: u32) -> (Telnet, Vec<u8>) {
        let mut out = Vec::new();
        for (verb, opt) in [(WILL, COM_PORT), (WILL, BINARY), (DO, BINARY), (DO, SGA)] {
            out.extend([IAC, verb, opt]);
        }
        out.extend([IAC, SB, COM_PORT, SET_BAUDRATE]);
        for b in baud.to_be_bytes() {
            out.push(b);
            if b == IAC {
                out.push(IAC);
            }
        }
        out.extend([IAC, SE]);
        let t = Telnet {
            state: State::Data,
            we_will: [COM_PORT, BINARY].into(),
            we_do: [BINARY, SGA].into(),
            sub: Vec::new(),
        };
        (t, out)
    }

    /// Feed bytes from the server: console data is appended to `data`, the
    /// answers negotiation needs to `reply`.
    pub fn decode(&mut self, input: &[u8], data: &mut Vec<u8>, reply: &mut Vec<u8>) {
        for &b in input {
            self.state = match (self.state, b) {
                (State::Data, IAC) => State::Iac,
                (State::Data, b) => {
                    data.push(b);
                    State::Data
                }
                (State::Iac, IAC) => {
                    data.push(IAC);
                    State::Data
                }
                (State::Iac, DO | DONT | WILL | WONT) => State::Verb(b),
                (State::Iac, SB) => {
                    self.sub.clear();
                    State::Sub
                }
                // NOP, GA, data mark…: nothing to do.
                (State::Iac, _) => State::Data,
                (State::Verb(verb), opt) => {
                    self.negotiate(verb, opt, reply);
                    State::Data
                }
                (State::Sub, IAC) => State::SubIac,
                (State::Sub, b) => {
                    self.sub.push(b);
                    State::Sub
                }
                (State::SubIac, IAC) => {
                    self.sub.push(IAC);
                    State::Sub
                }
                // IAC SE (or a broken sub-negotiation): back to data.
                (State::SubIac, _) => State::Data,
            };
        }
    }

    /// Answer one request, only when it changes an option's state (so two
    /// agreeing sides never loop, RFC 854).
    fn negotiate(&mut self, verb: u8, opt: u8, reply: &mut Vec<u8>) {
        // DO/DONT are about this side's options, WILL/WONT about the server's.
        let (ours, supported, agree, refuse) = match verb {
            DO | DONT => (
                &mut self.we_will,
                [COM_PORT, BINARY, SGA].contains(&opt),
                WILL,
                WONT,
            ),
            WILL | WONT => (
                &mut self.we_do,
                [COM_PORT, BINARY, SGA, ECHO].contains(&opt),
                DO,
                DONT,
            ),
            _ => return,
        };
        let answer = match (verb == DO || verb == WILL, supported) {
            (true, true) => ours.insert(opt).then_some(agree),
            (true, false) => Some(refuse),
            (false, _) => ours.remove(&opt).then_some(refuse),
        };
        if let Some(a) = answer {
            reply.extend([IAC, a, opt]);
        }
    }
}

/// An RFC 2217 port read like a serial port: `read` returns console data,
/// `WouldBlock` after a read timeout with nothing, `Ok(0)` when the server
/// closes.
#[derive(Debug)]
pub struct Rfc2217Port {
    stream: TcpStream,
    telnet: Telnet,
    pending: Vec<u8>,
}

impl Rfc2217Port {
    /// Connects to `host:port` (at most `connect` per address), negotiates
    /// and sets `baud`; reads then time out after `read_timeout`.
    pub fn open(
        host: &str,
        port: u16,
        baud: u32,
        connect: Duration,
        read_timeout: Duration,
    ) -> std::io::Result<Rfc2217Port> {
        let mut last = None;
        for addr in (host, port).to_socket_addrs()? {
            match TcpStream::connect_timeout(&addr, connect) {
                Ok(mut stream) => {
                    stream.set_read_timeout(Some(read_timeout))?;
                    stream.set_nodelay(true)?;
                    let (telnet, hello) = Telnet::start(baud);
                    stream.write_all(&hello)?;
                    return Ok(Rfc2217Port {
                        stream,
                        telnet,
                        pending: Vec::new(),
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
    }
}

impl Read for Rfc2217Port {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.pending.is_empty() {
            let mut raw = [0u8; 1024];
            let n = match self.stream.read(&mut raw) {
                Ok(0) => return Ok(0),
                Ok(n) => n,
                Err(e) => return Err(e),
            };
            let mut reply = Vec::new();
            self.telnet.decode(&raw[..n], &mut self.pending, &mut reply);
            if !reply.is_empty() {
                self.stream.write_all(&reply)?;
            }
            if self.pending.is_empty() {
                // Only negotiation: the caller gets control back, as after a timeout.
                return Err(ErrorKind::WouldBlock.into());
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

/// `host` and `port` of an `rfc2217://host:port` console address (`[v6]` for IPv6).
pub fn parse_url(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("rfc2217://")?;
    let (host, port) = rest.rsplit_once(':')?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let port = port.parse::<u16>().ok().filter(|p| *p != 0)?;
    (!host.is_empty()).then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_offers_com_port_and_sets_the_baud_rate() {
        let (_, hello) = Telnet::start(115_200);
        assert_eq!(
            hello,
            [
                IAC,
                WILL,
                COM_PORT,
                IAC,
                WILL,
                BINARY,
                IAC,
                DO,
                BINARY,
                IAC,
                DO,
                SGA,
                IAC,
                SB,
                COM_PORT,
                SET_BAUDRATE,
                0,
                1,
                0xc2,
                0,
                IAC,
                SE
            ]
        );
        // A 0xff byte in the rate is doubled inside the sub-negotiation.
        let (_, hello) = Telnet::start(0x0000_ff00);
        assert!(hello.ends_with(&[SET_BAUDRATE, 0, 0, IAC, IAC, 0, IAC, SE]));
    }

    #[test]
    fn negotiation_is_stripped_and_answered_once() {
        let (mut t, _) = Telnet::start(9600);
        let (mut data, mut reply) = (Vec::new(), Vec::new());
        // What ser2net sends: its own offers, an answer to SET-BAUDRATE, then console text.
        let from_server = [
            &[IAC, WILL, COM_PORT, IAC, DO, COM_PORT, IAC, WILL, ECHO][..],
            &[IAC, DO, 24 /* terminal type */],
            &[IAC, SB, COM_PORT, 101, 0, 0, 0x25, 0x80, IAC, SE],
            b"boot ok\r\n",
            &[IAC, IAC],
        ]
        .concat();
        // Fed in two pieces cut inside a command: the state carries over.
        t.decode(&from_server[..5], &mut data, &mut reply);
        t.decode(&from_server[5..], &mut data, &mut reply);
        assert_eq!(data, b"boot ok\r\n\xff");
        // DO COM-PORT was already agreed (no answer); WILL COM-PORT and ECHO
        // are new (DO); terminal type is refused (WONT).
        assert_eq!(reply, [IAC, DO, COM_PORT, IAC, DO, ECHO, IAC, WONT, 24]);
        // The same offers again change nothing, so nothing is answered.
        reply.clear();
        t.decode(&[IAC, WILL, ECHO, IAC, DO, BINARY], &mut data, &mut reply);
        assert!(reply.is_empty());
        // Withdrawn: acknowledged once.
        t.decode(&[IAC, WONT, ECHO, IAC, WONT, ECHO], &mut data, &mut reply);
        assert_eq!(reply, [IAC, DONT, ECHO]);
    }

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("rfc2217://127.0.0.1:4000"),
            Some(("127.0.0.1".into(), 4000))
        );
        assert_eq!(
            parse_url("rfc2217://[::1]:4000"),
            Some(("::1".into(), 4000))
        );
        assert_eq!(parse_url("/dev/ttyACM0"), None);
        assert_eq!(parse_url("rfc2217://host"), None);
        assert_eq!(parse_url("rfc2217://host:0"), None);
    }

    #[test]
    fn a_port_reads_console_data_from_a_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut hello = [0u8; 22];
            s.read_exact(&mut hello).unwrap();
            s.write_all(&[IAC, WILL, ECHO]).unwrap();
            s.write_all(b"hi\n").unwrap();
            let mut answer = [0u8; 3];
            s.read_exact(&mut answer).unwrap();
            answer
        });
        let mut p = Rfc2217Port::open(
            "127.0.0.1",
            port,
            115_200,
            Duration::from_secs(5),
            Duration::from_secs(5),
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while got != b"hi\n" {
            match p.read(&mut buf) {
                Ok(0) => panic!("closed early"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(server.join().unwrap(), [IAC, DO, ECHO]);
        assert_eq!(p.read(&mut buf).unwrap(), 0);
    }
}
