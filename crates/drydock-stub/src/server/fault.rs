//! Connection-level faults: the socket misbehaves where hyper would have written the response.
//!
//! hyper owns the connection, so the service cannot touch the socket. Instead the service puts
//! the fault in the connection's [`FaultSlot`] and returns a response as usual; when hyper starts
//! writing it, [`FaultIo`] writes what the fault calls for instead and fails the write, which
//! makes hyper drop (close) the connection.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{ready, Context, Poll},
    time::Duration,
};

use rand::RngCore;
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
};

use crate::model::Fault;

/// The headers of a chunked response followed by a chunk that is not one (WireMock's bytes).
const MALFORMED_CHUNK: &[u8] =
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nlskdu018973t09sylgasjkfg1][]'./.sdlv";

/// The fault the next response of a connection is to suffer.
#[derive(Debug, Default)]
pub(crate) struct FaultSlot(Mutex<Option<Fault>>);

impl FaultSlot {
    pub fn set(&self, fault: Fault) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(fault);
    }

    fn take(&self) -> Option<Fault> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

enum State {
    PassThrough,
    /// Writing bytes of our own, then closing.
    Writing {
        bytes: Vec<u8>,
        at: usize,
    },
    /// Letting hyper's bytes through until the budget is spent, then closing.
    Limited {
        remaining: usize,
    },
    /// Closing: with a FIN, or (for a reset) by dropping with SO_LINGER 0, which sends RST.
    Closing {
        reset: bool,
    },
}

/// A TCP stream that can be made to misbehave (see the module docs).
pub(crate) struct FaultIo {
    inner: TcpStream,
    slot: Arc<FaultSlot>,
    state: State,
}

impl FaultIo {
    pub fn new(inner: TcpStream, slot: Arc<FaultSlot>) -> Self {
        FaultIo {
            inner,
            slot,
            state: State::PassThrough,
        }
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "drydock-stub fault injected",
    )
}

impl AsyncRead for FaultIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for FaultIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::PassThrough => match this.slot.take() {
                    None => return Pin::new(&mut this.inner).poll_write(cx, buf),
                    Some(fault) => {
                        this.state = match fault {
                            Fault::ConnectionResetByPeer => {
                                socket2::SockRef::from(&this.inner)
                                    .set_linger(Some(Duration::ZERO))?;
                                State::Closing { reset: true }
                            }
                            Fault::EmptyResponse => State::Closing { reset: false },
                            Fault::MalformedResponseChunk => State::Writing {
                                bytes: MALFORMED_CHUNK.to_vec(),
                                at: 0,
                            },
                            Fault::RandomDataThenClose => {
                                let mut bytes = vec![0u8; 64];
                                rand::rng().fill_bytes(&mut bytes);
                                // Never looks like the start of an HTTP response.
                                bytes[0] = 0xFF;
                                State::Writing { bytes, at: 0 }
                            }
                            Fault::CloseAfterBytes(n) => State::Limited { remaining: n },
                        }
                    }
                },
                State::Writing { bytes, at } => {
                    while *at < bytes.len() {
                        let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*at..]))?;
                        *at += n;
                    }
                    this.state = State::Closing { reset: false };
                }
                State::Limited { remaining } => {
                    if *remaining == 0 {
                        this.state = State::Closing { reset: false };
                        continue;
                    }
                    let allowed = buf.len().min(*remaining);
                    let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..allowed]))?;
                    *remaining -= n;
                    return Poll::Ready(Ok(n));
                }
                State::Closing { reset } => {
                    if !*reset {
                        // Best effort: the peer may be gone already.
                        let _ = ready!(Pin::new(&mut this.inner).poll_shutdown(cx));
                    }
                    return Poll::Ready(Err(aborted()));
                }
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
