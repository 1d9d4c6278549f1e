//! The board's clock: real time, or — when the bench asks for it in
//! `device.json`'s `clock` — real time running `scale` times as fast from
//! `origin_ms`. Everything the firmware reads as time comes from here, so the
//! scale applies consistently: the machine's `now` (certificate validity and
//! renewal, `rotateAfter`, backoff, keep-alive, heartbeat), the timers that
//! wake it, and the time rustls checks the hub's certificate against. No
//! check is skipped at any scale; they just see a faster clock.
//!
//! Transport guards (TCP connect and TLS handshake timeouts) stay on real
//! time: they protect real sockets, not device behaviour.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::pki_types::UnixTime;
use sacbench_provisioning::ClockScale;

static SCALE: OnceLock<ClockScale> = OnceLock::new();

/// Sets the board's clock scale, once, at power-on (before any time is read).
pub fn set_scale(scale: ClockScale) {
    let _ = SCALE.set(scale);
}

/// The scale in force (1 without one).
pub fn scale() -> u32 {
    SCALE.get().map_or(1, |s| s.scale.max(1))
}

/// Unix ms of the board's clock at real Unix ms `real_ms`.
pub fn scaled_ms(scale: Option<ClockScale>, real_ms: u64) -> u64 {
    match scale {
        Some(s) if real_ms > s.origin_ms => {
            s.origin_ms + (real_ms - s.origin_ms).saturating_mul(u64::from(s.scale.max(1)))
        }
        _ => real_ms,
    }
}

/// The board's wall clock, Unix ms.
pub fn now_ms() -> u64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    scaled_ms(SCALE.get().copied(), real)
}

/// The real time a span of `ms` board milliseconds takes (rounded up, so a
/// timer never fires before its board time).
pub fn real_duration(ms: u64) -> Duration {
    let s = u64::from(scale());
    Duration::from_micros(ms.saturating_mul(1000).div_ceil(s))
}

/// The board's clock as rustls reads it (certificate validity).
#[derive(Debug)]
pub struct BoardTime;

impl rustls::time_provider::TimeProvider for BoardTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_millis(now_ms())))
    }
}

/// The board's clock for a rustls configuration.
pub fn time_provider() -> Arc<dyn rustls::time_provider::TimeProvider> {
    Arc::new(BoardTime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_time_runs_scale_times_as_fast_from_the_origin() {
        let s = ClockScale {
            scale: 60,
            origin_ms: 1_000_000,
        };
        assert_eq!(scaled_ms(Some(s), 1_000_000), 1_000_000);
        assert_eq!(scaled_ms(Some(s), 1_001_000), 1_060_000);
        // Before the origin, and without a scale: real time.
        assert_eq!(scaled_ms(Some(s), 999_000), 999_000);
        assert_eq!(scaled_ms(None, 1_001_000), 1_001_000);
    }
}
