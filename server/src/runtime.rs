//! Threads, pinning, listeners: one monoio runtime per worker thread, each pinned to its core and
//! accepting on its own `SO_REUSEPORT` listener, so a connection never leaves the core that
//! accepted it.
//!
//! Responsibilities:
//! - bind every worker's listener up front (errors surface before anything runs; port 0 picks
//!   one port for all);
//! - choose the driver once (io_uring, or epoll with one log line saying why);
//! - run [`Worker`]s, each with its own clone of the service table, buffer pool and connection
//!   slab; nothing is shared between workers on the request path;
//! - on shutdown: stop accepting, stop reading, drain, exit — bounded by the grace period.
//!
//! The same machinery serves any per-connection function ([`run_workers`]), which is how the
//! bare echo server of the benchmarks shares it.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};
use slab::Slab;

use crate::config::{IoDriver, ServerConfig};
use crate::shutdown::{Shutdown, ShutdownListener};

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("io_uring requested but unavailable: {0}")]
    IoUringUnavailable(String),
    #[error("cannot start worker thread: {0}")]
    Spawn(io::Error),
}

/// Why a worker stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker {worker}: cannot build its runtime: {source}")]
    Runtime { worker: usize, source: io::Error },
    #[error("worker {worker} panicked")]
    Panicked { worker: usize },
}

/// A running set of workers.
pub struct Running {
    local_addr: SocketAddr,
    driver: IoDriver,
    threads: Vec<JoinHandle<Result<(), WorkerError>>>,
}

impl Running {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The driver the workers run on: `IoUring` or `Epoll`.
    pub fn driver(&self) -> IoDriver {
        self.driver
    }

