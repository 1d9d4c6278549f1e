//! The MQTT-over-TLS listener: the IO shell around [`crate::session::Session`].
//!
//! One task per connection: TLS handshake (bounded by a timeout, failures
//! journalled with their reason), then a loop that moves bytes between the
//! socket and the session and hub commands (close, C2D available, method,
//! desired patch) into it. A bad client only ever ends its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::hub::{HubState, SessionCommand, SessionHandle};
use crate::hub_state::blocking;
use crate::journal::{CloseReason, Event, HandshakeFailure, Listener};
use crate::serial::Serial;
use crate::session::{ClientIdentity, HubPort, Session, SessionEnd};
use crate::store::{DeviceStatus, QueuedMessage, StoreError, StoredSession, Twin};

/// Accepts connections until the hub shuts down.
/// Hands the listening socket back when the hub shuts down.
pub(crate) async fn serve(hub: Arc<HubState>, listener: TcpListener) -> TcpListener {
    let mut shutdown = hub.shutdown.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(connection(hub.clone(), tcp, peer));
                }
                Err(e) => tracing::warn!("mqtt accept: {e}"),
            },
            _ = shutdown.wait_for(|s| *s) => return listener,
        }
    }
}

/// Accepts TLS on `tcp` with the hub's rules and journals a failure.
/// Returns the stream and the verified client identity.
pub(crate) async fn accept_tls(
    hub: &HubState,
    tcp: TcpStream,
    peer: &str,
    listener: Listener,
) -> Option<(
    tokio_rustls::server::TlsStream<TcpStream>,
    ClientIdentity,
    Vec<u8>,
)> {
    // The connection is accepted now (the listener hands it over at once):
    // when the device's attempt began, before its handshake.
    let began = std::time::Instant::now();
    let acceptor = TlsAcceptor::from(hub.tls.clone());
    let failed = |reason: HandshakeFailure, detail: String| {
        hub.journal.record(
            None,
            Some(peer),
            Event::HandshakeFailed {
                listener,
                reason,
                detail,
            },
        );
    };
    let deadline = tokio::time::Instant::now() + hub.config.handshake_timeout;
    // A hello that offers only TLS 1.0/1.1 gets IoT Hub's answer, alert 70
    // protocol_version (see tls_hello.rs); the rest is rustls's.
    let mut first = [0u8; 1024];
    if let Ok(Ok(n)) = tokio::time::timeout_at(deadline, tcp.peek(&mut first)).await {
        if let crate::tls::OfferedVersions::OnlyOlder(v) = crate::tls::offered_versions(&first[..n])
        {
            let mut tcp = tcp;
            let _ = tcp.write_all(&crate::tls::PROTOCOL_VERSION_ALERT).await;
            let _ = tcp.shutdown().await;
            failed(
                HandshakeFailure::ProtocolVersion,
                format!(
                    "the client offers only {} (or older); the hub speaks TLS 1.2 and 1.3",
                    crate::tls::version_name(v)
                ),
            );
            return None;
        }
    }
    let stream = match tokio::time::timeout_at(deadline, acceptor.accept(tcp)).await {
        Err(_) => {
            failed(
                HandshakeFailure::Timeout,
                format!("no handshake within {:?}", hub.config.handshake_timeout),
            );
            return None;
        }
        Ok(Err(e)) => {
            let (reason, detail) = crate::tls::classify_handshake_error(&e);
            failed(reason, detail);
            return None;
        }
        Ok(Ok(s)) => s,
    };
    let (_, conn) = stream.get_ref();
    let cert = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.to_vec());
    let Some((cert_der, (device_id, serial))) =
        cert.and_then(|der| crate::tls::cert_identity(&der).map(|id| (der, id)))
    else {
        failed(
            HandshakeFailure::BadCertificate,
            "client certificate has no subject CN".into(),
        );
        return None;
    };
    let tls_version = conn
        .protocol_version()
        // The spelling of OpenSSL and Wireshark ("TLSv1.3"), not rustls' Debug.
        .map(|v| format!("{v:?}").replace('_', "."))
        .unwrap_or_default();
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| format!("{:?}", s.suite()))
        .unwrap_or_default();
    hub.journal.record(
        Some(&device_id),
        Some(peer),
        Event::TlsAccepted {
            listener,
            serial: serial.to_string(),
            tls_version,
            cipher_suite,
            handshake_us: u64::try_from(began.elapsed().as_micros()).unwrap_or(u64::MAX),
        },
    );
    Some((stream, ClientIdentity { device_id, serial }, cert_der))
}

