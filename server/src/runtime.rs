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
//! - give each worker its own [`WorkerState`]: buffer pool, connection registry and limits
//!   ([`crate::limits`]: timeouts, reply budget, refusal log); nothing is shared between workers
//!   on the request path;
//! - run each worker's sweeper: the coarse clock, quiet connections' read buffers, the timeouts;
//! - accept: refuse past the connection cap, back off when accept fails (EMFILE);
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
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use monoio::net::{TcpListener, TcpStream};
use ringrpc_io::cpus::machine_cpus;
use ringrpc_io::{pin_current_thread, IoDriver, IoUnavailable, WakerSlot};
use slab::Slab;

use crate::buffers::Pool;
use crate::config::ServerConfig;
use crate::limits::admission::at_capacity;
use crate::limits::{sweeper, AcceptBackoff, ConnectionWatch, Reason, RefusalCounts, WorkerLimits};
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
    refusals: Arc<RefusalCounts>,
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

    /// Refusals by the limits so far, over every worker (timeouts, connection cap, accept
    /// failures, reply budget, malformed frames).
    pub fn refusals(&self) -> Arc<RefusalCounts> {
        self.refusals.clone()
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

/// What the worker knows of one live connection: enough to stop its reads at shutdown and to
/// take back its read buffer when it goes quiet.
pub struct ConnectionEntry {
    /// The socket, so shutdown can stop its reads.
    fd: i32,
    /// The worker tick of its last completed read.
    last_read: Cell<u32>,
    /// Set while it waits in a read with a large buffer: the sweeper cancels such a read once the
    /// connection has been quiet for [`RELEASE_AFTER_TICKS`], so the buffer goes back.
    canceller: RefCell<Option<monoio::io::Canceller>>,
    /// What the limits watch: frame, partial-frame and write clocks, queued reply bytes.
    pub watch: Rc<ConnectionWatch>,
    /// The connection's output buffer: replies waiting to be written. After a write, the written
    /// buffer stays here, emptied, for the next replies (see the connection's writer); it lives
    /// in the entry rather than the connection so that the sweeper can give an empty one back to
    /// the pool once the connection has gone quiet: an idle connection holds no output buffer
    /// past [`RELEASE_AFTER_TICKS`].
    pub(crate) output: RefCell<BytesMut>,
}

impl ConnectionEntry {
    /// Records a completed read; returns the worker ticks it waited since the one before (how
    /// long the connection was quiet, to a tick).
    #[inline]
    pub fn read_done(&self, worker: &WorkerState) -> u32 {
        let now = worker.tick.get();
        let waited = now.wrapping_sub(self.last_read.replace(now));
        worker.sweep_if_overdue();
        waited
    }

    /// A handle for a read the sweeper may cancel when the connection goes quiet.
    #[inline]
    pub fn cancel_handle(&self) -> monoio::io::CancelHandle {
        self.canceller
            .borrow_mut()
            .get_or_insert_with(monoio::io::Canceller::new)
            .handle()
    }

    /// Gives the output buffer back to `pool` if it holds nothing (a quiet connection's).
    fn release_output(&self, pool: &Pool) {
        if let Ok(mut out) = self.output.try_borrow_mut() {
            if out.is_empty() && out.capacity() != 0 {
                pool.give_output(std::mem::take(&mut *out));
            }
        }
    }

    fn cancel_read(&self) {
        let mut slot = self.canceller.borrow_mut();
        if let Some(canceller) = slot.take() {
            *slot = Some(canceller.cancel());
        }
    }
}

/// Per-worker state that connections see: the connection registry (shutdown, idle buffers), the
/// buffer pool, and a coarse clock.
pub struct WorkerState {
    id: WorkerId,
    /// Live connections.
    connections: RefCell<Slab<Rc<ConnectionEntry>>>,
    /// Woken when the last connection goes.
    idle_waker: WakerSlot,
    /// Buffers of this core's connections.
    pub pool: Pool,
    /// Advanced by the sweeper every [`TICK`]: connections copy it, no clock read per request.
    tick: Cell<u32>,
    /// Timeouts, connection cap, reply budget, refusal log.
    limits: Rc<WorkerLimits>,
    /// When the next sweep is due.
    next_sweep: Cell<Instant>,
    /// Reads left before the request path looks at the clock (see `sweep_if_overdue`).
    reads_to_check: Cell<u32>,
}

/// Reads between two looks at the clock on the request path.
const SWEEP_CHECK_EVERY: u32 = 256;

/// The sweeper's period.
const TICK: Duration = Duration::from_millis(250);
/// A streaming connection quiet for this many ticks (1 s) gives its large read buffer back.
const RELEASE_AFTER_TICKS: u32 = 4;
/// Pool trim period, in ticks (4 s).
const TRIM_EVERY_TICKS: u32 = 16;

impl WorkerState {
    /// A worker's state for `config`, counting refusals into `refusals` (shared by the workers).
    pub fn new(id: WorkerId, config: &ServerConfig, refusals: Arc<RefusalCounts>) -> Self {
        WorkerState {
            id,
            connections: RefCell::new(Slab::new()),
            idle_waker: WakerSlot::default(),
            pool: Pool::new(
                config.read_buffer,
                config.max_pooled_bytes,
                config.max_large_readers,
            ),
            tick: Cell::new(0),
            limits: Rc::new(WorkerLimits::new(config, refusals)),
            next_sweep: Cell::new(Instant::now() + TICK),
            reads_to_check: Cell::new(SWEEP_CHECK_EVERY),
        }
    }

    /// The coarse clock: sweeper ticks (250 ms each) since the worker started.
    #[inline]
    pub fn tick(&self) -> u32 {
        self.tick.get()
    }

    /// Which worker this is.
    pub fn id(&self) -> WorkerId {
        self.id
    }

    /// Sweeps from the request path when a sweep is overdue, looking at the clock once every
    /// [`SWEEP_CHECK_EVERY`] reads. A busy monoio runtime fires its timers only when it parks, and
    /// a saturated worker may not park for seconds: without this the timeouts (and the release
    /// of quiet buffers) would stop exactly under the load they are for.
    #[inline]
    pub fn sweep_if_overdue(&self) {
        let left = self.reads_to_check.get();
        if left > 1 {
            self.reads_to_check.set(left - 1);
            return;
        }
        self.reads_to_check.set(SWEEP_CHECK_EVERY);
        if Instant::now() >= self.next_sweep.get() {
            self.sweep();
        }
    }

    /// This worker's limits: clock, budget, refusal log.
    pub fn limits(&self) -> &Rc<WorkerLimits> {
        &self.limits
    }

    /// Live connections on this worker.
    pub fn open_connections(&self) -> usize {
        self.connections.borrow().len()
    }

    /// Registers a connection by its socket's fd; a negative `fd` for a stream without one
    /// (in-memory streams of fuzzing: nothing to shut down).
    pub fn register(&self, fd: i32, peer: SocketAddr) -> (usize, Rc<ConnectionEntry>) {
        let socket = (fd >= 0).then_some(fd);
        let entry = Rc::new(ConnectionEntry {
            fd,
            last_read: Cell::new(self.tick.get()),
            canceller: RefCell::new(None),
            output: RefCell::new(BytesMut::new()),
            watch: Rc::new(ConnectionWatch::new(socket, peer, self.limits.clone())),
        });
        (self.connections.borrow_mut().insert(entry.clone()), entry)
    }

    /// One sweep: advance the clocks, take back the large read buffers of quiet connections,
    /// close those past a timeout (limits::sweeper), and trim the pool now and then.
    fn sweep(&self) {
        self.next_sweep.set(Instant::now() + TICK);
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        let now = self.limits.tick();
        for (_, entry) in self.connections.borrow().iter() {
            if tick.wrapping_sub(entry.last_read.get()) >= RELEASE_AFTER_TICKS {
                entry.cancel_read();
                entry.release_output(&self.pool);
            }
            sweeper::sweep(&self.limits, &entry.watch, now);
        }
        if tick % TRIM_EVERY_TICKS == 0 {
            self.pool.trim();
        }
    }

    pub fn unregister(&self, key: usize) {
        let mut connections = self.connections.borrow_mut();
        connections.try_remove(key);
        if connections.is_empty() {
            self.idle_waker.wake();
        }
    }

    /// Stops reading on every connection: their reads end as at EOF, and each then finishes what
    /// it has read, writes the replies and closes (spec 4.13; Go's `CloseRead`).
    fn stop_reading(&self) {
        for (_, entry) in self.connections.borrow().iter().filter(|(_, e)| e.fd >= 0) {
            let fd = entry.fd;
            // SAFETY: shutdown(2) takes a plain fd number and touches no memory of ours. The fd is
            // still this connection's: its task unregisters it in the same poll in which the
            // stream is dropped (no await in between), and this runs on the same thread.
            unsafe { libc::shutdown(fd, libc::SHUT_RD) };
        }
    }

    async fn all_closed(&self) {
        self.idle_waker
            .wait_until(|| self.connections.borrow().is_empty())
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
    S: Fn(Accepted) -> Fut + 'static,
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
    let make_serve = Arc::new(make_serve);
    let refusals = Arc::new(RefusalCounts::default());
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
        let config = config.clone();
        let worker_refusals = refusals.clone();
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
                    let state = Rc::new(WorkerState::new(id, &config, worker_refusals));
                    worker(index, listener, serve, state, listener_shutdown, &config).await;
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
        refusals,
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

/// A connection as the worker hands it to the per-connection function.
pub struct Accepted {
    pub stream: TcpStream,
    pub peer: SocketAddr,
    /// The worker's state: buffer pool, clock.
    pub worker: Rc<WorkerState>,
    /// The worker's record of this connection.
    pub entry: Rc<ConnectionEntry>,
}

/// A worker: accept until shutdown, then stop reading everywhere and wait (bounded) for every
/// connection to drain.
async fn worker<S, Fut>(
    index: usize,
    listener: std::net::TcpListener,
    serve: S,
    state: Rc<WorkerState>,
    shutdown: ShutdownListener,
    config: &ServerConfig,
) where
    S: Fn(Accepted) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    // Shared by the connection tasks, each of which calls it (see the accept loop).
    let serve = Rc::new(serve);
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(worker = index, "cannot adopt listener: {e}");
            return;
        }
    };
    let sweeper = {
        let state = state.clone();
        monoio::spawn(async move {
            loop {
                // Until the next sweep is due: the request path may have swept meanwhile.
                let due = state
                    .next_sweep
                    .get()
                    .saturating_duration_since(Instant::now());
                monoio::time::sleep(due.max(Duration::from_millis(10))).await;
                if Instant::now() >= state.next_sweep.get() {
                    state.sweep();
                }
            }
        })
    };
    monoio::select! {
        _ = accept_loop(&listener, &serve, &state) => {}
        _ = shutdown.wait() => {}
    }
    drop(listener);
    state.stop_reading();
    let drained = monoio::time::timeout(config.grace_period, state.all_closed()).await;
    drop(sweeper);
    if drained.is_err() {
        tracing::warn!(
            worker = index,
            open = state.connections.borrow().len(),
            "grace period over: dropping connections still open"
        );
    }
}

