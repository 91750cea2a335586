//! A connection's read side: its receive buffer and the frame decoder, behind `fill` (one read
//! from the socket) and `next_frame` (the next whole frame off the front), so the buffer
//! arithmetic exists once for the server, the echo limit and the load generator.
//!
//! Frames are split off the front of the buffer without copying: a [`Message`] shares the
//! buffer's allocation. Frames parsed into a kept message ([`FrameReader::next_frame_into`]) are
//! cut off in runs, all the whole frames buffered at once ([`FrameRun`]), and a lone frame (all
//! that is buffered, a latency-bound client's) is lent to the message where it lies, with no
//! handle at all ([`Decoder::next_lending_into`]): the buffer is then refilled from its start
//! once the message lets it go ([`FrameReader::release`]). Once the frames before it are
//! consumed, a partial frame is moved back to the front of the same allocation by `reserve`
//! rather than grown.
//!
//! The lend is kept sound here: every method that would write or free the buffer's bytes first
//! ends a lend its message did not end, by leaking the buffer if that message went elsewhere
//! ([`FrameReader::settle`]), so a lent frame is never changed under the message viewing it.

use std::io;

use bytes::{Buf, BytesMut};
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, CancelHandle, CancelableAsyncReadRent};
use ringrpc_codec::{DecodeError, Decoder, FrameRun, Header, Message};

use crate::read_instance::OwnInstance;

/// The read site of [`FrameReader::fill_cancelable`] (see [`crate::read_instance`]): its own
/// instance of monoio's read future, not the plain read's.
enum CancelableRead {}

/// The receive buffer of one connection and the decoder that finds frames in it.
#[derive(Debug)]
pub struct FrameReader {
    buf: BytesMut,
    decoder: Decoder,
    read_size: usize,
    /// The room offered to the last read: a read that filled it suggests more is waiting.
    last_room: usize,
    /// Whole frames cut off the front of `buf` and not all taken yet
    /// ([`FrameReader::next_frame_into`]); they come before `buf`'s bytes.
    run: FrameRun,
}

impl FrameReader {
    /// A reader over `buf` (typically from a pool; its contents are kept) that asks the socket for
    /// at least `read_size` bytes of room per read, more when a larger frame is being received.
    pub fn new(buf: BytesMut, decoder: Decoder, read_size: usize) -> Self {
        FrameReader {
            buf,
            decoder,
            read_size: read_size.max(1),
            last_room: 0,
            run: FrameRun::default(),
        }
    }

    /// Reads once from `reader`, appending to what is buffered; returns the bytes read (0 at EOF).
    /// Makes room first (see [`FrameReader::make_room`]).
    pub async fn fill<R: AsyncReadRent>(&mut self, reader: &mut R) -> io::Result<usize> {
        self.make_room();
        let filled = self.buf.len();
        let cap = self.buf.capacity();
        self.last_room = cap - filled;
        let buf = std::mem::take(&mut self.buf);
        let (result, slice) = reader.read(buf.slice_mut(filled..cap)).await;
        self.buf = slice.into_inner();
        result
    }

    /// As [`FrameReader::fill`], with a read that `cancel` can end early (with `ECANCELED`, the
    /// buffer and what it holds kept: no byte is lost).
    pub async fn fill_cancelable<R: CancelableAsyncReadRent>(
        &mut self,
        reader: &mut R,
        cancel: CancelHandle,
    ) -> io::Result<usize> {
        self.make_room();
        let filled = self.buf.len();
        let cap = self.buf.capacity();
        self.last_room = cap - filled;
        let buf = std::mem::take(&mut self.buf);
        let (result, room) = reader
            .cancelable_read(
                OwnInstance::<_, CancelableRead>::new(buf.slice_mut(filled..cap)),
                cancel,
            )
            .await;
        self.buf = room.into_inner().into_inner();
        result
    }

