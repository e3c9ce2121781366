//! Erlang external term format <-> Python objects, directly, with no
//! intermediate term tree.
//!
//! Hand-written rather than built on `eetf` (which the tests use as an
//! independent oracle): the port decodes untrusted bytes, and `eetf`
//! recurses without a depth limit, pre-allocates whatever length a header
//! announces, panics on atom-cache references, and needs an intermediate
//! `Term` tree on the hot path. Here every length is checked against the
//! bytes actually present before anything is allocated, nesting is bounded
//! by [`MAX_DEPTH`], and skipping a term ([`skip`]) is iterative.

pub mod decode;
pub mod encode;
pub mod skip;

/// Deepest nesting converted in either direction. Python's own recursion
/// limit is 1000; a term this deep is almost certainly a mistake, and the
/// recursive converters stay far from the thread's stack limit.
pub const MAX_DEPTH: usize = 1000;

pub const VERSION: u8 = 131;

/// Bit length of the largest integer magnitude the BEAM decodes: measured
/// on OTP 25, `1 bsl 33554367` (33554368 bits, 4194296 magnitude bytes)
/// is the largest power of two it builds, and `binary_to_term` refuses a
/// longer LARGE_BIG_EXT with badarg. A bigger result would leave the
/// worker unable to decode its own reply.
pub const MAX_INT_BITS: usize = (1 << 25) - 64;

/// Makes room for `additional` more bytes in `out`, or says why not,
/// instead of aborting the process when the allocation fails (the port
/// runs under a data limit, and a result may be as large as it allows).
pub fn reserve(out: &mut Vec<u8>, additional: usize) -> Result<(), crate::error::EtfError> {
    if out.capacity() - out.len() >= additional {
        return Ok(());
    }
    out.try_reserve(additional)
        .map_err(|_| crate::error::EtfError::NoMemory(out.len().saturating_add(additional)))
}

/// A `Vec` for `n` decoded items, failing with [`crate::error::EtfError::NoMemory`]
/// rather than aborting when `n` (bounded by the packet's size) is too many.
pub fn item_vec<T>(n: usize) -> Result<Vec<T>, crate::error::EtfError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        crate::error::EtfError::NoMemory(n.saturating_mul(std::mem::size_of::<T>()))
    })?;
    Ok(v)
}

pub mod tag {
    pub const NEW_FLOAT: u8 = 70;
    pub const BIT_BINARY: u8 = 77;
    pub const COMPRESSED: u8 = 80;
    pub const ATOM_CACHE_REF: u8 = 82;
    pub const DIST_HEADER: u8 = 68;
    pub const NEW_PID: u8 = 88;
    pub const NEW_PORT: u8 = 89;
    pub const NEWER_REFERENCE: u8 = 90;
    pub const SMALL_INTEGER: u8 = 97;
    pub const INTEGER: u8 = 98;
    pub const FLOAT: u8 = 99;
    pub const ATOM: u8 = 100;
    pub const REFERENCE: u8 = 101;
    pub const PORT: u8 = 102;
    pub const PID: u8 = 103;
    pub const SMALL_TUPLE: u8 = 104;
    pub const LARGE_TUPLE: u8 = 105;
    pub const NIL: u8 = 106;
    pub const STRING: u8 = 107;
    pub const LIST: u8 = 108;
    pub const BINARY: u8 = 109;
    pub const SMALL_BIG: u8 = 110;
    pub const LARGE_BIG: u8 = 111;
    pub const NEW_FUN: u8 = 112;
    pub const EXPORT: u8 = 113;
    pub const NEW_REFERENCE: u8 = 114;
    pub const SMALL_ATOM: u8 = 115;
    pub const MAP: u8 = 116;
    pub const FUN: u8 = 117;
    pub const ATOM_UTF8: u8 = 118;
    pub const SMALL_ATOM_UTF8: u8 = 119;
    pub const V4_PORT: u8 = 120;
    pub const LOCAL: u8 = 121;
}

/// A cursor over external-format bytes that never reads past the end.
#[derive(Debug, Clone)]
pub struct Cursor<'a> {
    pub data: &'a [u8],
    pub pos: usize,
}

type R<T> = Result<T, crate::error::EtfError>;

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }

    pub fn take(&mut self, n: usize) -> R<&'a [u8]> {
        if n > self.remaining() {
            return Err(crate::error::EtfError::Truncated {
                at: self.pos,
                needed: n - self.remaining(),
            });
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> R<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub fn u32(&mut self) -> R<u32> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn peek(&self) -> R<u8> {
        self.data
            .get(self.pos)
            .copied()
            .ok_or(crate::error::EtfError::Truncated {
                at: self.pos,
                needed: 1,
            })
    }

    /// Checks that `count` items of at least `min_size` bytes each can
    /// still be present, before anything is allocated for them.
    pub fn expect_items(&self, count: usize, min_size: usize) -> R<()> {
        let need = count.saturating_mul(min_size);
        if need > self.remaining() {
            return Err(crate::error::EtfError::Truncated {
                at: self.pos,
                needed: need - self.remaining(),
            });
        }
        Ok(())
    }

    /// Reads the version byte that starts every `term_to_binary` output.
    pub fn version(&mut self) -> R<()> {
        match self.u8()? {
            VERSION => Ok(()),
            v => Err(crate::error::EtfError::Version(v)),
        }
    }

    /// Reads an atom's name (any of the four atom encodings), as UTF-8.
    pub fn atom(&mut self) -> R<std::borrow::Cow<'a, str>> {
        let at = self.pos;
        let t = self.u8()?;
        self.atom_body(t, at)
    }

    pub fn atom_body(&mut self, t: u8, at: usize) -> R<std::borrow::Cow<'a, str>> {
        let (len, utf8) = match t {
            tag::SMALL_ATOM_UTF8 => (self.u8()? as usize, true),
            tag::ATOM_UTF8 => (self.u16()? as usize, true),
            tag::SMALL_ATOM => (self.u8()? as usize, false),
            tag::ATOM => (self.u16()? as usize, false),
            tag => return Err(crate::error::EtfError::UnknownTag { tag, at }),
        };
        let bytes = self.take(len)?;
        if utf8 {
            std::str::from_utf8(bytes)
                .map(std::borrow::Cow::Borrowed)
                .map_err(|_| crate::error::EtfError::Malformed("atom is not valid UTF-8".into()))
        } else if bytes.is_ascii() {
            // ASCII is valid UTF-8; only Latin-1 above 127 needs re-encoding.
            Ok(std::borrow::Cow::Borrowed(
                std::str::from_utf8(bytes).expect("ascii is utf-8"),
            ))
        } else {
            Ok(std::borrow::Cow::Owned(
                bytes.iter().map(|&b| b as char).collect(),
            ))
        }
    }

    pub fn finish(&self) -> R<()> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(crate::error::EtfError::Trailing(n)),
        }
    }
}
