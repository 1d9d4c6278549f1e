//! Ctrl-C and SIGTERM: the run stops starting cases, aborts the running
//! ones (their rigs are torn down as after any case: power off, the capture
//! and the journal saved), and writes the report of what ran, marked
//! interrupted. The rig sandbox passes the signal on to the run inside it.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

/// The signal that interrupted the run (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

fn wakeup() -> &'static tokio::sync::Notify {
    static N: OnceLock<tokio::sync::Notify> = OnceLock::new();
    N.get_or_init(tokio::sync::Notify::new)
}

/// Catch SIGINT and SIGTERM from now on.
pub fn install() {
    use signal_hook::consts::{SIGINT, SIGTERM};
    // Once: a labgrid run installs it before acquiring its place, and again with every run.
    static ONCE: std::sync::Once = std::sync::Once::new();
    let mut first = false;
    ONCE.call_once(|| first = true);
    if !first {
        return;
    }
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        for sig in signals.forever() {
            if SIGNAL.swap(sig, Ordering::SeqCst) == 0 {
                eprintln!(
                    "sacbench-suite: interrupted ({}): no new cases; aborting the running ones and writing the report",
                    name(sig)
                );
            }
            wakeup().notify_waiters();
        }
    });
}

fn name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The name of the signal that interrupted the run, if one did.
pub fn interrupted() -> Option<&'static str> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(name(sig)),
    }
}

/// Resolves once the run is interrupted.
pub async fn wait() -> &'static str {
    loop {
        let notified = wakeup().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(sig) = interrupted() {
            return sig;
        }
        notified.await;
    }
}
