//! The bench's own note of the places it holds: one small file per
//! coordinator and place, written after acquiring and removed after
//! releasing. A bench killed in between leaves it behind, and the next run
//! on this host reads it to tell its own stale lock from anyone else's.

use std::path::{Path, PathBuf};

use super::place::Record;

/// Where the records live: `$XDG_STATE_HOME/sacbench/labgrid`, else
/// `~/.local/state/sacbench/labgrid`.
pub fn default_dir() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("sacbench").join("labgrid")
}

/// The record file of `place` on `coordinator`.
pub fn path(dir: &Path, coordinator: &str, place: &str) -> PathBuf {
    let safe = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    dir.join(format!("{}--{}.toml", safe(coordinator), safe(place)))
}

/// The record of `place` on `coordinator`, if one is there and readable.
pub fn read(dir: &Path, coordinator: &str, place: &str) -> Option<Record> {
    let text = std::fs::read_to_string(path(dir, coordinator, place)).ok()?;
    toml::from_str(&text).ok()
}

/// Write `record` (replacing any earlier one of its place).
pub fn write(dir: &Path, record: &Record) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let text = toml::to_string(record).map_err(std::io::Error::other)?;
    let file = path(dir, &record.coordinator, &record.place);
    let tmp = file.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, file)
}

/// Remove `record`'s file if it is still that record (a later run's is kept).
pub fn remove(dir: &Path, record: &Record) {
    if read(dir, &record.coordinator, &record.place).as_ref() == Some(record) {
        let _ = std::fs::remove_file(path(dir, &record.coordinator, &record.place));
    }
}

/// Whether process `pid` still runs (a zombie does not).
pub fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => {}
        Err(_) => return false,
    }
    // State is the field after the parenthesised command name.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_none_or(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_only_their_own_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let r = Record {
            coordinator: "127.0.0.1:20408".into(),
            place: "board/1".into(),
            user: "h/u".into(),
            pid: 42,
            started: 7,
            token: "T".into(),
        };
        write(dir.path(), &r).unwrap();
        assert_eq!(read(dir.path(), &r.coordinator, &r.place), Some(r.clone()));
        assert!(path(dir.path(), &r.coordinator, &r.place)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("127_0_0_1_20408--board_1"));
        let mut later = r.clone();
        later.pid = 43;
        write(dir.path(), &later).unwrap();
        remove(dir.path(), &r);
        assert_eq!(
            read(dir.path(), &r.coordinator, &r.place),
            Some(later.clone())
        );
        remove(dir.path(), &later);
        assert_eq!(read(dir.path(), &r.coordinator, &r.place), None);
    }

    #[test]
    fn a_reaped_process_is_dead_and_this_one_alive() {
        assert!(alive(std::process::id()));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid));
    }
}
