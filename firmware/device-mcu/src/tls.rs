//! The TLS client's pieces around embedded-tls: the crypto provider (the
//! DRBG, the webpki verifier, the P-256 client key) and `Link`, the
//! blocking byte stream embedded-tls reads and writes, which drives
//! smoltcp while it waits.

use embedded_tls::{Aes128GcmSha256, CryptoProvider, SignatureScheme, TlsError, TlsVerifier};
use p256::pkcs8::DecodePrivateKey;
use rand_chacha::ChaCha20Rng;
use rand_core::{CryptoRngCore, SeedableRng};
use sha2::{Digest, Sha256};
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;

use crate::clock::Clock;
use crate::lan9118::Lan9118;
use crate::verify::WebPkiVerifier;

/// The one cipher suite offered: TLS_AES_128_GCM_SHA256 (mandatory in RFC 8446).
pub type Suite = Aes128GcmSha256;

/// A ChaCha20 DRBG seeded from the provisioned per-unit secret, the time
/// from SNTP and the timer's count at that moment (AN385 has no TRNG; the
/// secret is what makes the stream unpredictable, the rest makes each boot's
/// stream differ).
pub fn drbg(secret: &[u8; 32], unix_time: u64, ticks: u64, mac: &[u8]) -> ChaCha20Rng {
    let mut h = Sha256::new();
    h.update(b"device-mcu drbg v1");
    h.update(secret);
    h.update(unix_time.to_le_bytes());
    h.update(ticks.to_le_bytes());
    h.update(mac);
    ChaCha20Rng::from_seed(h.finalize().into())
}

/// embedded-tls's view of our crypto: the DRBG, the verifier, the signer.
pub struct Provider<'v> {
    /// Randomness for key shares and the client random.
    pub rng: ChaCha20Rng,
    /// Server authentication.
    pub verifier: &'v mut WebPkiVerifier<Suite>,
}

impl CryptoProvider for Provider<'_> {
    type CipherSuite = Suite;
    type Signature = p256::ecdsa::DerSignature;

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Self::CipherSuite>, TlsError> {
        Ok(&mut *self.verifier)
    }

    fn signer(
        &mut self,
        key_der: &[u8],
    ) -> Result<
        (
            impl p256::ecdsa::signature::SignerMut<Self::Signature>,
            SignatureScheme,
        ),
        TlsError,
    > {
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(key_der)
            .map_err(|_| TlsError::InvalidPrivateKey)?;
        Ok((key, SignatureScheme::EcdsaSecp256r1Sha256))
    }
}

/// Why the byte stream under TLS stopped.
#[derive(Debug, Clone, Copy)]
pub enum LinkError {
    /// The peer reset or the socket closed under us.
    Closed,
    /// No progress within the link's timeout.
    TimedOut,
}

impl core::fmt::Display for LinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LinkError::Closed => write!(f, "connection closed"),
            LinkError::TimedOut => write!(f, "timed out"),
        }
    }
}

impl core::error::Error for LinkError {}

impl embedded_io::Error for LinkError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self {
            LinkError::Closed => embedded_io::ErrorKind::ConnectionReset,
            LinkError::TimedOut => embedded_io::ErrorKind::TimedOut,
        }
    }
}

/// A connected smoltcp TCP socket as a blocking stream: each call polls
/// the interface until it can make progress (or `timeout_ms` passes
/// without any).
pub struct Link<'a, 's> {
    /// The interface.
    pub iface: &'a mut Interface,
    /// The NIC.
    pub eth: &'a mut Lan9118,
    /// The socket set holding `handle`.
    pub sockets: &'a mut SocketSet<'s>,
    /// The TCP socket.
    pub handle: SocketHandle,
    /// The debug listener (fault `listen-debug`), serviced on every poll.
    pub debug: crate::debugport::Listeners,
    /// The clock smoltcp's timers run on.
    pub clock: &'a mut Clock,
    /// How long one call may wait without progress.
    pub timeout_ms: u64,
}

impl Link<'_, '_> {
    /// Polls until `ready` says the socket can go on, or it fails.
    fn wait<T>(
        &mut self,
        mut ready: impl FnMut(&mut tcp::Socket) -> Option<Result<T, LinkError>>,
    ) -> Result<T, LinkError> {
        let start = self.clock.now_ms();
        loop {
            self.poll();
            let socket = self.sockets.get_mut::<tcp::Socket>(self.handle);
            if let Some(done) = ready(socket) {
                // Push out what `ready` queued without waiting for the next call.
                self.poll();
                return done;
            }
            if self.clock.now_ms().saturating_sub(start) > self.timeout_ms {
                return Err(LinkError::TimedOut);
            }
        }
    }
}

impl<'s> Link<'_, 's> {
    /// Another link over the same interface and sockets, for `handle`'s
    /// socket: a second connection beside this one's, which waits meanwhile.
    pub fn beside(&mut self, handle: SocketHandle) -> Link<'_, 's> {
        Link {
            iface: &mut *self.iface,
            eth: &mut *self.eth,
            sockets: &mut *self.sockets,
            handle,
            debug: self.debug,
            clock: &mut *self.clock,
            timeout_ms: self.timeout_ms,
        }
    }

    /// One poll of the interface (and of the debug listener).
    pub fn poll(&mut self) {
        let t = crate::now(self.clock);
        crate::debugport::poll(self.iface, self.eth, self.sockets, t, self.debug);
    }

    /// Drives the network until the socket has bytes to read (or the peer
    /// closed: the next read reports it) — true — or the uptime reaches
    /// `until_ms` with nothing to read — false. Reads nothing itself.
    pub fn wait_readable(&mut self, until_ms: u64) -> bool {
        loop {
            self.poll();
            let socket = self.sockets.get_mut::<tcp::Socket>(self.handle);
            if socket.can_recv() || !socket.may_recv() {
                return true;
            }
            if self.clock.now_ms() >= until_ms {
                return false;
            }
        }
    }

    /// Uptime in milliseconds.
    pub fn now_ms(&mut self) -> u64 {
        self.clock.now_ms()
    }
}

impl embedded_io::ErrorType for Link<'_, '_> {
    type Error = LinkError;
}

impl embedded_io::Read for Link<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, LinkError> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.wait(|s| {
            if s.can_recv() {
                Some(s.recv_slice(buf).map_err(|_| LinkError::Closed))
            } else if !s.may_recv() {
                Some(Err(LinkError::Closed))
            } else {
                None
            }
        })
    }
}

impl embedded_io::Write for Link<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, LinkError> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.wait(|s| {
            if !s.may_send() {
                Some(Err(LinkError::Closed))
            } else if s.can_send() {
                Some(s.send_slice(buf).map_err(|_| LinkError::Closed))
            } else {
                None
            }
        })
    }

    fn flush(&mut self) -> Result<(), LinkError> {
        self.wait(|s| {
            if s.send_queue() == 0 {
                Some(Ok(()))
            } else if !s.may_send() {
                Some(Err(LinkError::Closed))
            } else {
                None
            }
        })
    }
}
