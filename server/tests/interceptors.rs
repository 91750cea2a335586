//! Interceptors over a socket: refusing a connection, rejecting a call (and closing), rewriting a
//! reply, the order of every hook, panicking interceptors treated as a handler's panic, and
//! requests kept by an interceptor past their call.

mod common;

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{request, TestServer};
use ringrpc_codec::{MessageStatus, SerializeType, ERROR_KEY};
use ringrpc_server::{
    demo, CallResult, Context, Interceptor, Refusal, Rejection, ServerConfig, ServiceTable,
};

fn error_text(msg: &ringrpc_codec::Message) -> String {
    assert_eq!(msg.header().status(), MessageStatus::Error);
    msg.metadata().get_str(ERROR_KEY).unwrap().to_string()
}

fn with_interceptor<I, F>(make: F) -> TestServer
where
    I: Interceptor,
    F: Fn() -> I + Send + Sync + 'static,
{
    TestServer::with(ServerConfig::default().threads(1), move |_| {
        Ok(ServiceTable::builder()
            .service(demo::Arith)?
            .service(demo::Echo)?
            .interceptor(make())
            .build())
    })
}

/// Refuses every connection.
struct RefuseAll;

impl Interceptor for RefuseAll {
    fn on_connect(&self, _: SocketAddr) -> Result<(), Refusal> {
        Err(Refusal::new("no connections today"))
    }
}

#[test]
fn a_refused_connection_is_closed_at_once() {
    let server = with_interceptor(|| RefuseAll);
    let mut client = server.connect();
    client.send(&request(1, "Echo", "Echo", SerializeType::Raw, &[], b"x"));
    assert!(client.is_closed_within(Duration::from_secs(5)));
}

/// Rejects calls to `Arith.Div`, and closes the connection on `Echo.Sleep`.
struct Guard;

impl Interceptor for Guard {
    fn before_call(&self, ctx: &Context) -> Result<(), Rejection> {
        match (ctx.request().service_path(), ctx.request().service_method()) {
            (b"Arith", b"Div") => Err(Rejection::new("Div is not allowed")),
            (b"Echo", b"Sleep") => Err(Rejection::new("goodbye").and_close()),
            _ => Ok(()),
        }
    }
}

