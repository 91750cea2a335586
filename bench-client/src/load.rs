//! The load: threads, connections, and when each request is sent.
//!
//! - [`LoadRun::start`] opens `conns` connections spread over `threads` pinned threads (one monoio
//!   runtime each), waits until every thread is connected, then starts the run clock.
//! - Each connection has one writer task and one reader task. The writer batches every request it
//!   may send into one write; the reader splits replies off its buffer in place, closes their
//!   requests in the [`Window`] and records latencies in the thread's [`Recorder`].
//! - **Closed loop** (no rate): the writer keeps `inflight` requests outstanding; latency is timed
//!   from the actual send.
//! - **Open loop** (`rate`): each connection sends at fixed intended times (rate / conns per
//!   connection), paced by the thread's [`Pacer`]. Latency is timed from the *intended* send time,
//!   as wrk2 does, so a server that stalls is charged for the requests queued behind the stall
//!   (coordinated omission). `inflight` caps what may be outstanding; requests that come due while
//!   the window is full wait and are charged for it.
//! - Requests sent before the warm-up ends are not measured. The run ends after `duration` (then
//!   replies still in flight get `drain` to arrive) or once `requests` measured requests are sent.
//!
//! Threads share nothing on the request path: only a stop flag, the request budget, and two
//! counters per thread that the progress line reads.

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monoio::io::{AsyncReadRent, AsyncWriteRent, Splitable};
use monoio::net::TcpStream;

/// One connection of the load, as connected.
enum Connection {
    Tcp(TcpStream),
    /// Boxed: rustls's state is large.
    Tls(Box<monoio_rustls::ClientTlsStream<TcpStream>>),
}
use ringrpc_codec::{MessageStatus, ERROR_KEY};

use crate::client::{self, Outbox, Window};
use crate::event::Event;
use crate::pacer::{Clock, Pacer};
use crate::report::{ErrorKind, Recorder, Report, RunInfo, ServerShare};
use crate::runtime::{self, Io};
use crate::workload::Workload;

/// When the run ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many measured requests.
    Requests(u64),
    /// After this long, counted from the end of the warm-up.
    Duration(Duration),
}

/// How the load is shaped; see the module documentation.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub addr: SocketAddr,
    /// A fleet of servers to load instead of `addr`: connections spread evenly over them (as a Go
    /// XClient's round robin spreads calls), and each thread's connections cycle over all of them
    /// ([`server_of`]). Empty: `addr`.
    pub fleet: Vec<SocketAddr>,
    /// Load threads (each a pinned monoio runtime).
    pub threads: usize,
    /// CPUs to pin the threads to, round robin; none to leave them unpinned.
    pub cpus: Option<Vec<usize>>,
    /// Connections, spread round robin over the threads.
    pub conns: usize,
    /// Requests outstanding per connection (the closed loop's concurrency, the open loop's cap).
    pub inflight: usize,
    pub stop: Stop,
    /// Total requests per second for an open loop; `None` for a closed loop.
    pub rate: Option<f64>,
    pub warmup: Duration,
    /// How long replies still in flight at the end may take before they count as timeouts.
    pub drain: Duration,
    /// Check every reply's payload ([`Workload::check`]).
    pub verify: bool,
    pub io: Io,
    /// Bytes asked for per read.
    pub read_size: usize,
    /// Speak TLS with this client configuration (server name `localhost`); `None`: plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Default for LoadConfig {
    fn default() -> Self {
        LoadConfig {
            addr: SocketAddr::from(([127, 0, 0, 1], 8972)),
            fleet: Vec::new(),
            threads: 1,
            cpus: None,
            conns: 10,
            inflight: 32,
            stop: Stop::Duration(Duration::from_secs(5)),
            rate: None,
            warmup: Duration::from_secs(1),
            drain: Duration::from_secs(2),
            verify: false,
            io: Io::Auto,
            read_size: 64 * 1024,
            tls: None,
        }
    }
}

impl LoadConfig {
    /// The servers loaded: the fleet, or `addr` alone.
    pub fn servers(&self) -> Vec<SocketAddr> {
        if self.fleet.is_empty() {
            vec![self.addr]
        } else {
            self.fleet.clone()
        }
    }
}

