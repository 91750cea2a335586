//! Finding frames in a byte stream: the incremental decoder and its limits.
//!
//! [`Decoder::frame_len`] is the cheap check (is a whole frame buffered, and how long is it?) and
//! [`Decoder::decode`] splits that frame off the buffer and parses it. A connection takes its
//! frames with [`Decoder::next_into`] instead: all the whole frames buffered are cut off at once
//! ([`FrameRun`]) and parsed one by one into a message it keeps, the messages of a run sharing one
//! handle on it. Following Go's reader (rpcx-protocol.md 1.4), the magic byte is checked as soon
//! as it arrives and the total length as soon as the prefix is in, so an oversized frame is
//! refused before any body byte is buffered.

use bytes::{Bytes, BytesMut};

use crate::{DecodeError, Header, Message, HEADER_LEN, MAGIC};

/// Size limits, on by default (Go has none: rpcx-protocol.md 1.7, 9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted total-length field (the body, without the 16-byte prefix).
    pub max_frame_len: u32,
    /// Largest payload a gzip frame may decompress to.
    pub max_decompressed_len: usize,
    /// Most metadata pairs one frame may carry. Each pair is only 8 bytes of lengths, so a frame
    /// within `max_frame_len` could otherwise hold millions of them, and every lookup walks them.
    pub max_metadata_pairs: usize,
}

impl Limits {
    /// Default `max_frame_len`: 32 MiB, room for the 8 MiB payloads Go clients are tested with.
    pub const DEFAULT_MAX_FRAME_LEN: u32 = 32 << 20;
    /// Default `max_decompressed_len`: 32 MiB.
    pub const DEFAULT_MAX_DECOMPRESSED_LEN: usize = 32 << 20;
    /// Default `max_metadata_pairs`: 1024. Go clients send a handful (the Go suite's largest case
    /// sends 64); a thousand leaves room for any real use.
    pub const DEFAULT_MAX_METADATA_PAIRS: usize = 1024;

    /// No limit at all, as Go's defaults. For tests and trusted peers only.
    pub fn unlimited() -> Self {
        Limits {
            max_frame_len: u32::MAX,
            max_decompressed_len: usize::MAX,
            max_metadata_pairs: usize::MAX,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_len: Self::DEFAULT_MAX_FRAME_LEN,
            max_decompressed_len: Self::DEFAULT_MAX_DECOMPRESSED_LEN,
            max_metadata_pairs: Self::DEFAULT_MAX_METADATA_PAIRS,
        }
    }
}

/// Splits rpcx frames off a receive buffer. Holds only its limits: any number of connections may
/// share one, and it never allocates except to decompress.
#[derive(Debug, Clone, Copy, Default)]
pub struct Decoder {
    limits: Limits,
}

