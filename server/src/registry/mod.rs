//! Service registration: tells a registry (etcd today; ZooKeeper and Redis can follow) where this
//! server is, so Go `XClient`s discover it (rpcx-protocol.md section 10).
//!
//! - [`Registry`]: what a backend does — write this node's keys, keep its session (etcd lease,
//!   ZooKeeper session, Redis TTL) alive, remove the keys. Blocking calls: a backend runs on the
//!   registration thread and may block it (etcd runs its own tokio runtime there).
//! - [`Node`]: what is registered — the advertised `tcp@host:port` and each service's metadata,
//!   plus the `state=inactive` switch.
//! - [`Registration`]: the running handle. It owns one thread that registers, keeps alive, and on
//!   any failure retries until the registry answers again (logging each transition once). The
//!   workers never wait on it: nothing here is on the request path.
//!
//! It does not decide when to register: the caller starts it once its listeners are bound, and
//! calls [`Registration::deregister`] before it triggers the workers' drain (spec 4.13: clients
//! learn to stop sending before the server stops accepting).

#[cfg(feature = "etcd")]
pub mod etcd;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Why a registry call failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{registry} unreachable: {reason}")]
    Unreachable { registry: String, reason: String },
    #[error("{registry}: session lost ({reason})")]
    SessionLost { registry: String, reason: String },
    #[error("cannot start the registration thread: {0}")]
    Spawn(std::io::Error),
    #[error("the registration thread has stopped")]
    Stopped,
    #[error("no answer from the registration thread within {0:?}")]
    Timeout(Duration),
    #[error("bad advertised address {0:?}: a client cannot dial an unspecified address")]
    Unroutable(String),
    #[error("bad metadata {metadata:?} for service {service}: {reason}")]
    BadMetadata {
        service: String,
        metadata: String,
        reason: &'static str,
    },
}

/// A registry backend. Every call runs on the registration thread, never on a worker.
///
/// How the backends of rpcx-protocol.md 10 map onto it:
/// - etcd ([`etcd::EtcdRegistry`]): `register` grants a lease and puts the three-level keys on it,
///   `keep_alive` renews the lease, `deregister` deletes the node keys and revokes the lease.
/// - ZooKeeper: `register` opens a session and creates `BASE` and `BASE/Service` (persistent) and
///   `BASE/Service/tcp@host:port` (ephemeral, the metadata as data); `keep_alive` checks the
///   session is still connected; `deregister` deletes the node and closes the session.
/// - Redis: `register` sets each node key with `EX` a TTL, `keep_alive` sets it again,
///   `deregister` deletes it.
pub trait Registry: Send + 'static {
    /// Writes every key of `node`, opening a session first if there is none. Called again after
    /// any failure and after [`Node`] changes, so it must be idempotent.
    fn register(&mut self, node: &Node) -> Result<(), RegistryError>;

    /// Keeps the session alive; an error means it is lost and `register` will run again.
    fn keep_alive(&mut self, node: &Node) -> Result<(), RegistryError>;

    /// Removes this node's keys and ends the session.
    fn deregister(&mut self, node: &Node) -> Result<(), RegistryError>;

    /// How often `keep_alive` runs (for etcd, a third of the lease TTL).
    fn keep_alive_interval(&self) -> Duration;

    /// A name for logs, e.g. `etcd [127.0.0.1:2379] /rpcx_test`.
    fn describe(&self) -> String;
}

/// One service as registered: its name and its metadata, a URL query string as Go's
/// `RegisterName(name, rcvr, metadata)` takes (`weight=10&group=g1`, may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub name: String,
    pub metadata: String,
}

impl ServiceEntry {
    /// A service entry; the metadata must look like a query string (`k=v&k2=v2`).
    pub fn new(
        name: impl Into<String>,
        metadata: impl Into<String>,
    ) -> Result<Self, RegistryError> {
        let (name, metadata) = (name.into(), metadata.into());
        let bad = |reason| RegistryError::BadMetadata {
            service: name.clone(),
            metadata: metadata.clone(),
            reason,
        };
        if metadata.chars().any(|c| c.is_whitespace()) {
            return Err(bad("whitespace: escape it as a URL query would (%20)"));
        }
        if metadata.split('&').any(|pair| pair.starts_with('=')) {
            return Err(bad("a pair has an empty key"));
        }
        Ok(ServiceEntry { name, metadata })
    }
}

/// What this server registers: where clients dial it and what it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    address: String,
    services: Vec<ServiceEntry>,
    active: bool,
}