/// The server (index into [`LoadConfig::servers`]) of connection `id` out of `servers`, when
/// connections go round robin over `threads`: thread *t* holds ids *t + jT*, and its *j*-th
/// connection goes to server *(t + j) mod n*. So every server gets its share of connections and
/// every thread loads every server (with plain *id mod n*, `threads == n` would tie each thread to
/// one server, and a thread short of CPU would shortchange its server).
pub fn server_of(id: usize, threads: usize, servers: usize) -> usize {
    let threads = threads.max(1);
    (id % threads + id / threads) % servers.max(1)
}

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("invalid load: {0}")]
    Config(String),
    #[error("no connection to {addr} could be opened ({detail})")]
    NoConnection { addr: SocketAddr, detail: String },
    #[error("load thread failed: {0}")]
    Thread(#[from] io::Error),
    #[error("a load thread panicked")]
    Panicked,
}

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Per-thread counters read by the progress line; padded so threads do not share a cache line.
#[repr(align(128))]
#[derive(Debug, Default)]
struct ThreadCounters {
    replies: AtomicU64,
    errors: AtomicU64,
}

/// What the threads of a run share.
#[derive(Debug)]
struct Control {
    stop: AtomicBool,
    /// Measured requests left to send, for [`Stop::Requests`].
    budget: Option<AtomicU64>,
    connected: AtomicUsize,
    epoch: OnceLock<Instant>,
    counters: Vec<ThreadCounters>,
}

impl Control {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Takes up to `n` requests from the budget; 0 once it is spent.
    fn claim(&self, n: u64) -> u64 {
        let Some(budget) = &self.budget else {
            return n;
        };
        let mut left = budget.load(Ordering::Relaxed);
        loop {
            if left == 0 {
                return 0;
            }
            let take = n.min(left);
            match budget.compare_exchange_weak(
                left,
                left - take,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(now) => left = now,
            }
        }
    }
}

/// A snapshot for progress lines.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Time since the load started (`None` while connecting).
    pub elapsed: Option<Duration>,
    /// Replies so far, warm-up included.
    pub replies: u64,
    pub errors: u64,
}

/// What one thread hands back.
struct ThreadResult {
    recorder: Recorder,
    conns: usize,
    /// Connections and measured replies per server of [`LoadConfig::servers`].
    per_server: Vec<(usize, u64)>,
    /// When the thread stopped sending (run clock).
    sending_ended_ns: u64,
}

/// A run in progress.
pub struct LoadRun {
    config: LoadConfig,
    control: Arc<Control>,
    threads: Vec<JoinHandle<Result<ThreadResult, io::Error>>>,
}

impl LoadRun {
    /// Checks the configuration and starts the threads; they connect, then load.
    pub fn start(config: LoadConfig, workload: Arc<Workload>) -> Result<LoadRun, LoadError> {
        if config.conns == 0 || config.threads == 0 || config.inflight == 0 {
            return Err(LoadError::Config(
                "conns, threads and inflight must be at least 1".into(),
            ));
        }
        if let Some(rate) = config.rate {
            if !(rate.is_finite() && rate > 0.0) {
                return Err(LoadError::Config(format!("rate {rate} is not positive")));
            }
        }
        if workload.kinds().len() > u16::MAX as usize {
            return Err(LoadError::Config("too many request kinds".into()));
        }
        let threads = config.threads.min(config.conns);
        let config = LoadConfig { threads, ..config };
        let control = Arc::new(Control {
            stop: AtomicBool::new(false),
            budget: match config.stop {
                Stop::Requests(n) => Some(AtomicU64::new(n)),
                Stop::Duration(_) => None,
            },
            connected: AtomicUsize::new(0),
            epoch: OnceLock::new(),
            counters: (0..threads).map(|_| ThreadCounters::default()).collect(),
        });
        let barrier = Arc::new(Barrier::new(threads));
        let handles = (0..threads)
            .map(|index| {
                let (config, workload, control, barrier) = (
                    config.clone(),
                    workload.clone(),
                    control.clone(),
                    barrier.clone(),
                );
                std::thread::Builder::new()
                    .name(format!("ringrpc-bench-{index}"))
                    .spawn(move || run_thread(index, config, workload, control, barrier))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(LoadRun {
            config,
            control,
            threads: handles,
        })
    }

    /// Asks every thread to stop sending; replies in flight still get the drain period.
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::Relaxed);
    }

