//! A decoded frame: the header plus zero-copy views of path, method, metadata and payload.
//!
//! A [`Message`] owns one `Bytes` handle on the bytes its frame lies in (a slice of the receive
//! buffer: the frame alone, or a run of whole frames cut in one piece, [`crate::decode::FrameRun`])
//! and remembers where the frame and each body field lie in them; nothing is copied unless the
//! payload was compressed. A lone frame may instead be *lent* to the message, a view of the
//! receive buffer with no handle at all ([`crate::Decoder::next_lending_into`]): such a message
//! copies its bytes for anything that would outlive it (a clone, [`Message::payload_bytes`],
//! [`Message::frame_bytes`], [`Message::into_payload`]) unless its lender first gives it its own
//! handle ([`crate::FrameRun::own_lent`]). Parsing a buffered frame lives here; finding frames in
//! a byte stream lives in [`crate::decode`].

use bytes::Bytes;

use crate::compress::gunzip;
use crate::{
    BodyField, CompressType, DecodeError, Header, Limits, Metadata, SerializeType, HEADER_LEN,
};

/// One decoded rpcx frame.
pub struct Message {
    header: Header,
    /// The bytes the frame lies in: the frame alone, or the run of frames it was parsed from
    /// ([`Message::parse_run_frame_into`]), shared with the messages of the run's other frames.
    bytes: Bytes,
    /// Where the frame lies in `bytes`.
    start: u32,
    end: u32,
    // Where each field ends in `bytes`; every field starts 4 bytes (its length) after the
    // previous one ends, and the payload runs to the end of the frame. Offsets only, to keep a
    // `Message` small: it is moved through every handler call.
    path_end: u32,
    method_end: u32,
    metadata_end: u32,
    /// The payload after decompression; `None` when the frame was not compressed, and the payload
    /// is the rest of the frame. Boxed: rare, and it would double the size of every message.
    decompressed: Option<Box<Bytes>>,
    /// `bytes` is a view of bytes this message does not own (a static `Bytes` over a lent frame,
    /// [`Message::parse_lent_into`]): it is never cloned or sliced out of the message.
    lent: bool,
}

impl Clone for Message {
    /// A clone of a lent message owns a copy of its frame (the lent bytes live only as long as
    /// their lender lets them); any other shares the message's handle.
    fn clone(&self) -> Self {
        if self.lent {
            return self.owned_copy();
        }
        self.with_bytes(self.bytes.clone(), 0)
    }
}

impl Message {
    /// Parses one whole frame (prefix included). `frame` must hold exactly the prefix plus the
    /// total length it announces; [`crate::Decoder`] guarantees that, and so does this check.
    ///
    /// The common frame (well formed, no metadata or valid metadata, not compressed) takes the
    /// inlined fast path: a few bounds checks and no error built. Anything else goes through
    /// [`Message::parse_checked`], which names what is wrong.
    #[inline(always)]
    pub fn parse(frame: Bytes, limits: &Limits) -> Result<Message, DecodeError> {
        match locate_fields::<false>(&frame) {
            Some(fields) if fields.take_the_common_path(&frame, limits) => Ok(Message {
                // SAFETY: `locate_fields` found the fields after the header: the frame holds
                // at least `HEADER_LEN` bytes, and `Header` is unaligned.
                header: unsafe { frame.as_ptr().cast::<Header>().read_unaligned() },
                start: 0,
                end: frame.len() as u32,
                bytes: frame,
                path_end: fields.path_end,
                method_end: fields.method_end,
                metadata_end: fields.metadata.end as u32,
                decompressed: None,
                lent: false,
            }),
            _ => Self::parse_checked(frame, limits),
        }
    }

    /// A message with no path, method, metadata or payload (a valid frame of 32 bytes, sequence
    /// 0): the placeholder of a message refilled frame after frame ([`Message::parse_into`]).
    #[inline]
    pub fn empty() -> Message {
        /// Magic, version 0, no flags, sequence 0, total length 16: four empty fields.
        static EMPTY_FRAME: [u8; HEADER_LEN + 16] = {
            let mut frame = [0u8; HEADER_LEN + 16];
            frame[0] = crate::MAGIC;
            frame[15] = 16;
            frame
        };
        Message {
            header: *Header::view(&EMPTY_FRAME).expect("the empty frame holds a header"),
            bytes: Bytes::from_static(&EMPTY_FRAME),
            start: 0,
            end: EMPTY_FRAME.len() as u32,
            path_end: HEADER_LEN as u32 + 4,
            method_end: HEADER_LEN as u32 + 8,
            metadata_end: HEADER_LEN as u32 + 12,
            decompressed: None,
            lent: false,
        }
    }

