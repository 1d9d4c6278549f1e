//! CD-13…CD-19 — server-side trouble, as Microsoft's Azure IoT SDK
//! end-to-end tests inject it into IoT Hub, and the session and twin after
//! the reconnection.
//!
//! Every case queues a command at the moment of trouble; it must be applied
//! exactly once after the device is back (the device's `command_applied`
//! events, as in the other CD cases). The trouble is the fixture hub's own
//! switches (`hub_fixture::trouble`), journalled, so the verdict cites it:
//! - CD-13: the hub resets the connection (TCP RST, no TLS close);
//! - CD-14: the hub closes it as IoT Hub does after an MQTT-level error:
//!   TLS close_notify and FIN, no MQTT packet — an MQTT 3.1.1 server has no
//!   DISCONNECT to send, and IoT Hub's answer to a protocol error, a
//!   throttled or a failed-over connection is exactly this orderly close;
//! - CD-15: the hub process restarts (stops, every session closed, and
//!   starts again on its stored state);
//! - CD-16: the hub withholds CONNACK: each attempt must be given up and
//!   retried with growing intervals;
//! - CD-17: the hub did not keep the session (session-present 0): the
//!   device must subscribe again;
//! - CD-18: a desired change made while the device was offline (IoT Hub
//!   sends no missed patches: the device must GET the twin);
//! - CD-19: a desired notification older than the twin the device got
//!   after reconnecting is ignored — IoT Hub's documented reconnection flow
//!   (the notification of an earlier patch may arrive after the full GET).
//!
//! CD-21 is the command itself in trouble: a payload the device cannot use
//! (not UTF-8, not JSON) and one as large as IoT Hub accepts (64 KB with
//! its id and properties), between well-formed ones. The device must
//! complete each (PUBACK: MQTT gives an IoT Hub device no reject) without
//! its session ending, and apply the others once, in order.

use std::time::Duration;

use hub_fixture::journal::{CloseReason, Event, JournalEntry};
use sacbench_rig::dut::{ContractPart, EventName};
use serde_json::{json, Value};

use super::selftest::c2d;
use super::{
    applied_then_quiet, check_once_in_order, connected, end_session_hub_side, resubscribed,
    seen_through, COMMANDS, NEEDS, NEEDS_LINK,
};
use crate::case::{Case, CaseDef, DutNeeds, Fail, DEVICE_ID, GUARD};
use crate::cases::{case_def, Def};
use crate::events;
use crate::model::Evidence;
use hub_fixture::store::NewMessage;

/// How long a device may wait for a CONNACK before giving the attempt up
/// (CD-16): above the longest default of the SDKs a device is built on
/// (Azure's Node.js transport: 60 s; MQTT.js: 30 s; the reference device:
/// 5 reconnect base delays). A device whose DUT file states its own
/// timeout gets that (see [`connack_allowance`]).
const CONNACK_GIVE_UP: Duration = Duration::from_secs(75);

/// The time CD-16 gives a device to abandon an unanswered CONNECT: its
/// stated `connack_timeout_s` with half of it again (at least 5 s) for
/// connect time and a loaded machine, never more than [`CONNACK_GIVE_UP`]
/// — stating a timeout only makes the case stricter, never laxer.
pub(super) fn connack_allowance(stated_s: Option<u32>) -> Duration {
    stated_s.map_or(CONNACK_GIVE_UP, |s| {
        let s = u64::from(s);
        Duration::from_secs(s + (s / 2).max(5)).min(CONNACK_GIVE_UP)
    })
}
/// CD-16: CONNECTs the hub leaves unanswered before it answers again.
const WITHHELD: usize = 3;
/// How long after its new session a device may take to subscribe again
/// (CD-17) or to apply a desired change it missed (CD-18).
const SETTLE: Duration = Duration::from_secs(15);

/// CD-18 and CD-19: commands and the twin.
const COMMANDS_TWIN: DutNeeds = DutNeeds {
    implements: &[ContractPart::C2d, ContractPart::Twin],
    events: &[EventName::CommandApplied],
    native_board: false,
};

