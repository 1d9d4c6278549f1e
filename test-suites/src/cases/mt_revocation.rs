//! MT-12: revocation closes the live session, reconnects fail, and the DUT
//! backs off — judged by the catalogue's written criterion, "≤ 6 attempts
//! per minute after the first minute", on the device's time-scaled clock.
//!
//! On a time-scaled clock (the DUT file declares `clock_scale`) the case
//! counts the refused attempts per device-minute — hub journal times (its
//! monotonic stamps) × the scale — in every minute-long window that starts
//! after the first minute, until three device-minutes have passed since the
//! session closed (nine real seconds at the case's 20×). A DUT whose clock cannot be
//! scaled would need three real minutes for that, longer than a case may
//! take; it is judged by the former proxy instead (the reconnect intervals
//! after revocation grow exponentially), and its verdict says so.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use hub_fixture::clock::TimeScale;
use hub_fixture::journal::{Event, HandshakeFailure, JournalEntry, RefuseReason};

use super::{dut_ip, from_dut, REVOKE_BOUND};
use crate::case::{Case, Fail};
use crate::model::Evidence;

/// The written criterion: at most this many attempts in any device-minute
/// after the first.
const MAX_PER_MINUTE: usize = 6;
/// Device time observed after the session closed: minutes 2 and 3 judged.
const OBSERVED_MS: u64 = 180_000;
const MINUTE_MS: u64 = 60_000;

fn refused_attempt(e: &JournalEntry) -> bool {
    matches!(
        e.event,
        Event::HandshakeFailed { .. } | Event::ConnectRefused { .. }
    )
}

/// The busiest device-minute window that starts after the first minute:
/// `(start, count)` over `times` (device ms since the close, ascending).
fn busiest_minute(times: &[u64]) -> Option<(u64, usize)> {
    times
        .iter()
        .filter(|t| **t >= MINUTE_MS)
        .map(|t| {
            let n = times
                .iter()
                .filter(|u| **u >= *t && **u < t + MINUTE_MS)
                .count();
            (*t, n)
        })
        .max_by_key(|(_, n)| *n)
}

/// Attempts per device-minute (1st, 2nd, 3rd), for the verdict.
fn per_minute(times: &[u64]) -> Vec<usize> {
    (0..OBSERVED_MS / MINUTE_MS)
        .map(|m| times.iter().filter(|t| **t / MINUTE_MS == m).count())
        .collect()
}

pub(super) async fn mt12(case: &mut Case) -> Result<String, Fail> {
    case.boot().await?;
    let dut = dut_ip(case);
    let serial = case.credentials().serial.clone();
    let revoked_at_ns = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mark = case.hub.journal().len();
    case.hub.revoke(&serial)?;
    // Every way the device's session can end on revocation: its live
    // session closed (with the measured latency), or — had it just lost its
    // session when the revocation came — its next connection refused as
    // revoked (then there was nothing to close).
    let closed = case
        .journal(mark, "the session to end on revocation", |e| {
            matches!(e.event, Event::RevokedSessionClosed { .. })
                || (from_dut(e, dut)
                    && matches!(
                        e.event,
                        Event::HandshakeFailed {
                            reason: HandshakeFailure::CertificateRevoked,
                            ..
                        } | Event::ConnectRefused {
                            reason: RefuseReason::CertificateRevoked,
                            ..
                        }
                    ))
        })
        .await?;
    let latency_us = match closed.event {
        Event::RevokedSessionClosed { latency_us, .. } => latency_us,
        _ => {
            case.note(Evidence::journal(
                "no live session when the certificate was revoked: the next connection was refused as revoked",
                [closed.seq],
            ));
            0
        }
    };
    if Duration::from_micros(latency_us) > REVOKE_BOUND {
        return Err(Fail::new(
            format!("the session closed within {REVOKE_BOUND:?} of revocation"),
            format!("closed after {latency_us} µs"),
            format!("journal.jsonl entry {}", closed.seq),
        ));
    }
    match case.time_scale {
        Some(scale) => by_rate(case, scale, mark, &closed, latency_us).await,
        None => by_growth(case, mark, &closed, latency_us, revoked_at_ns).await,
    }
}

/// Sessions the DUT got after the revocation (there must be none).
fn sessions_after(case: &Case, mark: u64) -> Vec<u64> {
    case.hub
        .journal()
        .since(mark)
        .iter()
        .filter(|e| matches!(e.event, Event::Connected { .. }))
        .map(|e| e.seq)
        .collect()
}

