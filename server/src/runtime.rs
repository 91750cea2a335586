//! Threads, pinning, listeners: one monoio runtime per worker thread, each pinned to its core and
//! accepting on its own `SO_REUSEPORT` listener, so a connection never leaves the core that
//! accepted it.
//!
//! Responsibilities:
//! - bind every worker's listener up front (errors surface before anything runs; port 0 picks
//!   one port for all);
//! - choose the driver once (io_uring, or epoll with one log line saying why);
//! - start the workers in two steps: each builds its own per-connection function (and with it
//!   its services) on its own thread and runtime, and only when every worker has done so do they
//!   start accepting; a worker whose set-up fails stops them all and [`run_workers`] returns its
//!   error;
//! - give each worker its own [`WorkerState`]: buffer pool and connection registry; nothing is
//!   shared between workers on the request path;
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
use std::sync::mpsc;
use std::task::{Poll, Waker};
use std::thread::JoinHandle;
use std::time::Duration;

use monoio::net::{TcpListener, TcpStream};
use ringrpc_io::cpus::machine_cpus;
use ringrpc_io::{pin_current_thread, IoDriver, IoUnavailable};
use slab::Slab;

use crate::config::ServerConfig;
use crate::shutdown::{Shutdown, ShutdownListener};

/// An error from a worker's set-up, boxed: it comes from user code (the table factory).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Which worker a thread is: 0 .. threads-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub usize);

impl WorkerId {
    pub fn index(self) -> usize {
        self.0
    }
}

impl std::fmt::Display for WorkerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error(transparent)]
    IoUringUnavailable(#[from] IoUnavailable),
    #[error("cannot start worker thread: {0}")]
    Spawn(io::Error),
    #[error("worker {worker}: cannot build its runtime: {source}")]
    Runtime { worker: WorkerId, source: io::Error },
    #[error("worker {worker}: set-up failed: {source}")]
    Setup { worker: WorkerId, source: BoxError },
}

/// Why a worker stopped other than by shutdown.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("worker {worker} panicked")]
    Panicked { worker: WorkerId },
}

/// A running set of workers.
pub struct Running {
    local_addr: SocketAddr,
    driver: IoDriver,
    threads: Vec<JoinHandle<()>>,
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

