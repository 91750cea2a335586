//! Out of file descriptors (EMFILE): accept backs off (5 ms doubling to 1 s) instead of spinning,
//! exiting or flooding the log, and serves again once descriptors are free. Its own test binary:
//! it lowers the process's RLIMIT_NOFILE, which would starve any test running beside it.

mod common;

use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::TestServer;
use ringrpc_server::{demo, Reason, ServerConfig};

fn nofile() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes the local struct passed.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    limit
}

fn set_nofile(limit: libc::rlimit) {
    // SAFETY: setrlimit reads the local struct passed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
}

fn open_fds() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn accept_backs_off_when_out_of_descriptors_and_serves_again_after() {
    let server = TestServer::with(ServerConfig::default().threads(1), demo::demo_table);
    let original = nofile();
    set_nofile(libc::rlimit {
        rlim_cur: open_fds() + 30,
        ..original
    });
    // Connect until this process (clients and server share its descriptors) has none left: the
    // last connections wait in the backlog while the server's accept fails with EMFILE.
    let mut clients = Vec::new();
    while clients.len() < 1000 {
        match TcpStream::connect(server.addr) {
            Ok(stream) => clients.push(stream),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(1500));
    let failures = server.refusals().get(Reason::AcceptFailed);
    drop(clients);
    set_nofile(original);
    assert!(failures >= 1, "accept never failed");
    // 1.5 s of 5, 10, 20, ... ms pauses is about ten attempts; a spinning loop makes thousands.
    assert!(
        failures <= 30,
        "{failures} failed accepts in 1.5 s: not backing off"
    );

    let deadline = Instant::now() + Duration::from_secs(5);
    let reply = loop {
        let mut client = common::Client::connect(server.addr);
        client.send(&common::request(
            1,
            "Echo",
            "Echo",
            ringrpc_codec::SerializeType::Raw,
            &[],
            b"back",
        ));
        if let Some(reply) = client.recv_within(Duration::from_secs(2)) {
            break reply;
        }
        assert!(Instant::now() < deadline, "never served again");
    };
    assert_eq!(reply.payload(), b"back");
}
