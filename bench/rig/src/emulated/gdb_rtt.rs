//! RTT of a board whose DUT file has `[emulated] rtt = { gdb, ram }`: from
//! power-on to power-off a poller reads it through the board's gdbstub
//! ([`crate::rtt::gdb`]) into the board's log as `LogSource::Rtt` lines.
//! A reader failure (QEMU gone, a broken answer) is the bench's: a `rig:`
//! note in the log, once per distinct failure, and the reader starts over
//! at the next poll — never a line the device wrote.

use std::time::Duration;

use super::console::ConsoleLog;
use crate::dut::{Placeholders, RttGdb};
use crate::rtt::gdb::GdbRtt;
use crate::rtt::poll::RttPoller;
use crate::RigError;

/// How often a QEMU board's RTT is read. Each read halts the VM for one
/// round of socket requests (interrupt, a few `m`, one `M`, `c`): 100 ms
/// keeps that far below a percent of the device's time (measured in
/// firmware/device-mcu/README.md) and the 4 KB channel from filling at the
/// image's output rate.
pub(crate) const GDB_RTT_POLL: Duration = Duration::from_millis(100);

/// The longest path a Unix socket address holds (`sun_path`, less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// The board's gdbstub socket for this power-on; a path no Unix socket can
/// have is the bench's error (a shorter run directory fixes it), found
/// before the board is started.
pub(crate) fn socket(rtt: &RttGdb, placeholders: &Placeholders) -> Result<String, RigError> {
    let socket = placeholders.expand(&rtt.gdb);
    if socket.len() > MAX_SOCKET_PATH {
        return Err(RigError::Setup(format!(
            "emulated.rtt gdb {socket}: {} bytes, longer than a Unix socket path may be ({MAX_SOCKET_PATH}); use a shorter run directory",
            socket.len()
        )));
    }
    Ok(socket)
}

/// Starts reading the board's RTT from its gdbstub at `socket` into
/// `console` (call after power-on; drop the poller before the power cut,
/// so it drains the last lines).
pub(crate) fn start(
    rtt: &RttGdb,
    socket: String,
    console: ConsoleLog,
) -> Result<RttPoller, RigError> {
    let mut reader = GdbRtt::new(socket.clone().into(), rtt.ram);
    let mut last_failure: Option<String> = None;
    RttPoller::start(GDB_RTT_POLL, move |lines| {
        match lines.read(|| reader.read_rtt()) {
            Ok(l) => {
                if !l.is_empty() {
                    last_failure = None;
                }
                console.push_other(l);
            }
            Err(e) => {
                let text = format!("rig: reading RTT through {socket}: {e}");
                if last_failure.as_ref() != Some(&text) {
                    console.note(text.clone());
                    last_failure = Some(text);
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::dut::DutFile;
    use crate::emulated::rig::EmulatedRig;
    use crate::Capability;

    const TAP_BOARD: &str = r#"
name = "a QEMU board"
implements = []
[emulated]
command = ["qemu-board", "{state}"]
network = "tap"
"#;

    #[test]
    fn the_rtt_key_gives_the_rtt_capability() {
        let parse = |t: &str| DutFile::parse(t, Path::new("b/dut.toml")).unwrap();
        let without = parse(TAP_BOARD);
        assert!(!EmulatedRig::capabilities_for(&without).has(Capability::Rtt));
        let with = parse(&TAP_BOARD.replace(
            "network = \"tap\"",
            "network = \"tap\"\nrtt = { gdb = \"{state}/gdb.sock\", ram = [0x2000_0000, 0x1_0000] }",
        ));
        assert!(EmulatedRig::capabilities_for(&with).has(Capability::Rtt));
    }

    #[test]
    fn a_socket_path_too_long_is_the_benchs_error() {
        let rtt = RttGdb {
            gdb: "{state}/gdb.sock".into(),
            ram: crate::dut::Ram {
                start: 0x2000_0000,
                size: 0x1_0000,
            },
        };
        let at = |state: &str| Placeholders {
            provisioning: "p".into(),
            state: state.into(),
            device_id: "d".into(),
            hub_host: "h".into(),
            sacbench_bin: "b".into(),
            dut_dir: "u".into(),
            tap: None,
        };
        assert_eq!(
            socket(&rtt, &at("/run/x/state")).unwrap(),
            "/run/x/state/gdb.sock"
        );
        let long = format!("/{}", "r".repeat(100));
        let e = socket(&rtt, &at(&long)).unwrap_err();
        assert!(matches!(e, RigError::Setup(_)), "{e:?}");
        assert!(e.to_string().contains("shorter run directory"), "{e}");
    }
}
