//! `_pyport.Channel`: the packet channel to Erlang (fds 3 and 4 in port
//! mode). Reading decodes every complete frame available; writing queues
//! frames and flushes them without blocking, once per loop iteration.

use crate::error::{ChannelError, EtfError};
use crate::etf::encode;
use crate::fd;
use crate::framing::{Frame, FrameReader, FrameWriter, Pending};
use crate::protocol::{self, Inbound};
use pyo3::prelude::*;
use pyo3::types::PyList;
use rustix::fd::{AsRawFd, RawFd};
use std::fs::File;
use std::io;

/// Bytes read per `read` system call.
const READ_CHUNK: usize = 64 * 1024;
/// Bytes read per `Channel.read()` call at most, so one busy peer cannot
/// starve the rest of the loop.
const READ_BUDGET: usize = 4 * 1024 * 1024;

#[pyclass(module = "_pyport")]
pub struct Channel {
    input: Option<File>,
    output: Option<File>,
    fd_in: RawFd,
    fd_out: RawFd,
    reader: FrameReader,
    writer: FrameWriter,
    eof: bool,
    /// Whether the pipes were raised for large messages (`grow_pipes`).
    grown: bool,
}

/// Duplicates `fd` (close-on-exec) and makes it non-blocking; the channel
/// owns the duplicate, the caller keeps the original. The duplicate is
/// numbered above the original: in port mode that keeps it among the
/// descriptors `main` moved out of the usual range (DESIGN.md, "The trust
/// boundary").
fn adopt(number: RawFd) -> Result<File, ChannelError> {
    if number < 0 {
        return Err(ChannelError::BadFd(number));
    }
    let owned = fd::dup_cloexec_from(number, number)?;
    fd::set_nonblocking(&owned)?;
    Ok(File::from(owned))
}

/// Raises both pipes' capacity, once per channel (`grown`), when the
/// first message larger than a default pipe crosses it
/// (`fd::LARGE_PIPE_SIZE`). A descriptor that is not a pipe (a socketpair
/// in tests) keeps its size: the channel works at any capacity.
fn grow_pipes(grown: &mut bool, fds: [RawFd; 2]) {
    if *grown {
        return;
    }
    *grown = true;
    for fd in fds {
        if let Err(e) = fd::grow_pipe(fd, fd::LARGE_PIPE_SIZE) {
            log::debug!("pipe size of fd {fd} unchanged: {e}");
        }
    }
}

#[pymethods]
impl Channel {
    #[new]
    #[pyo3(signature = (fd_in = 3, fd_out = 4, max_packet = 64 << 20, max_output = None))]
    fn new(
        fd_in: RawFd,
        fd_out: RawFd,
        max_packet: usize,
        max_output: Option<usize>,
    ) -> Result<Self, ChannelError> {
        let input = adopt(fd_in)?;
        let output = adopt(fd_out)?;
        Ok(Channel {
            fd_in: input.as_raw_fd(),
            fd_out: output.as_raw_fd(),
            input: Some(input),
            output: Some(output),
            reader: FrameReader::new(max_packet),
            writer: max_output.map_or_else(FrameWriter::new, FrameWriter::with_max),
            eof: false,
            grown: false,
        })
    }

    /// The (duplicated) descriptor to wait on for readability.
    #[getter]
    fn fd_in(&self) -> RawFd {
        self.fd_in
    }

    /// The (duplicated) descriptor to wait on for writability.
    #[getter]
    fn fd_out(&self) -> RawFd {
        self.fd_out
    }

