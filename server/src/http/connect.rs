//! CONNECT mode (docs/protocol.md 4.17, "Other modes"): the Go client's `http@host:port` network
//! sends `CONNECT /_rpcx_ HTTP/1.0` and a blank line, reads `HTTP/1.0 200 Connected to rpcx`, and
//! from then on speaks binary rpcx on the same connection. Go serves this on a listener of its
//! own (`Serve("http", …)`); here it is one more request on the shared port.

use super::request::RequestHead;

/// The path the Go client CONNECTs to (`DefaultRPCPath`).
pub const RPC_PATH: &str = "/_rpcx_";

/// Go's answer, after which the connection carries rpcx frames.
pub const CONNECTED: &[u8] = b"HTTP/1.0 200 Connected to rpcx\r\n\r\n";

/// Whether the request switches the connection to binary rpcx.
pub fn is_rpcx_connect(head: &RequestHead) -> bool {
    head.method == "CONNECT" && head.path() == RPC_PATH
}
