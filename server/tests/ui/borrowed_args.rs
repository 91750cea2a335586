use ringrpc_server::bytes::Bytes;
use ringrpc_server::{service, ServiceError};

struct Echo;

#[service]
impl Echo {
    pub fn echo(&self, args: &Bytes) -> Result<Bytes, ServiceError> {
        Ok(args.clone())
    }
}

fn main() {}
