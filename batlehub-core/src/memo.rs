//! An in-memory cache of immutable values derived from content-addressed bytes.
//!
//! Keys name content (a sha256 plus whatever else the value depends on), so an entry never
//! goes stale: a changed document has a new digest and a new key. Entries are weighted
//! (bytes, roughly) and the cache empties itself when its budget is exceeded, which keeps
//! memory bounded without bookkeeping on the hot path.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

/// A value, its weight, and whether it was read since the last eviction pass.
type Entry = (Arc<dyn Any + Send + Sync>, usize, bool);

/// One build in flight: the requests that want the same key wait on its lock and take the
/// value it left, even when the value is too heavy to keep.
type Flight = Arc<tokio::sync::Mutex<Option<Arc<dyn Any + Send + Sync>>>>;

/// Builds reading less than this run inline; bigger ones (parsing a large document) run on
/// the blocking pool so they never hold an async worker.
pub const INLINE_SIZE: usize = 256 * 1024;

/// A bounded map from content keys to shared, immutable values of any type.
pub struct MemoCache {
    budget: usize,
    state: Mutex<State>,
    flights: Mutex<HashMap<String, Flight>>,
}

#[derive(Default)]
struct State {
    used: usize,
    map: HashMap<String, Entry>,
}

impl fmt::Debug for MemoCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.lock();
        f.debug_struct("MemoCache")
            .field("budget", &self.budget)
            .field("used", &s.used)
            .field("entries", &s.map.len())
            .finish()
    }
}

