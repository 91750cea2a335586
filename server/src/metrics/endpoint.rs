//! [`MetricsEndpoint`]: a minimal HTTP/1.1 server for the metrics text, on a thread of its own.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use super::Metrics;

/// The HTTP endpoint that serves [`Metrics::render`] (any path; `GET` or `HEAD`), one request per
/// connection, on a thread of its own: not a worker, so it answers while every worker is busy.
pub struct MetricsEndpoint {
    local_addr: SocketAddr,
}

/// How long the endpoint waits on a slow scraper before dropping it.
const SCRAPE_IO_TIMEOUT: Duration = Duration::from_secs(2);

impl MetricsEndpoint {
    /// Binds `addr` (the demo binary's `--metrics-addr`) and serves `metrics` there until the
    /// process exits.
    pub fn start(addr: SocketAddr, metrics: Metrics) -> io::Result<MetricsEndpoint> {
        let listener = TcpListener::bind(addr)?;
        let local_addr = listener.local_addr()?;
        std::thread::Builder::new()
            .name("ringrpc-metrics".into())
            .spawn(move || {
                for stream in listener.incoming() {
                    match stream {
                        Ok(stream) => {
                            if let Err(e) = answer(stream, &metrics) {
                                tracing::debug!("metrics scrape failed: {e}");
                            }
                        }
                        Err(e) => {
                            tracing::warn!("metrics endpoint: accept failed: {e}");
                            std::thread::sleep(Duration::from_millis(10));
                        }
                    }
                }
            })?;
        Ok(MetricsEndpoint { local_addr })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// Reads one HTTP request head and answers it with the metrics.
fn answer(mut stream: TcpStream, metrics: &Metrics) -> io::Result<()> {
    stream.set_read_timeout(Some(SCRAPE_IO_TIMEOUT))?;
    stream.set_write_timeout(Some(SCRAPE_IO_TIMEOUT))?;
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk)?;
        if n == 0 || head.len() > 16 << 10 {
            break;
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let (status, body) = if head.starts_with(b"GET ") {
        ("200 OK", metrics.render())
    } else if head.starts_with(b"HEAD ") {
        ("200 OK", String::new())
    } else {
        ("405 Method Not Allowed", String::new())
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        Metrics::content_type(),
        body.len()
    );
    stream.write_all(response.as_bytes())
}
