//! An end-to-end check of a hub on loopback, for `hub-fixture selfcheck`
//! (what `cargo xtask emulated` runs until the conformance suites exist):
//! a device connects over mTLS, sends telemetry, gets a command queued while
//! it was offline, sees a 1 h command expire on the virtual clock, and is
//! cut off the moment its certificate is revoked.

use std::path::Path;
use std::time::Duration;

use crate::client::{ConnectOptions, DeviceClient};
use crate::hub::{HubConfig, HubFixture};
use crate::journal::Event;
use crate::store::{FeedbackStatus, NewMessage};

const GUARD: Duration = Duration::from_secs(10);

/// One check's outcome.
#[derive(Debug)]
pub struct CheckResult {
    /// The check's stable name, e.g. `c2d-queued-while-offline`.
    pub name: &'static str,
    /// `Ok`: what was observed; `Err`: the step that failed and why.
    pub outcome: Result<String, String>,
}

/// Runs the checks against a fresh hub in `data_dir`; returns every result.
pub async fn run(data_dir: &Path) -> Result<Vec<CheckResult>, String> {
    let hub = HubFixture::start(HubConfig::for_tests(data_dir))
        .await
        .map_err(|e| e.to_string())?;
    let mut results = Vec::new();
    let mut check = |name, outcome| results.push(CheckResult { name, outcome });
    check("mtls-connect-and-telemetry", telemetry(&hub).await);
    check("c2d-queued-while-offline", c2d_offline(&hub).await);
    check("c2d-ttl-expiry-on-virtual-clock", ttl(&hub).await);
    check("revocation-closes-live-session", revocation(&hub).await);
    hub.shutdown();
    Ok(results)
}

fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

async fn telemetry(hub: &HubFixture) -> Result<String, String> {
    let creds = hub.register_device("selfcheck-1").map_err(e("register"))?;
    let (mut c, ack) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .map_err(e("connect"))?;
    if ack.code != rumqttc::ConnectReturnCode::Success {
        return Err(format!("CONNACK {:?}", ack.code));
    }
    c.publish(
        "devices/selfcheck-1/messages/events/",
        rumqttc::QoS::AtLeastOnce,
        b"{\"t\":1}",
    )
    .await
    .map_err(e("publish"))?;
    let seen = hub
        .journal()
        .entries()
        .iter()
        .any(|j| matches!(j.event, Event::Telemetry { .. }));
    c.disconnect().await.map_err(e("disconnect"))?;
    seen.then(|| "telemetry journalled, PUBACK received".to_owned())
        .ok_or_else(|| "telemetry not journalled".into())
}

async fn c2d_offline(hub: &HubFixture) -> Result<String, String> {
    let creds = hub.register_device("selfcheck-2").map_err(e("register"))?;
    let m = hub
        .send_c2d(
            "selfcheck-2",
            NewMessage {
                message_id: None,
                payload: b"hello".to_vec(),
                properties: vec![],
                ttl_ms: None,
            },
        )
        .map_err(e("send"))?;
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .map_err(e("connect"))?;
    c.subscribe_c2d("selfcheck-2")
        .await
        .map_err(e("subscribe"))?;
    let p = c.next_publish(GUARD).await.map_err(e("receive"))?;
    if &p.payload[..] != b"hello" {
        return Err(format!("got payload {:?}", p.payload));
    }
    c.puback(p.pkid).await.map_err(e("puback"))?;
    let mark = 0;
    hub.journal()
        .wait_for(mark, GUARD, |j| matches!(&j.event, Event::Feedback { status, message_seq, .. } if status == "success" && *message_seq == m.seq))
        .await
        .map(|_| format!("message {} delivered after connect and completed", m.message_id))
        .ok_or_else(|| "no success feedback".into())
}

async fn ttl(hub: &HubFixture) -> Result<String, String> {
    hub.register_device("selfcheck-3").map_err(e("register"))?;
    hub.send_c2d(
        "selfcheck-3",
        NewMessage {
            message_id: None,
            payload: b"late".to_vec(),
            properties: vec![],
            ttl_ms: Some(3_600_000),
        },
    )
    .map_err(e("send"))?;
    hub.advance_clock(Duration::from_secs(7200))
        .map_err(e("advance"))?;
    let fb = hub.feedback(Some("selfcheck-3")).map_err(e("feedback"))?;
    match fb.first() {
        Some(f) if f.status == FeedbackStatus::Expired => {
            Ok("1 h message expired after 2 h of virtual time".into())
        }
        other => Err(format!("expected expired feedback, got {other:?}")),
    }
}

async fn revocation(hub: &HubFixture) -> Result<String, String> {
    let creds = hub.register_device("selfcheck-4").map_err(e("register"))?;
    let (mut c, _) = DeviceClient::connect(hub.mqtt_addr(), &creds, ConnectOptions::default())
        .await
        .map_err(e("connect"))?;
    let mark = hub.journal().len();
    hub.revoke(&creds.serial).map_err(e("revoke"))?;
    if !c.closed_by_hub(GUARD).await {
        return Err("session still open after revocation".into());
    }
    let entry = hub
        .journal()
        .wait_for(mark, GUARD, |j| {
            matches!(j.event, Event::RevokedSessionClosed { .. })
        })
        .await
        .ok_or("no revoked_session_closed entry")?;
    match entry.event {
        Event::RevokedSessionClosed { latency_us, .. } => {
            Ok(format!("session closed {latency_us} µs after revoke"))
        }
        _ => unreachable!("matched above"),
    }
}
