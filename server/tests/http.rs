//! HTTP/1 on the binary port, end to end: keep-alive, pipelining, chunked bodies, the size limits
//! and the header timeout, every gateway status, JSON-RPC 2.0 (errors, batches, notifications),
//! CONNECT, and binary clients served alongside all of it (docs/protocol.md 4.17, 4.18).

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::http::{gateway_request, jsonrpc_request, HttpConn, MUL};
use common::TestServer;
use ringrpc_codec::Limits;
use ringrpc_server::{auth_token, demo, Reason, ServerConfig};

fn http(server: &TestServer) -> HttpConn<TcpStream> {
    let stream = TcpStream::connect(server.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    HttpConn::new(stream)
}

fn mul(a: i64, b: i64) -> Vec<u8> {
    gateway_request("/Arith", &MUL, &format!(r#"{{"A":{a},"B":{b}}}"#))
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    for i in 1..=5 {
        conn.send(&mul(i, 10));
        let res = conn.response().expect("a response");
        assert_eq!(res.status, 200);
        assert_eq!(res.body_text(), format!(r#"{{"C":{}}}"#, i * 10));
        assert_eq!(
            res.header("Connection"),
            None,
            "HTTP/1.1 keeps the connection"
        );
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    let mut batch = mul(2, 3);
    batch.extend(jsonrpc_request(
        r#"{"jsonrpc":"2.0","method":"Arith.Add","params":{"A":2,"B":3},"id":7}"#,
    ));
    batch.extend(mul(4, 5));
    conn.send(&batch);
    assert_eq!(conn.response().unwrap().body_text(), r#"{"C":6}"#);
    assert_eq!(
        conn.response().unwrap().body_text(),
        r#"{"jsonrpc":"2.0","result":{"C":5},"id":7}"#
    );
    assert_eq!(conn.response().unwrap().body_text(), r#"{"C":20}"#);
}

#[test]
fn a_chunked_body_is_joined() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    conn.send(
        b"POST /Arith HTTP/1.1\r\nX-RPCX-SerializeType: 1\r\nX-RPCX-ServiceMethod: Mul\r\n\
          Transfer-Encoding: chunked\r\n\r\n5\r\n{\"A\":\r\n8\r\n6,\"B\":7}\r\n0\r\n\r\n",
    );
    let res = conn.response().unwrap();
    assert_eq!((res.status, res.body_text()), (200, r#"{"C":42}"#));
}

#[test]
fn expect_100_continue_gets_its_interim_response() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    conn.send(
        b"POST /Arith HTTP/1.1\r\nX-RPCX-SerializeType: 1\r\nX-RPCX-ServiceMethod: Mul\r\n\
          Expect: 100-continue\r\nContent-Length: 13\r\n\r\n",
    );
    assert_eq!(conn.response().unwrap().status, 100);
    conn.send(br#"{"A":6,"B":7}"#);
    assert_eq!(conn.response().unwrap().body_text(), r#"{"C":42}"#);
}

#[test]
fn a_body_over_the_frame_limit_is_refused_with_413() {
    let limits = Limits {
        max_frame_len: 1024,
        ..Limits::default()
    };
    let server = TestServer::with(
        ServerConfig::default().threads(1).limits(limits),
        demo::demo_table,
    );
    let mut conn = http(&server);
    conn.send(b"POST /Echo HTTP/1.1\r\nContent-Length: 5000\r\n\r\n");
    assert_eq!(conn.response().unwrap().status, 413);
    assert!(conn.is_closed());
    assert_eq!(server.refusals().get(Reason::HttpTooLarge), 1);
}

#[test]
fn headers_over_the_limit_are_refused_with_431() {
    let server = TestServer::with(
        ServerConfig::default()
            .threads(1)
            .max_http_header_bytes(2048),
        demo::demo_table,
    );
    let mut conn = http(&server);
    let big = "x".repeat(4000);
    conn.send(format!("GET /Arith HTTP/1.1\r\nX-Big: {big}\r\n\r\n").as_bytes());
    assert_eq!(conn.response().unwrap().status, 431);
    assert!(conn.is_closed());
}

#[test]
fn slow_headers_time_out() {
    let server = TestServer::with(
        ServerConfig::default()
            .threads(1)
            .http_header_timeout(Some(Duration::from_millis(300))),
        demo::demo_table,
    );
    let mut conn = http(&server);
    conn.send(b"POST /Arith HTTP/1.1\r\nX-RPCX-Ser");
    let start = std::time::Instant::now();
    assert!(conn.is_closed());
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(server.refusals().get(Reason::HttpHeaderTimeout), 1);
}

#[test]
fn garbage_that_starts_like_a_method_is_answered_400_and_closed() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    conn.send(b"GET \x01\x02 nonsense\r\n\r\n");
    assert_eq!(conn.response().unwrap().status, 400);
    assert!(conn.is_closed());
}

#[test]
fn gateway_statuses_follow_go() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    // Missing fields: 200, error headers, empty body.
    conn.send(&gateway_request(
        "/Arith",
        &[("X-RPCX-ServiceMethod", "Mul")],
        "{}",
    ));
    let res = conn.response().unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(res.header("X-RPCX-MessageStatusType"), Some("Error"));
    assert_eq!(
        res.header("X-RPCX-ErrorMessage"),
        Some("empty serialized type")
    );
    assert!(res.body.is_empty());
    // Unknown method: 500.
    conn.send(&gateway_request(
        "/Arith",
        &[
            ("X-RPCX-SerializeType", "1"),
            ("X-RPCX-ServiceMethod", "Pow"),
        ],
        "{}",
    ));
    let res = conn.response().unwrap();
    assert_eq!(res.status, 500);
    assert_eq!(
        res.header("X-RPCX-ErrorMessage"),
        Some("rpcx: can't find method Pow")
    );
    assert!(res.body.is_empty());
    // Service error: 500.
    conn.send(&gateway_request(
        "/Arith",
        &[
            ("X-RPCX-SerializeType", "1"),
            ("X-RPCX-ServiceMethod", "Div"),
        ],
        r#"{"A":1,"B":0}"#,
    ));
    let res = conn.response().unwrap();
    assert_eq!(
        (res.status, res.header("X-RPCX-ErrorMessage")),
        (500, Some("divide by zero"))
    );
    // Unparsable message id: 200 with the parse error.
    conn.send(&gateway_request(
        "/Arith",
        &[
            ("X-RPCX-SerializeType", "1"),
            ("X-RPCX-ServiceMethod", "Mul"),
            ("X-RPCX-MessageID", "x"),
        ],
        "{}",
    ));
    let res = conn.response().unwrap();
    assert_eq!(res.status, 200);
    assert_eq!(
        res.header("X-RPCX-ErrorMessage"),
        Some(r#"strconv.ParseUint: parsing "x": invalid syntax"#)
    );
    // A method the gateway does not route: 405.
    conn.send(b"DELETE /Arith HTTP/1.1\r\n\r\n");
    assert_eq!(conn.response().unwrap().status, 405);
}

#[test]
fn gateway_auth_failure_is_401_and_a_good_token_passes() {
    let server = TestServer::with(ServerConfig::default().threads(1), |worker| {
        Ok(demo::demo_services(worker)?
            .interceptor(auth_token("s3cret"))
            .build())
    });
    let mut conn = http(&server);
    conn.send(&gateway_request(
        "/Arith",
        &[MUL[0], MUL[1], ("Authorization", "s3cret")],
        r#"{"A":2,"B":2}"#,
    ));
    let res = conn.response().unwrap();
    assert_eq!((res.status, res.body_text()), (200, r#"{"C":4}"#));
    conn.send(&mul(2, 2));
    let res = conn.response().unwrap();
    assert_eq!(res.status, 401);
    assert_eq!(res.header("X-RPCX-ErrorMessage"), Some("invalid token"));
    assert_eq!(res.header("Connection"), Some("close"));
    assert!(
        conn.is_closed(),
        "a failed auth closes, as on the binary path"
    );
}

#[test]
fn gateway_metadata_goes_in_and_comes_back_sorted() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    conn.send(&gateway_request(
        "/Echo",
        &[
            ("X-RPCX-SerializeType", "0"),
            ("X-RPCX-ServiceMethod", "Echo"),
            ("X-RPCX-Meta", "z=last&a=first+one&a=ignored"),
        ],
        "payload",
    ));
    let res = conn.response().unwrap();
    assert_eq!(res.body_text(), "payload");
    assert_eq!(res.header("X-RPCX-Meta"), Some("a=first+one&z=last"));
}

fn jsonrpc(conn: &mut HttpConn<TcpStream>, body: &str) -> String {
    conn.send(&jsonrpc_request(body));
    let res = conn.response().unwrap();
    assert_eq!(res.status, 200);
    if !res.body.is_empty() {
        assert_eq!(res.header("Content-Type"), Some("application/json"));
    }
    res.body_text().to_string()
}

#[test]
fn jsonrpc_answers_calls_and_errors_as_go_does() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    assert_eq!(
        jsonrpc(
            &mut conn,
            r#"{"jsonrpc":"2.0","method":"Arith.Mul","params":{"A":6,"B":7},"id":"q"}"#
        ),
        r#"{"jsonrpc":"2.0","result":{"C":42},"id":"q"}"#
    );
    let parse_error = jsonrpc(&mut conn, r#"{"jsonrpc":"2.0","method""#);
    assert!(
        parse_error.starts_with(r#"{"jsonrpc":"2.0","error":{"code":-32700,"#),
        "{parse_error}"
    );
    assert!(!parse_error.contains("\"id\""));
    assert_eq!(
        jsonrpc(
            &mut conn,
            r#"{"jsonrpc":"2.0","method":"Arith.Pow","params":{},"id":1}"#
        ),
        r#"{"jsonrpc":"2.0","error":{"code":-32603,"message":"rpcx: can't find method Pow","data":null},"id":1}"#
    );
    assert_eq!(
        jsonrpc(
            &mut conn,
            r#"{"jsonrpc":"2.0","method":"Nope","params":{},"id":2}"#
        ),
        r#"{"jsonrpc":"2.0","error":{"code":-32601,"message":"must contains servicepath and method","data":null},"id":2}"#
    );
    assert!(jsonrpc(
        &mut conn,
        r#"{"jsonrpc":"1.0","method":"Arith.Mul","params":{},"id":3}"#
    )
    .contains(r#""code":-32700,"message":"invalid RPC version 1.0""#));
}

#[test]
fn jsonrpc_notifications_get_an_empty_answer_and_missing_params_get_32602() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    assert_eq!(
        jsonrpc(
            &mut conn,
            r#"{"jsonrpc":"2.0","method":"Arith.Mul","params":{"A":1,"B":2}}"#
        ),
        ""
    );
    assert_eq!(
        jsonrpc(&mut conn, r#"{"jsonrpc":"2.0","method":"Arith.Mul"}"#),
        r#"{"jsonrpc":"2.0","error":{"code":-32602,"message":"invalid params: params is missing or null","data":null},"id":null}"#
    );
    assert_eq!(
        jsonrpc(
            &mut conn,
            r#"{"jsonrpc":"2.0","method":"Arith.Mul","params":null,"id":5}"#
        ),
        r#"{"jsonrpc":"2.0","error":{"code":-32602,"message":"invalid params: params is missing or null","data":null},"id":5}"#
    );
    // The connection is still fine.
    conn.send(&mul(3, 3));
    assert_eq!(conn.response().unwrap().body_text(), r#"{"C":9}"#);
}

#[test]
fn jsonrpc_batches_answer_in_order_without_notifications() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    let batch = r#"[
        {"jsonrpc":"2.0","method":"Arith.Mul","params":{"A":2,"B":3},"id":1},
        {"jsonrpc":"2.0","method":"Arith.Add","params":{"A":1,"B":1}},
        {"jsonrpc":"2.0","method":"Arith.Pow","params":{},"id":2},
        42
    ]"#;
    let answer: serde_json::Value = serde_json::from_str(&jsonrpc(&mut conn, batch)).unwrap();
    let answers = answer.as_array().unwrap();
    assert_eq!(answers.len(), 3, "{answer}");
    assert_eq!(answers[0]["result"]["C"], 6);
    assert_eq!(answers[1]["error"]["code"], -32603);
    assert_eq!(answers[1]["id"], 2);
    assert_eq!(answers[2]["error"]["code"], -32600);
    assert_eq!(
        jsonrpc(
            &mut conn,
            r#"[{"jsonrpc":"2.0","method":"Arith.Add","params":{"A":1,"B":1}}]"#
        ),
        "",
        "a batch of notifications only has nothing to say"
    );
    assert!(jsonrpc(&mut conn, "[]").contains(r#""code":-32600"#));
}

#[test]
fn connect_switches_the_connection_to_binary_frames() {
    let server = TestServer::start(1);
    let mut client = server.connect();
    // As the Go client writes it: bare newlines, and here the first frame in the same write.
    let mut bytes = b"CONNECT /_rpcx_ HTTP/1.0\n\n".to_vec();
    bytes.extend(common::request(
        1,
        "Echo",
        "Echo",
        ringrpc_codec::SerializeType::Raw,
        &[],
        b"first",
    ));
    client.send(&bytes);
    let mut answer = vec![0u8; ringrpc_server::http::connect::CONNECTED.len()];
    std::io::Read::read_exact(&mut client.stream, &mut answer).unwrap();
    assert_eq!(answer, ringrpc_server::http::connect::CONNECTED);
    assert_eq!(client.recv().payload(), b"first");
    assert_eq!(client.echo(2, b"second").payload(), b"second");
}

#[test]
fn binary_clients_are_served_beside_http_ones() {
    let server = TestServer::start(1);
    let mut conn = http(&server);
    let mut binary = server.connect();
    for i in 0..3u64 {
        conn.send(&mul(i as i64, 2));
        assert_eq!(conn.response().unwrap().status, 200);
        assert_eq!(binary.echo(i, b"ping").payload(), b"ping");
    }
}

#[test]
fn a_push_from_a_gateway_call_reaches_no_binary_connection() {
    let server = TestServer::start(1);
    let mut binary = server.connect();
    // The binary connection dispatches first, so it was this core's current connection.
    assert_eq!(binary.echo(1, b"x").payload(), b"x");
    let mut conn = http(&server);
    conn.send(&gateway_request(
        "/Push",
        &[
            ("X-RPCX-SerializeType", "0"),
            ("X-RPCX-ServiceMethod", "Subscribe"),
        ],
        "news",
    ));
    let res = conn.response().unwrap();
    assert_eq!(res.status, 500, "the gateway has no channel for pushes");
    assert!(
        binary.recv_within(Duration::from_millis(300)).is_none(),
        "the push went to the binary connection"
    );
}
