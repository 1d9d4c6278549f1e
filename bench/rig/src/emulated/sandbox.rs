//! The emulated rig's sandbox: a private user, network, mount and PID
//! namespace for the whole run.
//!
//! [`enter`] is called first thing in `main` (while the process is still
//! single-threaded, which `unshare(CLONE_NEWUSER)` requires). The first call
//! unshares the namespaces, maps the caller to root inside, and re-executes
//! the program there; the re-executed child is PID 1 of the new PID
//! namespace and asks to be killed when its parent dies. So whatever happens
//! — the run ends, or the bench is killed with SIGKILL mid-case — the kernel
//! kills every process of the run (PID 1 gone), and the network namespaces,
//! veths and `/run/netns` bind mounts (all in the private mount namespace)
//! go with them. Nothing is ever created in the host's namespaces.
//!
//! No root is needed where unprivileged user namespaces are allowed; as root
//! it works the same way.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitStatus};

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::Signal;
use nix::unistd::{getgid, getuid};

use crate::RigError;

/// Set in the re-executed child's environment.
pub const SANDBOX_ENV: &str = "SACBENCH_SANDBOX";

/// [`SANDBOX_ENV`]'s value that makes [`enter`] (or [`exec_if_asked`]) run a
/// program in a network namespace: `netns-exec:PATH`, then the program and
/// its arguments as this executable's arguments. What `ip netns exec` does,
/// without `ip`.
const NETNS_EXEC: &str = "netns-exec:";

/// A command that runs `program` inside the network namespace at `netns`: this
/// executable, re-executed, enters it and `exec`s the program (so its pid,
/// process group, stdio and working directory are the program's). Callers
/// add arguments, stdio and the rest as to any `Command`.
pub fn netns_command(netns: &std::path::Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
    let mut c = Command::new(exe);
    c.env(SANDBOX_ENV, format!("{NETNS_EXEC}{}", netns.display()))
        .arg(program);
    c
}

/// The first thing a program that runs the emulated rig does, before parsing
/// its arguments: if it was started by [`netns_command`], it becomes the
/// program asked for (and never returns). [`enter`] does the same.
pub fn exec_if_asked() {
    let Ok(mode) = std::env::var(SANDBOX_ENV) else {
        return;
    };
    let Some(netns) = mode.strip_prefix(NETNS_EXEC) else {
        return;
    };
    // Single-threaded here: nothing reads the environment concurrently.
    std::env::remove_var(SANDBOX_ENV);
    let error = (|| -> Result<std::convert::Infallible, String> {
        let file = std::fs::File::open(netns).map_err(|e| format!("opening {netns}: {e}"))?;
        nix::sched::setns(&file, CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("entering {netns}: {e}"))?;
        let mut args = std::env::args_os().skip(1);
        let program = args.next().ok_or("no program to run")?;
        use std::os::unix::process::CommandExt;
        let e = Command::new(&program).args(args).exec();
        Err(format!("running {}: {e}", program.to_string_lossy()))
    })()
    .unwrap_err();
    eprintln!("sacbench: in network namespace {netns}: {error}");
    // 127: what a shell answers for a program it could not run.
    std::process::exit(127);
}

/// Where this process stands after [`enter`].
#[derive(Debug)]
pub enum Sandbox {
    /// We are inside: go on and run.
    Inside,
    /// We are the launcher: the sandboxed run ended with this status; exit with it.
    Finished(ExitStatus),
}

fn setup(what: &str, e: impl std::fmt::Display) -> RigError {
    RigError::Setup(format!("emulated rig sandbox: {what}: {e}"))
}

/// [`enter`] for a program's `main`: returns inside the sandbox; as the
/// launcher, exits with the sandboxed run's status; on an error, prints it
/// after `prefix` and exits 2.
pub fn enter_or_exit(prefix: &str) {
    match enter() {
        Ok(Sandbox::Finished(status)) => std::process::exit(exit_code(status)),
        Ok(Sandbox::Inside) => {}
        Err(e) => {
            eprintln!("{prefix}{e}");
            std::process::exit(2);
        }
    }
}

