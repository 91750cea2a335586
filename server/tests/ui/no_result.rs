use ringrpc_server::bytes::Bytes;
use ringrpc_server::service;

struct Echo;

#[service]
impl Echo {
    pub fn echo(&self, args: Bytes) -> Bytes {
        args
    }
}

fn main() {}
