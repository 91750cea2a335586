//! The socket of a connection that is not binary rpcx (HTTP, TLS): a `TcpStream` whose writes go
//! through `writev` instead of `write`.
//!
//! Why: with fat LTO, the binary loop's `TcpStream::write` (and the `send` op under it) was
//! inlined because it had a single caller; a second caller in the HTTP or TLS code made LLVM
//! outline it, costing every binary request about 250 instructions (callgrind, echo at one
//! request in flight). Writing these rare connections' bytes through another entry point keeps
//! the binary path's code as it was. Reads are unchanged.

use std::future::Future;

use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, Split};
use monoio::net::TcpStream;
use monoio::BufResult;

/// A socket whose writes are vectored (see the module doc).
pub struct ColdTcp(pub TcpStream);

// SAFETY: the read and write halves of a `TcpStream` may be used at once (monoio implements
// `Split` for it); this wrapper adds no state of its own.
unsafe impl Split for ColdTcp {}

impl AsyncReadRent for ColdTcp {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.0.read(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.0.readv(buf)
    }
}

impl AsyncWriteRent for ColdTcp {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        let (result, one) = self.0.writev(OneSlice::new(buf)).await;
        (result, one.buf)
    }

    fn writev<T: IoVecBuf>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.0.writev(buf)
    }

    fn flush(&mut self) -> impl Future<Output = std::io::Result<()>> {
        self.0.flush()
    }

    fn shutdown(&mut self) -> impl Future<Output = std::io::Result<()>> {
        self.0.shutdown()
    }
}

/// One buffer as a one-element iovec array.
struct OneSlice<T> {
    buf: T,
    /// Boxed: the kernel reads it through the pointer handed out, which must not move with `self`.
    iovec: Box<libc::iovec>,
}

impl<T: IoBuf> OneSlice<T> {
    fn new(buf: T) -> Self {
        let iovec = Box::new(libc::iovec {
            iov_base: buf.read_ptr() as *mut libc::c_void,
            iov_len: buf.bytes_init(),
        });
        OneSlice { buf, iovec }
    }
}

// SAFETY: the iovec points at `buf`'s initialised bytes, which `IoBuf` guarantees stay put while
// `buf` is owned (here, by `self`, for as long as the write holds it); the iovec itself is boxed,
// so its address does not change when `self` moves.
unsafe impl<T: IoBuf> IoVecBuf for OneSlice<T> {
    fn read_iovec_ptr(&self) -> *const libc::iovec {
        &*self.iovec
    }

    fn read_iovec_len(&self) -> usize {
        1
    }
}