    /// A handle that stops the run from elsewhere (a signal handler).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let control = self.control.clone();
        move || control.stop.store(true, Ordering::Relaxed)
    }

    pub fn is_finished(&self) -> bool {
        self.threads.iter().all(|t| t.is_finished())
    }

    /// The warm-up and the measured period of this run, when it ends by time.
    pub fn planned(&self) -> Option<Duration> {
        match self.config.stop {
            Stop::Duration(d) => Some(self.config.warmup + d),
            Stop::Requests(_) => None,
        }
    }

    pub fn progress(&self) -> Progress {
        let sum = |f: fn(&ThreadCounters) -> &AtomicU64| {
            self.control
                .counters
                .iter()
                .map(|c| f(c).load(Ordering::Relaxed))
                .sum()
        };
        Progress {
            elapsed: self.control.epoch.get().map(|e| e.elapsed()),
            replies: sum(|c| &c.replies),
            errors: sum(|c| &c.errors),
        }
    }

    /// Waits for the threads and merges what they measured into a report; `info`'s load fields
    /// (threads, conns, inflight, rate, io, warm-up) are filled in here.
    pub fn finish(self, mut info: RunInfo) -> Result<Report, LoadError> {
        let mut recorder = Recorder::new();
        let mut conns = 0;
        let mut servers: Vec<ServerShare> = self
            .config
            .servers()
            .into_iter()
            .map(|addr| ServerShare {
                addr,
                conns: 0,
                requests: 0,
            })
            .collect();
        let mut sending_ended_ns = 0;
        let mut failure = None;
        for handle in self.threads {
            match handle.join() {
                Ok(Ok(result)) => {
                    recorder.merge(&result.recorder);
                    conns += result.conns;
                    for (share, (conns, requests)) in servers.iter_mut().zip(&result.per_server) {
                        share.conns += conns;
                        share.requests += requests;
                    }
                    sending_ended_ns = sending_ended_ns.max(result.sending_ended_ns);
                }
                Ok(Err(e)) => failure = Some(LoadError::Thread(e)),
                Err(_) => failure = Some(LoadError::Panicked),
            }
        }
        if let Some(failure) = failure {
            return Err(failure);
        }
        let config = &self.config;
        if conns == 0 {
            return Err(LoadError::NoConnection {
                addr: config.addr,
                detail: recorder.first_error().unwrap_or("no detail").to_string(),
            });
        }
        let warmup_ns = config.warmup.as_nanos() as u64;
        let end_ns = match config.stop {
            Stop::Duration(d) => sending_ended_ns.min(warmup_ns + d.as_nanos() as u64),
            Stop::Requests(_) => recorder.last_reply_ns,
        };
        info.threads = config.threads;
        info.conns = conns;
        info.inflight = config.inflight;
        info.rate = config.rate;
        info.io = runtime::resolve(config.io).name().to_string();
        info.warmup_s = config.warmup.as_secs_f64();
        info.addr = servers
            .iter()
            .map(|s| s.addr.to_string())
            .collect::<Vec<_>>()
            .join(",");
        Ok(Report {
            info,
            recorder,
            servers,
            duration_s: end_ns.saturating_sub(warmup_ns) as f64 / 1e9,
            interrupted: self.control.stopped(),
        })
    }
}

/// Starts a run and waits for its report.
pub fn run(
    config: LoadConfig,
    workload: Arc<Workload>,
    info: RunInfo,
) -> Result<Report, LoadError> {
    LoadRun::start(config, workload)?.finish(info)
}

