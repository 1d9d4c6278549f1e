//! Connections to the hub: TCP from a fresh local port, TLS 1.3 with the
//! device's credential (the hub authenticated against the provisioned CA at
//! the SNTP time — or, with fault `no-server-verify`, not), one record read
//! at a time, close_notify; and the one HTTPS exchange the image makes, EST
//! re-enrolment (`est.rs` builds and reads it). The MQTT session's loop is
//! `app.rs`'s.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;
use core::time::Duration;

use device_core::faults::{Fault, FaultSet};
use embedded_tls::blocking::{Certificate, TlsConfig, TlsConnection, TlsContext};
use rustls_pki_types::UnixTime;
use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

use crate::est;
use crate::provision::Provisioning;
use crate::secure::WallClock;
use crate::tls::{Link, Provider, Suite};
use crate::uart::Uart;
use crate::verify::WebPkiVerifier;

/// How long one TLS read or write may wait for the network.
pub const LINK_TIMEOUT_MS: u64 = 30_000;
/// embedded-tls's record buffers: a whole 16 KB record plus its overhead
/// comes in; what goes out is the device's own handshake flight and packets.
pub const TLS_RX: usize = 16 * 1024 + 256;
/// See [`TLS_RX`].
pub const TLS_TX: usize = 4096;
/// The largest EST answer taken (a certs-only PKCS#7 of one certificate,
/// base64: ~1 KB).
const EST_ANSWER_MAX: usize = 8 * 1024;

/// A TLS connection over a [`Link`].
pub type Tls<'a, 'b, 'c> = TlsConnection<'a, Link<'b, 'c>, Suite>;

/// Who the device is and whom it trusts, for a handshake.
pub struct Peer<'a> {
    /// The provisioning record (trust anchor, hub name, seed).
    pub prov: &'a Provisioning,
    /// The time from SNTP.
    pub wall: WallClock,
    /// The fault switches built in.
    pub faults: FaultSet,
    /// The credential: certificate DER and PKCS#8 key.
    pub cert: &'a [u8],
    /// See `cert`.
    pub key: &'a [u8],
}

/// TCP to `to` from `local_port` over `link`'s socket (reset first if it
/// is still closing); the reason, already on the console, if it fails.
pub fn dial(
    link: &mut Link<'_, '_>,
    to: IpEndpoint,
    local_port: u16,
    what: &str,
    con: &mut Uart,
) -> Result<(), String> {
    let socket = link.sockets.get_mut::<tcp::Socket>(link.handle);
    if socket.is_open() {
        socket.abort();
        link.poll();
    }
    let _ = writeln!(
        con,
        "tls: dialling {to} ({what}, uptime_ms={})",
        link.clock.now_ms()
    );
    let socket = link.sockets.get_mut::<tcp::Socket>(link.handle);
    if let Err(e) = socket.connect(link.iface.context(), to, local_port) {
        let why = format!("tls: tcp connect error {e:?}");
        let _ = writeln!(con, "{why}");
        return Err(why);
    }
    let start = link.clock.now_ms();
    loop {
        link.poll();
        let socket = link.sockets.get_mut::<tcp::Socket>(link.handle);
        if socket.may_send() {
            let _ = writeln!(con, "tls: tcp connected to {to}");
            return Ok(());
        }
        if !socket.is_open() || link.clock.now_ms() - start > LINK_TIMEOUT_MS {
            socket.abort();
            let why = format!("tls: tcp connection to {to} failed");
            let _ = writeln!(con, "{why}");
            return Err(why);
        }
    }
}