    /// How many workers run.
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Waits for every worker to finish (after shutdown); the first failure, if any worker failed.
    pub fn join(self) -> Result<(), WorkerError> {
        let mut first_error = None;
        for (index, thread) in self.threads.into_iter().enumerate() {
            if thread.join().is_err() {
                let e = WorkerError::Panicked {
                    worker: WorkerId(index),
                };
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
    id: WorkerId,
    /// Raw fds of live connections, so shutdown can stop their reads.
    connections: RefCell<Slab<i32>>,
    /// Woken when the last connection goes.
    idle_waker: Cell<Option<Waker>>,
    pool: RefCell<Vec<bytes::BytesMut>>,
}

/// Buffers kept per worker; larger ones are freed rather than hoarded.
const POOL_MAX_BUFFERS: usize = 1024;
const POOL_MAX_CAPACITY: usize = 1 << 20;

impl WorkerState {
    fn new(id: WorkerId) -> Self {
        WorkerState {
            id,
            connections: RefCell::new(Slab::new()),
            idle_waker: Cell::new(None),
            pool: RefCell::new(Vec::new()),
        }
    }

    /// Which worker this is.
    pub fn id(&self) -> WorkerId {
        self.id
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
            // SAFETY: shutdown(2) takes a plain fd number and touches no memory of ours. The fd is
            // still this connection's: its task unregisters it in the same poll in which the
            // stream is dropped (no await in between), and this runs on the same thread.
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

/// Starts the workers that accept on `config.addr` and hand every connection to `serve`, built
/// once per worker, on the worker's own thread and runtime, by `make_serve`. Returns once every
/// worker has built it and is about to accept; if any `make_serve` fails, no worker accepts and
/// its error is returned.
pub fn run_workers<M, S, Fut, E>(
    config: &ServerConfig,
    shutdown: &Shutdown,
    make_serve: M,
) -> Result<Running, StartError>
where
    M: Fn(WorkerId) -> Result<S, E> + Send + Sync + 'static,
    E: Into<BoxError>,
    S: Fn(TcpStream, SocketAddr, Rc<WorkerState>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let driver = config.io.resolve()?;
    let listeners = bind_listeners(config, driver)?;
    let local_addr = listeners[0]
        .local_addr()
        .map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
    let machine = machine_cpus();
    let make_serve = std::sync::Arc::new(make_serve);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<(), StartError>>();
    let mut go_senders = Vec::with_capacity(listeners.len());
    let mut threads = Vec::with_capacity(listeners.len());
    for (index, listener) in listeners.into_iter().enumerate() {
        let id = WorkerId(index);
        let cpu = match &config.cpus {
            Some(cpus) => Some(cpus[index % cpus.len()]),
            None => (!machine.is_empty()).then(|| machine[index % machine.len()]),
        };
        let make_serve = make_serve.clone();
        let listener_shutdown = shutdown.listener();
        let grace = config.grace_period;
        let ready = ready_tx.clone();
        let (go_tx, go_rx) = mpsc::channel::<bool>();
        go_senders.push(go_tx);
        let entries = config.ring_entries;
        let spawned = std::thread::Builder::new()
            .name(format!("ringrpc-worker-{index}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if !pin_current_thread(cpu) {
                        tracing::warn!(worker = index, cpu, "could not pin worker to its core");
                    }
                }
                let set_up = ready.clone();
                let ran = ringrpc_io::block_on(driver, entries, move || async move {
                    let made =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make_serve(id)));
                    let serve = match made {
                        Ok(Ok(serve)) => serve,
                        Ok(Err(e)) => {
                            let _ = set_up.send(Err(StartError::Setup {
                                worker: id,
                                source: e.into(),
                            }));
                            return;
                        }
                        Err(_) => {
                            let _ = set_up.send(Err(StartError::Setup {
                                worker: id,
                                source: "it panicked while setting up".into(),
                            }));
                            return;
                        }
                    };
                    let _ = set_up.send(Ok(()));
                    // Every worker must be set up before any accepts (a failed one stops all).
                    if go_rx.recv() != Ok(true) {
                        return;
                    }
                    worker(index, listener, serve, listener_shutdown, grace).await;
                });
                if let Err(source) = ran {
                    let _ = ready.send(Err(StartError::Runtime { worker: id, source }));
                }
            });
        match spawned {
            Ok(thread) => threads.push(thread),
            Err(e) => {
                drop(go_senders);
                for thread in threads {
                    let _ = thread.join();
                }
                return Err(StartError::Spawn(e));
            }
        }
    }
    drop(ready_tx);
    let mut failure = None;
    for _ in 0..threads.len() {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failure.get_or_insert(e);
            }
            // Every sender gone before all reported: cannot happen (each worker reports once,
            // panics included), but never wait forever.
            Err(_) => {
                failure.get_or_insert(StartError::Setup {
                    worker: WorkerId(0),
                    source: "a worker exited without reporting".into(),
                });
                break;
            }
        }
    }
    for go in &go_senders {
        let _ = go.send(failure.is_none());
    }
    if let Some(e) = failure {
        drop(go_senders);
        for thread in threads {
            let _ = thread.join();
        }
        return Err(e);
    }
    Ok(Running {
        local_addr,
        driver,
        threads,
    })
}

/// One listener per worker, all on the same port with SO_REUSEPORT so the kernel spreads
/// connections. With port 0 the first bind picks the port and the others join it.
fn bind_listeners(
    config: &ServerConfig,
    driver: IoDriver,
) -> Result<Vec<std::net::TcpListener>, StartError> {
    let (addr, count) = (config.addr, config.worker_count());
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
            // Accepted sockets inherit TCP_NODELAY and keep-alive from the listener on Linux, so
            // they are set once here rather than per connection.
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
    let state = Rc::new(WorkerState::new(WorkerId(index)));
    monoio::select! {
        _ = accept_loop(&listener, &serve, &state) => {}
        _ = shutdown.wait() => {}
    }
    drop(listener);
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