/// One load thread: pin, build the runtime, connect, wait for the other threads, load.
fn run_thread(
    index: usize,
    config: LoadConfig,
    workload: Arc<Workload>,
    control: Arc<Control>,
    barrier: Arc<Barrier>,
) -> io::Result<ThreadResult> {
    if let Some(cpus) = &config.cpus {
        runtime::pin_current(cpus[index % cpus.len()]);
    }
    let conn_ids: Vec<usize> = (index..config.conns).step_by(config.threads).collect();
    let loaded = runtime::block_on(config.io, || {
        thread_load(
            index,
            conn_ids,
            config.clone(),
            workload,
            control,
            barrier.clone(),
        )
    });
    if loaded.is_err() {
        // The runtime did not build, so the load never reached the barrier: release the others.
        barrier.wait();
    }
    loaded
}

/// What the tasks of one thread share.
struct ThreadState {
    config: LoadConfig,
    workload: Arc<Workload>,
    control: Arc<Control>,
    counters_index: usize,
    pacer: Pacer,
    recorder: RefCell<Recorder>,
    warmup_ns: u64,
    /// End of sending for [`Stop::Duration`].
    stop_at_ns: Option<u64>,
    /// Open loop: nanoseconds between two sends of one connection.
    interval_ns: Option<f64>,
    /// Connections of the whole run (for open-loop phases).
    total_conns: usize,
    conns: RefCell<Vec<Rc<ConnState>>>,
    /// Measured successful replies per server (index into [`LoadConfig::servers`]).
    replies_per_server: RefCell<Vec<u64>>,
    writers_active: Cell<usize>,
    readers_active: Cell<usize>,
    readers_done: Event,
    /// Set once no more requests may be sent (time is up, or stop was asked).
    sending_over: Cell<bool>,
    sending_ended_ns: Cell<u64>,
}

impl ThreadState {
    fn clock(&self) -> &Clock {
        self.pacer.clock()
    }

    fn counters(&self) -> &ThreadCounters {
        &self.control.counters[self.counters_index]
    }

    /// True once sending must end; the first caller to find out wakes every writer.
    fn check_sending_over(&self, now_ns: u64) -> bool {
        if self.sending_over.get() {
            return true;
        }
        let over = self.control.stopped() || self.stop_at_ns.is_some_and(|end| now_ns >= end);
        if over {
            self.sending_over.set(true);
            self.sending_ended_ns.set(now_ns);
            for conn in self.conns.borrow().iter() {
                conn.room.notify();
            }
        }
        over
    }

    fn writer_finished(&self) {
        self.writers_active.set(self.writers_active.get() - 1);
        if self.writers_active.get() == 0 && !self.sending_over.get() {
            // Every writer ended on its own (the request budget is spent).
            self.sending_ended_ns.set(self.clock().now_ns());
        }
    }

    fn reader_finished(&self) {
        self.readers_active.set(self.readers_active.get() - 1);
        self.readers_done.notify();
    }

    async fn readers_finished(&self) {
        while self.readers_active.get() > 0 {
            self.readers_done.wait().await;
        }
    }
}

/// What the writer and the reader of one connection share.
struct ConnState {
    /// Index of its server in [`LoadConfig::servers`].
    server: usize,
    window: RefCell<Window>,
    /// The window has room again (or the writer should re-check whether to stop).
    room: Event,
    /// Wakes the reader when no reply is expected any more (the writer is done and the window
    /// empty), or the connection is aborted; it cancels the read in progress.
    reader_wake: Event,
    /// Interrupts a write in progress when the connection is aborted.
    writer_abort: Event,
    aborted: Cell<bool>,
    writer_done: Cell<bool>,
    /// The reader has stopped: the writer may now drop its half (which shuts down the write side;
    /// Go servers close the connection on that, replies in flight included).
    reader_exited: Cell<bool>,
    reader_exit: Event,
}

impl ConnState {
    fn new(inflight: usize, server: usize) -> Self {
        ConnState {
            server,
            window: RefCell::new(Window::new(inflight)),
            room: Event::new(),
            reader_wake: Event::new(),
            writer_abort: Event::new(),
            aborted: Cell::new(false),
            writer_done: Cell::new(false),
            reader_exited: Cell::new(false),
            reader_exit: Event::new(),
        }
    }

