//! The demo server with one interceptor installed that does nothing: what the interceptor
//! machinery itself costs per request (`scripts/instructions.sh --servers ringrpc,ringrpc-noop`).
//! Takes the flags the measuring scripts pass: `--addr`, `--threads`, `--cpus`.

use std::net::SocketAddr;

use clap::Parser;
use ringrpc_server::{demo, CpuList, Interceptor, Server, ServerConfig, Shutdown};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Every hook left at its default: nothing but the calls themselves.
struct Noop;

impl Interceptor for Noop {}

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:8972")]
    addr: SocketAddr,
    #[arg(long, default_value_t = 1)]
    threads: usize,
    #[arg(long)]
    cpus: Option<CpuList>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    ringrpc_server::cli::init_logging();
    let args = Args::parse();
    let mut config = ServerConfig::default()
        .addr(args.addr)
        .threads(args.threads);
    if let Some(CpuList(cpus)) = args.cpus {
        config = config.cpus(cpus);
    }
    let shutdown = Shutdown::new();
    shutdown.on_signals()?;
    let running = Server::new(config, |worker| {
        // Every demo service, plus `Noop`.
        Ok(demo::demo_services(worker)?.interceptor(Noop).build())
    })
    .start(&shutdown)?;
    println!("listening on {}", running.local_addr());
    running.join()?;
    Ok(())
}
