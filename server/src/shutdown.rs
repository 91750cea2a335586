//! "Has shutdown been signalled?": one trigger, any number of listeners on any thread.
//!
//! Triggering drops the only sender of a channel, which wakes every receiver at once; that is the
//! whole mechanism. Workers wait on it once, off the request path. Only [`Shutdown::trigger`] (or
//! a signal, after [`Shutdown::on_signals`]) shuts down: every listener keeps the sender alive,
//! so dropping the last `Shutdown` does not stop a running server.

use std::sync::{Arc, Mutex};

/// The side that signals: the binary's signal handler, or a test.
#[derive(Clone)]
pub struct Shutdown {
    sender: Arc<Mutex<Option<flume::Sender<()>>>>,
    receiver: flume::Receiver<()>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        let (sender, receiver) = flume::bounded(1);
        Shutdown {
            sender: Arc::new(Mutex::new(Some(sender))),
            receiver,
        }
    }

    /// Signals shutdown to every listener; later calls do nothing.
    pub fn trigger(&self) {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    pub fn is_triggered(&self) -> bool {
        self.receiver.is_disconnected()
    }

    /// A listener for a worker.
    pub fn listener(&self) -> ShutdownListener {
        ShutdownListener {
            receiver: self.receiver.clone(),
            _sender: self.sender.clone(),
        }
    }

    /// Triggers on SIGINT or SIGTERM. Only one process-wide handler can exist.
    pub fn on_signals(&self) -> Result<(), ctrlc::Error> {
        let this = self.clone();
        ctrlc::set_handler(move || {
            if this.is_triggered() {
                tracing::warn!("second signal: exiting now");
                std::process::exit(130);
            }
            tracing::info!("signal received: shutting down gracefully");
            this.trigger();
        })
    }
}

/// Waits for the trigger.
#[derive(Clone)]
pub struct ShutdownListener {
    receiver: flume::Receiver<()>,
    /// Keeps the sender alive: only a trigger ends the wait.
    _sender: Arc<Mutex<Option<flume::Sender<()>>>>,
}

impl ShutdownListener {
    /// Completes once shutdown is triggered.
    pub async fn wait(&self) {
        // Nothing is ever sent: the only way out is the sender being dropped.
        let _ = self.receiver.recv_async().await;
    }

    /// Blocks the calling thread until shutdown is triggered (for threads outside any runtime).
    pub fn wait_blocking(&self) {
        let _ = self.receiver.recv();
    }
}