    /// Makes room for the rest of the frame being received, or `read_size` bytes, whichever is
    /// more: in place when the buffer is not shared, else in a new allocation.
    #[inline]
    pub fn make_room(&mut self) {
        self.settle();
        let want = self.wanted();
        if self.spare() < want {
            self.buf.reserve(want);
        }
    }

    /// Room the next read wants: the rest of the frame being received, or `read_size` bytes.
    #[inline]
    pub fn wanted(&self) -> usize {
        let rest_of_frame = match self.decoder.frame_len(&self.buf) {
            Ok(Some(frame_len)) if frame_len > self.buf.len() => frame_len - self.buf.len(),
            _ => 0,
        };
        rest_of_frame.max(self.read_size)
    }

    /// The room the last read was offered ([`FrameReader::fill`]): a read of that many bytes
    /// filled it.
    #[inline]
    pub fn last_room(&self) -> usize {
        self.last_room
    }

    /// Bytes the buffer can take without growing.
    #[inline]
    pub fn spare(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }

    /// The buffer's whole capacity.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether the buffer can hold `room` bytes more without allocating: true if it has the room
    /// now, or once the bytes of frames taken (and let go by their messages) are reclaimed in
    /// place (`BytesMut::try_reclaim`). Frames split off leave `capacity` short of the buffer's
    /// allocation until then.
    #[inline]
    pub fn try_reclaim(&mut self, room: usize) -> bool {
        self.settle();
        self.buf.try_reclaim(room)
    }

    /// Sets the least room asked of the socket per read.
    #[inline]
    pub fn set_read_size(&mut self, read_size: usize) {
        self.read_size = read_size.max(1);
    }

    /// Moves what is buffered into `buf` (copied, once) and returns the old buffer, emptied: for
    /// a connection that changes buffer size class.
    pub fn replace_buffer(&mut self, mut buf: BytesMut) -> BytesMut {
        self.settle();
        buf.clear();
        // The frames of a run not taken yet go first, and the run lets go of the old buffer.
        if self.run.remaining() != 0 {
            buf.extend_from_slice(self.run.rest());
        }
        self.run.clear();
        buf.extend_from_slice(&self.buf);
        let mut old = std::mem::replace(&mut self.buf, buf);
        old.clear();
        old
    }

    /// Takes the next whole frame off the front and parses it; `Ok(None)` until one is buffered.
    /// After an error the stream is out of sync: close the connection.
    // Always: the connection loop is instantiated for several reader types (TCP, TLS, after
    // CONNECT), and with several callers LTO stopped inlining it into the hot one.
    #[inline(always)]
    pub fn next_frame(&mut self) -> Result<Option<Message>, DecodeError> {
        self.debug_assert_no_run();
        self.decoder.decode(&mut self.buf)
    }

    /// As [`FrameReader::next_frame`], parsing into `message`, which the caller keeps from frame
    /// to frame: `Ok(true)` when `message` now holds the next frame, `Ok(false)` until one is
    /// buffered. All the whole frames buffered are cut off at once, and the messages of that run
    /// share one handle on it ([`Decoder::next_into`]). A reader used this way is not also read
    /// by the methods that look at its buffer's front (`peek`, `take`, `skip`, `frame_bytes`,
    /// `whole_frames_len`, `next_frame`) while a run has frames left.
    ///
    /// A lone frame is lent to `message` ([`Decoder::next_lending_into`]): once done with it, let
    /// it go with [`FrameReader::release`], or give `message` its own handle on it with
    /// [`FrameReader::own_lent`] if it must outlive the next read.
    #[inline(always)]
    pub fn next_frame_into(&mut self, message: &mut Message) -> Result<bool, DecodeError> {
        // SAFETY: while `run` lends a frame, the buffer's bytes are not written or freed: every
        // method that would (`make_room`, and so `fill`; `try_reclaim`, `replace_buffer`,
        // `extend_from_slice`, `into_buffer`, drop) settles the lend first, and a lend its
        // message did not end leaks the buffer (`settle`).
        unsafe {
            self.decoder
                .next_lending_into(&mut self.buf, &mut self.run, message)
        }
    }

