//! Enforcing the timeouts: the worker's sweep (runtime.rs: a task every 250 ms, the one that also
//! takes back quiet connections' buffers, and the request path when that task is overdue because
//! a saturated runtime fires no timer) advances the limits' coarse clock and calls [`sweep`] on
//! every connection, which closes it if it is past a timeout. A timeout is thus enforced about
//! one tick late at most.
//!
//! Closing is done to the socket, not the task: `shutdown(2)` on the connection's fd makes its
//! pending read (or write) complete, and the connection's own code then ends as it would at EOF
//! or on a failed write, returning its buffers. So the connection loop needs no timer and no
//! select, on either driver.
//!
//! - idle and frame-read timeouts: `shutdown(SHUT_RD)`, as graceful shutdown does: the read ends
//!   as at EOF, the replies to the frames already read still go out, then the connection closes;
//! - write timeout: `SO_LINGER` 0 and `shutdown(SHUT_RDWR)`: the write fails at once, the queued
//!   replies are dropped, and the close resets the connection so that the kernel frees its send
//!   buffer too instead of holding it for a peer that does not read.

use super::{ConnectionWatch, Reason, WorkerLimits};

/// Closes `watch`'s connection if it is past a timeout at coarse time `now`; each kind of close
/// happens (and is logged) once.
pub fn sweep(limits: &WorkerLimits, watch: &ConnectionWatch, now: u64) {
    let Some(reason) = watch.expired(now) else {
        return;
    };
    match (reason, watch.closed()) {
        (_, Some(Reason::WriteTimeout)) => return,
        (Reason::WriteTimeout, _) => reset(watch),
        (_, Some(_)) => return,
        _ => stop_reading(watch),
    }
    watch.set_closed(reason);
    limits.refusals.refuse(watch.peer(), reason);
}

/// The read ends as at EOF; what was read is still answered.
fn stop_reading(watch: &ConnectionWatch) {
    if let Some(fd) = watch.fd() {
        // SAFETY: shutdown(2) takes a plain fd number and touches no memory of ours. The fd is
        // still this connection's: the registry drops the watch in the same poll in which the
        // connection's stream is dropped (no await in between), and this runs on that thread.
        unsafe { libc::shutdown(fd, libc::SHUT_RD) };
    }
}

/// The pending write fails now and the close sends a reset, freeing the kernel's send buffer.
fn reset(watch: &ConnectionWatch) {
    if let Some(fd) = watch.fd() {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: as in `stop_reading` for the fd; setsockopt reads `linger`, a live local of the
        // size passed, and keeps no pointer to it.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
            libc::shutdown(fd, libc::SHUT_RDWR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ServerConfig;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn each_close_happens_once_and_a_write_timeout_escalates() {
        let config = ServerConfig::default()
            .idle_timeout(Some(Duration::from_millis(10)))
            .write_timeout(Some(Duration::from_millis(10)));
        let limits = Rc::new(WorkerLimits::new(&config, Default::default()));
        let watch = ConnectionWatch::new(None, "127.0.0.1:2".parse().unwrap(), limits.clone());
        let start = limits.now();
        sweep(&limits, &watch, start + 5);
        assert_eq!(watch.closed(), None);
        sweep(&limits, &watch, start + 11);
        sweep(&limits, &watch, start + 12);
        assert_eq!(watch.closed(), Some(Reason::IdleTimeout));
        let counts = limits.refusals.counts();
        assert_eq!(counts.get(Reason::IdleTimeout), 1, "closed and logged once");
        watch.write_started(100, 0);
        sweep(&limits, &watch, start + 30);
        sweep(&limits, &watch, start + 40);
        assert_eq!(watch.closed(), Some(Reason::WriteTimeout));
        assert_eq!(counts.get(Reason::WriteTimeout), 1);
    }
}
