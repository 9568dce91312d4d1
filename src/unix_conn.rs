//! A client connection on the Unix socket, registered with the event loop for
//! reading only.
//!
//! tokio registers a socket for reading and writing, edge-triggered. On a Unix
//! socket the kernel signals write space every time the client takes a reply,
//! so each unpipelined request woke the server twice: 2 voluntary context
//! switches per PING against Redis's 1, and about 35% more CPU per request
//! (`benches/pairs_cpu.sh`). Redis asks for writability only while output is
//! pending, and so does this: a write that would block registers a duplicate
//! of the descriptor for writability until a write goes through.

use std::io::{self, Write};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

/// A Unix-socket connection that waits for writability only when a write
/// would block.
pub struct UnixConn {
    io: AsyncFd<UnixStream>,
    /// While output waits for room: a duplicate descriptor registered for
    /// writability (an epoll entry is per descriptor, so the original keeps
    /// its read-only one).
    room: Option<AsyncFd<OwnedFd>>,
}

impl UnixConn {
    /// Takes an accepted stream over from tokio's registration.
    pub fn new(stream: tokio::net::UnixStream) -> io::Result<Self> {
        let stream = stream.into_std()?;
        stream.set_nonblocking(true)?;
        // SAFETY: the stream owns its descriptor, which stays open and the
        // same for as long as the `AsyncFd` holds the stream.
        let io = unsafe { AsyncFd::register_with_interest(stream, Interest::READABLE) }?;
        Ok(UnixConn { io, room: None })
    }
}

impl AsRawFd for UnixConn {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

impl AsyncRead for UnixConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            let mut ready = ready!(this.io.poll_read_ready(cx))?;
            // SAFETY: read(2) only writes into the unfilled part; the bytes it
            // reports are then initialized.
            let unfilled = unsafe { buf.unfilled_mut() };
            let want = unfilled.len();
            let read = ready.try_io(|io| {
                let n = unsafe { libc::read(io.as_raw_fd(), unfilled.as_mut_ptr().cast(), want) };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            });
            match read {
                Ok(Ok(n)) => {
                    // A short read took everything there was: wait for the next
                    // edge instead of reading again into EAGAIN (as tokio does).
                    if n > 0 && n < want {
                        ready.clear_ready();
                    }
                    unsafe { buf.assume_init(n) };
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => {}
            }
        }
    }
}

impl AsyncWrite for UnixConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            if let Some(room) = &this.room {
                ready!(room.poll_write_ready(cx))?.clear_ready();
            }
            match this.io.get_ref().write(data) {
                Ok(n) => {
                    this.room = None;
                    return Poll::Ready(Ok(n));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if this.room.is_none() {
                        // Registering reports room that appeared meanwhile.
                        let dup = this.io.get_ref().as_fd().try_clone_to_owned()?;
                        // SAFETY: as in `new`: `dup` owns its descriptor.
                        let room =
                            unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) }?;
                        this.room = Some(room);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.io.get_ref().shutdown(Shutdown::Write))
    }
}
