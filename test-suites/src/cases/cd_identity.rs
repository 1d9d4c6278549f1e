//! CD-20 — one connection per identity: two boards of the DUT provisioned
//! with the same identity (a cloned unit, or one replaced without being
//! deprovisioned).
//!
//! IoT Hub keeps one connection per device identity: when a second client
//! connects as the same device, the hub closes the first connection. Two
//! units sharing an identity therefore take it from each other whenever
//! either reconnects — no device can tell a clone from a successor, so
//! taking it back is not wrong in itself, but doing so at once, every time,
//! is a tight loop that floods the hub and starves both (the "flapping"
//! IoT Hub's troubleshooting guides warn of). A device that backs off
//! after losing its session makes the exchanges rarer and rarer.
//!
//! The case boots board A, then board B with A's very provisioning; the
//! hub evicts A (`session_closed` `replaced_by_session`, journalled). From
//! then on it watches the hub's journal, telling the boards apart by
//! address, until each has taken the identity back [`RETAKES`] times or
//! [`OBSERVE`] has passed: a board's retake delay is the time from losing
//! its session to its next connection reaching the hub (TLS accepted).
//! [`judge_flapping`] is the verdict. Then the board that did not take the
//! identity last is powered off and a command is queued: the other applies
//! it, once. (A command queued while both boards take turns is not judged:
//! a delivery cut by an eviction is redelivered to the other board, which
//! cannot know the first applied it — two units share no dedupe store.)

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hub_fixture::journal::{CloseReason, Event, JournalEntry, Listener};
use sacbench_rig::dut::EventName;
use sacbench_rig::Capability;

use super::selftest::c2d;
use super::{growing_intervals, seen_through, COMMANDS};
use crate::case::{Case, CaseDef, Fail, DEVICE_ID, GUARD};
use crate::case_board::{Which, CAPTURE_B, DEVICE_LOG_B};
use crate::cases::{case_def, Def};
use crate::events;
use crate::model::Evidence;

/// Power, capture and console of the first board, and a second board.
const NEEDS_TWO_BOARDS: &[Capability] = &[
    Capability::Power,
    Capability::Capture,
    Capability::Console,
    Capability::SecondBoard,
];

/// Retakes of the identity judged per board: four delays, so that an
/// exponential backoff with equal jitter has certainly doubled (its fourth
/// delay's floor is twice its first delay's ceiling) and reached 1 s at the
/// emulated board's 250 ms base.
pub(super) const RETAKES: usize = 4;
/// The longest the case watches the two boards: a board that backs off so
/// long that it has not retaken the identity [`RETAKES`] times by then does
/// not flap. (The Node.js SDK example's 1 s base needs up to ~35 s.)
pub(super) const OBSERVE: Duration = Duration::from_secs(45);
/// A board whose retake delays never reach this does take the identity back
/// "within a second each time" (the words for flapping).
pub(super) const REACH: Duration = Duration::from_secs(1);

/// The CD case of one connection per identity, in catalogue order.
pub const CASES: &[Def] = &[CaseDef {
    long: true,
    ..case_def!(
    "CD-20",
    "one_connection_per_identity",
    "Two boards, one identity: evicted without flapping",
    "board A connects; board B, provisioned with the same identity, connects and the hub evicts A (journalled); from then until each board has taken the identity back 4 times, or 45 s, each board's delays from losing its session to its next connection reaching the hub grow (none under 0.8× the one before, the 4th at least 2× the 1st) and reach 1 s — a board with fewer retakes passes; then, the board that did not connect last powered off, a command queued is applied once by the other",
    NEEDS_TWO_BOARDS,
    COMMANDS,
    cd20
)
}];

/// The address of the connection an entry came from.
fn peer_ip(e: &JournalEntry) -> Option<IpAddr> {
    e.peer
        .as_deref()
        .and_then(|p| p.parse::<SocketAddr>().ok())
        .map(|p| p.ip())
}

/// One board losing the identity and taking it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retake {
    /// The journal entry of its eviction (`session_closed`, `replaced_by_session`).
    pub evicted_seq: u64,
    /// Its `mono_us`.
    pub evicted_us: u64,
    /// The board's next MQTT connection reaching the hub (`tls_accepted`),
    /// if it came.
    pub back: Option<(u64, u64)>,
}

impl Retake {
    /// The delay from the eviction to the next connection, ns.
    pub fn delay_ns(&self) -> Option<u64> {
        self.back
            .map(|(_, us)| us.saturating_sub(self.evicted_us) * 1000)
    }
}

