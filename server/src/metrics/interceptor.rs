//! [`MetricsInterceptor`]: one core's writer of its counters, on the interceptor hooks.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::{CoreMetrics, Series, LATENCY_BOUNDS_NS, MAX_SERIES};
use crate::clock::now_ns;
use crate::interceptor::Interceptor;
use crate::{Context, WorkerId};

/// One worker's metrics interceptor: finds a request's series in a core-local map and bumps its
/// counters.
pub struct MetricsInterceptor {
    worker: WorkerId,
    core: Arc<CoreMetrics>,
    /// Series by service, then method: looked up with the request's bytes, no allocation.
    index: RefCell<FxHashMap<Box<[u8]>, MethodIndex>>,
    /// The `_other` series, once the core has [`MAX_SERIES`].
    other: RefCell<Option<Rc<SeriesRef>>>,
}

/// One service's series, by method.
type MethodIndex = FxHashMap<Box<[u8]>, Rc<SeriesRef>>;

/// A core-local handle on a series (`Rc`, so a lookup clones no atomic reference count).
pub(super) struct SeriesRef(pub(super) Arc<Series>);

impl MetricsInterceptor {
    pub(super) fn new(worker: WorkerId, core: Arc<CoreMetrics>) -> Self {
        MetricsInterceptor {
            worker,
            core,
            index: RefCell::new(FxHashMap::default()),
            other: RefCell::new(None),
        }
    }

    /// This core's counters.
    #[cfg(test)]
    pub(super) fn core(&self) -> &CoreMetrics {
        &self.core
    }

    /// Which worker counts here.
    pub fn worker(&self) -> WorkerId {
        self.worker
    }

    pub(super) fn series(&self, service: &[u8], method: &[u8]) -> Rc<SeriesRef> {
        if let Some(series) = self
            .index
            .borrow()
            .get(service)
            .and_then(|methods| methods.get(method))
        {
            return series.clone();
        }
        self.add_series(service, method)
    }

    #[cold]
    fn add_series(&self, service: &[u8], method: &[u8]) -> Rc<SeriesRef> {
        // Set only once the core is full: names past the cap take no lock.
        if let Some(other) = self.other.borrow().as_ref() {
            return other.clone();
        }
        let mut list = self.core.series.lock().expect("metrics lock");
        if list.len() >= MAX_SERIES {
            return self
                .other
                .borrow_mut()
                .get_or_insert_with(|| {
                    let series = Arc::new(Series::new("_other".into(), "_other".into()));
                    list.push(series.clone());
                    Rc::new(SeriesRef(series))
                })
                .clone();
        }
        let series = Arc::new(Series::new(
            String::from_utf8_lossy(service).into_owned(),
            String::from_utf8_lossy(method).into_owned(),
        ));
        list.push(series.clone());
        let series = Rc::new(SeriesRef(series));
        self.index
            .borrow_mut()
            .entry(service.into())
            .or_default()
            .insert(method.into(), series.clone());
        series
    }
}

impl Interceptor for MetricsInterceptor {
    fn inspects_results(&self) -> bool {
        false
    }

    fn on_connect(&self, _peer: SocketAddr) -> Result<(), crate::Refusal> {
        self.core.connections_opened.add(1);
        Ok(())
    }

    fn on_close(&self, _peer: SocketAddr) {
        self.core.connections_closed.add(1);
    }

    #[inline]
    fn on_read(&self, bytes: usize) {
        self.core.bytes_read.add(bytes as u64);
    }

    #[inline]
    fn on_write(&self, bytes: usize) {
        self.core.bytes_written.add(bytes as u64);
    }

    #[inline]
    fn before_call(&self, ctx: &Context) -> Result<(), crate::Rejection> {
        self.core.requests_started.add(1);
        ctx.set_started(now_ns());
        Ok(())
    }

    #[inline]
    fn after_reply(&self, ctx: &Context, error: Option<&str>) {
        let request = ctx.request();
        let series = self.series(request.service_path(), request.service_method());
        let series = &series.0;
        series.requests.add(1);
        if error.is_some() {
            series.errors.add(1);
        }
        match ctx.started() {
            Some(started) => {
                let ns = now_ns().saturating_sub(started);
                let bucket = LATENCY_BOUNDS_NS
                    .iter()
                    .position(|&bound| ns <= bound)
                    .unwrap_or(LATENCY_BOUNDS_NS.len());
                series.buckets[bucket].add(1);
                series.latency_ns.add(ns);
            }
            // Refused by an interceptor installed before this one: not timed, but counted as
            // started so that the in-flight gauge stays right.
            None => self.core.requests_started.add(1),
        }
        self.core.requests_finished.add(1);
    }
}