/// The CD cases of server-side trouble, in catalogue order.
pub const CASES: &[Def] = &[
    case_def!("CD-13", "hub_reset", "Hub resets the connection", "after the hub resets the connection (TCP RST) the device reconnects, subscribes again and applies the command queued then, once", NEEDS, COMMANDS, cd13),
    case_def!("CD-14", "hub_close", "Hub closes the connection (MQTT-level error)", "after the hub closes the connection as IoT Hub does on an MQTT-level error (close_notify, FIN, no MQTT packet) the device reconnects and applies the command queued then, once", NEEDS, COMMANDS, cd14),
    case_def!("CD-15", "hub_process_restart", "Hub process restarts", "after the hub process restarts the device reconnects to it, subscribes again and applies the command queued across the restart, once", NEEDS, COMMANDS, cd15),
    CaseDef { long: true, ..case_def!("CD-16", "connack_withheld", "Hub withholds CONNACK", "while the hub leaves CONNECTs unanswered the device gives each attempt up and retries at growing intervals; once CONNACKs resume it applies the queued command, once", NEEDS, COMMANDS, cd16) },
    case_def!("CD-17", "session_not_kept", "Hub did not keep the session", "when CONNACK says session-present 0 (the hub discarded the session) the device subscribes again and applies the queued command, once", NEEDS, COMMANDS, cd17),
    case_def!("CD-18", "desired_while_offline", "Desired change made while offline", "a desired property changed while the device was offline is applied (reported) after it reconnects; the queued command applied once", NEEDS_LINK, COMMANDS_TWIN, cd18),
    case_def!("CD-19", "stale_twin_ignored", "Stale twin version ignored", "a desired notification whose $version is older than the twin the device applied and read again after reconnecting is not applied; the queued command applied once", NEEDS, COMMANDS_TWIN, cd19),
];

/// CD-21, after CD-20 (`cd_identity.rs`) in catalogue order.
pub const MALFORMED_CASES: &[Def] = &[
    case_def!("CD-21", "malformed_command", "Malformed and oversized commands", "a command whose payload is neither UTF-8 nor JSON and one at IoT Hub's 64 KB limit are completed (PUBACK) without the session ending; the commands queued around them are applied once, in order", NEEDS, COMMANDS, cd21),
];

fn closed_by(e: &JournalEntry, reason: CloseReason) -> bool {
    matches!(&e.event, Event::SessionClosed { reason: r, .. } if *r == reason)
        && e.device_id.as_deref() == Some(DEVICE_ID)
}

fn bench_switch(what: &str) -> Fail {
    Fail::bench(format!("{what}: the device had no live session on the hub"))
}

/// The trouble has happened (journalled at `closed`): the command queued
/// at that moment must reach the device once it is back.
async fn command_once_after(
    case: &mut Case,
    mark: u64,
    mid: &str,
    trouble: &str,
) -> Result<String, Fail> {
    resubscribed(case, mark).await?;
    let mids = [mid.to_string()];
    applied_then_quiet(case, &mids).await?;
    check_once_in_order(case, &mids)
        .await
        .map(|s| format!("{trouble}; reconnected and subscribed again; {s}"))
}

/// CD-13 and CD-14: the hub ends a live connection by `reason`.
async fn hub_ends(
    case: &mut Case,
    reason: CloseReason,
    mid: &str,
    trouble: &str,
) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    let mark = case.hub.journal().len();
    let live = match reason {
        CloseReason::HubReset => case.hub.reset_connection(DEVICE_ID),
        _ => case.hub.close_connection(DEVICE_ID),
    };
    if !live {
        return Err(bench_switch(trouble));
    }
    // Queued at the moment of trouble: the ending session takes its close
    // first, so the command waits for the next one.
    case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
    let closed = case
        .journal(mark, &format!("the hub to journal: {trouble}"), |e| {
            closed_by(e, reason)
        })
        .await?;
    case.note(Evidence::journal(trouble.to_string(), [closed.seq]));
    command_once_after(case, mark, mid, trouble).await
}

async fn cd13(case: &mut Case) -> Result<String, Fail> {
    hub_ends(
        case,
        CloseReason::HubReset,
        "cd13-after-rst",
        "the hub reset the connection (TCP RST)",
    )
    .await
}

