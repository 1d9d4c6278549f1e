//! The C2D message ids whose commands a leaf has had applied, kept on disk
//! so that a redelivery after a gateway restart (the write was done, the
//! PUBACK was not) is recognised and not written twice — the same
//! "persist before acknowledging" rule as any device's.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;

/// Ids remembered per leaf: far more than the hub's queue depth (50).
pub const REMEMBERED: usize = 256;

/// A leaf's applied-command ids: the newest in memory, all appended to its file.
pub struct AppliedCommands {
    path: PathBuf,
    file: File,
    recent: VecDeque<String>,
    lines: usize,
}

impl AppliedCommands {
    /// Opens (or creates) the leaf's file and loads the newest ids.
    pub fn open(path: PathBuf) -> io::Result<AppliedCommands> {
        let mut recent = VecDeque::new();
        let mut lines = 0;
        if let Ok(f) = File::open(&path) {
            for l in BufReader::new(f).lines() {
                let l = l?;
                // A torn last line (power cut mid-append) is not an id.
                if l.is_empty() || l.len() > 128 {
                    continue;
                }
                lines += 1;
                recent.push_back(l);
                if recent.len() > REMEMBERED {
                    recent.pop_front();
                }
            }
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(AppliedCommands {
            path,
            file,
            recent,
            lines,
        })
    }

    /// Whether `mid` was applied (among the newest [`REMEMBERED`]).
    pub fn contains(&self, mid: &str) -> bool {
        self.recent.iter().any(|m| m == mid)
    }

    /// Records `mid` durably (written and synced) before it returns.
    pub fn record(&mut self, mid: &str) -> io::Result<()> {
        writeln!(self.file, "{mid}")?;
        self.file.sync_data()?;
        self.recent.push_back(mid.to_owned());
        if self.recent.len() > REMEMBERED {
            self.recent.pop_front();
        }
        self.lines += 1;
        if self.lines > 4 * REMEMBERED {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the file with the remembered ids only (atomically: rename).
    fn compact(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        let mut f = File::create(&tmp)?;
        for m in &self.recent {
            writeln!(f, "{m}")?;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.lines = self.recent.len();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leaf.applied");
        let mut a = AppliedCommands::open(path.clone()).unwrap();
        for i in 0..(5 * REMEMBERED) {
            a.record(&format!("mid-{i}")).unwrap();
        }
        drop(a);
        let b = AppliedCommands::open(path.clone()).unwrap();
        let last = 5 * REMEMBERED - 1;
        assert!(b.contains(&format!("mid-{last}")));
        assert!(b.contains(&format!("mid-{}", last + 1 - REMEMBERED)));
        assert!(!b.contains("mid-0"), "bounded");
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(lines <= 4 * REMEMBERED, "compacted: {lines} lines");
    }

    #[test]
    fn a_torn_last_line_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("leaf.applied");
        std::fs::write(&path, format!("mid-1\n{}", "x".repeat(200))).unwrap();
        let a = AppliedCommands::open(path).unwrap();
        assert!(a.contains("mid-1"));
        assert_eq!(a.recent.len(), 1);
    }
}