async fn connection(hub: Arc<HubState>, tcp: TcpStream, peer: SocketAddr) {
    let peer = peer.to_string();
    let Some((stream, identity, _)) = accept_tls(&hub, tcp, &peer, Listener::Mqtt).await else {
        return;
    };
    let device_id = identity.device_id.clone();
    let session_id = hub.next_id();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut session = Session::new(hub.session_config.clone(), identity);
    let mut port = Port {
        hub: &hub,
        peer: &peer,
        session_id,
        tx: &tx,
        registered: false,
    };
    let (mut rd, mut wr) = tokio::io::split(stream);
    let mut buf = vec![0u8; 16 * 1024];
    let mut revoked_at: Option<(Instant, String)> = None;
    let mut deadline = tokio::time::Instant::now() + hub.config.connect_timeout;

    let end: SessionEnd = loop {
        let step: Result<(), SessionEnd> = tokio::select! {
            read = rd.read(&mut buf) => match read {
                Ok(0) => Err(SessionEnd::new(CloseReason::PeerClosed, "connection closed by the client")),
                Err(e) => Err(SessionEnd::new(CloseReason::IoError, e.to_string())),
                Ok(n) => {
                    let result = blocking(|| session.receive(&mut port, &buf[..n]));
                    if let Some(idle) = session.idle_timeout() {
                        deadline = tokio::time::Instant::now() + idle;
                    } else if session.is_connected() || session.is_withheld() {
                        deadline = far_future();
                    }
                    result
                }
            },
            cmd = rx.recv() => match cmd {
                Some(SessionCommand::Close { reason, detail, revoked_at: r }) => {
                    revoked_at = r;
                    Err(SessionEnd::new(reason, detail))
                }
                Some(SessionCommand::C2dAvailable) => { blocking(|| session.deliver_c2d(&mut port)); Ok(()) }
                Some(SessionCommand::Method { name, rid, payload }) => {
                    if !session.send_method(&name, &rid, payload) {
                        hub.finish_method(None, &rid, 404, Bytes::new());
                    }
                    Ok(())
                }
                Some(SessionCommand::Desired { version, patch }) => { session.send_desired(version, &patch); Ok(()) }
                Some(SessionCommand::HeldDesired { version, patch }) => {
                    let sent = session.send_desired(version, &patch);
                    hub.journal.record(Some(&device_id), Some(&peer), Event::DesiredReleased { version, sent });
                    Ok(())
                }
                // The hub holds a sender for as long as it may send; None cannot happen while we hold tx.
                None => Ok(()),
            },
            _ = tokio::time::sleep_until(deadline) => Err(if session.is_connected() {
                SessionEnd::new(CloseReason::KeepAliveTimeout, "no packet within 1.5 x keep-alive")
            } else {
                SessionEnd::new(CloseReason::ConnectTimeout, format!("no CONNECT within {:?}", hub.config.connect_timeout))
            }),
        };
        if let Some(out) = session.take_output() {
            if let Err(e) = wr.write_all(&out).await {
                break SessionEnd::new(CloseReason::IoError, e.to_string());
            }
        }
        if let Err(end) = step {
            break end;
        }
    };
    if end.reason == CloseReason::SessionDiscarded {
        // Before the device can see the close and come back: no stored
        // session to resume (this session, no longer live, cannot save one).
        if port.registered {
            hub.unregister_session(&device_id, session_id);
        }
        if let Err(e) = blocking(|| hub.store().drop_session(&device_id)) {
            tracing::error!("discarding the stored session of {device_id}: {e}");
        }
    }
    if end.reason == CloseReason::HubReset {
        // RST: linger 0 and close, without close_notify or FIN. (On the
        // stream itself: a second handle per session would double the
        // hub's descriptors, and 10 000 sessions hit a 20 000 limit.)
        let stream = rd.unsplit(wr);
        let _ = stream.get_ref().0.set_zero_linger();
        drop(stream);
    } else {
        // Orderly TLS close (close_notify, FIN), bounded so a stuck peer cannot hold us.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), wr.shutdown()).await;
        drop(wr);
        drop(rd);
    }
    let closed_at = Instant::now();
    if port.registered {
        hub.unregister_session(&device_id, session_id);
    }
    hub.journal.record(
        Some(&device_id),
        Some(&peer),
        Event::SessionClosed {
            reason: end.reason,
            detail: end.detail,
        },
    );
    if let Some((at, serial)) = revoked_at {
        let latency_us = closed_at.saturating_duration_since(at).as_micros() as u64;
        hub.journal.record(
            Some(&device_id),
            Some(&peer),
            Event::RevokedSessionClosed { serial, latency_us },
        );
    }
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(100 * 365 * 86_400)
}

