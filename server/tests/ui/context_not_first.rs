use ringrpc_server::bytes::Bytes;
use ringrpc_server::{service, ServiceError};

struct Echo;

#[service]
impl Echo {
    pub fn echo(&self, first: u32, args: Bytes) -> Result<Bytes, ServiceError> {
        let _ = first;
        Ok(args)
    }
}

fn main() {}