async fn cd14(case: &mut Case) -> Result<String, Fail> {
    hub_ends(
        case,
        CloseReason::HubClosed,
        "cd14-after-close",
        "the hub closed the connection (close_notify, FIN; no MQTT packet)",
    )
    .await
}

async fn cd15(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    let mid = "cd15-across-restart";
    let before = case.hub.journal().len();
    case.hub.restart(case.rig.as_ref()).await?;
    // The restarted hub's journal goes on from `before`; the command is
    // queued on it at once, whether or not the device is back yet.
    case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
    let started = case
        .journal(before, "the restarted hub to start", |e| {
            matches!(e.event, Event::HubStarted { .. })
        })
        .await?;
    case.note(Evidence::journal(
        "the hub stopped (every session closed: hub_shutdown) and started again on its stored state (journal.jsonl holds both runs)",
        [started.seq],
    ));
    command_once_after(case, before, mid, "the hub process restarted").await
}

/// Judges CD-16's reconnect intervals (ns) as Device Advisor judges a
/// device's retries after a CONNACK that never came: they grow — none much
/// shorter than the one before (0.8: connect-time noise), the last at least
/// twice the first — so they are not all equal. (CD-11's stricter 4× over
/// five intervals needs more attempts than a device with a 60 s CONNACK
/// timeout makes within a case's time limit.)
fn judge_growth(intervals_ns: &[u64]) -> Result<String, String> {
    let (_, shown) = super::growing_intervals(intervals_ns, 2.0)?;
    Ok(format!("intervals {shown}"))
}

/// The journal entries of one withheld attempt: its TLS accept, its
/// CONNECT left unanswered, the close by the device.
struct Attempt {
    tls_us: u64,
    tls_seq: u64,
    withheld_seq: u64,
    closed: Option<(u64, u64)>,
}

async fn cd16(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    let mid = "cd16-after-connack";
    case.hub.set_withhold_connack(DEVICE_ID, true);
    let mark = case.hub.journal().len();
    if !case.hub.close_connection(DEVICE_ID) {
        return Err(bench_switch("closing the connection"));
    }
    case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
    let first_close = case
        .journal(mark, "the hub to close the connection", |e| {
            closed_by(e, CloseReason::HubClosed)
        })
        .await?;
    let journal = case.hub.journal().clone();
    let give_up = connack_allowance(case.dut.connack_timeout_s);
    let stated = case.dut.connack_timeout_s.map_or(String::new(), |s| {
        format!(" (its DUT file states connack_timeout_s = {s})")
    });
    let mut ends = vec![(first_close.mono_us, first_close.seq)];
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut after = first_close.seq;
    for n in 1..=WITHHELD {
        let tls = case
            .journal(after, &format!("the device's reconnect attempt {n}"), |e| {
                matches!(e.event, Event::TlsAccepted { .. })
                    && e.device_id.as_deref() == Some(DEVICE_ID)
            })
            .await?;
        let peer = tls.peer.clone();
        let withheld = case
            .journal(tls.seq, &format!("the CONNECT of attempt {n}"), |e| {
                matches!(e.event, Event::ConnackWithheld { .. }) && e.peer == peer
            })
            .await?;
        let closed = journal
            .wait_for(withheld.seq, give_up, |e| {
                matches!(e.event, Event::SessionClosed { .. }) && e.peer == peer
            })
            .await;
        attempts.push(Attempt {
            tls_us: tls.attempt_began_us(),
            tls_seq: tls.seq,
            withheld_seq: withheld.seq,
            closed: closed.as_ref().map(|c| (c.mono_us, c.seq)),
        });
        let Some(closed) = closed else {
            note_attempts(case, &attempts);
            return Err(Fail::new(
                format!(
                    "the device to give up a CONNECT left unanswered within {give_up:?}{stated}"
                ),
                format!("attempt {n} still waits for its CONNACK after {give_up:?}"),
                format!("journal.jsonl seq {} (connack_withheld)", withheld.seq),
            ));
        };
        if n == WITHHELD {
            // CONNACKs resume before the next attempt (the device backs off first).
            case.hub.set_withhold_connack(DEVICE_ID, false);
        }
        ends.push((closed.mono_us, closed.seq));
        after = closed.seq;
    }
    let resumed = case
        .journal(
            after,
            "the device's attempt once CONNACKs resume",
            connected,
        )
        .await?;
    let next_tls = case
        .hub
        .journal()
        .since(after)
        .into_iter()
        .find(|e| matches!(e.event, Event::TlsAccepted { .. }) && e.seq < resumed.seq)
        .map(|e| e.attempt_began_us())
        .unwrap_or(resumed.mono_us);
    note_attempts(case, &attempts);
    // Each interval: from the end of a connection (the hub's close, then
    // each attempt the device gave up) to the start of the next attempt.
    let starts: Vec<u64> = attempts
        .iter()
        .map(|a| a.tls_us)
        .chain([next_tls])
        .collect();
    let gaps_ns: Vec<u64> = ends
        .iter()
        .zip(&starts)
        .map(|((end, _), start)| start.saturating_sub(*end) * 1000)
        .collect();
    let waited: Vec<String> = attempts
        .iter()
        .filter_map(|a| {
            a.closed
                .map(|(c, _)| format!("{} ms", c.saturating_sub(a.tls_us) / 1000))
        })
        .collect();
    let verdict = judge_growth(&gaps_ns);
    case.note(Evidence::journal(
        format!(
            "attempts given up after {}; reconnect intervals: {}",
            waited.join(", "),
            verdict.as_ref().unwrap_or_else(|e| e)
        ),
        ends.iter().map(|(_, s)| *s).chain([resumed.seq]),
    ));
    let judged = verdict.map_err(|e| {
        Fail::new(
            "reconnect attempts at growing intervals while CONNACKs are withheld",
            e,
            "journal.jsonl: tls_accepted, connack_withheld, session_closed",
        )
    })?;
    let mids = [mid.to_string()];
    resubscribed(case, after).await?;
    applied_then_quiet(case, &mids).await?;
    let once = check_once_in_order(case, &mids).await?;
    Ok(format!(
        "{WITHHELD} CONNECTs unanswered, each given up ({}); {judged}; {once}",
        waited.join(", ")
    ))
}

