//! CD — commands after sporadic reconnection.
//!
//! What "applied" means is what the device reports: telemetry with
//! `kind=command-applied` and `{"mid","seq","payload"}`, where `seq` counts
//! applications on the device (a report re-sent after a lost PUBACK keeps
//! its `seq`). "Once" is therefore one distinct `seq` per `mid`, "in order"
//! is `seq` increasing in the order the commands were sent.
//!
//! Two rig tricks make the reconnect cases deterministic (no sleeps):
//! - the hub-side end of a session while the link is down (the device is
//!   disabled and enabled again): what the hub's keep-alive expiry (90 s)
//!   would do, at once; the device learns of it when the link returns;
//! - [`SlowFlash`]: the native board holds the device's flash writes,
//!   so "applied but not yet acknowledged" (and, with `ack-before-persist`,
//!   "acknowledged but not yet persisted") lasts seconds instead of
//!   microseconds, and the case acts inside that window on a console line
//!   or a journal entry.

#[path = "cd_identity.rs"]
pub(super) mod identity;
#[path = "cd_redelivery.rs"]
pub(super) mod redelivery;
#[path = "cd_selftest.rs"]
pub(super) mod selftest;
#[path = "cd_server.rs"]
pub(super) mod server;

use std::collections::BTreeSet;
use std::time::Duration;

use hub_fixture::journal::{Event, JournalEntry};
use hub_fixture::store::DeviceStatus;
use sacbench_rig::dut::{ContractPart, EventName};
use sacbench_rig::Capability;

use super::{case_def, self_test, Def};
use crate::case::{Case, CaseDef, ClockNeed, DutNeeds, Fail, DEVICE_ID, GUARD};
use crate::events;
use crate::model::Evidence;
use selftest::c2d;

const NEEDS: &[Capability] = &[Capability::Power, Capability::Capture, Capability::Console];
const NEEDS_LINK: &[Capability] = &[
    Capability::Power,
    Capability::Link,
    Capability::Capture,
    Capability::Console,
];
/// CD-06, CD-10 and CD-12 hold the firmware's flash writes (the native board's switch).
const NEEDS_BOARD: &[Capability] = &[
    Capability::Power,
    Capability::Capture,
    Capability::Console,
    Capability::BoardProcess,
];
const NEEDS_LINK_BOARD: &[Capability] = &[
    Capability::Power,
    Capability::Link,
    Capability::Capture,
    Capability::Console,
    Capability::BoardProcess,
];
/// CD-11 moves the hub's MQTT listener here, so that nothing listens on
/// 8883, where the device dials: every attempt is refused, and visible as
/// SYN / RST in the capture.
const MOVED_HUB_PORT: u16 = 8899;
const REFUSED_PORT: u16 = 8883;

/// What the command cases need of the device: commands, and its word on
/// which it applied (the bench cannot see an application from outside).
const COMMANDS: DutNeeds = DutNeeds {
    implements: &[ContractPart::C2d],
    events: &[EventName::CommandApplied],
    native_board: false,
};
/// CD-06 and CD-10 hold the firmware's flash writes (see [`SlowFlash`]).
const COMMANDS_NATIVE: DutNeeds = DutNeeds {
    native_board: true,
    ..COMMANDS
};
/// CD-12 reads the reference device's `diag/state` counters and its
/// command-applied reports.
const CD12_DUT: DutNeeds = DutNeeds {
    implements: &[ContractPart::C2d, ContractPart::Methods],
    events: &[],
    native_board: true,
};
/// CD-11 counts the device's failed attempts.
const CD11_DUT: DutNeeds = DutNeeds {
    events: &[EventName::ConnectionFailed],
    ..DutNeeds::NONE
};

