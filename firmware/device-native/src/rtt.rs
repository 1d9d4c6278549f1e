//! Device logs through `rtt-target`, exactly as firmware on a board: the RTT
//! control block (`_SEGGER_RTT`, id "SEGGER RTT") and its up-channel ring
//! buffer live in this process's memory, where the bench finds and reads them
//! through `/proc/<pid>/mem` the way a debug probe reads target RAM. Every
//! line also goes to stderr (the board's console UART).
//!
//! Channel 0 "Terminal": 64 KiB, `NoBlockSkip` (a device never stalls on
//! its logs; if nobody reads, lines are dropped, as on a board).

use std::sync::Once;

static INIT: Once = Once::new();

/// Sets up the RTT control block; later calls do nothing.
pub fn init() {
    INIT.call_once(|| {
        rtt_target::rtt_init_print!(rtt_target::ChannelMode::NoBlockSkip, 65536);
    });
}

/// Writes one log line to RTT channel 0 and to the console.
pub fn log_line(line: &str) {
    init();
    rtt_target::rprintln!("{}", line);
    eprintln!("{line}");
}

/// `device_log!("fmt", args…)`: one line to RTT and the console.
#[macro_export]
macro_rules! device_log {
    ($($arg:tt)*) => { $crate::rtt::log_line(&format!($($arg)*)) };
}