impl Node {
    /// A node reachable at `advertise` over plain TCP (`tcp@host:port`, the form Go dials).
    /// Refuses `0.0.0.0` and `::`: that is where the server listens, not where a client can go.
    pub fn tcp(
        advertise: std::net::SocketAddr,
        services: Vec<ServiceEntry>,
    ) -> Result<Self, RegistryError> {
        if advertise.ip().is_unspecified() || advertise.port() == 0 {
            return Err(RegistryError::Unroutable(advertise.to_string()));
        }
        Ok(Node {
            address: format!("tcp@{advertise}"),
            services,
            active: true,
        })
    }

    /// `tcp@host:port`: the last level of the key, which the Go client strips and dials.
    pub fn address(&self) -> &str {
        &self.address
    }

    pub fn services(&self) -> &[ServiceEntry] {
        &self.services
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Sets or clears `state=inactive`; Go's XClient skips inactive servers (spec 10.1).
    pub fn set_active(&mut self, active: bool) {
        self.active = active;
    }

    /// The metadata to write for `service`: its own, with `state` replaced by `state=inactive`
    /// while the node is inactive (and dropped while active, so a restart from inactive works).
    pub fn metadata(&self, service: &ServiceEntry) -> String {
        let mut pairs: Vec<&str> = service
            .metadata
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| self.keeps(pair))
            .collect();
        if !self.active {
            pairs.push("state=inactive");
        }
        pairs.join("&")
    }

    /// Whether a pair of the service's own metadata is written: while inactive, its `state=…`
    /// gives way to ours; while active, it is kept (it may say `inactive` on purpose).
    fn keeps(&self, pair: &str) -> bool {
        self.active || !(pair == "state" || pair.starts_with("state="))
    }
}

/// Settings of the registration thread.
#[derive(Debug, Clone)]
pub struct RegistrationOptions {
    /// Wait between attempts while the registry is unreachable. Default 1 s: a restarted etcd is
    /// back in about that long, and a failed attempt costs one connection attempt.
    pub retry_interval: Duration,
    /// Pause after the keys are deleted, before [`Registration::deregister`] returns and the
    /// caller stops accepting: the time for clients' watches to see the deletion. Default
    /// 500 ms (an etcd watch event reaches a client on the same network in milliseconds).
    pub settle: Duration,
    /// Bound on how long `deregister` and `set_active` wait for the registry. Default 3 s, so
    /// that an unreachable registry never holds up a shutdown for long.
    pub call_timeout: Duration,
}

impl Default for RegistrationOptions {
    fn default() -> Self {
        RegistrationOptions {
            retry_interval: Duration::from_secs(1),
            settle: Duration::from_millis(500),
            call_timeout: Duration::from_secs(3),
        }
    }
}

enum Command {
    SetActive(bool, mpsc::Sender<Result<(), RegistryError>>),
    Deregister(mpsc::Sender<Result<(), RegistryError>>),
}

/// A running registration: a thread that keeps `node` registered until [`deregister`] or drop.
///
/// [`deregister`]: Registration::deregister
pub struct Registration {
    commands: mpsc::Sender<Command>,
    registered: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    options: RegistrationOptions,
}

impl Registration {
    /// Starts the registration thread; it registers at once and keeps retrying while the registry
    /// is unreachable, so a registry that is down at start-up delays nothing else.
    pub fn start(
        registry: impl Registry,
        node: Node,
        options: RegistrationOptions,
    ) -> Result<Self, RegistryError> {
        let (commands, receiver) = mpsc::channel();
        let registered = Arc::new(AtomicBool::new(false));
        let flag = registered.clone();
        let retry = options.retry_interval;
        let thread = std::thread::Builder::new()
            .name("ringrpc-registry".into())
            .spawn(move || run(registry, node, receiver, flag, retry))
            .map_err(RegistryError::Spawn)?;
        Ok(Registration {
            commands,
            registered,
            thread: Some(thread),
            options,
        })
    }

    /// Whether the node's keys are in the registry now (as of the last registry call).
    pub fn is_registered(&self) -> bool {
        self.registered.load(Ordering::Acquire)
    }

