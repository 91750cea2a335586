//! Fuzzes one connection's state machine: the real `connection::serve_halves` (decoder, dispatch,
//! inline and async replies, the batching writer, back-pressure, the reply budget) on a monoio
//! runtime, over an in-memory stream instead of a socket.
//!
//! Input: byte 0 picks the knobs (tiny caps, an interceptor, how the peer reads, whether it ends
//! with EOF or a reset), byte 1 seeds the points where the rest is cut into reads, and the rest
//! is what the peer sends. Checks, for any input:
//! - no panic, and the connection ends (a hang is a libFuzzer timeout);
//! - what the server wrote is whole reply frames, each answering a request that was sent (same
//!   seq, path and method);
//! - when the peer reads everything, every request that wants a reply (not oneway, or a
//!   heartbeat) among the frames before the first malformed one gets exactly one;
//! - the worker's reply budget is back to zero bytes and zero connections afterwards.
//!
//! Handlers never sleep on a timer here (`Echo.Sleep` yields instead), and none panics:
//! libFuzzer's panic hook would count a caught handler panic as a crash.

#![no_main]

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context as TaskContext, Poll};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use monoio::buf::{IoBuf, IoBufMut, IoVecBuf, IoVecBufMut};
use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelHandle, CancelableAsyncReadRent};
use monoio::BufResult;
use ringrpc_codec::{Decoder, Limits};
use ringrpc_io::IoDriver;
use ringrpc_server::runtime::WorkerState;
use ringrpc_server::{
    connection, demo, service, Context, Interceptor, Rejection, ServerConfig, ServiceError,
    ServiceTable, WorkerId,
};

/// Knob bits of byte 0.
const SMALL_PENDING_WRITE: u8 = 1;
const ONE_IN_FLIGHT: u8 = 1 << 1;
const SMALL_BUDGET: u8 = 1 << 2;
const SMALL_LIMITS: u8 = 1 << 3;
const INTERCEPTOR: u8 = 1 << 4;
const SLOW_READER: u8 = 1 << 5;
const PEER_STOPS_READING: u8 = 1 << 6;
const ENDS_WITH_RESET: u8 = 1 << 7;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (knobs, seed, stream) = (data[0], data[1], &data[2..]);
    run(knobs, seed, stream);
});

fn run(knobs: u8, seed: u8, stream: &[u8]) {
    let on = |bit: u8| knobs & bit != 0;
    let mut config = ServerConfig::default().read_buffer(4096);
    if on(SMALL_PENDING_WRITE) {
        config = config.max_pending_write(64);
    }
    if on(ONE_IN_FLIGHT) {
        config = config.max_in_flight(1);
    }
    if on(SMALL_BUDGET) {
        config = config.max_queued_bytes(64);
    }
    if on(SMALL_LIMITS) {
        config = config.limits(Limits {
            max_frame_len: 256,
            max_decompressed_len: 256,
            max_metadata_pairs: 2,
        });
    }
    let expected = expected_replies(&config, stream, on(INTERCEPTOR));
    let written = Rc::new(RefCell::new(Vec::new()));
    let peer: SocketAddr = "127.0.0.1:7".parse().unwrap();
    let reader = ChunkedReader {
        chunks: cut(stream, seed),
        reset_at_end: on(ENDS_WITH_RESET),
    };
    let writer = Sink {
        written: written.clone(),
        // A slow reader takes a few bytes per write; one that stops reading fails the write
        // after a few hundred bytes (a reset mid-reply).
        piece: if on(SLOW_READER) {
            1 + seed as usize % 7
        } else {
            usize::MAX
        },
        fail_after: on(PEER_STOPS_READING).then_some(seed as usize * 3),
    };
    let with_interceptor = on(INTERCEPTOR);
    let config = Rc::new(config);
    ringrpc_io::block_on(IoDriver::Epoll, 64, move || async move {
        let worker = Rc::new(WorkerState::new(
            ringrpc_server::WorkerId(0),
            &config,
            Default::default(),
        ));
        let table = Rc::new(table(with_interceptor));
        // No fd: the connection is registered as the accept loop would, with nothing to shut down.
        let (key, entry) = worker.register(-1, peer);
        connection::serve_halves(
            reader,
            writer,
            peer,
            table,
            config.clone(),
            worker.clone(),
            entry.clone(),
        )
        .await;
        worker.unregister(key);
        drop(entry);
        let budget = &worker.limits().budget;
        assert_eq!(budget.queued(), 0, "queued reply bytes left in the budget");
        assert_eq!(budget.connections(), 0);
    })
    .expect("an epoll runtime");

    check_replies(&written.borrow(), &expected, !on(PEER_STOPS_READING));
}

