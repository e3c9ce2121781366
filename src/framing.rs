//! `{packet, 4}` framing: a 4-byte big-endian length, then the payload.
//!
//! Reads arrive in arbitrary pieces (one packet split over many reads, many
//! packets in one read), so [`FrameReader`] accumulates bytes and hands out
//! whole frames. A frame longer than the limit is reported once and its
//! bytes are discarded as they arrive, so a hostile length never makes the
//! port allocate it.

use byteorder::{BigEndian, ByteOrder};
use std::io::{self, Read, Write};

/// Length of the frame header.
pub const HEADER: usize = 4;

/// A buffer that grew past this for one large message is shrunk back once
/// that message is done, so one 300 MB result does not keep 300 MB of
/// resident memory for the life of the port. Above 1 MiB and a little:
/// a stream of 1 MiB payloads (a frame plus its header plus a read's
/// slack) would otherwise free, fault in and zero its buffer per message
/// (docs/performance.md).
pub const SHRINK_ABOVE: usize = 4 << 20;
/// The capacity a buffer is shrunk back to: enough for the usual traffic
/// without reallocating.
pub const KEEP: usize = 64 * 1024;

/// What [`FrameReader::next_frame`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A complete payload.
    Packet(&'a [u8]),
    /// A frame announced larger than the limit; its payload is being skipped.
    TooLarge { size: usize },
}

/// Accumulates incoming bytes and splits them into frames.
#[derive(Debug)]
pub struct FrameReader {
    /// Storage; only `buf[start..end]` holds unread bytes. The vector is
    /// grown and kept, so reads need not zero memory each time, until
    /// [`FrameReader::release`] finds it grown past [`SHRINK_ABOVE`].
    buf: Vec<u8>,
    start: usize,
    end: usize,
    skip: usize,
    max: usize,
}

impl FrameReader {
    pub fn new(max: usize) -> Self {
        FrameReader {
            buf: Vec::new(),
            start: 0,
            end: 0,
            skip: 0,
            max,
        }
    }

    /// Reads once from `src` into the buffer; `Ok(0)` means end of file.
    pub fn fill_from<R: Read>(&mut self, src: &mut R, chunk: usize) -> io::Result<usize> {
        self.compact();
        let want = self.end + chunk;
        if self.buf.len() < want {
            // A frame up to the packet limit is buffered whole: fail the
            // read rather than abort the process when memory is short.
            self.buf
                .try_reserve(want - self.buf.len())
                .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
            self.buf.resize(want, 0);
        }
        let n = src.read(&mut self.buf[self.end..self.end + chunk])?;
        self.end += n;
        Ok(n)
    }

    /// Appends bytes (tests and in-memory sources).
    pub fn extend(&mut self, data: &[u8]) {
        self.compact();
        self.buf.truncate(self.end);
        self.buf.extend_from_slice(data);
        self.end = self.buf.len();
    }

    /// The largest payload accepted.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Bytes buffered but not yet handed out.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Bytes still to come for the frame being read (0 when none is
    /// started or its header is incomplete), capped by the packet limit:
    /// the caller may read that much in one call.
    pub fn missing(&self) -> usize {
        if self.skip > 0 || self.buffered() < HEADER {
            return 0;
        }
        let size = BigEndian::read_u32(&self.buf[self.start..self.start + HEADER]) as usize;
        (HEADER + size.min(self.max)).saturating_sub(self.buffered())
    }

    /// Bytes of a frame begun and not complete (its header included), or
    /// of one being skipped: 0 when everything buffered was handed out.
    /// Meaningful once [`FrameReader::next_frame`] has returned `None`.
    pub fn partial(&self) -> usize {
        self.buffered() + self.skip
    }

    /// The next complete frame, if the buffer holds one.
    pub fn next_frame(&mut self) -> Option<Frame<'_>> {
        if self.skip > 0 {
            let dropped = self.skip.min(self.buffered());
            self.start += dropped;
            self.skip -= dropped;
            if self.skip > 0 {
                return None;
            }
        }
        if self.buffered() < HEADER {
            return None;
        }
        let size = BigEndian::read_u32(&self.buf[self.start..self.start + HEADER]) as usize;
        if size > self.max {
            self.start += HEADER;
            self.skip = size;
            return Some(Frame::TooLarge { size });
        }
        if self.buffered() - HEADER < size {
            return None;
        }
        let from = self.start + HEADER;
        self.start = from + size;
        Some(Frame::Packet(&self.buf[from..from + size]))
    }

    /// Gives memory back after a large frame: when the buffer grew past
    /// [`SHRINK_ABOVE`] and what is still unread fits in [`KEEP`], it is
    /// shrunk to that. Called once the frames read so far are handed out.
    pub fn release(&mut self) {
        if self.buf.capacity() <= SHRINK_ABOVE || self.buffered() > KEEP || self.skip > 0 {
            return;
        }
        self.compact();
        self.buf.truncate(self.end);
        self.buf.shrink_to(KEEP);
    }

    /// Storage held, in bytes (tests, statistics).
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Drops consumed bytes so the buffer does not grow without bound.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
    }
}

