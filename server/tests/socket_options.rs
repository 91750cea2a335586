//! Socket options of accepted connections, read back from the kernel's own table
//! (/proc/net/tcp): keep-alive is armed by default and absent when turned off.

mod common;

use std::time::Duration;

use common::TestServer;
use ringrpc_server::{demo::demo_table, ServerConfig};

/// The timer column (`tr`) of the server side of established connections on `port`:
/// 2 means the keep-alive timer is armed, 0 no timer.
fn server_side_timers(port: u16) -> Vec<u8> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("Linux /proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = u16::from_str_radix(fields[1].rsplit(':').next()?, 16).ok()?;
            let established = fields[3] == "01";
            let timer = fields[5].split(':').next()?.parse().ok()?;
            (local_port == port && established).then_some(timer)
        })
        .collect()
}

fn timers_with(config: ServerConfig) -> Vec<u8> {
    let server = TestServer::with(config.threads(1), demo_table);
    let mut client = server.connect();
    // One round trip: the connection is accepted and idle on the server side.
    let reply = client.call(1, "Echo", "Echo", ringrpc_codec::SerializeType::Raw, b"x");
    assert_eq!(reply.payload(), b"x");
    std::thread::sleep(Duration::from_millis(50));
    server_side_timers(server.addr.port())
}

#[test]
fn keepalive_is_on_by_default() {
    assert_eq!(timers_with(ServerConfig::default()), vec![2]);
}

#[test]
fn keepalive_can_be_turned_off() {
    assert_eq!(
        timers_with(ServerConfig::default().tcp_keepalive(None)),
        vec![0]
    );
}