/// A reply the peer may get: seq, path, method.
type Key = (u64, Vec<u8>, Vec<u8>);

/// The replies owed for `stream`: one per frame before the first malformed one, except oneway
/// requests (heartbeats are answered even when oneway), up to a `Close` rejection.
fn expected_replies(config: &ServerConfig, stream: &[u8], interceptor: bool) -> Vec<Key> {
    let decoder = Decoder::new(config.limits);
    let mut buf = bytes::BytesMut::from(stream);
    let mut owed = Vec::new();
    while let Ok(Some(msg)) = decoder.decode(&mut buf) {
        let key = (
            msg.seq(),
            msg.service_path().to_vec(),
            msg.service_method().to_vec(),
        );
        if msg.is_heartbeat() {
            owed.push(key);
            continue;
        }
        let closes = interceptor && msg.service_method() == b"Close";
        if !msg.is_oneway() {
            owed.push(key);
        }
        if closes {
            break;
        }
    }
    owed
}

/// Every frame written must be a whole reply to a request owed one; when the peer read
/// everything, the replies must be exactly those owed.
fn check_replies(written: &[u8], owed: &[Key], complete: bool) {
    let decoder = Decoder::new(Limits::unlimited());
    let mut buf = bytes::BytesMut::from(written);
    let mut left: HashMap<Key, usize> = HashMap::new();
    for key in owed {
        *left.entry(key.clone()).or_default() += 1;
    }
    loop {
        match decoder.decode(&mut buf) {
            Ok(Some(reply)) => {
                assert!(reply.header().is_response(), "a frame that is not a reply");
                let key = (
                    reply.seq(),
                    reply.service_path().to_vec(),
                    reply.service_method().to_vec(),
                );
                let count = left.get_mut(&key).expect("a reply to no request sent");
                assert!(*count > 0, "two replies to one request: {key:?}");
                *count -= 1;
            }
            Ok(None) => break,
            Err(e) => panic!("the server wrote a malformed frame: {e}"),
        }
    }
    if complete {
        assert!(buf.is_empty(), "a partial reply frame at the end");
        let missing: Vec<_> = left.iter().filter(|(_, &n)| n > 0).collect();
        assert!(missing.is_empty(), "requests never answered: {missing:?}");
    }
}

/// Cuts `stream` into reads of 1 to 64 bytes (sometimes 4 KiB), from a xorshift seeded by `seed`.
fn cut(stream: &[u8], seed: u8) -> VecDeque<Vec<u8>> {
    let mut state = u32::from(seed) | 0x9e37_7900;
    let mut chunks = VecDeque::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let len = if state % 8 == 0 {
            4096
        } else {
            1 + state as usize % 64
        };
        let (chunk, after) = rest.split_at(len.min(rest.len()));
        chunks.push_back(chunk.to_vec());
        rest = after;
    }
    chunks
}

/// The table: the demo's Arith and KV, and an `Echo` whose `Sleep` yields instead of sleeping.
fn table(interceptor: bool) -> ServiceTable {
    let builder = ServiceTable::builder()
        .service(demo::Arith)
        .and_then(|b| b.service(FuzzEcho))
        .and_then(|b| b.service(demo::Kv::new(WorkerId(0))))
        .expect("the fuzz table registers");
    if interceptor {
        builder.interceptor(Gate).build()
    } else {
        builder.build()
    }
}

/// `Echo` as the demo's (the payload borrowed), without a timer; `EchoBytes` the same echo with
/// the payload as `Bytes`.
struct FuzzEcho;

#[service(name = "Echo")]
impl FuzzEcho {
    pub fn echo<'a>(&self, ctx: &Context, payload: &'a [u8]) -> Result<&'a [u8], ServiceError> {
        echo_metadata(ctx);
        Ok(payload)
    }

    pub fn echo_bytes(&self, ctx: &Context, payload: Bytes) -> Result<Bytes, ServiceError> {
        echo_metadata(ctx);
        Ok(payload)
    }

    /// An async method: yields (payload length % 4) times, so replies finish out of order.
    pub async fn sleep(&self, payload: Bytes) -> Result<Bytes, ServiceError> {
        for _ in 0..payload.len() % 4 {
            YieldNow(false).await;
        }
        Ok(payload)
    }
}

