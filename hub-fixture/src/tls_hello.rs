//! A look at a connection's first bytes before rustls takes it: which TLS
//! versions does the ClientHello offer?
//!
//! IoT Hub answers a client that offers only TLS 1.0 or 1.1 with a fatal
//! `protocol_version` alert (70). rustls does so only when such a hello gets
//! that far; an old client's hello usually fails earlier (no signature
//! algorithms, no common groups) and gets `handshake_failure` (40), which
//! tells the device maker nothing about the real problem. So the hub reads the
//! offered versions itself and answers 70 for a hello that offers nothing
//! newer than TLS 1.1. Anything unclear (a partial or fragmented hello, not a
//! hello at all) is left to rustls.

/// What a connection's first bytes offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OfferedVersions {
    /// TLS 1.2 or 1.3 is offered (or the bytes do not tell: rustls decides).
    Current,
    /// A complete ClientHello offering at most this (pre-1.2) version.
    OnlyOlder(u16),
}

const TLS12: u16 = 0x0303;
const SUPPORTED_VERSIONS: u16 = 0x002b;

/// The alert record the hub sends to a client that offers only old versions:
/// fatal (2), protocol_version (70).
pub const PROTOCOL_VERSION_ALERT: [u8; 7] = [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 70];

/// The versions a complete ClientHello names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloVersions {
    /// `legacy_version` (the highest version, for a client without the extension).
    pub legacy: u16,
    /// The `supported_versions` extension's list (GREASE left out), if sent.
    pub supported: Option<Vec<u16>>,
}

impl HelloVersions {
    /// Whether the client would speak `version` (by the extension when it
    /// sent one; else, by TLS ≤ 1.2's rules, anything up to `legacy`).
    pub fn accepts(&self, version: u16) -> bool {
        match &self.supported {
            Some(list) => list.contains(&version),
            None => version <= self.legacy,
        }
    }
}

/// Reads the offered versions from the first bytes a client sent.
pub fn offered_versions(bytes: &[u8]) -> OfferedVersions {
    hello_versions(bytes).map_or(OfferedVersions::Current, |h| {
        judge(match &h.supported {
            Some(list) => list.iter().copied().max().unwrap_or(0),
            None => h.legacy,
        })
    })
}

/// The versions of the complete ClientHello at the start of `bytes`;
/// `None` when they are not (yet) a whole ClientHello record.
pub fn hello_versions(bytes: &[u8]) -> Option<HelloVersions> {
    parse(bytes)
}

/// A spelling for people: "TLS 1.0" for 0x0301.
pub fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301..=0x0304 => format!("TLS 1.{}", v - 0x0301),
        other => format!("version 0x{other:04x}"),
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }
    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// GREASE values (RFC 8701) are offered to be ignored.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

fn parse(bytes: &[u8]) -> Option<HelloVersions> {
    let mut record = Reader(bytes);
    // A handshake record holding a whole ClientHello; anything else: rustls.
    if record.u8()? != 22 {
        return None;
    }
    record.u16()?;
    let fragment = record.vec16()?;
    let mut hs = Reader(fragment);
    if hs.u8()? != 1 {
        return None;
    }
    let body = {
        let n = hs.u24()?;
        hs.take(n)?
    };
    let mut hello = Reader(body);
    let client_version = hello.u16()?;
    hello.take(32)?; // random
    hello.vec8()?; // session id
    hello.vec16()?; // cipher suites
    hello.vec8()?; // compression methods
    if hello.0.is_empty() {
        // No extensions at all: the legacy version is the offer.
        return Some(HelloVersions {
            legacy: client_version,
            supported: None,
        });
    }
    let mut extensions = Reader(hello.vec16()?);
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.vec16()?;
        if kind == SUPPORTED_VERSIONS {
            let mut list = Reader(Reader(data).vec8()?);
            let mut versions = Vec::new();
            while let Some(v) = list.u16() {
                if !is_grease(v) {
                    versions.push(v);
                }
            }
            return Some(HelloVersions {
                legacy: client_version,
                supported: Some(versions),
            });
        }
    }
    Some(HelloVersions {
        legacy: client_version,
        supported: None,
    })
}

