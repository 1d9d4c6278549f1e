//! Reads RTT the way a debug probe reads it from target RAM: find the
//! SEGGER RTT control block in the target's memory, then drain each
//! up-channel's ring buffer and write the read offset back, so the target's
//! `NoBlockSkip` channel frees the space.
//!
//! One parser ([`ControlBlock`]) over a memory interface ([`TargetMemory`]:
//! read and write at an address) and a pointer width serves two targets:
//! - the native emulated board's process ([`RttReader`]: `/proc/<pid>/maps`
//!   + `/proc/<pid>/mem`, a 64-bit host, pointer-sized fields of 8 bytes);
//! - a board under QEMU, through its gdbstub ([`gdb`]: a Cortex-M, 4 bytes).
//!
//! Layout (rtt-target's `#[repr(C)]` structs; `W` is the pointer width):
//!
//! ```text
//! header:  id [u8; 16] = "SEGGER RTT\0…", max_up: W, max_down: W
//! channel: name: *const u8, buffer: *mut u8, size: W,
//!          write: W, read: W, flags: W                    (6 × W bytes)
//! ```
//! Up channels follow the header, then down channels.
//!
//! `/proc/<pid>/mem` needs the right to trace the process (same user with a
//! permissive `ptrace_scope`, a parent/ancestor, or root) — as a probe needs
//! its cable.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

use crate::RigError;

pub mod gdb;
pub mod poll;
pub mod rsp;

/// The control block's first 16 bytes.
pub const ID: &[u8; 16] = b"SEGGER RTT\0\0\0\0\0\0";
/// More channels than this means we found a false match.
const MAX_CHANNELS: u64 = 64;

/// Target memory a reader can read and write at an address (in the target's
/// address space). `Err` is the bench's failure to reach it.
pub trait TargetMemory {
    /// Fills `buf` from `addr`.
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), RigError>;
    /// Writes `data` at `addr`.
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), RigError>;
}

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

/// A control block found in target memory: its address, pointer width and
/// initialised up-channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlBlock {
    /// Address of the control block in the target's memory.
    pub address: u64,
    /// The target's pointer width in bytes (4 or 8).
    pub word: u64,
    /// The initialised up-channels, in number order.
    pub up: Vec<UpChannel>,
}

fn word_at(bytes: &[u8], at: usize, word: u64) -> u64 {
    let mut le = [0u8; 8];
    le[..word as usize].copy_from_slice(&bytes[at..at + word as usize]);
    u64::from_le_bytes(le)
}

/// Offsets of [`ID`] in `haystack`, in order (candidates to validate).
pub fn id_offsets(haystack: &[u8]) -> impl Iterator<Item = usize> + '_ {
    haystack
        .windows(ID.len())
        .enumerate()
        .filter(|(_, w)| *w == ID)
        .map(|(i, _)| i)
}

impl ControlBlock {
    /// Bytes of the header and of one channel descriptor at pointer width `word`.
    fn sizes(word: u64) -> (u64, u64) {
        (16 + 2 * word, 6 * word)
    }