    /// Ends both tasks of the connection as soon as they next look.
    fn abort(&self) {
        self.aborted.set(true);
        self.room.notify();
        self.reader_wake.notify();
        self.writer_abort.notify();
    }
}

async fn thread_load(
    index: usize,
    conn_ids: Vec<usize>,
    config: LoadConfig,
    workload: Arc<Workload>,
    control: Arc<Control>,
    barrier: Arc<Barrier>,
) -> ThreadResult {
    let mut recorder = Recorder::new();
    let servers = config.servers();
    let mut per_server = vec![(0usize, 0u64); servers.len()];
    let mut streams = Vec::with_capacity(conn_ids.len());
    for id in conn_ids {
        let server = server_of(id, config.threads, servers.len());
        let addr = servers[server];
        let connecting = client::connect(addr);
        let tls = config.tls.clone();
        let connecting = async move {
            let stream = connecting.await?;
            match tls {
                None => Ok(Connection::Tcp(stream)),
                Some(tls) => {
                    let name =
                        rustls_pki_types::ServerName::try_from("localhost").expect("a valid name");
                    monoio_rustls::TlsConnector::from(tls)
                        .connect(name, stream)
                        .await
                        .map(|stream| Connection::Tls(Box::new(stream)))
                        .map_err(std::io::Error::other)
                }
            }
        };
        match monoio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(stream)) => {
                per_server[server].0 += 1;
                streams.push((id, server, stream));
            }
            Ok(Err(e)) => recorder.error(ErrorKind::Connect, 1, || format!("{addr}: {e}")),
            Err(_) => recorder.error(ErrorKind::Connect, 1, || {
                format!("{addr}: no answer within {CONNECT_TIMEOUT:?}")
            }),
        }
    }
    control
        .connected
        .fetch_add(streams.len(), Ordering::Relaxed);
    // Blocking here is fine: nothing else runs on this thread yet.
    barrier.wait();
    let clock = Clock::starting_at(*control.epoch.get_or_init(Instant::now));
    let total_conns = control.connected.load(Ordering::Relaxed);

    let warmup_ns = config.warmup.as_nanos() as u64;
    let state = Rc::new(ThreadState {
        stop_at_ns: match config.stop {
            Stop::Duration(d) => Some(warmup_ns + d.as_nanos() as u64),
            Stop::Requests(_) => None,
        },
        interval_ns: config.rate.map(|rate| total_conns as f64 * 1e9 / rate),
        config,
        workload,
        control,
        counters_index: index,
        pacer: Pacer::new(clock),
        recorder: RefCell::new(recorder),
        warmup_ns,
        total_conns,
        conns: RefCell::new(Vec::new()),
        replies_per_server: RefCell::new(vec![0; servers.len()]),
        writers_active: Cell::new(streams.len()),
        readers_active: Cell::new(streams.len()),
        readers_done: Event::new(),
        sending_over: Cell::new(false),
        sending_ended_ns: Cell::new(0),
    });
    let conns = streams.len();
    for (id, server, stream) in streams {
        let conn = Rc::new(ConnState::new(state.config.inflight, server));
        state.conns.borrow_mut().push(conn.clone());
        match stream {
            Connection::Tcp(stream) => {
                let (reader, writer) = stream.into_split();
                monoio::spawn(write_loop(state.clone(), conn.clone(), writer, id));
                monoio::spawn(read_loop(state.clone(), conn, reader));
            }
            Connection::Tls(stream) => {
                let (reader, writer) = (*stream).into_split();
                monoio::spawn(write_loop(state.clone(), conn.clone(), writer, id));
                monoio::spawn(read_loop(state.clone(), conn, reader));
            }
        }
    }

    // The pacer runs until every writer is done; it also notices the end of the run. It must be a
    // task of its own: monoio polls the main future in a loop of its own while it keeps waking
    // itself, so a pacer spinning there would starve the IO.
    let pacing = {
        let state = state.clone();
        monoio::spawn(async move {
            state
                .pacer
                .run(|now| {
                    state.check_sending_over(now);
                    state.writers_active.get() > 0
                })
                .await
        })
    };
    pacing.await;

    // Replies still in flight get the drain period; whatever is left then has timed out.
    if monoio::time::timeout(state.config.drain, state.readers_finished())
        .await
        .is_err()
    {
        for conn in state.conns.borrow().iter() {
            conn.abort();
        }
        state.readers_finished().await;
    }

    let sending_ended_ns = state.sending_ended_ns.get();
    let recorder = state.recorder.replace(Recorder::new());
    for (share, replies) in per_server.iter_mut().zip(state.replies_per_server.take()) {
        share.1 = replies;
    }
    ThreadResult {
        recorder,
        conns,
        per_server,
        sending_ended_ns,
    }
}