impl MemoCache {
    /// A cache holding at most about `budget` bytes (as weighed by the callers).
    #[must_use]
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            state: Mutex::new(State::default()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    /// How many values are cached.
    #[must_use]
    pub fn len(&self) -> usize {
        self.state.lock().map.len()
    }

    /// Whether nothing is cached.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value cached under `key`, if it is a `T`.
    #[must_use]
    pub fn get<T: Any + Send + Sync>(&self, key: &str) -> Option<Arc<T>> {
        let hit = {
            let mut s = self.state.lock();
            let entry = s.map.get_mut(key)?;
            entry.2 = true;
            entry.0.clone()
        };
        hit.downcast().ok()
    }

    /// Stores `value` under `key`, weighing `weight` bytes; a value heavier than half the
    /// budget is not kept.
    pub fn insert<T: Any + Send + Sync>(&self, key: String, value: Arc<T>, weight: usize) {
        if weight > self.budget / 2 {
            return;
        }
        let mut s = self.state.lock();
        if s.used + weight > self.budget {
            // Evict down to three quarters of the budget, second chance: entries read since
            // the last pass are spared once (their mark cleared), so what every request
            // reads (a hot rendering) outlives what was read once (the bytes it came from).
            let target = self.budget / 4 * 3;
            let mut freed = std::collections::HashSet::new();
            let mut used = s.used;
            for spare_read in [true, false] {
                for (k, (_, w, read)) in &mut s.map {
                    if used + weight <= target {
                        break;
                    }
                    if freed.contains(k) {
                        continue;
                    }
                    if spare_read && *read {
                        *read = false;
                        continue;
                    }
                    used -= *w;
                    freed.insert(k.clone());
                }
            }
            for k in freed {
                s.map.remove(&k);
            }
            s.used = used;
        }
        if let Some((_, old, _)) = s.map.insert(key, (value, weight, false)) {
            s.used -= old;
        }
        s.used += weight;
    }

    /// The value under `key`, or `build`'s (stored when it succeeds).
    ///
    /// # Errors
    /// `build`'s error.
    pub fn get_or_try<T, E>(
        &self,
        key: &str,
        weight: usize,
        build: impl FnOnce() -> Result<T, E>,
    ) -> Result<Arc<T>, E>
    where
        T: Any + Send + Sync,
    {
        if let Some(hit) = self.get(key) {
            return Ok(hit);
        }
        let value = Arc::new(build()?);
        self.insert(key.to_owned(), value.clone(), weight);
        Ok(value)
    }

    /// The value under `key`, or `build`'s, built once for all the requests that ask for
    /// `key` meanwhile (single flight: a burst of requests for a large document parses it
    /// once, whether or not the result is then small enough to keep). `build` returns the
    /// value and what it weighs; `size` (the bytes it reads, say) decides where it runs: on
    /// the blocking pool from a few hundred KiB up.
    ///
    /// # Errors
    /// `build`'s error (each waiter then tries its own build, one at a time);
    /// [`Error::Internal`](crate::Error::Internal) when the build panicked.
    pub async fn get_or_build<T>(
        &self,
        key: &str,
        size: usize,
        build: impl FnOnce() -> crate::Result<(T, usize)> + Send + 'static,
    ) -> crate::Result<Arc<T>>
    where
        T: Any + Send + Sync,
    {
        self.get_or_load(key, async move {
            if size < INLINE_SIZE {
                build()
            } else {
                tokio::task::spawn_blocking(build)
                    .await
                    .map_err(|e| crate::Error::internal(format!("memo build failed: {e}")))?
            }
        })
        .await
    }

    /// Like [`get_or_build`](Self::get_or_build) with an asynchronous `load` (reading a
    /// document from storage, say), awaited once for all the requests that ask meanwhile.
    ///
    /// # Errors
    /// `load`'s error (each waiter then tries its own load, one at a time).
    pub async fn get_or_load<T>(
        &self,
        key: &str,
        load: impl Future<Output = crate::Result<(T, usize)>>,
    ) -> crate::Result<Arc<T>>
    where
        T: Any + Send + Sync,
    {
        if let Some(hit) = self.get(key) {
            return Ok(hit);
        }
        let flight = FlightGuard {
            flights: &self.flights,
            key,
            flight: self
                .flights
                .lock()
                .entry(key.to_owned())
                .or_default()
                .clone(),
        };
        let mut slot = flight.flight.lock().await;
        if let Some(done) = slot.as_ref()
            && let Ok(value) = done.clone().downcast::<T>()
        {
            return Ok(value);
        }
        if let Some(hit) = self.get(key) {
            return Ok(hit);
        }
        let (value, weight) = load.await?;
        let value = Arc::new(value);
        *slot = Some(value.clone());
        self.insert(key.to_owned(), value.clone(), weight);
        Ok(value)
    }

    /// A value derived from `state`, an `Arc` that its source replaces whenever it changes
    /// (as [`Index::package_shared`](crate::Index::package_shared) does): the value cached
    /// under `key` is reused while it was derived from this very `Arc`, and rebuilt (and
    /// stored) otherwise. Holding `state` keeps its address from being reused meanwhile.
    ///
    /// # Errors
    /// `build`'s error.
    pub fn derived<S, T, E>(
        &self,
        key: String,
        state: &Arc<S>,
        weight: usize,
        build: impl FnOnce(&S) -> Result<T, E>,
    ) -> Result<Arc<T>, E>
    where
        S: Any + Send + Sync,
        T: Any + Send + Sync,
    {
        if let Some(hit) = self.get::<(Arc<S>, Arc<T>)>(&key)
            && Arc::ptr_eq(&hit.0, state)
        {
            return Ok(hit.1.clone());
        }
        let value = Arc::new(build(state)?);
        self.insert(key, Arc::new((state.clone(), value.clone())), weight);
        Ok(value)
    }
}

/// Forgets a flight when its last waiter leaves (done, failed or cancelled), and with it
/// the value it may be holding.
struct FlightGuard<'a> {
    flights: &'a Mutex<HashMap<String, Flight>>,
    key: &'a str,
    flight: Flight,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock();
        if flights
            .get(self.key)
            .is_some_and(|f| Arc::ptr_eq(f, &self.flight) && Arc::strong_count(f) == 2)
        {
            flights.remove(self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_shared_and_typed() {
        let c = MemoCache::new(1000);
        let a = c
            .get_or_try::<_, ()>("k", 10, || Ok(String::from("v")))
            .expect("built");
        let b = c
            .get_or_try::<String, ()>("k", 10, || panic!("cached"))
            .expect("cached");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(c.get::<u32>("k").is_none(), "wrong type is a miss");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_builds_once_even_when_too_heavy_to_keep() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = Arc::new(MemoCache::new(1024 * 1024));
        let builds = Arc::new(AtomicUsize::new(0));
        let heavy = 10 * 1024 * 1024; // over a quarter of the budget: never kept
        let burst = |cache: Arc<MemoCache>, builds: Arc<AtomicUsize>| async move {
            let tasks: Vec<_> = (0..16)
                .map(|_| {
                    let (cache, builds) = (cache.clone(), builds.clone());
                    tokio::spawn(async move {
                        cache
                            .get_or_build("big-doc", heavy, move || {
                                builds.fetch_add(1, Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(100));
                                Ok((String::from("parsed"), heavy))
                            })
                            .await
                    })
                })
                .collect();
            for t in tasks {
                assert_eq!(*t.await.expect("task").expect("built"), "parsed");
            }
        };
        burst(cache.clone(), builds.clone()).await;
        assert_eq!(builds.load(Ordering::SeqCst), 1, "one parse for the burst");
        assert!(cache.flights.lock().is_empty(), "the flight is forgotten");
        assert!(
            cache.get::<String>("big-doc").is_none(),
            "too heavy to keep"
        );
        burst(cache.clone(), builds.clone()).await;
        assert_eq!(
            builds.load(Ordering::SeqCst),
            2,
            "a later burst builds again"
        );

        // A cancelled waiter does not leave its flight behind.
        let slow = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_or_build("cancelled", heavy, || {
                        std::thread::sleep(std::time::Duration::from_millis(200));
                        Ok((1u8, 1))
                    })
                    .await
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        slow.abort();
        let _ = slow.await;
        assert!(cache.flights.lock().is_empty());
    }

    #[test]
    fn what_is_read_outlives_what_is_not() {
        let c = MemoCache::new(100);
        c.insert("hot".into(), Arc::new(0u8), 30);
        for i in 0..20 {
            assert!(c.get::<u8>("hot").is_some(), "evicted after {i} inserts");
            c.insert(format!("cold{i}"), Arc::new(i), 30);
        }
    }

    #[test]
    fn the_budget_bounds_memory() {
        let c = MemoCache::new(100);
        for i in 0..50 {
            c.insert(format!("k{i}"), Arc::new(i), 20);
        }
        let s = c.state.lock();
        assert!(s.used <= 100, "used {}", s.used);
        assert!(s.map.len() <= 5);
        drop(s);
        c.insert("huge".into(), Arc::new(0u8), 60);
        assert!(c.get::<u8>("huge").is_none(), "over half the budget");
    }

    #[test]
    fn derived_values_follow_their_state() {
        let c = MemoCache::new(1000);
        let one = Arc::new(1u32);
        let a = c
            .derived::<_, _, ()>("k".into(), &one, 1, |s| Ok(s * 10))
            .expect("built");
        let b = c
            .derived::<_, u32, ()>("k".into(), &one, 1, |_| panic!("reused"))
            .expect("cached");
        assert!(Arc::ptr_eq(&a, &b));
        // Equal content, another state: rebuilt.
        let other = Arc::new(1u32);
        let d = c
            .derived::<_, _, ()>("k".into(), &other, 1, |s| Ok(s * 20))
            .expect("rebuilt");
        assert_eq!(*d, 20);
    }

    #[test]
    fn errors_are_not_cached() {
        let c = MemoCache::new(100);
        assert!(c.get_or_try::<u8, _>("k", 1, || Err("no")).is_err());
        assert_eq!(*c.get_or_try::<u8, ()>("k", 1, || Ok(7)).expect("built"), 7);
    }
}
