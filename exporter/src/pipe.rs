//! Producing a stream on one thread and consuming it on another: a layer
//! tar is walked, read and framed on one core while the other hashes and
//! writes it (issue 19: the tar of w2's 227 MB COPY layer and its sha256
//! took one core each way before).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Size of the chunks handed over.
const CHUNK: usize = 1 << 20;
/// Chunks in flight: enough to ride out a slow write or a slow read.
const IN_FLIGHT: usize = 8;

/// What the producer hands over.
enum Piece {
    /// Bytes it made.
    Bytes(Vec<u8>),
    /// `len` bytes at `at` of the file the consumer reads ranges from
    /// (see [`piped_opening`]): read there, not on the producer's thread.
    Range { at: u64, len: u64 },
}

/// The producing side: buffers writes into chunks and sends them.
pub(crate) struct ChunkSender {
    buf: Vec<u8>,
    tx: SyncSender<Piece>,
}

impl ChunkSender {
    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.send_piece(Piece::Bytes(full))
    }

    fn send_piece(&mut self, piece: Piece) -> io::Result<()> {
        self.tx
            .send(piece)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the consumer stopped"))
    }

    /// Sends `len` bytes at offset `at` of the consumer's range file,
    /// after the bytes written so far.
    pub(crate) fn send_range(&mut self, at: u64, len: u64) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        if len > 0 {
            self.send_piece(Piece::Range { at, len })?;
        }
        Ok(())
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// The producing side of [`piped_opening`] before its first byte.
pub(crate) struct Opener<T> {
    first: SyncSender<T>,
    tx: SyncSender<Piece>,
}

impl<T> Opener<T> {
    /// Hands `first` to the consuming side, which prepares its writer
    /// with it; the returned writer's bytes then follow.
    pub(crate) fn open(self, first: T) -> io::Result<ChunkSender> {
        self.first
            .send(first)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the consumer stopped"))?;
        Ok(ChunkSender {
            buf: Vec::with_capacity(CHUNK),
            tx: self.tx,
        })
    }
}

/// Runs `produce` on a new thread, writing into a pipe whose chunks, in
/// order, go to `out` on this thread. The first error of either side is
/// returned; a failed `out` makes `produce` fail on its next chunk.
pub(crate) fn piped<W: Write>(
    produce: impl FnOnce(&mut dyn Write) -> io::Result<()> + Send,
    out: &mut W,
) -> io::Result<()> {
    let produce = |opener: Opener<()>| {
        let mut sender = opener.open(())?;
        produce(&mut sender)?;
        Ok(sender)
    };
    piped_opening(produce, |()| Ok(out), None).map(drop)
}

/// [`piped`] where the consumer's writer depends on something the
/// producer finds first (where a resumed layer blob starts): `produce`
/// opens the pipe with it ([`Opener::open`]), `begin` makes the writer
/// from it on this thread, and the produced bytes then go to that writer,
/// which is returned. Ranges the producer sends
/// ([`ChunkSender::send_range`]) are read from `ranges` on this thread.
pub(crate) fn piped_opening<T: Send, W: Write>(
    produce: impl FnOnce(Opener<T>) -> io::Result<ChunkSender> + Send,
    begin: impl FnOnce(T) -> io::Result<W>,
    ranges: Option<&File>,
) -> io::Result<W> {
    let (tx, rx): (SyncSender<Piece>, Receiver<Piece>) = sync_channel(IN_FLIGHT);
    let (first_tx, first_rx) = sync_channel(1);
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let opener = Opener {
                first: first_tx,
                tx,
            };
            produce(opener)?.flush()
        });
        let consumed = match first_rx.recv() {
            Ok(first) => begin(first).and_then(|mut out| {
                let mut buf = Vec::new();
                rx.iter()
                    .try_for_each(|piece| match piece {
                        Piece::Bytes(chunk) => out.write_all(&chunk),
                        Piece::Range { at, len } => {
                            let file = ranges.ok_or_else(|| {
                                io::Error::other(
                                    "a range was sent, but there is no file to read it",
                                )
                            })?;
                            copy_range(file, at, len, &mut buf, &mut out)
                        }
                    })
                    .map(|()| out)
            }),
            Err(_) => Err(io::Error::other("the producer opened no pipe")),
        };
        // Dropping the receivers first lets a producer blocked on a full
        // channel see the consumer's failure instead of waiting forever.
        drop((rx, first_rx));
        let produced = producer.join().expect("the producer panicked");
        match (consumed, produced) {
            (Ok(out), Ok(())) => Ok(out),
            (Ok(_), Err(e)) | (Err(e), Ok(())) => Err(e),
            // The producer stopped because the consumer did.
            (Err(e), Err(p)) if p.kind() == io::ErrorKind::BrokenPipe => Err(e),
            // The producer failed first (before opening, say).
            (Err(_), Err(p)) => Err(p),
        }
    })
}

