//! A connected pair of pseudo-terminals, as a serial line between two
//! programs (a console, a Modbus RTU link) that each open a device path.
//!
//! Two ptys (`openpty`, raw mode) whose masters a relay thread joins: bytes
//! written to the slave at `a` come out of the slave at `b` and back. The
//! pair keeps its own slave descriptors open, so a program closing and
//! reopening its end (as serial programs do) never makes the master report a
//! hang-up. Dropping the pair stops the relay and removes the links.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::pty::openpty;
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};

use crate::RigError;

/// A serial line between two device paths; relayed until dropped.
pub struct PtyPair {
    /// One end: a symlink to the first pty's slave, for one program to open.
    pub a: PathBuf,
    /// The other end: a symlink to the second pty's slave.
    pub b: PathBuf,
    /// Dropping it wakes the relay, which then ends.
    stop: Option<OwnedFd>,
    relay: Option<JoinHandle<()>>,
    /// Held so the masters never see a hang-up between a program's opens.
    _slaves: [OwnedFd; 2],
}

fn setup(what: &str, e: impl std::fmt::Display) -> RigError {
    RigError::Setup(format!("pty pair: {what}: {e}"))
}

/// One raw pty: its master, its slave and the slave's path.
fn raw_pty() -> Result<(OwnedFd, OwnedFd, PathBuf), RigError> {
    let pty = openpty(None, None).map_err(|e| setup("openpty", e))?;
    let mut mode = tcgetattr(&pty.slave).map_err(|e| setup("tcgetattr", e))?;
    // A serial line carries bytes as they are: no echo, no line discipline.
    cfmakeraw(&mut mode);
    tcsetattr(&pty.slave, SetArg::TCSANOW, &mode).map_err(|e| setup("tcsetattr", e))?;
    let path = nix::unistd::ttyname(&pty.slave).map_err(|e| setup("ttyname", e))?;
    Ok((pty.master, pty.slave, path))
}

fn link(target: &Path, at: &Path) -> Result<(), RigError> {
    // Replaces a link left by an earlier pair (socat did the same).
    if at.symlink_metadata().is_ok() {
        std::fs::remove_file(at).map_err(|e| setup(&format!("removing {}", at.display()), e))?;
    }
    std::os::unix::fs::symlink(target, at)
        .map_err(|e| setup(&format!("linking {}", at.display()), e))
}

impl PtyPair {
    /// Makes the pair with its ends linked at `a` and `b`; the line is live
    /// when this returns.
    pub fn link(a: &Path, b: &Path) -> Result<PtyPair, RigError> {
        let (master_a, slave_a, path_a) = raw_pty()?;
        let (master_b, slave_b, path_b) = raw_pty()?;
        link(&path_a, a)?;
        link(&path_b, b)?;
        let (stop_rx, stop_tx) = nix::unistd::pipe().map_err(|e| setup("pipe", e))?;
        let relay = std::thread::Builder::new()
            .name("pty-relay".into())
            .spawn(move || relay(File::from(master_a), File::from(master_b), stop_rx))
            .map_err(|e| setup("starting the relay", e))?;
        Ok(PtyPair {
            a: a.to_owned(),
            b: b.to_owned(),
            stop: Some(stop_tx),
            relay: Some(relay),
            _slaves: [slave_a, slave_b],
        })
    }
}

/// Copies what each master reads to the other until `stop` hangs up.
fn relay(mut a: File, mut b: File, stop: OwnedFd) {
    let mut buf = [0u8; 4096];
    loop {
        let (ready_a, ready_b) = {
            let mut fds = [
                PollFd::new(a.as_fd(), PollFlags::POLLIN),
                PollFd::new(b.as_fd(), PollFlags::POLLIN),
                PollFd::new(stop.as_fd(), PollFlags::POLLIN),
            ];
            match poll(&mut fds, PollTimeout::NONE) {
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => return,
            }
            let any = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            if any(&fds[2]) {
                return;
            }
            (any(&fds[0]), any(&fds[1]))
        };
        if ready_a && !pass(&mut a, &mut b, &mut buf) {
            return;
        }
        if ready_b && !pass(&mut b, &mut a, &mut buf) {
            return;
        }
    }
}

/// Moves one read's worth of bytes; false when the line is gone.
fn pass(from: &mut File, to: &mut File, buf: &mut [u8]) -> bool {
    match from.read(buf) {
        Ok(0) => false,
        Ok(n) => to.write_all(&buf[..n]).is_ok(),
        Err(e) => e.kind() == std::io::ErrorKind::Interrupted,
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(relay) = self.relay.take() {
            let _ = relay.join();
        }
        for at in [&self.a, &self.b] {
            let _ = std::fs::remove_file(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;

    fn open(p: &Path) -> File {
        OpenOptions::new().read(true).write(true).open(p).unwrap()
    }

    #[test]
    fn bytes_cross_both_ways_raw_and_survive_reopening_an_end() {
        let dir = tempfile::tempdir().unwrap();
        let pair = PtyPair::link(&dir.path().join("a"), &dir.path().join("b")).unwrap();
        let (mut a, mut b) = (open(&pair.a), open(&pair.b));
        // Raw: a CR, a NUL and a ^C arrive as themselves, no echo comes back.
        let sent = [0x01u8, b'\r', 0x00, 0x03, 0xff, b'\n'];
        a.write_all(&sent).unwrap();
        let mut got = [0u8; 6];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got, sent);
        b.write_all(b"pong").unwrap();
        let mut got = [0u8; 4];
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"pong");
        // A program closes its end and opens it again: the line still works.
        drop(a);
        let mut a = open(&pair.a);
        b.write_all(b"again").unwrap();
        let mut got = [0u8; 5];
        a.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"again");
    }

    #[test]
    fn dropping_the_pair_removes_its_links() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "stale").unwrap();
        let pair = PtyPair::link(&a, &b).unwrap();
        assert!(std::fs::read_link(&a).unwrap().starts_with("/dev/pts"));
        drop(pair);
        assert!(a.symlink_metadata().is_err() && b.symlink_metadata().is_err());
    }
}
