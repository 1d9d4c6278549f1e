//! Helpers shared by the KR and OTA cases: session readiness, reported
//! properties, tshark over the case's capture, failure messages.

use hub_fixture::journal::{Event, JournalEntry};
use serde_json::Value;

use crate::case::{Case, Fail, DEVICE_ID, GUARD};

/// The device's first reported properties after `after`: it reports only
/// once its subscriptions (methods, twin, commands) are granted, so this is
/// "the session is ready".
pub(super) async fn ready(case: &Case, after: u64) -> Result<JournalEntry, Fail> {
    case.journal(
        after,
        "the device to report its properties (session ready)",
        |e| matches!(e.event, Event::TwinReported { .. }),
    )
    .await
}

/// Waits until the reported properties satisfy `done`, checking again at
/// every report after `after`. Returns them and the seq of the last report.
pub(super) async fn wait_reported(
    case: &Case,
    mut after: u64,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Result<(Value, u64), Fail> {
    let deadline = tokio::time::Instant::now() + 2 * GUARD;
    loop {
        let reported = case.hub().twin(DEVICE_ID)?.reported;
        if done(&reported) {
            return Ok((reported, after));
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let next = case
            .hub()
            .journal()
            .wait_for(after, left.min(GUARD), |e| {
                matches!(e.event, Event::TwinReported { .. })
            })
            .await;
        match next {
            Some(e) => after = e.seq,
            None => {
                return Err(Fail::new(
                    what.to_string(),
                    format!("last reported properties: {reported}"),
                    "the TwinReported entries of journal.jsonl and device.log",
                ))
            }
        }
    }
}

/// `(version, state, reason)` of the reported `firmware`.
pub(super) fn firmware(r: &Value) -> (String, String, String) {
    let f = &r["firmware"];
    let s = |k: &str| f[k].as_str().unwrap_or("").to_string();
    (s("version"), s("state"), s("reason"))
}

/// tshark fields (tab-separated per frame) from the case's capture, which
/// carries the TLS key log, so HTTP and MQTT inside TLS are decoded.
pub(super) fn tshark(case: &Case, filter: &str, fields: &[&str]) -> Result<Vec<Vec<String>>, Fail> {
    let mut cmd = std::process::Command::new("tshark");
    cmd.arg("-r").arg(case.dir.join("capture.pcapng")).args([
        "-Y",
        filter,
        "-T",
        "fields",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("running tshark (apt-get install tshark): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark -Y {filter:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect())
}

pub(super) fn fail(
    expected: impl Into<String>,
    seen: impl Into<String>,
    look_at: impl Into<String>,
) -> Fail {
    Fail::new(expected, seen, look_at)
}

// ---- KR helpers ----