fn judge(best: u16) -> OfferedVersions {
    if best >= TLS12 {
        OfferedVersions::Current
    } else {
        OfferedVersions::OnlyOlder(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello record with `legacy` as its version and, if given, a
    /// supported_versions extension listing `versions`.
    fn hello(legacy: u16, versions: Option<&[u16]>) -> Vec<u8> {
        let mut body = legacy.to_be_bytes().to_vec();
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0, 2, 0x00, 0x2f]); // one suite
        body.extend([1, 0]); // null compression
        let mut ext = Vec::new();
        ext.extend([0x00, 0x0a, 0x00, 0x04, 0x00, 0x02, 0x00, 0x17]); // groups
        if let Some(vs) = versions {
            let list: Vec<u8> = vs.iter().flat_map(|v| v.to_be_bytes()).collect();
            ext.extend(SUPPORTED_VERSIONS.to_be_bytes());
            ext.extend(((list.len() + 1) as u16).to_be_bytes());
            ext.push(list.len() as u8);
            ext.extend(list);
        }
        body.extend((ext.len() as u16).to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1];
        hs.extend(&(body.len() as u32).to_be_bytes()[1..]);
        hs.extend(body);
        let mut rec = vec![22, 3, 1];
        rec.extend((hs.len() as u16).to_be_bytes());
        rec.extend(hs);
        rec
    }

    #[test]
    fn old_only_hellos_are_named_and_current_ones_pass() {
        assert_eq!(
            offered_versions(&hello(0x0301, None)),
            OfferedVersions::OnlyOlder(0x0301)
        );
        assert_eq!(
            offered_versions(&hello(0x0302, None)),
            OfferedVersions::OnlyOlder(0x0302)
        );
        assert_eq!(
            offered_versions(&hello(0x0303, None)),
            OfferedVersions::Current
        );
        // TLS 1.3 clients say 1.2 in the legacy field and list 1.3.
        let v13 = hello(0x0303, Some(&[0x0304]));
        assert_eq!(offered_versions(&v13), OfferedVersions::Current);
        let grease = hello(0x0303, Some(&[0x1a1a, 0x0302, 0x0301]));
        assert_eq!(
            offered_versions(&grease),
            OfferedVersions::OnlyOlder(0x0302)
        );
        let with_grease = hello(0x0303, Some(&[0x3a3a, 0x0304, 0x0303]));
        assert_eq!(offered_versions(&with_grease), OfferedVersions::Current);
    }

    #[test]
    fn anything_unclear_is_left_to_rustls() {
        let full = hello(0x0301, None);
        for cut in [0, 1, 5, 9, full.len() - 1] {
            assert_eq!(
                offered_versions(&full[..cut]),
                OfferedVersions::Current,
                "{cut}"
            );
        }
        assert_eq!(
            offered_versions(b"GET / HTTP/1.1\r\n"),
            OfferedVersions::Current
        );
        assert_eq!(
            offered_versions(&[0x10, 0, 4, 0, 4]),
            OfferedVersions::Current
        );
    }

    #[test]
    fn what_a_hello_accepts() {
        let legacy = hello_versions(&hello(0x0303, None)).unwrap();
        assert!(legacy.accepts(0x0301) && legacy.accepts(0x0303) && !legacy.accepts(0x0304));
        let modern = hello_versions(&hello(0x0303, Some(&[0x2a2a, 0x0304, 0x0303]))).unwrap();
        assert_eq!(modern.supported.as_deref(), Some(&[0x0304, 0x0303][..]));
        assert!(!modern.accepts(0x0301) && modern.accepts(0x0304));
        assert_eq!(hello_versions(hello(0x0301, None).split_at(20).0), None);
    }

    #[test]
    fn version_names() {
        assert_eq!(version_name(0x0301), "TLS 1.0");
        assert_eq!(version_name(0x0302), "TLS 1.1");
        assert_eq!(version_name(0x0300), "SSL 3.0");
        assert_eq!(version_name(0x0002), "version 0x0002");
    }
}