/// The written criterion on the time-scaled clock.
async fn by_rate(
    case: &mut Case,
    scale: TimeScale,
    mark: u64,
    closed: &JournalEntry,
    latency_us: u64,
) -> Result<String, Fail> {
    let dut = dut_ip(case);
    let rate = u64::from(scale.rate);
    // Device ms since the close, from the hub's monotonic stamps × the scale.
    let device_ms = |e: &JournalEntry| e.mono_us.saturating_sub(closed.mono_us) * rate / 1000;
    let end = tokio::time::Instant::now() + scale.real(Duration::from_millis(OBSERVED_MS));
    let mut after = closed.seq;
    let mut attempts: Vec<(u64, u64)> = Vec::new(); // (device ms, seq)
    let mut storm = None;
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break;
        }
        // Waits on the journal; the window's end is the observation's own
        // length (three device-minutes), not a synchronisation.
        let Some(e) = case
            .hub
            .journal()
            .wait_for(after, left, |e| {
                from_dut(e, dut)
                    && (refused_attempt(e) || matches!(e.event, Event::Connected { .. }))
            })
            .await
        else {
            break;
        };
        after = e.seq;
        let t = device_ms(&e);
        if t >= OBSERVED_MS {
            break;
        }
        if refused_attempt(&e) {
            attempts.push((t, e.seq));
        }
        let times: Vec<u64> = attempts.iter().map(|a| a.0).collect();
        if let Some((start, n)) = busiest_minute(&times) {
            if n > MAX_PER_MINUTE {
                storm = Some((start, n));
                break;
            }
        }
    }
    let times: Vec<u64> = attempts.iter().map(|a| a.0).collect();
    let seqs: Vec<u64> = attempts.iter().map(|a| a.1).collect();
    let reconnected = sessions_after(case, mark);
    let minutes = per_minute(&times);
    let shown = times
        .iter()
        .take(12)
        .map(|t| format!("{:.1} s", *t as f64 / 1000.0))
        .collect::<Vec<_>>()
        .join(", ");
    case.note(Evidence::journal(
        format!(
            "session closed {latency_us} µs after revocation; {} refused attempts in the first {} device-minutes (clock {}× fast), per minute {minutes:?}, at device time {shown}{}; sessions after revocation {reconnected:?}",
            times.len(),
            OBSERVED_MS / MINUTE_MS,
            scale.rate,
            if times.len() > 12 { ", …" } else { "" },
        ),
        [closed.seq].into_iter().chain(seqs.iter().copied().take(50)).chain(reconnected.iter().copied()),
    ));
    if !reconnected.is_empty() {
        return Err(Fail::new(
            "no session after revocation: reconnects fail",
            format!("sessions after revocation at seqs {reconnected:?}"),
            "journal.jsonl",
        ));
    }
    if let Some((start, n)) = storm {
        return Err(Fail::new(
            format!("≤ {MAX_PER_MINUTE} attempts per device-minute after the first minute"),
            format!(
                "{n} attempts in the device-minute from {:.1} s after the close (clock {}× fast); per minute so far {minutes:?}",
                start as f64 / 1000.0,
                scale.rate
            ),
            "journal.jsonl (HandshakeFailed / ConnectRefused from the DUT)",
        ));
    }
    if times.is_empty() {
        return Err(Fail::new(
            "the DUT tries to reconnect after revocation, and is refused",
            format!(
                "no reconnect attempt in {} device-minutes",
                OBSERVED_MS / MINUTE_MS
            ),
            "journal.jsonl",
        ));
    }
    Ok(format!(
        "session closed {latency_us} µs after revocation; {} reconnects refused; attempts per device-minute {minutes:?} (≤ {MAX_PER_MINUTE} after the first, clock {}× fast)",
        times.len(),
        scale.rate
    ))
}

/// Below this an idle gap counts as "at once" (capture and scheduling
/// noise): a device that reconnects immediately must not pass as growing
/// by the noise between its attempts.
const AT_ONCE_NS: u64 = 10_000_000;

/// The idle time before each attempt after the first, from `(first SYN,
/// last frame)` of successive attempts: the next SYN minus the previous
/// attempt's last frame, at least [`AT_ONCE_NS`].
fn idle_gaps(attempts: &[(u64, u64)]) -> Vec<u64> {
    attempts
        .windows(2)
        .map(|w| w[1].0.saturating_sub(w[0].1).max(AT_ONCE_NS))
        .collect()
}