    /// Clears `message`, ending the lend of its frame if it holds one from this reader
    /// ([`FrameReader::next_frame_into`]): the buffer is then refilled from its start.
    #[inline(always)]
    pub fn release(&mut self, message: &mut Message) {
        if !self.run.end_lend(&self.buf, message) {
            self.abandon_buffer();
        }
    }

    /// Gives `message` its own handle on the frame lent to it by this reader, if it holds one
    /// ([`FrameRun::own_lent`]): for a request that outlives the next read, or whose handler
    /// keeps a handle on its bytes.
    #[inline]
    pub fn own_lent(&mut self, message: &mut Message) {
        self.run.own_lent(&mut self.buf, message);
    }

    /// Ends a lend its message did not end ([`FrameReader::release`], [`FrameReader::own_lent`])
    /// before the buffer's bytes are written or freed. The message that holds the frame is not
    /// known here (it may have been moved away and still be read): the buffer is leaked, and the
    /// reader goes on with an empty one.
    #[inline(always)]
    fn settle(&mut self) {
        if self.run.lends() {
            self.abandon_buffer();
        }
    }

    /// Leaks the buffer, whose bytes a lent message may still view, and starts an empty one of the
    /// same capacity.
    #[cold]
    #[inline(never)]
    fn abandon_buffer(&mut self) {
        let capacity = self.buf.capacity();
        std::mem::forget(std::mem::replace(
            &mut self.buf,
            BytesMut::with_capacity(capacity),
        ));
        self.run.clear();
    }

    /// The methods that read the buffer's front do not see a run's frames
    /// ([`FrameReader::next_frame_into`]).
    #[inline(always)]
    fn debug_assert_no_run(&self) {
        debug_assert_eq!(self.run.remaining(), 0, "a run's frames are taken first");
    }

    /// The header and length of the next whole frame, without consuming it; `None` until one is
    /// fully buffered.
    #[inline]
    pub fn peek(&self) -> Result<Option<(Header, usize)>, DecodeError> {
        self.debug_assert_no_run();
        match self.decoder.frame_len(&self.buf)? {
            Some(len) if self.buf.len() >= len => {
                let header = *Header::view(&self.buf).expect("a whole frame holds its prefix");
                Ok(Some((header, len)))
            }
            _ => Ok(None),
        }
    }

    /// The length of the run of whole frames at the front, found from their prefixes alone (magic
    /// and total length, within the limits): for a caller that moves frames without parsing them.
    #[inline]
    pub fn whole_frames_len(&self) -> Result<usize, DecodeError> {
        self.debug_assert_no_run();
        let mut run = 0;
        while let Some(frame_len) = self.decoder.frame_len(&self.buf[run..])? {
            if self.buf.len() - run < frame_len {
                break;
            }
            run += frame_len;
        }
        Ok(run)
    }

    /// Drops the next frame (of length `len`, from [`FrameReader::peek`]) unparsed.
    pub fn skip(&mut self, len: usize) {
        self.debug_assert_no_run();
        self.buf.advance(len);
    }

    /// Takes the next frame (of length `len`, from [`FrameReader::peek`]) and parses it.
    pub fn take(&mut self, len: usize) -> Result<Message, DecodeError> {
        self.debug_assert_no_run();
        let frame = self.buf.split_to(len).freeze();
        Message::parse(frame, self.decoder.limits())
    }

    /// The next frame's bytes (of length `len`, from [`FrameReader::peek`]), unparsed.
    #[inline]
    pub fn frame_bytes(&self, len: usize) -> &[u8] {
        self.debug_assert_no_run();
        &self.buf[..len]
    }

    /// Bytes buffered and not yet consumed (a run's frames not taken yet included).
    #[inline]
    pub fn buffered(&self) -> usize {
        self.buf.len() + self.run.remaining()
    }

