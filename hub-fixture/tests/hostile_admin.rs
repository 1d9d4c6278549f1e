//! The hostile-input battery, admin API (plain HTTP on loopback, through
//! `AdminClient`): invalid device ids and serials, unknown devices and
//! serials, IoT Hub's size limits (413), malformed, mistyped and oversize
//! bodies, unknown endpoints and methods. Each gets its precise status and
//! a message naming what was wrong, changes nothing, and is followed by the
//! good device being served and the API answering; RSS stays bounded.
#![allow(clippy::unwrap_used)] // a test: a failed unwrap is the test failing

mod common;
mod hostile;

use hostile::*;
use hub_fixture::admin::{AdminClient, AdminError};
use serde_json::{json, Value};

/// A request body: none, JSON, or raw bytes with their content type.
enum Body {
    Json(Option<Value>),
    Raw(&'static str, Vec<u8>),
}

struct AdminCase {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Body,
    status: u16,
    /// Text the API's error message must hold.
    says: &'static str,
}

fn admin_cases() -> Vec<AdminCase> {
    let c = |name, method, path: &str, body: Option<Value>, status, says| AdminCase {
        name,
        method,
        path: path.to_owned(),
        body: Body::Json(body),
        status,
        says,
    };
    let register = |id: &str| Some(json!({ "device_id": id }));
    let long = "d".repeat(129);
    let big = "x".repeat(70 * 1024);
    let blob = "x".repeat(40 * 1024);
    vec![
        c(
            "register ../x",
            "POST",
            "/devices",
            register("../x"),
            400,
            "invalid device id",
        ),
        c(
            "register a 129-character id",
            "POST",
            "/devices",
            register(&long),
            400,
            "invalid device id",
        ),
        c(
            "register an empty id",
            "POST",
            "/devices",
            register(""),
            400,
            "invalid device id",
        ),
        c(
            "register an id with a space",
            "POST",
            "/devices",
            register("a b"),
            400,
            "invalid device id",
        ),
        c(
            "register an id with a slash",
            "POST",
            "/devices",
            register("devices/x"),
            400,
            "invalid device id",
        ),
        c(
            "register an existing device",
            "POST",
            "/devices",
            register(GOOD),
            409,
            "already exists",
        ),
        c(
            "register without device_id",
            "POST",
            "/devices",
            Some(json!({})),
            400,
            "device_id",
        ),
        c(
            "register with a number as device_id",
            "POST",
            "/devices",
            Some(json!({ "device_id": 7 })),
            400,
            "invalid request body",
        ),
        c(
            "revoke a serial that is not hex",
            "POST",
            "/certificates/zz/revoke",
            None,
            400,
            "hexadecimal",
        ),
        c(
            "revoke a 21-octet serial",
            "POST",
            &format!("/certificates/{}/revoke", "01".repeat(21)),
            None,
            400,
            "20 octets",
        ),
        c(
            "revoke a serial with an empty octet",
            "POST",
            "/certificates/3a::1f/revoke",
            None,
            400,
            "octets",
        ),
        c(
            "revoke an unknown serial",
            "POST",
            "/certificates/0123456789abcdef/revoke",
            None,
            404,
            "no certificate with serial",
        ),
        c(
            "C2D to an unknown device",
            "POST",
            "/devices/nobody/messages",
            Some(json!({ "payload": "x" })),
            404,
            "nobody",
        ),
        c(
            "a 70 KB C2D message",
            "POST",
            "/devices/good/messages",
            Some(json!({ "payload": big })),
            413,
            "65536",
        ),
        c(
            "C2D with payload_base64 that is not base64",
            "POST",
            "/devices/good/messages",
            Some(json!({ "payload_base64": "***" })),
            400,
            "payload_base64",
        ),
        c(
            "C2D with payload and payload_base64",
            "POST",
            "/devices/good/messages",
            Some(json!({ "payload": "a", "payload_base64": "YQ==" })),
            400,
            "not both",
        ),
        c(
            "C2D with a 49 h TTL",
            "POST",
            "/devices/good/messages",
            Some(json!({ "payload": "a", "ttl_seconds": 49 * 3600 })),
            400,
            "exceeds the maximum",
        ),
        c(
            "C2D with a negative TTL",
            "POST",
            "/devices/good/messages",
            Some(json!({ "payload": "a", "ttl_seconds": -1 })),
            400,
            "must be positive",
        ),
        c(
            "a 40 KB desired patch",
            "PATCH",
            "/devices/good/twin/desired",
            Some(json!({ "blob": blob })),
            413,
            "32768",
        ),
        c(
            "a desired patch that is an array",
            "PATCH",
            "/devices/good/twin/desired",
            Some(json!([1, 2])),
            400,
            "JSON object",
        ),
        c(
            "a desired patch for an unknown device",
            "PATCH",
            "/devices/nobody/twin/desired",
            Some(json!({ "a": 1 })),
            404,
            "nobody",
        ),
        c(
            "a bad status value",
            "PUT",
            "/devices/good/status",
            Some(json!({ "status": "bogus" })),
            400,
            "invalid status",
        ),
        c(
            "a status for an unknown device",
            "PUT",
            "/devices/nobody/status",
            Some(json!({ "status": "disabled" })),
            404,
            "nobody",
        ),
        c(
            "the twin of an unknown device",
            "GET",
            "/devices/nobody/twin",
            None,
            404,
            "nobody",
        ),
        c(
            "delete an unknown device",
            "DELETE",
            "/devices/nobody",
            None,
            404,
            "nobody",
        ),
        c(
            "a method on an unknown device",
            "POST",
            "/devices/nobody/methods/reboot",
            Some(json!({})),
            404,
            "nobody",
        ),
        c(
            "certificates for an unknown device",
            "POST",
            "/devices/nobody/certificates",
            Some(json!({})),
            404,
            "nobody",
        ),
        c(
            "firmware named ..%2Fhub.sqlite",
            "PUT",
            "/firmware/..%2Fhub.sqlite",
            None,
            400,
            "invalid firmware name",
        ),
        c(
            "advance the clock by a negative time",
            "POST",
            "/clock/advance",
            Some(json!({ "seconds": -5 })),
            400,
            "invalid request body",
        ),
        c(
            "the journal after a non-number",
            "GET",
            "/journal?after=abc",
            None,
            400,
            "invalid query",
        ),
        c(
            "an unknown endpoint",
            "GET",
            "/secrets",
            None,
            404,
            "no admin endpoint",
        ),
        c(
            "a method an endpoint does not take",
            "DELETE",
            "/clock",
            None,
            405,
            "does not take DELETE",
        ),
        AdminCase {
            body: Body::Raw("application/json", b"{\"device_id\":".to_vec()),
            ..c(
                "malformed JSON",
                "POST",
                "/devices",
                None,
                400,
                "invalid request body",
            )
        },
        AdminCase {
            body: Body::Raw("text/plain", b"{\"device_id\":\"x\"}".to_vec()),
            ..c(
                "a body that is not JSON-typed",
                "POST",
                "/devices",
                None,
                415,
                "Content-Type",
            )
        },
        AdminCase {
            body: Body::Raw("application/json", vec![b' '; 3 << 20]),
            ..c(
                "a 3 MiB JSON body",
                "POST",
                "/devices/good/messages",
                None,
                413,
                "",
            )
        },
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_inputs_get_their_status_with_the_reason_and_change_nothing() {
    let bench = Bench::start(|c| c.admin_addr = Some("127.0.0.1:0".parse().unwrap())).await;
    let hub = &bench.hub;
    let api = AdminClient::new(hub.admin_addr().unwrap());
    let devices = hub.devices().unwrap().len();
    let twin = hub.twin(GOOD).unwrap();
    let cases = admin_cases();
    assert!(cases.len() >= 30, "{} inputs", cases.len());
    let mut failed = Vec::new();
    for case in cases {
        let (name, status, says) = (case.name, case.status, case.says);
        let got = match case.body {
            Body::Json(body) => api.call(case.method, &case.path, body).await,
            Body::Raw(ct, bytes) => api.call_raw(case.method, &case.path, ct, bytes).await,
        };
        match got {
            Err(AdminError::Api { status: s, message })
                if s == status && message.contains(says) => {}
            other => failed.push(format!("{name}: {other:?}, not {status} saying {says:?}")),
        }
        bench.still_served(name).await;
        let health = api.call("GET", "/health", None).await.unwrap();
        assert_eq!(health["mqtt"], json!(hub.mqtt_addr()), "{name}");
    }
    // Nothing was registered, queued or patched, and the data is intact.
    assert_eq!(hub.devices().unwrap().len(), devices);
    assert!(hub.pending_c2d(GOOD).unwrap().is_empty());
    assert_eq!(hub.twin(GOOD).unwrap().desired, twin.desired);
    assert!(hub.data_dir().join("hub.sqlite").is_file());
    assert!(failed.is_empty(), "failing inputs:\n{}", failed.join("\n"));
    bench.assert_rss_bounded("after the admin battery");
}
