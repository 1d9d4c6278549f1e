//! Network namespaces, links, addresses, routes and sysctls of the emulated
//! topologies, done in-process: namespaces with `unshare` and a bind mount
//! (what `ip netns add` does), the rest over rtnetlink from a thread inside
//! the namespace. No `ip`, no `sysctl` program: the main job needs nothing
//! but Rust.

use std::fs::File;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use rtnetlink::{Handle, LinkBridge, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::topology::in_netns;
use crate::RigError;

fn setup(what: impl std::fmt::Display, e: impl std::fmt::Display) -> RigError {
    RigError::Setup(format!("{what}: {e}"))
}

/// Creates a network namespace held by a bind mount at `path` (under the
/// sandbox's private `/run/netns`).
pub fn create_netns(path: &Path) -> Result<(), RigError> {
    let path = path.to_owned();
    std::thread::spawn(move || {
        // This thread alone moves into the new namespace; it ends right after.
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| setup("unshare(CLONE_NEWNET)", e))?;
        File::create(&path).map_err(|e| setup(format!("creating {}", path.display()), e))?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &path,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| setup(format!("binding the namespace at {}", path.display()), e))
    })
    .join()
    .map_err(|_| RigError::Setup("creating a network namespace panicked".into()))?
}

/// Deletes a namespace made by [`create_netns`] (it goes once its last
/// process or socket does).
pub fn delete_netns(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = std::fs::remove_file(path);
}

/// Runs `f` with an rtnetlink handle of the namespace at `netns` (`None`:
/// the caller's), on a thread inside it.
pub fn with_netlink<T, F, Fut>(netns: Option<PathBuf>, f: F) -> Result<T, RigError>
where
    T: Send + 'static,
    F: FnOnce(Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, RigError>>,
{
    in_netns(netns, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| setup("netlink runtime", e))?;
        rt.block_on(async move {
            // The socket is made here, so it belongs to this thread's namespace.
            let (connection, handle, _) =
                rtnetlink::new_connection().map_err(|e| setup("netlink socket", e))?;
            let conn = tokio::spawn(connection);
            let result = f(handle).await;
            conn.abort();
            result
        })
    })?
}

fn netlink_err(what: String) -> impl FnOnce(rtnetlink::Error) -> RigError {
    move |e| RigError::Setup(format!("{what}: {e}"))
}

/// A link's index in the handle's namespace.
pub async fn link_index(handle: &Handle, name: &str) -> Result<u32, RigError> {
    let what = format!("finding link {name}");
    handle
        .link()
        .get()
        .match_name(name.to_owned())
        .execute()
        .try_next()
        .await
        .map_err(netlink_err(what.clone()))?
        .map(|m| m.header.index)
        .ok_or_else(|| RigError::Setup(format!("{what}: no such link")))
}

/// A veth pair `name` ⇄ `peer`, made here, `peer` then moved into `peer_netns`.
pub async fn add_veth(
    handle: &Handle,
    name: &str,
    peer: &str,
    peer_netns: &Path,
) -> Result<(), RigError> {
    handle
        .link()
        .add(LinkVeth::new(name, peer).build())
        .execute()
        .await
        .map_err(netlink_err(format!("adding veth {name} ⇄ {peer}")))?;
    let ns = File::open(peer_netns)
        .map_err(|e| setup(format!("opening {}", peer_netns.display()), e))?;
    handle
        .link()
        .set(
            LinkUnspec::new_with_name(peer)
                .setns_by_fd(ns.as_raw_fd())
                .build(),
        )
        .execute()
        .await
        .map_err(netlink_err(format!(
            "moving {peer} into {}",
            peer_netns.display()
        )))
}

/// A bridge `name` (up) with `port` on it.
pub async fn add_bridge(handle: &Handle, name: &str, port: &str) -> Result<(), RigError> {
    handle
        .link()
        .add(LinkBridge::new(name).build())
        .execute()
        .await
        .map_err(netlink_err(format!("adding bridge {name}")))?;
    let bridge = link_index(handle, name).await?;
    handle
        .link()
        .set(LinkUnspec::new_with_name(port).controller(bridge).build())
        .execute()
        .await
        .map_err(netlink_err(format!("putting {port} on bridge {name}")))
}

/// A link up or down.
pub async fn set_link(handle: &Handle, name: &str, up: bool) -> Result<(), RigError> {
    let link = LinkUnspec::new_with_name(name);
    let link = if up { link.up() } else { link.down() };
    handle
        .link()
        .set(link.build())
        .execute()
        .await
        .map_err(netlink_err(format!(
            "setting {name} {}",
            if up { "up" } else { "down" }
        )))
}