/// The request's metadata, set as the response's (the demo Echo's rule).
fn echo_metadata(ctx: &Context) {
    for (key, value) in ctx.metadata() {
        ctx.set_response_metadata(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
    }
}

/// Rejects method `Reject`, and rejects and closes on method `Close`.
struct Gate;

impl Interceptor for Gate {
    fn before_call(&self, ctx: &Context) -> Result<(), Rejection> {
        match ctx.request().service_method() {
            b"Reject" => Err(Rejection::new("rejected")),
            b"Close" => Err(Rejection::new("closing").and_close()),
            _ => Ok(()),
        }
    }
}

/// Gives the other tasks one turn.
struct YieldNow(bool);

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<()> {
        if self.0 {
            return Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// The peer's side as the server reads it: the chunks in order, then EOF or a reset.
struct ChunkedReader {
    chunks: VecDeque<Vec<u8>>,
    reset_at_end: bool,
}

/// Read as usual, chunk by chunk: an in-memory stream has no readiness to wait for.
impl connection::WaitReadable for ChunkedReader {}

impl AsyncReadRent for ChunkedReader {
    async fn read<T: IoBufMut>(&mut self, mut buf: T) -> BufResult<usize, T> {
        // Between two reads the handlers and the writer run, as they would between two packets.
        YieldNow(false).await;
        let Some(chunk) = self.chunks.front_mut() else {
            return if self.reset_at_end {
                (Err(io::ErrorKind::ConnectionReset.into()), buf)
            } else {
                (Ok(0), buf)
            };
        };
        let n = chunk.len().min(buf.bytes_total());
        // SAFETY: `write_ptr` points at `bytes_total` writable bytes of `buf`, and `n` is at most
        // that; `set_init(n)` then declares exactly the bytes copied, as a socket read does.
        unsafe {
            std::ptr::copy_nonoverlapping(chunk.as_ptr(), buf.write_ptr(), n);
            buf.set_init(n);
        }
        chunk.drain(..n);
        if chunk.is_empty() {
            self.chunks.pop_front();
        }
        (Ok(n), buf)
    }

    async fn readv<T: IoVecBufMut>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(io::ErrorKind::Unsupported.into()), buf)
    }
}

/// The sweeper never runs here (no time passes), so a cancelable read is a plain one.
impl CancelableAsyncReadRent for ChunkedReader {
    async fn cancelable_read<T: IoBufMut>(
        &mut self,
        buf: T,
        _: CancelHandle,
    ) -> BufResult<usize, T> {
        self.read(buf).await
    }

    async fn cancelable_readv<T: IoVecBufMut>(
        &mut self,
        buf: T,
        _: CancelHandle,
    ) -> BufResult<usize, T> {
        self.readv(buf).await
    }
}

/// The peer's side as the server writes it: takes `piece` bytes per write, and fails every write
/// once `fail_after` bytes are in.
struct Sink {
    written: Rc<RefCell<Vec<u8>>>,
    piece: usize,
    fail_after: Option<usize>,
}

impl AsyncWriteRent for Sink {
    async fn write<T: IoBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        YieldNow(false).await;
        let mut written = self.written.borrow_mut();
        let mut n = buf.bytes_init().min(self.piece);
        if let Some(limit) = self.fail_after {
            if written.len() >= limit {
                return (Err(io::ErrorKind::ConnectionReset.into()), buf);
            }
            n = n.min(limit - written.len());
        }
        // SAFETY: `read_ptr` points at `bytes_init` initialised bytes of `buf`, and n <= that.
        let bytes = unsafe { std::slice::from_raw_parts(buf.read_ptr(), n) };
        written.extend_from_slice(bytes);
        (Ok(n), buf)
    }

    async fn writev<T: IoVecBuf>(&mut self, buf: T) -> BufResult<usize, T> {
        (Err(io::ErrorKind::Unsupported.into()), buf)
    }

    async fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    async fn shutdown(&mut self) -> io::Result<()> {
        Ok(())
    }
}