    /// Drops the frame held, for the empty message's ([`Message::empty`]): a message kept for
    /// refilling holds no buffer between frames.
    #[inline(always)]
    pub fn clear(&mut self) {
        *self = Message::empty();
    }

    /// [`Message::clear`] of a lent message (`Message::is_lent`), whose frame is a static view:
    /// not dropped, where dropping a `Bytes` is an indirect call (Echo 10 x 1, callgrind: 9
    /// instructions per request). A decompressed payload is owned and dropped as usual.
    #[inline(always)]
    pub(crate) fn clear_lent(&mut self) {
        debug_assert!(self.lent);
        let Message {
            bytes,
            decompressed,
            ..
        } = std::mem::replace(self, Message::empty());
        std::mem::forget(bytes);
        drop(decompressed);
    }

    /// Parses one whole frame into `self`, dropping the frame it held: [`Message::parse`] for a
    /// caller that keeps one message and refills it frame after frame. The common frame's fields
    /// are stored where the message lies, where a message returned (72 bytes) was copied about
    /// three times on its way to the handler. After an error `self` holds its old frame.
    #[inline(always)]
    pub fn parse_into(&mut self, frame: Bytes, limits: &Limits) -> Result<(), DecodeError> {
        self.parse_checked_into::<false>(frame, limits)
    }

    /// [`Message::parse_into`] of a frame the [`crate::Decoder`] cut (`FRAMED`): its magic and
    /// total length were checked there, and the frame is exactly that long, so the common path
    /// skips checking them again.
    #[inline(always)]
    pub(crate) fn parse_checked_into<const FRAMED: bool>(
        &mut self,
        frame: Bytes,
        limits: &Limits,
    ) -> Result<(), DecodeError> {
        match locate_fields::<FRAMED>(&frame) {
            Some(fields) if fields.take_the_common_path(&frame, limits) => {
                // The header read again where it is stored (one 16-byte copy): the one found
                // was kept in pieces across the checks (about 8 instructions per frame).
                // SAFETY: `locate_fields` found the fields after the header: the frame holds
                // at least `HEADER_LEN` bytes, and `Header` is unaligned.
                self.header = unsafe { frame.as_ptr().cast::<Header>().read_unaligned() };
                self.path_end = fields.path_end;
                self.method_end = fields.method_end;
                self.metadata_end = fields.metadata.end as u32;
                if self.decompressed.is_some() {
                    self.decompressed = None;
                }
                self.start = 0;
                self.end = frame.len() as u32;
                self.bytes = frame;
                self.lent = false;
                Ok(())
            }
            _ => {
                *self = Self::parse_checked(frame, limits)?;
                Ok(())
            }
        }
    }

