//! Fuzzes the decoder with arbitrary byte streams (rpcx-protocol.md 1.4–1.8).
//!
//! Checks, for any input: no panic; the stream decodes to the same frames and the same final error
//! whether it arrives whole, one byte at a time or in 7-byte pieces, and whether each frame is
//! returned, parsed into one message kept from frame to frame, taken by runs of frames (and a
//! clone of every message still reads as its frame after the runs moved on), or with lone frames
//! lent (half of them then given their own handle, the clones still reading right); every decoded
//! message's replies
//! (normal, error, heartbeat) encode and decode back; small limits refuse frames without panicking.
//! Seeds come from the golden vectors: `scripts/fuzz.sh` writes them.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ringrpc_codec::{
    encode_error_reply, encode_heartbeat_reply, encode_reply, DecodeError, Decoder, FrameRun,
    Limits, Message,
};

fuzz_target!(|data: &[u8]| {
    let whole = run(&Decoder::default(), data, data.len().max(1));
    for chunk in [1, 7] {
        assert_eq!(
            whole,
            run(&Decoder::default(), data, chunk),
            "the outcome depends on how the stream is cut ({chunk}-byte pieces)"
        );
    }
    assert_eq!(
        whole,
        run_into(&Decoder::default(), data, 7),
        "frames parsed into a kept message differ from frames returned one by one"
    );
    for chunk in [7, 100, data.len().max(1)] {
        assert_eq!(
            whole,
            run_runs(&Decoder::default(), data, chunk),
            "frames taken by runs differ from frames returned one by one ({chunk}-byte pieces)"
        );
        assert_eq!(
            whole,
            run_lending(&Decoder::default(), data, chunk),
            "frames lent differ from frames returned one by one ({chunk}-byte pieces)"
        );
    }
    let small = Limits {
        max_frame_len: 64,
        max_decompressed_len: 64,
        max_metadata_pairs: 2,
    };
    let limited = run(&Decoder::new(small), data, data.len().max(1));
    // A limit can only stop decoding earlier, never change a frame.
    assert!(limited.frames.len() <= whole.frames.len());
    assert_eq!(limited.frames[..], whole.frames[..limited.frames.len()]);
});

/// What decoding a stream produced: each frame's bytes and payload, then the error that stopped it.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    frames: Vec<(Vec<u8>, Vec<u8>)>,
    error: Option<String>,
}

/// Feeds `data` to `decoder` `chunk` bytes at a time, decoding all it can after each piece.
fn run(decoder: &Decoder, data: &[u8], chunk: usize) -> Outcome {
    feed(data, chunk, |buf| {
        Ok(decoder.decode(buf)?.map(|msg| {
            check_replies(&msg);
            (msg.frame().to_vec(), msg.payload().to_vec())
        }))
    })
}

/// As [`run`], the way a connection decodes: every frame parsed into one message kept from frame
/// to frame ([`Decoder::decode_into`]).
fn run_into(decoder: &Decoder, data: &[u8], chunk: usize) -> Outcome {
    let mut kept = Message::empty();
    feed(data, chunk, |buf| {
        Ok(decoder.decode_into(buf, &mut kept)?.then(|| {
            check_replies(&kept);
            (kept.frame().to_vec(), kept.payload().to_vec())
        }))
    })
}

/// As [`run_into`], with the frames taken by runs ([`Decoder::next_into`]); a clone of every
/// message is kept, and still reads as its frame once the runs have moved on.
fn run_runs(decoder: &Decoder, data: &[u8], chunk: usize) -> Outcome {
    let mut kept = Message::empty();
    let mut run = FrameRun::default();
    let mut clones = Vec::new();
    let outcome = feed(data, chunk, |buf| {
        Ok(decoder.next_into(buf, &mut run, &mut kept)?.then(|| {
            check_replies(&kept);
            clones.push(kept.clone());
            (kept.frame().to_vec(), kept.payload().to_vec())
        }))
    });
    for (clone, (frame, payload)) in clones.iter().zip(&outcome.frames) {
        assert_eq!(clone.frame(), &frame[..]);
        assert_eq!(clone.payload(), &payload[..]);
    }
    outcome
}

/// As [`run_runs`], with lone frames lent ([`Decoder::next_lending_into`]): every other lent
/// frame is given its own handle, the rest copied by their clone, and each lend ends before the
/// buffer is written again.
fn run_lending(decoder: &Decoder, data: &[u8], chunk: usize) -> Outcome {
    let mut kept = Message::empty();
    let mut run = FrameRun::default();
    let mut clones = Vec::new();
    let mut lent = 0;
    let outcome = feed(data, chunk, |buf| {
        // SAFETY: a lend ends below, before `feed` writes to `buf` again (a lend only comes
        // with a frame taken).
        let taken = unsafe { decoder.next_lending_into(buf, &mut run, &mut kept) }?;
        Ok(taken.then(|| {
            check_replies(&kept);
            let frame = (kept.frame().to_vec(), kept.payload().to_vec());
            if run.lends() {
                assert!(kept.is_lent());
                lent += 1;
                if lent % 2 == 0 {
                    run.own_lent(buf, &mut kept);
                    assert!(!kept.is_lent() && !run.lends());
                }
            }
            clones.push(kept.clone());
            if run.lends() {
                assert!(run.end_lend(buf, &mut kept));
            }
            frame
        }))
    });
    for (clone, (frame, payload)) in clones.iter().zip(&outcome.frames) {
        assert!(!clone.is_lent());
        assert_eq!(clone.frame(), &frame[..]);
        assert_eq!(clone.payload(), &payload[..]);
    }
    outcome
}

/// Feeds `data` `chunk` bytes at a time to a buffer, taking what `next` decodes (a frame's bytes
/// and payload) after each piece until it wants more or fails.
fn feed(
    data: &[u8],
    chunk: usize,
    mut next: impl FnMut(&mut BytesMut) -> Result<Option<(Vec<u8>, Vec<u8>)>, DecodeError>,
) -> Outcome {
    let mut buf = BytesMut::new();
    let mut outcome = Outcome {
        frames: Vec::new(),
        error: None,
    };
    for piece in data.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match next(&mut buf) {
                Ok(Some(frame)) => outcome.frames.push(frame),
                Ok(None) => break,
                Err(e) => {
                    outcome.error = Some(e.to_string());
                    return outcome;
                }
            }
        }
    }
    outcome
}

/// Uses every accessor of `msg`, then encodes its three kinds of reply and decodes them back.
fn check_replies(msg: &Message) {
    let _ = format!("{msg:?}");
    let meta = msg.metadata();
    assert_eq!(meta.iter().count(), meta.len());
    let _ = meta.get_str(ringrpc_codec::AUTH_KEY);

    let mut out = BytesMut::new();
    encode_reply(&mut out, msg, meta.iter(), msg.payload());
    encode_error_reply(&mut out, msg, "fuzz", meta.iter(), msg.payload());
    encode_heartbeat_reply(&mut out, msg);
    let unlimited = Decoder::new(Limits::unlimited());
    for _ in 0..3 {
        let reply = unlimited
            .decode(&mut out)
            .expect("our own reply decodes")
            .expect("whole reply");
        assert!(reply.header().is_response());
        assert_eq!(reply.seq(), msg.seq());
        assert_eq!(reply.service_path(), msg.service_path());
        assert_eq!(reply.service_method(), msg.service_method());
        assert_eq!(reply.payload(), msg.payload());
    }
    assert!(out.is_empty());
}