#[test]
fn a_rejected_call_gets_the_error_and_the_connection_goes_on() {
    let server = with_interceptor(|| Guard);
    let mut client = server.connect();
    let reply = client.call(1, "Arith", "Div", SerializeType::Json, br#"{"A":1,"B":1}"#);
    assert_eq!(error_text(&reply), "Div is not allowed");
    assert!(reply.payload().is_empty());
    let reply = client.call(2, "Arith", "Mul", SerializeType::Json, br#"{"A":2,"B":3}"#);
    assert_eq!(reply.payload(), br#"{"C":6}"#);
    // Heartbeats never meet interceptors.
    let mut header = ringrpc_codec::Header::new();
    header.set_heartbeat(true).set_seq(3);
    client.send(&common::frame(&header, "", "", &[], b""));
    assert!(client.recv().header().is_heartbeat());
}

#[test]
fn a_closing_rejection_answers_then_closes_after_earlier_replies() {
    let server = with_interceptor(|| Guard);
    let mut client = server.connect();
    let mut burst = request(
        1,
        "Arith",
        "Mul",
        SerializeType::Json,
        &[],
        br#"{"A":2,"B":2}"#,
    );
    burst.extend(request(2, "Echo", "Sleep", SerializeType::Raw, &[], b"1"));
    burst.extend(request(
        3,
        "Arith",
        "Mul",
        SerializeType::Json,
        &[],
        br#"{"A":3,"B":3}"#,
    ));
    client.send(&burst);
    let first = client.recv();
    assert_eq!((first.seq(), first.payload()), (1, &br#"{"C":4}"#[..]));
    let second = client.recv();
    assert_eq!(second.seq(), 2);
    assert_eq!(error_text(&second), "goodbye");
    assert!(
        client.is_closed_within(Duration::from_secs(5)),
        "closed after the rejection"
    );
}

/// Replaces every successful JSON reply, and turns `Echo.Echo` of `fail` into an error.
struct Rewrite;

impl Interceptor for Rewrite {
    fn after_call(&self, ctx: &Context, result: &mut CallResult<'_>) {
        if result.error().is_none() && result.serialize_type() == SerializeType::Json {
            let doubled = format!(
                "{{\"wrapped\":{}}}",
                String::from_utf8_lossy(result.payload())
            );
            result.set_payload(doubled.as_bytes());
        }
        if ctx.request().payload() == b"fail" {
            result.set_error("rewritten into an error");
        }
    }
}

#[test]
fn after_call_rewrites_replies_and_errors() {
    let server = with_interceptor(|| Rewrite);
    let mut client = server.connect();
    let reply = client.call(1, "Arith", "Mul", SerializeType::Json, br#"{"A":2,"B":3}"#);
    assert_eq!(reply.payload(), br#"{"wrapped":{"C":6}}"#);
    let reply = client.call(2, "Echo", "Echo", SerializeType::Raw, b"fail");
    assert_eq!(error_text(&reply), "rewritten into an error");
    assert_eq!(
        reply.payload(),
        b"fail",
        "the payload is kept with the error, as Go"
    );
    // Async methods go through the same hooks.
    let reply = client.call(3, "Echo", "Sleep", SerializeType::Raw, b"1");
    assert_eq!(reply.payload(), b"1");
}

/// Records every hook it sees, tagged with its own name.
struct Recorder {
    name: &'static str,
    log: Arc<Mutex<Vec<String>>>,
}

impl Recorder {
    fn push(&self, event: impl Into<String>) {
        self.log
            .lock()
            .unwrap()
            .push(format!("{} {}", self.name, event.into()));
    }
}

impl Interceptor for Recorder {
    fn on_connect(&self, _: SocketAddr) -> Result<(), Refusal> {
        self.push("connect");
        Ok(())
    }
    fn before_call(&self, ctx: &Context) -> Result<(), Rejection> {
        self.push(format!("before {}", ctx.seq()));
        Ok(())
    }
    fn after_call(&self, ctx: &Context, _: &mut CallResult<'_>) {
        self.push(format!("after {}", ctx.seq()));
    }
    fn after_reply(&self, ctx: &Context, error: Option<&str>) {
        self.push(format!("reply {} {}", ctx.seq(), error.unwrap_or("ok")));
    }
    fn on_close(&self, _: SocketAddr) {
        self.push("close");
    }
}

#[test]
fn hooks_run_in_order_for_every_interceptor() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let shared = log.clone();
    let server = TestServer::with(ServerConfig::default().threads(1), move |_| {
        Ok(ServiceTable::builder()
            .service(demo::Arith)?
            .interceptor(Recorder {
                name: "a",
                log: shared.clone(),
            })
            .interceptor(Recorder {
                name: "b",
                log: shared.clone(),
            })
            .build())
    });
    let mut client = server.connect();
    client.call(1, "Arith", "Mul", SerializeType::Json, br#"{"A":1,"B":1}"#);
    client.call(2, "Nope", "Mul", SerializeType::Json, b"{}");
    drop(client);
    let expected = [
        "a connect",
        "b connect",
        "a before 1",
        "b before 1",
        "a after 1",
        "b after 1",
        "a reply 1 ok",
        "b reply 1 ok",
        "a before 2",
        "b before 2",
        "a reply 2 rpcx: can't find service Nope",
        "b reply 2 rpcx: can't find service Nope",
        "a close",
        "b close",
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while log.lock().unwrap().len() < expected.len() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(*log.lock().unwrap(), expected);
}

/// Panics in the hooks that can answer.
struct Panicky;

impl Interceptor for Panicky {
    fn before_call(&self, ctx: &Context) -> Result<(), Rejection> {
        if ctx.request().service_method() == b"Add" {
            panic!("before boom");
        }
        Ok(())
    }
    fn after_call(&self, ctx: &Context, _: &mut CallResult<'_>) {
        if ctx.request().service_method() == b"Mul" {
            panic!("after boom");
        }
    }
    fn after_reply(&self, _: &Context, _: Option<&str>) {
        panic!("only logged");
    }
}

#[test]
fn a_panicking_interceptor_is_a_handler_panic() {
    let server = with_interceptor(|| Panicky);
    let mut client = server.connect();
    let reply = client.call(1, "Arith", "Add", SerializeType::Json, br#"{"A":1,"B":1}"#);
    assert_eq!(
        error_text(&reply),
        "[service internal error]: before boom, method: Add"
    );
    let reply = client.call(2, "Arith", "Mul", SerializeType::Json, br#"{"A":1,"B":1}"#);
    assert_eq!(
        error_text(&reply),
        "[service internal error]: after boom, method: Mul"
    );
    let reply = client.call(3, "Echo", "Echo", SerializeType::Raw, b"still here");
    assert_eq!(reply.payload(), b"still here");
}

/// Keeps every request it sees (a clone, and its payload as `Bytes`), as an interceptor that logs
/// or forwards requests later would; on `Arith.Div` it checks them all and rejects the call with
/// what it found.
#[derive(Default)]
struct Keeper {
    kept: RefCell<Vec<(ringrpc_codec::Message, bytes::Bytes)>>,
}

fn kept_payload(at: usize) -> Vec<u8> {
    // Of different lengths, so that later requests land over earlier ones' bytes.
    format!("request {at} {}", "x".repeat(at * 37 % 300)).into_bytes()
}

impl Interceptor for Keeper {
    fn before_call(&self, ctx: &Context) -> Result<(), Rejection> {
        let request = ctx.request();
        if request.service_method() == b"Div" {
            let kept = self.kept.borrow();
            let changed = kept
                .iter()
                .enumerate()
                .filter(|(at, (message, payload))| {
                    message.payload() != kept_payload(*at) || payload[..] != kept_payload(*at)
                })
                .count();
            return Err(Rejection::new(format!(
                "kept {}, {changed} changed",
                kept.len()
            )));
        }
        self.kept
            .borrow_mut()
            .push((request.clone(), request.payload_bytes()));
        Ok(())
    }
}

#[test]
fn requests_kept_by_an_interceptor_outlive_their_read() {
    // One request at a time: each is a read's lone frame, lent to its request where it lies in
    // the receive buffer, which the next read refills from its start.
    let server = with_interceptor(Keeper::default);
    let mut client = server.connect();
    for at in 0..20 {
        let reply = client.echo(at as u64, &kept_payload(at));
        assert_eq!(reply.payload(), kept_payload(at));
    }
    let reply = client.call(99, "Arith", "Div", SerializeType::Json, br#"{"A":1,"B":1}"#);
    assert_eq!(error_text(&reply), "kept 20, 0 changed");
}