    /// Parses the frame at `start..end` of `run` (a run of whole frames cut in one piece,
    /// [`crate::decode::FrameRun`]) into `self`, which shares the run: it takes a handle on the
    /// run only if it does not hold one already (at the run's first frame, or after being
    /// cleared), and takes `run`'s own handle, leaving it empty, for the run's last frame. So a
    /// run costs one reference count where each frame cost one, with its split, freeze and drop
    /// (`BytesMut::split_to` alone was 39 instructions per request, callgrind, Echo 10 x 32).
    /// After an error `self` holds its old frame.
    ///
    /// The caller ([`crate::decode::FrameRun`]) has checked the frame's prefix (its magic, and
    /// its total length is `end - start - HEADER_LEN`), and `start < end <= run.len() <=
    /// u32::MAX`.
    #[inline(always)]
    pub(crate) fn parse_run_frame_into(
        &mut self,
        run: &mut Bytes,
        start: usize,
        end: usize,
        limits: &Limits,
    ) -> Result<(), DecodeError> {
        debug_assert!(start < end && end <= run.len() && run.len() <= u32::MAX as usize);
        // SAFETY: `start <= end <= run.len()`, the caller's contract (checked in debug builds).
        let frame = unsafe { run.get_unchecked(start..end) };
        debug_assert!(frame.len() >= HEADER_LEN);
        // SAFETY: a whole frame holds its prefix (`Header` is unaligned). The frame's length,
        // at least `HEADER_LEN` and at most `u32::MAX`, is the caller's contract too: the checks
        // of `locate_fields` that could not fail are skipped (9 per frame, callgrind).
        let compress = unsafe { (*frame.as_ptr().cast::<Header>()).compress_type() };
        match locate_body_fields(frame, compress) {
            Some(fields) if fields.take_the_common_path(frame, limits) => {
                // The stores of `parse_checked_into`'s common path, at `start` of the run: written
                // out twice, as one helper for both cost 12 instructions per request at 10 x 32
                // and 55 at 10 x 1 (callgrind: LLVM allocated the loop's registers differently).
                // SAFETY: `locate_fields` found the fields after the header: the frame holds at
                // least `HEADER_LEN` bytes, and `Header` is unaligned.
                self.header = unsafe { frame.as_ptr().cast::<Header>().read_unaligned() };
                // No overflow: the run is at most `u32::MAX` long.
                let base = start as u32;
                self.path_end = base + fields.path_end;
                self.method_end = base + fields.method_end;
                self.metadata_end = base + fields.metadata.end as u32;
                if self.decompressed.is_some() {
                    self.decompressed = None;
                }
                self.start = base;
                self.end = end as u32;
                if end == run.len() {
                    // The run's last frame: its handle moves here (dropping this message's own
                    // handle on the run, if it had one).
                    self.bytes = std::mem::take(run);
                    self.lent = false;
                } else if self.bytes.as_ptr() != run.as_ptr() || self.bytes.len() != run.len() {
                    // Two live handles on the same address and length view the same bytes:
                    // otherwise this message holds another frame's bytes, and shares the run.
                    self.share_run(run);
                } else {
                    // (A lent view never matches a run: the buffer it lies in is not written
                    // while it is lent, `Decoder::next_lending_into`, so no run is cut there.)
                    debug_assert!(!self.lent, "a lent frame's bytes cut into a run");
                }
                Ok(())
            }
            _ => self.parse_run_frame_checked(run, start, end, limits),
        }
    }

    /// Takes a handle on `run` (once per run: kept out of the frame loop).
    #[cold]
    #[inline(never)]
    fn share_run(&mut self, run: &Bytes) {
        self.bytes = run.clone();
        self.lent = false;
    }

    /// [`Message::parse_run_frame_into`]'s full parse, for a malformed or compressed frame.
    #[cold]
    #[inline(never)]
    fn parse_run_frame_checked(
        &mut self,
        run: &mut Bytes,
        start: usize,
        end: usize,
        limits: &Limits,
    ) -> Result<(), DecodeError> {
        let frame = run.slice(start..end);
        if end == run.len() {
            *run = Bytes::new();
        }
        *self = Self::parse_checked(frame, limits)?;
        Ok(())
    }

    /// The full parse, with the error of the first thing wrong: the path of malformed and
    /// compressed frames.
    #[cold]
    #[inline(never)]
    fn parse_checked(frame: Bytes, limits: &Limits) -> Result<Message, DecodeError> {
        let header = *Header::view(&frame).ok_or(DecodeError::InnerLengthOverrun {
            field: BodyField::ServicePath,
            len: HEADER_LEN as u32,
            remaining: frame.len(),
        })?;
        if header.magic() != crate::MAGIC {
            return Err(DecodeError::BadMagic(header.magic()));
        }
        let announced = HEADER_LEN + header.total_len() as usize;
        if frame.len() != announced || frame.len() > u32::MAX as usize {
            return Err(DecodeError::FrameLengthMismatch {
                announced,
                actual: frame.len(),
            });
        }

        let mut cursor = HEADER_LEN;
        let path = take_field(&frame, &mut cursor, BodyField::ServicePath)?;
        let method = take_field(&frame, &mut cursor, BodyField::ServiceMethod)?;
        let metadata = take_field(&frame, &mut cursor, BodyField::Metadata)?;
        Metadata::parse_limited(&frame[metadata.clone()], limits.max_metadata_pairs)?;
        // rpcx-protocol.md 1.4 / 9.2: the payload length field must be there, but its value is
        // ignored as Go ignores it: the payload is the rest of the body.
        if frame.len() - cursor < 4 {
            return Err(DecodeError::InnerLengthOverrun {
                field: BodyField::PayloadLength,
                len: 4,
                remaining: frame.len() - cursor,
            });
        }
        let decompressed = match header.compress_type() {
            CompressType::None => None,
            CompressType::Gzip => Some(Box::new(Bytes::from(gunzip(
                &frame[cursor + 4..],
                limits.max_decompressed_len,
            )?))),
            CompressType::Unregistered(bits) => {
                return Err(DecodeError::UnsupportedCompressor(bits))
            }
        };

        Ok(Message {
            header,
            start: 0,
            end: frame.len() as u32,
            bytes: frame,
            path_end: path.end as u32,
            method_end: method.end as u32,
            metadata_end: metadata.end as u32,
            decompressed,
            lent: false,
        })
    }