/// `board`'s evictions in `entries` (in order), each with the board's next
/// MQTT connection after it, if any.
pub(super) fn retakes(entries: &[JournalEntry], board: IpAddr) -> Vec<Retake> {
    let mut out: Vec<Retake> = Vec::new();
    for e in entries.iter().filter(|e| peer_ip(e) == Some(board)) {
        match &e.event {
            Event::SessionClosed {
                reason: CloseReason::ReplacedBySession,
                ..
            } => out.push(Retake {
                evicted_seq: e.seq,
                evicted_us: e.mono_us,
                back: None,
            }),
            Event::TlsAccepted {
                listener: Listener::Mqtt,
                ..
            } => {
                // Back when its attempt began: its handshake is not its wait.
                if let Some(r) = out.last_mut().filter(|r| r.back.is_none()) {
                    r.back = Some((e.seq, e.attempt_began_us()));
                }
            }
            _ => {}
        }
    }
    out
}

/// How many times a board took the identity back.
pub(super) fn taken_back(r: &[Retake]) -> usize {
    r.iter().filter(|r| r.back.is_some()).count()
}

/// One board's retakes judged: flapping when it took the identity back
/// [`RETAKES`] times at delays that do not grow (see [`growing_intervals`]:
/// none under 0.8× the one before, the last at least 2× the first) or that
/// never reach [`REACH`]. Fewer retakes: not flapping.
fn judge_board(name: &str, r: &[Retake]) -> Result<String, String> {
    let delays: Vec<u64> = r
        .iter()
        .filter_map(Retake::delay_ns)
        .take(RETAKES)
        .collect();
    if delays.len() < RETAKES {
        let shown: Vec<String> = delays
            .iter()
            .map(|d| format!("{} ms", d / 1_000_000))
            .collect();
        return Ok(format!(
            "{name} took the identity back {} times (delays {}): fewer than {RETAKES}",
            delays.len(),
            shown.join(", ")
        ));
    }
    let (_, shown) = growing_intervals(&delays, 2.0)
        .map_err(|e| format!("{name} took the identity back at delays that do not grow: {e}"))?;
    let longest = delays.iter().copied().max().unwrap_or(0);
    if longest < REACH.as_nanos() as u64 {
        return Err(format!(
            "{name} took the identity back within {REACH:?} of losing it each time: {shown}"
        ));
    }
    Ok(format!(
        "{name} took the identity back at growing delays: {shown}"
    ))
}

/// CD-20's verdict over the journal of the observation: both boards'
/// retakes judged ([`judge_board`]).
pub(super) fn judge_flapping(a: &[Retake], b: &[Retake]) -> Result<String, String> {
    let a = judge_board("board A", a);
    let b = judge_board("board B", b);
    match (a, b) {
        (Ok(a), Ok(b)) => Ok(format!("{a}; {b}")),
        (Err(e), _) | (_, Err(e)) => Err(e),
    }
}

fn connected_from(e: &JournalEntry, ip: IpAddr) -> bool {
    matches!(e.event, Event::Connected { .. }) && peer_ip(e) == Some(ip)
}

