//! [`OwnInstance`]: a read buffer under a type of its own, so that a read call site gets its own
//! instance of monoio's read future.
//!
//! Why: under fat LTO, one instance of monoio's read future awaited from two places is inlined
//! into neither, and the connection loop then pays for the call and the moves of the operation
//! on every read (callgrind, 581-byte Echo at 10 connections x 1 in flight: about 95
//! instructions per request for the binary loop's plain and cancelable reads sharing one
//! instance, about 250 when CONNECT's replayed reads shared it too). Wrapping the buffer in
//! `OwnInstance<T, Site>` with a `Site` type per call site makes each call site's future a
//! distinct instance, inlined where it is awaited.

use std::marker::PhantomData;

use monoio::buf::IoBufMut;

/// `T`, read into at the call site that `Site` names.
pub struct OwnInstance<T, Site>(T, PhantomData<fn() -> Site>);

impl<T, Site> OwnInstance<T, Site> {
    #[inline]
    pub fn new(buf: T) -> Self {
        OwnInstance(buf, PhantomData)
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.0
    }
}

// SAFETY: every method forwards to `T`'s own `IoBufMut` implementation, so its guarantees (a
// stable pointer while the runtime holds the buffer, `set_init` within the room) are `T`'s.
unsafe impl<T: IoBufMut, Site: 'static> IoBufMut for OwnInstance<T, Site> {
    #[inline]
    fn write_ptr(&mut self) -> *mut u8 {
        self.0.write_ptr()
    }

    #[inline]
    fn bytes_total(&mut self) -> usize {
        self.0.bytes_total()
    }

    #[inline]
    unsafe fn set_init(&mut self, pos: usize) {
        // SAFETY: the caller's guarantee for `pos` is the one `T` asks for.
        unsafe { self.0.set_init(pos) }
    }
}