/// The writer of one connection: sends whatever the loop allows, in one write per batch.
async fn write_loop(
    state: Rc<ThreadState>,
    conn: Rc<ConnState>,
    mut writer: impl AsyncWriteRent,
    conn_id: usize,
) {
    let workload = state.workload.clone();
    let mut mixer = workload.mixer(conn_id as u64);
    let largest_frame = workload
        .kinds()
        .iter()
        .map(|k| k.frame.len())
        .max()
        .unwrap_or(0);
    let mut outbox = Outbox::with_capacity(largest_frame * state.config.inflight.min(256));
    // Open loop: the next intended send time, spread over the connections of the run.
    let mut next_send = state
        .interval_ns
        .map(|interval| interval * conn_id as f64 / state.total_conns.max(1) as f64);

    // Open loop: no send time at or after this one.
    let schedule_end = state.stop_at_ns.map_or(f64::INFINITY, |end| end as f64);

    loop {
        if conn.aborted.get() {
            break;
        }
        let now = state.clock().now_ns();
        if state.check_sending_over(now) {
            // An open loop still sends what came due before the end (the pacer may wake it late),
            // if the window lets it; a stalled server leaves them unsent.
            let owed = next_send.is_some_and(|next| next < schedule_end)
                && conn.window.borrow().room() > 0;
            if state.control.stopped() || !owed {
                break;
            }
        }
        let measuring = now >= state.warmup_ns;
        // Sends wanted now, less what the request budget still allows; `None` once it is spent.
        let claim = |n: u64| {
            if n == 0 || !measuring {
                return Some(n);
            }
            let granted = state.control.claim(n);
            (granted > 0).then_some(granted)
        };
        {
            let mut window = conn.window.borrow_mut();
            let room = window.room() as u64;
            match (next_send.as_mut(), state.interval_ns) {
                (Some(next), Some(interval)) => {
                    let due_until = (now as f64).min(schedule_end - 1.0);
                    let due = if *next <= due_until {
                        ((due_until - *next) / interval) as u64 + 1
                    } else {
                        0
                    };
                    let Some(n) = claim(due.min(room)) else {
                        break;
                    };
                    for _ in 0..n {
                        let kind = mixer.next_kind();
                        let intended = *next as u64;
                        let seq = window
                            .open(kind as u16, intended, intended >= state.warmup_ns)
                            .expect("room was checked");
                        outbox.push(workload.frame(kind), seq);
                        *next += interval;
                    }
                }
                _ => {
                    let Some(n) = claim(room) else {
                        break;
                    };
                    for _ in 0..n {
                        let kind = mixer.next_kind();
                        let seq = window
                            .open(kind as u16, now, measuring)
                            .expect("room was checked");
                        outbox.push(workload.frame(kind), seq);
                    }
                }
            }
        }

        if outbox.is_empty() {
            match next_send {
                // The next send is in the future: wait for its time.
                Some(next) if next as u64 > now => state.pacer.until(next as u64).await,
                // The window is full: wait for a reply.
                _ => conn.room.wait().await,
            }
            continue;
        }
        let written = monoio::select! {
            res = outbox.flush(&mut writer) => Some(res),
            _ = conn.writer_abort.wait() => None,
        };
        match written {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                state
                    .recorder
                    .borrow_mut()
                    .error(ErrorKind::Io, 1, || format!("write: {e}"));
                conn.abort();
                break;
            }
            None => break,
        }
    }

    // Open loop: send times that passed in the measured period without a send.
    if let (Some(next), Some(interval)) = (next_send, state.interval_ns) {
        let end = match state.stop_at_ns {
            Some(stop) => stop.min(state.clock().now_ns()),
            None => state.clock().now_ns(),
        };
        let from = next.max(state.warmup_ns as f64);
        if !state.sending_over.get() || conn.aborted.get() {
            // Ended by the budget or an error: nothing was left unsent by the schedule.
        } else if (from as u64) < end {
            let unsent = ((end as f64 - from) / interval).ceil() as u64;
            state
                .recorder
                .borrow_mut()
                .error(ErrorKind::Unsent, unsent, || {
                    "the connection's window stayed full past its send times".into()
                });
            state.counters().errors.fetch_add(unsent, Ordering::Relaxed);
        }
    }
    conn.writer_done.set(true);
    // Interrupting the reader cancels its read, and a cancelled read loses whatever it had
    // received: only wake it when nothing more is expected. Otherwise it stops after the last reply.
    if conn.window.borrow().is_empty() {
        conn.reader_wake.notify();
    }
    state.writer_finished();
    while !conn.reader_exited.get() {
        conn.reader_exit.wait().await;
    }
}

