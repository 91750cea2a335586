//! The rpcx-rs server (`rpcx_server` 0.3 from crates.io) as a benchmark and interop peer.
//!
//! Serves the same contract as `ringrpc-server`:
//!
//! - `Arith.Mul`, `Arith.Add`, `Arith.Div`: args `{A: i64, B: i64}` -> reply `{C: i64}`, over JSON
//!   (serialize type 1) or MsgPack (3), e.g. `{"A":10,"B":20}` -> `{"C":200}` for `Mul`.
//! - `Echo.Echo`: the payload bytes echoed unchanged, whatever the serialize type (meant for 0,
//!   SerializeNone).
//!
//! Usage: `rpcx-rs-peer [--addr HOST:PORT] [--threads N] [--msgpack-arrays]`. Prints `listening on ADDR` once the
//! socket listens (port 0 picks a free port and prints the real one).
//!
//! What rpcx-rs 0.3 can and cannot express, and what this peer does about it:
//!
//! - **Threads.** rpcx-rs runs one reader thread per connection plus, per connection, a
//!   `scoped_threadpool` of `N` workers that run the services and write the replies
//!   (`Server::new(addr, N)`; `N = 0` means 2 x number of CPUs, the rpcx-rs default). `--threads N`
//!   sets that per-connection pool size. There is no event loop or global pool to size.
//! - **Raw bytes.** A service is a plain `fn(&[u8], SerializeType) -> Result<Vec<u8>>`
//!   (`rpcx_server::RpcxFn`) that gets the decompressed payload and returns the reply payload, so
//!   `Echo.Echo` is registered directly with `Server::register_fn` and never touches serde. (The
//!   `register_func!` macro with `BytesMut` as argument and reply type would do the same, because
//!   `rpcx_protocol` implements `RpcxParam` for `BytesMut` as a pass-through.)
//! - **Errors.** A service cannot return an error to the client: the server builds every reply
//!   with status Normal and `unwrap`s the service's `Result`, so an `Err` panics the worker thread.
//!   With `--threads 1` that connection then never gets another reply. Every service here is
//!   therefore total: `Arith.Div` by zero (and `i64::MIN / -1`) replies `{C: 0}`; `Mul` and `Add`
//!   wrap on overflow as Go does; an undecodable argument or an unsupported serialize type gives an
//!   empty reply payload (the client then fails to decode it) and a line on stderr.
//! - **MsgPack struct encoding.** rpcx-rs's `#[derive(RpcxParam)]` encodes with
//!   `rmp_serde::to_vec`, i.e. a struct as an array (`{C: 200}` -> `[200]`, bytes `91 cc c8`),
//!   whereas Go (vmihailenco/msgpack) writes a map (`81 a1 43 cc c8`). Decoding accepts both. This
//!   peer replies with a map like Go, so its bytes match the contract of `ringrpc-server`;
//!   `--msgpack-arrays` gives the native rpcx-rs encoding instead.
//! - **Unknown service.** Handled by rpcx-rs itself: status Normal with metadata
//!   `__rpcx_error__ = "service <path>.<method> not found"` and an empty payload.

use std::io::Write;
use std::net::TcpListener;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use rpcx_protocol::{RpcxParam, SerializeType};
use rpcx_server::Server;

// `#[derive(RpcxParam)]` expands to code that names `RpcxParam`, `SerializeType`, `Result`,
// `Error`, `ErrorKind`, `serde_json` and `rmps` unqualified and calls `.description()` on
// rmp-serde errors, so it lives in a module that brings exactly those into scope
// (rpcx_protocol's `Result` and `Error` would otherwise shadow std's in main).
mod params {
    #![allow(deprecated)] // the generated code calls `Error::description()`
    #![allow(unused_imports)]

    use rmp_serde as rmps;
    use rpcx_derive::RpcxParam;
    use rpcx_protocol::*;
    use serde::{Deserialize, Serialize};
    use std::error::Error as _; // for the generated `err.description()`

    /// Arguments of `Arith.*`: Go's `struct { A, B int }`, field names as on the wire.
    #[derive(RpcxParam, Default, Debug, Clone, Copy, Serialize, Deserialize)]
    pub struct ArithArgs {
        #[serde(rename = "A")]
        pub a: i64,
        #[serde(rename = "B")]
        pub b: i64,
    }

    /// Reply of `Arith.*`: Go's `struct { C int }`.
    #[derive(RpcxParam, Default, Debug, Clone, Copy, Serialize, Deserialize)]
    pub struct ArithReply {
        #[serde(rename = "C")]
        pub c: i64,
    }
}

use params::{ArithArgs, ArithReply};