fn note_attempts(case: &mut Case, attempts: &[Attempt]) {
    for (i, a) in attempts.iter().enumerate() {
        case.note(Evidence::journal(
            format!(
                "attempt {}: TLS accepted, CONNECT unanswered{}",
                i + 1,
                if a.closed.is_some() {
                    ", given up by the device"
                } else {
                    ", still open"
                }
            ),
            [a.tls_seq, a.withheld_seq]
                .into_iter()
                .chain(a.closed.map(|(_, s)| s)),
        ));
    }
}

async fn cd17(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    let mid = "cd17-session-gone";
    let mark = case.hub.journal().len();
    if !case.hub.discard_session(DEVICE_ID) {
        return Err(bench_switch("discarding the session"));
    }
    case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
    let c = case
        .journal(mark, "the device to reconnect", connected)
        .await?;
    let Event::Connected {
        clean_session,
        session_present,
        ..
    } = c.event
    else {
        unreachable!("matched above")
    };
    case.note(Evidence::journal(
        format!(
            "the hub discarded the session; the device reconnected with CleanSession={}, CONNACK session-present {}",
            u8::from(clean_session),
            u8::from(session_present)
        ),
        [c.seq],
    ));
    if session_present {
        return Err(Fail::bench(
            "the hub answered session-present 1 after discarding the session",
        ));
    }
    let want = format!("devices/{DEVICE_ID}/messages/devicebound/#");
    let sub = case
        .hub
        .journal()
        .wait_for(c.seq, SETTLE, |e| {
            matches!(&e.event, Event::Subscribed { filters } if filters.contains(&want))
                && e.device_id.as_deref() == Some(DEVICE_ID)
        })
        .await;
    let Some(sub) = sub else {
        return Err(Fail::new(
            format!("the device to subscribe {want} again when the hub kept no session"),
            format!(
                "no such SUBSCRIBE within {SETTLE:?} of CONNACK session-present 0 (CleanSession={})",
                u8::from(clean_session)
            ),
            format!("journal.jsonl from seq {}", c.seq),
        ));
    };
    case.note(Evidence::journal("subscribed to commands again", [sub.seq]));
    let mids = [mid.to_string()];
    applied_then_quiet(case, &mids).await?;
    check_once_in_order(case, &mids)
        .await
        .map(|s| format!("session-present 0: subscribed again; {s}"))
}

