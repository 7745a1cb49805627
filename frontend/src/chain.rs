//! A persistent stack: each push is one link onto the stack before it, so
//! a copy of the stack at any moment costs one reference count, whatever
//! its length. Each link also holds the digest of every item up to it, so
//! what a copy holds is named in constant time too. The op graph's shared
//! lists ([`crate::stacked::Stacked`]: environments, step variables) are
//! built on it.

use std::sync::Arc;

use crate::stacked::Digested;

/// One item pushed onto the links before it.
struct Link<T> {
    before: Option<Arc<Link<T>>>,
    item: T,
    /// blake3 of the digest before it and this item.
    digest: [u8; 32],
}

impl<T> Drop for Link<T> {
    /// Unlinks iteratively: a chain of thousands of pushes must not recurse.
    fn drop(&mut self) {
        let mut next = self.before.take();
        while let Some(link) = next {
            match Arc::try_unwrap(link) {
                Ok(mut owned) => next = owned.before.take(),
                Err(_) => break,
            }
        }
    }
}

/// Items pushed in order, shared with every copy taken before later pushes.
pub(crate) struct Chain<T> {
    last: Option<Arc<Link<T>>>,
}

impl<T> Default for Chain<T> {
    fn default() -> Self {
        Self { last: None }
    }
}

impl<T> Clone for Chain<T> {
    fn clone(&self) -> Self {
        Self {
            last: self.last.clone(),
        }
    }
}

impl<T: Digested> Chain<T> {
    /// This chain with `item` pushed on top (constant time).
    pub(crate) fn with(&self, item: T) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(&self.digest());
        item.hash_into(&mut h);
        Self {
            last: Some(Arc::new(Link {
                before: self.last.clone(),
                item,
                digest: *h.finalize().as_bytes(),
            })),
        }
    }
}

impl<T> Chain<T> {
    /// The items, the latest first.
    pub(crate) fn newest_first(&self) -> impl Iterator<Item = &T> {
        std::iter::successors(self.last.as_deref(), |link| link.before.as_deref())
            .map(|link| &link.item)
    }

    /// The digest of the items in the order they were pushed (all zeros
    /// for none), in constant time: equal digests, equal pushes.
    pub(crate) fn digest(&self) -> [u8; 32] {
        self.last.as_ref().map_or([0; 32], |link| link.digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Digested for u32 {
        fn hash_into(&self, h: &mut blake3::Hasher) {
            h.update(&self.to_le_bytes());
        }
    }

    #[test]
    fn a_copy_keeps_what_it_had_when_taken() {
        let a = Chain::default().with(1).with(2);
        let b = a.with(3);
        assert_eq!(a.newest_first().copied().collect::<Vec<_>>(), [2, 1]);
        assert_eq!(b.newest_first().copied().collect::<Vec<_>>(), [3, 2, 1]);
    }

    #[test]
    fn the_digest_names_the_pushes_in_their_order() {
        let a = Chain::default().with(1).with(2);
        assert_eq!(a.digest(), Chain::default().with(1).with(2).digest());
        assert_ne!(a.digest(), Chain::default().with(2).with(1).digest());
        assert_ne!(a.digest(), a.with(3).digest());
        assert_eq!(Chain::<u32>::default().digest(), [0; 32]);
    }

    #[test]
    fn a_long_chain_drops_without_recursing() {
        let mut chain = Chain::default();
        for i in 0..200_000 {
            chain = chain.with(i);
        }
        assert_eq!(chain.newest_first().next(), Some(&199_999));
        drop(chain);
    }
}
