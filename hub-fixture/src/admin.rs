//! The admin API over HTTP: the same operations as [`HubFixture`]'s methods,
//! as JSON on a loopback-only endpoint, for the `hub-fixture` CLI and for
//! suites that run the hub as a separate process. [`AdminClient`] is its client.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use crate::hub::{HubError, HubFixture};
use crate::hub_state::blocking;
use crate::pki::{KeyAlgorithm, Validity};
use crate::store::{DeviceStatus, NewMessage, StoreError};

pub(crate) async fn serve(hub: HubFixture, listener: TcpListener) {
    let mut shutdown = hub.state.shutdown.subscribe();
    let app = router(hub);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await;
}

/// The admin routes.
pub fn router(hub: HubFixture) -> Router {
    Router::new()
        .route("/health", get(health))
        .route(
            "/ca",
            get(|State(h): State<HubFixture>| async move { h.ca_pem().to_owned() }),
        )
        .route("/devices", get(devices).post(register))
        .route("/devices/{id}", get(device).delete(delete_device))
        .route("/devices/{id}/status", put(set_status))
        .route("/devices/{id}/certificates", get(certificates).post(issue))
        .route("/devices/{id}/messages", get(pending).post(send))
        .route("/devices/{id}/twin", get(twin))
        .route(
            "/devices/{id}/twin/desired",
            axum::routing::patch(patch_desired),
        )
        .route("/devices/{id}/methods/{name}", post(method))
        .route("/devices/{id}/enrollment", put(enrollment))
        .route("/devices/{id}/trouble/{what}", post(trouble))
        .route("/devices/{id}/connack", put(connack))
        .route("/certificates/{serial}/revoke", post(revoke))
        .route("/feedback", get(feedback))
        .route("/clock", get(clock))
        .route("/clock/advance", post(advance))
        .route("/journal", get(journal))
        .route("/firmware/{name}", put(firmware))
        // Every error answer carries its message, these too (axum's own
        // 404 and 405 have empty bodies).
        .fallback(|method: Method, uri: Uri| async move {
            ApiError(
                StatusCode::NOT_FOUND,
                format!("no admin endpoint {method} {}", uri.path()),
            )
        })
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            ApiError(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("admin endpoint {} does not take {method}", uri.path()),
            )
        })
        .with_state(hub)
}

/// The deepest error of a chain: for a serde error inside axum's rejection,
/// the line that names the field and what was wrong with it.
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut e = e;
    while let Some(next) = e.source() {
        e = next;
    }
    e.to_string()
}

/// `Json`, with its rejections as this API's JSON errors (400 and the
/// serde message naming the field), not axum's plain-text 422.
struct JsonBody<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        use axum::extract::rejection::JsonRejection;
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(r @ (JsonRejection::JsonDataError(_) | JsonRejection::JsonSyntaxError(_))) => {
                Err(bad(format!("invalid request body: {}", innermost(&r))))
            }
            Err(r) => Err(ApiError(r.status(), r.body_text())),
        }
    }
}

/// `Query`, with its rejections as this API's JSON errors.
struct QueryParams<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r| bad(format!("invalid query: {}", innermost(&r))))
    }
}

struct ApiError(StatusCode, String);

