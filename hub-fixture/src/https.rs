//! The HTTPS listener (port 443): EST (RFC 7030) and the firmware image
//! service, under the same TLS rules as MQTT (client certificate required,
//! revocation checked).
//!
//! Every request runs as the device of its client certificate; an unknown or
//! disabled device gets 403. Firmware downloads support `Range` (served by
//! tower-http's `ServeFile`), so a device resumes after a cut.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::clock::Clock;
use crate::est;
use crate::hub::HubState;
use crate::journal::{Event, Listener};
use crate::pki::Validity;
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
pub(crate) async fn serve(hub: Arc<HubState>, listener: TcpListener) {
    let mut shutdown = hub.shutdown.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => { tokio::spawn(connection(hub.clone(), tcp, peer.to_string())); }
                Err(e) => tracing::warn!("https accept: {e}"),
            },
            _ = shutdown.wait_for(|s| *s) => return,
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
    let router = Router::new()
        .route("/.well-known/est/cacerts", get(cacerts))
        .route("/.well-known/est/simplereenroll", post(simple_reenroll))
        .route("/firmware/{name}", get(firmware))
        .with_state(ctx);
    let service = TowerToHyperService::new(router);
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await
    {
        tracing::debug!("https connection: {e}");
    }
}

impl Ctx {
    fn journal(&self, event: Event) {
        self.hub
            .journal
            .record(Some(&self.identity.device_id), Some(&self.peer), event);
    }

    /// 403 unless the client certificate's device is registered and enabled.
    fn authorise(&self, path: &str) -> Result<(), Box<Response>> {
        let status = self
            .hub
            .store()
            .device(&self.identity.device_id)
            .ok()
            .flatten()
            .map(|d| d.status);
        let why = match status {
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
    if let Err(r) = ctx.authorise("/.well-known/est/cacerts") {
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
    if let Err(r) = ctx.authorise("/.well-known/est/simplereenroll") {
        return *r;
    }
    let hub = &ctx.hub;
    let validity = Validity::days_from(hub.clock.now(), hub.config.device_cert_days);
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
    let (issued, body) = match est::simple_reenroll(&hub.ca, &ctx.cert_der, &body, validity) {
        Ok(r) => r,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e.to_string()),
    };
    if let Err(e) = hub
        .record_issued(&ctx.identity.device_id, &issued)
        .and_then(|_| hub.record_supersedes(&issued.serial, &ctx.identity.serial))
    {
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
    if let Err(r) = ctx.authorise(&path) {
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
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    ctx.journal(Event::Download {
        path,
        range,
        status: response.status().as_u16(),
        bytes,
    });
    response
}
