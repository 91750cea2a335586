//! The pipelined rpcx client: the pieces one connection is made of.
//!
//! - [`Window`]: the requests in flight on a connection, found by seq in O(1), with no allocation
//!   after it is built.
//! - [`Outbox`]: the next write, many pre-encoded frames with their seq patched in.
//! - [`Inbox`]: the read buffer; it splits replies off in place and parses a [`Message`] only when
//!   asked (to verify a reply or read an error's text).
//! - [`connect`] opens a connection the way the load wants it (TCP_NODELAY), and [`Client`] is a
//!   one-call-at-a-time client over the same pieces, for tests and tools.
//!
//! Any rpcx server can be on the other side: seqs are opaque to servers (rpcx-protocol.md 5), the
//! frames are plain rpcx, replies are matched by seq only and may come in any order.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use monoio::io::AsyncWriteRentExt;
use monoio::net::TcpStream;
use ringrpc_codec::{DecodeError, Decoder, Limits, Message, HEADER_LEN};
use ringrpc_io::FrameReader;

/// Where the seq sits in the 16-byte prefix (rpcx-protocol.md 1.1: bytes 4..12, big-endian).
const SEQ_AT: std::ops::Range<usize> = 4..12;

/// What the window remembers about one request in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InFlight {
    /// The request's seq on the wire.
    pub seq: u64,
    /// When the request was (or, in an open loop, should have been) sent, in the run's clock.
    pub start_ns: u64,
    /// Index of its [`crate::workload::RequestKind`].
    pub kind: u16,
    /// Sent after the warm-up: its latency counts.
    pub measured: bool,
}

/// The requests in flight on one connection, at most `limit` of them.
///
/// A request's seq carries its slot: `seq = (n << slot_bits) | slot`, where `n` counts the requests
/// of the connection. Finding a reply's request is an index, and a late reply to a slot that was
/// since reused does not match (its `n` differs). Servers echo seqs without looking (spec 5).
#[derive(Debug)]
pub struct Window {
    slots: Vec<Option<InFlight>>,
    free: Vec<u32>,
    slot_bits: u32,
    opened: u64,
}

impl Window {
    /// A window for up to `limit` requests in flight (at least one).
    pub fn new(limit: usize) -> Self {
        let limit = limit.max(1);
        let slot_bits = limit.next_power_of_two().trailing_zeros();
        Window {
            slots: vec![None; limit],
            // Popped from the end: slot 0 goes first.
            free: (0..limit as u32).rev().collect(),
            slot_bits,
            opened: 0,
        }
    }

    /// How many more requests may be sent now.
    pub fn room(&self) -> usize {
        self.free.len()
    }

    pub fn in_flight(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.free.len() == self.slots.len()
    }

    /// Takes a slot for a new request and returns its seq; `None` when the window is full.
    pub fn open(&mut self, kind: u16, start_ns: u64, measured: bool) -> Option<u64> {
        let slot = self.free.pop()?;
        let seq = (self.opened << self.slot_bits) | slot as u64;
        self.opened += 1;
        self.slots[slot as usize] = Some(InFlight {
            seq,
            start_ns,
            kind,
            measured,
        });
        Some(seq)
    }

    /// Closes the request with this seq and returns it; `None` if no such request is in flight.
    pub fn close(&mut self, seq: u64) -> Option<InFlight> {
        let slot = (seq & ((1u64 << self.slot_bits) - 1)) as usize;
        match self.slots.get(slot) {
            Some(Some(request)) if request.seq == seq => {
                let request = *request;
                self.slots[slot] = None;
                self.free.push(slot as u32);
                Some(request)
            }
            _ => None,
        }
    }

    /// Closes every request in flight (the connection is gone), returning them.
    pub fn drain(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        self.free.clear();
        self.free.extend((0..self.slots.len() as u32).rev());
        self.slots.iter_mut().filter_map(Option::take)
    }
}

/// The next write of a connection: whole request frames, back to back.
#[derive(Debug, Default)]
pub struct Outbox {
    buf: Vec<u8>,
}

impl Outbox {
    pub fn with_capacity(capacity: usize) -> Self {
        Outbox {
            buf: Vec::with_capacity(capacity),
        }
    }