/// The CD (commands after sporadic reconnection) cases, in catalogue order.
pub const CASES: &[Def] = &[
    case_def!("CD-01", "link_down_commands", "Commands sent while the link is down", "N commands sent while the link is down are all applied after the reconnect, in order, once", NEEDS_LINK, COMMANDS, cd01),
    case_def!("CD-02", "powered_off_commands", "Commands sent while powered off", "commands sent while the device is powered off are applied after boot, in order, once", NEEDS, COMMANDS, cd02),
    self_test!("CD-03", "ttl_expired", "Self-test: expired commands are not delivered", "a 1 h TTL command is never delivered after the hub clock moved 2 h; feedback expired", selftest::cd03),
    self_test!("CD-04", "ttl_48h", "Self-test: 48 h TTL honoured", "a 48 h TTL command is delivered after 47 h offline", selftest::cd04),
    self_test!("CD-05", "queue_depth", "Self-test: queue depth 50", "the 51st queued command to a device is refused", selftest::cd05),
    CaseDef { ..case_def!("CD-06", "redelivery_applied_once", "Redelivery after a cut before PUBACK", "a command delivered and applied but whose PUBACK was lost is redelivered on the next session and applied once", NEEDS_LINK_BOARD, COMMANDS_NATIVE, cd06) },
    self_test!("CD-07", "dead_letter", "Self-test: dead-lettering", "a command never acknowledged is dead-lettered after 10 deliveries with feedback deliveryCountExceeded", selftest::cd07),
    self_test!("CD-08", "hub_restart", "Self-test: queue survives a hub restart", "commands queued when the hub stops are all delivered after it restarts, in order", selftest::cd08),
    self_test!("CD-09", "foreign_commands", "Self-test: only the hub sends commands", "a client publishing on the device's command topic is disconnected and the device never gets it", selftest::cd09),
    CaseDef { long: true, clock: ClockNeed::ScaledIfOffered { rate: crate::case::TIME_SCALE }, ..case_def!("CD-10", "link_flaps", "20 link flaps while commands stream", "20 link flaps at random times while commands stream: every command applied once, in order", NEEDS_LINK_BOARD, COMMANDS_NATIVE, cd10) },
    CaseDef {
        hub_mqtt_port: Some(MOVED_HUB_PORT),
        ..case_def!("CD-11", "backoff_jitter", "Backoff with jitter while the hub is unreachable", "while the hub refuses every connection, the intervals between attempts grow exponentially and vary (jitter)", NEEDS, CD11_DUT, cd11)
    },
    CaseDef { ..case_def!("CD-12", "power_loss_after_puback", "Power loss after PUBACK", "a power cut right after the hub saw the PUBACK does not lose the command: it is applied (persisted before the ack)", NEEDS_BOARD, CD12_DUT, cd12) },
];

/// One `command-applied` report of the device.
#[derive(Debug, Clone)]
struct Applied {
    journal_seq: u64,
    mid: String,
    seq: u64,
}

