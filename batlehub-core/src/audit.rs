//! The audit log writer: events are queued on the request path and written in batches by a
//! background task, so auditing never adds a database round trip to a request.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use crate::model::AuditEvent;
use crate::store::Index;

/// The most events queued before new ones are dropped (and a warning logged).
const QUEUE: usize = 65_536;
/// The most events written in one transaction.
const BATCH: usize = 512;

enum Msg {
    Event(Box<AuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// Queues audit events and writes them to the index in batches.
#[derive(Clone)]
pub struct AuditSink {
    index: Arc<dyn Index>,
    tx: Arc<OnceLock<mpsc::Sender<Msg>>>,
    drops: Arc<Drops>,
}

/// Events dropped on a full queue, and when that was last logged.
struct Drops {
    count: AtomicU64,
    epoch: Instant,
    /// Seconds since `epoch` (plus one) of the last log line.
    logged_at: AtomicU64,
}

impl fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditSink")
            .field("started", &self.tx.get().is_some())
            .finish()
    }
}

impl AuditSink {
    /// A sink writing to `index`; its writer task starts with the first event.
    #[must_use]
    pub fn new(index: Arc<dyn Index>) -> Self {
        Self {
            index,
            tx: Arc::new(OnceLock::new()),
            drops: Arc::new(Drops {
                count: AtomicU64::new(0),
                epoch: Instant::now(),
                logged_at: AtomicU64::new(0),
            }),
        }
    }

    fn sender(&self) -> Option<&mpsc::Sender<Msg>> {
        if let Some(tx) = self.tx.get() {
            return Some(tx);
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            handle.spawn(writer(self.index.clone(), rx));
            tx
        }))
    }

    /// Queues an event; never waits. When the writer falls so far behind that its queue is
    /// full, the event is dropped and counted; the count is logged at most once a second.
    pub fn record(&self, event: AuditEvent) {
        match self.sender() {
            Some(tx) => {
                if tx.try_send(Msg::Event(Box::new(event))).is_err() {
                    self.dropped(1);
                }
            }
            None => tracing::warn!("no async runtime; audit event dropped"),
        }
    }

    fn dropped(&self, n: u64) {
        let total = self.drops.count.fetch_add(n, Ordering::Relaxed) + n;
        let now = self.drops.epoch.elapsed().as_secs() + 1;
        let last = self.drops.logged_at.load(Ordering::Relaxed);
        if now > last
            && self
                .drops
                .logged_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                dropped_total = total,
                "audit queue full: events dropped (the audit writer cannot keep up)"
            );
        }
    }

    /// How many events were dropped because the queue was full.
    #[must_use]
    pub fn dropped_events(&self) -> u64 {
        self.drops.count.load(Ordering::Relaxed)
    }

    /// Waits until every event queued so far is written.
    pub async fn flush(&self) {
        let Some(tx) = self.sender() else { return };
        let (done, wait) = oneshot::channel();
        if tx.send(Msg::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn writer(index: Arc<dyn Index>, mut rx: mpsc::Receiver<Msg>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiters = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(*e),
                Msg::Flush(w) => waiters.push(w),
            }
            if batch.len() < BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            if let Err(e) = index.append_audit(&batch).await {
                tracing::error!(error = %e, events = batch.len(), "audit write failed");
            }
            batch.clear();
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}
