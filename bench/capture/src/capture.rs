//! AF_PACKET capture of one interface into a pcapng file (Linux, needs CAP_NET_RAW, and
//! CAP_SYS_ADMIN when the interface lives in another network namespace).
//!
//! A dedicated thread owns the socket. It enters the interface's network namespace first
//! (`setns` changes only the calling thread's namespace, so the rest of the process is
//! untouched), opens an `AF_PACKET`/`SOCK_RAW`/`ETH_P_ALL` socket bound to the interface,
//! and appends each frame as an Enhanced Packet Block to a spool file next to the output.
//! Timestamps are the kernel's receive times (`SO_TIMESTAMPNS`), not the time the thread
//! got round to reading, so SYN spacing measured for backoff cases is not skewed by
//! scheduling.
//!
//! [`Capture::start`] returns only after the socket is bound, so traffic generated after it
//! returns is captured without any sleep. [`Capture::stop`] wakes the thread through a pipe,
//! the thread drains what the kernel already queued, and then the final file is assembled
//! as `SHB | IDB | DSB(key log) | spooled EPBs` (see [`crate::pcapng`] for why the key log
//! must precede the packets).

use std::fs::{self, File};
use std::io::{self, BufWriter, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sched::{setns, CloneFlags};
use nix::sys::socket::{
    recvmsg, setsockopt, socket, sockopt, AddressFamily, ControlMessageOwned, LinkAddr, MsgFlags,
    SockFlag, SockProtocol, SockType,
};

use crate::pcapng::{self, InterfaceDescription, Packet, LINKTYPE_ETHERNET};

/// Default snap length: large enough for GSO/GRO super-frames a veth may hand up, so
/// nothing the analysis needs is cut off.
pub const DEFAULT_SNAP_LEN: u32 = 262_144;

/// What to capture and where to put it.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// Interface name, e.g. `veth-dut`.
    pub interface: String,
    /// Network namespace file to enter first (`/var/run/netns/NAME` or
    /// `/proc/PID/ns/net`); `None` captures in the caller's namespace.
    pub netns: Option<PathBuf>,
    /// The pcapng file to produce. A `.spool` file next to it holds the packets meanwhile.
    pub output: PathBuf,
    /// Text for the `if_description` option.
    pub description: String,
    /// Bytes kept per frame.
    pub snap_len: u32,
}

impl CaptureConfig {
    /// A configuration with the default snap length and no namespace change.
    pub fn new(interface: impl Into<String>, output: impl Into<PathBuf>) -> Self {
        let interface = interface.into();
        CaptureConfig {
            description: format!("sacbench capture on {interface}"),
            interface,
            netns: None,
            output: output.into(),
            snap_len: DEFAULT_SNAP_LEN,
        }
    }
}

/// Errors of starting, running or finishing a capture.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// Entering the network namespace failed.
    #[error("cannot enter network namespace {path}: {source}")]
    Netns {
        /// The namespace file.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// The interface does not exist (in the namespace used).
    #[error("no interface {name}: {source}")]
    NoInterface {
        /// Interface name.
        name: String,
        /// Underlying error.
        source: io::Error,
    },
    /// Opening, configuring, binding or reading the packet socket failed.
    #[error("packet socket on {interface}: {op}: {source}")]
    Socket {
        /// Interface name.
        interface: String,
        /// The operation that failed.
        op: &'static str,
        /// Underlying error.
        source: io::Error,
    },
    /// Reading or writing the spool or output file failed.
    #[error("capture file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        source: io::Error,
    },
    /// The capture thread panicked or vanished.
    #[error("capture thread ended unexpectedly")]
    Thread,
}

/// What a finished capture produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureSummary {
    /// The pcapng file written.
    pub path: PathBuf,
    /// Frames written.
    pub packets: u64,
    /// Frames longer than the snap length (stored truncated).
    pub truncated: u64,
    /// Size of the embedded key log (0: no Decryption Secrets Block written).
    pub key_log_bytes: usize,
}

/// A running capture. Dropping it without [`Capture::stop`] stops the thread and removes
/// the spool file, producing no output.
pub struct Capture {
    stop_tx: Option<OwnedFd>,
    thread: Option<JoinHandle<Result<SpoolStats, CaptureError>>>,
    spool: PathBuf,
    output: PathBuf,
    iface: InterfaceDescription,
}

