use ringrpc_server::bytes::Bytes;
use ringrpc_server::{service, ServiceError};

struct Echo;

#[service]
impl Echo {
    pub async fn echo(&self, payload: &[u8]) -> Result<Bytes, ServiceError> {
        Ok(Bytes::copy_from_slice(payload))
    }
}

fn main() {}
