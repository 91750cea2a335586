use ringrpc_server::bytes::Bytes;
use ringrpc_server::{service, ServiceError};

struct Echo;

#[service(title = "Echo")]
impl Echo {
    pub fn echo(&self, args: Bytes) -> Result<Bytes, ServiceError> {
        Ok(args)
    }
}

fn main() {}