/// Accepts until dropped: past the connection cap a connection is closed at once (the client
/// reads EOF before any byte); a failed accept (EMFILE, ENFILE) backs off, 5 ms doubling to 1 s,
/// as Go's accept loop does. Both are refusals: logged (rate-limited) and counted.
async fn accept_loop<S, Fut>(listener: &TcpListener, serve: &Rc<S>, state: &Rc<WorkerState>)
where
    S: Fn(Accepted) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let limits = state.limits.clone();
    let mut backoff = AcceptBackoff::default();
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                backoff.succeeded();
                if at_capacity(state.open_connections(), limits.max_connections) {
                    limits.refusals.refuse(peer, Reason::ConnectionCap);
                    drop(stream);
                    continue;
                }
                let (key, entry) = state.register(stream.as_raw_fd(), peer);
                let accepted = Accepted {
                    stream,
                    peer,
                    worker: state.clone(),
                    entry,
                };
                let (serve, state) = (serve.clone(), state.clone());
                // The connection's future is made inside its task, not moved into it: moved in,
                // its state was held twice, as the task's capture and as the future awaited
                // (3.6 KiB per connection, most of an idle connection's memory).
                monoio::spawn(async move {
                    serve(accepted).await;
                    state.unregister(key);
                });
            }
            Err(e) => {
                // The pending connection stays in the backlog and the next accept fails at once
                // until something closes: wait instead of spinning.
                let delay = backoff.failed();
                let detail = format!("{e}; next accept in {delay:?}");
                limits
                    .refusals
                    .refuse_with(None, Reason::AcceptFailed, Some(&detail));
                monoio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_path_sweeps_when_the_timer_is_late() {
        // No runtime at all here: no timer fires, as on a worker too busy to park.
        let config = ServerConfig::default().idle_timeout(Some(Duration::from_millis(1)));
        let state = WorkerState::new(WorkerId(0), &config, Arc::default());
        let (_, entry) = state.register(-1, "127.0.0.1:1".parse().unwrap());
        std::thread::sleep(TICK + Duration::from_millis(20));
        for _ in 0..SWEEP_CHECK_EVERY - 1 {
            entry.read_done(&state);
        }
        assert_eq!(
            state.tick.get(),
            0,
            "the clock is looked at once per {SWEEP_CHECK_EVERY} reads"
        );
        entry.read_done(&state);
        assert_eq!(state.tick.get(), 1, "an overdue sweep ran");
        assert_eq!(entry.watch.closed(), Some(Reason::IdleTimeout));
        for _ in 0..SWEEP_CHECK_EVERY {
            entry.read_done(&state);
        }
        assert_eq!(state.tick.get(), 1, "not again before the next tick is due");
    }
}
