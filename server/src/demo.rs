//! The demo services of the `ringrpc-server` binary, which the tests, the Go suite and the
//! benchmarks call; the Go and rpcx-rs peers serve the same contract.
//!
//! - `Arith.Mul`, `Arith.Add`, `Arith.Div`: `{"A":int,"B":int}` → `{"C":int}` over JSON, MsgPack
//!   and Protobuf (`ProtoArgs { int64 A = 1; int64 B = 2 }` → `ProtoReply { int64 C = 1 }`).
//!   `Div` by zero fails with `divide by zero` and still carries `{"C":0}` (spec 4.7, vector V6).
//! - `Echo.Echo`: raw bytes returned unchanged; request metadata copied to the response metadata.
//! - `Echo.Sleep`: raw payload is a decimal number of milliseconds; replies with it after sleeping
//!   that long on the worker's timer, without blocking anything else.
//! - `Echo.Deadline`: replies with the milliseconds left before the `__ServerTimeout` deadline,
//!   or `none`.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{proto_payload, RegistrationError, Service, ServiceError, ServiceTable};

/// Arguments of the Arith methods.
#[derive(Clone, PartialEq, Serialize, Deserialize, prost::Message)]
pub struct ArithArgs {
    #[prost(int64, tag = "1")]
    #[serde(rename = "A", default)]
    pub a: i64,
    #[prost(int64, tag = "2")]
    #[serde(rename = "B", default)]
    pub b: i64,
}

/// Reply of the Arith methods.
#[derive(Clone, PartialEq, Serialize, Deserialize, prost::Message)]
pub struct ArithReply {
    #[prost(int64, tag = "1")]
    #[serde(rename = "C", default)]
    pub c: i64,
}

proto_payload!(ArithArgs, ArithReply);

/// `Arith`: Mul, Add and Div.
pub fn arith() -> Service {
    Service::new("Arith")
        .method("Mul", |_, args: ArithArgs| {
            Ok(ArithReply {
                c: args.a.wrapping_mul(args.b),
            })
        })
        .method("Add", |_, args: ArithArgs| {
            Ok(ArithReply {
                c: args.a.wrapping_add(args.b),
            })
        })
        .method("Div", |_, args: ArithArgs| {
            if args.b == 0 {
                return Err(ServiceError::from("divide by zero"));
            }
            Ok(ArithReply {
                c: args.a.wrapping_div(args.b),
            })
        })
}

/// Longest `Echo.Sleep`: an hour, well inside the timer's range.
const MAX_SLEEP_MS: u64 = 3_600_000;

/// `Echo`: Echo, Sleep and Deadline.
pub fn echo() -> Service {
    Service::new("Echo")
        .method("Echo", |ctx, payload: Bytes| {
            for (key, value) in ctx.metadata() {
                ctx.set_response_metadata(
                    Bytes::copy_from_slice(key),
                    Bytes::copy_from_slice(value),
                );
            }
            Ok(payload)
        })
        .async_method("Sleep", |_, payload: Bytes| async move {
            let ms: u64 = std::str::from_utf8(&payload)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .ok_or_else(|| {
                    ServiceError::from("Echo.Sleep wants a decimal number of milliseconds")
                })?;
            if ms > MAX_SLEEP_MS {
                return Err(ServiceError::from("Echo.Sleep sleeps at most 3600000 ms"));
            }
            monoio::time::sleep(Duration::from_millis(ms)).await;
            Ok(payload)
        })
        .method("Deadline", |ctx, _: Bytes| {
            Ok(match ctx.time_left() {
                Some(left) => Bytes::from(left.as_millis().to_string()),
                None => Bytes::from_static(b"none"),
            })
        })
}

/// The table the binary serves.
pub fn demo_table() -> Result<ServiceTable, RegistrationError> {
    Ok(ServiceTable::builder()
        .service(arith())?
        .service(echo())?
        .service(crate::demo_hello::hello())?
        .build())
}