/// A DUT without a time-scaled clock: the former proxy, the reconnect
/// intervals after revocation grow.
async fn by_growth(
    case: &mut Case,
    mark: u64,
    closed: &JournalEntry,
    latency_us: u64,
    revoked_at_ns: u64,
) -> Result<String, Fail> {
    let dut = dut_ip(case);
    // Six refused reconnects: 5 idle gaps, so a backoff with equal jitter
    // (each delay at least the previous ceiling) has grown at least 8×
    // at the last, clear of the 4× the verdict asks even at its worst.
    let refused = std::cell::Cell::new(Vec::new());
    case.journal(mark, "six refused reconnect attempts", |e| {
        if refused_attempt(e) && from_dut(e, dut) {
            let mut v = refused.take();
            v.push(e.seq);
            let n = v.len();
            refused.set(v);
            return n >= 6;
        }
        false
    })
    .await?;
    let reconnected = sessions_after(case, mark);
    let refused = refused.take();
    case.note(Evidence::journal(
        format!("session closed {latency_us} µs after revocation; refused reconnects {refused:?}; sessions after revocation {reconnected:?}"),
        [closed.seq].into_iter().chain(refused.iter().copied()).chain(reconnected.iter().copied()),
    ));
    if !reconnected.is_empty() {
        return Err(Fail::new(
            "no session after revocation: reconnects fail",
            format!("sessions after revocation at seqs {reconnected:?}"),
            "journal.jsonl",
        ));
    }
    let hub = SocketAddr::from((case.net.hub_ipv4, 8883));
    let a = case.analysis()?.clone();
    // Each refused attempt is one TCP flow; the device's backoff is the
    // idle time from one attempt's last frame to the next attempt's SYN —
    // not SYN to SYN, which adds the attempt itself (a TLS handshake takes
    // most of a second on a small MCU, and would hide the growth).
    let mut flows: Vec<&sacbench_capture::TcpFlow> = a
        .tcp_flows
        .iter()
        .filter(|f| f.client.ip() == dut && f.server == hub)
        .filter(|f| f.syns.first().is_some_and(|s| s.time_ns > revoked_at_ns))
        .collect();
    flows.sort_by_key(|f| f.syns[0].time_ns);
    let intervals = idle_gaps(
        &flows
            .iter()
            .map(|f| (f.syns[0].time_ns, f.last_frame.time_ns))
            .collect::<Vec<_>>(),
    );
    let syns: Vec<&sacbench_capture::analysis::FrameRef> =
        flows.iter().map(|f| &f.syns[0]).collect();
    let verdict = super::super::cd::judge_backoff(&intervals, false);
    let frames: Vec<u64> = syns.iter().map(|s| s.number).collect();
    case.note(Evidence::frames(
        format!(
            "reconnect attempts after revocation, idle time before each (from the last frame of one attempt to the next SYN): {}",
            verdict.as_ref().unwrap_or_else(|e| e)
        ),
        frames.clone(),
    ));
    let v = verdict.map_err(|e| {
        Fail::new(
            "idle times between reconnect attempts that grow after revocation",
            e,
            format!("capture.pcapng SYN frames {frames:?}"),
        )
    })?;
    Ok(format!(
        "session closed {latency_us} µs after revocation; reconnects refused; {v} (the DUT's clock cannot be time-scaled, so its backoff is judged by growing intervals, not attempts per device-minute)"
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_backoff_is_the_idle_time_between_attempts_not_the_attempts() {
        use super::{idle_gaps, AT_ONCE_NS};
        let ms = 1_000_000;
        // Handshakes of 700 ms, then idle 100, 200, 400, 800 ms: SYN to SYN
        // would be 800 … 1500 ms (under 2×); the gaps grow 8×.
        let mut t = 0;
        let mut attempts = Vec::new();
        for idle in [0, 100, 200, 400, 800] {
            t += idle * ms;
            attempts.push((t, t + 700 * ms));
            t += 700 * ms;
        }
        let gaps = idle_gaps(&attempts);
        assert_eq!(gaps, vec![100 * ms, 200 * ms, 400 * ms, 800 * ms]);
        assert!(crate::cases::cd::judge_backoff(&gaps, false).is_ok());
        // A device that dials again at once (or before its last attempt's
        // last frame): every gap is "at once", and that does not grow.
        let at_once = idle_gaps(&[(0, 5), (5, 9), (9, 30), (31, 40), (40, 41)]);
        assert!(at_once.iter().all(|g| *g == AT_ONCE_NS));
        assert!(crate::cases::cd::judge_backoff(&at_once, false).is_err());
    }

    use super::*;

    #[test]
    fn the_busiest_minute_after_the_first_is_counted() {
        // Reference-like backoff: nothing after the first minute exceeds 2.
        let backoff = [700, 2_100, 5_000, 11_000, 24_000, 50_000, 98_000, 170_000];
        assert_eq!(busiest_minute(&backoff).map(|b| b.1), Some(1));
        assert_eq!(per_minute(&backoff), vec![6, 1, 1]);
        // A storm in the first minute alone is allowed.
        let early: Vec<u64> = (0..50).map(|i| i * 1_000).collect();
        assert_eq!(busiest_minute(&early), None);
        // Seven in a minute-long window straddling minutes 2 and 3 is not.
        let seven = [61_000, 100_000, 110_000, 115_000, 119_000, 120_000, 120_500];
        assert_eq!(busiest_minute(&seven), Some((61_000, 7)));
        // Six in any minute-long window is within the bound.
        let six = [61_000, 100_000, 110_000, 115_000, 119_000, 121_000, 150_000];
        assert_eq!(busiest_minute(&six).map(|b| b.1), Some(6));
    }
}
