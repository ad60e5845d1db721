//! The network inside a sandbox, set up by its init process in the sandbox's own
//! network namespace: loopback only. For a step with `net` grants, each granted
//! address is made local on loopback and gets a TCP listener, and a name server
//! address gets a UDP socket; the init process hands these sockets to the runner,
//! which forwards each accepted connection to the real address and answers name
//! lookups for granted names only ([`super::forward`]). Any other address is
//! unreachable (the namespace has no route), UDP reaches only that name server, and
//! abstract UNIX sockets of the machine do not exist in the namespace.
//!
//! Interfaces and addresses are configured with two rtnetlink requests, written out
//! here rather than pulled in from a netlink crate: the messages are fixed and short.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SocketFlags, SocketType};

use super::plan::NetPlan;

/// The name server programs in a sandbox with `net` grants are told to use.
pub const RESOLVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 83, 76, 67)), 53);

/// The contents of `/etc/resolv.conf` in a sandbox with `net` grants.
pub fn resolv_conf() -> String {
    format!(
        "# Written by sluice: names are answered only for the step's `net` grants.\nnameserver {}\noptions timeout:2 attempts:2\n",
        RESOLVER.ip()
    )
}

/// Bring loopback up (interface 1 in a new network namespace).
pub fn loopback() -> io::Result<()> {
    Netlink::open()?.link_up(1)
}

/// For `net` grants, make the granted addresses local and open the sockets the runner
/// serves. Returns the listeners, then the resolver socket.
pub fn grants(net: Option<&NetPlan>) -> io::Result<Vec<OwnedFd>> {
    let Some(net) = net else {
        return Ok(Vec::new());
    };
    let nl = Netlink::open()?;
    for addr in &net.local_addresses {
        nl.add_address(1, *addr)?;
    }
    let mut sockets: Vec<OwnedFd> = Vec::new();
    for addr in &net.listeners {
        let l = TcpListener::bind(addr)
            .map_err(|e| io::Error::other(format!("listening on {addr}: {e}")))?;
        sockets.push(l.into());
    }
    let udp = UdpSocket::bind(net.resolver)
        .map_err(|e| io::Error::other(format!("name server on {}: {e}", net.resolver)))?;
    sockets.push(udp.into());
    Ok(sockets)
}

/// An rtnetlink socket.
struct Netlink {
    fd: OwnedFd,
    seq: std::cell::Cell<u32>,
}

const NLMSG_ERROR: u16 = 2;
const RTM_NEWLINK: u16 = 16;
const RTM_NEWADDR: u16 = 20;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFF_UP: u32 = 0x1;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const RT_SCOPE_HOST: u8 = 254;

impl Netlink {
    fn open() -> io::Result<Netlink> {
        let fd = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            // NETLINK_ROUTE is protocol 0.
            None,
        )?;
        Ok(Netlink {
            fd,
            seq: std::cell::Cell::new(1),
        })
    }

    /// Send one request and wait for its acknowledgement.
    fn request(&self, kind: u16, flags: u16, body: &[u8]) -> io::Result<()> {
        let seq = self.seq.get();
        self.seq.set(seq + 1);
        let len = 16 + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&kind.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(body);
        rustix::net::send(&self.fd, &msg, rustix::net::SendFlags::empty())?;
        let mut buf = [0u8; 4096];
        let n = rustix::net::recv(&self.fd, &mut buf, rustix::net::RecvFlags::empty())?.0;
        // nlmsghdr (16) + nlmsgerr.error (4)
        if n >= 20 && u16::from_ne_bytes([buf[4], buf[5]]) == NLMSG_ERROR {
            let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
            if code != 0 {
                return Err(io::Error::from_raw_os_error(-code));
            }
            return Ok(());
        }
        Err(io::Error::other("unexpected netlink answer"))
    }

    fn link_up(&self, index: i32) -> io::Result<()> {
        // struct ifinfomsg: family, pad, type, index, flags, change.
        let mut body = vec![libc::AF_UNSPEC as u8, 0];
        body.extend_from_slice(&0u16.to_ne_bytes());
        body.extend_from_slice(&index.to_ne_bytes());
        body.extend_from_slice(&IFF_UP.to_ne_bytes());
        body.extend_from_slice(&IFF_UP.to_ne_bytes());
        self.request(RTM_NEWLINK, 0, &body)
            .map_err(|e| io::Error::other(format!("bringing loopback up: {e}")))
    }

    fn add_address(&self, index: u32, addr: IpAddr) -> io::Result<()> {
        let (family, prefix, bytes): (u8, u8, Vec<u8>) = match addr {
            IpAddr::V4(a) => (libc::AF_INET as u8, 32, a.octets().to_vec()),
            IpAddr::V6(a) => (libc::AF_INET6 as u8, 128, a.octets().to_vec()),
        };
        // struct ifaddrmsg: family, prefixlen, flags, scope, index.
        let mut body = vec![family, prefix, IFA_F_NODAD as u8, RT_SCOPE_HOST];
        body.extend_from_slice(&index.to_ne_bytes());
        for (kind, value) in [
            (IFA_LOCAL, bytes.clone()),
            (IFA_ADDRESS, bytes),
            (IFA_FLAGS, IFA_F_NODAD.to_ne_bytes().to_vec()),
        ] {
            let len = 4 + value.len();
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(&value);
            while body.len() % 4 != 0 {
                body.push(0);
            }
        }
        self.request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &body)
            .map_err(|e| io::Error::other(format!("adding {addr} to loopback: {e}")))
    }
}
