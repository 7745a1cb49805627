//! SHA-256 whose state can be recorded and resumed (issue 19: a layer
//! blob that starts with the bytes of an earlier one need not hash them
//! again). The hasher keeps the compression function's raw state (eight
//! words) after every [`CHECKPOINT`] bytes; a later hasher resumes from
//! one of those states at its offset and hashes only what follows. The
//! padding (FIPS 180-4 §5.1.1) is written here, since the `sha2` crate
//! keeps its own state private; `sha2::block_api::compress256` is the
//! same (SHA-NI where the CPU has it) compression its `Sha256` uses.

use sha2::block_api::compress256;

/// Bytes between two recorded states: a resumed hash re-reads less than
/// this of what it shares, and a 227 MB layer keeps 7 KiB of states.
pub const CHECKPOINT: u64 = 1 << 20;

/// The compression function's state between two 64-byte blocks.
pub type Midstate = [u32; 8];

/// The initial state (FIPS 180-4 §5.3.3).
const INITIAL: Midstate = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// A SHA-256 hasher recording its state at every multiple of
/// [`CHECKPOINT`].
#[derive(Debug, Clone)]
pub struct CheckpointedSha256 {
    state: Midstate,
    /// Bytes of an unfinished block.
    block: [u8; 64],
    filled: usize,
    /// Bytes hashed so far (those in `block` included).
    len: u64,
    /// `checkpoints[i]`: the state after `(i + 1) * CHECKPOINT` bytes.
    checkpoints: Vec<Midstate>,
}

impl Default for CheckpointedSha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl CheckpointedSha256 {
    /// A hasher of nothing yet.
    pub fn new() -> Self {
        Self {
            state: INITIAL,
            block: [0; 64],
            filled: 0,
            len: 0,
            checkpoints: Vec::new(),
        }
    }

    /// A hasher that has hashed `checkpoints.len() * CHECKPOINT` bytes
    /// whose recorded states were `checkpoints` (the last one is where it
    /// resumes).
    pub fn resume(checkpoints: Vec<Midstate>) -> Self {
        Self {
            state: checkpoints.last().copied().unwrap_or(INITIAL),
            block: [0; 64],
            filled: 0,
            len: checkpoints.len() as u64 * CHECKPOINT,
            checkpoints,
        }
    }

    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was hashed yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The states recorded so far, one per [`CHECKPOINT`] bytes.
    pub fn checkpoints(&self) -> &[Midstate] {
        &self.checkpoints
    }

    /// Hashes `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            // Never cross a checkpoint within one call of the compression,
            // so that the state there is seen.
            let to_checkpoint = CHECKPOINT - self.len % CHECKPOINT;
            let take = data
                .len()
                .min(usize::try_from(to_checkpoint).unwrap_or(usize::MAX));
            let (now, rest) = data.split_at(take);
            self.absorb(now);
            data = rest;
            if self.len.is_multiple_of(CHECKPOINT) {
                debug_assert_eq!(self.filled, 0, "a checkpoint is block-aligned");
                self.checkpoints.push(self.state);
            }
        }
    }

    fn absorb(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.filled > 0 {
            let take = data.len().min(64 - self.filled);
            self.block[self.filled..self.filled + take].copy_from_slice(&data[..take]);
            self.filled += take;
            data = &data[take..];
            if self.filled < 64 {
                return;
            }
            compress256(&mut self.state, &[self.block]);
            self.filled = 0;
        }
        let (blocks, tail) = data.as_chunks::<64>();
        compress256(&mut self.state, blocks);
        self.block[..tail.len()].copy_from_slice(tail);
        self.filled = tail.len();
    }

    /// The digest of everything hashed: the 32 bytes of SHA-256.
    pub fn finalize(&self) -> [u8; 32] {
        let mut state = self.state;
        let mut last = [0u8; 128];
        last[..self.filled].copy_from_slice(&self.block[..self.filled]);
        last[self.filled] = 0x80;
        // The length in bits ends the last block: one block when it fits
        // after the 0x80 byte, two when not.
        let blocks = if self.filled < 56 { 1 } else { 2 };
        let end = blocks * 64;
        last[end - 8..end].copy_from_slice(&(self.len.wrapping_mul(8)).to_be_bytes());
        let (full, _) = last[..end].as_chunks::<64>();
        compress256(&mut state, full);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use sha2::{Digest, Sha256};

    use super::*;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn digests_equal_sha256_at_every_padding_length() {
        // 0..=200 covers the one- and two-block paddings around 55/56/64.
        let lengths = (0..=200).chain([1000, 4095, 4096, 65_535, 65_536, 1_000_003]);
        for len in lengths {
            let bytes = data(len);
            let mut h = CheckpointedSha256::new();
            h.update(&bytes);
            assert_eq!(
                h.finalize(),
                <[u8; 32]>::from(Sha256::digest(&bytes)),
                "{len}"
            );
        }
    }

    #[test]
    fn digests_do_not_depend_on_how_the_input_is_split() {
        let bytes = data(CHECKPOINT as usize * 2 + 333);
        let whole = <[u8; 32]>::from(Sha256::digest(&bytes));
        for piece in [1, 7, 63, 64, 65, 4096, 1 << 20, (1 << 20) + 1] {
            let mut h = CheckpointedSha256::new();
            for chunk in bytes.chunks(piece) {
                h.update(chunk);
            }
            assert_eq!(h.finalize(), whole, "pieces of {piece}");
            assert_eq!(h.checkpoints().len(), 2, "pieces of {piece}");
        }
    }

    #[test]
    fn a_hash_resumed_from_a_checkpoint_equals_the_whole_hash() {
        let first = data(CHECKPOINT as usize * 3 + 10);
        let mut h = CheckpointedSha256::new();
        h.update(&first);
        assert_eq!(h.checkpoints().len(), 3);
        for kept in 0..=3 {
            let at = kept * CHECKPOINT as usize;
            // Another blob with the same first `at` bytes, then its own.
            let mut other = first[..at].to_vec();
            other.extend_from_slice(&data(777 + kept));
            let mut resumed = CheckpointedSha256::resume(h.checkpoints()[..kept].to_vec());
            assert_eq!(resumed.len(), at as u64);
            resumed.update(&other[at..]);
            assert_eq!(resumed.finalize(), <[u8; 32]>::from(Sha256::digest(&other)));
            let mut fresh = CheckpointedSha256::new();
            fresh.update(&other);
            assert_eq!(
                resumed.checkpoints(),
                fresh.checkpoints(),
                "resumed at {at}"
            );
        }
    }
}
