//! Error types of the port; each maps to one clear reply on the wire.

use thiserror::Error;

/// A frame that cannot be sent.
#[derive(Debug, Error)]
pub enum FrameError {
    #[error("payload of {0} bytes exceeds the 4 GiB frame limit")]
    TooLarge(usize),
}

/// Why bytes could not become a Python object, or a Python object bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
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
    #[error("cannot convert Python object of type '{0}' to an Erlang term")]
    UnsupportedType(String),
    #[error("{0}")]
    Value(String),
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

impl From<EtfError> for pyo3::PyErr {
    fn from(e: EtfError) -> Self {
        if e.is_malformed() {
            pyo3::exceptions::PyValueError::new_err(e.to_string())
        } else {
            pyo3::exceptions::PyTypeError::new_err(e.to_string())
        }
    }
}