#[derive(Debug, Clone, Copy)]
struct SpoolStats {
    packets: u64,
    truncated: u64,
}

fn spool_path(output: &Path) -> PathBuf {
    let mut name = output.as_os_str().to_owned();
    name.push(".spool");
    PathBuf::from(name)
}

impl Capture {
    /// Starts capturing. Returns once the socket is bound to the interface: every frame
    /// that crosses the interface from then on is in the capture.
    pub fn start(config: CaptureConfig) -> Result<Capture, CaptureError> {
        let spool = spool_path(&config.output);
        let file = File::create(&spool).map_err(|source| CaptureError::File {
            path: spool.clone(),
            source,
        })?;
        // CLOEXEC: a child process started meanwhile (the device, tools)
        // must not inherit the write end, or closing ours would not signal EOF.
        let (stop_rx, stop_tx) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| CaptureError::Socket {
                interface: config.interface.clone(),
                op: "pipe",
                source: e.into(),
            })?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread_config = config.clone();
        let thread_spool = spool.clone();
        let thread = std::thread::Builder::new()
            .name(format!("capture-{}", config.interface))
            .spawn(move || {
                let socket = match open_socket(&thread_config) {
                    Ok(s) => {
                        let _ = ready_tx.send(Ok(()));
                        s
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return Err(CaptureError::Thread);
                    }
                };
                run(&thread_config, &socket, &stop_rx, file, &thread_spool)
            })
            .map_err(|_| CaptureError::Thread)?;
        let ready = ready_rx.recv().unwrap_or(Err(CaptureError::Thread));
        if let Err(e) = ready {
            let _ = thread.join();
            let _ = fs::remove_file(&spool);
            return Err(e);
        }
        Ok(Capture {
            stop_tx: Some(stop_tx),
            thread: Some(thread),
            spool,
            output: config.output,
            iface: InterfaceDescription {
                name: config.interface,
                description: config.description,
                link_type: LINKTYPE_ETHERNET,
                snap_len: config.snap_len,
            },
        })
    }

    /// Stops the capture, drains frames the kernel already queued, and writes the final
    /// pcapng with `key_log` (NSS key log lines) embedded before the packets.
    pub fn stop(mut self, key_log: Option<&[u8]>) -> Result<CaptureSummary, CaptureError> {
        let stats = self.stop_thread()?;
        let out_err = |source| CaptureError::File {
            path: self.output.clone(),
            source,
        };
        let mut out = BufWriter::new(File::create(&self.output).map_err(out_err)?);
        pcapng::write_file_head(&mut out, &self.iface, key_log).map_err(out_err)?;
        let mut out = out.into_inner().map_err(|e| out_err(e.into_error()))?;
        let mut spooled = File::open(&self.spool).map_err(|source| CaptureError::File {
            path: self.spool.clone(),
            source,
        })?;
        // io::copy between two files uses copy_file_range: no user-space copy of the packets.
        io::copy(&mut spooled, &mut out).map_err(out_err)?;
        out.sync_all().map_err(out_err)?;
        drop(spooled);
        fs::remove_file(&self.spool).map_err(|source| CaptureError::File {
            path: self.spool.clone(),
            source,
        })?;
        Ok(CaptureSummary {
            path: self.output.clone(),
            packets: stats.packets,
            truncated: stats.truncated,
            key_log_bytes: key_log.map_or(0, <[u8]>::len),
        })
    }

    fn stop_thread(&mut self) -> Result<SpoolStats, CaptureError> {
        if let Some(tx) = self.stop_tx.take() {
            // Closing the write end makes the read end readable (EOF): that is the signal.
            drop(tx);
        }
        match self.thread.take() {
            Some(t) => t.join().map_err(|_| CaptureError::Thread)?,
            None => Err(CaptureError::Thread),
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop_thread();
        }
        // Also after a failed stop: never leave a spool behind (absent after a good stop).
        let _ = fs::remove_file(&self.spool);
    }
}

fn sock_err<'a>(
    config: &'a CaptureConfig,
    op: &'static str,
) -> impl Fn(Errno) -> CaptureError + 'a {
    move |e| CaptureError::Socket {
        interface: config.interface.clone(),
        op,
        source: e.into(),
    }
}

