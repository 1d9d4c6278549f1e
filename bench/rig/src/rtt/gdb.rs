//! RTT from a board under QEMU, read through its gdbstub (a Unix socket,
//! `-chardev socket,id=gdb0,path=…,server=on,wait=off -gdb chardev:gdb0`)
//! the way a halting debug probe reads target RAM.
//!
//! Why the gdbstub and not QMP/HMP: the reader must write each channel's
//! read offset back, or a `NoBlockSkip` channel fills after one buffer and
//! the device's later lines are dropped; QMP has no memory write (`xp` and
//! `pmemsave` only read). The gdbstub reads and writes, at the price of a
//! halt: QEMU stops the VM when a client connects and on any byte that
//! arrives while it runs, so each poll is: interrupt (0x03) → stop reply →
//! `m`/`M` packets → `c`. The halt lasts one round of local socket
//! requests (well under a millisecond once the control block is known).

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::rsp::{self, Frame, Reply};
use super::{id_offsets, ControlBlock, TargetMemory};
use crate::lab::RttData;
use crate::RigError;

/// How long one answer from the stub may take before the reader gives up
/// (QEMU answers at once; only a hung QEMU is slower).
const ANSWER: Duration = Duration::from_secs(5);
/// How many times a packet the stub refused (`-`) is sent again.
const RESENDS: usize = 3;

/// A gdbstub client over a Unix socket (all-stop mode, acknowledged packets).
#[derive(Debug)]
pub struct GdbClient {
    stream: UnixStream,
    decoder: rsp::Decoder,
    /// Frames read but not consumed yet.
    pending: VecDeque<Frame>,
    /// Reply packets that came before the ack of a later request.
    early: VecDeque<Vec<u8>>,
    what: String,
}

fn gone(what: &str, e: impl std::fmt::Display) -> RigError {
    RigError::Device(format!("{what}: {e}"))
}

impl GdbClient {
    /// Connects to the stub at `path` (QEMU stops the VM on the connection)
    /// and waits until it reports the target stopped.
    pub fn connect(path: &Path) -> Result<GdbClient, RigError> {
        let what = format!("gdbstub {}", path.display());
        let stream = UnixStream::connect(path).map_err(|source| RigError::Io {
            what: format!("connecting to {what}"),
            source,
        })?;
        stream
            .set_read_timeout(Some(ANSWER))
            .and_then(|()| stream.set_write_timeout(Some(ANSWER)))
            .map_err(|e| gone(&what, e))?;
        let mut client = GdbClient {
            stream,
            decoder: rsp::Decoder::default(),
            pending: VecDeque::new(),
            early: VecDeque::new(),
            what,
        };
        client.send(b"?")?;
        client.until(|r| matches!(r, Reply::Stopped(_)))?;
        Ok(client)
    }

    fn fill(&mut self) -> Result<(), RigError> {
        let mut buf = [0u8; 4096];
        let n = match self.stream.read(&mut buf) {
            Ok(0) => return Err(gone(&self.what, "closed (QEMU exited?)")),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return Err(gone(&self.what, "closed (QEMU exited?)"))
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(gone(&self.what, format!("no answer within {ANSWER:?}")))
            }
            Err(e) => return Err(gone(&self.what, e)),
        };
        let frames = self.decoder.push(&buf[..n]);
        self.pending.extend(frames);
        Ok(())
    }

    fn next_frame(&mut self) -> Result<Frame, RigError> {
        loop {
            if let Some(f) = self.pending.pop_front() {
                return Ok(f);
            }
            self.fill()?;
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), RigError> {
        self.stream.write_all(bytes).map_err(|e| match e.kind() {
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
                gone(&self.what, "closed (QEMU exited?)")
            }
            _ => gone(&self.what, e),
        })
    }

    /// Sends a packet and waits for its `+` (resending on `-`). Packets
    /// arriving meanwhile (a stop reply) stay queued.
    fn send(&mut self, payload: &[u8]) -> Result<(), RigError> {
        let wire = rsp::encode(payload);
        for _ in 0..=RESENDS {
            self.write(&wire)?;
            loop {
                match self.next_frame()? {
                    Frame::Ack => return Ok(()),
                    Frame::Nack => break,
                    other => self.queue_early(other)?,
                }
            }
        }
        Err(gone(
            &self.what,
            "packet refused (checksum) again and again",
        ))
    }

    /// A frame that came before the ack it was waited for: a packet is
    /// acknowledged and kept, in order, ahead of those read later.
    fn queue_early(&mut self, frame: Frame) -> Result<(), RigError> {
        match frame {
            Frame::Packet(p) => {
                self.write(b"+")?;
                self.early.push_back(p);
            }
            Frame::Corrupt => self.write(b"-")?,
            Frame::Ack | Frame::Nack => {}
        }
        Ok(())
    }

    /// The next reply packet (acknowledged).
    fn packet(&mut self) -> Result<Vec<u8>, RigError> {
        if let Some(p) = self.early.pop_front() {
            return Ok(p);
        }
        loop {
            match self.next_frame()? {
                Frame::Packet(p) => {
                    self.write(b"+")?;
                    return Ok(p);
                }
                Frame::Corrupt => self.write(b"-")?,
                Frame::Ack | Frame::Nack => {}
            }
        }
    }

    /// The first reply that `want` takes; stop replies it does not want
    /// (QEMU may send one unasked when a client connects) are skipped.
    fn until(&mut self, want: impl Fn(&Reply) -> bool) -> Result<Reply, RigError> {
        loop {
            let p = self.packet()?;
            let r = rsp::reply(&p);
            if want(&r) {
                return Ok(r);
            }
            match r {
                Reply::Stopped(_) => continue,
                Reply::Exited => return Err(gone(&self.what, "the target exited")),
                other => return Err(gone(&self.what, format!("unexpected reply {other:?}"))),
            }
        }
    }

    /// Stops the running target (0x03) and waits for its stop reply.
    pub fn halt(&mut self) -> Result<(), RigError> {
        self.write(&[rsp::INTERRUPT])?;
        self.until(|r| matches!(r, Reply::Stopped(_)))?;
        Ok(())
    }

    /// Lets the stopped target run again (`c`; the stub answers only at the next stop).
    pub fn resume(&mut self) -> Result<(), RigError> {
        self.send(b"c")
    }
}

