use ringrpc_server::bytes::Bytes;
use ringrpc_server::{service, Context, ServiceError};

struct Echo;

#[service]
impl Echo {
    pub fn echo(&self, ctx: &Context, a: Bytes, b: Bytes) -> Result<Bytes, ServiceError> {
        let _ = (ctx, b);
        Ok(a)
    }
}

fn main() {}
