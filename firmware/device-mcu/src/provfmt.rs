//! The provisioning record's format (sans-IO, `no_std`, no allocation): the
//! device parses it in place from the provisioning region of its flash map;
//! the rig's packer (`rig/src/prov.rs`) writes it. Versions 1 and 2,
//! little-endian, which differ only in the fixed part's `hub` field (and
//! v2's `https_port` after it):
//!
//! ```text
//! 0    magic        "SBPV"
//! 4    version      u16 = 1 or 2
//! 6    reserved     u16 = 0
//! 8    body_len     u32                (bytes of body that follow)
//! 12   body:
//!        seed        [32]              per-unit DRBG secret
//!        time_floor  u64               Unix seconds, no clock reading before it is believed
//!        ip          [4], prefix u8    the device's own IPv4 address
//!        gateway     [4]
//!        hub         [4], port u16     v1: the hub's address;
//!                                      v2: the DNS server's IPv4 (not 0.0.0.0), the hub's port
//!        https_port  u16               v2 only: the hub's HTTPS port (EST); v1 devices use 443
//!        sntp        [4], port u16     the SNTP server
//!        then five (u16 length, bytes) fields, in this order:
//!        ca (DER), device cert (DER), device key (PKCS#8 DER),
//!        device id (UTF-8), hub name (UTF-8)
//! 12+body_len  sha256   [32]           SHA-256 of bytes 0 .. 12+body_len
//! ```
//!
//! A v2 device looks the hub name up at its DNS server (`dns.rs`); a v1
//! record (from a launcher that resolved the name itself) stays readable,
//! and such a device dials the address it holds.
//!
//! Anything else — another magic or version, a length that runs past the
//! region or leaves bytes over, a digest that does not match, a seed of
//! zeros, an empty field, names that are not UTF-8 — is refused with the
//! reason.

use sha2::{Digest, Sha256};

/// The record's first four bytes.
pub const MAGIC: [u8; 4] = *b"SBPV";
/// The newest format version, the one the rig's packer writes when it is
/// given a DNS server.
pub const VERSION: u16 = 2;
/// The version whose record holds the hub's address instead.
pub const VERSION_ADDRESS: u16 = 1;
/// Bytes before the body.
pub const HEADER_LEN: usize = 12;
/// The SHA-256 after the body.
pub const DIGEST_LEN: usize = 32;
/// Bytes of the body's fixed part (before the length-prefixed fields) in a
/// v1 record; a v2 record's is 2 longer (`https_port`).
pub const FIXED_LEN: usize = 32 + 8 + 4 + 1 + 4 + 4 + 2 + 4 + 2;
/// Bytes of a v2 record's fixed part.
pub const FIXED_LEN_V2: usize = FIXED_LEN + 2;
/// The hub's HTTPS port when the record does not say (v1): the device
/// contract's default.
pub const DEFAULT_HTTPS_PORT: u16 = 443;

/// A parsed record, borrowing from the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// Per-unit DRBG secret.
    pub seed: &'a [u8; 32],
    /// Unix seconds before which no time is believed.
    pub time_floor: u64,
    /// The device's IPv4 address.
    pub ip: [u8; 4],
    /// Its prefix length.
    pub prefix: u8,
    /// Its default gateway.
    pub gateway: [u8; 4],
    /// The record's version (1 or 2).
    pub version: u16,
    /// Where the hub is: by address (v1), or by name through a DNS server (v2).
    pub hub: Hub,
    /// The hub's HTTPS port (EST re-enrolment): v2's field, 443 for v1.
    pub https_port: u16,
    /// The SNTP server's IPv4 address and port.
    pub sntp: ([u8; 4], u16),
    /// CA certificate, DER: the only trust anchor.
    pub ca: &'a [u8],
    /// The device's certificate, DER.
    pub cert: &'a [u8],
    /// The device's P-256 key, PKCS#8 DER.
    pub key: &'a [u8],
    /// The device id (MQTT client id).
    pub device_id: &'a str,
    /// The hub's host name (SNI, certificate name, MQTT user name).
    pub hub_name: &'a str,
}

/// How a record says to reach the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hub {
    /// Version 1: the hub's IPv4 address and port.
    Address([u8; 4], u16),
    /// Version 2: the hub name is looked up at this DNS server (UDP 53);
    /// the hub's port.
    Dns {
        /// The DNS server's IPv4 address.
        server: [u8; 4],
        /// The hub's MQTT-over-TLS port.
        port: u16,
    },
}