/// `telemetryIntervalSeconds` of a reported patch, if it has one.
fn reported_interval(e: &JournalEntry) -> Option<u64> {
    match &e.event {
        Event::TwinReported { patch, .. } if e.device_id.as_deref() == Some(DEVICE_ID) => patch
            .get("telemetryIntervalSeconds")
            .and_then(Value::as_u64),
        _ => None,
    }
}

/// Waits (after `after`, at most `within`) for the device to report
/// `telemetryIntervalSeconds` = `want`.
async fn reported(case: &Case, after: u64, want: u64, within: Duration) -> Option<JournalEntry> {
    case.hub
        .journal()
        .wait_for(after, within, |e| reported_interval(e) == Some(want))
        .await
}

fn interval_patch(seconds: u64) -> Value {
    json!({ "telemetryIntervalSeconds": seconds })
}

async fn cd18(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    let mid = "cd18-with-twin";
    case.rig.link(false).await?;
    end_session_hub_side(case).await?;
    let want = 1800 + (std::process::id() as u64 % 600);
    let twin = case.hub.patch_desired(DEVICE_ID, &interval_patch(want))?;
    case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
    let mark = case.hub.journal().len();
    case.rig.link(true).await?;
    resubscribed(case, mark).await?;
    let c = case
        .journal(mark, "the device to reconnect", connected)
        .await?;
    let Some(r) = reported(case, c.seq, want, SETTLE).await else {
        let gets: Vec<u64> = case
            .hub
            .journal()
            .since(c.seq)
            .iter()
            .filter(|e| matches!(e.event, Event::TwinGet { .. }))
            .map(|e| e.seq)
            .collect();
        return Err(Fail::new(
            format!(
                "the desired telemetryIntervalSeconds {want} (desired $version {}), set while the device was offline, applied and reported after it reconnected",
                twin.desired_version
            ),
            format!(
                "not reported within {SETTLE:?} of the new session; twin GETs in it: {gets:?}"
            ),
            format!("journal.jsonl from seq {}: twin_get, twin_reported", c.seq),
        ));
    };
    case.note(Evidence::journal(
        format!(
            "desired telemetryIntervalSeconds {want} ($version {}) set offline; reported after the reconnect",
            twin.desired_version
        ),
        [c.seq, r.seq],
    ));
    let mids = [mid.to_string()];
    applied_then_quiet(case, &mids).await?;
    check_once_in_order(case, &mids)
        .await
        .map(|s| format!("the offline desired change was applied after the reconnect; {s}"))
}