    /// Appends bytes as if read from the socket (tests, and callers that read elsewhere).
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.settle();
        self.buf.extend_from_slice(bytes);
    }

    /// The buffer back, e.g. for a pool.
    pub fn into_buffer(mut self) -> BytesMut {
        self.settle();
        std::mem::take(&mut self.buf)
    }
}

impl Drop for FrameReader {
    /// A buffer still lending a frame is leaked: its message may outlive the reader.
    fn drop(&mut self) {
        if self.run.lends() {
            std::mem::forget(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringrpc_codec::{encode_frame, Limits};

    fn frame(seq: u64, payload: &[u8]) -> Vec<u8> {
        let mut header = Header::new();
        header.set_seq(seq);
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, &header, b"Echo", b"Echo", [], payload);
        buf.to_vec()
    }

    #[test]
    fn frames_come_off_whole_and_in_order() {
        let mut wire = Vec::new();
        for seq in 0..3 {
            wire.extend_from_slice(&frame(seq, b"hello"));
        }
        let mut reader = FrameReader::new(BytesMut::new(), Decoder::default(), 1024);
        reader.extend_from_slice(&wire[..wire.len() - 3]);
        let (header, len) = reader.peek().unwrap().unwrap();
        assert_eq!(header.seq(), 0);
        reader.skip(len);
        assert_eq!(reader.next_frame().unwrap().unwrap().seq(), 1);
        assert!(
            reader.next_frame().unwrap().is_none(),
            "third is incomplete"
        );
        reader.extend_from_slice(&wire[wire.len() - 3..]);
        let (_, len) = reader.peek().unwrap().unwrap();
        assert_eq!(reader.frame_bytes(len), &frame(2, b"hello")[..]);
        assert_eq!(reader.take(len).unwrap().payload(), b"hello");
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn a_run_left_part_taken_moves_with_the_buffer() {
        let mut reader = FrameReader::new(BytesMut::new(), Decoder::default(), 1024);
        for seq in 0..3 {
            reader.extend_from_slice(&frame(seq, b"run"));
        }
        let partial = frame(3, b"partial");
        reader.extend_from_slice(&partial[..10]);
        let mut kept = Message::empty();
        assert!(reader.next_frame_into(&mut kept).unwrap());
        assert_eq!(kept.seq(), 0);
        // Two frames of the run and the partial frame are left: a connection paused past a cap
        // may move them to another buffer.
        assert_eq!(reader.buffered(), 2 * frame(0, b"run").len() + 10);
        kept.clear();
        let old = reader.replace_buffer(BytesMut::with_capacity(4096));
        assert!(old.is_empty());
        assert_eq!(reader.buffered(), 2 * frame(0, b"run").len() + 10);
        reader.extend_from_slice(&partial[10..]);
        let mut seqs = Vec::new();
        while reader.next_frame_into(&mut kept).unwrap() {
            seqs.push(kept.seq());
        }
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(kept.payload(), b"partial");
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn a_lone_frame_is_lent_and_the_buffer_refilled_from_its_start_once_released() {
        let mut reader = FrameReader::new(BytesMut::with_capacity(1024), Decoder::default(), 1024);
        let mut kept = Message::empty();
        for seq in 0..3 {
            let wire = frame(seq, b"lone");
            reader.extend_from_slice(&wire);
            assert!(reader.next_frame_into(&mut kept).unwrap());
            assert!(kept.is_lent());
            assert_eq!(kept.frame(), &wire[..]);
            assert_eq!(reader.buffered(), 0);
            assert!(!reader.next_frame_into(&mut kept).unwrap());
            assert_eq!(
                kept.seq(),
                seq,
                "nothing more, and the message still holds its frame"
            );
            reader.release(&mut kept);
            assert!(!kept.is_lent());
            // Not reclaimed, not grown: the whole buffer is room again.
            assert_eq!(reader.spare(), 1024, "round {seq}");
        }
    }

    #[test]
    fn a_lent_frame_given_its_own_handle_outlives_the_next_read() {
        let mut reader = FrameReader::new(BytesMut::with_capacity(1024), Decoder::default(), 1024);
        let mut kept = Message::empty();
        let first = frame(1, b"first");
        reader.extend_from_slice(&first);
        assert!(reader.next_frame_into(&mut kept).unwrap());
        reader.own_lent(&mut kept);
        assert!(!kept.is_lent());
        let request = kept.clone(); // an async request's copy: shares the handle
        reader.release(&mut kept);
        reader.extend_from_slice(&frame(2, b"second"));
        assert!(reader.next_frame_into(&mut kept).unwrap());
        assert_eq!(request.frame(), &first[..]);
        assert_eq!(kept.payload(), b"second");
        reader.release(&mut kept);
    }

    #[test]
    fn a_lent_frame_whose_message_went_elsewhere_is_never_overwritten() {
        let wire = frame(1, b"moved away");
        // Released with another message, or not released before the next read, or the reader
        // dropped: the message moved away still reads its frame.
        for case in 0..3 {
            let mut reader =
                FrameReader::new(BytesMut::with_capacity(1024), Decoder::default(), 1024);
            let mut kept = Message::empty();
            reader.extend_from_slice(&wire);
            assert!(reader.next_frame_into(&mut kept).unwrap());
            let moved = std::mem::replace(&mut kept, Message::empty());
            match case {
                0 => reader.release(&mut kept),
                1 => {}
                _ => drop(reader.replace_buffer(BytesMut::new())),
            }
            if case < 2 {
                reader.extend_from_slice(&frame(2, b"overwrites?"));
                assert!(reader.next_frame_into(&mut kept).unwrap());
                assert_eq!(kept.seq(), 2);
                reader.release(&mut kept);
            }
            drop(reader);
            assert_eq!(moved.frame(), &wire[..], "case {case}");
        }
    }

    #[test]
    fn a_run_of_whole_frames_is_measured_without_parsing() {
        let one = frame(1, b"abc");
        let mut reader = FrameReader::new(BytesMut::new(), Decoder::default(), 1024);
        reader.extend_from_slice(&one);
        reader.extend_from_slice(&one);
        reader.extend_from_slice(&one[..5]);
        assert_eq!(reader.whole_frames_len().unwrap(), 2 * one.len());
        reader.skip(2 * one.len());
        assert_eq!(reader.whole_frames_len().unwrap(), 0);
    }

    #[test]
    fn garbage_and_oversized_frames_are_errors() {
        let mut reader = FrameReader::new(BytesMut::new(), Decoder::default(), 1024);
        reader.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert!(matches!(reader.peek(), Err(DecodeError::BadMagic(b'G'))));
        let limits = Limits {
            max_frame_len: 10,
            ..Limits::default()
        };
        let mut reader = FrameReader::new(BytesMut::new(), Decoder::new(limits), 1024);
        reader.extend_from_slice(&frame(0, b"a payload longer than ten bytes"));
        assert!(matches!(
            reader.next_frame(),
            Err(DecodeError::FrameTooLong { .. })
        ));
    }

    #[test]
    fn fill_makes_room_for_a_large_frame_and_reads_it() {
        let big = frame(9, &vec![7u8; 200_000]);
        let wire = big.clone();
        let got = crate::block_on(crate::IoDriver::Epoll, 64, || async move {
            let listener = monoio::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let sender = monoio::spawn(async move {
                use monoio::io::AsyncWriteRentExt;
                let mut stream = monoio::net::TcpStream::connect_addr(addr).await.unwrap();
                let (res, _) = stream.write_all(wire).await;
                res.unwrap();
            });
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut reader = FrameReader::new(BytesMut::new(), Decoder::default(), 4096);
            let message = loop {
                if let Some(message) = reader.next_frame().unwrap() {
                    break message;
                }
                assert!(
                    reader.fill(&mut stream).await.unwrap() > 0,
                    "EOF before the frame"
                );
            };
            sender.await;
            message
        })
        .unwrap();
        assert_eq!(got.seq(), 9);
        assert_eq!(got.frame(), &big[..]);
    }
}
