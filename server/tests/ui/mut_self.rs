use ringrpc_server::bytes::Bytes;
use ringrpc_server::{service, ServiceError};

struct Counter;

#[service]
impl Counter {
    pub fn next(&mut self, args: Bytes) -> Result<Bytes, ServiceError> {
        Ok(args)
    }
}

fn main() {}