async fn cd20(case: &mut Case) -> Result<String, Fail> {
    let a = IpAddr::V4(case.net.dut_ipv4);
    case.boot().await?;
    seen_through(case).await?;
    let record = case
        .records
        .first()
        .cloned()
        .ok_or_else(|| Fail::bench("the DUT was provisioned with no record"))?;
    let b = IpAddr::V4(case.add_second_board(&record).await?);
    let mark = case.hub.journal().len();
    case.second_board()?.power(true).await?;
    let b_in = case
        .journal(
            mark,
            "board B, provisioned with board A's identity, to connect",
            |e| connected_from(e, b),
        )
        .await?;
    let first = case
        .hub
        .journal()
        .wait_for(mark, GUARD, |e| {
            matches!(
                e.event,
                Event::SessionClosed {
                    reason: CloseReason::ReplacedBySession,
                    ..
                }
            ) && peer_ip(e) == Some(a)
        })
        .await
        .ok_or_else(|| {
            Fail::bench(format!(
                "the hub did not evict board A when board B connected as {DEVICE_ID} (journal.jsonl seq {})",
                b_in.seq
            ))
        })?;
    case.note(Evidence::journal(
        format!("board B ({b}) connected as {DEVICE_ID}; the hub evicted board A ({a})"),
        [b_in.seq, first.seq],
    ));
    // Watch until each board took the identity back RETAKES times, or OBSERVE.
    let start = first.seq - 1;
    let journal = case.hub.journal().clone();
    let mut seen = Vec::new();
    let done = journal
        .wait_for(start, OBSERVE, |e| {
            seen.push(e.clone());
            taken_back(&retakes(&seen, a)) >= RETAKES && taken_back(&retakes(&seen, b)) >= RETAKES
        })
        .await;
    let end = done.as_ref().map_or_else(|| journal.len(), |e| e.seq);
    let window: Vec<JournalEntry> = journal
        .since(start)
        .into_iter()
        .filter(|e| e.seq <= end)
        .collect();
    let (ra, rb) = (retakes(&window, a), retakes(&window, b));
    let cite = |r: &[Retake]| -> Vec<u64> {
        r.iter()
            .flat_map(|r| [Some(r.evicted_seq), r.back.map(|b| b.0)])
            .flatten()
            .collect()
    };
    let verdict = judge_flapping(&ra, &rb);
    case.note(Evidence::journal(
        format!(
            "observed {} (journal seq {}–{end}): board A evicted {} times, board B {} times; {}",
            if done.is_some() {
                format!("until each board took the identity back {RETAKES} times")
            } else {
                format!("for {OBSERVE:?}")
            },
            first.seq,
            ra.len(),
            rb.len(),
            verdict.as_ref().unwrap_or_else(|e| e)
        ),
        cite(&ra).into_iter().chain(cite(&rb)),
    ));
    let judged = verdict.map_err(|e| {
        Fail::new(
            "two boards sharing an identity not to take it from each other at once, again and again (their retake delays grow and reach 1 s)",
            e,
            format!("journal.jsonl seq {}–{end}: session_closed replaced_by_session, tls_accepted (board A {a}, board B {b}); device.log, {DEVICE_LOG_B}, {CAPTURE_B}", first.seq),
        )
    })?;
    // The one that connected last keeps the identity; the other goes.
    let last = journal
        .since(start)
        .iter()
        .rev()
        .find(|e| connected_from(e, a) || connected_from(e, b))
        .map(|e| peer_ip(e) == Some(b))
        .unwrap_or(false);
    let (keeper, which) = if last {
        case.rig.power(false).await?;
        ("board B", Which::Second)
    } else {
        case.second_board()?.power(false).await?;
        ("board A", Which::First)
    };
    let mid = "cd20-one-identity";
    let mark = case.hub.journal().len();
    case.hub.send_c2d(DEVICE_ID, c2d(mid, None))?;
    let applied = case
        .wait_event_on(
            which,
            EventName::CommandApplied,
            GUARD,
            events::group_is("mid", mid),
        )
        .await?;
    if applied.is_none() {
        return Err(Fail::new(
            format!("{keeper}, left alone with the identity, to apply {mid}"),
            format!("no `command_applied` event for {mid} within {GUARD:?}"),
            format!("journal.jsonl from seq {mark}; device.log, {DEVICE_LOG_B}"),
        ));
    }
    let acked = case
        .journal(
            mark,
            &format!("the hub to get the PUBACK of {mid}"),
            |e| matches!(&e.event, Event::C2dAcked { message_id, .. } if message_id == mid),
        )
        .await?;
    // Powered off, the keeper's console is read to its end.
    match which {
        Which::First => case.rig.power(false).await?,
        Which::Second => case.second_board()?.power(false).await?,
    }
    let mut counts = Vec::new();
    for w in [Which::First, Which::Second] {
        counts.push(
            case.count_events_on(w, EventName::CommandApplied, events::group_is("mid", mid))
                .await?,
        );
    }
    case.note(Evidence::journal(
        format!(
            "{mid} queued with {keeper} alone: applied by board A {} times, by board B {} times",
            counts[0], counts[1]
        ),
        [acked.seq],
    ));
    if counts.iter().sum::<usize>() != 1 {
        return Err(Fail::new(
            format!("{mid} applied exactly once"),
            format!(
                "applied {} times by board A, {} times by board B",
                counts[0], counts[1]
            ),
            format!("device.log and {DEVICE_LOG_B}: the DUT's command_applied events"),
        ));
    }
    Ok(format!(
        "the hub evicted board A when board B connected with its identity; {judged}; {keeper}, left with the identity, applied {mid} once"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hub_fixture::journal::{CloseReason, Event, JournalEntry, Listener};

    const A: &str = "10.200.1.2";
    const B: &str = "10.200.1.10";

    fn entry(seq: u64, at_ms: u64, ip: &str, event: Event) -> JournalEntry {
        JournalEntry {
            seq,
            at_ms: 0,
            mono_us: at_ms * 1000,
            device_id: Some(DEVICE_ID.into()),
            peer: Some(format!("{ip}:{}", 40000 + seq)),
            event,
        }
    }

    fn evicted(seq: u64, at_ms: u64, ip: &str) -> JournalEntry {
        entry(
            seq,
            at_ms,
            ip,
            Event::SessionClosed {
                reason: CloseReason::ReplacedBySession,
                detail: "a new session of the same device connected".into(),
            },
        )
    }

    fn back(seq: u64, at_ms: u64, ip: &str) -> JournalEntry {
        entry(
            seq,
            at_ms,
            ip,
            Event::TlsAccepted {
                listener: Listener::Mqtt,
                serial: "01".into(),
                tls_version: "TLSv1.3".into(),
                cipher_suite: "TLS13_AES_128_GCM_SHA256".into(),
                handshake_us: 0,
            },
        )
    }

    /// Two boards trading the identity: each retake evicts the other.
    /// `a_delays` and `b_delays` (ms) are each board's waits after losing it.
    fn trade(a_delays: &[u64], b_delays: &[u64], connect_ms: u64) -> Vec<JournalEntry> {
        let (mut seq, mut t, mut out) = (1, 0, Vec::new());
        let mut push = |e: fn(u64, u64, &str) -> JournalEntry, t: u64, ip: &str| {
            out.push(e(seq, t, ip));
            seq += 1;
        };
        push(evicted, t, A);
        for i in 0..a_delays.len().max(b_delays.len()) {
            for (ip, other, d) in [(A, B, a_delays.get(i)), (B, A, b_delays.get(i))] {
                let Some(d) = d else { return out };
                t += d + connect_ms;
                push(back, t, ip);
                t += 2;
                push(evicted, t, other);
            }
        }
        out
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn judge(entries: &[JournalEntry]) -> Result<String, String> {
        judge_flapping(&retakes(entries, ip(A)), &retakes(entries, ip(B)))
    }

    #[test]
    fn boards_that_back_off_pass() {
        // The reference policy at the bench's 250 ms base, and the Node
        // example's 1 s base, with connect overhead.
        let reference = trade(&[240, 260, 990, 1010], &[130, 480, 520, 1990], 15);
        assert_eq!(taken_back(&retakes(&reference, ip(A))), 4);
        assert_eq!(taken_back(&retakes(&reference, ip(B))), 4);
        assert!(judge(&reference).is_ok(), "{:?}", judge(&reference));
        let node = trade(&[900, 1100, 3900, 4200], &[510, 1990, 2100, 7900], 300);
        assert!(judge(&node).is_ok());
        // A board that never takes it back (or only twice) does not flap.
        let quiet = trade(&[200, 400], &[250], 15);
        let verdict = judge(&quiet).unwrap();
        assert!(verdict.contains("fewer than 4"), "{verdict}");
    }

    #[test]
    fn boards_that_retake_at_once_flap() {
        // retake-identity: back within the connect time every time.
        let tight = trade(&[0; 6], &[0; 6], 12);
        let e = judge(&tight).unwrap_err();
        assert!(e.contains("board A") && e.contains("did not grow"), "{e}");
        // Noise that happens to double still never reaches a second.
        let noisy = trade(&[2, 6, 14, 30], &[2, 6, 14, 30], 10);
        assert!(judge(&noisy).unwrap_err().contains("within 1s"));
        // A fixed one-second-or-less policy (the insecure example's): no growth.
        let fixed = trade(&[700, 950, 600, 990], &[800, 510, 900, 700], 60);
        assert!(judge(&fixed).is_err());
        // One board flapping is enough.
        let one = trade(&[240, 260, 990, 1010], &[0, 0, 0, 0], 15);
        assert!(judge(&one).unwrap_err().contains("board B"));
    }

    #[test]
    fn retakes_are_told_apart_by_address() {
        let mut entries = trade(&[300, 600], &[300], 10);
        // Another device's connections and closes do not count.
        entries.push(back(100, 99_000, "10.200.1.99"));
        entries.push(evicted(101, 99_001, "10.200.1.99"));
        let ra = retakes(&entries, ip(A));
        assert_eq!(ra.len(), 2);
        assert_eq!(ra[0].delay_ns(), Some(310_000_000));
        let rb = retakes(&entries, ip(B));
        assert_eq!(rb.len(), 2);
        assert_eq!(rb[1].back, None);
        // No eviction at all: nothing judged, nothing failed.
        assert!(judge(&[]).is_ok());
    }
}
