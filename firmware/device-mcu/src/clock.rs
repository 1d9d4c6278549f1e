//! A millisecond clock from SysTick on the core clock (25 MHz on mps2-an385).

use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::{syst::SystClkSource, SYST};
use cortex_m_rt::exception;

const CORE_HZ: u32 = 25_000_000;

/// Milliseconds since `start`; wraps after 49 days, which smoltcp's i64
/// timestamps never see on a bench run.
static MILLIS: AtomicU32 = AtomicU32::new(0);

/// Starts SysTick at 1 kHz with its interrupt.
pub fn start(mut syst: SYST) {
    syst.set_clock_source(SystClkSource::Core);
    syst.set_reload(CORE_HZ / 1000 - 1);
    syst.clear_current();
    syst.enable_interrupt();
    syst.enable_counter();
}

/// Milliseconds since the clock started.
pub fn now_ms() -> u32 {
    MILLIS.load(Ordering::Relaxed)
}

#[exception]
fn SysTick() {
    MILLIS.fetch_add(1, Ordering::Relaxed);
}
