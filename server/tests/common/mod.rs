//! Test support: a real server on a random 127.0.0.1 port (in this process, or the binary as a
//! child: `binary`), and a blocking client that speaks frames through the codec.
#![allow(dead_code)]

pub mod binary;
pub mod http;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;
use ringrpc_codec::{encode_frame, Decoder, Header, Limits, Message, SerializeType};
use ringrpc_server::{
    demo, RegistrationError, Running, Server, ServerConfig, ServiceTable, Shutdown, WorkerId,
};

/// A server that shuts down when dropped.
pub struct TestServer {
    pub addr: SocketAddr,
    pub shutdown: Shutdown,
    running: Option<Running>,
}

impl TestServer {
    /// The demo services on `threads` workers.
    pub fn start(threads: usize) -> TestServer {
        Self::with(ServerConfig::default().threads(threads), demo::demo_table)
    }

    /// A server whose workers each build their table with `factory`.
    pub fn with<F>(config: ServerConfig, factory: F) -> TestServer
    where
        F: Fn(WorkerId) -> Result<ServiceTable, RegistrationError> + Send + Sync + 'static,
    {
        let config = config.addr("127.0.0.1:0".parse().unwrap());
        let shutdown = Shutdown::new();
        let running = Server::new(config, factory).start(&shutdown).unwrap();
        TestServer {
            addr: running.local_addr(),
            shutdown,
            running: Some(running),
        }
    }

    /// Triggers shutdown and waits for every worker to exit.
    pub fn stop(&mut self) {
        self.shutdown.trigger();
        if let Some(running) = self.running.take() {
            running.join().expect("workers stop cleanly");
        }
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Refusals counted by the limits so far.
    pub fn refusals(&self) -> std::sync::Arc<ringrpc_server::RefusalCounts> {
        self.running
            .as_ref()
            .expect("server still running")
            .refusals()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Golden vectors by name (docs/vectors/rpcx-golden.txt, Go's bytes).
pub fn vectors() -> HashMap<String, Vec<u8>> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/vectors/rpcx-golden.txt"
    );
    let text =
        std::fs::read_to_string(path).expect("docs/vectors/rpcx-golden.txt in the repository");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (name, hex) = l.split_once(' ').unwrap();
            let hex = hex.trim();
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (name.to_string(), bytes)
        })
        .collect()
}

/// A request frame.
pub fn request(
    seq: u64,
    path: &str,
    method: &str,
    serialize: SerializeType,
    metadata: &[(&str, &str)],
    payload: &[u8],
) -> Vec<u8> {
    let mut header = Header::new();
    header.set_seq(seq).set_serialize_type(serialize);
    frame(&header, path, method, metadata, payload)
}

pub fn frame(
    header: &Header,
    path: &str,
    method: &str,
    metadata: &[(&str, &str)],
    payload: &[u8],
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    encode_frame(
        &mut buf,
        header,
        path.as_bytes(),
        method.as_bytes(),
        metadata.iter().map(|(k, v)| (k.as_bytes(), v.as_bytes())),
        payload,
    );
    buf.to_vec()
}

/// A blocking client: writes raw bytes, reads whole frames.
pub struct Client {
    pub stream: TcpStream,
    buf: BytesMut,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: BytesMut::new(),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// The next frame, or `None` at EOF or after `timeout` with nothing.
    pub fn recv_within(&mut self, timeout: Duration) -> Option<Message> {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let decoder = Decoder::new(Limits::unlimited());
        loop {
            if let Some(msg) = decoder
                .decode(&mut self.buf)
                .expect("server sent a bad frame")
            {
                return Some(msg);
            }
            let mut chunk = [0u8; 65536];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return None
                }
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("read failed: {e}"),
            }
        }
    }

    pub fn recv(&mut self) -> Message {
        self.recv_within(Duration::from_secs(10))
            .expect("a reply within 10 s")
    }

    /// Raw bytes of the next frame.
    pub fn recv_bytes(&mut self) -> Vec<u8> {
        self.recv().frame().to_vec()
    }

    /// Sends a request and returns its reply.
    pub fn echo(&mut self, seq: u64, payload: &[u8]) -> Message {
        self.call(seq, "Echo", "Echo", SerializeType::Raw, payload)
    }

    /// Whether the server closed the connection (EOF or reset) within `timeout`.
    pub fn is_closed_within(&mut self, timeout: Duration) -> bool {
        self.stream.set_read_timeout(Some(timeout)).unwrap();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
    }

    /// Sends a request and returns its reply.
    pub fn call(
        &mut self,
        seq: u64,
        path: &str,
        method: &str,
        serialize: SerializeType,
        payload: &[u8],
    ) -> Message {
        self.send(&request(seq, path, method, serialize, &[], payload));
        self.recv()
    }
}
