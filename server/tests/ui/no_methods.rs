use ringrpc_server::service;

struct Empty;

#[service]
impl Empty {
    pub fn new() -> Self {
        Empty
    }
}

fn main() {}
