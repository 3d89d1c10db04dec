//! A least-recently-used cache with a byte budget, for what fetches by TID decode.
//!
//! Parts never change, so anything decoded from one — a granule's stored positions, a
//! page window of one column — stays true for as long as the part is named: entries are
//! never invalidated, only evicted when the budget is exceeded. Recency is a counter
//! per entry, ordered in a tree, so a lookup or an eviction costs a logarithm of the
//! entries however many a large budget holds.

use std::hash::Hash;

use rustc_hash::FxHashMap;

pub struct ByteLru<K, V> {
    entries: FxHashMap<K, Entry<V>>,
    /// Entries by their last use, oldest first.
    recency: std::collections::BTreeMap<u64, K>,
    budget: usize,
    bytes: usize,
    clock: u64,
}

struct Entry<V> {
    value: V,
    bytes: usize,
    used: u64,
}

impl<K: Hash + Eq + Clone, V: Clone> ByteLru<K, V> {
    pub fn new(budget: usize) -> Self {
        ByteLru {
            entries: FxHashMap::default(),
            recency: std::collections::BTreeMap::new(),
            budget,
            bytes: 0,
            clock: 0,
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
        self.clock += 1;
        if let Some(k) = self.recency.remove(&entry.used) {
            self.recency.insert(self.clock, k);
        }
        entry.used = self.clock;
        Some(entry.value.clone())
    }

    /// Inserts `value` of `bytes`; the least recently used entries go until the cache
    /// fits its budget again (the new entry always stays, however large).
    pub fn insert(&mut self, key: K, value: V, bytes: usize) {
        self.clock += 1;
        let entry = Entry {
            value,
            bytes,
            used: self.clock,
        };
        if let Some(old) = self.entries.insert(key.clone(), entry) {
            self.bytes -= old.bytes;
            self.recency.remove(&old.used);
        }
        self.recency.insert(self.clock, key);
        self.bytes += bytes;
        // The new entry is the most recent: it is the last to go, and stays alone.
        while self.bytes > self.budget && self.entries.len() > 1 {
            let Some((_, oldest)) = self.recency.pop_first() else {
                break;
            };
            if let Some(e) = self.entries.remove(&oldest) {
                self.bytes -= e.bytes;
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_least_recently_used_go_first() {
        let mut c = ByteLru::new(30);
        c.insert(1, "a", 10);
        c.insert(2, "b", 10);
        c.insert(3, "c", 10);
        assert_eq!(c.get(&1), Some("a"));
        c.insert(4, "d", 10);
        assert_eq!(c.get(&2), None, "2 was the least recently used");
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
                prop_assert_eq!(c.recency.len(), c.entries.len());
            }
        }
    }
}