impl Decoder {
    pub fn new(limits: Limits) -> Self {
        Decoder { limits }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The length of the frame at the front of `buf`, prefix included, once the prefix is buffered;
    /// `Ok(None)` before that. Fails on a bad magic byte as soon as one byte is in, and on an
    /// oversized total length as soon as the prefix is in.
    #[inline]
    pub fn frame_len(&self, buf: &[u8]) -> Result<Option<usize>, DecodeError> {
        match buf.first() {
            None => return Ok(None),
            Some(&MAGIC) => {}
            Some(&other) => return Err(DecodeError::BadMagic(other)),
        }
        let Some(header) = Header::view(buf) else {
            return Ok(None);
        };
        let len = header.total_len();
        if len > self.limits.max_frame_len {
            return Err(DecodeError::FrameTooLong {
                len,
                max: self.limits.max_frame_len,
            });
        }
        Ok(Some(HEADER_LEN + len as usize))
    }

    /// Takes the next whole frame off the front of `buf` and parses it; `Ok(None)` until a whole
    /// frame is buffered. The message's fields are slices of the frame, which shares `buf`'s
    /// allocation. After an error the stream is out of sync: close the connection.
    #[inline(always)]
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Message>, DecodeError> {
        let Some(frame_len) = self.frame_len(buf)? else {
            return Ok(None);
        };
        if buf.len() < frame_len {
            return Ok(None);
        }
        let frame = buf.split_to(frame_len).freeze();
        Message::parse(frame, &self.limits).map(Some)
    }

    /// As [`Decoder::decode`], parsing into `message` ([`Message::parse_into`]): `Ok(true)` when
    /// a frame was taken and `message` now holds it.
    #[inline(always)]
    pub fn decode_into(
        &self,
        buf: &mut BytesMut,
        message: &mut Message,
    ) -> Result<bool, DecodeError> {
        let Some(frame_len) = self.frame_len(buf)? else {
            return Ok(false);
        };
        if buf.len() < frame_len {
            return Ok(false);
        }
        let frame = buf.split_to(frame_len).freeze();
        message.parse_checked_into::<true>(frame, &self.limits)?;
        Ok(true)
    }

    /// The next frame into `message`, kept by the caller from frame to frame as a connection
    /// decodes: `Ok(true)` when `message` now holds it, `Ok(false)` until a whole frame is
    /// buffered. When `run` has no frame left, every whole frame at the front of `buf` is cut
    /// off in one piece into it ([`FrameRun`]); its frames are then parsed one by one, sharing
    /// one handle on the run. After an error the stream is out of sync: close the connection.
    #[inline(always)]
    pub fn next_into(
        &self,
        buf: &mut BytesMut,
        run: &mut FrameRun,
        message: &mut Message,
    ) -> Result<bool, DecodeError> {
        // SAFETY: without lending, nothing is lent.
        unsafe { self.next_into_lending_or_not::<false>(buf, run, message) }
    }

    /// As [`Decoder::next_into`], except that a lone frame (all that `buf` holds) is *lent* to
    /// `message`, not split off: `message` views it where it lies, with no handle on it, and
    /// `buf` is emptied (its start and capacity unchanged). A latency-bound connection's frame
    /// then costs no reference count, split or reclaim of the buffer (`BytesMut::split_to` and
    /// the `reserve` that takes the room back were 90 instructions per request, callgrind, Echo
    /// 10 x 1). `run` records the lend ([`FrameRun::lends`]) until it ends: the message is
    /// given its own handle ([`FrameRun::own_lent`]) or let go ([`FrameRun::end_lend`]).
    ///
    /// # Safety
    /// While `run` lends a frame, the bytes of `buf`'s allocation from its start up to the lent
    /// frame's length must not be written or freed: nothing may be added to `buf`, nor `buf`
    /// reserved, reclaimed, replaced or dropped, until the lend ends. A buffer whose lend cannot
    /// be ended (its message was moved away) must be leaked.
    #[inline(always)]
    pub unsafe fn next_lending_into(
        &self,
        buf: &mut BytesMut,
        run: &mut FrameRun,
        message: &mut Message,
    ) -> Result<bool, DecodeError> {
        // SAFETY: the caller's contract.
        unsafe { self.next_into_lending_or_not::<true>(buf, run, message) }
    }

    /// [`Decoder::next_into`], and with `LEND` [`Decoder::next_lending_into`], whose contract
    /// the caller keeps if it lends.
    #[inline(always)]
    unsafe fn next_into_lending_or_not<const LEND: bool>(
        &self,
        buf: &mut BytesMut,
        run: &mut FrameRun,
        message: &mut Message,
    ) -> Result<bool, DecodeError> {
        if run.at == run.bytes.len() {
            // The first frame's checks stay inline (a latency-bound client's one frame per read,
            // and the check that finds nothing after the last frame): only a whole frame calls
            // `cut_run`.
            let Some(frame_len) = self.frame_len(buf)? else {
                return Ok(false);
            };
            if buf.len() <= frame_len {
                if buf.len() < frame_len {
                    return Ok(false);
                }
                // A lone frame (a latency-bound client's one request per read): split off as it
                // is, with no run around it.
                if frame_len > u32::MAX as usize {
                    return Err(frame_too_long_for_a_message(frame_len));
                }
                if LEND {
                    // SAFETY: the caller keeps `buf`'s bytes as they are while the lend lasts
                    // (`next_lending_into`), and it lasts while `message` holds them: it ends
                    // when `message` is given its own handle or let go.
                    unsafe { message.parse_lent_into(&buf[..], &self.limits)? };
                    buf.clear();
                    run.lent = true;
                    return Ok(true);
                }
                let frame = buf.split_to(frame_len).freeze();
                message.parse_checked_into::<true>(frame, &self.limits)?;
                return Ok(true);
            }
            self.cut_run(buf, run, frame_len)?;
        }
        let start = run.at;
        // The prefix was checked by `cut_run`, and the whole frame is in the run.
        let end = start + HEADER_LEN + run.total_len_at(start) as usize;
        // The last frame's message takes the run's handle, leaving it empty.
        run.at = if end == run.bytes.len() { 0 } else { end };
        message.parse_run_frame_into(&mut run.bytes, start, end, &self.limits)?;
        Ok(true)
    }

    /// Cuts the whole frames at the front of `buf`, the first `first_len` bytes long and checked
    /// ([`Decoder::frame_len`]), off into `run` (which has no frame left). The prefixes after the
    /// first are checked here (magic, total length within the limits): a bad one ends the run
    /// before it, and is reported by the next cut, so that the frames before it are answered.
    #[inline(never)]
    fn cut_run(
        &self,
        buf: &mut BytesMut,
        run: &mut FrameRun,
        first_len: usize,
    ) -> Result<(), DecodeError> {
        // Offsets in a run are `u32` ([`Message`]): a run ends within 4 GiB of its start.
        let Ok(mut len) = u32::try_from(first_len) else {
            return Err(frame_too_long_for_a_message(first_len));
        };
        let scanned = &buf[..buf.len().min(u32::MAX as usize)];
        let max_frame_len = self.limits.max_frame_len;
        // The frame at `len`'s prefix, while one is buffered.
        while scanned.len() - len as usize >= HEADER_LEN {
            // SAFETY: `HEADER_LEN` bytes from `len` are in `scanned` (`len` is the end of a whole
            // frame in it), and `Header` is unaligned: the reads of a checked slice, without its
            // second bound check (1 instruction per frame, callgrind).
            let header = unsafe { &*scanned.as_ptr().add(len as usize).cast::<Header>() };
            let total = header.total_len();
            if header.magic() != MAGIC || total > max_frame_len {
                break;
            }
            // No overflow: `scanned` is at most `u32::MAX` long, and 64 bits hold the sum.
            let end = len as u64 + HEADER_LEN as u64 + total as u64;
            if end > scanned.len() as u64 {
                break;
            }
            len = end as u32;
        }
        run.bytes = buf.split_to(len as usize).freeze();
        run.at = 0;
        Ok(())
    }
}

/// The error for a frame longer than `u32::MAX` bytes in all (possible only without limits): no
/// [`Message`] holds one.
#[cold]
fn frame_too_long_for_a_message(frame_len: usize) -> DecodeError {
    DecodeError::FrameTooLong {
        len: (frame_len - HEADER_LEN) as u32,
        max: u32::MAX - HEADER_LEN as u32,
    }
}

/// The length of the frame `message` holds lent from `buf`, if it holds one (its view starts where
/// `buf` does).
#[inline(always)]
fn lent_from(buf: &BytesMut, message: &Message) -> Option<usize> {
    let lent = message.lent_bytes()?;
    (lent.as_ptr() == buf.as_ptr()).then_some(lent.len())
}

/// Whole frames cut off a receive buffer in one piece ([`Decoder::next_into`]), parsed one at a
/// time into a message the caller keeps: the messages of a run share one handle on it.
#[derive(Debug, Default)]
pub struct FrameRun {
    /// Whole frames, their prefixes checked, each frame within `u32::MAX` bytes of the start;
    /// those before `at` are taken. The last frame's message takes this handle.
    bytes: Bytes,
    at: usize,
    /// A lone frame is lent from the front of the receive buffer ([`Decoder::next_lending_into`])
    /// to the message it was parsed into.
    lent: bool,
}

impl FrameRun {
    /// Whether a frame is lent ([`Decoder::next_lending_into`]) and the lend has not ended.
    #[inline(always)]
    pub fn lends(&self) -> bool {
        self.lent
    }