impl From<HubError> for ApiError {
    fn from(e: HubError) -> Self {
        let status = match &e {
            HubError::UnknownDevice(_) | HubError::UnknownSerial(_) => StatusCode::NOT_FOUND,
            HubError::Store(StoreError::UnknownDevice(_))
            | HubError::Store(StoreError::UnknownMessage(_)) => StatusCode::NOT_FOUND,
            HubError::Store(StoreError::DeviceExists(_)) => StatusCode::CONFLICT,
            // IoT Hub answers 403 (DeviceMaximumQueueDepthExceeded) for a full queue.
            HubError::Store(StoreError::QueueFull { .. }) => StatusCode::FORBIDDEN,
            HubError::Store(StoreError::TtlTooLong { .. })
            | HubError::Store(StoreError::InvalidTtl(_))
            | HubError::Store(StoreError::NotAnObject)
            | HubError::InvalidName { .. } => StatusCode::BAD_REQUEST,
            // IoT Hub: 413 MessageTooLarge past its size limits.
            HubError::Store(StoreError::MessageTooLarge { .. })
            | HubError::Store(StoreError::TwinTooLarge { .. }) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

fn ok<T: serde::Serialize>(v: T) -> ApiResult {
    serde_json::to_value(v)
        .map(Json)
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

async fn health(State(h): State<HubFixture>) -> ApiResult {
    ok(json!({ "mqtt": h.mqtt_addr(), "https": h.https_addr(), "host_name": h.host_name() }))
}

#[derive(Deserialize)]
struct RegisterBody {
    device_id: String,
}

async fn register(State(h): State<HubFixture>, JsonBody(b): JsonBody<RegisterBody>) -> ApiResult {
    ok(blocking(|| h.register_device(&b.device_id))?)
}

async fn devices(State(h): State<HubFixture>) -> ApiResult {
    ok(blocking(|| h.devices())?)
}

async fn device(State(h): State<HubFixture>, Path(id): Path<String>) -> ApiResult {
    ok(blocking(|| h.device(&id))?)
}

async fn delete_device(State(h): State<HubFixture>, Path(id): Path<String>) -> ApiResult {
    blocking(|| h.delete_device(&id))?;
    ok(json!({ "deleted": id }))
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

async fn set_status(
    State(h): State<HubFixture>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<StatusBody>,
) -> ApiResult {
    let status = match b.status.as_str() {
        "enabled" => DeviceStatus::Enabled,
        "disabled" => DeviceStatus::Disabled,
        other => {
            return Err(bad(format!(
                "invalid status {other:?}: use enabled or disabled"
            )))
        }
    };
    ok(blocking(|| h.set_device_status(&id, status))?)
}

async fn certificates(State(h): State<HubFixture>, Path(id): Path<String>) -> ApiResult {
    ok(blocking(|| h.certificates(&id))?)
}

/// Validity relative to the hub's clock: `not_before_days` (may be negative)
/// and `valid_days` from then.
#[derive(Deserialize, Default)]
struct IssueBody {
    #[serde(default)]
    algorithm: KeyAlgorithm,
    #[serde(default)]
    not_before_days: i64,
    valid_days: Option<u64>,
}

async fn issue(
    State(h): State<HubFixture>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<IssueBody>,
) -> ApiResult {
    use crate::clock::Clock;
    let day = Duration::from_secs(86_400);
    let now = h.clock().now();
    let start = if b.not_before_days >= 0 {
        now + day * b.not_before_days as u32
    } else {
        now - day * b.not_before_days.unsigned_abs() as u32
    };
    let validity = Validity {
        not_before: start,
        not_after: start + day * b.valid_days.unwrap_or(365) as u32,
    };
    ok(blocking(|| {
        h.issue_certificate(&id, b.algorithm, validity)
    })?)
}

async fn revoke(State(h): State<HubFixture>, Path(serial): Path<String>) -> ApiResult {
    ok(blocking(|| h.revoke(&serial))?)
}

/// A C2D message as the API takes it: `payload` (text) or `payload_base64`.
#[derive(Deserialize)]
struct SendBody {
    payload: Option<String>,
    payload_base64: Option<String>,
    #[serde(default)]
    properties: Vec<(String, String)>,
    ttl_seconds: Option<i64>,
    message_id: Option<String>,
}

async fn send(
    State(h): State<HubFixture>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<SendBody>,
) -> Result<Response, ApiError> {
    let payload = match (b.payload, b.payload_base64) {
        (Some(p), None) => p.into_bytes(),
        (None, Some(p)) => base64::engine::general_purpose::STANDARD
            .decode(p)
            .map_err(|e| bad(format!("payload_base64: {e}")))?,
        (None, None) => Vec::new(),
        (Some(_), Some(_)) => return Err(bad("give payload or payload_base64, not both")),
    };
    let msg = NewMessage {
        message_id: b.message_id,
        payload,
        properties: b.properties,
        ttl_ms: b.ttl_seconds.map(|s| s.saturating_mul(1000)),
    };
    let queued = blocking(|| h.send_c2d(&id, msg))?;
    Ok((StatusCode::CREATED, ok(queued)?).into_response())
}

async fn pending(State(h): State<HubFixture>, Path(id): Path<String>) -> ApiResult {
    ok(blocking(|| h.pending_c2d(&id))?)
}

#[derive(Deserialize)]
struct FeedbackQuery {
    device: Option<String>,
}

async fn feedback(
    State(h): State<HubFixture>,
    QueryParams(q): QueryParams<FeedbackQuery>,
) -> ApiResult {
    ok(blocking(|| h.feedback(q.device.as_deref()))?)
}

async fn twin(State(h): State<HubFixture>, Path(id): Path<String>) -> ApiResult {
    ok(blocking(|| h.twin(&id))?)
}

async fn patch_desired(
    State(h): State<HubFixture>,
    Path(id): Path<String>,
    JsonBody(patch): JsonBody<Value>,
) -> ApiResult {
    ok(blocking(|| h.patch_desired(&id, &patch))?)
}

#[derive(Deserialize)]
struct MethodBody {
    #[serde(default)]
    payload: Value,
    timeout_seconds: Option<u64>,
}

async fn method(
    State(h): State<HubFixture>,
    Path((id, name)): Path<(String, String)>,
    JsonBody(b): JsonBody<MethodBody>,
) -> ApiResult {
    let timeout = Duration::from_secs(b.timeout_seconds.unwrap_or(30));
    ok(h.invoke_method(&id, &name, &b.payload, timeout).await?)
}

#[derive(Deserialize)]
struct EnrollmentBody {
    refuse: bool,
}

async fn enrollment(
    State(h): State<HubFixture>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<EnrollmentBody>,
) -> ApiResult {
    blocking(|| h.device(&id))?;
    h.set_refuse_enrollment(&id, b.refuse);
    ok(json!({ "device_id": id, "refuse": b.refuse }))
}

/// Server-side trouble (`trouble.rs`): `reset`, `close`, `discard-session`
/// (false when the device had no live session), `hold-desired`,
/// `release-desired` (the released `$version`, or null).
async fn trouble(
    State(h): State<HubFixture>,
    Path((id, what)): Path<(String, String)>,
) -> ApiResult {
    blocking(|| h.device(&id))?;
    let done = match what.as_str() {
        "reset" => json!(h.reset_connection(&id)),
        "close" => json!(h.close_connection(&id)),
        "discard-session" => json!(h.discard_session(&id)),
        "hold-desired" => {
            h.hold_next_desired(&id);
            json!(true)
        }
        "release-desired" => json!(h.release_desired(&id)),
        other => {
            return Err(ApiError(
                StatusCode::NOT_FOUND,
                format!("no trouble {other:?}: reset, close, discard-session, hold-desired, release-desired"),
            ))
        }
    };
    ok(json!({ "device_id": id, "trouble": what, "result": done }))
}

#[derive(Deserialize)]
struct ConnackBody {
    withhold: bool,
}

async fn connack(
    State(h): State<HubFixture>,
    Path(id): Path<String>,
    JsonBody(b): JsonBody<ConnackBody>,
) -> ApiResult {
    blocking(|| h.device(&id))?;
    h.set_withhold_connack(&id, b.withhold);
    ok(json!({ "device_id": id, "withhold": b.withhold }))
}

async fn clock(State(h): State<HubFixture>) -> ApiResult {
    use crate::clock::Clock;
    ok(json!({ "now_ms": h.clock().now_ms(), "offset_ms": h.clock().offset().as_millis() as u64 }))
}

#[derive(Deserialize)]
struct AdvanceBody {
    seconds: u64,
}

async fn advance(State(h): State<HubFixture>, JsonBody(b): JsonBody<AdvanceBody>) -> ApiResult {
    let now = blocking(|| h.advance_clock(Duration::from_secs(b.seconds)))?;
    ok(json!({ "now_ms": now }))
}

#[derive(Deserialize)]
struct JournalQuery {
    #[serde(default)]
    after: u64,
    /// Wait until an entry of this kind (`c2d_acked`) follows `after`.
    wait_for: Option<String>,
    /// How long to wait for it, seconds (default 10).
    wait_seconds: Option<u64>,
}

/// The entries after `after`; with `wait_for`, once one of that kind is
/// there (408 naming it if none comes in time): a script waits on an
/// event, not on a sleep.
async fn journal(
    State(h): State<HubFixture>,
    QueryParams(q): QueryParams<JournalQuery>,
) -> ApiResult {
    if let Some(kind) = &q.wait_for {
        let limit = Duration::from_secs(q.wait_seconds.unwrap_or(10));
        if h.journal()
            .wait_for(q.after, limit, |e| e.event.kind() == *kind)
            .await
            .is_none()
        {
            return Err(ApiError(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "no {kind:?} journal entry after {} within {}s",
                    q.after,
                    limit.as_secs()
                ),
            ));
        }
    }
    ok(h.journal().since(q.after))
}

async fn firmware(
    State(h): State<HubFixture>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult {
    blocking(|| h.put_firmware(&name, &body))?;
    ok(json!({ "name": name, "size": body.len() }))
}

/// Client of the admin endpoint (plain HTTP on loopback).
#[derive(Clone)]
pub struct AdminClient {
    addr: SocketAddr,
    base: String,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<bytes::Bytes>>,
}

/// An error answer of the admin API, or a transport failure.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// Nothing listens at the admin address.
    #[error("no hub at {addr} (start one with hub-fixture serve)")]
    NoHub {
        /// The admin address that refused the connection.
        addr: SocketAddr,
    },
    /// The request could not be built, sent or its answer read (anything
    /// but a refused connection).
    #[error("admin endpoint {url}: {detail}")]
    Transport {
        /// The full URL of the request that failed.
        url: String,
        /// The failure and its sources, as one line.
        detail: String,
    },
    /// An error answer; `message` is the API's own (its JSON `error`).
    #[error("{status}: {message}")]
    Api {
        /// The HTTP status code of the answer (4xx: the request was wrong;
        /// 5xx: the hub failed).
        status: u16,
        /// The API's `error` text, the body as text, or a note that there was none.
        message: String,
    },
}

/// An error and its sources as one line, each text once (hyper's
/// "client error (Connect)" alone says nothing of why).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut next = e.source();
    while let Some(s) = next {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = s.source();
    }
    parts.join(": ")
}

/// Whether a client error is a refused connection: no hub listens there.
fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(s) = next {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        next = s.source();
    }
    false
}

impl AdminClient {
    /// A client of the admin endpoint at `addr`; connects lazily, on the first call.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request and decodes the JSON answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, AdminError> {
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        self.call_raw(method, path, "application/json", bytes).await
    }

    /// Sends a request with a body of any content type as is, and decodes the
    /// answer as JSON (a body that is not JSON comes back as a JSON string).
    /// Non-2xx answers become [`AdminError::Api`].
    pub async fn call_raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<Value, AdminError> {
        let url = format!("{}{}", self.base, path);
        let transport = |detail: String| AdminError::Transport {
            url: url.clone(),
            detail,
        };
        let req = hyper::Request::builder()
            .method(method)
            .uri(&url)
            .header("content-type", content_type)
            .body(Full::new(bytes::Bytes::from(body)))
            .map_err(|e| transport(e.to_string()))?;
        let resp = self.client.request(req).await.map_err(|e| {
            if e.is_connect() && refused(&e) {
                AdminError::NoHub { addr: self.addr }
            } else {
                transport(chain(&e))
            }
        })?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| transport(e.to_string()))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        if status.is_success() {
            Ok(value)
        } else {
            let message = match &value {
                Value::Object(o) => o.get("error").and_then(Value::as_str).map(str::to_owned),
                Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                _ => None,
            }
            .unwrap_or_else(|| format!("HTTP {status} from {method} {path}, without a message"));
            Err(AdminError::Api {
                status: status.as_u16(),
                message,
            })
        }
    }
}
