//! End-to-end tests of `ringrpc-echo-bufring` (the echo on a provided buffer ring with multishot
//! receive): the binary on 127.0.0.1:0, real sockets, frames built by hand. Every socket has a
//! 10 s timeout, so a lost reply fails the test instead of hanging it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The binary, killed when the test ends whatever happens.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts the binary with `extra` arguments and waits for its `listening on ADDR` line.
    fn start(extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringrpc-echo-bufring"))
            .args(["--addr", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("ringrpc-echo-bufring starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .parse()
            .unwrap();
        Server { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An rpcx request frame (docs/protocol.md 1.1): magic, version, request flags, raw
/// serialization, `seq`, then the body length and a body of service path, method, no metadata
/// and `payload_len` bytes of payload.
fn request(seq: u64, payload_len: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(payload_len + 32);
    for field in [&b"Echo"[..], b"Echo", b""] {
        body.extend_from_slice(&(field.len() as u32).to_be_bytes());
        body.extend_from_slice(field);
    }
    body.extend_from_slice(&(payload_len as u32).to_be_bytes());
    body.extend((0..payload_len).map(|i| (i as u64 ^ seq) as u8));
    let mut frame = vec![0x08, 0, 0, 0];
    frame.extend_from_slice(&seq.to_be_bytes());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// What the echo must send back for `frame`: the same bytes with the response bit (0x80 of the
/// third byte, spec 1.2) set.
fn reply(frame: &[u8]) -> Vec<u8> {
    let mut reply = frame.to_vec();
    reply[2] |= 0x80;
    reply
}

fn read_exactly(stream: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0; len];
    stream.read_exact(&mut got).expect("the whole reply");
    got
}

#[test]
fn pipelined_frames_of_every_size_come_back_with_the_response_bit() {
    // Small ring buffers (4 KiB) so that most frames span several of them.
    let server = Server::start(&["--buf-size", "4096", "--buf-count", "64"]);
    let sizes = [0, 581, 4000, 4096, 4097, 20_000, 100_000, 8 << 20, 3];
    let frames: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(seq, &len)| request(seq as u64, len))
        .collect();
    let wire: Vec<u8> = frames.concat();
    let mut stream = server.connect();
    let mut writer = stream.try_clone().unwrap();
    // Written from another thread: 8 MiB do not fit in the socket buffers while nobody reads.
    let sent = wire.clone();
    let write = std::thread::spawn(move || writer.write_all(&sent).unwrap());
    let got = read_exactly(&mut stream, wire.len());
    write.join().unwrap();
    let expected: Vec<u8> = frames.iter().flat_map(|f| reply(f)).collect();
    assert!(got == expected, "the replies differ from the requests");
}

#[test]
fn frames_split_across_many_writes_are_reassembled() {
    let server = Server::start(&["--buf-size", "4096", "--buf-count", "64"]);
    let frame = request(7, 10_000);
    let mut stream = server.connect();
    // One byte, then the rest of the prefix, then the body in uneven pieces.
    for piece in [&frame[..1], &frame[1..16], &frame[16..5000], &frame[5000..]] {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(read_exactly(&mut stream, frame.len()), reply(&frame));
}

#[test]
fn many_connections_are_served_at_once_even_when_the_ring_runs_empty() {
    // 8 buffers of 4 KiB for 200 connections each sending 64 KiB: the ring runs empty again and
    // again, and every multishot receive it ends must be armed again.
    let server = Server::start(&["--buf-size", "4096", "--buf-count", "8"]);
    let started = Instant::now();
    let mut conns: Vec<(TcpStream, Vec<u8>)> = (0..200)
        .map(|i| {
            let frames: Vec<u8> = (0..4)
                .map(|j| request(i * 4 + j, 16 << 10))
                .collect::<Vec<_>>()
                .concat();
            (server.connect(), frames)
        })
        .collect();
    let writers: Vec<_> = conns
        .iter()
        .map(|(stream, frames)| {
            let mut stream = stream.try_clone().unwrap();
            let frames = frames.clone();
            std::thread::spawn(move || stream.write_all(&frames).unwrap())
        })
        .collect();
    for (stream, frames) in &mut conns {
        let got = read_exactly(stream, frames.len());
        let mut expected = frames.clone();
        let mut at = 0;
        while at < expected.len() {
            expected[at + 2] |= 0x80;
            at += 16 + u32::from_be_bytes(expected[at + 12..at + 16].try_into().unwrap()) as usize;
        }
        assert!(got == expected, "a connection got wrong replies");
    }
    for writer in writers {
        writer.join().unwrap();
    }
    assert!(started.elapsed() < TIMEOUT);
}

#[test]
fn misframing_closes_the_connection_after_the_frames_before_it() {
    let server = Server::start(&[]);
    let frame = request(1, 581);
    let mut stream = server.connect();
    let mut wire = frame.clone();
    wire.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
    stream.write_all(&wire).unwrap();
    assert_eq!(read_exactly(&mut stream, frame.len()), reply(&frame));
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).expect("a clean close");
    assert!(rest.is_empty(), "nothing after the last whole frame");
    // The server still serves others.
    let mut other = server.connect();
    other.write_all(&frame).unwrap();
    assert_eq!(read_exactly(&mut other, frame.len()), reply(&frame));
}

#[test]
fn sigterm_stops_it_after_the_replies_are_out() {
    let mut server = Server::start(&[]);
    let idle = server.connect();
    let mut busy = server.connect();
    let frame = request(3, 581);
    busy.write_all(&frame).unwrap();
    assert_eq!(read_exactly(&mut busy, frame.len()), reply(&frame));
    // SAFETY: a signal to the child we started and have not reaped.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let deadline = Instant::now() + TIMEOUT;
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    drop(idle);
}
