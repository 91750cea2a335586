//! The demo services of the `ringrpc-server` binary, which the tests, the Go suite and the
//! benchmarks call; the Go and rpcx-rs peers serve the same contract. Written with
//! [`#[service]`](crate::service), as a user's services would be.
//!
//! - `Arith.Mul`, `Arith.Add`, `Arith.Div`: `{"A":int,"B":int}` → `{"C":int}` over JSON, MsgPack
//!   and Protobuf (`ProtoArgs { int64 A = 1; int64 B = 2 }` → `ProtoReply { int64 C = 1 }`).
//!   `Div` by zero fails with `divide by zero` and still carries `{"C":0}` (spec 4.7, vector V6).
//! - `Echo.Echo`: raw bytes returned unchanged; request metadata copied to the response metadata.
//! - `Echo.Sleep`: raw payload is a decimal number of milliseconds; replies with it after sleeping
//!   that long on the worker's timer, without blocking anything else.
//! - `Echo.Deadline`: replies with the milliseconds left before the `__ServerTimeout` deadline,
//!   or `none`.
//! - `Hello.Say`: rpcx-benchmark's service (see [`crate::demo_hello`]).
//! - `KV.Get`, `KV.Set`, `KV.Worker`: a per-core key-value cache (`{"Key":..,"Value":..}`), each
//!   worker with its own map and no lock; `KV.Worker` says which worker answered.
//! - `Push.Subscribe`: raw payload, pushed back to the calling connection as a server push to
//!   `Push.Notify` (oneway request, serialize type 0, no metadata; spec 4.16), then returned as
//!   the reply, as the Go peer's `Push.Subscribe` does with `SendMessage`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{
    proto_payload, serde_payload, service, Context, RegistrationError, ServiceError, ServiceTable,
    ServiceTableBuilder, WorkerId,
};

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
#[derive(Debug, Default, Clone, Copy)]
pub struct Arith;

#[service]
impl Arith {
    pub fn mul(&self, args: ArithArgs) -> Result<ArithReply, ServiceError> {
        Ok(ArithReply {
            c: args.a.wrapping_mul(args.b),
        })
    }

    pub fn add(&self, args: ArithArgs) -> Result<ArithReply, ServiceError> {
        Ok(ArithReply {
            c: args.a.wrapping_add(args.b),
        })
    }

    pub fn div(&self, args: ArithArgs) -> Result<ArithReply, ServiceError> {
        if args.b == 0 {
            return Err(ServiceError::from("divide by zero"));
        }
        Ok(ArithReply {
            c: args.a.wrapping_div(args.b),
        })
    }
}

/// Longest `Echo.Sleep`: an hour, well inside the timer's range.
const MAX_SLEEP_MS: u64 = 3_600_000;

/// `Echo`: Echo, Sleep and Deadline.
#[derive(Debug, Default, Clone, Copy)]
pub struct Echo;

#[service]
impl Echo {
    /// The payload is borrowed from the receive buffer and copied once, into the reply.
    pub fn echo<'a>(&self, ctx: &Context, payload: &'a [u8]) -> Result<&'a [u8], ServiceError> {
        for (key, value) in ctx.metadata() {
            ctx.set_response_metadata(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        }
        Ok(payload)
    }

    pub async fn sleep(&self, payload: Bytes) -> Result<Bytes, ServiceError> {
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
    }

    pub fn deadline(&self, ctx: &Context, _: Bytes) -> Result<Bytes, ServiceError> {
        Ok(match ctx.time_left() {
            Some(left) => Bytes::from(left.as_millis().to_string()),
            None => Bytes::from_static(b"none"),
        })
    }
}

/// Arguments of `KV.Get`, `KV.Set`.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvArgs {
    #[serde(rename = "Key", default)]
    pub key: String,
    #[serde(rename = "Value", default)]
    pub value: String,
}

/// Reply of `KV.Get`, `KV.Set`: the value (the previous one for Set) and whether there was one.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct KvReply {
    #[serde(rename = "Value", default)]
    pub value: String,
    #[serde(rename = "Found", default)]
    pub found: bool,
}

serde_payload!(KvArgs, KvReply);

/// Entries one core's `KV` keeps: a bound, so a client cannot fill the server's memory.
const KV_MAX_ENTRIES: usize = 10_000;

/// `KV`: a per-core cache. Each worker builds its own (the factory runs per worker), so `Set` on
/// one core is not seen by `Get` on another: the thread-per-core way, no lock on the path.
#[derive(Debug)]
pub struct Kv {
    worker: WorkerId,
    entries: RefCell<HashMap<String, String>>,
}

impl Kv {
    pub fn new(worker: WorkerId) -> Self {
        Kv {
            worker,
            entries: RefCell::new(HashMap::new()),
        }
    }
}

#[service(name = "KV")]
impl Kv {
    pub fn get(&self, args: KvArgs) -> Result<KvReply, ServiceError> {
        Ok(match self.entries.borrow().get(&args.key) {
            Some(value) => KvReply {
                value: value.clone(),
                found: true,
            },
            None => KvReply::default(),
        })
    }

    pub fn set(&self, args: KvArgs) -> Result<KvReply, ServiceError> {
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= KV_MAX_ENTRIES && !entries.contains_key(&args.key) {
            return Err(ServiceError::from(
                "KV.Set: this core holds 10000 keys already",
            ));
        }
        Ok(match entries.insert(args.key, args.value) {
            Some(previous) => KvReply {
                value: previous,
                found: true,
            },
            None => KvReply::default(),
        })
    }

    /// Which worker answered (so a test can find connections on different cores).
    pub fn worker(&self, _: Bytes) -> Result<Bytes, ServiceError> {
        Ok(Bytes::from(self.worker.index().to_string()))
    }
}

/// `Push`: Subscribe.
#[derive(Debug, Default, Clone, Copy)]
pub struct Push;

#[service]
impl Push {
    /// Pushes `payload` to the caller's connection as `Push.Notify`, then replies with it.
    pub fn subscribe(&self, ctx: &Context, payload: Bytes) -> Result<Bytes, ServiceError> {
        ctx.pusher()
            .send("Push", "Notify", &[], &payload)
            .map_err(|e| ServiceError::from(e.to_string()))?;
        Ok(payload)
    }
}

/// The demo services of one worker, for a caller that adds interceptors or options.
pub fn demo_services(worker: WorkerId) -> Result<ServiceTableBuilder, RegistrationError> {
    ServiceTable::builder()
        .service(Arith)?
        .service(Echo)?
        .service(Kv::new(worker))?
        .service(crate::demo_hello::Hello)?
        .service(Push)
}

/// The table the binary serves with no option, built once per worker.
pub fn demo_table(worker: WorkerId) -> Result<ServiceTable, RegistrationError> {
    Ok(demo_services(worker)?.build())
}