    /// Parses `frame`, a whole frame lent by its [`crate::Decoder`] (its prefix checked, and
    /// exactly as long as it announces), into `self` without a handle on it: `self` views the
    /// frame where it lies. After an error `self` holds its old frame.
    ///
    /// # Safety
    /// `frame`'s bytes must stay valid and unchanged for as long as `self` holds them: until
    /// `self` is cleared, parsed into again, given its own handle ([`Message::adopt_lent`]) or
    /// dropped.
    #[inline(always)]
    pub(crate) unsafe fn parse_lent_into(
        &mut self,
        frame: &[u8],
        limits: &Limits,
    ) -> Result<(), DecodeError> {
        // SAFETY: the caller keeps the bytes valid and unchanged while `self` holds them, and the
        // static `Bytes` over them never leaves `self`: a lent message copies its frame for a
        // clone, `payload_bytes`, `frame_bytes` and `into_payload`. Dropping it touches nothing.
        let view: &'static [u8] = unsafe { &*(frame as *const [u8]) };
        self.parse_checked_into::<true>(Bytes::from_static(view), limits)?;
        self.lent = true;
        Ok(())
    }

    /// Whether the frame is lent ([`crate::Decoder::next_lending_into`]): viewed where its lender
    /// keeps it, with no handle on it.
    #[inline(always)]
    pub fn is_lent(&self) -> bool {
        self.lent
    }

    /// The lent frame's bytes as lent (from the start of the lender's buffer), if it is lent.
    #[inline(always)]
    pub(crate) fn lent_bytes(&self) -> Option<&[u8]> {
        self.lent.then_some(&self.bytes[..])
    }

    /// Gives a lent message its own handle on its bytes: `bytes` holds what
    /// [`Message::lent_bytes`] views, at the same offsets. Panics unless it is as long.
    #[inline]
    pub(crate) fn adopt_lent(&mut self, bytes: Bytes) {
        assert!(
            self.lent && bytes.len() == self.bytes.len(),
            "a lent frame adopts its own bytes"
        );
        debug_assert_eq!(&bytes[..], &self.bytes[..]);
        self.bytes = bytes;
        self.lent = false;
    }

    /// A clone of a lent message, owning a copy of its frame.
    #[cold]
    #[inline(never)]
    fn owned_copy(&self) -> Message {
        // The copy starts where the frame does.
        self.with_bytes(Bytes::copy_from_slice(self.frame()), self.start)
    }

    /// This message over `bytes`, owned, which hold its bytes from `base` on (its offsets move
    /// back by `base`).
    #[inline(always)]
    fn with_bytes(&self, bytes: Bytes, base: u32) -> Message {
        Message {
            header: self.header,
            bytes,
            start: self.start - base,
            end: self.end - base,
            path_end: self.path_end - base,
            method_end: self.method_end - base,
            metadata_end: self.metadata_end - base,
            decompressed: self.decompressed.clone(),
            lent: false,
        }
    }

    /// `bytes[start..end]` of the message's bytes as an owned handle: a copy if they are lent.
    #[inline(always)]
    fn bytes_slice(&self, start: usize, end: usize) -> Bytes {
        if self.lent {
            return copy_lent(self.field(start, end));
        }
        self.bytes.slice(start..end)
    }

    /// The 16-byte prefix as received.
    #[inline]
    pub fn header(&self) -> &Header {
        &self.header
    }