/// Why a region holds no usable record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No magic: the region was never written (or is not a record).
    NoRecord,
    /// A version this image does not read.
    Version(u16),
    /// The header's length runs past the region.
    TooLong,
    /// The SHA-256 does not match the contents.
    Digest,
    /// The body ends inside a field.
    Truncated,
    /// The body has bytes after the last field.
    Trailing,
    /// The seed is all zeros.
    ZeroSeed,
    /// A field that must not be empty is.
    Empty(&'static str),
    /// A name is not UTF-8.
    NotUtf8(&'static str),
    /// The prefix length is over 32.
    Prefix(u8),
    /// A v2 record's DNS server is 0.0.0.0.
    NoDnsServer,
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refused> {
        if self.buf.len() < n {
            return Err(Refused::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Refused> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn field(&mut self, name: &'static str) -> Result<&'a [u8], Refused> {
        let len = u16::from_le_bytes(self.array()?);
        let bytes = self.take(usize::from(len))?;
        if bytes.is_empty() {
            return Err(Refused::Empty(name));
        }
        Ok(bytes)
    }
    fn text(&mut self, name: &'static str) -> Result<&'a str, Refused> {
        core::str::from_utf8(self.field(name)?).map_err(|_| Refused::NotUtf8(name))
    }
}

/// Parses the record at the start of `region` (the rest of the region is
/// not looked at).
pub fn parse(region: &[u8]) -> Result<Record<'_>, Refused> {
    if region.len() < HEADER_LEN || region[..4] != MAGIC {
        return Err(Refused::NoRecord);
    }
    let version = u16::from_le_bytes([region[4], region[5]]);
    if version != VERSION && version != VERSION_ADDRESS {
        return Err(Refused::Version(version));
    }
    let body_len = u32::from_le_bytes([region[8], region[9], region[10], region[11]]);
    let end = usize::try_from(body_len)
        .ok()
        .and_then(|n| n.checked_add(HEADER_LEN))
        .filter(|end| {
            end.checked_add(DIGEST_LEN)
                .is_some_and(|e| e <= region.len())
        })
        .ok_or(Refused::TooLong)?;
    let digest = Sha256::digest(&region[..end]);
    if digest.as_slice() != &region[end..end + DIGEST_LEN] {
        return Err(Refused::Digest);
    }
    let fixed = if version == VERSION {
        FIXED_LEN_V2
    } else {
        FIXED_LEN
    };
    if end - HEADER_LEN < fixed {
        return Err(Refused::Truncated);
    }
    let mut r = Reader {
        buf: &region[HEADER_LEN..end],
    };
    let seed: &[u8; 32] = r.take(32)?.try_into().map_err(|_| Refused::Truncated)?;
    if seed.iter().all(|b| *b == 0) {
        return Err(Refused::ZeroSeed);
    }
    let time_floor = u64::from_le_bytes(r.array()?);
    let ip = r.array()?;
    let [prefix] = r.array()?;
    if prefix > 32 {
        return Err(Refused::Prefix(prefix));
    }
    let gateway = r.array()?;
    let (hub_ip, hub_port) = (r.array()?, u16::from_le_bytes(r.array()?));
    let hub = if version == VERSION_ADDRESS {
        Hub::Address(hub_ip, hub_port)
    } else if hub_ip == [0; 4] {
        return Err(Refused::NoDnsServer);
    } else {
        Hub::Dns {
            server: hub_ip,
            port: hub_port,
        }
    };
    let https_port = match hub {
        Hub::Address(..) => DEFAULT_HTTPS_PORT,
        Hub::Dns { .. } => u16::from_le_bytes(r.array()?),
    };
    let sntp = (r.array()?, u16::from_le_bytes(r.array()?));
    let record = Record {
        seed,
        time_floor,
        ip,
        prefix,
        gateway,
        version,
        hub,
        https_port,
        sntp,
        ca: r.field("ca")?,
        cert: r.field("cert")?,
        key: r.field("key")?,
        device_id: r.text("device_id")?,
        hub_name: r.text("hub_name")?,
    };
    if !r.buf.is_empty() {
        return Err(Refused::Trailing);
    }
    Ok(record)
}