/// Writes `len` bytes of `file` from offset `at` to `out`, through `buf`.
fn copy_range(
    file: &File,
    at: u64,
    len: u64,
    buf: &mut Vec<u8>,
    out: &mut dyn Write,
) -> io::Result<()> {
    buf.resize(CHUNK, 0);
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        file.read_exact_at(&mut buf[..n], at + done)?;
        out.write_all(&buf[..n])?;
        done += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_across_chunk_boundaries() {
        let data: Vec<u8> = (0..(CHUNK * 3 + 777)).map(|i| (i % 253) as u8).collect();
        let mut out = Vec::new();
        piped(
            |w| {
                for piece in data.chunks(4099) {
                    w.write_all(piece)?;
                }
                Ok(())
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out, data);
    }

    /// A writer that fails after `left` bytes.
    struct FailsAfter {
        left: usize,
    }

    impl Write for FailsAfter {
        fn write(&mut self, data: &[u8]) -> io::Result<usize> {
            if self.left < data.len() {
                return Err(io::Error::other("disk full"));
            }
            self.left -= data.len();
            Ok(data.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_consumer_stops_the_producer_and_its_error_is_returned() {
        let mut out = FailsAfter { left: CHUNK };
        let err = piped(
            |w| {
                // Far more than the channel holds: the producer must not
                // hang once the consumer is gone.
                for _ in 0..(IN_FLIGHT * 4) {
                    w.write_all(&vec![1u8; CHUNK])?;
                }
                Ok(())
            },
            &mut out,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }

    #[test]
    fn the_opening_value_reaches_the_consumer_before_the_bytes() {
        let out = piped_opening(
            |opener: Opener<usize>| {
                let mut w = opener.open(3)?;
                w.write_all(b"abc")?;
                Ok(w)
            },
            |first| Ok(vec![b'0' + first as u8]),
            None,
        )
        .unwrap();
        assert_eq!(out, b"3abc");
    }

    #[test]
    fn a_producer_failing_before_it_opens_says_why() {
        let err = piped_opening(
            |_: Opener<()>| Err(io::Error::other("no such snapshot")),
            |()| -> io::Result<Vec<u8>> { panic!("never begun") },
            None,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "no such snapshot");
    }

    #[test]
    fn a_failing_producer_error_is_returned() {
        let mut out = Vec::new();
        let err = piped(
            |w| {
                w.write_all(b"partial")?;
                Err(io::Error::other("unreadable file"))
            },
            &mut out,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "unreadable file");
    }

    #[test]
    fn ranges_are_read_from_the_consumers_file_in_their_place() {
        let mut file = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..(CHUNK * 2 + 10)).map(|i| (i % 251) as u8).collect();
        file.write_all(&data).unwrap();
        let produce = |opener: Opener<()>| {
            let mut w = opener.open(())?;
            w.write_all(b"head")?;
            w.send_range(5, CHUNK as u64 + 3)?;
            w.send_range(0, 0)?;
            w.write_all(b"tail")?;
            Ok(w)
        };
        let out = piped_opening(produce, |()| Ok(Vec::new()), Some(&file)).unwrap();
        let mut want = b"head".to_vec();
        want.extend_from_slice(&data[5..CHUNK + 8]);
        want.extend_from_slice(b"tail");
        assert_eq!(out, want);

        let beyond = |opener: Opener<()>| {
            let mut w = opener.open(())?;
            w.send_range(data.len() as u64 - 1, 2)?;
            Ok(w)
        };
        let err = piped_opening(beyond, |()| Ok(Vec::new()), Some(&file)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
        let no_file = |opener: Opener<()>| {
            let mut w = opener.open(())?;
            w.send_range(0, 1)?;
            Ok(w)
        };
        let err = piped_opening(no_file, |()| Ok(Vec::new()), None).unwrap_err();
        assert!(err.to_string().contains("no file"), "{err}");
    }
}
