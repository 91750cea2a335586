use ringrpc_server::bytes::Bytes;
use ringrpc_server::{service, ServiceError};

struct Args {
    a: i64,
}

struct Arith;

#[service]
impl Arith {
    pub fn mul(&self, args: Args) -> Result<Bytes, ServiceError> {
        Ok(Bytes::from(args.a.to_string()))
    }
}

fn main() {}
