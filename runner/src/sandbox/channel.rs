//! Messages with file descriptors attached, over `SOCK_SEQPACKET` UNIX socket pairs:
//! how the runner, the launcher process and each sandbox's init talk. Every message
//! is one JSON value in one packet (boundaries are kept by the socket type), with up
//! to [`MAX_FDS`] descriptors passed alongside (`SCM_RIGHTS`).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Most descriptors one message carries.
pub const MAX_FDS: usize = 32;
/// Largest message, in bytes.
const MAX_MESSAGE: usize = 64 << 10;

/// A connected pair of packet sockets, close-on-exec.
pub fn pair() -> io::Result<(OwnedFd, OwnedFd)> {
    Ok(rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?)
}

/// Send `message` with `fds` (blocking, or `WouldBlock` on a non-blocking socket).
pub fn send<T: Serialize>(
    sock: BorrowedFd<'_>,
    message: &T,
    fds: &[BorrowedFd<'_>],
) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    if bytes.len() > MAX_MESSAGE || fds.len() > MAX_FDS {
        return Err(io::Error::other("message too large"));
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(io::Error::other("too many descriptors"));
    }
    loop {
        match rustix::net::sendmsg(
            sock,
            &[IoSlice::new(&bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// Receive one message and its descriptors. `Ok(None)` when the peer has closed.
pub fn recv<T: DeserializeOwned>(sock: BorrowedFd<'_>) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = loop {
        match rustix::net::recvmsg(
            sock,
            &mut [IoSliceMut::new(&mut buf)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(got) => break got,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = message {
            fds.extend(received);
        }
    }
    if got.bytes == 0 {
        return Ok(None);
    }
    let value = serde_json::from_slice(&buf[..got.bytes]).map_err(io::Error::other)?;
    Ok(Some((value, fds)))
}

/// The async end of a packet socket, for the runner.
pub struct AsyncChannel {
    fd: AsyncFd<OwnedFd>,
}

impl AsyncChannel {
    /// Wrap a socket (made non-blocking here). Must be called inside the runtime.
    pub fn new(sock: OwnedFd) -> io::Result<AsyncChannel> {
        rustix::io::ioctl_fionbio(&sock, true)?;
        // SAFETY: the descriptor is owned by the `OwnedFd` the AsyncFd now owns, so it
        // stays open and the same until the AsyncFd is dropped.
        let fd = unsafe { AsyncFd::register(sock) }.map_err(|e| e.into_parts().1)?;
        Ok(AsyncChannel { fd })
    }

    /// Send a message with descriptors.
    pub async fn send<T: Serialize>(&self, message: &T, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
        self.fd
            .async_io(Interest::WRITABLE, |sock| send(sock.as_fd(), message, fds))
            .await
    }

    /// Receive a message and its descriptors; `Ok(None)` once the peer has closed.
    pub async fn recv<T: DeserializeOwned>(&self) -> io::Result<Option<(T, Vec<OwnedFd>)>> {
        self.fd
            .async_io(Interest::READABLE, |sock| recv(sock.as_fd()))
            .await
    }
}
