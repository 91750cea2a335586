//! Every protocol on one port: serves a connection that [`crate::protocol_sniff`] found not to be
//! plain binary rpcx. HTTP goes to [`crate::http`]; TLS is handshaken ([`crate::tls`]) and what it
//! carries is sniffed again from its first decrypted bytes: binary rpcx, HTTP, or nothing served
//! here (closed and logged). A CONNECT over either hands the connection to the binary loop,
//! [`serve_halves`], with the bytes already read replayed first ([`Prefixed`]).
//!
//! The binary loop itself is untouched: it only sees another reader.

use std::net::SocketAddr;
use std::rc::Rc;

use bytes::BytesMut;
use monoio::io::{AsyncReadRent, AsyncWriteRent, CancelableAsyncReadRent, Splitable};
use monoio::net::TcpStream;

use crate::cold_tcp::ColdTcp;
use crate::config::ServerConfig;
use crate::connection::serve_halves;
use crate::http::{Ending, HttpConnection};
use crate::limits::Reason;
use crate::prefixed::{Prefixed, Uncancelable};
use crate::protocol_sniff::{sniff, Protocol};
use crate::runtime::{ConnectionEntry, WorkerState};
use crate::service::ServiceTable;

/// Bytes read after a TLS handshake to tell what the client speaks (a frame start or a request
/// line fits; the rest of what arrives is read by the protocol's own loop).
const FIRST_READ: usize = 4096;

/// One connection's context, as the binary loop takes it.
pub struct Shared<'a> {
    pub peer: SocketAddr,
    pub table: &'a Rc<ServiceTable>,
    pub config: &'a Rc<ServerConfig>,
    pub worker: &'a Rc<WorkerState>,
    pub entry: &'a Rc<ConnectionEntry>,
}

impl Shared<'_> {
    /// Serves a connection sniffed as `protocol` (not [`Protocol::Binary`], which the caller
    /// serves itself).
    pub async fn serve(&self, protocol: Protocol, stream: TcpStream) {
        match protocol {
            Protocol::Http => {
                if let Ending::Connect {
                    stream: ColdTcp(stream),
                    leftover,
                } = self.http().serve(ColdTcp(stream), BytesMut::new()).await
                {
                    let (reader, writer) = stream.into_split();
                    self.binary(Prefixed::new(leftover, reader), writer).await;
                }
            }
            Protocol::Tls => self.serve_tls(stream).await,
            Protocol::Binary => {
                let (reader, writer) = stream.into_split();
                self.binary(reader, writer).await;
            }
        }
    }

    async fn serve_tls(&self, stream: TcpStream) {
        let Some(tls) = self.config.tls.as_ref() else {
            return;
        };
        let Some(mut stream) =
            crate::tls::accept(ColdTcp(stream), tls, self.config, &self.entry.watch).await
        else {
            return;
        };
        // The client speaks first in every protocol served here.
        let (result, first) = stream.read(BytesMut::with_capacity(FIRST_READ)).await;
        self.entry.read_done(self.worker);
        match result {
            Ok(0) | Err(_) => return,
            Ok(n) => self.table.on_read(n),
        }
        match sniff(&first, false) {
            Protocol::Binary if first[0] == ringrpc_codec::MAGIC => {
                let (reader, writer) = stream.into_split();
                self.binary(Prefixed::new(first, Uncancelable(reader)), writer)
                    .await;
            }
            Protocol::Http => {
                if let Ending::Connect { stream, leftover } = self.http().serve(stream, first).await
                {
                    let (reader, writer) = stream.into_split();
                    self.binary(Prefixed::new(leftover, Uncancelable(reader)), writer)
                        .await;
                }
            }
            _ => {
                self.entry.watch.refuse(
                    Reason::Malformed,
                    Some(&"no protocol served here inside TLS (first byte not rpcx or HTTP)"),
                );
            }
        }
    }

    fn http(&self) -> HttpConnection<'_> {
        HttpConnection {
            peer: self.peer,
            table: self.table,
            config: self.config,
            worker: self.worker,
            entry: self.entry,
        }
    }

    async fn binary<R, W>(&self, reader: R, writer: W)
    where
        R: AsyncReadRent + CancelableAsyncReadRent + crate::connection::WaitReadable,
        W: AsyncWriteRent + 'static,
    {
        serve_halves(
            reader,
            writer,
            self.peer,
            self.table.clone(),
            self.config.clone(),
            self.worker.clone(),
            self.entry.clone(),
        )
        .await;
    }
}