    #[inline]
    pub fn seq(&self) -> u64 {
        self.header.seq()
    }

    #[inline]
    pub fn serialize_type(&self) -> SerializeType {
        self.header.serialize_type()
    }

    #[inline]
    pub fn is_heartbeat(&self) -> bool {
        self.header.is_heartbeat()
    }

    #[inline]
    pub fn is_oneway(&self) -> bool {
        self.header.is_oneway()
    }

    /// The service path bytes (UTF-8 by convention only; never validated, as in Go).
    #[inline]
    pub fn service_path(&self) -> &[u8] {
        self.field(self.start as usize + HEADER_LEN + 4, self.path_end as usize)
    }

    /// The service method bytes.
    #[inline]
    pub fn service_method(&self) -> &[u8] {
        self.field(self.path_end as usize + 4, self.method_end as usize)
    }

    /// The metadata, validated at parse time.
    #[inline]
    pub fn metadata(&self) -> Metadata<'_> {
        if !self.has_metadata() {
            // Most requests: no slicing (and its bounds checks) for nothing.
            return Metadata::from_validated(&[]);
        }
        // Validated in `parse`; checking again would cost a second walk of the block.
        Metadata::from_validated(
            self.field(self.method_end as usize + 4, self.metadata_end as usize),
        )
    }

    /// Whether the request carries metadata: `!metadata().is_empty()` without slicing it out.
    #[inline]
    pub fn has_metadata(&self) -> bool {
        self.metadata_end > self.method_end + 4
    }

    /// The payload, decompressed.
    #[inline]
    pub fn payload(&self) -> &[u8] {
        match &self.decompressed {
            Some(payload) => payload,
            None => self.field(self.metadata_end as usize + 4, self.end as usize),
        }
    }

    /// The payload, decompressed, as a shared handle (no copy: a slice of the frame, or the
    /// decompressed buffer; a copy if the frame is lent).
    // Always: with the lent frame's branch it was no longer inlined (36 instructions per request
    // as a call, `Hello.Say` at 10 x 32, callgrind).
    #[inline(always)]
    pub fn payload_bytes(&self) -> Bytes {
        match &self.decompressed {
            Some(payload) => (**payload).clone(),
            None => self.bytes_slice(self.metadata_end as usize + 4, self.end as usize),
        }
    }

    /// The service path and method exactly as on the wire, each after its 4-byte length: the
    /// bytes that name the method called (at least 8 long), for a caller that compares names
    /// without slicing them apart.
    #[inline]
    pub fn names_on_wire(&self) -> &[u8] {
        self.field(self.start as usize + HEADER_LEN, self.method_end as usize)
    }

    /// The payload bytes exactly as on the wire (still compressed if the frame was).
    pub fn wire_payload(&self) -> &[u8] {
        self.field(self.metadata_end as usize + 4, self.end as usize)
    }

    /// The whole frame as received, prefix included.
    #[inline]
    pub fn frame(&self) -> &[u8] {
        self.field(self.start as usize, self.end as usize)
    }

    /// The whole frame as a shared handle (no copy, unless the frame is lent).
    #[inline]
    pub fn frame_bytes(&self) -> Bytes {
        self.bytes_slice(self.start as usize, self.end as usize)
    }

    /// Takes the payload out, dropping the rest of the message.
    pub fn into_payload(self) -> Bytes {
        match self.decompressed {
            Some(payload) => *payload,
            None => self.bytes_slice(self.metadata_end as usize + 4, self.end as usize),
        }
    }

    /// `bytes[start..end]` for the bounds of a field of this message, unchecked: every
    /// constructor keeps `start + HEADER_LEN + 4 <= path_end`, `path_end + 4 <= method_end`,
    /// `method_end + 4 <= metadata_end`, `metadata_end + 4 <= end` and `end <= bytes.len()` (the
    /// fields were found inside the frame, and the frame inside its bytes, or they are the empty
    /// message's), so the bounds checks of a plain slice could never fail: they cost 6
    /// instructions per request on the route and the payload (callgrind, Echo 10 x 32).
    #[inline(always)]
    fn field(&self, start: usize, end: usize) -> &[u8] {
        debug_assert!(
            self.start as usize <= start && start <= end && end <= self.end as usize,
            "a field inside the frame"
        );
        debug_assert!(self.end as usize <= self.bytes.len());
        // SAFETY: `start <= end <= bytes.len()` by the invariant above, for every bound passed.
        unsafe { self.bytes.get_unchecked(start..end) }
    }

    /// The frame up to its metadata length field (prefix, path, method): what a reply copies
    /// (spec 4.3).
    #[inline]
    pub(crate) fn reply_prefix(&self) -> &[u8] {
        self.field(self.start as usize, self.method_end as usize)
    }
}