    /// Blocks until the node is registered or `timeout` passes; true if registered.
    pub fn wait_registered(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while !self.is_registered() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Takes the server out of rotation (`false`: `state=inactive`) or back in, without stopping
    /// it. The new state is kept even if the registry is unreachable now, and written when it is
    /// back; the error says it was not written yet.
    pub fn set_active(&self, active: bool) -> Result<(), RegistryError> {
        self.call(|reply| Command::SetActive(active, reply))
    }

    /// Deletes the node's keys, ends the session, waits [`RegistrationOptions::settle`] and stops
    /// the thread. Bounded by [`RegistrationOptions::call_timeout`]: a dead registry costs at
    /// most that long (its keys then vanish with the session).
    pub fn deregister(mut self) -> Result<(), RegistryError> {
        let result = self.call(Command::Deregister);
        if result.is_ok() {
            std::thread::sleep(self.options.settle);
        }
        if let Some(thread) = self.thread.take() {
            // The thread exits right after answering; if it is stuck on the registry, leave it.
            if result.is_ok() {
                let _ = thread.join();
            }
        }
        result
    }

    fn call(
        &self,
        command: impl FnOnce(mpsc::Sender<Result<(), RegistryError>>) -> Command,
    ) -> Result<(), RegistryError> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(command(reply))
            .map_err(|_| RegistryError::Stopped)?;
        match answer.recv_timeout(self.options.call_timeout) {
            Ok(result) => result,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                Err(RegistryError::Timeout(self.options.call_timeout))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(RegistryError::Stopped),
        }
    }
}

impl Drop for Registration {
    /// Dropped without `deregister` (an error path): remove the keys anyway, without waiting.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let (reply, _answer) = mpsc::channel();
            let _ = self.commands.send(Command::Deregister(reply));
        }
    }
}