fn applied_report(e: &JournalEntry) -> Option<Applied> {
    let Event::Telemetry {
        properties,
        payload,
        ..
    } = &e.event
    else {
        return None;
    };
    if !properties
        .iter()
        .any(|(k, v)| k == "kind" && v == "command-applied")
    {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    Some(Applied {
        journal_seq: e.seq,
        mid: v.get("mid")?.as_str()?.to_owned(),
        seq: v.get("seq")?.as_u64()?,
    })
}

fn applied_reports(case: &Case) -> Vec<Applied> {
    case.hub
        .journal()
        .entries()
        .iter()
        .filter_map(applied_report)
        .collect()
}

/// Waits for the DUT's `command_applied` event of `mid`.
async fn applied(case: &Case, mid: &str) -> Result<String, Fail> {
    case.wait_event(
        EventName::CommandApplied,
        GUARD,
        events::group_is("mid", mid),
    )
    .await?
    .ok_or_else(|| {
        Fail::new(
            format!("the device to apply {mid}"),
            format!("no `command_applied` event for {mid} within {GUARD:?}"),
            "device.log; journal.jsonl: c2d_delivered",
        )
    })
}

/// Waits until every mid in `mids` has been applied (the DUT's
/// `command_applied` event) and acknowledged (the hub journalled its
/// PUBACK), then powers the device off: every console line it wrote before
/// the power cut has then been read, so a second application of any of
/// them — which a device makes before acknowledging it — is counted.
async fn applied_then_quiet(case: &mut Case, mids: &[String]) -> Result<(), Fail> {
    for mid in mids {
        applied(case, mid).await?;
    }
    all_acked(case, mids).await?;
    case.rig.power(false).await?;
    Ok(())
}

/// Waits until the hub has had a PUBACK for each of `mids`.
async fn all_acked(case: &mut Case, mids: &[String]) -> Result<(), Fail> {
    let mut unacked: BTreeSet<String> = mids.iter().cloned().collect();
    if unacked.is_empty() {
        return Ok(());
    }
    let acked_before = |e: &JournalEntry, unacked: &mut BTreeSet<String>| {
        if let Event::C2dAcked { message_id, .. } = &e.event {
            unacked.remove(message_id);
        }
        unacked.is_empty()
    };
    case.journal(
        0,
        &format!("the hub to get the PUBACK of each of {mids:?}"),
        |e| acked_before(e, &mut unacked),
    )
    .await?;
    Ok(())
}

/// Checks one application per mid (`command_applied` events), in the order
/// of `mids`.
async fn check_once_in_order(case: &mut Case, mids: &[String]) -> Result<String, Fail> {
    let mut counts = Vec::new();
    for m in mids {
        counts.push(
            case.count_events(EventName::CommandApplied, events::group_is("mid", m))
                .await?,
        );
    }
    // Order of first application, from the console in the order read.
    let firsts = case.event_order(EventName::CommandApplied, "mid").await?;
    case.note(Evidence::log(format!(
        "command_applied events (mid: times): {:?}; first applications in order: {firsts:?}",
        mids.iter().zip(&counts).collect::<Vec<_>>()
    )));
    let missing: Vec<&String> = mids
        .iter()
        .zip(&counts)
        .filter(|(_, n)| **n == 0)
        .map(|(m, _)| m)
        .collect();
    let twice: Vec<(&String, usize)> = mids
        .iter()
        .zip(&counts)
        .filter(|(_, n)| **n > 1)
        .map(|(m, n)| (m, *n))
        .collect();
    if !missing.is_empty() || !twice.is_empty() {
        return Err(Fail::new(
            "every command applied exactly once",
            format!("not applied: {missing:?}; applied more than once (mid, times): {twice:?}"),
            "device.log: the DUT's command_applied events; journal.jsonl: c2d_delivered",
        ));
    }
    let sent_order: Vec<&String> = firsts.iter().filter(|m| mids.contains(m)).collect();
    if sent_order != mids.iter().collect::<Vec<_>>() {
        return Err(Fail::new(
            "commands applied in the order they were sent",
            format!("applied in the order {sent_order:?}"),
            "device.log: the DUT's command_applied events",
        ));
    }
    Ok(format!(
        "{} commands applied once each, in order",
        mids.len()
    ))
}

/// A marker after everything the reference device queued so far:
/// `diag/state` answered (it handles a method after its earlier work went
/// out on the same connection). Returns the device's counters. CD-12 only,
/// which runs on sacbench's native board.
async fn settle(case: &mut Case) -> Result<serde_json::Value, Fail> {
    let r = case
        .hub
        .invoke_method(DEVICE_ID, "diag/state", &serde_json::json!({}), GUARD)
        .await?;
    case.note(Evidence::note(format!(
        "diag/state answered {}: {}",
        r.status, r.payload
    )));
    Ok(r.payload)
}

/// Ends the device's session on the hub's side (disable + enable) and
/// waits for the hub to journal it.
async fn end_session_hub_side(case: &Case) -> Result<JournalEntry, Fail> {
    end_session_hub_side_since(case, case.hub.journal().len()).await
}

/// Has the hub close the device's session (disable, enable), and waits for
/// its end after `mark` — the one this closes, or one that ended by itself
/// since `mark`.
async fn end_session_hub_side_since(case: &Case, mark: u64) -> Result<JournalEntry, Fail> {
    case.hub
        .set_device_status(DEVICE_ID, DeviceStatus::Disabled)?;
    case.hub
        .set_device_status(DEVICE_ID, DeviceStatus::Enabled)?;
    case.journal(mark, "the hub to close the device's session", |e| {
        matches!(e.event, Event::SessionClosed { .. }) && e.device_id.as_deref() == Some(DEVICE_ID)
    })
    .await
}

fn connected(e: &JournalEntry) -> bool {
    matches!(e.event, Event::Connected { .. }) && e.device_id.as_deref() == Some(DEVICE_ID)
}

/// Waits for the device's next session and checks that it subscribed to
/// commands again (fails fast on `no-resubscribe` instead of waiting for
/// commands that cannot come).
async fn resubscribed(case: &mut Case, mark: u64) -> Result<(), Fail> {
    let c = case
        .journal(mark, "the device to reconnect", connected)
        .await?;
    let s = case
        .journal(c.seq, "the device to subscribe in its new session", |e| {
            matches!(e.event, Event::Subscribed { .. }) && e.device_id.as_deref() == Some(DEVICE_ID)
        })
        .await?;
    let Event::Subscribed { filters } = &s.event else {
        unreachable!("matched above")
    };
    let want = format!("devices/{DEVICE_ID}/messages/devicebound/#");
    if !filters.contains(&want) {
        case.note(Evidence::journal(
            format!("session after reconnect subscribed {filters:?}"),
            [c.seq, s.seq],
        ));
        return Err(Fail::new(
            format!("the device to subscribe {want} in every session"),
            format!("after the reconnect it subscribed only {filters:?}"),
            format!("journal.jsonl seq {}", s.seq),
        ));
    }
    Ok(())
}

/// The native board's flash writes held (a slow flash chip, the board's own
/// switch) until dropped, each for at most `delay`; a held write then lands.
pub(super) struct SlowFlash {
    _hold: sacbench_rig::FlashHold,
}

impl SlowFlash {
    pub(super) async fn attach(case: &Case, delay: Duration) -> Result<SlowFlash, Fail> {
        Ok(SlowFlash {
            _hold: case
                .rig
                .hold_flash_writes(delay, sacbench_rig::HoldScope::Every)?,
        })
    }
}

/// Delivers `mid` and cuts the connection after the device applied it but
/// before its PUBACK reaches the hub: the flash write between the two is
/// held, the link goes down on the console line `command applied`, the hub
/// ends the session, the hold is released (the PUBACK goes into the dead
/// link), the link returns. Returns once the hub has the redelivery acked.
async fn cut_before_puback(case: &mut Case, mid: &str) -> Result<(), Fail> {
    let slow = SlowFlash::attach(case, Duration::from_secs(2)).await?;
    let mark = case.hub.journal().len();
    case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
    applied(case, mid).await?;
    case.rig.link(false).await?;
    end_session_hub_side(case).await?;
    drop(slow);
    let back = case.hub.journal().len();
    case.rig.link(true).await?;
    resubscribed(case, back).await?;
    let acked = case
        .journal(
            mark,
            &format!("the hub to get a PUBACK for {mid}"),
            |e| matches!(&e.event, Event::C2dAcked { message_id, .. } if message_id == mid),
        )
        .await?;
    let deliveries: Vec<u64> = case
        .hub
        .journal()
        .since(mark)
        .iter()
        .filter(|e| matches!(&e.event, Event::C2dDelivered { message_id, .. } if message_id == mid))
        .map(|e| e.seq)
        .collect();
    case.note(Evidence::journal(
        format!(
            "{mid}: delivered {} times, acked once the session was new",
            deliveries.len()
        ),
        deliveries.iter().copied().chain([acked.seq]),
    ));
    if deliveries.len() < 2 {
        return Err(Fail::new(
            format!("{mid} delivered again after the cut (the setup of the case)"),
            format!("{} deliveries", deliveries.len()),
            "journal.jsonl: c2d_delivered",
        ));
    }
    Ok(())
}

/// Waits until the device saw its first session through — SUBACK
/// processed, properties reported (if it reports any) — before the case
/// cuts it: what a device that never resubscribes would rely on, so the
/// case cannot pass it by cutting too early.
async fn seen_through(case: &Case) -> Result<(), Fail> {
    case.session_active(0).await.map(|_| ())
}

async fn cd01(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    case.rig.link(false).await?;
    end_session_hub_side(case).await?;
    let mids: Vec<String> = (0..5).map(|i| format!("cd01-{i}")).collect();
    for m in &mids {
        case.hub.send_c2d(DEVICE_ID, c2d(m, None))?;
    }
    let mark = case.hub.journal().len();
    case.rig.link(true).await?;
    resubscribed(case, mark).await?;
    applied_then_quiet(case, &mids).await?;
    check_once_in_order(case, &mids).await
}

async fn cd02(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    seen_through(case).await?;
    let mark = case.hub.journal().len();
    case.rig.power(false).await?;
    // A board without power sends nothing: a hub learns of it at the
    // keep-alive (1.5 × the device's, minutes with some SDKs' defaults), or
    // sooner when the board's host closes its sockets. The hub ends the
    // session now, as it would then: either way it is over (a closed entry
    // after `mark`) before the commands go out.
    end_session_hub_side_since(case, mark).await?;
    let mids: Vec<String> = (0..5).map(|i| format!("cd02-{i}")).collect();
    for m in &mids {
        case.hub.send_c2d(DEVICE_ID, c2d(m, None))?;
    }
    let mark = case.hub.journal().len();
    case.rig.power(true).await?;
    resubscribed(case, mark).await?;
    applied_then_quiet(case, &mids).await?;
    check_once_in_order(case, &mids).await
}

async fn cd06(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    cut_before_puback(case, "cd06-cut").await?;
    let mids = ["cd06-cut".to_string()];
    applied_then_quiet(case, &mids).await?;
    check_once_in_order(case, &mids)
        .await
        .map(|s| format!("redelivered after the cut before PUBACK; {s}"))
}

/// A small xorshift: the flap schedule is random per run, and its seed is
/// in the evidence so a failing schedule can be replayed.
fn xorshift(s: &mut u64) -> u64 {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    *s
}

async fn cd10(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut rng = seed;
    // Four of the flaps are long enough for the session to be lost (each
    // reconnect grows the device's backoff: 4 keep the case within its
    // time limit); they cut after the device applied a command and before
    // its PUBACK arrived, which is where dedupe and resubscribe matter. The
    // others are short: the command is sent into the dead link, or is in
    // flight when the link drops, and TCP carries it over.
    let mut long = BTreeSet::new();
    while long.len() < 4 {
        long.insert(1 + xorshift(&mut rng) % 19);
    }
    let mids: Vec<String> = (0..20).map(|i| format!("cd10-{i:02}")).collect();
    let mut schedule = Vec::new();
    for (i, mid) in mids.iter().enumerate() {
        if long.contains(&(i as u64)) {
            schedule.push(format!("{i}:long"));
            // The flash hold holds every write, so the commands still
            // queued on the device would each wait out the hold: the cut
            // is made once the device has caught up.
            all_acked(case, &mids[..i]).await?;
            cut_before_puback(case, mid).await?;
        } else if xorshift(&mut rng) % 2 == 0 {
            schedule.push(format!("{i}:before"));
            case.rig.link(false).await?;
            case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
            case.rig.link(true).await?;
        } else {
            schedule.push(format!("{i}:after"));
            case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
            case.rig.link(false).await?;
            case.rig.link(true).await?;
        }
    }
    case.note(Evidence::note(format!(
        "flap schedule (seed {seed:#x}): {}",
        schedule.join(" ")
    )));
    applied_then_quiet(case, &mids).await?;
    check_once_in_order(case, &mids).await
}

/// Reconnect intervals (ns) in ms, and as a verdict shows them, if they
/// grow: none much shorter than the one before, the last at least
/// `min_growth` times the first, at least three of them.
pub(super) fn growing_intervals(
    intervals_ns: &[u64],
    min_growth: f64,
) -> Result<(Vec<f64>, String), String> {
    let ms: Vec<f64> = intervals_ns.iter().map(|n| *n as f64 / 1e6).collect();
    let shown = ms
        .iter()
        .map(|m| format!("{m:.0} ms"))
        .collect::<Vec<_>>()
        .join(", ");
    if ms.len() < 3 {
        return Err(format!("only {} intervals: {shown}", ms.len()));
    }
    // 0.8: each delay's floor is the previous ceiling, minus connect-time noise.
    if let Some(w) = ms.windows(2).find(|w| w[1] < 0.8 * w[0]) {
        return Err(format!(
            "an interval shrank ({:.0} → {:.0} ms): {shown}",
            w[0], w[1]
        ));
    }
    if ms[ms.len() - 1] < min_growth * ms[0] {
        return Err(format!(
            "intervals did not grow (the last under {min_growth}× the first): {shown}"
        ));
    }
    Ok((ms, shown))
}

/// Judges reconnect intervals (ns): exponential growth — no interval much
/// shorter than the one before, the last at least 4× the first — and, for
/// CD-11, jitter: the growth factors are not all the same (a fixed
/// schedule has constant ratios up to the sub-millisecond connect time).
pub(super) fn judge_backoff(intervals_ns: &[u64], want_jitter: bool) -> Result<String, String> {
    let (ms, shown) = growing_intervals(intervals_ns, 4.0)?;
    let ratios: Vec<f64> = ms.windows(2).map(|w| w[1] / w[0].max(1.0)).collect();
    let ratios_shown = ratios
        .iter()
        .map(|r| format!("{r:.2}"))
        .collect::<Vec<_>>()
        .join(", ");
    let (lo, hi) = ratios
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), r| (lo.min(*r), hi.max(*r)));
    // 2%: a schedule without jitter keeps its ratios within connect-time
    // noise (well under 1% of second-long intervals), while equal jitter
    // makes four ratios all fall within 2% of each other only by a
    // one-in-many-thousands draw — a check that cannot flake in CI.
    if want_jitter && hi / lo < 1.02 {
        return Err(format!(
            "growth factors all equal (no jitter): {ratios_shown}, intervals {shown}"
        ));
    }
    Ok(format!("intervals {shown}, growth factors {ratios_shown}"))
}

