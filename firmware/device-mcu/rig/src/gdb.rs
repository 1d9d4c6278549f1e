//! `devmcu-board run --gdb PATH`: QEMU's gdbstub on a Unix socket at PATH
//! (`-chardev socket,…,server=on,wait=off -gdb chardev:gdb0`), through
//! which sacbench reads the image's RTT from guest RAM as a probe would
//! (the DUT file's `[emulated] rtt`). `wait=off`: the board boots at once,
//! whether a reader is there or not; QEMU replaces a stale socket file.

use std::ffi::OsString;
use std::path::Path;

use crate::Error;

/// The longest path a Unix socket address holds (`sun_path`, less its NUL).
const MAX_SOCKET_PATH: usize = 107;

/// QEMU's arguments for a gdbstub listening at `socket`; an error when the
/// path cannot be a Unix socket address or a QEMU option value.
pub fn qemu_gdb_args(socket: &Path) -> Result<Vec<OsString>, Error> {
    let text = socket
        .to_str()
        .ok_or_else(|| format!("--gdb {socket:?}: not UTF-8"))?;
    if text.len() > MAX_SOCKET_PATH {
        return Err(format!(
            "--gdb {text}: {} bytes, longer than a Unix socket path may be ({MAX_SOCKET_PATH})",
            text.len()
        ));
    }
    if text.is_empty() || text.contains(',') {
        return Err(format!("--gdb {text:?}: empty or holds a ','"));
    }
    Ok([
        "-chardev".to_owned(),
        format!("socket,id=gdb0,path={text},server=on,wait=off"),
        "-gdb".to_owned(),
        "chardev:gdb0".to_owned(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect())
}
