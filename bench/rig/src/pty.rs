//! A connected pair of pseudo-terminals from `socat`, as a serial line
//! between two programs (a console, a Modbus RTU link); killed on drop.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::RigError;

pub struct PtyPair {
    child: Child,
    pub a: PathBuf,
    pub b: PathBuf,
}

impl PtyPair {
    /// Makes the pair with its ends linked at `a` and `b`; returns once
    /// socat says it relays (reading its report is the wait, no sleep).
    pub fn link(a: &Path, b: &Path) -> Result<PtyPair, RigError> {
        let mut child = Command::new("socat")
            .args(["-d", "-d"])
            .arg(format!("pty,raw,echo=0,link={}", a.display()))
            .arg(format!("pty,raw,echo=0,link={}", b.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                RigError::Setup(format!("socat (install the Debian package `socat`): {e}"))
            })?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let pair = PtyPair {
            child,
            a: a.to_owned(),
            b: b.to_owned(),
        };
        lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("starting data transfer loop"))
            .ok_or_else(|| RigError::Setup("socat never made the pty pair".into()))?;
        // Keep reading, so socat never blocks on a full stderr pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(pair)
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