/// The session's view of the hub.
struct Port<'a> {
    hub: &'a HubState,
    peer: &'a str,
    /// This connection's id and command channel, for `go_live`.
    session_id: u64,
    tx: &'a mpsc::UnboundedSender<SessionCommand>,
    /// Whether it became the device's live session.
    registered: bool,
}

impl HubPort for Port<'_> {
    fn go_live(&mut self, device_id: &str, serial: &Serial) -> bool {
        let handle = SessionHandle {
            id: self.session_id,
            serial: serial.clone(),
            tx: self.tx.clone(),
        };
        // Registered either way, so that the end of the session unregisters it.
        self.registered = true;
        self.hub.register_session(device_id, handle)
    }

    fn device_status(&mut self, device_id: &str) -> Option<DeviceStatus> {
        self.hub
            .store()
            .device(device_id)
            .ok()
            .flatten()
            .map(|d| d.status)
    }

    fn serial_revoked(&mut self, serial: &Serial) -> bool {
        self.hub.revoked.contains(serial)
    }

    fn load_session(&mut self, device_id: &str) -> Option<StoredSession> {
        let stored = self.hub.store().session(device_id);
        stored.unwrap_or_else(|e| {
            tracing::error!("reading the stored session of {device_id}: {e}");
            None
        })
    }

    fn save_session(&mut self, device_id: &str, session: &StoredSession) {
        self.hub
            .save_session_if_live(device_id, self.session_id, session);
    }

    fn drop_session(&mut self, device_id: &str) {
        if let Err(e) = self.hub.store().drop_session(device_id) {
            tracing::error!("discarding the stored session of {device_id}: {e}");
        }
    }

    fn take_lost_puback(&mut self, device_id: &str) -> bool {
        self.hub
            .lose_puback
            .lock()
            .expect("lose-puback lock")
            .remove(device_id)
    }

    fn withhold_connack(&mut self, device_id: &str) -> bool {
        self.hub
            .withhold_connack
            .lock()
            .expect("withhold lock")
            .contains(device_id)
    }

    fn take_redelivery(&mut self, device_id: &str, seq: i64) -> Option<QueuedMessage> {
        let now = self.hub.now_ms();
        let taken = self.hub.store().take_redelivery(device_id, seq, now);
        match taken {
            Ok(t) => {
                self.hub.journal_feedback(&t.feedback);
                t.messages.into_iter().next()
            }
            Err(e) => {
                tracing::error!("C2D redelivery of {seq} to {device_id}: {e}");
                None
            }
        }
    }

    fn take_c2d(&mut self, device_id: &str, in_flight: &[i64], limit: usize) -> Vec<QueuedMessage> {
        let now = self.hub.now_ms();
        let taken = self
            .hub
            .store()
            .take_deliverable(device_id, now, in_flight, limit);
        match taken {
            Ok(t) => {
                self.hub.journal_feedback(&t.feedback);
                t.messages
            }
            Err(e) => {
                tracing::error!("C2D store failed for {device_id}: {e}");
                Vec::new()
            }
        }
    }

    fn complete_c2d(&mut self, device_id: &str, seq: i64) {
        let now = self.hub.now_ms();
        let done = self.hub.store().complete(seq, now);
        match done {
            Ok(Some(f)) => self.hub.journal_feedback(&[f]),
            Ok(None) => {}
            Err(e) => tracing::error!("completing C2D {seq} of {device_id}: {e}"),
        }
    }

    fn twin(&mut self, device_id: &str) -> Option<Twin> {
        self.hub.store().twin(device_id).ok()
    }

    fn patch_reported(
        &mut self,
        device_id: &str,
        patch: &serde_json::Value,
    ) -> Result<i64, (u16, String)> {
        let twin = self.hub.store().patch_reported(device_id, patch);
        twin.map(|t| t.reported_version).map_err(|e| {
            let status = match e {
                StoreError::TwinTooLarge { .. } => 413,
                _ => 400,
            };
            (status, e.to_string())
        })
    }

    fn method_result(&mut self, device_id: &str, rid: &str, status: u16, payload: Bytes) {
        self.hub
            .finish_method(Some(device_id), rid, status, payload);
    }

    fn journal(&mut self, device_id: &str, event: Event) {
        self.hub
            .journal
            .record(Some(device_id), Some(self.peer), event);
    }
}
