//! A monotonic millisecond clock from the CMSDK APB dual timer (timer 1 of
//! the mps2-an385, at 0x4000_2000): a free-running 32-bit down-counter on the
//! 25 MHz APB clock divided by 256, read on demand and extended to 64 bits.
//!
//! Read, not counted: a SysTick interrupt per millisecond loses ticks when
//! QEMU runs late (it coalesces missed periods into one interrupt), and the
//! bring-up measured 10 s of SysTick time over 13.6 s of wall time on a busy
//! host. A counter read against QEMU's virtual clock does not drift.

use core::ptr::{read_volatile, write_volatile};

const TIMER1_BASE: usize = 0x4000_2000;
const LOAD: usize = 0x00;
const VALUE: usize = 0x04;
const CONTROL: usize = 0x08;

const CONTROL_ENABLE: u32 = 1 << 7;
/// Prescale field (bits 3:2) = 0b10: divide by 256.
const CONTROL_PRESCALE_256: u32 = 0b10 << 2;
const CONTROL_32BIT: u32 = 1 << 1;

/// 25 MHz / 256 = 97 656.25 ticks a second: 3125 ticks are 32 ms.
const TICKS_PER_32_MS: u64 = 3125;

/// The clock; `now_ms` must be called at least once per counter wrap
/// (2^32 ticks ≈ 12.2 hours), which the polling main loop does.
pub struct Clock {
    last: u32,
    ticks: u64,
}

impl Clock {
    fn write(offset: usize, value: u32) {
        // SAFETY: a register of the dual timer's timer 1 (mps2-an385 map);
        // only this clock uses that timer.
        unsafe { write_volatile((TIMER1_BASE + offset) as *mut u32, value) }
    }

    fn value() -> u32 {
        // SAFETY: as in `write`; reading VALUE has no side effect.
        unsafe { read_volatile((TIMER1_BASE + VALUE) as *const u32) }
    }

    /// Starts timer 1 free-running from 0xffff_ffff.
    pub fn start() -> Self {
        Self::write(CONTROL, 0);
        Self::write(LOAD, u32::MAX);
        Self::write(
            CONTROL,
            CONTROL_ENABLE | CONTROL_PRESCALE_256 | CONTROL_32BIT,
        );
        Clock {
            last: Self::value(),
            ticks: 0,
        }
    }

    /// Milliseconds since `start`.
    pub fn now_ms(&mut self) -> u64 {
        let value = Self::value();
        // A down-counter: elapsed ticks are last - value, modulo 2^32.
        self.ticks += u64::from(self.last.wrapping_sub(value));
        self.last = value;
        self.ticks * 32 / TICKS_PER_32_MS
    }
}
