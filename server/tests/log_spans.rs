//! The connection's `debug` span: with debug logging on, what a connection logs names its peer,
//! its async requests' events included (they run as tasks of their own). At the default `info`
//! level the span is disabled and those tasks are spawned without it (connection.rs), which the
//! other tests cover; this one runs with a subscriber at `debug`, in a process of its own.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::TestServer;
use ringrpc_codec::SerializeType;
use ringrpc_server::{ServerConfig, Service, ServiceError, ServiceTable};

/// Everything the subscriber writes, shared with the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `Log.Now` logs and answers at once; `Log.Later` logs after a wait, from its own task.
fn log_table(
    _: ringrpc_server::WorkerId,
) -> Result<ServiceTable, ringrpc_server::RegistrationError> {
    Ok(ServiceTable::builder()
        .service(
            Service::new("Log")
                .method("Now", |_: &ringrpc_server::Context, payload: Bytes| {
                    tracing::info!(target: "log_spans", "inline handler ran");
                    Ok::<_, ServiceError>(payload)
                })
                .async_method("Later", |_ctx, payload: Bytes| async move {
                    monoio::time::sleep(Duration::from_millis(5)).await;
                    tracing::info!(target: "log_spans", "async handler ran after its wait");
                    Ok::<_, ServiceError>(payload)
                }),
        )?
        .build())
}

#[test]
fn a_connections_events_name_its_peer_when_debug_is_on() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let server = TestServer::with(ServerConfig::default().threads(1), log_table);
    let mut client = server.connect();
    let peer = client.stream.local_addr().unwrap();
    for (seq, method) in [(1, "Now"), (2, "Later")] {
        client.send(&common::request(
            seq,
            "Log",
            method,
            SerializeType::Raw,
            &[],
            b"x",
        ));
        let reply = client.recv();
        assert_eq!((reply.seq(), reply.payload()), (seq, &b"x"[..]));
    }
    drop(client);
    drop(server);

    let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let span = format!("connection{{peer={peer} worker=0}}");
    for event in ["inline handler ran", "async handler ran after its wait"] {
        let line = log
            .lines()
            .find(|line| line.contains(event))
            .unwrap_or_else(|| panic!("no {event:?} in the log:\n{log}"));
        assert!(line.contains(&span), "{event:?} outside {span}: {line}");
    }
}