    /// Every complete message readable now, or None once the peer closed
    /// its end and every buffered message was handed out.
    fn read<'py>(&mut self, py: Python<'py>) -> Result<Option<Bound<'py, PyList>>, ChannelError> {
        let messages = PyList::empty(py);
        let input = self.input.as_mut().ok_or(ChannelError::Closed)?;
        let mut total = 0;
        while !self.eof && total < READ_BUDGET {
            // A large frame already started is read in one call.
            let missing = self.reader.missing();
            if missing > READ_CHUNK {
                grow_pipes(&mut self.grown, [self.fd_in, self.fd_out]);
            }
            let chunk = READ_CHUNK.max(missing.min(READ_BUDGET));
            let n = match self.reader.fill_from(input, chunk) {
                Ok(0) => {
                    self.eof = true;
                    // Tells the lifeline watcher that Python saw Erlang
                    // hang up and is shutting down by itself.
                    crate::lifeline::eof_seen();
                    0
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            };
            total += n;
            hand_out(py, &mut self.reader, &mut self.writer, &messages)?;
            if n > 0 && drained(n, chunk, &self.reader) {
                break;
            }
        }
        self.reader.release();
        if self.eof && messages.is_empty() {
            return Ok(None);
        }
        Ok(Some(messages))
    }

    /// Queues one term. Raises TypeError naming the type when the term is
    /// outside the type table; nothing is queued then.
    fn send(&mut self, term: &Bound<'_, PyAny>) -> Result<(), ChannelError> {
        self.queue(|out| encode::encode_term(term, out))
    }

    /// Queues `{result, Id, {ok, Value}}`, with the same errors as `send`.
    /// `none_atom` (`"nil"`, `"undefined"`) is what `None` becomes in this
    /// reply instead of the port's default.
    #[pyo3(signature = (id, value, none_atom = None))]
    fn send_result(
        &mut self,
        id: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
        none_atom: Option<&str>,
    ) -> Result<(), ChannelError> {
        encode::none_atom::with(none_atom, || {
            self.queue(|out| protocol::result_ok(id, value, out))
        })
        .unwrap_or_else(|| Err(ChannelError::NoneAtom(none_atom.unwrap_or_default().into())))
    }

    /// Writes what the pipe takes now; returns the bytes still queued.
    /// Raises BrokenPipeError once Erlang has closed its end.
    fn flush(&mut self) -> Result<usize, ChannelError> {
        if self.writer.pending() > READ_CHUNK {
            grow_pipes(&mut self.grown, [self.fd_in, self.fd_out]);
        }
        let output = self.output.as_mut().ok_or(ChannelError::Closed)?;
        Ok(self.writer.write_to(output)?)
    }

    /// Bytes queued and not yet written.
    fn pending(&self) -> usize {
        self.writer.pending()
    }

    /// Closes both descriptors; queued bytes are dropped.
    fn close(&mut self) {
        self.input = None;
        self.output = None;
    }
}

/// Whether a read of `n` bytes, asked for `chunk`, emptied the pipe with
/// nothing of a frame left to come (asked once the frames read are
/// handed out): a short read means the pipe held less
/// than asked, and the poller is level-triggered, so it reports the next
/// bytes when they come, without the read that would now say EAGAIN (one
/// system call of every sequential round trip). A frame begun and not
/// finished is still being written (Erlang writes whole frames): reading
/// on takes the rest without a trip through the loop.
fn drained(n: usize, chunk: usize, reader: &FrameReader) -> bool {
    n < chunk && reader.partial() == 0
}

impl Channel {
    /// Frames what `write` appends; on an error nothing is queued.
    fn queue(
        &mut self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), EtfError>,
    ) -> Result<(), ChannelError> {
        let frame: Pending = self.writer.begin();
        if let Err(e) = write(self.writer.buffer()) {
            self.writer.abort(frame);
            return Err(e.into());
        }
        Ok(self.writer.finish(frame)?)
    }
}

/// Decodes every complete frame buffered into `messages`; the replies the
/// port makes by itself are queued.
fn hand_out(
    py: Python<'_>,
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
    messages: &Bound<'_, PyList>,
) -> PyResult<()> {
    while let Some(frame) = reader.next_frame() {
        match frame {
            Frame::Packet(bytes) => match protocol::decode_message(py, bytes) {
                Inbound::Message(m) => messages.append(m)?,
                Inbound::Reply(payload) => queue_payload(writer, &payload),
            },
            Frame::TooLarge { size } => {
                log::warn!("skipping a packet of {size} bytes over the limit");
                let max = reader.max();
                queue_payload(writer, &protocol::too_large(size, max));
            }
        }
    }
    Ok(())
}

fn queue_payload(writer: &mut FrameWriter, payload: &[u8]) {
    let frame = writer.begin();
    writer.buffer().extend_from_slice(payload);
    if let Err(e) = writer.finish(frame) {
        log::error!("dropping a reply: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framing::frame;

    #[test]
    fn a_short_read_that_ends_on_a_frame_boundary_drained_the_pipe() {
        let mut r = FrameReader::new(1 << 20);
        let mut bytes = frame(b"one");
        bytes.extend(frame(b"two"));
        r.extend(&bytes);
        while r.next_frame().is_some() {}
        assert!(drained(bytes.len(), READ_CHUNK, &r));
        // The read filled all it asked for: more may be waiting.
        assert!(!drained(READ_CHUNK, READ_CHUNK, &r));
    }

    #[test]
    fn a_frame_begun_and_not_finished_keeps_the_reader_reading() {
        let big = frame(&[7; 1000]);
        for cut in [2, 4, 500] {
            let mut r = FrameReader::new(1 << 20);
            r.extend(&big[..cut]);
            assert!(r.next_frame().is_none());
            assert!(!drained(cut, READ_CHUNK, &r), "cut at {cut}");
        }
        // A frame over the limit being skipped is still coming too.
        let mut r = FrameReader::new(10);
        r.extend(&big[..100]);
        assert!(matches!(r.next_frame(), Some(Frame::TooLarge { .. })));
        while r.next_frame().is_some() {}
        assert!(!drained(100, READ_CHUNK, &r));
        r.extend(&big[100..]);
        while r.next_frame().is_some() {}
        assert!(drained(big.len() - 100, READ_CHUNK, &r));
    }
}