/// A lent frame's bytes copied, for a handle that may outlive the lend.
#[cold]
#[inline(never)]
fn copy_lent(bytes: &[u8]) -> Bytes {
    Bytes::copy_from_slice(bytes)
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("header", &self.header)
            .field(
                "service_path",
                &String::from_utf8_lossy(self.service_path()),
            )
            .field(
                "service_method",
                &String::from_utf8_lossy(self.service_method()),
            )
            .field("metadata", &self.metadata())
            .field("payload_len", &self.payload().len())
            .finish()
    }
}

/// Where the fields of a well-formed frame lie, found with bounds checks only.
struct Fields {
    compress: CompressType,
    path_end: u32,
    method_end: u32,
    metadata: std::ops::Range<usize>,
}

impl Fields {
    /// Whether the frame they were found in takes the common path of a parse: not compressed, and
    /// with valid metadata or none. Otherwise [`Message::parse_checked`] parses it and names what
    /// is wrong.
    #[inline(always)]
    fn take_the_common_path(&self, frame: &[u8], limits: &Limits) -> bool {
        self.compress == CompressType::None
            && (self.metadata.is_empty()
                || Metadata::parse_limited(
                    &frame[self.metadata.clone()],
                    limits.max_metadata_pairs,
                )
                .is_ok())
    }
}

/// The fields of `frame` if it is well formed as far as lengths go (magic, total length, the
/// three length-prefixed fields and the payload length field all inside the frame); `None`
/// otherwise, for [`Message::parse_checked`] to say why. Metadata pairs are not checked here.
/// `FRAMED`: the magic and the total length are known good ([`Message::parse_checked_into`]).
#[inline(always)]
fn locate_fields<const FRAMED: bool>(frame: &[u8]) -> Option<Fields> {
    let header = Header::view(frame)?;
    if (!FRAMED
        && (header.magic() != crate::MAGIC
            || frame.len() != HEADER_LEN + header.total_len() as usize))
        || frame.len() > u32::MAX as usize
    {
        return None;
    }
    locate_body_fields(frame, header.compress_type())
}

/// [`locate_fields`] after the checks of the prefix and the frame's length: `frame` holds at
/// least `HEADER_LEN` bytes and at most `u32::MAX`, its prefix announcing `compress`.
#[inline(always)]
fn locate_body_fields(frame: &[u8], compress: CompressType) -> Option<Fields> {
    debug_assert!(frame.len() >= HEADER_LEN && frame.len() <= u32::MAX as usize);
    let path_end = next_field_end(frame, HEADER_LEN)?;
    let method_end = next_field_end(frame, path_end)?;
    let metadata_end = next_field_end(frame, method_end)?;
    // The payload length field must be there (its value is ignored, spec 1.4 / 9.2).
    if frame.len() - metadata_end < 4 {
        return None;
    }
    Some(Fields {
        compress,
        path_end: path_end as u32,
        method_end: method_end as u32,
        metadata: method_end + 4..metadata_end,
    })
}

/// The end of the `u32 len, bytes` field at `at`, if it lies inside `frame`.
#[inline(always)]
fn next_field_end(frame: &[u8], at: usize) -> Option<usize> {
    let len_bytes: [u8; 4] = frame.get(at..at + 4)?.try_into().ok()?;
    let len = u32::from_be_bytes(len_bytes) as usize;
    let start = at + 4;
    if len > frame.len() - start {
        return None;
    }
    Some(start + len)
}