/// Enters (or, in the child, finishes setting up) the sandbox.
pub fn enter() -> Result<Sandbox, RigError> {
    exec_if_asked();
    match std::env::var(SANDBOX_ENV).as_deref() {
        // PID 1 of the new namespace: set up, run the workload, reap.
        Ok("init") => {
            inside()?;
            std::process::exit(init());
        }
        // The workload, a child of that init.
        Ok("run") => {
            // Not inherited further: a program this run starts that enters a
            // sandbox itself gets a new one, nested. (Single-threaded here.)
            std::env::remove_var(SANDBOX_ENV);
            return Ok(Sandbox::Inside);
        }
        _ => {}
    }
    let (uid, gid) = (getuid(), getgid());
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWPID;
    unshare(flags).map_err(|e| {
        RigError::Setup(format!(
            "cannot create the rig's namespaces (unshare: {e}). The emulated rig needs user \
             namespaces: run as root, or allow unprivileged ones (sysctl \
             kernel.unprivileged_userns_clone=1; on Ubuntu also \
             kernel.apparmor_restrict_unprivileged_userns=0)"
        ))
    })?;
    std::fs::write("/proc/self/setgroups", "deny").map_err(|e| setup("setgroups", e))?;
    std::fs::write("/proc/self/uid_map", format!("0 {uid} 1")).map_err(|e| setup("uid_map", e))?;
    std::fs::write("/proc/self/gid_map", format!("0 {gid} 1")).map_err(|e| setup("gid_map", e))?;
    // Mounts made inside must never propagate to the host.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| setup("making / private", e))?;
    let exe = std::env::current_exe().map_err(|e| setup("current_exe", e))?;
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    // Ctrl-C or a SIGTERM reaches the run inside, which finishes its report;
    // the launcher waits for it instead of dying (and taking it along). No
    // thread can be made after unshare(CLONE_NEWPID): the launcher waits on
    // its signals (the child's end is SIGCHLD) on this one thread.
    use signal_hook::consts::{SIGCHLD, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGCHLD])
        .map_err(|e| setup("catching signals", e))?;
    let mut child = Command::new(exe)
        .args(args)
        .env(SANDBOX_ENV, "init")
        .spawn()
        .map_err(|e| setup("starting the sandboxed run", e))?;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| setup("waiting for the sandboxed run", e))?
        {
            return Ok(Sandbox::Finished(status));
        }
        for sig in signals.wait() {
            if sig != SIGCHLD {
                let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            }
        }
    }
}

/// From now on SIGINT and SIGTERM to this process are passed on to `to` as
/// SIGTERM, instead of ending this process.
fn forward_signals(to: nix::unistd::Pid) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        for _ in signals.forever() {
            let _ = nix::sys::signal::kill(to, Signal::SIGTERM);
        }
    });
}

/// In the child (PID 1 of the new PID namespace).
fn inside() -> Result<(), RigError> {
    // If the launcher dies (even by SIGKILL), so do we — and with PID 1 gone
    // the kernel kills every process of the namespace.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| setup("pdeathsig", e))?;
    // A /proc for this PID namespace (tools read /proc/self, /proc/<pid>).
    mount(
        Some("proc"),
        "/proc",
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| setup("mounting /proc", e))?;
    // `ip netns` keeps its handles under /run/netns: a private tmpfs.
    std::fs::create_dir_all("/run/netns").ok();
    mount(
        Some("tmpfs"),
        "/run/netns",
        Some("tmpfs"),
        MsFlags::empty(),
        Some("mode=755"),
    )
    .map_err(|e| setup("mounting /run/netns", e))?;
    hosts_file()?;
    // The sandbox's own loopback, for anything bound to 127.0.0.1 in here.
    super::netlink::with_netlink(None, |h| async move {
        super::netlink::set_link(&h, "lo", true).await
    })
}

/// The sandbox's own `/etc/hosts`: every topology's hub by name
/// ([`Topology::hub_host`](super::topology::Topology::hub_host)), so a device
/// dials its hub by name through the system resolver, as device SDKs do. The
/// file lives on a private tmpfs and is bind-mounted over `/etc/hosts` in
/// the sandbox's mount namespace: nothing is written to the host's disk (the
/// tmpfs's mount point, an empty directory, is reused run after run), and it
/// goes with the sandbox.
fn hosts_file() -> Result<(), RigError> {
    let mut text =
        String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    // Every hub, and every gateway node by name too: a lab-like setup (the
    // fake lab board in the tests) has its hub there, on the bench side.
    // The rig's DNS server (`dns.rs`) serves the same names.
    for (name, address) in super::topology::Topology::host_names() {
        text += &format!("{address}\t{name}\n");
    }
    // /run/sacbench as root; where /run is not ours, a directory of our own.
    let uid = getuid();
    let dir = [
        std::path::PathBuf::from("/run/sacbench"),
        std::env::temp_dir().join(format!("sacbench-sandbox-{uid}")),
    ]
    .into_iter()
    .find(|d| std::fs::create_dir_all(d).is_ok() && d.is_dir())
    .ok_or_else(|| {
        setup(
            "a mount point for the sandbox's /etc",
            "no writable directory",
        )
    })?;
    mount(
        Some("tmpfs"),
        &dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=755,size=1m"),
    )
    .map_err(|e| setup(&format!("mounting a tmpfs on {}", dir.display()), e))?;
    let hosts = dir.join("hosts");
    std::fs::write(&hosts, text).map_err(|e| setup("writing the hosts file", e))?;
    mount(
        Some(&hosts),
        "/etc/hosts",
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| setup("bind-mounting the sandbox's /etc/hosts", e))
}

/// PID 1's job besides holding the namespace: start the workload (this
/// program again) and reap every process orphaned into the namespace, so
/// killed boards leave no zombies; exit with the workload's status.
fn init() -> i32 {
    use nix::sys::wait::{waitpid, WaitStatus};
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("sandbox init: {e}");
            return 2;
        }
    };
    let workload = match Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(SANDBOX_ENV, "run")
        .spawn()
    {
        Ok(c) => nix::unistd::Pid::from_raw(c.id() as i32),
        Err(e) => {
            eprintln!("sandbox init: starting the run: {e}");
            return 2;
        }
    };
    forward_signals(workload);
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == workload => return code,
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == workload => return 128 + sig as i32,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(_) => return 2,
        }
    }
}

/// The exit code a launcher should return for the sandboxed run's status.
pub fn exit_code(status: ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}
