//! The hub's data directory: its exclusive lock (one hub per directory) and
//! its owner-only modes (the directory 0700, private keys 0600).

use std::path::Path;
use std::sync::{Arc, Mutex};

use super::HubError;

/// The lock file in the data directory. A live hub holds an exclusive
/// advisory lock (flock) on it, so a second hub on the same directory is
/// refused before it opens the store or the journal. It holds the holder's
/// pid, for the refusal's message.
const LOCK_FILE: &str = "hub.lock";

/// The held data-directory lock: released by [`HubFixture::shutdown`] (so a
/// hub can be started again on the directory at once) or when the process
/// exits, however it exits (the kernel drops flocks with the last descriptor).
#[derive(Clone)]
pub(super) struct DirLock(Arc<Mutex<Option<std::fs::File>>>);

impl DirLock {
    /// Takes the lock on `dir` (which must exist), without waiting.
    pub(super) fn acquire(dir: &Path) -> Result<Self, HubError> {
        use std::io::{Read, Seek, Write};
        use std::os::unix::fs::OpenOptionsExt;
        let path = dir.join(LOCK_FILE);
        let io = |e| HubError::io(format!("locking {}", path.display()), e);
        // Not truncated on open: a refused hub must not wipe the holder's pid.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        use rustix::fs::{flock, FlockOperation};
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(HubError::DataDirInUse {
                    dir: dir.to_owned(),
                    holder: pid.trim().parse().ok(),
                });
            }
            Err(e) => return Err(io(e.into())),
        }
        file.set_len(0)
            .and_then(|_| file.rewind())
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .map_err(io)?;
        Ok(Self(Arc::new(Mutex::new(Some(file)))))
    }

    pub(super) fn release(&self) {
        if let Some(file) = self.0.lock().expect("dir lock").take() {
            // Unlocked explicitly, not just closed: a child forked by another
            // thread (before its exec closes our descriptors) shares the open
            // file description, and closing ours alone would leave the lock
            // held until that child execs — a restart right after shutdown
            // (CD-08 in a busy suite) was refused.
            let _ = rustix::fs::flock(&file, rustix::fs::FlockOperation::Unlock);
        }
    }
}

/// Creates the data directory (and its `firmware/`) owner-only, 0700: it holds
/// the CA's private key and the store. An existing directory is set to 0700.
/// Parent directories are made as `mkdir -p` would.
pub(super) fn create_private_dir(dir: &Path) -> Result<(), HubError> {
    use std::os::unix::fs::DirBuilderExt;
    let io = |e| HubError::io(format!("creating {}", dir.display()), e);
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Err(e) if !(e.kind() == std::io::ErrorKind::AlreadyExists && dir.is_dir()) => Err(io(e)),
        _ => Ok(()),
    }
}

/// Sets an existing directory to 0700 (a directory made before this rule, or
/// by hand).
pub(super) fn make_private(dir: &Path) -> Result<(), HubError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e| HubError::io(format!("setting the mode of {}", dir.display()), e);
    let mode = std::fs::metadata(dir).map_err(io)?.permissions().mode();
    if mode & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
    }
    Ok(())
}

/// Makes sure the key log file (TLS secrets) is owner-only, 0600: created so
/// if it does not exist, set so if it is a regular file (not a FIFO or a
/// terminal someone pointed it at).
pub(super) fn private_key_log(path: &Path) -> Result<(), HubError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |e| HubError::io(format!("opening key log {}", path.display()), e);
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_file() && meta.permissions().mode() & 0o777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    Ok(())
}
