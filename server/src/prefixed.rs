//! Readers that hand on bytes already read: [`Prefixed`] replays a buffer before reading its
//! stream (the bytes that followed a CONNECT request, or the first bytes read after a TLS
//! handshake to tell the protocol), and [`Uncancelable`] gives a stream without cancellable
//! reads (TLS) the `CancelableAsyncReadRent` the connection loop asks for.
//!
//! They only move bytes: no parsing, no buffering of their own.

use std::future::Future;

use bytes::{Buf, BytesMut};
use monoio::buf::{IoBufMut, IoVecBufMut, RawBuf};
use monoio::io::{AsyncReadRent, CancelHandle, CancelableAsyncReadRent};
use monoio::BufResult;
use ringrpc_io::OwnInstance;

/// A reader that yields `prefix` first, then reads `inner`.
pub struct Prefixed<R> {
    prefix: BytesMut,
    inner: R,
}

impl<R> Prefixed<R> {
    pub fn new(prefix: BytesMut, inner: R) -> Self {
        Prefixed { prefix, inner }
    }

    /// Copies what `buf` can take of the prefix into it; `None` once the prefix is spent.
    fn replay<T: IoBufMut>(&mut self, buf: &mut T) -> Option<usize> {
        if self.prefix.is_empty() {
            return None;
        }
        let n = self.prefix.len().min(buf.bytes_total());
        // SAFETY: `write_ptr` is valid for `bytes_total` bytes (IoBufMut's contract), n is at most
        // that, and the source is `n` initialised bytes of our own buffer, which cannot overlap
        // a buffer the caller owns.
        unsafe {
            buf.write_ptr()
                .copy_from_nonoverlapping(self.prefix.as_ptr(), n);
            buf.set_init(n);
        }
        self.prefix.advance(n);
        Some(n)
    }

    fn replay_vectored<T: IoVecBufMut>(&mut self, buf: &mut T) -> Option<usize> {
        if self.prefix.is_empty() {
            return None;
        }
        // SAFETY: the raw buffer views the first iovec of `buf`, which outlives this call; it is
        // written synchronously here and not kept.
        let n = match unsafe { RawBuf::new_from_iovec_mut(buf) } {
            Some(mut raw) => self.replay(&mut raw).unwrap_or(0),
            None => 0,
        };
        // SAFETY: `n` bytes of the first iovec were just written.
        unsafe { buf.set_init(n) };
        Some(n)
    }
}

/// The read site of [`Prefixed`] (see [`ringrpc_io::read_instance`]): these rare connections'
/// reads are other instances of monoio's read futures than the binary loop's (after CONNECT
/// shared the plain TCP read's instance, every binary request paid about 250 instructions more).
enum ReplayedRead {}

impl<R: AsyncReadRent> AsyncReadRent for Prefixed<R> {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        match self.replay(&mut buf) {
            Some(n) => (Ok(n), buf),
            None => {
                let (result, buf) = self
                    .inner
                    .read(OwnInstance::<_, ReplayedRead>::new(buf))
                    .await;
                let buf = buf.into_inner();
                (result, buf)
            }
        }
    }

    async fn readv<T: IoVecBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        match self.replay_vectored(&mut buf) {
            Some(n) => (Ok(n), buf),
            None => self.inner.readv(buf).await,
        }
    }
}

impl<R: CancelableAsyncReadRent> CancelableAsyncReadRent for Prefixed<R> {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        mut buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self.replay(&mut buf) {
            Some(n) => (Ok(n), buf),
            None => {
                let (result, buf) = self
                    .inner
                    .cancelable_read(OwnInstance::<_, ReplayedRead>::new(buf), c)
                    .await;
                let buf = buf.into_inner();
                (result, buf)
            }
        }
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        mut buf: T,
        c: CancelHandle,
    ) -> BufResult<usize, T> {
        match self.replay_vectored(&mut buf) {
            Some(n) => (Ok(n), buf),
            None => self.inner.cancelable_readv(buf, c).await,
        }
    }
}

/// Readable at once while replayed bytes wait; then as the stream it wraps.
impl<R: crate::connection::WaitReadable> crate::connection::WaitReadable for Prefixed<R> {
    async fn wait_readable(&mut self) -> bool {
        if !self.prefix.is_empty() {
            return true;
        }
        self.inner.wait_readable().await
    }
}

/// A reader whose reads cannot be cancelled: a cancel is ignored and the read goes on.
///
/// For TLS, whose reads run through rustls's buffers: the sweeper's cancel of a quiet streaming
/// connection's read (to take its large buffer back) then does nothing, so a streaming TLS
/// connection keeps its large buffer while it is quiet. Timeouts are unaffected: they shut the
/// socket down, which ends any read.
pub struct Uncancelable<R>(pub R);

/// Read as usual: the bytes already taken, or rustls's buffered plaintext, may be waiting.
impl<R> crate::connection::WaitReadable for Uncancelable<R> {}

impl<R: AsyncReadRent> AsyncReadRent for Uncancelable<R> {
    fn read<T: IoBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.0.read(buf)
    }

    fn readv<T: IoVecBufMut>(&mut self, buf: T) -> impl Future<Output = BufResult<usize, T>> {
        self.0.readv(buf)
    }
}

impl<R: AsyncReadRent> CancelableAsyncReadRent for Uncancelable<R> {
    fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        _ignored: CancelHandle,
    ) -> impl Future<Output = BufResult<usize, T>> {
        self.0.read(buf)
    }

    fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        _ignored: CancelHandle,
    ) -> impl Future<Output = BufResult<usize, T>> {
        self.0.readv(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_comes_first_then_the_stream() {
        let mut runtime = monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .build()
            .unwrap();
        runtime.block_on(read_all());
    }

    async fn read_all() {
        let rest: &[u8] = b"world";
        let mut reader = Prefixed::new(BytesMut::from(&b"hello "[..]), rest);
        let mut got = Vec::new();
        loop {
            let (n, buf) = reader.read(Vec::with_capacity(4)).await;
            let n = n.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"hello world");
    }
}