async fn cd19(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    let mid = "cd19-stale-twin";
    let (old, new, last) = (41, 42, 43);
    // The notification of a first patch is held; a newer patch is told.
    case.hub.hold_next_desired(DEVICE_ID);
    let v_old = case
        .hub
        .patch_desired(DEVICE_ID, &interval_patch(old))?
        .desired_version;
    let mark = case.hub.journal().len();
    let v_new = case
        .hub
        .patch_desired(DEVICE_ID, &interval_patch(new))?
        .desired_version;
    reported(case, mark, new, GUARD).await.ok_or_else(|| {
        Fail::new(
            format!("the device to apply and report the desired telemetryIntervalSeconds {new} (the case's setup)"),
            "not reported",
            "journal.jsonl: twin_desired, twin_reported",
        )
    })?;
    // The trouble: the hub closes the connection; the device comes back,
    // GETs the twin ($version v_new) and subscribes to desired patches.
    let mark = case.hub.journal().len();
    if !case.hub.close_connection(DEVICE_ID) {
        return Err(bench_switch("closing the connection"));
    }
    case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
    let c = case
        .journal(mark, "the device to reconnect", connected)
        .await?;
    let got = reported(case, c.seq, new, GUARD).await.ok_or_else(|| {
        Fail::new(
            format!("the device to GET its twin after reconnecting and report telemetryIntervalSeconds {new} ($version {v_new})"),
            "not reported",
            format!("journal.jsonl from seq {}: twin_get, twin_reported", c.seq),
        )
    })?;
    let desired_filter = "$iothub/twin/PATCH/properties/desired/#";
    let sub = case
        .journal(c.seq, "the device to subscribe to desired patches in its new session", |e| {
            matches!(&e.event, Event::Subscribed { filters } if filters.iter().any(|f| f == desired_filter))
        })
        .await?;
    // Now the stale notification: older than the twin the device has.
    let mark = case.hub.journal().len();
    if case.hub.release_desired(DEVICE_ID) != Some(v_old) {
        return Err(Fail::bench(
            "the held desired notification could not be released",
        ));
    }
    let released = case
        .journal(mark, "the hub to send the held notification", |e| {
            matches!(e.event, Event::DesiredReleased { .. })
        })
        .await?;
    if !matches!(released.event, Event::DesiredReleased { sent: true, .. }) {
        return Err(Fail::bench(
            "the live session did not send the held notification (not subscribed)",
        ));
    }
    // A last patch: once it is reported, whatever the device did with the
    // stale notification before it has reached the hub.
    case.hub.patch_desired(DEVICE_ID, &interval_patch(last))?;
    let end = reported(case, released.seq, last, GUARD).await.ok_or_else(|| {
        Fail::new(
            format!("the device to apply and report the last desired telemetryIntervalSeconds {last}"),
            "not reported",
            "journal.jsonl: twin_desired, twin_reported",
        )
    })?;
    let since: Vec<(u64, u64)> = case
        .hub
        .journal()
        .since(released.seq)
        .iter()
        .filter(|e| e.seq <= end.seq)
        .filter_map(|e| reported_interval(e).map(|v| (e.seq, v)))
        .collect();
    case.note(Evidence::journal(
        format!(
            "patch $version {v_old} ({old}) held, $version {v_new} ({new}) applied and, after the reconnect, read by the GET; the held $version {v_old} sent then; reported telemetryIntervalSeconds until the last patch: {:?}",
            since.iter().map(|(_, v)| *v).collect::<Vec<_>>()
        ),
        [got.seq, sub.seq, released.seq]
            .into_iter()
            .chain(since.iter().map(|(s, _)| *s)),
    ));
    if let Some((seq, _)) = since.iter().find(|(_, v)| *v == old) {
        return Err(Fail::new(
            format!(
                "the desired notification $version {v_old} ignored: older than $version {v_new}, which the device had applied and read again after the reconnect"
            ),
            format!("the device applied it: it reported telemetryIntervalSeconds {old}"),
            format!("journal.jsonl seq {} (desired_released), {seq} (twin_reported)", released.seq),
        ));
    }
    let mids = [mid.to_string()];
    applied_then_quiet(case, &mids).await?;
    check_once_in_order(case, &mids).await.map(|s| {
        format!("the stale desired notification ($version {v_old} < {v_new}) was not applied; {s}")
    })
}

/// CD-21: a payload no parser accepts — invalid UTF-8 inside a JSON
/// object cut short.
const MALFORMED: &[u8] = b"{\"set\": \"\xff\xfe\xc0\x00\x80\" , ";

/// CD-21: a payload that makes the message exactly IoT Hub's limit
/// (payload + message id + properties = 64 KB; no properties).
fn oversized(mid: &str) -> NewMessage {
    NewMessage {
        message_id: Some(mid.into()),
        payload: vec![b'x'; hub_fixture::store::MAX_C2D_MESSAGE - mid.len()],
        properties: Vec::new(),
        ttl_ms: None,
    }
}

/// What CD-21 waits for: every command completed, or the session ended.
fn cd21_outcome(e: &JournalEntry, unacked: &mut Vec<String>) -> bool {
    match &e.event {
        Event::C2dAcked { message_id, .. } => unacked.retain(|m| m != message_id),
        Event::SessionClosed { .. } => return e.device_id.as_deref() == Some(DEVICE_ID),
        _ => {}
    }
    unacked.is_empty()
}

