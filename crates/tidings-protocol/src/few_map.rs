//! A map keyed by channel name that keeps a few entries in a plain vector (one cache line to look in) and becomes a hash map when it grows.
//!
//! A session usually follows one channel or a handful, and looks its
//! subscription (and its acknowledgement) up on every message. With 10,000
//! sessions, every session is cold when its next message arrives, and each
//! cache line a lookup reads is a miss: a hash table reads its control bytes
//! and then a bucket elsewhere in its allocation (two lines), a short vector
//! its first line. Past [`FEW`] entries the map switches to a hash map for
//! good, so a session with many channels keeps constant-time lookups.

use crate::ids::{ChannelMap, ChannelName};

/// Entries kept in the vector before the map switches to hashing.
pub(crate) const FEW: usize = 8;

/// A [`ChannelMap`] for maps that usually hold a few entries (see the module docs).
#[derive(Debug)]
pub(crate) enum FewMap<V> {
    /// Up to [`FEW`] entries, searched in order.
    Few(Vec<(ChannelName, V)>),
    /// More than [`FEW`] entries were held at some point.
    Many(ChannelMap<V>),
}

impl<V> Default for FewMap<V> {
    fn default() -> Self {
        FewMap::Few(Vec::new())
    }
}

impl<V> FewMap<V> {
    /// The value for `key`.
    pub(crate) fn get(&self, key: &ChannelName) -> Option<&V> {
        match self {
            FewMap::Few(v) => v.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            FewMap::Many(m) => m.get(key),
        }
    }

    /// The value for `key`, to change.
    pub(crate) fn get_mut(&mut self, key: &ChannelName) -> Option<&mut V> {
        match self {
            FewMap::Few(v) => v.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            FewMap::Many(m) => m.get_mut(key),
        }
    }

    /// True when `key` has a value.
    pub(crate) fn contains_key(&self, key: &ChannelName) -> bool {
        self.get(key).is_some()
    }

    /// Sets `key` to `value`; returns the value it replaced.
    pub(crate) fn insert(&mut self, key: ChannelName, value: V) -> Option<V> {
        match self {
            FewMap::Few(v) => {
                if let Some((_, old)) = v.iter_mut().find(|(k, _)| *k == key) {
                    return Some(std::mem::replace(old, value));
                }
                if v.len() < FEW {
                    v.push((key, value));
                    return None;
                }
                let mut m: ChannelMap<V> = v.drain(..).collect();
                m.insert(key, value);
                *self = FewMap::Many(m);
                None
            }
            FewMap::Many(m) => m.insert(key, value),
        }
    }

    /// The value for `key`, inserted with `make` when there is none.
    pub(crate) fn get_or_insert_with(
        &mut self,
        key: &ChannelName,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        if !self.contains_key(key) {
            self.insert(key.clone(), make());
        }
        match self.get_mut(key) {
            Some(v) => v,
            None => unreachable!("the value was just inserted"),
        }
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove(&mut self, key: &ChannelName) -> Option<V> {
        match self {
            FewMap::Few(v) => {
                let i = v.iter().position(|(k, _)| k == key)?;
                Some(v.swap_remove(i).1)
            }
            FewMap::Many(m) => m.remove(key),
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> usize {
        match self {
            FewMap::Few(v) => v.len(),
            FewMap::Many(m) => m.len(),
        }
    }

    /// The keys, in no particular order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &ChannelName> {
        let (few, many) = match self {
            FewMap::Few(v) => (v.as_slice(), None),
            FewMap::Many(m) => (&[][..], Some(m)),
        };
        few.iter()
            .map(|(k, _)| k)
            .chain(many.into_iter().flat_map(|m| m.keys()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Remove(u8),
        Bump(u8),
        GetOrInsert(u8, u32),
    }

    fn name(k: u8) -> ChannelName {
        match ChannelName::new(format!("room:{k}")) {
            Ok(n) => n,
            Err(e) => panic!("test name: {e}"),
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        // Keys from a range wider than FEW, so maps cross the switch both ways.
        let key = 0u8..24;
        prop_oneof![
            (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            key.clone().prop_map(Op::Remove),
            key.clone().prop_map(Op::Bump),
            (key, any::<u32>()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        ]
    }

    proptest! {
        /// Every operation answers as a `HashMap` does, before and after the switch.
        #[test]
        fn behaves_like_a_hash_map(ops in proptest::collection::vec(op(), 0..200)) {
            let mut few = FewMap::default();
            let mut model: HashMap<ChannelName, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => prop_assert_eq!(few.insert(name(k), v), model.insert(name(k), v)),
                    Op::Remove(k) => prop_assert_eq!(few.remove(&name(k)), model.remove(&name(k))),
                    Op::Bump(k) => {
                        if let Some(v) = few.get_mut(&name(k)) {
                            *v = v.wrapping_add(1);
                        }
                        if let Some(v) = model.get_mut(&name(k)) {
                            *v = v.wrapping_add(1);
                        }
                    }
                    Op::GetOrInsert(k, v) => {
                        let got = *few.get_or_insert_with(&name(k), || v);
                        prop_assert_eq!(got, *model.entry(name(k)).or_insert(v));
                    }
                }
                prop_assert_eq!(few.len(), model.len());
                for k in 0u8..24 {
                    prop_assert_eq!(few.get(&name(k)), model.get(&name(k)));
                    prop_assert_eq!(few.contains_key(&name(k)), model.contains_key(&name(k)));
                }
                let mut keys: Vec<&ChannelName> = few.keys().collect();
                let mut expected: Vec<&ChannelName> = model.keys().collect();
                keys.sort();
                expected.sort();
                prop_assert_eq!(keys, expected);
            }
        }
    }

    #[test]
    fn switches_to_hashing_past_the_few() {
        let mut m = FewMap::default();
        for k in 0..FEW as u8 {
            m.insert(name(k), k);
        }
        assert!(matches!(m, FewMap::Few(_)));
        m.insert(name(FEW as u8), 0);
        assert!(matches!(m, FewMap::Many(_)));
        assert_eq!(m.len(), FEW + 1);
        assert_eq!(m.get(&name(3)), Some(&3));
    }
}