/// The TLS 1.3 handshake over a connected `link`: the hub must be
/// authenticated (chain to the provisioned CA, its name, validity at the
/// SNTP time, its CertificateVerify) unless the image has fault
/// `no-server-verify`; the device presents `peer`'s credential. On a
/// refusal the connection is reset and the reason (on the console) returned.
pub fn handshake<'a, 'b, 'c>(
    link: Link<'b, 'c>,
    rx: &'a mut [u8],
    tx: &'a mut [u8],
    peer: &Peer<'_>,
    con: &mut Uart,
) -> Result<Tls<'a, 'b, 'c>, String> {
    let ms = link.clock.now_ms();
    let unix = peer.wall.unix(ms);
    let mac = link.eth.mac();
    let mut verifier = WebPkiVerifier::<Suite>::new(
        peer.prov.ca,
        Some(UnixTime::since_unix_epoch(Duration::from_secs(unix))),
    );
    // Fault no-server-verify: any hub certificate chain is taken.
    let unchecked = peer.faults.has(Fault::NoServerVerify);
    if unchecked {
        verifier.accept_any_chain();
    }
    let rng = crate::tls::drbg(peer.prov.seed, unix, ms, mac.as_bytes());
    let config = TlsConfig::new()
        .with_server_name(peer.prov.hub_name)
        .with_cert(Certificate::X509(peer.cert))
        .with_priv_key(peer.key);
    let mut tls: Tls<'a, 'b, 'c> = TlsConnection::new(link, rx, tx);
    let opened = tls.open(TlsContext::new(
        &config,
        Provider {
            rng,
            verifier: &mut verifier,
        },
    ));
    let refusal = match (&opened, verifier.authenticated()) {
        (Ok(()), true) => None,
        (Ok(()), false) => Some(String::from(
            "tls: refused: handshake ended without the hub's certificate and signature verified",
        )),
        (Err(e), _) => Some(match &verifier.refusal {
            Some(why) => format!("tls: refused the hub's certificate: {why}"),
            None => format!("tls: handshake failed: {e:?}"),
        }),
    };
    if let Some(why) = refusal {
        let _ = writeln!(con, "{why}");
        // No close_notify for a session that never opened: a reset.
        abort(&mut tls);
        return Err(why);
    }
    let checked = if unchecked {
        "NOT verified (fault no-server-verify)"
    } else {
        "verified"
    };
    let _ = writeln!(
        con,
        "tls: handshake done (TLS 1.3 TLS_AES_128_GCM_SHA256), hub {} {checked} at unix={unix}",
        peer.prov.hub_name
    );
    Ok(tls)
}

/// Application data once the connection is readable: 0 bytes when a record
/// held none (a NewSessionTicket: it must not hold a loop past its
/// deadlines, as `read()` would, waiting for application data), or why the
/// connection ended.
pub fn receive(tls: &mut Tls<'_, '_, '_>, buf: &mut [u8]) -> Result<usize, String> {
    if !tls.has_buffered_data() {
        match tls.read_one_record() {
            Ok(true) => {}
            Ok(false) => return Err(String::from("connection closed by the hub")),
            Err(e) => return Err(format!("connection ended: {e:?}")),
        }
        if !tls.has_buffered_data() {
            return Ok(0);
        }
    }
    match tls.read(buf) {
        Ok(0) => Err(String::from("connection closed by the hub")),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("connection ended: {e:?}")),
    }
}

/// Resets the connection's TCP.
pub fn abort(tls: &mut Tls<'_, '_, '_>) {
    let link = tls.transport_mut();
    link.sockets.get_mut::<tcp::Socket>(link.handle).abort();
}

/// close_notify and the TCP close (a reset if TLS fails).
pub fn close(con: &mut Uart, tls: Tls<'_, '_, '_>, since_ms: u64) {
    match tls.close() {
        Ok(link) => {
            let took = link.clock.now_ms() - since_ms;
            let _ = writeln!(con, "tls: close_notify sent; connection took {took} ms");
            link.sockets.get_mut::<tcp::Socket>(link.handle).close();
        }
        Err((link, e)) => {
            let _ = writeln!(con, "tls: close error {e:?}");
            link.sockets.get_mut::<tcp::Socket>(link.handle).abort();
        }
    }
}

/// EST `simplereenroll` over its own connection (`link`'s socket) to the
/// hub's HTTPS port: the CSR out, the hub's answer back. `Err` is a
/// transport failure (no answer); a refusal is an [`est::Answer`].
pub fn reenroll(
    mut link: Link<'_, '_>,
    to: IpEndpoint,
    local_port: u16,
    peer: &Peer<'_>,
    csr_der: &[u8],
    con: &mut Uart,
) -> Result<est::Answer, String> {
    dial(&mut link, to, local_port, "EST", con)?;
    let since = link.clock.now_ms();
    let mut rx = [0u8; TLS_RX];
    let mut tx = [0u8; TLS_TX];
    let mut tls = handshake(link, &mut rx, &mut tx, peer, con)?;
    let request = est::request(peer.prov.hub_name, csr_der);
    if let Err(e) = tls.write(&request).and_then(|_| tls.flush()) {
        abort(&mut tls);
        return Err(format!("sending the request: {e:?}"));
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let outcome = loop {
        match est::parse_answer(&answer) {
            Ok(Some(a)) => break Ok(a),
            Ok(None) if answer.len() > EST_ANSWER_MAX => {
                break Err(format!("an answer over {EST_ANSWER_MAX} B"))
            }
            Ok(None) => {}
            Err(e) => break Err(e),
        }
        match receive(&mut tls, &mut buf) {
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(why) => break Err(format!("the answer was cut short: {why}")),
        }
    };
    close(con, tls, since);
    outcome
}