/// `--msgpack-arrays`: encode MsgPack replies as rpcx-rs does (struct as array). Services are plain
/// `fn` pointers, hence a global.
static MSGPACK_ARRAYS: AtomicBool = AtomicBool::new(false);

fn encode_reply(reply: &ArithReply, st: SerializeType) -> rpcx_protocol::Result<Vec<u8>> {
    if st == SerializeType::MsgPack && !MSGPACK_ARRAYS.load(Ordering::Relaxed) {
        // Go's encoding: a map keyed by field name.
        rmp_serde::to_vec_named(reply)
            .map_err(|e| rpcx_protocol::Error::new(rpcx_protocol::ErrorKind::Serialization, e))
    } else {
        // The derived encoding: JSON, or MsgPack with the struct as an array.
        reply.into_bytes(st)
    }
}

/// Decodes the arguments, applies `op`, encodes the reply. Never returns `Err` (see module docs).
fn arith(name: &str, data: &[u8], st: SerializeType, op: fn(i64, i64) -> i64) -> Vec<u8> {
    let mut args = ArithArgs::default();
    if let Err(err) = args.from_slice(st, data) {
        eprintln!("Arith.{name}: cannot decode arguments ({st}): {err}");
        return Vec::new();
    }
    let reply = ArithReply {
        c: op(args.a, args.b),
    };
    match encode_reply(&reply, st) {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!("Arith.{name}: cannot encode reply ({st}): {err}");
            Vec::new()
        }
    }
}

fn arith_mul(data: &[u8], st: SerializeType) -> rpcx_protocol::Result<Vec<u8>> {
    Ok(arith("Mul", data, st, i64::wrapping_mul))
}

fn arith_add(data: &[u8], st: SerializeType) -> rpcx_protocol::Result<Vec<u8>> {
    Ok(arith("Add", data, st, i64::wrapping_add))
}

fn arith_div(data: &[u8], st: SerializeType) -> rpcx_protocol::Result<Vec<u8>> {
    // rpcx-rs cannot reply with an error status: division by zero (and the one overflowing
    // division) answers C = 0 instead of panicking the worker.
    Ok(arith("Div", data, st, |a, b| a.checked_div(b).unwrap_or(0)))
}

fn echo(data: &[u8], _st: SerializeType) -> rpcx_protocol::Result<Vec<u8>> {
    Ok(data.to_vec())
}

struct Options {
    addr: String,
    threads: u32,
    msgpack_arrays: bool,
}

const USAGE: &str = "\
usage: rpcx-rs-peer [--addr HOST:PORT] [--threads N] [--msgpack-arrays]

The rpcx-rs server (rpcx_server 0.3) serving Arith.Mul/Add/Div and Echo.Echo.

  --addr HOST:PORT  address to listen on (default 127.0.0.1:8972; port 0 picks a free port)
  --threads N       size of the worker pool that rpcx-rs creates for EACH connection
                    (default 0 = rpcx-rs default, 2 x number of CPUs); every connection
                    also has its own reader thread
  --msgpack-arrays  encode MsgPack replies as rpcx-rs natively does (struct as array,
                    [200]) instead of as Go does (map, {C: 200})
  -h, --help        this help
";

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        addr: "127.0.0.1:8972".to_string(),
        threads: 0,
        msgpack_arrays: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--addr" => opts.addr = value("--addr")?,
            "--threads" => {
                let v = value("--threads")?;
                opts.threads = v
                    .parse()
                    .map_err(|_| format!("--threads: not a number: {v}"))?;
            }
            "--msgpack-arrays" => opts.msgpack_arrays = true,
            "-h" | "--help" => {
                print!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("rpcx-rs-peer: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };

    MSGPACK_ARRAYS.store(opts.msgpack_arrays, Ordering::Relaxed);
    let mut server = Server::new(opts.addr.clone(), opts.threads);
    server.register_fn("Arith".into(), "Mul".into(), String::new(), arith_mul);
    server.register_fn("Arith".into(), "Add".into(), String::new(), arith_add);
    server.register_fn("Arith".into(), "Div".into(), String::new(), arith_div);
    server.register_fn("Echo".into(), "Echo".into(), String::new(), echo);

    // Bind here rather than through `Server::start`, to print the real address (port 0) in our
    // format and to report bind errors cleanly.
    let listener = match TcpListener::bind(&opts.addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rpcx-rs-peer: cannot listen on {}: {e}", opts.addr);
            return ExitCode::FAILURE;
        }
    };
    let local = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or(opts.addr);
    println!("listening on {local}");
    let _ = std::io::stdout().flush();

    match server.start_with_listener(listener) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpcx-rs-peer: accept failed: {e}");
            ExitCode::FAILURE
        }
    }
}
