//! The HTTPS listener (port 443): EST (RFC 7030) and the firmware image
//! service, under the same TLS rules as MQTT (client certificate required,
//! revocation checked).
//!
//! Every request runs as the device of its client certificate; an unknown or
//! disabled device gets 403. Firmware downloads support `Range` (served by
//! tower-http's `ServeFile`), so a device resumes after a cut.
//!
//! Like the MQTT listener's CONNECT timeout, a connection must not be held
//! open by a client that sends nothing or dribbles a request head: a request
//! head must arrive whole within `https_header_timeout`, and a keep-alive
//! connection idle between requests is dropped after `https_idle_timeout`
//! (see [`Phase`]).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tower::ServiceExt;

use crate::est;
use crate::hub::HubState;
use crate::hub_state::blocking;
use crate::journal::{Event, Listener};
use crate::session::ClientIdentity;
use crate::store::DeviceStatus;

#[derive(Clone)]
struct Ctx {
    hub: Arc<HubState>,
    identity: ClientIdentity,
    cert_der: Arc<Vec<u8>>,
    peer: String,
}

/// Accepts connections until the hub shuts down.
/// Hands the listening socket back when the hub shuts down.
pub(crate) async fn serve(hub: Arc<HubState>, listener: TcpListener) -> TcpListener {
    let mut shutdown = hub.shutdown.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => { tokio::spawn(connection(hub.clone(), tcp, peer.to_string())); }
                Err(e) => tracing::warn!("https accept: {e}"),
            },
            _ = shutdown.wait_for(|s| *s) => return listener,
        }
    }
}