async fn cd11(case: &mut Case) -> Result<String, Fail> {
    case.rig.power(true).await?;
    // Six refused attempts: five intervals, ≤ 31 s with the reference policy.
    if case
        .event_after(EventName::ConnectionFailed, 5, GUARD, events::any)
        .await?
        .is_none()
    {
        let n = case
            .count_events(EventName::ConnectionFailed, events::any)
            .await?;
        return Err(Fail::new(
            "six failed connection attempts (the DUT's connection_failed events)",
            format!("{n} within {GUARD:?}"),
            "device.log",
        ));
    }
    let hub = case.net.hub_ipv4;
    let dut = case.net.dut_ipv4;
    let a = case.analysis()?.clone();
    let Some(g) = a.connection_attempts().into_iter().find(|g| {
        g.client == std::net::IpAddr::V4(dut)
            && g.server == std::net::SocketAddr::from((hub, REFUSED_PORT))
    }) else {
        return Err(Fail::new(
            format!("SYNs from the DUT to {hub}:{REFUSED_PORT}"),
            "none in the capture",
            "capture.pcapng",
        ));
    };
    let frames: Vec<u64> = g
        .syns
        .iter()
        .filter(|s| !s.retransmission)
        .map(|s| s.frame.number)
        .collect();
    let verdict = judge_backoff(&g.attempt_intervals_ns(), true);
    case.note(Evidence::frames(
        format!(
            "connection attempts (SYN, refused): {}",
            verdict.as_ref().unwrap_or_else(|e| e)
        ),
        frames.clone(),
    ));
    verdict.map_err(|e| {
        Fail::new(
            "reconnect attempts that back off exponentially with jitter",
            e,
            format!("capture.pcapng, SYN frames {frames:?}"),
        )
    })
}

