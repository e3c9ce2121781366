//! Error types of the port; each maps to one clear reply on the wire or
//! one Python exception.

use pyo3::exceptions::{PyMemoryError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::PyErr;
use std::io;
use std::os::fd::RawFd;
use thiserror::Error;

/// What to do about a Python object that has no term form, by its type.
fn unsupported_type_hint(type_name: &str) -> &'static str {
    match type_name {
        "generator" | "async_generator" => {
            "iterate it from Erlang as a stream (py_event_loop_pool:stream/4, \
             py:stream/3, docs/streams.md), or keep it in Python with the task \
             option result => handle"
        }
        _ => {
            "return a list, tuple, dict, str, bytes, number, bool or None instead, \
             give the class an __erlang__() method, or keep the object in Python \
             with the task option result => handle (or result => auto for the \
             parts without a term form; docs/handles.md)"
        }
    }
}

/// A frame that cannot be sent.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("payload of {0} bytes exceeds the 4 GiB frame limit")]
    TooLarge(usize),
    #[error("message of {size} bytes is over the {max}-byte limit of the Erlang side (max_output_packet)")]
    OverLimit { size: usize, max: usize },
}

/// Why bytes could not become a Python object, or a Python object bytes.
#[derive(Debug, Error)]
pub enum EtfError {
    /// The bytes are not well-formed external term format.
    #[error("truncated term: needed {needed} more bytes at offset {at}")]
    Truncated { at: usize, needed: usize },
    #[error("unsupported external term format version {0} (expected 131)")]
    Version(u8),
    #[error("unknown term tag {tag} at offset {at}")]
    UnknownTag { tag: u8, at: usize },
    #[error("{0} trailing bytes after the term")]
    Trailing(usize),
    #[error("malformed term: {0}")]
    Malformed(String),

    /// Well-formed, but outside the type table: the caller gets a TypeError.
    #[error("cannot convert Erlang {0} to Python")]
    UnsupportedTerm(&'static str),
    #[error("term nesting deeper than {0} levels")]
    TooDeep(usize),
    /// The message says what to do instead: stream an iterator, keep any
    /// other object in Python as a handle (docs/handles.md).
    #[error("cannot convert Python object of type '{0}' to an Erlang term; {hint}",
            hint = unsupported_type_hint(.0))]
    UnsupportedType(String),
    /// A value of a supported type that has no encoding (a str with lone
    /// surrogates, a container over the 2^32 limit, ...).
    #[error("{0}")]
    Value(String),
    /// An integer the BEAM cannot hold: Python sees OverflowError.
    #[error(
        "integer of {bits} bits exceeds the {limit}-bit limit of an Erlang integer",
        limit = crate::etf::MAX_INT_BITS
    )]
    IntTooLarge { bits: usize },
    /// Memory for a term could not be had (the data limit, usually):
    /// Python sees MemoryError, the process does not abort.
    #[error("cannot allocate {0} bytes for a term")]
    NoMemory(usize),
    /// Python itself raised while converting (memory, or user code such as
    /// an `int` subclass's methods): kept whole, so Python sees the very
    /// exception, with its type and traceback.
    #[error("{0}")]
    Python(#[from] PyErr),
}

impl EtfError {
    /// True when the bytes themselves are broken (as opposed to well-formed
    /// but unconvertible), so the rest of a packet cannot be trusted.
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            EtfError::Truncated { .. }
                | EtfError::Version(_)
                | EtfError::UnknownTag { .. }
                | EtfError::Trailing(_)
                | EtfError::Malformed(_)
        )
    }
}

impl From<EtfError> for PyErr {
    fn from(e: EtfError) -> Self {
        match e {
            EtfError::Python(original) => original,
            EtfError::IntTooLarge { .. } => PyOverflowError::new_err(e.to_string()),
            EtfError::NoMemory(_) => PyMemoryError::new_err(e.to_string()),
            e if e.is_malformed() => PyValueError::new_err(e.to_string()),
            e => PyTypeError::new_err(e.to_string()),
        }
    }
}

/// What can go wrong on the packet channel to Erlang.
#[derive(Debug, Error)]
pub enum ChannelError {
    #[error("invalid file descriptor {0}")]
    BadFd(RawFd),
    #[error("I/O operation on closed channel")]
    Closed,
    /// The pipe failed (Erlang closed its end: BrokenPipeError).
    #[error(transparent)]
    Io(#[from] io::Error),
    /// A term encoded to more than one frame can carry.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A term outside the type table, or broken bytes.
    #[error(transparent)]
    Codec(#[from] EtfError),
    /// Handing a message to Python failed (memory).
    #[error(transparent)]
    Python(#[from] PyErr),
    /// `send_result`'s `none_atom` is not one `None` may become.
    #[error("none_atom must be 'none', 'nil' or 'undefined', not {0:?}")]
    NoneAtom(String),
}

impl From<ChannelError> for PyErr {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::BadFd(_) | ChannelError::Closed | ChannelError::NoneAtom(_) => {
                PyValueError::new_err(e.to_string())
            }
            ChannelError::Io(io) => io.into(),
            // A payload `send` cannot frame is a value it cannot send, as
            // for any other unsendable term.
            // Too big for the Erlang side: like an integer the BEAM cannot
            // hold, an OverflowError for whoever sent it.
            ChannelError::Frame(frame @ FrameError::OverLimit { .. }) => {
                PyOverflowError::new_err(frame.to_string())
            }
            ChannelError::Frame(frame) => PyTypeError::new_err(frame.to_string()),
            ChannelError::Codec(codec) => codec.into(),
            ChannelError::Python(original) => original,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::exceptions::{PyBrokenPipeError, PyRuntimeError};
    use pyo3::prelude::*;

    #[test]
    fn a_python_exception_raised_while_converting_comes_back_unchanged() {
        Python::initialize();
        Python::attach(|py| {
            let locals = pyo3::types::PyDict::new(py);
            py.run(
                c"class Big(int):\n    def bit_length(self): raise RuntimeError('mine')\nobj = Big(2**70)",
                None,
                Some(&locals),
            )
            .unwrap();
            let obj = locals.get_item("obj").unwrap().unwrap();
            let err = crate::etf::encode::encode_term(&obj, &mut Vec::new()).unwrap_err();
            assert!(matches!(err, EtfError::Python(_)), "{err:?}");
            assert!(!err.is_malformed());
            let raised = PyErr::from(err);
            assert!(raised.is_instance_of::<PyRuntimeError>(py));
            assert_eq!(raised.value(py).to_string(), "mine");
        });
    }

    #[test]
    fn channel_errors_raise_what_the_channel_always_raised() {
        Python::initialize();
        Python::attach(|py| {
            let raised = |e: ChannelError| PyErr::from(e);
            assert!(raised(ChannelError::Closed).is_instance_of::<PyValueError>(py));
            assert!(raised(ChannelError::BadFd(-1)).is_instance_of::<PyValueError>(py));
            let frame = raised(ChannelError::Frame(FrameError::TooLarge(1 << 33)));
            assert!(frame.is_instance_of::<PyTypeError>(py));
            assert!(frame.value(py).to_string().contains("4 GiB"));
            let pipe = raised(io::Error::from(io::ErrorKind::BrokenPipe).into());
            assert!(pipe.is_instance_of::<PyBrokenPipeError>(py));
            let codec = raised(EtfError::UnsupportedType("set".into()).into());
            assert!(codec.is_instance_of::<PyTypeError>(py));
            let malformed = raised(EtfError::Trailing(1).into());
            assert!(malformed.is_instance_of::<PyValueError>(py));
        });
    }
}