async fn cd21(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    let (bad, big) = ("cd21-malformed", "cd21-oversized");
    let good: Vec<String> = (0..3).map(|i| format!("cd21-{i}")).collect();
    let mark = case.hub.journal().len();
    case.hub.send_c2d(DEVICE_ID, c2d(&good[0], None))?;
    let mut malformed = c2d(bad, None);
    malformed.payload = MALFORMED.to_vec();
    case.hub.send_c2d(DEVICE_ID, malformed)?;
    case.hub.send_c2d(DEVICE_ID, oversized(big))?;
    for m in &good[1..] {
        case.hub.send_c2d(DEVICE_ID, c2d(m, None))?;
    }
    let mut unacked: Vec<String> = [&good[0], bad, big, &good[1], &good[2]]
        .iter()
        .map(|m| m.to_string())
        .collect();
    let end = case
        .journal(
            mark,
            "the device to complete (PUBACK) all five commands, the malformed and the oversized ones too",
            |e| cd21_outcome(e, &mut unacked),
        )
        .await?;
    if let Event::SessionClosed { reason, detail } = &end.event {
        let delivered: Vec<(u64, String)> = case
            .hub
            .journal()
            .since(mark)
            .iter()
            .filter(|e| e.seq < end.seq)
            .filter_map(|e| match &e.event {
                Event::C2dDelivered { message_id, .. } => Some((e.seq, message_id.clone())),
                _ => None,
            })
            .collect();
        case.note(Evidence::journal(
            format!(
                "delivered before the session ended: {:?}; not completed: {unacked:?}",
                delivered.iter().map(|(_, m)| m).collect::<Vec<_>>()
            ),
            delivered.iter().map(|(s, _)| *s).chain([end.seq]),
        ));
        return Err(Fail::new(
            "the device to complete the malformed and the oversized command and keep its session",
            format!(
                "its session ended ({reason:?}: {detail}) once the commands were delivered; not completed: {unacked:?}"
            ),
            format!("journal.jsonl seq {} (session_closed); device.log", end.seq),
        ));
    }
    applied_then_quiet(case, &good).await?;
    let mut twice = Vec::new();
    for m in [bad, big] {
        let n = case
            .count_events(EventName::CommandApplied, events::group_is("mid", m))
            .await?;
        if n > 1 {
            twice.push((m, n));
        }
    }
    if !twice.is_empty() {
        return Err(Fail::new(
            "a malformed or oversized command applied at most once",
            format!("applied more than once (mid, times): {twice:?}"),
            "device.log: the DUT's command_applied events",
        ));
    }
    check_once_in_order(case, &good).await.map(|s| {
        format!("the malformed (not UTF-8, not JSON) and the oversized (64 KB) command completed in the same session; {s}")
    })
}

#[cfg(test)]
mod tests {
    use super::{connack_allowance, judge_growth, CONNACK_GIVE_UP};
    use std::time::Duration;

    #[test]
    fn a_stated_connack_timeout_only_shortens_the_allowance() {
        assert_eq!(connack_allowance(None), CONNACK_GIVE_UP);
        // The reference device states 2 s: 7 s, not 75.
        assert_eq!(connack_allowance(Some(2)), Duration::from_secs(7));
        assert_eq!(connack_allowance(Some(30)), Duration::from_secs(45));
        // Node's 60 s (or more) never gets more than the default.
        assert_eq!(connack_allowance(Some(60)), CONNACK_GIVE_UP);
        assert_eq!(connack_allowance(Some(300)), CONNACK_GIVE_UP);
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn growth_judgement() {
        // The reference policy at the bench's scale, and the Node example's
        // (1 s base, connect overhead in the first interval).
        assert!(judge_growth(&[275 * MS, 292 * MS, 887 * MS, 1525 * MS]).is_ok());
        assert!(judge_growth(&[1191 * MS, 1541 * MS, 3735 * MS, 4346 * MS]).is_ok());
        // tight-reconnect: 100 ms each time.
        assert!(judge_growth(&[100 * MS; 4])
            .unwrap_err()
            .contains("did not grow"));
        assert!(judge_growth(&[MS, 3 * MS, MS, 8 * MS])
            .unwrap_err()
            .contains("shrank"));
        assert!(judge_growth(&[MS, 2 * MS]).unwrap_err().contains("only 2"));
    }
}