async fn cd12(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    // Deterministic race: flash writes are held for 3 s. The reference
    // device persists before it PUBACKs, so by the time the hub journals
    // the ack the command is stored; with `ack-before-persist` the ack
    // leaves first and the power cut lands while the write is still held.
    let slow = SlowFlash::attach(case, Duration::from_secs(3)).await?;
    let mark = case.hub.journal().len();
    let mid = "cd12-power-cut";
    case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
    let acked = case
        .journal(
            mark,
            "the hub to journal the PUBACK",
            |e| matches!(&e.event, Event::C2dAcked { message_id, .. } if message_id == mid),
        )
        .await?;
    case.rig.power(false).await?;
    drop(slow);
    case.note(Evidence::journal(
        "power cut as soon as the hub journalled the PUBACK",
        [acked.seq],
    ));
    let mark = case.hub.journal().len();
    case.rig.power(true).await?;
    let c = case
        .journal(
            mark,
            "the device to reconnect after the power cut",
            connected,
        )
        .await?;
    case.journal(c.seq, "the device to subscribe after the reboot", |e| {
        matches!(e.event, Event::Subscribed { .. }) && e.device_id.as_deref() == Some(DEVICE_ID)
    })
    .await?;
    let diag = settle(case).await?;
    let reports: Vec<Applied> = applied_reports(case)
        .into_iter()
        .filter(|r| r.mid == mid)
        .collect();
    case.note(Evidence::journal(
        format!(
            "command-applied reports of {mid}: {:?}; after reboot commandsApplied = {}",
            reports.iter().map(|r| r.seq).collect::<Vec<_>>(),
            diag["counters"]["commandsApplied"]
        ),
        reports.iter().map(|r| r.journal_seq),
    ));
    if reports.is_empty() {
        return Err(Fail::new(
            "the command acknowledged before the power cut applied (persisted before the PUBACK)",
            format!(
                "no command-applied report of {mid}; the hub will not redeliver it (acked at seq {})",
                acked.seq
            ),
            "device.log: `command applied` before the cut; journal.jsonl",
        ));
    }
    Ok(format!(
        "acked {mid} survived the power cut (reported applied, seq {:?})",
        reports.iter().map(|r| r.seq).collect::<BTreeSet<_>>()
    ))
}

#[cfg(test)]
mod tests {
    use super::judge_backoff;

    const S: u64 = 1_000_000_000;

    #[test]
    fn backoff_judgement() {
        // The reference policy's shape: ½–1 of 1, 2, 4, 8, 16 s.
        let jittered = [
            700 * S / 1000,
            1_900 * S / 1000,
            2_300 * S / 1000,
            7_100 * S / 1000,
            9_000 * S / 1000,
        ];
        assert!(judge_backoff(&jittered, true).is_ok());
        // Pure doubling (plus sub-ms connect noise): exponential, but no jitter.
        let doubling = [S, 2 * S + 300_000, 4 * S + 100_000, 8 * S + 400_000, 16 * S];
        assert!(judge_backoff(&doubling, false).is_ok());
        assert!(judge_backoff(&doubling, true)
            .unwrap_err()
            .contains("no jitter"));
        // tight-reconnect: 100 ms forever.
        let tight = [100_000_000u64; 6];
        assert!(judge_backoff(&tight, false)
            .unwrap_err()
            .contains("did not grow"));
        assert!(judge_backoff(&[S, S / 2, 4 * S, 8 * S], false)
            .unwrap_err()
            .contains("shrank"));
    }
}
