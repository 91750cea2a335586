//! rpcx-benchmark's `BenchmarkMessage` (github.com/rpcxio/rpcx-benchmark, `proto/benchmark.proto`,
//! proto2) and the message its client sends to `Hello.Say`.
//!
//! The demo server has the same type (`ringrpc_server::demo_hello`); the load generator keeps its
//! own copy, as it does for the Arith types, because it measures any rpcx server and does not
//! depend on ours. Both are checked against the bytes Go's gogofaster code writes (the tests here,
//! `server/tests/hello.rs`, `benches/peers/go-rpcx/hello_test.go`).

/// The text rpcx-benchmark puts in every string field: 18 characters, 54 bytes of UTF-8.
pub const TEXT: &str = "许多往事在眼前一幕一幕，变的那麼模糊";

/// `message BenchmarkMessage`, field for field, in the proto's order: required fields are plain
/// values, optional ones `Option`s with the proto's defaults.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BenchmarkMessage {
    #[prost(string, required, tag = "1")]
    pub field1: String,
    #[prost(string, optional, tag = "9")]
    pub field9: Option<String>,
    #[prost(string, optional, tag = "18")]
    pub field18: Option<String>,
    #[prost(bool, optional, tag = "80", default = "false")]
    pub field80: Option<bool>,
    #[prost(bool, optional, tag = "81", default = "true")]
    pub field81: Option<bool>,
    #[prost(int32, required, tag = "2")]
    pub field2: i32,
    #[prost(int32, required, tag = "3")]
    pub field3: i32,
    #[prost(int32, optional, tag = "280")]
    pub field280: Option<i32>,
    #[prost(int32, optional, tag = "6", default = "0")]
    pub field6: Option<i32>,
    #[prost(int64, optional, tag = "22")]
    pub field22: Option<i64>,
    #[prost(string, optional, tag = "4")]
    pub field4: Option<String>,
    /// proto2 repeated scalars are not packed.
    #[prost(fixed64, repeated, packed = "false", tag = "5")]
    pub field5: Vec<u64>,
    #[prost(bool, optional, tag = "59", default = "false")]
    pub field59: Option<bool>,
    #[prost(string, optional, tag = "7")]
    pub field7: Option<String>,
    #[prost(int32, optional, tag = "16")]
    pub field16: Option<i32>,
    #[prost(int32, optional, tag = "130", default = "0")]
    pub field130: Option<i32>,
    #[prost(bool, optional, tag = "12", default = "true")]
    pub field12: Option<bool>,
    #[prost(bool, optional, tag = "17", default = "true")]
    pub field17: Option<bool>,
    #[prost(bool, optional, tag = "13", default = "true")]
    pub field13: Option<bool>,
    #[prost(bool, optional, tag = "14", default = "true")]
    pub field14: Option<bool>,
    #[prost(int32, optional, tag = "104", default = "0")]
    pub field104: Option<i32>,
    #[prost(int32, optional, tag = "100", default = "0")]
    pub field100: Option<i32>,
    #[prost(int32, optional, tag = "101", default = "0")]
    pub field101: Option<i32>,
    #[prost(string, optional, tag = "102")]
    pub field102: Option<String>,
    #[prost(string, optional, tag = "103")]
    pub field103: Option<String>,
    #[prost(int32, optional, tag = "29", default = "0")]
    pub field29: Option<i32>,
    #[prost(bool, optional, tag = "30", default = "false")]
    pub field30: Option<bool>,
    #[prost(int32, optional, tag = "60", default = "-1")]
    pub field60: Option<i32>,
    #[prost(int32, optional, tag = "271", default = "-1")]
    pub field271: Option<i32>,
    #[prost(int32, optional, tag = "272", default = "-1")]
    pub field272: Option<i32>,
    #[prost(int32, optional, tag = "150")]
    pub field150: Option<i32>,
    #[prost(int32, optional, tag = "23", default = "0")]
    pub field23: Option<i32>,
    #[prost(bool, optional, tag = "24", default = "false")]
    pub field24: Option<bool>,
    #[prost(int32, optional, tag = "25", default = "0")]
    pub field25: Option<i32>,
    #[prost(bool, optional, tag = "78")]
    pub field78: Option<bool>,
    #[prost(int32, optional, tag = "67", default = "0")]
    pub field67: Option<i32>,
    #[prost(int32, optional, tag = "68")]
    pub field68: Option<i32>,
    #[prost(int32, optional, tag = "128", default = "0")]
    pub field128: Option<i32>,
    #[prost(string, optional, tag = "129", default = "xxxxxxxxxxxxxxxxxxxxx")]
    pub field129: Option<String>,
    #[prost(int32, optional, tag = "131", default = "0")]
    pub field131: Option<i32>,
}

/// The request of rpcx-benchmark's client (`proto.PrepareArgs`): every scalar field set, integers
/// to 100000, booleans to true, strings to [`TEXT`]; the repeated `field5` empty. 581 bytes encoded.
pub fn benchmark_args() -> BenchmarkMessage {
    let text = || Some(TEXT.to_string());
    let int = Some(100_000);
    BenchmarkMessage {
        field1: TEXT.to_string(),
        field9: text(),
        field18: text(),
        field80: Some(true),
        field81: Some(true),
        field2: 100_000,
        field3: 100_000,
        field280: int,
        field6: int,
        field22: Some(100_000),
        field4: text(),
        field5: Vec::new(),
        field59: Some(true),
        field7: text(),
        field16: int,
        field130: int,
        field12: Some(true),
        field17: Some(true),
        field13: Some(true),
        field14: Some(true),
        field104: int,
        field100: int,
        field101: int,
        field102: text(),
        field103: text(),
        field29: int,
        field30: Some(true),
        field60: int,
        field271: int,
        field272: int,
        field150: int,
        field23: int,
        field24: Some(true),
        field25: int,
        field78: Some(true),
        field67: int,
        field68: int,
        field128: int,
        field129: text(),
        field131: int,
    }
}