/// Queues outgoing frames and writes them in as few `write` calls as the
/// pipe allows.
#[derive(Debug)]
pub struct FrameWriter {
    out: Vec<u8>,
    sent: usize,
    /// The largest payload the reader accepts (the Erlang side's
    /// `max_output_packet`): a larger one would cost the port, so it is
    /// refused here, as an error for whoever sent it.
    max: usize,
}

impl Default for FrameWriter {
    fn default() -> Self {
        Self::with_max(u32::MAX as usize)
    }
}

/// A frame being built in place by [`FrameWriter::begin`].
#[derive(Debug, Clone, Copy)]
pub struct Pending(usize);

impl FrameWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A writer that refuses payloads over `max` bytes (at most 4 GiB - 1).
    pub fn with_max(max: usize) -> Self {
        FrameWriter {
            out: Vec::new(),
            sent: 0,
            max: max.min(u32::MAX as usize),
        }
    }

    /// Starts a frame; the payload is appended to [`FrameWriter::buffer`].
    pub fn begin(&mut self) -> Pending {
        let at = self.out.len();
        self.out.extend_from_slice(&[0; HEADER]);
        Pending(at)
    }

    /// The buffer a payload is written into between `begin` and `finish`.
    pub fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Closes a frame by writing its length; a payload over 4 GiB, or over
    /// the reader's limit, is dropped.
    pub fn finish(&mut self, frame: Pending) -> Result<(), crate::error::FrameError> {
        let size = self.out.len() - frame.0 - HEADER;
        if size > self.max {
            self.abort(frame);
            return Err(if size > u32::MAX as usize {
                crate::error::FrameError::TooLarge(size)
            } else {
                crate::error::FrameError::OverLimit {
                    size,
                    max: self.max,
                }
            });
        }
        // At most u32::MAX: checked just above.
        BigEndian::write_u32(&mut self.out[frame.0..frame.0 + HEADER], size as u32);
        Ok(())
    }

    /// Forgets a frame that could not be completed.
    pub fn abort(&mut self, frame: Pending) {
        self.out.truncate(frame.0);
        self.release();
    }

    /// Storage held, in bytes (tests, statistics).
    pub fn capacity(&self) -> usize {
        self.out.capacity()
    }

    /// Shrinks the queue back to [`KEEP`] once what grew it past
    /// [`SHRINK_ABOVE`] is written (or abandoned) and what is left fits.
    fn release(&mut self) {
        if self.out.capacity() > SHRINK_ABOVE && self.out.len() <= KEEP {
            self.out.shrink_to(KEEP);
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.sent
    }

    /// Writes as much as `dst` takes without blocking; returns what is left.
    pub fn write_to<W: Write>(&mut self, dst: &mut W) -> io::Result<usize> {
        while self.sent < self.out.len() {
            match dst.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.out.len() {
            self.out.clear();
            self.sent = 0;
            self.release();
        } else if self.sent > (1 << 20) && self.sent > self.out.len() / 2 {
            self.out.drain(..self.sent);
            self.sent = 0;
        }
        Ok(self.pending())
    }
}

/// Frames `payload` into a fresh vector (tests, tools).
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0; HEADER];
    BigEndian::write_u32(&mut v, payload.len() as u32);
    v.extend_from_slice(payload);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(r: &mut FrameReader) -> Vec<Result<Vec<u8>, usize>> {
        let mut v = Vec::new();
        while let Some(f) = r.next_frame() {
            v.push(match f {
                Frame::Packet(p) => Ok(p.to_vec()),
                Frame::TooLarge { size } => Err(size),
            });
        }
        v
    }

    #[test]
    fn merged_packets_in_one_read_come_out_in_order() {
        let mut r = FrameReader::new(100);
        let mut bytes = frame(b"one");
        bytes.extend(frame(b""));
        bytes.extend(frame(b"three"));
        r.extend(&bytes);
        assert_eq!(
            collect(&mut r),
            vec![Ok(b"one".to_vec()), Ok(vec![]), Ok(b"three".to_vec())]
        );
        assert_eq!(r.buffered(), 0);
    }

    #[test]
    fn a_packet_split_byte_by_byte_is_reassembled() {
        let mut r = FrameReader::new(100);
        let bytes = frame(b"hello world");
        let mut out = Vec::new();
        for b in &bytes {
            r.extend(&[*b]);
            out.extend(collect(&mut r));
        }
        assert_eq!(out, vec![Ok(b"hello world".to_vec())]);
    }

    #[test]
    fn an_oversized_frame_is_reported_once_and_skipped_across_reads() {
        let mut r = FrameReader::new(4);
        let big = frame(b"0123456789");
        r.extend(&big[..7]);
        assert_eq!(collect(&mut r), vec![Err(10)]);
        r.extend(&big[7..]);
        assert_eq!(collect(&mut r), vec![]);
        r.extend(&frame(b"ok"));
        assert_eq!(collect(&mut r), vec![Ok(b"ok".to_vec())]);
    }

    #[test]
    fn a_huge_announced_length_allocates_nothing() {
        let mut r = FrameReader::new(64 << 20);
        r.extend(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
        assert_eq!(collect(&mut r), vec![Err(u32::MAX as usize)]);
        assert!(r.buf.capacity() < 1024);
    }

    #[test]
    fn fill_from_reads_and_reports_eof() {
        let data = frame(b"abc");
        let mut src: &[u8] = &data;
        let mut r = FrameReader::new(10);
        assert_eq!(r.fill_from(&mut src, 2).unwrap(), 2);
        assert_eq!(r.fill_from(&mut src, 64).unwrap(), 5);
        assert_eq!(collect(&mut r), vec![Ok(b"abc".to_vec())]);
        assert_eq!(r.fill_from(&mut src, 64).unwrap(), 0);
    }

    #[test]
    fn the_reader_gives_back_memory_after_a_large_frame() {
        let mut r = FrameReader::new(64 << 20);
        let big = frame(&vec![7; 6 << 20]);
        let mut src: &[u8] = &big;
        while r.fill_from(&mut src, 1 << 20).unwrap() > 0 {}
        assert_eq!(collect(&mut r).len(), 1);
        assert!(r.capacity() > SHRINK_ABOVE);
        r.release();
        assert!(r.capacity() <= KEEP, "{}", r.capacity());
        r.extend(&frame(b"after"));
        assert_eq!(collect(&mut r), vec![Ok(b"after".to_vec())]);
    }

    #[test]
    fn missing_counts_the_rest_of_a_started_frame() {
        let mut r = FrameReader::new(64 << 20);
        assert_eq!(r.missing(), 0);
        let big = frame(&vec![7; 1000]);
        r.extend(&big[..2]);
        assert_eq!(r.missing(), 0, "header incomplete");
        r.extend(&big[2..100]);
        assert_eq!(r.missing(), big.len() - 100);
        r.extend(&big[100..]);
        assert_eq!(r.missing(), 0);
        let mut small = FrameReader::new(10);
        small.extend(&frame(&[1; 50])[..8]);
        assert_eq!(small.missing(), HEADER + 10 - 8, "capped by the limit");
    }

    #[test]
    fn the_reader_keeps_its_buffer_while_a_frame_is_partly_read() {
        let mut r = FrameReader::new(64 << 20);
        let big = frame(&vec![7; 3 << 20]);
        r.extend(&big[..2 << 20]);
        r.release();
        assert!(r.capacity() >= 2 << 20);
        r.extend(&big[2 << 20..]);
        assert_eq!(collect(&mut r).len(), 1);
    }

    #[test]
    fn the_writer_refuses_a_payload_over_the_readers_limit_and_keeps_the_rest() {
        let mut w = FrameWriter::with_max(8);
        let ok = w.begin();
        w.buffer().extend_from_slice(b"12345678");
        w.finish(ok).unwrap();
        let big = w.begin();
        w.buffer().extend_from_slice(b"123456789");
        assert!(matches!(
            w.finish(big),
            Err(crate::error::FrameError::OverLimit { size: 9, max: 8 })
        ));
        let mut sink = Vec::new();
        assert_eq!(w.write_to(&mut sink).unwrap(), 0);
        assert_eq!(sink, frame(b"12345678"));
    }

    #[test]
    fn the_writer_gives_back_memory_once_a_large_frame_is_written() {
        let mut w = FrameWriter::new();
        let f = w.begin();
        w.buffer().extend_from_slice(&vec![1; 6 << 20]);
        w.finish(f).unwrap();
        let mut sink = Vec::new();
        assert_eq!(w.write_to(&mut sink).unwrap(), 0);
        assert_eq!(sink.len(), HEADER + (6 << 20));
        assert!(w.capacity() <= KEEP, "{}", w.capacity());
        let f = w.begin();
        w.buffer().extend_from_slice(&vec![1; 6 << 20]);
        w.abort(f);
        assert!(w.capacity() <= KEEP, "{}", w.capacity());
    }

    /// A writer that takes at most `cap` bytes per call, then would block.
    struct Trickle {
        got: Vec<u8>,
        cap: usize,
        calls: usize,
        budget: usize,
    }
    impl Write for Trickle {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            if self.calls == self.budget {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls += 1;
            let n = b.len().min(self.cap);
            self.got.extend_from_slice(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn writer_batches_frames_and_resumes_after_would_block() {
        let mut w = FrameWriter::new();
        for payload in [&b"ab"[..], b"cde"] {
            let f = w.begin();
            w.buffer().extend_from_slice(payload);
            w.finish(f).unwrap();
        }
        let aborted = w.begin();
        w.buffer().extend_from_slice(b"junk");
        w.abort(aborted);
        let mut dst = Trickle {
            got: vec![],
            cap: 5,
            calls: 0,
            budget: 1,
        };
        assert_eq!(w.write_to(&mut dst).unwrap(), 13 - 5);
        dst.budget = 10;
        assert_eq!(w.write_to(&mut dst).unwrap(), 0);
        let mut expect = frame(b"ab");
        expect.extend(frame(b"cde"));
        assert_eq!(dst.got, expect);
        assert_eq!(w.pending(), 0);
    }
}