    /// Gives `message` its own handle on the frame lent to it, if it holds the frame lent from
    /// `buf`: the frame is split off `buf` as [`Decoder::next_into`] would have split it, and
    /// the lend ends. For a request that outlives the read (an async method), or whose handler
    /// keeps a handle on its bytes: it then shares them instead of copying them. Nothing happens
    /// if `message` holds no frame lent from `buf`.
    #[inline]
    pub fn own_lent(&mut self, buf: &mut BytesMut, message: &mut Message) {
        if !self.lent {
            return;
        }
        let Some(len) = lent_from(buf, message) else {
            return;
        };
        if !buf.is_empty() || buf.capacity() < len {
            return;
        }
        // SAFETY: the frame was lent from the start of `buf` (same address), which was emptied
        // by the lend and, by `next_lending_into`'s contract, not written since: its first `len`
        // bytes, within its capacity, are the lent frame's, initialized.
        unsafe { buf.set_len(len) };
        message.adopt_lent(buf.split_to(len).freeze());
        self.lent = false;
    }

    /// Ends the lend, letting go of `message`'s frame (`message` is cleared). True if `message`
    /// held the frame lent from `buf` (or none was lent): `buf` may then be refilled. False if
    /// the lent frame went elsewhere (its message was moved away): `buf`'s bytes may still be
    /// viewed, and it must be leaked.
    #[inline(always)]
    #[must_use]
    pub fn end_lend(&mut self, buf: &BytesMut, message: &mut Message) -> bool {
        if self.lent {
            self.lent = false;
            if lent_from(buf, message).is_some() {
                message.clear_lent();
                return true;
            }
            message.clear();
            return false;
        }
        message.clear();
        true
    }