/// Opens the packet socket, on the calling (capture) thread.
fn open_socket(config: &CaptureConfig) -> Result<OwnedFd, CaptureError> {
    if let Some(path) = &config.netns {
        let ns_err = |source| CaptureError::Netns {
            path: path.clone(),
            source,
        };
        let ns = File::open(path).map_err(ns_err)?;
        setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|e| ns_err(e.into()))?;
    }
    let ifindex = nix::net::if_::if_nametoindex(config.interface.as_str()).map_err(|e| {
        CaptureError::NoInterface {
            name: config.interface.clone(),
            source: e.into(),
        }
    })?;
    let fd = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        SockProtocol::EthAll,
    )
    .map_err(sock_err(config, "socket"))?;
    setsockopt(&fd, sockopt::ReceiveTimestampns, &true)
        .map_err(sock_err(config, "SO_TIMESTAMPNS"))?;
    // A large receive buffer absorbs bursts (TLS handshakes, OTA downloads) while the thread
    // writes; RcvBufForce may exceed rmem_max as root, RcvBuf is the unprivileged fallback.
    let want = 8 * 1024 * 1024;
    if setsockopt(&fd, sockopt::RcvBufForce, &want).is_err() {
        setsockopt(&fd, sockopt::RcvBuf, &want).map_err(sock_err(config, "SO_RCVBUF"))?;
    }
    bind_to_interface(&fd, ifindex).map_err(|source| CaptureError::Socket {
        interface: config.interface.clone(),
        op: "bind",
        source,
    })?;
    Ok(fd)
}

/// Binds the packet socket to one interface (`sockaddr_ll` with `sll_ifindex`), so the
/// kernel delivers only that interface's frames. nix has no safe constructor for a
/// `sockaddr_ll`, hence the one libc call.
#[allow(unsafe_code)]
fn bind_to_interface(fd: &OwnedFd, ifindex: u32) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value for every field.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as libc::sa_family_t;
    addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    addr.sll_ifindex = i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;
    let len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `addr` is a fully initialised sockaddr_ll that outlives the call, `len` is its
    // exact size, and `fd` is an open socket owned by the caller.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::addr_of!(addr).cast::<libc::sockaddr>(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The capture loop: wait for frames or the stop signal; on stop, drain and return.
fn run(
    config: &CaptureConfig,
    socket: &OwnedFd,
    stop_rx: &OwnedFd,
    file: File,
    spool: &Path,
) -> Result<SpoolStats, CaptureError> {
    let file_err = |source| CaptureError::File {
        path: spool.to_path_buf(),
        source,
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut buf = vec![0u8; config.snap_len as usize];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let mut stats = SpoolStats {
        packets: 0,
        truncated: 0,
    };
    loop {
        let mut fds = [
            PollFd::new(socket.as_fd(), PollFlags::POLLIN),
            PollFd::new(stop_rx.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(sock_err(config, "poll")(e)),
        }
        let stopping = fds[1].revents().is_some_and(|r| !r.is_empty());
        // Read until the socket queue is empty: one poll per burst, not per frame.
        loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let received = recvmsg::<LinkAddr>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_TRUNC,
            );
            let (len, ts_ns) = match received {
                Ok(msg) => {
                    let mut ts_ns = None;
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmTimestampns(ts) = c {
                                ts_ns =
                                    Some(ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64);
                            }
                        }
                    }
                    (msg.bytes, ts_ns)
                }
                Err(Errno::EAGAIN) => break,
                // The interface went down (a case cutting the DUT's link, a
                // power cut taking the board's side down): the socket reports
                // it once and captures again when the link is back up.
                Err(Errno::EINTR | Errno::ENETDOWN) => continue,
                Err(e) => return Err(sock_err(config, "recvmsg")(e)),
            };
            let captured = len.min(buf.len());
            if captured < len {
                stats.truncated += 1;
            }
            let timestamp_ns = ts_ns.unwrap_or_else(now_ns);
            let packet = Packet {
                timestamp_ns,
                data: &buf[..captured],
                original_len: u32::try_from(len).unwrap_or(u32::MAX),
            };
            pcapng::write_enhanced_packet(&mut out, 0, &packet).map_err(file_err)?;
            stats.packets += 1;
        }
        if stopping {
            break;
        }
    }
    out.flush().map_err(file_err)?;
    Ok(stats)
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
