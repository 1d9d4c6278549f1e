//! Reads RTT from a running emulated device the way a debug probe reads it
//! from target RAM: find the SEGGER RTT control block in the process's
//! memory (`/proc/<pid>/maps` + `/proc/<pid>/mem`), then drain each
//! up-channel's ring buffer and write the read offset back, so the target's
//! `NoBlockSkip` channel frees the space.
//!
//! Layout (rtt-target's `#[repr(C)]` structs on a 64-bit host, where the
//! target's pointer-sized fields are 8 bytes):
//!
//! ```text
//! header:  id [u8; 16] = "SEGGER RTT\0…", max_up: usize, max_down: usize
//! channel: name: *const u8, buffer: *mut u8, size: usize,
//!          write: usize, read: usize, flags: usize        (6 × 8 bytes)
//! ```
//! Up channels follow the header, then down channels.
//!
//! Access needs the right to trace the process (same user with a permissive
//! `ptrace_scope`, a parent/ancestor, or root) — as a probe needs its cable.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use crate::RigError;

const ID: &[u8; 16] = b"SEGGER RTT\0\0\0\0\0\0";
const WORD: u64 = 8;
const HEADER: u64 = 16 + 2 * WORD;
const CHANNEL: u64 = 6 * WORD;
/// More channels than this means we found a false match.
const MAX_CHANNELS: u64 = 64;

/// One up-channel (target → host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpChannel {
    /// The channel's index among the up-channels of the control block.
    pub number: usize,
    /// The name the target gave the channel ("" when its name pointer is null).
    pub name: String,
    /// Address of the channel descriptor in the target.
    descriptor: u64,
    buffer: u64,
    size: u64,
}

/// An attached reader.
#[derive(Debug)]
pub struct RttReader {
    pid: u32,
    mem: File,
    /// Address of the RTT control block in the target's memory.
    pub control_block: u64,
    /// The initialised up-channels, in number order.
    pub up: Vec<UpChannel>,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RigError {
    move |source| RigError::Io { what, source }
}

fn word(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))
}

impl RttReader {
    /// Finds the control block in `pid`'s writable memory and reads the
    /// channel table. Fails with a reason if there is none (yet).
    pub fn attach(pid: u32) -> Result<RttReader, RigError> {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .map_err(io(format!("reading /proc/{pid}/maps")))?;
        let mem = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(io(format!(
                "opening /proc/{pid}/mem (needs the right to trace the device)"
            )))?;
        let regions: Vec<(u64, u64)> = maps
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let range = f.next()?;
                let perms = f.next()?;
                // The control block is a static in .data/.bss: private, read-write.
                if !perms.starts_with("rw") {
                    return None;
                }
                let (a, b) = range.split_once('-')?;
                Some((
                    u64::from_str_radix(a, 16).ok()?,
                    u64::from_str_radix(b, 16).ok()?,
                ))
            })
            .collect();
        // A buffer may straddle adjacent mappings (.data then .bss): check
        // against contiguous spans, not single mappings.
        let mut spans: Vec<(u64, u64)> = Vec::new();
        for &(a, b) in &regions {
            match spans.last_mut() {
                Some(last) if last.1 == a => last.1 = b,
                _ => spans.push((a, b)),
            }
        }
        let readable =
            |addr: u64, len: u64| spans.iter().any(|(a, b)| addr >= *a && addr + len <= *b);
        let mut unreadable = None;
        for &(start, end) in &regions {
            // Skip huge mappings (heaps of a busy process are not where statics live).
            if end - start > 256 << 20 {
                continue;
            }
            let mut buf = vec![0u8; (end - start) as usize];
            if let Err(e) = mem.read_exact_at(&mut buf, start) {
                unreadable = Some(e);
                continue;
            }
            let mut from = 0;
            while let Some(i) = buf[from..].windows(ID.len()).position(|w| w == ID) {
                let at = from + i;
                from = at + 1;
                let cb = start + at as u64;
                if let Some(up) = Self::channels(&mem, cb, &readable) {
                    return Ok(RttReader {
                        pid,
                        mem,
                        control_block: cb,
                        up,
                    });
                }
            }
        }
        Err(RigError::Device(match unreadable {
            Some(e) => format!(
                "process {pid}: no RTT control block found; some memory was unreadable: {e}"
            ),
            None => format!("process {pid} has no RTT control block (not initialised yet?)"),
        }))
    }

    /// Validates a candidate control block and reads its up-channels.
    fn channels(
        mem: &File,
        cb: u64,
        readable: &dyn Fn(u64, u64) -> bool,
    ) -> Option<Vec<UpChannel>> {
        let mut head = [0u8; HEADER as usize];
        mem.read_exact_at(&mut head, cb).ok()?;
        let (max_up, max_down) = (word(&head, 16), word(&head, 24));
        if max_up == 0 || max_up > MAX_CHANNELS || max_down > MAX_CHANNELS {
            return None;
        }
        let mut up = Vec::new();
        for n in 0..max_up {
            let descriptor = cb + HEADER + n * CHANNEL;
            let mut d = [0u8; CHANNEL as usize];
            mem.read_exact_at(&mut d, descriptor).ok()?;
            let (name_ptr, buffer, size) = (word(&d, 0), word(&d, 8), word(&d, 16));
            if buffer == 0 {
                continue; // channel not initialised
            }
            if size == 0 || !readable(buffer, size) {
                return None;
            }
            let name = if name_ptr == 0 {
                String::new()
            } else {
                let mut raw = [0u8; 64];
                // Names live in .rodata (not in our writable list): read directly.
                let _ = mem.read_at(&mut raw, name_ptr);
                let end = raw.iter().position(|b| *b == 0).unwrap_or(raw.len());
                String::from_utf8_lossy(&raw[..end]).into_owned()
            };
            up.push(UpChannel {
                number: n as usize,
                name,
                descriptor,
                buffer,
                size,
            });
        }
        (!up.is_empty()).then_some(up)
    }

    /// The process id of the target the reader is attached to.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Drains what `channel` holds and hands the space back to the target.
    pub fn read_up(&mut self, channel: usize) -> Result<Vec<u8>, RigError> {
        let ch = self
            .up
            .iter()
            .find(|c| c.number == channel)
            .ok_or_else(|| RigError::Device(format!("no RTT up-channel {channel}")))?
            .clone();
        let pid = self.pid;
        let mut offsets = [0u8; 16];
        self.mem
            .read_exact_at(&mut offsets, ch.descriptor + 3 * WORD)
            .map_err(io(format!("reading RTT channel {channel} of {pid}")))?;
        let (write, read) = (word(&offsets, 0), word(&offsets, 8));
        if write >= ch.size || read >= ch.size {
            return Err(RigError::Device(format!(
                "RTT channel {channel}: corrupt offsets {write}/{read}"
            )));
        }
        let mut out = Vec::new();
        let mut copy = |from: u64, to: u64| -> Result<(), RigError> {
            let mut part = vec![0u8; (to - from) as usize];
            self.mem
                .read_exact_at(&mut part, ch.buffer + from)
                .map_err(io(format!("reading RTT buffer of {pid}")))?;
            out.extend_from_slice(&part);
            Ok(())
        };
        if write >= read {
            copy(read, write)?;
        } else {
            copy(read, ch.size)?;
            copy(0, write)?;
        }
        self.mem
            .write_all_at(&write.to_le_bytes(), ch.descriptor + 4 * WORD)
            .map_err(io(format!("updating the RTT read offset of {pid}")))?;
        Ok(out)
    }
}