/// The registration thread: register, keep alive, retry; answer commands in between.
fn run(
    mut registry: impl Registry,
    mut node: Node,
    commands: mpsc::Receiver<Command>,
    registered: Arc<AtomicBool>,
    retry: Duration,
) {
    let name = registry.describe();
    // The last failure logged, so an outage is logged once, not once per retry.
    let mut failing: Option<String> = None;
    let mut ever_registered = false;
    loop {
        let attempt = if registered.load(Ordering::Acquire) {
            registry.keep_alive(&node)
        } else {
            registry.register(&node)
        };
        match attempt {
            Ok(()) => {
                if !registered.swap(true, Ordering::AcqRel) {
                    if ever_registered {
                        tracing::info!(node = node.address(), "{name}: registered again");
                    } else {
                        tracing::info!(
                            node = node.address(),
                            services = node.services().len(),
                            active = node.is_active(),
                            "{name}: registered"
                        );
                    }
                    ever_registered = true;
                }
                failing = None;
            }
            Err(e) => {
                let was_registered = registered.swap(false, Ordering::AcqRel);
                if failing.is_none() || was_registered {
                    tracing::warn!(
                        node = node.address(),
                        "{e}; retrying every {retry:?} until it answers"
                    );
                }
                failing = Some(e.to_string());
                // A lost session is re-established at once; an unreachable registry is retried.
                if was_registered {
                    continue;
                }
            }
        }
        let wait = if registered.load(Ordering::Acquire) {
            registry.keep_alive_interval()
        } else {
            retry
        };
        match commands.recv_timeout(wait) {
            Ok(Command::SetActive(active, reply)) => {
                node.set_active(active);
                let result = registry.register(&node);
                if result.is_err() {
                    registered.store(false, Ordering::Release);
                }
                tracing::info!(node = node.address(), active, "{name}: state changed");
                let _ = reply.send(result);
            }
            Ok(Command::Deregister(reply)) => {
                let result = registry.deregister(&node);
                registered.store(false, Ordering::Release);
                match &result {
                    Ok(()) => tracing::info!(node = node.address(), "{name}: deregistered"),
                    Err(e) => tracing::warn!(
                        node = node.address(),
                        "{e}: not deregistered (the keys vanish with the session)"
                    ),
                }
                let _ = reply.send(result);
                return;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = registry.deregister(&node);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn node(services: &[(&str, &str)]) -> Node {
        let services = services
            .iter()
            .map(|(n, m)| ServiceEntry::new(*n, *m).unwrap())
            .collect();
        Node::tcp("127.0.0.1:8972".parse().unwrap(), services).unwrap()
    }

    #[test]
    fn unspecified_addresses_are_refused() {
        for addr in ["0.0.0.0:8972", "[::]:8972", "127.0.0.1:0"] {
            assert!(matches!(
                Node::tcp(addr.parse().unwrap(), vec![]),
                Err(RegistryError::Unroutable(_))
            ));
        }
    }

    #[test]
    fn address_is_the_form_go_dials() {
        assert_eq!(node(&[]).address(), "tcp@127.0.0.1:8972");
    }

    #[test]
    fn inactive_replaces_state_and_active_keeps_metadata() {
        let mut n = node(&[("Arith", "weight=10&group=g1"), ("Echo", "state=active")]);
        let (arith, echo) = (n.services()[0].clone(), n.services()[1].clone());
        assert_eq!(n.metadata(&arith), "weight=10&group=g1");
        assert_eq!(n.metadata(&echo), "state=active");
        n.set_active(false);
        assert_eq!(n.metadata(&arith), "weight=10&group=g1&state=inactive");
        assert_eq!(n.metadata(&echo), "state=inactive");
        n.set_active(true);
        assert_eq!(n.metadata(&arith), "weight=10&group=g1");
    }

    #[test]
    fn metadata_must_look_like_a_query() {
        assert!(ServiceEntry::new("Arith", "").is_ok());
        assert!(ServiceEntry::new("Arith", "weight=1&group=a").is_ok());
        assert!(ServiceEntry::new("Arith", "weight= 1").is_err());
        assert!(ServiceEntry::new("Arith", "=1").is_err());
    }

    /// A registry in memory whose reachability a test switches.
    #[derive(Clone, Default)]
    struct Fake {
        up: Arc<AtomicBool>,
        log: Arc<Mutex<Vec<String>>>,
    }

    impl Registry for Fake {
        fn register(&mut self, node: &Node) -> Result<(), RegistryError> {
            self.check()?;
            let metadata = node.metadata(&node.services()[0]);
            self.log
                .lock()
                .unwrap()
                .push(format!("register {metadata}"));
            Ok(())
        }
        fn keep_alive(&mut self, _node: &Node) -> Result<(), RegistryError> {
            self.check()
        }
        fn deregister(&mut self, _node: &Node) -> Result<(), RegistryError> {
            self.check()?;
            self.log.lock().unwrap().push("deregister".into());
            Ok(())
        }
        fn keep_alive_interval(&self) -> Duration {
            Duration::from_millis(10)
        }
        fn describe(&self) -> String {
            "fake".into()
        }
    }

    impl Fake {
        fn check(&self) -> Result<(), RegistryError> {
            if self.up.load(Ordering::Acquire) {
                Ok(())
            } else {
                Err(RegistryError::Unreachable {
                    registry: "fake".into(),
                    reason: "down".into(),
                })
            }
        }
    }

    fn fast() -> RegistrationOptions {
        RegistrationOptions {
            retry_interval: Duration::from_millis(10),
            settle: Duration::ZERO,
            call_timeout: Duration::from_secs(2),
        }
    }

    #[test]
    fn registers_once_the_registry_answers_and_again_after_an_outage() {
        let fake = Fake::default();
        let reg = Registration::start(fake.clone(), node(&[("Arith", "")]), fast()).unwrap();
        assert!(!reg.wait_registered(Duration::from_millis(50)));
        fake.up.store(true, Ordering::Release);
        assert!(reg.wait_registered(Duration::from_secs(2)));
        fake.up.store(false, Ordering::Release);
        let deadline = Instant::now() + Duration::from_secs(2);
        while reg.is_registered() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(!reg.is_registered(), "a failed keep-alive must be noticed");
        fake.up.store(true, Ordering::Release);
        assert!(reg.wait_registered(Duration::from_secs(2)));
        reg.deregister().unwrap();
        let log = fake.log.lock().unwrap();
        assert_eq!(log.iter().filter(|l| l.starts_with("register")).count(), 2);
        assert_eq!(log.last().unwrap(), "deregister");
    }

    #[test]
    fn set_active_rewrites_the_metadata() {
        let fake = Fake::default();
        fake.up.store(true, Ordering::Release);
        let reg = Registration::start(fake.clone(), node(&[("Arith", "group=a")]), fast()).unwrap();
        assert!(reg.wait_registered(Duration::from_secs(2)));
        reg.set_active(false).unwrap();
        reg.set_active(true).unwrap();
        reg.deregister().unwrap();
        let log = fake.log.lock().unwrap().clone();
        assert_eq!(
            log,
            [
                "register group=a",
                "register group=a&state=inactive",
                "register group=a",
                "deregister"
            ]
        );
    }

    #[test]
    fn deregister_is_bounded_when_the_registry_is_down() {
        let fake = Fake::default();
        let reg = Registration::start(fake, node(&[("Arith", "")]), fast()).unwrap();
        let started = Instant::now();
        assert!(reg.deregister().is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
