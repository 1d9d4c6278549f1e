//! Reconnect policy: bounded exponential backoff with "equal" jitter.
//!
//! After a failed connection attempt (or the end of a session) the shell asks
//! [`Backoff::next_delay_ms`] how long to wait before the next attempt,
//! passing a fresh random `u32`. The n-th consecutive delay (n = 0, 1, …) is
//!
//! ```text
//! ceiling(n) = min(cap, base · 2ⁿ)
//! delay(n)   = ceiling(n)/2 + uniform[0, ceiling(n)/2]     ("equal jitter")
//! ```
//!
//! With the defaults (base 1 s, cap 5 min) the delays are 0.5–1 s, 1–2 s,
//! 2–4 s, … and finally 150–300 s.
//!
//! # Why equal jitter (not full or decorrelated jitter)
//! Full jitter (`uniform[0, ceiling]`) and decorrelated jitter
//! (`uniform[base, 3·previous]`) both allow a run of arbitrarily short delays
//! late in an outage, so they cannot *guarantee* conformance case MT-12
//! ("≤ 6 attempts per minute after the first minute") — a device would fail
//! it with bad luck. Equal jitter keeps a floor of half the exponential
//! ceiling, so the bound holds for every random input: six consecutive
//! failures already take at least 0.5+1+2+4+8+16 = 31.5 s, and from then on
//! every delay is ≥ 32 s. It also makes CD-11 observable without statistics:
//! until the cap is reached, delay n+1 is never shorter than delay n (its
//! floor is the previous ceiling), while each delay still varies by up to 50 %, which is what
//! spreads a fleet reconnecting after a hub outage.
//!
//! # Reset
//! The exponent resets only after a session that lasted at least
//! [`BackoffConfig::stable_session_ms`] (default 60 s). A hub that accepts
//! the connection and drops it at once (e.g. a revoked certificate refused
//! after CONNECT) therefore keeps the device backing off instead of
//! hammering the hub.
//!
//! # Fault `tight-reconnect`
//! With [`Fault::TightReconnect`] every delay is a fixed 100 ms: no growth,
//! no jitter, no floor. MT-12 and CD-11 must catch it.
//!
//! # Fault `retake-identity`
//! With [`Fault::RetakeIdentity`] the delay after a session that reached the
//! hub and then ended is 0 — the device dials again at once, every time —
//! and the exponent does not grow for it. Two units sharing an identity
//! then take it from each other in a tight loop (CD-20 must catch it);
//! failed attempts still back off.

use crate::faults::{Fault, FaultSet};

/// Fixed delay of the `tight-reconnect` fault.
pub const TIGHT_RECONNECT_MS: u64 = 100;

/// Tunables of the policy; [`Default`] is what the reference device uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Ceiling of the first delay (the first delay is ½–1 of it), ms. Must be ≥ 2.
    pub base_ms: u64,
    /// Largest ceiling, ms (delays then lie in ½·cap ..= cap).
    pub cap_ms: u64,
    /// A session that lasted at least this long resets the exponent, ms.
    pub stable_session_ms: u64,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            base_ms: 1_000,
            cap_ms: 300_000,
            stable_session_ms: 60_000,
        }
    }
}

/// The reconnect policy of one connection (MQTT to the hub).
///
/// Feed it the session lifecycle ([`Backoff::session_established`],
/// [`Backoff::session_ended`]) and ask [`Backoff::next_delay_ms`] before
/// every reconnect attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    tight: bool,
    /// Fault `retake-identity`: reconnect at once after a session ended.
    retake: bool,
    /// A session just ended and `retake` is on: the next delay is 0.
    retake_now: bool,
    /// Consecutive delays handed out since the last reset.
    failures: u32,
    /// When the current session was established, if one is up.
    session_since_ms: Option<u64>,
}

impl Backoff {
    /// A policy with no failures yet. `faults` is only consulted for
    /// [`Fault::TightReconnect`].
    pub fn new(config: BackoffConfig, faults: FaultSet) -> Backoff {
        Backoff {
            config,
            tight: faults.has(Fault::TightReconnect),
            retake: faults.has(Fault::RetakeIdentity),
            retake_now: false,
            failures: 0,
            session_since_ms: None,
        }
    }

    /// How long to wait, in ms, before the next connection attempt. Call it
    /// once per attempt, after a failed attempt or after a session ended.
    /// `random` is a fresh uniformly random value from the shell.
    pub fn next_delay_ms(&mut self, random: u32) -> u64 {
        if self.tight {
            return TIGHT_RECONNECT_MS;
        }
        if core::mem::take(&mut self.retake_now) {
            return 0;
        }
        let ceiling = self.ceiling_ms(self.failures);
        // Saturate: past the cap the exponent no longer matters, and a
        // u32 counter must not wrap back to short delays after years offline.
        self.failures = self.failures.saturating_add(1);
        let floor = ceiling / 2;
        let span = ceiling - floor + 1;
        // Multiply-shift maps random onto 0..span without modulo bias worth
        // caring about and without division; u128 so no span can overflow.
        floor + ((u128::from(random) * u128::from(span)) >> 32) as u64
    }

    /// The exponential ceiling of the n-th delay, before jitter.
    fn ceiling_ms(&self, n: u32) -> u64 {
        let base = self.config.base_ms.max(2);
        let factor = 1u64.checked_shl(n).unwrap_or(u64::MAX);
        base.saturating_mul(factor)
            .min(self.config.cap_ms.max(base))
    }

    /// The connection reached a hub session (CONNACK accepted) at `now_ms`.
    pub fn session_established(&mut self, now_ms: u64) {
        self.session_since_ms = Some(now_ms);
    }

    /// The session (if any) ended at `now_ms`. A session that lasted at
    /// least `stable_session_ms` resets the exponent, so the next delay is
    /// short again; a shorter one does not.
    pub fn session_ended(&mut self, now_ms: u64) {
        if let Some(since) = self.session_since_ms.take() {
            if now_ms.saturating_sub(since) >= self.config.stable_session_ms {
                self.failures = 0;
            }
            self.retake_now = self.retake;
        }
    }

    /// Consecutive delays handed out since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Forget all failures (e.g. the operator changed the hub address).
    pub fn reset(&mut self) {
        self.failures = 0;
        self.session_since_ms = None;
        self.retake_now = false;
    }
}

#[cfg(test)]
mod tests;