async fn connection(hub: Arc<HubState>, tcp: tokio::net::TcpStream, peer: String) {
    let Some((stream, identity, cert_der)) =
        crate::mqtt_server::accept_tls(&hub, tcp, &peer, Listener::Https).await
    else {
        return;
    };
    let ctx = Ctx {
        hub,
        identity,
        cert_der: Arc::new(cert_der),
        peer,
    };
    let hub = ctx.hub.clone();
    let peer = ctx.peer.clone();
    let device = ctx.identity.device_id.clone();
    let router = Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/simplereenroll", post(simple_reenroll))
        .route("/firmware/{name}", get(firmware))
        .with_state(ctx);
    let (phase, mut changed) = watch::channel(Phase::new());
    let tracked = phase.clone();
    let header_timeout = hub.config.https_header_timeout;
    let (body_hub, body_peer, body_device) = (hub.clone(), peer.clone(), device.clone());
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let busy = Busy::begin(&tracked);
        let path = req.uri().path().to_owned();
        let response = router.clone().oneshot(req);
        let (hub, peer, device) = (body_hub.clone(), body_peer.clone(), body_device.clone());
        async move {
            // The request (its body included: the EST handler reads it whole
            // before it answers) must be in within the header timeout too, or
            // a client trickling a body holds the connection forever. A
            // response's own body (a firmware download) is not bounded here.
            let response = match tokio::time::timeout(header_timeout, response).await {
                Ok(r) => r?,
                Err(_) => {
                    let why = format!("request body not complete within {header_timeout:?}");
                    hub.journal.record(
                        Some(&device),
                        Some(&peer),
                        Event::HttpRefused {
                            path,
                            status: StatusCode::REQUEST_TIMEOUT.as_u16(),
                            reason: why.clone(),
                        },
                    );
                    let mut r = (StatusCode::REQUEST_TIMEOUT, why).into_response();
                    r.headers_mut().insert(
                        header::CONNECTION,
                        header::HeaderValue::from_static("close"),
                    );
                    r
                }
            };
            Ok::<_, Infallible>(response.map(|body| Body::new(Tracked { body, _busy: busy })))
        }
    });
    let io = TokioIo::new(Watched {
        inner: stream,
        phase,
    });
    let connection = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(connection);
    let (header, idle) = (
        hub.config.https_header_timeout,
        hub.config.https_idle_timeout,
    );
    loop {
        let deadline = changed.borrow_and_update().deadline(header, idle);
        let expired = async {
            match &deadline {
                Some((at, _)) => tokio::time::sleep_until(*at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            done = &mut connection => {
                if let Err(e) = done {
                    tracing::debug!("https connection: {e}");
                }
                return;
            }
            // Never fails: `Watched` and the service hold senders as long
            // as `connection` lives.
            _ = changed.changed() => {}
            _ = expired => {
                // Dropping the connection closes the socket. A phase change
                // racing the deadline is honoured: the loop looks again.
                if let Some((at, why)) = changed.borrow().deadline(header, idle) {
                    if at <= Instant::now() {
                        tracing::debug!("https connection from {peer} dropped: {why}");
                        hub.journal.record(
                            Some(&device),
                            Some(&peer),
                            Event::HttpRefused {
                                path: String::new(),
                                status: StatusCode::REQUEST_TIMEOUT.as_u16(),
                                reason: why,
                            },
                        );
                        return;
                    }
                }
            }
        }
    }
}

/// Where a connection is between requests, for its timeouts. hyper's own
/// `header_read_timeout` is not used: it starts counting as soon as a
/// response is sent, so it cannot tell a keep-alive pause (idle timeout)
/// from a slow request head (header timeout).
#[derive(Debug, Clone, Copy)]
struct Phase {
    /// Requests whose response has not been sent in full.
    busy: usize,
    /// No request head has been received yet.
    first: bool,
    /// When the connection last had nothing under way (TLS done, or the last
    /// response sent).
    idle_since: Instant,
    /// When the first byte of the next request head arrived.
    head_started: Option<Instant>,
}

impl Phase {
    fn new() -> Self {
        Self {
            busy: 0,
            first: true,
            idle_since: Instant::now(),
            head_started: None,
        }
    }

    /// When the connection is to be dropped if nothing changes, and why.
    /// The first request's head is timed from the handshake, as the MQTT
    /// listener times CONNECT; a later one from its first byte, after an
    /// idle pause of its own.
    fn deadline(&self, header: Duration, idle: Duration) -> Option<(Instant, String)> {
        if self.busy > 0 {
            return None;
        }
        let start = if self.first {
            Some(self.idle_since)
        } else {
            self.head_started
        };
        Some(match (start, self.head_started) {
            (Some(start), Some(_)) => (
                start + header,
                format!("request head not complete within {header:?}"),
            ),
            (Some(start), None) => (start + header, format!("no request within {header:?}")),
            (None, _) => (
                self.idle_since + idle,
                format!("keep-alive connection idle for {idle:?}"),
            ),
        })
    }
}

/// A request under way, from its head being read to its response's body
/// being sent in full (or abandoned).
struct Busy(watch::Sender<Phase>);

impl Busy {
    fn begin(phase: &watch::Sender<Phase>) -> Self {
        phase.send_modify(|p| {
            p.busy += 1;
            p.first = false;
            p.head_started = None;
        });
        Self(phase.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.send_modify(|p| {
            p.busy -= 1;
            if p.busy == 0 {
                p.idle_since = Instant::now();
                // Bytes read while busy (a request body) are no next head.
                p.head_started = None;
            }
        });
    }
}

/// A response body that ends its request's [`Busy`] when hyper is done with
/// it (sent in full, or the connection gone).
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The TLS stream, noting when the first byte of a request head arrives (a
/// read while no request is under way).
struct Watched<S> {
    inner: S,
    phase: watch::Sender<Phase>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            // Only a change wakes the watchdog: one per request head.
            this.phase.send_if_modified(|p| {
                let starts = p.busy == 0 && p.head_started.is_none();
                if starts {
                    p.head_started = Some(Instant::now());
                }
                starts
            });
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl Ctx {
    fn journal(&self, event: Event) {
        self.hub
            .journal
            .record(Some(&self.identity.device_id), Some(&self.peer), event);
    }

    /// 403 unless the client certificate is unrevoked and its device registered and enabled.
    fn authorise(&self, path: &str) -> Result<(), Box<Response>> {
        let status = self
            .hub
            .store()
            .device(&self.identity.device_id)
            .ok()
            .flatten()
            .map(|d| d.status);
        // Checked per request, not only at the handshake: a keep-alive
        // connection opened before a revocation must serve nothing after it.
        let revoked = self.hub.revoked.contains(&self.identity.serial);
        let why = match status {
            _ if revoked => "certificate is revoked",
            Some(DeviceStatus::Enabled) => return Ok(()),
            Some(DeviceStatus::Disabled) => "device is disabled",
            None => "device is not registered",
        };
        self.journal(Event::HttpRefused {
            path: path.into(),
            status: 403,
            reason: why.into(),
        });
        Err(Box::new((StatusCode::FORBIDDEN, why).into_response()))
    }
}

fn pkcs7(body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, est::PKCS7_CERTS_ONLY),
            (
                header::HeaderName::from_static("content-transfer-encoding"),
                "base64",
            ),
        ],
        body,
    )
        .into_response()
}

async fn cacerts(State(ctx): State<Ctx>) -> Response {
    if let Err(r) = blocking(|| ctx.authorise("/.well-known/est/cacerts")) {
        return *r;
    }
    match est::cacerts_body(ctx.hub.ca.cert_der()) {
        Ok(body) => {
            ctx.journal(Event::CaCertsServed {});
            pkcs7(body)
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn simple_reenroll(State(ctx): State<Ctx>, body: axum::body::Bytes) -> Response {
    if let Err(r) = blocking(|| ctx.authorise("/.well-known/est/simplereenroll")) {
        return *r;
    }
    let hub = &ctx.hub;
    let validity = hub.est_validity();
    let refused = |status: StatusCode, reason: String| {
        ctx.journal(Event::EnrollRefused {
            reason: reason.clone(),
        });
        (status, reason).into_response()
    };
    if hub.enrollment_refused(&ctx.identity.device_id) {
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "enrolment is refused for this device (fixture switch)".into(),
        );
    }
    // Key generation and signing, then SQLite: off the runtime's workers.
    let issued = blocking(|| est::simple_reenroll(&hub.ca, &ctx.cert_der, &body, validity));
    let (issued, body) = match issued {
        Ok(r) => r,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Err(e) = blocking(|| {
        hub.record_issued(&ctx.identity.device_id, &issued)
            .and_then(|_| hub.record_supersedes(&issued.serial, &ctx.identity.serial))
    }) {
        return refused(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    ctx.journal(Event::Enrolled {
        old_serial: ctx.identity.serial.to_string(),
        new_serial: issued.serial.clone(),
        thumbprint: issued.thumbprint.clone(),
    });
    pkcs7(body)
}

async fn firmware(
    State(ctx): State<Ctx>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let path = format!("/firmware/{name}");
    if let Err(r) = blocking(|| ctx.authorise(&path)) {
        return *r;
    }
    let valid = !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    let file = ctx.hub.config.data_dir.join("firmware").join(&name);
    if !valid || !file.is_file() {
        ctx.journal(Event::HttpRefused {
            path,
            status: 404,
            reason: "no such image".into(),
        });
        return (StatusCode::NOT_FOUND, "no such image").into_response();
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut request = Request::new(Body::empty());
    *request.headers_mut() = headers;
    let response = match tower_http::services::ServeFile::new(&file)
        .oneshot(request)
        .await
    {
        Ok(r) => r.map(Body::new),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let rate = *ctx.hub.firmware_rate.lock().expect("firmware rate lock");
    let response = match rate {
        Some(rate) => response.map(|body| throttled(body, rate)),
        None => response,
    };
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    ctx.journal(Event::Download {
        path: path.clone(),
        range,
        status: response.status().as_u16(),
        bytes,
    });
    response.map(|body| {
        Body::new(Counted {
            body,
            sent: 0,
            announced: bytes,
            path,
            ctx,
        })
    })
}

/// A firmware answer's body that journals, once hyper is done with it, how
/// much of it went out: [`Event::DownloadEnded`] (whole, or cut short by
/// the client going away).
struct Counted {
    body: Body,
    sent: u64,
    announced: u64,
    path: String,
    ctx: Ctx,
}

impl hyper::body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(f))) = &frame {
            if let Some(data) = f.data_ref() {
                this.sent += data.len() as u64;
            }
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.ctx.journal(Event::DownloadEnded {
            path: std::mem::take(&mut self.path),
            sent: self.sent,
            complete: self.sent == self.announced,
        });
    }
}

/// `body` at most `rate` bytes per second: a twentieth of that every 50 ms.
/// The pauses are the slow link the fixture switch asks for.
fn throttled(body: Body, rate: u64) -> Body {
    use futures::StreamExt;
    let step = usize::try_from(rate / 20).unwrap_or(usize::MAX).max(1);
    let chunks = futures::stream::unfold(
        (body.into_data_stream(), Bytes::new()),
        move |(mut stream, mut left)| async move {
            if left.is_empty() {
                left = match stream.next().await? {
                    Ok(b) => b,
                    Err(e) => return Some((Err(e), (stream, Bytes::new()))),
                };
            }
            let chunk = left.split_to(step.min(left.len()));
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            Some((Ok(chunk), (stream, left)))
        },
    );
    Body::from_stream(chunks)
}