/// Reads one `u32 len, bytes` field at `*cursor`, advancing past it.
#[inline]
fn take_field(
    frame: &[u8],
    cursor: &mut usize,
    field: BodyField,
) -> Result<std::ops::Range<usize>, DecodeError> {
    let remaining = frame.len() - *cursor;
    let len_bytes: [u8; 4] = frame
        .get(*cursor..*cursor + 4)
        .and_then(|b| b.try_into().ok())
        .ok_or(DecodeError::InnerLengthOverrun {
            field,
            len: 4,
            remaining,
        })?;
    let len = u32::from_be_bytes(len_bytes);
    let start = *cursor + 4;
    if (len as usize) > frame.len() - start {
        return Err(DecodeError::InnerLengthOverrun {
            field,
            len,
            remaining: frame.len() - start,
        });
    }
    let end = start + len as usize;
    *cursor = end;
    Ok(start..end)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{encode_frame, Header};
    use bytes::BytesMut;

    #[test]
    fn a_frame_of_the_wrong_length_is_an_error_not_a_panic() {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, &Header::new(), b"Echo", b"Echo", [], b"payload");
        let frame = buf.freeze();
        let limits = Limits::default();
        assert!(Message::parse(frame.clone(), &limits).is_ok());
        for bad in [frame.slice(..frame.len() - 1), {
            let mut longer = frame.to_vec();
            longer.push(0);
            Bytes::from(longer)
        }] {
            assert!(matches!(
                Message::parse(bad, &limits),
                Err(DecodeError::FrameLengthMismatch { .. })
            ));
        }
        assert!(Message::parse(frame.slice(..10), &limits).is_err());
    }

    /// Every field a reader can see, to compare two messages: the header (its `Debug` text), the
    /// path, method, metadata block, payload and whole frame.
    pub(crate) fn fields(message: &Message) -> Vec<Vec<u8>> {
        vec![
            format!("{:?}", message.header()).into_bytes(),
            message.service_path().to_vec(),
            message.service_method().to_vec(),
            message.metadata().as_bytes().to_vec(),
            message.payload().to_vec(),
            message.frame().to_vec(),
        ]
    }

    #[test]
    fn a_message_refilled_in_place_reads_as_one_parsed_anew() {
        let limits = Limits::default();
        let mut gzip = Header::new();
        gzip.set_compress_type(CompressType::Gzip);
        gzip.set_seq(3);
        let mut frames = Vec::new();
        for (header, path, method, pairs, payload) in [
            (
                Header::new(),
                &b"Echo"[..],
                &b"Echo"[..],
                vec![],
                &b"one"[..],
            ),
            (
                gzip,
                b"Arith",
                b"Mul",
                vec![(&b"k"[..], &b"v"[..])],
                &[b'x'; 3000][..],
            ),
            (
                Header::new(),
                b"",
                b"",
                vec![(b"a", b"b"), (b"c", b"")],
                b"",
            ),
            (Header::new(), b"P", b"M", vec![], b"after a compressed one"),
        ] {
            let mut wire = BytesMut::new();
            encode_frame(&mut wire, &header, path, method, pairs, payload);
            frames.push(wire.freeze());
        }
        let mut slot = Message::empty();
        assert!(!slot.has_metadata());
        assert_eq!(slot.service_path(), b"");
        assert_eq!(slot.payload(), b"");
        // Twice round, so that a compressed frame is followed by a plain one and the reverse.
        for frame in frames.iter().chain(&frames) {
            slot.parse_into(frame.clone(), &limits).unwrap();
            let anew = Message::parse(frame.clone(), &limits).unwrap();
            assert_eq!(fields(&slot), fields(&anew));
            assert_eq!(slot.has_metadata(), !anew.metadata().is_empty());
        }
        slot.clear();
        assert_eq!(fields(&slot), fields(&Message::empty()));
        slot.parse_into(frames[1].clone(), &limits).unwrap();
        // A bad frame is an error, and the slot keeps the frame it held.
        let held = fields(&slot);
        let bad = frames[0].slice(..frames[0].len() - 1);
        assert!(slot.parse_into(bad, &limits).is_err());
        assert_eq!(fields(&slot), held);
    }

    #[test]
    fn payload_views_agree() {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, &Header::new(), b"P", b"M", [], b"abc");
        let msg = Message::parse(buf.freeze(), &Limits::default()).unwrap();
        assert_eq!(msg.payload(), b"abc");
        assert_eq!(&msg.payload_bytes()[..], b"abc");
        assert_eq!(msg.wire_payload(), b"abc");
        assert_eq!(&msg.into_payload()[..], b"abc");
    }
}
