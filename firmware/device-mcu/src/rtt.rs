//! RTT (SEGGER Real-Time Transfer): up channel 0, "Terminal", carries the
//! console's lines too, for a debug probe — or the bench reading guest
//! memory through QEMU's gdbstub — to read from the control block in RAM
//! (`rtt-target`, its critical section from cortex-m's single-core impl).
//!
//! `NoBlockSkip`: a write that does not fit the ring buffer is dropped
//! whole, so a device nobody reads never stalls on it.

use rtt_target::ChannelMode::NoBlockSkip;

/// Up channel 0's ring buffer. The boot and connection lines (about 2 KB
/// until the first MQTT session) fit before a host that attaches late reads them.
const TERMINAL_BYTES: usize = 4096;

/// Sets up the control block and channel 0; call once, first thing in `main`.
pub fn init() {
    rtt_target::rtt_init_print!(NoBlockSkip, TERMINAL_BYTES);
}

/// Writes `s` to channel 0 as it is (no `\r` added); before `init`, nothing.
pub fn write(s: &str) {
    rtt_target::rprint!(s);
}