    /// Appends a pre-encoded request frame with `seq` written into its prefix.
    pub fn push(&mut self, frame: &[u8], seq: u64) {
        debug_assert!(frame.len() >= HEADER_LEN);
        let at = self.buf.len();
        self.buf.extend_from_slice(frame);
        self.buf[at + SEQ_AT.start..at + SEQ_AT.end].copy_from_slice(&seq.to_be_bytes());
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Writes everything in one `write_all` and empties the outbox, keeping its capacity.
    pub async fn flush<W: AsyncWriteRentExt>(&mut self, writer: &mut W) -> io::Result<()> {
        let buf = std::mem::take(&mut self.buf);
        let (res, mut buf) = writer.write_all(buf).await;
        buf.clear();
        self.buf = buf;
        res.map(|_| ())
    }
}

/// The read side of a connection: the project's one frame reader, replies split off in place.
pub type Inbox = FrameReader;

/// An inbox that asks the socket for at least `read_size` bytes of room per read.
pub fn inbox(read_size: usize) -> Inbox {
    // Replies are as large as the server makes them; the bench trusts its server.
    FrameReader::new(
        BytesMut::with_capacity(read_size * 2),
        Decoder::new(Limits::unlimited()),
        read_size,
    )
}

/// Opens a TCP connection with TCP_NODELAY, on the current monoio runtime.
pub async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_addr(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Why a call of [`Client`] failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("connection: {0}")]
    Io(#[from] io::Error),
    #[error("undecodable reply: {0}")]
    Decode(#[from] DecodeError),
    #[error("the server closed the connection")]
    Closed,
}

/// A one-request-at-a-time rpcx client: sends a frame, waits for the reply with the same seq.
/// For tests and tools; the load uses the pieces above with many requests in flight.
pub struct Client {
    stream: TcpStream,
    outbox: Outbox,
    inbox: Inbox,
    next_seq: u64,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> io::Result<Self> {
        Ok(Client {
            stream: connect(addr).await?,
            outbox: Outbox::with_capacity(4096),
            inbox: inbox(64 * 1024),
            next_seq: 0,
        })
    }

    /// Sends `frame` (a whole request; its seq is replaced by the client's next one) and returns the
    /// reply. Replies with other seqs (none, with one call at a time) and server pushes are skipped.
    pub async fn call(&mut self, frame: &[u8]) -> Result<Message, CallError> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outbox.push(frame, seq);
        self.outbox.flush(&mut self.stream).await?;
        loop {
            while let Some((header, len)) = self.inbox.peek()? {
                if header.is_response() && header.seq() == seq {
                    return Ok(self.inbox.take(len)?);
                }
                self.inbox.skip(len);
            }
            if self.inbox.fill(&mut self.stream).await? == 0 {
                return Err(CallError::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringrpc_codec::{encode_frame, encode_reply, Header, MessageType};

    #[test]
    fn window_finds_requests_by_seq_and_refuses_strangers() {
        let mut window = Window::new(3);
        let a = window.open(0, 10, true).unwrap();
        let b = window.open(1, 20, false).unwrap();
        let c = window.open(0, 30, true).unwrap();
        assert_eq!(window.open(0, 40, true), None);
        assert_eq!(window.in_flight(), 3);
        assert_eq!(window.room(), 0);

        let got = window.close(b).unwrap();
        assert_eq!((got.kind, got.start_ns, got.measured), (1, 20, false));
        assert_eq!(window.close(b), None, "closed twice");
        assert_eq!(window.close(12345), None, "never sent");

        // The freed slot is reused with a different seq: a late duplicate of `b` does not match.
        let d = window.open(0, 50, true).unwrap();
        assert_ne!(d, b);
        assert_eq!(d & 3, b & 3);
        assert_eq!(window.close(b), None);
        assert_eq!(window.close(d).unwrap().start_ns, 50);
        assert_eq!(window.close(a).unwrap().start_ns, 10);
        assert_eq!(window.close(c).unwrap().start_ns, 30);
        assert!(window.is_empty());
    }

    #[test]
    fn window_drain_returns_everything_in_flight() {
        let mut window = Window::new(4);
        for i in 0..3 {
            window.open(0, i, true).unwrap();
        }
        let mut starts: Vec<u64> = window.drain().map(|r| r.start_ns).collect();
        starts.sort();
        assert_eq!(starts, [0, 1, 2]);
        assert!(window.is_empty());
        assert_eq!(window.room(), 4);
    }

    #[test]
    fn seqs_are_unique_over_many_rounds() {
        let mut window = Window::new(5);
        let mut seen = std::collections::HashSet::new();
        for i in 0..1000 {
            let seq = window.open(0, i, true).unwrap();
            assert!(seen.insert(seq));
            window.close(seq).unwrap();
        }
    }

    fn request(payload: &[u8]) -> Vec<u8> {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, &Header::new(), b"Echo", b"Echo", [], payload);
        buf.to_vec()
    }

    #[test]
    fn outbox_patches_each_seq() {
        let frame = request(b"hi");
        let mut outbox = Outbox::default();
        outbox.push(&frame, 7);
        outbox.push(&frame, u64::MAX);
        assert_eq!(outbox.len(), 2 * frame.len());
        let first = Header::view(&outbox.buf).unwrap();
        let second = Header::view(&outbox.buf[frame.len()..]).unwrap();
        assert_eq!((first.seq(), second.seq()), (7, u64::MAX));
        assert_eq!(&outbox.buf[HEADER_LEN..frame.len()], &frame[HEADER_LEN..]);
    }

    #[test]
    fn inbox_splits_replies_in_place() {
        let mut wire = BytesMut::new();
        for seq in 0..3u64 {
            let mut req = BytesMut::from(&request(b"hello")[..]);
            req[SEQ_AT].copy_from_slice(&seq.to_be_bytes());
            let msg = Decoder::default().decode(&mut req).unwrap().unwrap();
            encode_reply(&mut wire, &msg, [], b"hello");
        }
        let mut inbox = inbox(1024);
        // All but the last 3 bytes have arrived.
        inbox.extend_from_slice(&wire[..wire.len() - 3]);
        let (header, len) = inbox.peek().unwrap().unwrap();
        assert_eq!(header.message_type(), MessageType::Response);
        assert_eq!(header.seq(), 0);
        inbox.skip(len);
        let (_, len) = inbox.peek().unwrap().unwrap();
        let msg = inbox.take(len).unwrap();
        assert_eq!(msg.seq(), 1);
        assert_eq!(msg.payload(), &b"hello"[..]);
        assert!(inbox.peek().unwrap().is_none(), "third reply is incomplete");
        inbox.extend_from_slice(&wire[wire.len() - 3..]);
        assert_eq!(inbox.peek().unwrap().unwrap().0.seq(), 2);
    }

    #[test]
    fn inbox_reports_garbage() {
        let mut inbox = inbox(1024);
        inbox.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert!(matches!(inbox.peek(), Err(DecodeError::BadMagic(b'G'))));
    }
}
