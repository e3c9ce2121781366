//! `_pyport.OutputCapture`: whatever Python or a C extension writes to
//! fds 1 and 2 is caught in pipes, split into lines by a thread that never
//! needs the GIL, and handed to the event loop to forward to Erlang.
//!
//! The thread only buffers (bounded) and signals a wake-up pipe, so a C
//! extension printing in a tight loop while holding the GIL never blocks on
//! a full pipe, and the loop forwards the lines once it runs again.

use crate::fd;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rustix::fd::{AsRawFd, RawFd};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex};

/// Longest line forwarded; longer output is cut into pieces this long.
pub const MAX_LINE: usize = 16 * 1024;
/// Lines buffered while the loop is busy; older ones are dropped beyond it.
pub const MAX_QUEUED: usize = 10_000;

#[derive(Default)]
struct Shared {
    lines: VecDeque<(RawFd, Vec<u8>)>,
    dropped: u64,
}

#[pyclass(frozen, module = "_pyport")]
pub struct OutputCapture {
    shared: Arc<Mutex<Shared>>,
    wake_read: File,
}

/// Splits a byte stream into lines, holding back an unfinished last line.
#[derive(Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    pub fn push(&mut self, data: &[u8], mut emit: impl FnMut(Vec<u8>)) {
        for &b in data {
            if b == b'\n' {
                emit(std::mem::take(&mut self.partial));
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE {
                    emit(std::mem::take(&mut self.partial));
                }
            }
        }
    }

    pub fn finish(&mut self, emit: impl FnOnce(Vec<u8>)) {
        if !self.partial.is_empty() {
            emit(std::mem::take(&mut self.partial));
        }
    }
}

/// Tells the loop lines are waiting.
fn signal(mut wake: &File) {
    match wake.write(&[1]) {
        // One byte is written whole or not at all.
        Ok(_) => {}
        // A full wake pipe already says "there is something".
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        // The loop closed its end: no one is left to tell.
        Err(e) => log::debug!("output capture wake-up not sent: {e}"),
    }
}

fn pump(stream: RawFd, mut src: File, shared: Arc<Mutex<Shared>>, wake: File) {
    let mut splitter = LineSplitter::default();
    let mut buf = vec![0u8; 64 * 1024];
    let push = |line: Vec<u8>, shared: &Arc<Mutex<Shared>>| {
        let mut s = shared.lock().unwrap_or_else(|p| p.into_inner());
        if s.lines.len() >= MAX_QUEUED {
            s.lines.pop_front();
            s.dropped += 1;
        }
        s.lines.push_back((stream, line));
    };
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let mut any = false;
                splitter.push(&buf[..n], |line| {
                    push(line, &shared);
                    any = true;
                });
                if any {
                    signal(&wake);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    splitter.finish(|line| push(line, &shared));
    signal(&wake);
}

#[pymethods]
impl OutputCapture {
    /// Redirects each of `fds` (default stdout and stderr) into a pipe.
    #[new]
    #[pyo3(signature = (fds = vec![1, 2]))]
    fn new(fds: Vec<RawFd>) -> PyResult<Self> {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (wake_read, wake_write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(io::Error::from)?;
        for end in [&wake_read, &wake_write] {
            fd::set_nonblocking(end)?;
        }
        for target in fds {
            let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(io::Error::from)?;
            fd::redirect(&write_end, target)?;
            drop(write_end);
            let src = File::from(read_end);
            let wake = File::from(wake_write.try_clone()?);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("pyport-capture-{target}"))
                .spawn(move || pump(target, src, shared, wake))?;
        }
        Ok(OutputCapture {
            shared,
            wake_read: File::from(wake_read),
        })
    }

    /// A descriptor that becomes readable when lines are waiting.
    fn fileno(&self) -> RawFd {
        self.wake_read.as_raw_fd()
    }

    /// Every line caught since the last call, as `(fd, bytes)`, and how
    /// many were dropped because the loop was too busy to take them.
    fn drain<'py>(&self, py: Python<'py>) -> (Vec<(RawFd, Bound<'py, PyBytes>)>, u64) {
        let mut sink = [0u8; 256];
        while matches!((&self.wake_read).read(&mut sink), Ok(n) if n > 0) {}
        let (lines, dropped) = {
            let mut s = self.shared.lock().unwrap_or_else(|p| p.into_inner());
            (std::mem::take(&mut s.lines), std::mem::take(&mut s.dropped))
        };
        let out = lines
            .into_iter()
            .map(|(fd, line)| (fd, PyBytes::new(py, &line)))
            .collect();
        (out, dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_chunks_and_long_lines_are_cut() {
        let mut s = LineSplitter::default();
        let mut got = Vec::new();
        s.push(b"one\ntw", |l| got.push(l));
        s.push(b"o\n\nthree", |l| got.push(l));
        s.finish(|l| got.push(l));
        assert_eq!(
            got,
            vec![b"one".to_vec(), b"two".to_vec(), vec![], b"three".to_vec()]
        );
        let mut cut = Vec::new();
        s.push(&vec![b'x'; MAX_LINE + 3], |l| cut.push(l.len()));
        s.finish(|l| cut.push(l.len()));
        assert_eq!(cut, vec![MAX_LINE, 3]);
    }
}