    /// Validates a candidate control block at `address` and reads its
    /// up-channels; `None` if it is not one (a false match, or no channel
    /// initialised yet). `readable(addr, len)`: whether a ring buffer there
    /// lies in memory the target writes (where statics live).
    pub fn parse(
        mem: &mut dyn TargetMemory,
        address: u64,
        word: u64,
        readable: &dyn Fn(u64, u64) -> bool,
    ) -> Option<ControlBlock> {
        debug_assert!(word == 4 || word == 8);
        let (header, channel) = Self::sizes(word);
        let mut head = vec![0u8; header as usize];
        mem.read(address, &mut head).ok()?;
        if head[..16] != ID[..] {
            return None;
        }
        let (max_up, max_down) = (
            word_at(&head, 16, word),
            word_at(&head, 16 + word as usize, word),
        );
        if max_up == 0 || max_up > MAX_CHANNELS || max_down > MAX_CHANNELS {
            return None;
        }
        let mut up = Vec::new();
        for n in 0..max_up {
            let descriptor = address + header + n * channel;
            let mut d = vec![0u8; channel as usize];
            mem.read(descriptor, &mut d).ok()?;
            let w = word as usize;
            let (name_ptr, buffer, size) = (
                word_at(&d, 0, word),
                word_at(&d, w, word),
                word_at(&d, 2 * w, word),
            );
            if buffer == 0 {
                continue; // channel not initialised
            }
            if size == 0 || !readable(buffer, size) {
                return None;
            }
            let name = if name_ptr == 0 {
                String::new()
            } else {
                // Names live in .rodata (not where the buffers are): read
                // directly, as much of 64 bytes as the target gives.
                let mut raw = [0u8; 64];
                let got = (0..=3)
                    .map(|i| 64 >> i)
                    .find(|len| mem.read(name_ptr, &mut raw[..*len]).is_ok())
                    .unwrap_or(0);
                let end = raw[..got].iter().position(|b| *b == 0).unwrap_or(got);
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
        (!up.is_empty()).then_some(ControlBlock { address, word, up })
    }

    /// Drains what `channel` holds and hands the space back to the target.
    pub fn read_up(&self, mem: &mut dyn TargetMemory, channel: usize) -> Result<Vec<u8>, RigError> {
        let ch = self
            .up
            .iter()
            .find(|c| c.number == channel)
            .ok_or_else(|| RigError::Device(format!("no RTT up-channel {channel}")))?;
        let word = self.word;
        let mut offsets = vec![0u8; 2 * word as usize];
        mem.read(ch.descriptor + 3 * word, &mut offsets)?;
        let (write, read) = (
            word_at(&offsets, 0, word),
            word_at(&offsets, word as usize, word),
        );
        if write >= ch.size || read >= ch.size {
            return Err(RigError::Device(format!(
                "RTT channel {channel}: corrupt offsets {write}/{read}"
            )));
        }
        let mut out = Vec::new();
        let mut copy = |from: u64, to: u64| -> Result<(), RigError> {
            let mut part = vec![0u8; (to - from) as usize];
            if !part.is_empty() {
                mem.read(ch.buffer + from, &mut part)?;
            }
            out.extend_from_slice(&part);
            Ok(())
        };
        if write >= read {
            copy(read, write)?;
        } else {
            copy(read, ch.size)?;
            copy(0, write)?;
        }
        if write != read {
            mem.write(
                ch.descriptor + 4 * word,
                &write.to_le_bytes()[..word as usize],
            )?;
        }
        Ok(out)
    }
}

/// A process's memory through `/proc/<pid>/mem`.
#[derive(Debug)]
struct ProcMem {
    pid: u32,
    file: File,
}

impl TargetMemory for ProcMem {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), RigError> {
        let pid = self.pid;
        self.file
            .read_exact_at(buf, addr)
            .map_err(io(format!("reading memory of {pid} at {addr:#x}")))
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), RigError> {
        let pid = self.pid;
        self.file
            .write_all_at(data, addr)
            .map_err(io(format!("writing memory of {pid} at {addr:#x}")))
    }
}

/// An attached reader of a host process (the native emulated board).
#[derive(Debug)]
pub struct RttReader {
    mem: ProcMem,
    /// Address of the RTT control block in the target's memory.
    pub control_block: u64,
    /// The initialised up-channels, in number order.
    pub up: Vec<UpChannel>,
    block: ControlBlock,
}

fn io(what: String) -> impl FnOnce(std::io::Error) -> RigError {
    move |source| RigError::Io { what, source }
}

impl RttReader {
    /// Finds the control block in `pid`'s writable memory and reads the
    /// channel table. Fails with a reason if there is none (yet).
    pub fn attach(pid: u32) -> Result<RttReader, RigError> {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .map_err(io(format!("reading /proc/{pid}/maps")))?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(format!("/proc/{pid}/mem"))
            .map_err(io(format!(
                "opening /proc/{pid}/mem (needs the right to trace the device)"
            )))?;
        let mut mem = ProcMem { pid, file };
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
            if let Err(e) = mem.file.read_exact_at(&mut buf, start) {
                unreadable = Some(e);
                continue;
            }
            for at in id_offsets(&buf) {
                if let Some(block) = ControlBlock::parse(&mut mem, start + at as u64, 8, &readable)
                {
                    return Ok(RttReader {
                        mem,
                        control_block: block.address,
                        up: block.up.clone(),
                        block,
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

    /// The process id of the target the reader is attached to.
    pub fn pid(&self) -> u32 {
        self.mem.pid
    }

    /// Drains what `channel` holds and hands the space back to the target.
    pub fn read_up(&mut self, channel: usize) -> Result<Vec<u8>, RigError> {
        self.block.read_up(&mut self.mem, channel)
    }
}

#[cfg(test)]
mod tests;
