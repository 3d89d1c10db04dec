//! A least-recently-used cache with a byte budget, for what fetches by TID decode.
//!
//! Parts never change, so anything decoded from one — a granule's stored positions, a
//! page window of one column — stays true for as long as the part is named: entries are
//! never invalidated, only evicted when the budget is exceeded. Eviction follows the
//! CLOCK approximation of least-recently-used: a hit only sets the entry's reference
//! bit (a fetch looks up a window per column per row, so hits must cost no more than a
//! hash lookup), and eviction walks the entries in insertion order, giving each one
//! that was used since the last pass a second chance.

use std::collections::VecDeque;
use std::hash::Hash;

use rustc_hash::FxHashMap;

pub struct ByteLru<K, V> {
    entries: FxHashMap<K, Entry<V>>,
    /// Keys in the order the clock hand visits them, with the generation they were
    /// queued under (an entry replaced since leaves a stale item behind).
    queue: VecDeque<(K, u64)>,
    budget: usize,
    bytes: usize,
    generation: u64,
}

struct Entry<V> {
    value: V,
    bytes: usize,
    referenced: bool,
    generation: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> ByteLru<K, V> {
    pub fn new(budget: usize) -> Self {
        ByteLru {
            entries: FxHashMap::default(),
            queue: VecDeque::new(),
            budget,
            bytes: 0,
            generation: 0,
        }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A new budget (a GUC changed); entries past it are evicted at the next insert.
    pub fn set_budget(&mut self, budget: usize) {
        self.budget = budget;
    }

    pub fn get(&mut self, key: &K) -> Option<V> {
        let entry = self.entries.get_mut(key)?;
        entry.referenced = true;
        Some(entry.value.clone())
    }

    /// Inserts `value` of `bytes`; entries go (least recently used first, in CLOCK's
    /// approximation) until the cache fits its budget again — the new entry always
    /// stays, however large.
    pub fn insert(&mut self, key: K, value: V, bytes: usize) {
        self.generation += 1;
        let entry = Entry {
            value,
            bytes,
            referenced: false,
            generation: self.generation,
        };
        if let Some(old) = self.entries.insert(key.clone(), entry) {
            self.bytes -= old.bytes;
        }
        self.queue.push_back((key.clone(), self.generation));
        self.bytes += bytes;
        while self.bytes > self.budget && self.entries.len() > 1 {
            let Some((k, generation)) = self.queue.pop_front() else {
                break;
            };
            let Some(e) = self.entries.get_mut(&k) else {
                continue; // evicted already
            };
            if e.generation != generation {
                continue; // replaced since: its newer item is further back
            }
            if k == key {
                self.queue.push_back((k, generation));
                continue;
            }
            if e.referenced {
                e.referenced = false;
                self.queue.push_back((k, generation));
                continue;
            }
            let bytes = e.bytes;
            self.entries.remove(&k);
            self.bytes -= bytes;
        }
        // Stale items must not outgrow the entries.
        if self.queue.len() > 2 * self.entries.len() + 16 {
            let entries = &self.entries;
            self.queue
                .retain(|(k, g)| entries.get(k).is_some_and(|e| e.generation == *g));
        }
    }

    /// The value for `key`, computed and inserted by `make` (value and its bytes) on a
    /// miss.
    pub fn get_or_insert<E>(
        &mut self,
        key: &K,
        make: impl FnOnce() -> Result<(V, usize), E>,
    ) -> Result<V, E> {
        if let Some(v) = self.get(key) {
            return Ok(v);
        }
        let (value, bytes) = make()?;
        self.insert(key.clone(), value.clone(), bytes);
        Ok(value)
    }
}

/// A least-recently-used list for values whose memory grows while they are cached (an
/// open part fetches more of its chunks as fetches use it): sizes are measured with
/// `size` whenever an entry is added, and the least recently used go until the rest fit
/// the budget — the newest always stays. Linear in the entries: it holds tens of parts.
pub struct GrowingLru<K, V> {
    /// Least recently used first.
    entries: Vec<(K, V)>,
    budget: u64,
}

impl<K: PartialEq, V: Clone> GrowingLru<K, V> {
    pub const fn new(budget: u64) -> Self {
        GrowingLru {
            entries: Vec::new(),
            budget,
        }
    }

    /// The value of `key`, now the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        let entry = self.entries.remove(i);
        let value = entry.1.clone();
        self.entries.push(entry);
        Some(value)
    }

    /// Adds `value` as the most recently used, then evicts what passes the budget.
    pub fn insert(&mut self, key: K, value: V, size: impl Fn(&V) -> u64) {
        self.entries.retain(|(k, _)| *k != key);
        self.entries.push((key, value));
        while self.entries.len() > 1
            && self.entries.iter().map(|(_, v)| size(v)).sum::<u64>() > self.budget
        {
            self.entries.remove(0);
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn entries_used_since_the_last_pass_stay() {
        let mut c = ByteLru::new(30);
        c.insert(1, "a", 10);
        c.insert(2, "b", 10);
        c.insert(3, "c", 10);
        assert_eq!(c.get(&1), Some("a"));
        c.insert(4, "d", 10);
        assert_eq!(c.get(&2), None, "2 was the oldest not used since");
        assert_eq!(
            (c.get(&1), c.get(&3), c.get(&4)),
            (Some("a"), Some("c"), Some("d"))
        );
        assert_eq!(c.bytes(), 30);
        // An entry larger than the budget stays alone.
        c.insert(5, "e", 100);
        assert_eq!((c.len(), c.get(&5)), (1, Some("e")));
        // Replacing an entry counts its bytes once.
        c.insert(5, "f", 7);
        assert_eq!((c.len(), c.bytes()), (1, 7));
    }

    #[test]
    fn misses_are_computed_once_and_errors_insert_nothing() {
        let mut c: ByteLru<u8, u32> = ByteLru::new(100);
        let mut calls = 0;
        for _ in 0..3 {
            let v = c
                .get_or_insert(&1, || {
                    calls += 1;
                    Ok::<_, ()>((42, 4))
                })
                .unwrap();
            assert_eq!(v, 42);
        }
        assert_eq!(calls, 1);
        assert!(c
            .get_or_insert(&2, || Err::<(u32, usize), _>("bad"))
            .is_err());
        assert_eq!(c.len(), 1);
    }

    proptest! {
        #[test]
        fn the_budget_holds_after_every_insert(ops in proptest::collection::vec((0u8..20, 1usize..40), 1..200)) {
            let mut c = ByteLru::new(100);
            for (k, bytes) in ops {
                c.insert(k, k, bytes);
                prop_assert!(c.bytes() <= 100 || c.len() == 1);
                prop_assert_eq!(c.get(&k), Some(k));
                prop_assert!(c.queue.len() <= 2 * c.entries.len() + 16);
            }
        }
    }

    #[test]
    fn growing_entries_are_measured_when_one_is_added() {
        use std::cell::Cell;
        use std::rc::Rc;
        let mut lru: GrowingLru<u32, Rc<Cell<u64>>> = GrowingLru::new(100);
        let size = |v: &Rc<Cell<u64>>| v.get();
        let a = Rc::new(Cell::new(10));
        lru.insert(1, a.clone(), size);
        lru.insert(2, Rc::new(Cell::new(10)), size);
        assert_eq!(lru.len(), 2);
        // 1 is used again (now the most recent), then grows past the budget with 2.
        assert!(lru.get(&1).is_some());
        a.set(90);
        lru.insert(3, Rc::new(Cell::new(1)), size);
        // 2, the least recently used, went; 1 and 3 fit.
        assert_eq!(
            (lru.get(&2).is_some(), lru.get(&1).is_some()),
            (false, true)
        );
        // 3 is used, so 1 is now the least recent; it grows, and a new entry makes 1 go.
        assert!(lru.get(&3).is_some());
        a.set(100);
        lru.insert(5, Rc::new(Cell::new(1)), size);
        assert_eq!(
            (lru.get(&1).is_some(), lru.get(&3).is_some()),
            (false, true)
        );
        // One entry larger than the budget stays.
        lru.insert(4, Rc::new(Cell::new(1000)), size);
        assert_eq!(lru.len(), 1);
        assert!(lru.get(&4).is_some());
        // Adding a key again replaces it.
        lru.insert(4, Rc::new(Cell::new(1)), size);
        assert_eq!(lru.len(), 1);
    }
}