/// The reader of one connection: matches replies to requests and records them.
async fn read_loop(state: Rc<ThreadState>, conn: Rc<ConnState>, mut reader: impl AsyncReadRent) {
    let workload = state.workload.clone();
    let verify = state.config.verify;
    let mut inbox = client::inbox(state.config.read_size);
    // What becomes of requests still in flight when the reader stops.
    let mut lost_as = ErrorKind::Timeout;

    loop {
        if conn.aborted.get() || (conn.writer_done.get() && conn.window.borrow().is_empty()) {
            break;
        }
        let read = monoio::select! {
            res = inbox.fill(&mut reader) => Some(res),
            _ = conn.reader_wake.wait() => None,
        };
        let mut rec = state.recorder.borrow_mut();
        match read {
            None => continue,
            Some(Ok(0)) => {
                lost_as = ErrorKind::Closed;
                break;
            }
            Some(Err(e)) => {
                rec.error(ErrorKind::Io, 1, || format!("read: {e}"));
                state.counters().errors.fetch_add(1, Ordering::Relaxed);
                lost_as = ErrorKind::Closed;
                break;
            }
            Some(Ok(_)) => {}
        }

        let now = state.clock().now_ns();
        let mut window = conn.window.borrow_mut();
        let (mut replies, mut errors, mut measured) = (0u64, 0u64, 0u64);
        let mut broken = false;
        loop {
            let (header, len) = match inbox.peek() {
                Ok(Some(next)) => next,
                Ok(None) => break,
                Err(e) => {
                    rec.error(ErrorKind::Decode, 1, || e.to_string());
                    errors += 1;
                    broken = true;
                    break;
                }
            };
            // Server pushes and heartbeats are not replies to us.
            if !header.is_response() {
                inbox.skip(len);
                continue;
            }
            let Some(request) = window.close(header.seq()) else {
                rec.error(ErrorKind::UnknownSeq, 1, || format!("seq {}", header.seq()));
                errors += 1;
                inbox.skip(len);
                continue;
            };
            replies += 1;
            let kind = request.kind as usize;
            if header.status() != MessageStatus::Normal {
                errors += 1;
                let text = if rec.first_error().is_none() {
                    inbox.take(len).ok().map(|msg| {
                        msg.metadata()
                            .get_str(ERROR_KEY)
                            .unwrap_or("status Error without text")
                            .to_string()
                    })
                } else {
                    inbox.skip(len);
                    None
                };
                rec.failed_reply(ErrorKind::Status, request.measured, now, || {
                    format!(
                        "{}: {}",
                        workload.kinds()[kind].name,
                        text.unwrap_or_default()
                    )
                });
                continue;
            }
            if verify {
                let checked = match inbox.take(len) {
                    Ok(msg) => workload.check(kind, &msg).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(why) = checked {
                    errors += 1;
                    rec.failed_reply(ErrorKind::Verify, request.measured, now, || why);
                    continue;
                }
            } else {
                inbox.skip(len);
            }
            if request.measured {
                rec.success(now.saturating_sub(request.start_ns), now);
                measured += 1;
            }
        }
        drop(window);
        state.replies_per_server.borrow_mut()[conn.server] += measured;
        let counters = state.counters();
        counters.replies.fetch_add(replies, Ordering::Relaxed);
        if errors > 0 {
            counters.errors.fetch_add(errors, Ordering::Relaxed);
        }
        if replies > 0 {
            conn.room.notify();
        }
        if broken {
            lost_as = ErrorKind::Closed;
            break;
        }
    }

    // The connection is done: whatever is still in flight will not be answered.
    let lost = conn.window.borrow_mut().drain().count() as u64;
    if lost > 0 {
        let detail = match lost_as {
            ErrorKind::Timeout => format!(
                "{lost} requests unanswered after the {:?} drain period",
                state.config.drain
            ),
            _ => format!("{lost} requests in flight when the connection closed"),
        };
        state.recorder.borrow_mut().error(lost_as, lost, || detail);
        state.counters().errors.fetch_add(lost, Ordering::Relaxed);
    }
    conn.abort();
    conn.reader_exited.set(true);
    conn.reader_exit.notify();
    state.reader_finished();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_spread_over_servers_and_each_thread_loads_every_server() {
        for (conns, threads, servers) in [(12, 2, 2), (12, 2, 3), (6, 1, 3), (9, 3, 3), (7, 2, 3)] {
            let mut per_server = vec![0; servers];
            for t in 0..threads {
                let mine: Vec<usize> = (t..conns)
                    .step_by(threads)
                    .map(|id| server_of(id, threads, servers))
                    .collect();
                for s in 0..servers.min(mine.len()) {
                    assert!(
                        mine.contains(&s),
                        "{conns}/{threads}/{servers}: thread {t} {mine:?}"
                    );
                }
                for s in mine {
                    per_server[s] += 1;
                }
            }
            let (min, max) = (per_server.iter().min(), per_server.iter().max());
            assert!(
                max.unwrap() - min.unwrap() <= 1,
                "{conns}/{threads}/{servers}: {per_server:?}"
            );
        }
    }

    fn control(budget: Option<u64>) -> Control {
        Control {
            stop: AtomicBool::new(false),
            budget: budget.map(AtomicU64::new),
            connected: AtomicUsize::new(0),
            epoch: OnceLock::new(),
            counters: Vec::new(),
        }
    }

    #[test]
    fn budget_is_shared_out_until_spent() {
        let c = control(Some(10));
        assert_eq!(c.claim(4), 4);
        assert_eq!(c.claim(4), 4);
        assert_eq!(c.claim(4), 2);
        assert_eq!(c.claim(4), 0);
        let unlimited = control(None);
        assert_eq!(unlimited.claim(32), 32);
    }

    #[test]
    fn bad_configs_are_refused() {
        let workload = Arc::new(Workload::new(&Default::default()).unwrap());
        for config in [
            LoadConfig {
                conns: 0,
                ..LoadConfig::default()
            },
            LoadConfig {
                rate: Some(0.0),
                ..LoadConfig::default()
            },
        ] {
            assert!(matches!(
                LoadRun::start(config, workload.clone()),
                Err(LoadError::Config(_))
            ));
        }
    }

    #[test]
    fn nothing_listening_is_a_connection_error() {
        // Bind then drop: the port is very likely closed for the next instant.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let config = LoadConfig {
            addr,
            conns: 2,
            threads: 2,
            stop: Stop::Requests(10),
            warmup: Duration::ZERO,
            ..LoadConfig::default()
        };
        let workload = Arc::new(Workload::new(&Default::default()).unwrap());
        let err = run(config, workload, RunInfo::default()).unwrap_err();
        assert!(matches!(err, LoadError::NoConnection { .. }), "{err}");
    }
}