impl TargetMemory for GdbClient {
    fn read(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), RigError> {
        for (i, part) in buf.chunks_mut(rsp::MAX_READ).enumerate() {
            let at = addr + (i * rsp::MAX_READ) as u64;
            self.send(&rsp::read_memory(at, part.len()))?;
            // A stop reply the stub sent unasked (on the connection) comes first.
            let mut p = self.packet()?;
            while matches!(rsp::reply(&p), Reply::Stopped(_)) {
                p = self.packet()?;
            }
            match rsp::memory(&p, part.len()) {
                Some(bytes) => part.copy_from_slice(&bytes),
                None => {
                    return Err(gone(
                        &self.what,
                        format!(
                            "reading {} bytes at {at:#x}: {:?}",
                            part.len(),
                            rsp::reply(&p)
                        ),
                    ))
                }
            }
        }
        Ok(())
    }

    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), RigError> {
        self.send(&rsp::write_memory(addr, data))?;
        match self.until(|r| matches!(r, Reply::Ok | Reply::Error(_)))? {
            Reply::Ok => Ok(()),
            other => Err(gone(&self.what, format!("writing at {addr:#x}: {other:?}"))),
        }
    }
}

/// The RAM a control block is searched in: `start` and `size` in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ram {
    /// The first address.
    pub start: u64,
    /// How many bytes.
    pub size: u64,
}

/// RTT of a 32-bit board behind a gdbstub socket: connects when the socket
/// is there, finds the control block in `ram`, drains the up-channels at
/// each [`GdbRtt::read_rtt`]; after a failure (QEMU gone: a power cut) it
/// starts over at the next read.
#[derive(Debug)]
pub struct GdbRtt {
    socket: PathBuf,
    ram: Ram,
    client: Option<GdbClient>,
    block: Option<ControlBlock>,
}

/// A Cortex-M's pointer width.
const WORD: u64 = 4;

impl GdbRtt {
    /// A reader of the board whose gdbstub listens (or will) at `socket`.
    pub fn new(socket: PathBuf, ram: Ram) -> GdbRtt {
        GdbRtt {
            socket,
            ram,
            client: None,
            block: None,
        }
    }

    /// Forgets the connection and the control block (the board was powered
    /// off: the next QEMU has a new socket and a new block).
    pub fn reset(&mut self) {
        self.client = None;
        self.block = None;
    }

    /// What the up-channels hold now; empty while there is no gdbstub yet
    /// (QEMU not started) or no control block yet (the firmware booting).
    pub fn read_rtt(&mut self) -> Result<Vec<RttData>, RigError> {
        if self.client.is_none() {
            match GdbClient::connect(&self.socket) {
                Ok(c) => self.client = Some(c),
                // Not listening yet: QEMU is starting, or powered off.
                Err(RigError::Io { source, .. })
                    if matches!(
                        source.kind(),
                        ErrorKind::NotFound | ErrorKind::ConnectionRefused
                    ) =>
                {
                    return Ok(Vec::new())
                }
                Err(e) => return Err(e),
            }
        } else if let Some(c) = self.client.as_mut() {
            if let Err(e) = c.halt() {
                self.reset();
                return Err(e);
            }
        }
        // Halted here (by the connection or the interrupt): read, then run on.
        let client = self.client.as_mut().expect("connected above");
        let read = read_halted(client, &mut self.block, self.ram);
        let resumed = client.resume();
        match (read, resumed) {
            (Ok(data), Ok(())) => Ok(data),
            (Err(e), _) | (Ok(_), Err(e)) => {
                self.reset();
                Err(e)
            }
        }
    }
}

/// With the target halted: finds the control block if not known yet, then
/// drains every up-channel.
fn read_halted(
    mem: &mut GdbClient,
    block: &mut Option<ControlBlock>,
    ram: Ram,
) -> Result<Vec<RttData>, RigError> {
    if block.is_none() {
        let mut image = vec![0u8; ram.size as usize];
        mem.read(ram.start, &mut image)?;
        let end = ram.start + ram.size;
        let readable = |a: u64, l: u64| a >= ram.start && a + l <= end;
        *block = id_offsets(&image)
            .find_map(|at| ControlBlock::parse(mem, ram.start + at as u64, WORD, &readable));
    }
    let Some(cb) = block.as_ref() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for ch in &cb.up {
        let bytes = cb.read_up(mem, ch.number)?;
        if !bytes.is_empty() {
            out.push(RttData {
                channel: ch.number,
                name: ch.name.clone(),
                bytes,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
