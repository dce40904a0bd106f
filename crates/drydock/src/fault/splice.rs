//! Zero-copy forwarding for a link that no toxic touches: the bytes go from one socket into a
//! pipe and from the pipe into the other socket inside the kernel (`splice(2)`), never through
//! the proxy's memory. This is what lets a proxy with no fault move bulk data at nearly the
//! speed of a direct connection.
//!
//! Each step is cancel-safe where the link needs it: [`Pipe::fill`] either moves bytes into the
//! pipe within one poll or moves none, so a toxic that arrives while a pump waits for data
//! switches the pump to its buffered path with nothing in flight; [`Pipe::drain`] always runs
//! to the end, so the pipe is empty whenever the pump switches.

use std::{io, os::fd::OwnedFd};

use rustix::pipe::{fcntl_setpipe_size, pipe_with, splice, PipeFlags, SpliceFlags};
use tokio::{io::Interest, net::TcpStream};

/// The pipe's capacity, and so the most one splice moves: as large as an unprivileged process
/// may ask for (`/proc/sys/fs/pipe-max-size` defaults to 1 MiB); fewer, larger moves for bulk.
const PIPE_SIZE: usize = 1 << 20;

/// A pipe between two sockets: one per direction of a link.
pub(super) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    /// What the pipe could be grown to (the default 64 KiB when growing is refused).
    capacity: usize,
}

impl Pipe {
    pub(super) fn new() -> io::Result<Self> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
        // A smaller pipe only means more splices: keep the default when the limit refuses.
        let capacity = fcntl_setpipe_size(&write, PIPE_SIZE).unwrap_or(64 * 1024);
        Ok(Pipe {
            read,
            write,
            capacity,
        })
    }

    /// Waits for `source` to have data and moves what it has into the (empty) pipe; 0 at the
    /// end of the stream.
    pub(super) async fn fill(&self, source: &TcpStream) -> io::Result<usize> {
        loop {
            source.readable().await?;
            let moved = source.try_io(Interest::READABLE, || {
                self.try_fill(source)?
                    .ok_or_else(|| io::ErrorKind::WouldBlock.into())
            });
            match moved {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                moved => return moved,
            }
        }
    }

    /// Moves what `source` has into the (empty) pipe without waiting: `None` when it has
    /// nothing yet. It asks the socket itself, not the runtime's readiness, so that a caller
    /// spinning for an answer sees it as soon as the kernel has it.
    pub(super) fn try_fill(&self, source: &TcpStream) -> io::Result<Option<usize>> {
        match splice(
            source,
            None,
            &self.write,
            None,
            self.capacity,
            SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
        ) {
            Ok(moved) => Ok(Some(moved)),
            Err(rustix::io::Errno::AGAIN) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves `len` bytes from the pipe into `sink`, waiting while the sink's buffer is full.
    pub(super) async fn drain(&self, sink: &TcpStream, mut len: usize) -> io::Result<()> {
        while len > 0 {
            sink.writable().await?;
            let moved = sink.try_io(Interest::WRITABLE, || {
                Ok(splice(
                    &self.read,
                    None,
                    sink,
                    None,
                    len,
                    SpliceFlags::NONBLOCK | SpliceFlags::MOVE,
                )?)
            });
            match moved {
                Ok(n) => len -= n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