    /// Waits for every worker to finish (after shutdown); the first failure, if any worker failed.
    pub fn join(self) -> Result<(), WorkerError> {
        let mut first_error = None;
        for (worker, thread) in self.threads.into_iter().enumerate() {
            let result = thread
                .join()
                .unwrap_or(Err(WorkerError::Panicked { worker }));
            if let Err(e) = result {
                tracing::error!("{e}");
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Per-worker state that connections see: the connection registry (for shutdown) and a pool of
/// buffers.
pub struct WorkerState {
    /// Raw fds of live connections, so shutdown can stop their reads.
    connections: RefCell<Slab<i32>>,
    /// Set once shutdown has begun.
    draining: Cell<bool>,
    /// Woken when the last connection goes.
    idle_waker: Cell<Option<Waker>>,
    pool: RefCell<Vec<bytes::BytesMut>>,
}

/// Buffers kept per worker; larger ones are freed rather than hoarded.
const POOL_MAX_BUFFERS: usize = 1024;
const POOL_MAX_CAPACITY: usize = 1 << 20;

impl WorkerState {
    fn new() -> Self {
        WorkerState {
            connections: RefCell::new(Slab::new()),
            draining: Cell::new(false),
            idle_waker: Cell::new(None),
            pool: RefCell::new(Vec::new()),
        }
    }

    /// A cleared buffer of at least `capacity` bytes, from the pool when one is there.
    pub fn take_buffer(&self, capacity: usize) -> bytes::BytesMut {
        let mut buf = self.pool.borrow_mut().pop().unwrap_or_default();
        buf.clear();
        buf.reserve(capacity);
        buf
    }

    /// Gives a buffer back to the pool.
    pub fn return_buffer(&self, mut buf: bytes::BytesMut) {
        let mut pool = self.pool.borrow_mut();
        if pool.len() < POOL_MAX_BUFFERS && buf.capacity() <= POOL_MAX_CAPACITY {
            buf.clear();
            pool.push(buf);
        }
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.draining.get()
    }

    fn register(&self, fd: i32) -> usize {
        self.connections.borrow_mut().insert(fd)
    }

    fn unregister(&self, key: usize) {
        let mut connections = self.connections.borrow_mut();
        connections.try_remove(key);
        if connections.is_empty() {
            if let Some(waker) = self.idle_waker.take() {
                waker.wake();
            }
        }
    }

    /// Stops reading on every connection: their reads end as at EOF, and each then finishes what
    /// it has read, writes the replies and closes (spec 4.13; Go's `CloseRead`).
    fn stop_reading(&self) {
        for (_, &fd) in self.connections.borrow().iter() {
            // SAFETY: the fd belongs to a live connection (it unregisters before closing).
            unsafe { libc::shutdown(fd, libc::SHUT_RD) };
        }
    }

    async fn all_closed(&self) {
        std::future::poll_fn(|cx| {
            if self.connections.borrow().is_empty() {
                Poll::Ready(())
            } else {
                self.idle_waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}

/// Starts `config.threads` workers that accept on `config.addr` and hand every connection to
/// `serve`, built once per worker by `make_serve`. Returns once every listener is bound.
pub fn run_workers<M, S, Fut>(
    config: &ServerConfig,
    shutdown: &Shutdown,
    make_serve: M,
) -> Result<Running, StartError>
where
    M: Fn(usize) -> S + Send + Sync + 'static,
    S: Fn(TcpStream, SocketAddr, Rc<WorkerState>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let driver = choose_driver(config.io)?;
    let listeners = bind_listeners(config, driver)?;
    let local_addr = listeners[0]
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let make_serve = std::sync::Arc::new(make_serve);
    let mut threads = Vec::with_capacity(config.threads);
    for (index, listener) in listeners.into_iter().enumerate() {
        let cpu = match &config.cpus {
            Some(cpus) => Some(cpus[index % cpus.len()]),
            None => (!cores.is_empty()).then(|| cores[index % cores.len()].id),
        };
        let make_serve = make_serve.clone();
        let listener_shutdown = shutdown.listener();
        let grace = config.grace_period;
        let entries = config.ring_entries;
        let thread = std::thread::Builder::new()
            .name(format!("ringrpc-worker-{index}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
                        tracing::warn!(worker = index, cpu, "could not pin worker to its core");
                    }
                }
                let serve = make_serve(index);
                let work = worker(index, listener, serve, listener_shutdown, grace);
                block_on(driver, entries, work).map_err(|source| WorkerError::Runtime {
                    worker: index,
                    source,
                })
            })
            .map_err(StartError::Spawn)?;
        threads.push(thread);
    }
    Ok(Running {
        local_addr,
        driver,
        threads,
    })
}

/// Resolves `Auto` once for the whole process, logging the fallback in one line.
fn choose_driver(io: IoDriver) -> Result<IoDriver, StartError> {
    let available = monoio::utils::detect_uring();
    match io {
        IoDriver::Epoll => Ok(IoDriver::Epoll),
        IoDriver::IoUring if available => Ok(IoDriver::IoUring),
        IoDriver::IoUring => Err(StartError::IoUringUnavailable(
            "the kernel or a seccomp profile refused io_uring_setup".into(),
        )),
        IoDriver::Auto if available => Ok(IoDriver::IoUring),
        IoDriver::Auto => {
            tracing::warn!(
                "io_uring is unavailable (refused by the kernel or a seccomp profile): \
                 falling back to monoio's epoll driver"
            );
            Ok(IoDriver::Epoll)
        }
    }
}

fn block_on<F: Future<Output = ()>>(driver: IoDriver, entries: u32, work: F) -> io::Result<()> {
    match driver {
        IoDriver::Epoll => monoio::RuntimeBuilder::<monoio::LegacyDriver>::new()
            .enable_timer()
            .build()?
            .block_on(work),
        _ => monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
            .with_entries(entries)
            .enable_timer()
            .build()?
            .block_on(work),
    }
    Ok(())
}

/// One listener per worker, all on the same port with SO_REUSEPORT so the kernel spreads
/// connections. With port 0 the first bind picks the port and the others join it.
fn bind_listeners(
    config: &ServerConfig,
    driver: IoDriver,
) -> Result<Vec<std::net::TcpListener>, StartError> {
    let (addr, count) = (config.addr, config.threads);
    let mut listeners: Vec<std::net::TcpListener> = Vec::with_capacity(count);
    let mut bind_addr = addr;
    for _ in 0..count {
        let bind = |addr: SocketAddr| -> io::Result<std::net::TcpListener> {
            let socket = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::STREAM,
                Some(socket2::Protocol::TCP),
            )?;
            socket.set_reuse_address(true)?;
            socket.set_reuse_port(true)?;
            // Accepted sockets inherit these on Linux: no syscall per connection.
            socket.set_nodelay(true)?;
            if let Some(idle) = config.tcp_keepalive {
                socket.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(idle))?;
            }
            socket.bind(&addr.into())?;
            socket.listen(4096)?;
            // monoio's epoll driver needs non-blocking sockets; its io_uring driver blocking ones
            // (a non-blocking fd makes io_uring return EAGAIN instead of waiting).
            socket.set_nonblocking(driver == IoDriver::Epoll)?;
            Ok(socket.into())
        };
        let listener = bind(bind_addr).map_err(|source| StartError::Bind { addr, source })?;
        if listeners.is_empty() {
            bind_addr = listener
                .local_addr()
                .map_err(|source| StartError::Bind { addr, source })?;
        }
        listeners.push(listener);
    }
    Ok(listeners)
}

/// A worker: accept until shutdown, then stop reading everywhere and wait (bounded) for every
/// connection to drain.
async fn worker<S, Fut>(
    index: usize,
    listener: std::net::TcpListener,
    serve: S,
    shutdown: ShutdownListener,
    grace: Duration,
) where
    S: Fn(TcpStream, SocketAddr, Rc<WorkerState>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(worker = index, "cannot adopt listener: {e}");
            return;
        }
    };
    let state = Rc::new(WorkerState::new());
    monoio::select! {
        _ = accept_loop(&listener, &serve, &state) => {}
        _ = shutdown.wait() => {}
    }
    drop(listener);
    state.draining.set(true);
    state.stop_reading();
    if monoio::time::timeout(grace, state.all_closed())
        .await
        .is_err()
    {
        tracing::warn!(
            worker = index,
            open = state.connections.borrow().len(),
            "grace period over: dropping connections still open"
        );
    }
}

async fn accept_loop<S, Fut>(listener: &TcpListener, serve: &S, state: &Rc<WorkerState>)
where
    S: Fn(TcpStream, SocketAddr, Rc<WorkerState>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let key = state.register(stream.as_raw_fd());
                let conn = serve(stream, peer, state.clone());
                let state = state.clone();
                monoio::spawn(async move {
                    conn.await;
                    state.unregister(key);
                });
            }
            Err(e) => {
                // Out of fds or memory: say so and back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                monoio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