    /// Bytes of the frames not taken yet.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// The frames not taken yet, as received.
    #[inline]
    pub fn rest(&self) -> &[u8] {
        &self.bytes[self.at..]
    }

    /// Drops the frames not taken yet, and the run's handle on its buffer.
    #[inline]
    pub fn clear(&mut self) {
        *self = FrameRun::default();
    }

    /// The total length field of the frame at `at`, a frame of the run not taken yet.
    #[inline(always)]
    fn total_len_at(&self, at: usize) -> u32 {
        debug_assert!(at + HEADER_LEN <= self.bytes.len());
        // SAFETY: `at` is the start of a whole frame of the run (`Decoder::next_into`), so its
        // prefix is in the run; `Header` is unaligned.
        unsafe { (*self.bytes.as_ptr().add(at).cast::<Header>()).total_len() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::tests::fields as seen;
    use crate::{encode_frame, CompressType};

    fn frame(seq: u64, compress: CompressType, pairs: &[(&[u8], &[u8])], payload: &[u8]) -> Bytes {
        let mut header = Header::new();
        header.set_seq(seq).set_compress_type(compress);
        let mut wire = BytesMut::new();
        encode_frame(
            &mut wire,
            &header,
            b"Echo",
            b"Echo",
            pairs.iter().copied(),
            payload,
        );
        wire.freeze()
    }

    /// Frames of every kind the parse tells apart: plain, with metadata, compressed (the full
    /// parse), empty, large.
    fn assorted() -> Vec<Bytes> {
        vec![
            frame(1, CompressType::None, &[], b"one"),
            frame(2, CompressType::None, &[(b"k", b"v")], b"two"),
            frame(3, CompressType::Gzip, &[], &[b'x'; 3000]),
            frame(4, CompressType::None, &[], b""),
            frame(5, CompressType::None, &[], &[7; 70_000]),
            frame(6, CompressType::None, &[], b"six"),
        ]
    }

    #[test]
    fn frames_taken_by_runs_read_as_frames_parsed_alone() {
        let decoder = Decoder::default();
        let frames = assorted();
        let mut buf = BytesMut::new();
        for frame in &frames {
            buf.extend_from_slice(frame);
        }
        // And the start of a seventh, which stays in the buffer.
        buf.extend_from_slice(&frames[0][..20]);
        let mut run = FrameRun::default();
        let mut kept = Message::empty();
        let mut clones = Vec::new();
        for frame in &frames {
            assert!(decoder.next_into(&mut buf, &mut run, &mut kept).unwrap());
            assert_eq!(
                seen(&kept),
                seen(&Message::parse(frame.clone(), &Limits::default()).unwrap())
            );
            // A clone outlives the run's next frames (a request answered later).
            clones.push(kept.clone());
        }
        assert_eq!(run.remaining(), 0);
        assert!(!decoder.next_into(&mut buf, &mut run, &mut kept).unwrap());
        assert_eq!(&buf[..], &frames[0][..20]);
        drop(kept);
        for (clone, frame) in clones.iter().zip(&frames) {
            assert_eq!(clone.frame(), &frame[..]);
            assert_eq!(&clone.frame_bytes()[..], &frame[..]);
        }
    }

    #[test]
    fn a_run_stops_where_the_buffer_does_and_resumes_after_the_next_read() {
        let decoder = Decoder::default();
        let frames = assorted();
        let wire: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let mut buf = BytesMut::new();
        let mut run = FrameRun::default();
        let mut kept = Message::empty();
        let mut seqs = Vec::new();
        // Reads of 1,000 bytes: runs of several small frames, lone frames, and frames that span
        // many reads.
        for piece in wire.chunks(1000) {
            buf.extend_from_slice(piece);
            while decoder.next_into(&mut buf, &mut run, &mut kept).unwrap() {
                seqs.push(kept.seq());
            }
        }
        assert_eq!(seqs, [1, 2, 3, 4, 5, 6]);
        assert!(buf.is_empty());
    }

    #[test]
    fn the_frames_before_a_bad_prefix_are_taken_then_it_is_an_error() {
        let limits = Limits {
            max_frame_len: 1000,
            ..Limits::default()
        };
        let decoder = Decoder::new(limits);
        for (bad, is_expected) in [
            (
                Bytes::from_static(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
                (|e| matches!(e, DecodeError::BadMagic(b'G'))) as fn(&DecodeError) -> bool,
            ),
            (
                frame(9, CompressType::None, &[], &[0; 2000]),
                |e| matches!(e, DecodeError::FrameTooLong { len, max: 1000 } if *len > 2000),
            ),
        ] {
            let mut buf = BytesMut::new();
            buf.extend_from_slice(&frame(1, CompressType::None, &[], b"a"));
            buf.extend_from_slice(&frame(2, CompressType::None, &[], b"b"));
            buf.extend_from_slice(&bad);
            let mut run = FrameRun::default();
            let mut kept = Message::empty();
            for seq in [1, 2] {
                assert!(decoder.next_into(&mut buf, &mut run, &mut kept).unwrap());
                assert_eq!(kept.seq(), seq);
            }
            let error = decoder
                .next_into(&mut buf, &mut run, &mut kept)
                .unwrap_err();
            assert!(is_expected(&error), "{error:?}");
        }
    }

    #[test]
    fn a_malformed_frame_inside_a_run_is_an_error_and_the_message_keeps_its_frame() {
        let decoder = Decoder::default();
        let good = frame(1, CompressType::None, &[], b"ok");
        // The service path's length runs past the frame.
        let mut bad = frame(2, CompressType::None, &[], b"bad").to_vec();
        bad[16..20].copy_from_slice(&1000u32.to_be_bytes());
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&good);
        buf.extend_from_slice(&bad);
        buf.extend_from_slice(&good);
        let mut run = FrameRun::default();
        let mut kept = Message::empty();
        assert!(decoder.next_into(&mut buf, &mut run, &mut kept).unwrap());
        assert!(matches!(
            decoder.next_into(&mut buf, &mut run, &mut kept),
            Err(DecodeError::InnerLengthOverrun { .. })
        ));
        assert_eq!(kept.seq(), 1);
        assert_eq!(kept.payload(), b"ok");
    }

    #[test]
    fn once_a_run_is_taken_and_its_message_cleared_the_buffer_is_refilled_in_place() {
        let decoder = Decoder::default();
        let mut buf = BytesMut::with_capacity(4096);
        let start = buf.as_ptr();
        let mut run = FrameRun::default();
        let mut kept = Message::empty();
        for round in 0..3u64 {
            for seq in 0..3 {
                buf.extend_from_slice(&frame(round * 3 + seq, CompressType::None, &[], b"x"));
            }
            while decoder.next_into(&mut buf, &mut run, &mut kept).unwrap() {}
            kept.clear();
            // Unshared again: `reserve` moves back to the start of the same allocation.
            buf.reserve(4000);
            assert_eq!(buf.as_ptr(), start, "round {round}");
        }
    }

    /// `decoder.next_lending_into`, kept to its contract by each test: the buffer is not written
    /// or freed while a frame is lent (a test whose lend cannot end leaks it).
    fn lend(
        decoder: &Decoder,
        buf: &mut BytesMut,
        run: &mut FrameRun,
        message: &mut Message,
    ) -> Result<bool, DecodeError> {
        // SAFETY: every caller below ends the lend before it touches `buf` again, or leaks it.
        unsafe { decoder.next_lending_into(buf, run, message) }
    }

    #[test]
    fn a_lone_frame_is_lent_where_it_lies_and_reads_as_one_parsed_alone() {
        let decoder = Decoder::default();
        let mut buf = BytesMut::with_capacity(100_000);
        let start = buf.as_ptr();
        let mut run = FrameRun::default();
        let mut kept = Message::empty();
        for frame in assorted() {
            buf.extend_from_slice(&frame);
            assert!(lend(&decoder, &mut buf, &mut run, &mut kept).unwrap());
            assert!(kept.is_lent() && run.lends());
            assert_eq!(
                kept.frame().as_ptr(),
                start,
                "viewed in the buffer, not copied"
            );
            assert!(buf.is_empty());
            let alone = Message::parse(frame.clone(), &Limits::default()).unwrap();
            assert_eq!(seen(&kept), seen(&alone));
            // What may outlive the lend is a copy.
            let clone = kept.clone();
            assert!(!clone.is_lent());
            assert_ne!(clone.frame().as_ptr(), start);
            assert_eq!(seen(&clone), seen(&alone));
            assert_ne!(kept.frame_bytes().as_ptr(), start);
            assert_eq!(kept.frame_bytes(), frame);
            assert_eq!(kept.payload_bytes(), alone.payload_bytes());
            assert!(run.end_lend(&buf, &mut kept));
            assert!(!run.lends() && !kept.is_lent());
            assert_eq!(kept.frame().len(), HEADER_LEN + 16, "cleared");
            // The buffer is refilled from its start, with no reclaim.
            assert_eq!(buf.as_ptr(), start);
            assert_eq!(buf.capacity(), 100_000);
            assert_eq!(clone.frame(), &frame[..]);
        }
    }

    #[test]
    fn a_lent_frame_given_its_own_handle_shares_the_buffer_s_bytes() {
        let decoder = Decoder::default();
        let mut buf = BytesMut::with_capacity(4096);
        let start = buf.as_ptr();
        let mut run = FrameRun::default();
        let mut kept = Message::empty();
        let wire = frame(7, CompressType::None, &[(b"k", b"v")], b"kept");
        buf.extend_from_slice(&wire);
        assert!(lend(&decoder, &mut buf, &mut run, &mut kept).unwrap());
        run.own_lent(&mut buf, &mut kept);
        assert!(!kept.is_lent() && !run.lends());
        assert_eq!(kept.frame().as_ptr(), start, "the same bytes, not a copy");
        assert_eq!(kept.payload_bytes().as_ptr(), kept.payload().as_ptr());
        // The buffer is written again; the message's bytes are its own.
        buf.extend_from_slice(&frame(8, CompressType::None, &[], b"next"));
        assert!(lend(&decoder, &mut buf, &mut run, &mut Message::empty()).is_ok());
        assert_eq!(kept.frame(), &wire[..]);
        assert_eq!(
            seen(&kept),
            seen(&Message::parse(wire, &Limits::default()).unwrap())
        );
        // A message that holds no lent frame is left as it is.
        let mut other = kept.clone();
        run.own_lent(&mut buf, &mut other);
        assert_eq!(other.seq(), 7);
        std::mem::forget(buf); // still lent to the message dropped above
    }

    #[test]
    fn a_lend_whose_message_went_elsewhere_cannot_be_ended_by_another() {
        let decoder = Decoder::default();
        let mut buf = BytesMut::with_capacity(4096);
        let mut run = FrameRun::default();
        let mut kept = Message::empty();
        let wire = frame(9, CompressType::None, &[], b"moved");
        buf.extend_from_slice(&wire);
        assert!(lend(&decoder, &mut buf, &mut run, &mut kept).unwrap());
        let moved = std::mem::replace(&mut kept, Message::empty());
        assert!(
            !run.end_lend(&buf, &mut kept),
            "the message holding the frame went elsewhere"
        );
        // Leaked, as the contract says: `moved` still views it.
        std::mem::forget(buf);
        assert_eq!(moved.frame(), &wire[..]);
        assert_eq!(moved.seq(), 9);
        // With nothing lent, any message ends nothing and is cleared.
        let mut buf = BytesMut::new();
        let mut owned =
            Message::parse(frame(1, CompressType::None, &[], b"a"), &Limits::default()).unwrap();
        assert!(run.end_lend(&buf, &mut owned));
        assert_eq!(owned.seq(), 0);
        buf.extend_from_slice(b"refill");
    }

    #[test]
    fn a_malformed_lone_frame_is_an_error_and_lends_nothing() {
        let decoder = Decoder::default();
        let mut buf = BytesMut::new();
        let mut run = FrameRun::default();
        let mut kept =
            Message::parse(frame(1, CompressType::None, &[], b"ok"), &Limits::default()).unwrap();
        let mut bad = frame(2, CompressType::None, &[], b"bad").to_vec();
        // The service path's length runs past the frame.
        bad[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&1000u32.to_be_bytes());
        buf.extend_from_slice(&bad);
        assert!(matches!(
            lend(&decoder, &mut buf, &mut run, &mut kept),
            Err(DecodeError::InnerLengthOverrun { .. })
        ));
        assert!(!run.lends() && !kept.is_lent());
        assert_eq!(kept.payload(), b"ok");
        assert_eq!(buf.len(), bad.len(), "nothing taken");
    }
}
