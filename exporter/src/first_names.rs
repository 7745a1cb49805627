//! The first name, in one layer tar, of every file with more than one
//! link, so that its later names in the tar are written as hard links to
//! it. A file's link count also counts names outside the layer: after a
//! COPY that shares files with an earlier snapshot every file has two
//! links and one name here (250,000 at issue 19's scale), so the first
//! names are kept compactly: front-coded in one buffer (tar order keeps
//! neighbours alike), each found by its number from an inode map.
//!
//! At 250,000 names such as `ctx/d012/d03/d11/f0001234.txt` a map of
//! (device, inode) to an owned path held 33.5 MB (20.5 MiB of buckets,
//! 41 B each, and a 48-byte allocation a path); this holds 13.0 MB (8.5
//! MiB of buckets, 17 B each, and 2.1 MB of names, ~8 B each, in a
//! 4 MiB buffer). 100,000: 10.2 MB then, 3.3 MB now.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Every how many names one is kept whole (a lookup decodes at most as
/// many).
const RESTART: usize = 32;

/// The first names of multiply-linked files, by device and inode.
#[derive(Debug, Default)]
pub(crate) struct FirstNames {
    /// The device of the first file seen (a snapshot is one directory
    /// tree, so in practice every file's).
    dev: Option<u64>,
    /// Inode → name number, for files on `dev`.
    on_dev: HashMap<u64, usize>,
    /// (device, inode) → name number, for files on any other device.
    elsewhere: HashMap<(u64, u64), usize>,
    names: FrontCoded,
}

impl FirstNames {
    /// The first name of the file `(dev, ino)` when one was recorded;
    /// otherwise records `name` as its first and returns `None`.
    pub(crate) fn first_or_record(&mut self, dev: u64, ino: u64, name: &Path) -> Option<PathBuf> {
        let numbers = match self.dev {
            None => {
                self.dev = Some(dev);
                None
            }
            Some(first) if first == dev => Some(self.on_dev.get(&ino)),
            Some(_) => Some(self.elsewhere.get(&(dev, ino))),
        };
        if let Some(&number) = numbers.flatten() {
            return Some(self.names.get(number));
        }
        let number = self.names.push(name.as_os_str().as_bytes());
        if self.dev == Some(dev) {
            self.on_dev.insert(ino, number);
        } else {
            self.elsewhere.insert((dev, ino), number);
        }
        None
    }
}

/// Names in the order pushed, each stored as the length it shares with
/// the one before and the rest; every [`RESTART`]th whole.
#[derive(Debug, Default)]
struct FrontCoded {
    bytes: Vec<u8>,
    /// Where every [`RESTART`]th name starts in `bytes`.
    restarts: Vec<usize>,
    count: usize,
    last: Vec<u8>,
}

impl FrontCoded {
    /// Appends `name`; returns its number.
    fn push(&mut self, name: &[u8]) -> usize {
        let shared = if self.count.is_multiple_of(RESTART) {
            self.restarts.push(self.bytes.len());
            0
        } else {
            name.iter()
                .zip(&self.last)
                .take_while(|(a, b)| a == b)
                .count()
        };
        put_varint(&mut self.bytes, shared);
        put_varint(&mut self.bytes, name.len() - shared);
        self.bytes.extend_from_slice(&name[shared..]);
        self.last.truncate(shared);
        self.last.extend_from_slice(&name[shared..]);
        self.count += 1;
        self.count - 1
    }

    /// Name number `number` (one that was pushed).
    fn get(&self, number: usize) -> PathBuf {
        let mut at = self.restarts[number / RESTART];
        let mut name = Vec::new();
        for _ in 0..=number % RESTART {
            let shared = take_varint(&self.bytes, &mut at);
            let rest = take_varint(&self.bytes, &mut at);
            name.truncate(shared);
            name.extend_from_slice(&self.bytes[at..at + rest]);
            at += rest;
        }
        PathBuf::from(OsStr::from_bytes(&name))
    }
}

/// Appends `n` in LEB128 (7 bits a byte, low first).
fn put_varint(out: &mut Vec<u8>, mut n: usize) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a LEB128 number at `*at` (written by [`put_varint`]) and moves
/// past it.
fn take_varint(bytes: &[u8], at: &mut usize) -> usize {
    let mut n = 0usize;
    let mut shift = 0;
    loop {
        let byte = bytes[*at];
        *at += 1;
        n |= usize::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return n;
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_read_back_whole_across_restarts_and_long_ones() {
        let mut coded = FrontCoded::default();
        let long = "d/".repeat(300);
        let names: Vec<String> = (0..200)
            .map(|i| match i % 7 {
                0 => format!("{long}f{i}"),
                1 => String::from("a"),
                _ => format!("ctx/d{:03}/f{i:05}.txt", i / 9),
            })
            .collect();
        for (i, name) in names.iter().enumerate() {
            assert_eq!(coded.push(name.as_bytes()), i);
        }
        for (i, name) in names.iter().enumerate().rev() {
            assert_eq!(coded.get(i), Path::new(name), "name {i}");
        }
    }

    #[test]
    fn a_file_seen_again_gets_its_first_name_on_any_device() {
        let mut names = FirstNames::default();
        // Non-UTF-8 names stay byte-exact.
        let odd = OsStr::from_bytes(b"n\xffame");
        let seen: [(u64, u64, &OsStr, Option<&OsStr>); 8] = [
            (1, 10, "a/x".as_ref(), None),
            (2, 10, "a/y".as_ref(), None),
            (1, 11, "b/z".as_ref(), None),
            (3, 1, odd, None),
            (1, 10, "c/1".as_ref(), Some("a/x".as_ref())),
            (2, 10, "c/2".as_ref(), Some("a/y".as_ref())),
            (1, 11, "c/3".as_ref(), Some("b/z".as_ref())),
            (3, 1, "c/4".as_ref(), Some(odd)),
        ];
        for (dev, ino, name, first) in seen {
            let got = names.first_or_record(dev, ino, Path::new(name));
            assert_eq!(got.as_deref(), first.map(Path::new), "{name:?}");
        }
    }
}
