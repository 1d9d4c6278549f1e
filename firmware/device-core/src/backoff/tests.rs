use alloc::vec::Vec;

use super::*;

/// xorshift32: a deterministic stand-in for the shell's random source.
struct Rng(u32);

impl Rng {
    fn next(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

fn policy() -> Backoff {
    Backoff::new(BackoffConfig::default(), FaultSet::NONE)
}

/// Ceilings of the default policy, written out rather than computed, so a
/// wrong formula in the code cannot agree with itself.
const CEILINGS: [u64; 12] = [
    1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000, 300_000,
];

#[test]
fn every_delay_lies_between_half_the_ceiling_and_the_ceiling() {
    let mut rng = Rng(0x1234_5678);
    let mut randoms: Vec<u32> = (0..2_000).map(|_| rng.next()).collect();
    randoms.extend([0, 1, u32::MAX, u32::MAX - 1, 1 << 31]);
    for &r in &randoms {
        let mut b = policy();
        for (n, &ceiling) in CEILINGS.iter().enumerate() {
            let d = b.next_delay_ms(r);
            assert!(
                d >= ceiling / 2 && d <= ceiling,
                "delay {n} = {d} for random {r:#x}, ceiling {ceiling}"
            );
        }
    }
}

#[test]
fn extremes_of_the_random_input_reach_both_ends_of_the_interval() {
    let (mut lo, mut hi) = (policy(), policy());
    for &ceiling in &CEILINGS {
        assert_eq!(lo.next_delay_ms(0), ceiling / 2);
        // u32::MAX maps to the top of the interval (within the 1 ms the
        // multiply-shift can lose).
        assert!(hi.next_delay_ms(u32::MAX) >= ceiling - 1);
    }
}

#[test]
fn delays_grow_exponentially_and_never_shrink_whatever_the_jitter() {
    let mut rng = Rng(99);
    for _ in 0..200 {
        let mut b = policy();
        let delays: Vec<u64> = (0..12).map(|_| b.next_delay_ms(rng.next())).collect();
        // Below the cap each floor is the previous ceiling (at the cap the
        // delays jitter within 150–300 s).
        for w in delays[..9].windows(2) {
            assert!(w[1] >= w[0], "{delays:?}");
        }
        // Exponential: the 8th delay is at least 64× the first's ceiling.
        assert!(delays[7] >= 64 * 1_000, "{delays:?}");
        assert!(
            delays[9..].iter().all(|d| (150_000..=300_000).contains(d)),
            "{delays:?}"
        );
    }
}

#[test]
fn the_jitter_actually_varies_the_delay() {
    // CD-11 wants jitter: for the same attempt number, different random
    // inputs give different delays.
    let mut rng = Rng(7);
    let mut seen: Vec<u64> = (0..50)
        .map(|_| {
            let mut b = policy();
            for _ in 0..4 {
                b.next_delay_ms(0);
            }
            b.next_delay_ms(rng.next())
        })
        .collect();
    seen.sort_unstable();
    seen.dedup();
    assert!(seen.len() > 40, "{seen:?}");
}

#[test]
fn the_cap_holds_after_a_very_long_outage() {
    let mut b = policy();
    let mut rng = Rng(5);
    for _ in 0..10_000 {
        let d = b.next_delay_ms(rng.next());
        assert!(d <= 300_000);
    }
    assert!(b.next_delay_ms(0) == 150_000);
    assert_eq!(b.failures(), 10_001);
}

#[test]
fn a_long_session_resets_the_exponent_and_a_short_one_does_not() {
    let mut b = policy();
    for _ in 0..8 {
        b.next_delay_ms(0);
    }
    // A session dropped after 59 s: still backing off.
    b.session_established(1_000_000);
    b.session_ended(1_059_999);
    assert_eq!(b.next_delay_ms(0), 128_000);
    // A session of a full minute: back to the first interval.
    b.session_established(2_000_000);
    b.session_ended(2_060_000);
    assert_eq!(b.failures(), 0);
    assert_eq!(b.next_delay_ms(0), 500);
    // session_ended without a session does nothing.
    b.session_ended(9_000_000);
    assert_eq!(b.failures(), 1);
    b.reset();
    assert_eq!(b.failures(), 0);
}

/// Simulates `hours` of an unreachable (or refusing) hub and returns the
/// times of every connection attempt. Each attempt takes `attempt_ms(rng)`
/// to fail; with `flap`, every third attempt gets a session that the hub
/// drops after 2 s (the revoked-certificate pattern).
fn simulate(
    b: &mut Backoff,
    seed: u32,
    hours: u64,
    flap: bool,
    worst_case_random: bool,
) -> Vec<u64> {
    let mut rng = Rng(seed);
    let end = hours * 3_600_000;
    let mut t = 0;
    let mut attempts = Vec::new();
    while t < end {
        attempts.push(t);
        let failure_ms = u64::from(rng.next() % 5_000);
        if flap && attempts.len() % 3 == 0 {
            b.session_established(t + failure_ms);
            t += failure_ms + 2_000;
            b.session_ended(t);
        } else {
            t += failure_ms;
        }
        let random = if worst_case_random { 0 } else { rng.next() };
        t += b.next_delay_ms(random);
    }
    attempts
}

/// The largest number of attempts in any 60 s window that starts at least a
/// minute after the first failure (MT-12's measure).
fn max_per_minute_after_first_minute(attempts: &[u64]) -> usize {
    let start = attempts[0] + 60_000;
    attempts
        .iter()
        .enumerate()
        .filter(|(_, &t)| t >= start)
        .map(|(i, &t)| {
            attempts[i..]
                .iter()
                .take_while(|&&u| u < t + 60_000)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn at_most_six_attempts_per_minute_after_the_first_minute_over_hours() {
    for seed in [1, 2, 3, 0xdead_beef, 0x0bad_cafe] {
        for (flap, worst) in [(false, false), (true, false), (false, true), (true, true)] {
            let mut b = policy();
            let attempts = simulate(&mut b, seed, 6, flap, worst);
            let max = max_per_minute_after_first_minute(&attempts);
            assert!(
                max <= 6,
                "seed {seed} flap {flap} worst {worst}: {max} attempts in a minute"
            );
            // And it keeps trying: the device is not silent for hours.
            assert!(
                attempts.len() > 6 * 12,
                "only {} attempts in 6 h",
                attempts.len()
            );
        }
    }
}

#[test]
fn tight_reconnect_fault_breaks_the_bound_and_has_no_jitter() {
    let mut b = Backoff::new(
        BackoffConfig::default(),
        FaultSet::NONE.with(Fault::TightReconnect),
    );
    let mut rng = Rng(3);
    for _ in 0..100 {
        assert_eq!(b.next_delay_ms(rng.next()), TIGHT_RECONNECT_MS);
    }
    let attempts = simulate(&mut b, 11, 1, false, false);
    assert!(max_per_minute_after_first_minute(&attempts) > 6);
    // Other faults leave the policy alone.
    let mut other = Backoff::new(BackoffConfig::default(), FaultSet::NONE.with(Fault::NoSni));
    let attempts = simulate(&mut other, 11, 1, false, false);
    assert!(max_per_minute_after_first_minute(&attempts) <= 6);
}

#[test]
fn retake_identity_fault_reconnects_at_once_after_every_session() {
    let mut good = Backoff::new(BackoffConfig::default(), FaultSet::NONE);
    let mut bad = Backoff::new(
        BackoffConfig::default(),
        FaultSet::NONE.with(Fault::RetakeIdentity),
    );
    // Evicted again and again, each session short: the policy backs off,
    // the fault dials again at once every time.
    let (mut t, mut good_delays, mut bad_delays) = (0u64, Vec::new(), Vec::new());
    for _ in 0..6 {
        good.session_established(t);
        bad.session_established(t);
        t += 1_000;
        good.session_ended(t);
        bad.session_ended(t);
        good_delays.push(good.next_delay_ms(u32::MAX / 2));
        bad_delays.push(bad.next_delay_ms(u32::MAX / 2));
    }
    assert!(
        good_delays.windows(2).all(|w| w[1] > w[0]),
        "{good_delays:?}"
    );
    assert_eq!(bad_delays, [0; 6]);
    // Failed attempts (no session) still back off under the fault.
    let failed: Vec<u64> = (0..4).map(|_| bad.next_delay_ms(u32::MAX / 2)).collect();
    assert!(
        failed.windows(2).all(|w| w[1] > w[0]) && failed[0] > 0,
        "{failed:?}"
    );
}

#[test]
fn degenerate_configs_do_not_panic_or_return_zero_forever() {
    let mut b = Backoff::new(
        BackoffConfig {
            base_ms: 0,
            cap_ms: 0,
            stable_session_ms: 0,
        },
        FaultSet::NONE,
    );
    for _ in 0..100 {
        assert!(b.next_delay_ms(u32::MAX) >= 1);
    }
    let mut huge = Backoff::new(
        BackoffConfig {
            base_ms: u64::MAX / 2,
            cap_ms: u64::MAX,
            stable_session_ms: 0,
        },
        FaultSet::NONE,
    );
    for _ in 0..100 {
        huge.next_delay_ms(u32::MAX);
    }
}