/// An address on a link.
pub async fn add_address(
    handle: &Handle,
    link: &str,
    address: IpAddr,
    prefix: u8,
) -> Result<(), RigError> {
    let index = link_index(handle, link).await?;
    handle
        .address()
        .add(index, address, prefix)
        .execute()
        .await
        .map_err(netlink_err(format!("adding {address}/{prefix} to {link}")))
}

/// The default IPv4 route, via `gateway`.
pub async fn add_default_route(handle: &Handle, gateway: Ipv4Addr) -> Result<(), RigError> {
    let route = RouteMessageBuilder::<Ipv4Addr>::new()
        .gateway(gateway)
        .build();
    handle
        .route()
        .add(route)
        .execute()
        .await
        .map_err(netlink_err(format!(
            "adding the default route via {gateway}"
        )))
}

/// Writes sysctls (`net/ipv4/ip_forward` = `1` …) of the calling thread's
/// network namespace: `/proc/sys/net` shows the reader's own.
pub fn write_sysctls(settings: &[(String, &str)]) -> Result<(), RigError> {
    for (key, value) in settings {
        let path = Path::new("/proc/sys").join(key);
        std::fs::write(&path, value)
            .map_err(|e| setup(format!("{} = {value}", path.display()), e))?;
    }
    Ok(())
}

/// Destroys the calling thread's namespace's established TCP sockets (to
/// port `dport`, or all), as `ss -K` does: their owners get an error at once
/// (ECONNABORTED) instead of waiting out a dead link. Returns how many.
pub fn kill_established_tcp(dport: Option<u16>) -> Result<usize, RigError> {
    use netlink_packet_core::{
        NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
    };
    use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
    use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
    use netlink_packet_sock_diag::{SockDiagDestroy, SockDiagMessage};
    use netlink_sys::{protocols::NETLINK_SOCK_DIAG, Socket, SocketAddr};

    let io = |what: &str, e: std::io::Error| setup(format!("sock_diag {what}"), e);
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(|e| io("socket", e))?;
    socket.bind_auto().map_err(|e| io("bind", e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| io("connect", e))?;
    fn send<T: netlink_packet_core::NetlinkSerializable>(
        socket: &Socket,
        mut msg: NetlinkMessage<T>,
    ) -> Result<(), RigError> {
        msg.finalize();
        let mut buf = vec![0; msg.buffer_len()];
        msg.serialize(&mut buf);
        socket
            .send(&buf, 0)
            .map(drop)
            .map_err(|e| setup("sock_diag send", e))
    }
    let request = |family, socket_id| InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::empty(),
        states: StateFlags::ESTABLISHED,
        socket_id,
    };
    let mut victims = Vec::new();
    for (family, id) in [
        (AF_INET, SocketId::new_v4()),
        (AF_INET6, SocketId::new_v6()),
    ] {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        let dump = NetlinkMessage::new(
            header,
            SockDiagMessage::InetRequest(request(family, id)).into(),
        );
        send(&socket, dump)?;
        let mut buf = vec![0u8; 64 * 1024];
        'dump: loop {
            let n = socket
                .recv(&mut &mut buf[..], 0)
                .map_err(|e| io("recv", e))?;
            let mut at = 0;
            while at < n {
                let msg = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[at..n])
                    .map_err(|e| setup("sock_diag answer", e))?;
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        let id = r.header.socket_id;
                        if dport.is_none_or(|p| id.destination_port == p) {
                            victims.push((family, id));
                        }
                    }
                    NetlinkPayload::Done(_) => break 'dump,
                    NetlinkPayload::Error(e) => {
                        return Err(setup("sock_diag dump", format!("{e:?}")))
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                at += len;
            }
        }
    }
    for (family, id) in &victims {
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK;
        let destroy =
            SockDiagDestroy::new(SockDiagMessage::InetRequest(request(*family, id.clone())));
        send(&socket, NetlinkMessage::new(header, destroy.into()))?;
        let mut buf = vec![0u8; 4096];
        let n = socket
            .recv(&mut &mut buf[..], 0)
            .map_err(|e| io("recv", e))?;
        let ack = NetlinkMessage::<SockDiagMessage>::deserialize(&buf[..n])
            .map_err(|e| setup("sock_diag answer", e))?;
        if let NetlinkPayload::Error(e) = ack.payload {
            if e.code.is_some() {
                return Err(setup(
                    format!(
                        "destroying the TCP socket to {}:{}",
                        id.destination_address, id.destination_port
                    ),
                    format!("{e:?} (the kernel needs CONFIG_INET_DIAG_DESTROY)"),
                ));
            }
        }
    }
    Ok(victims.len())
}
