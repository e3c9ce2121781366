//! External term format -> Python objects (DESIGN.md's type table).

use super::{tag, Cursor, MAX_DEPTH};
use crate::error::EtfError;
use crate::terms::{Pid, Ref};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

type R<T> = Result<T, EtfError>;

/// Decodes a whole `term_to_binary` output (version byte included).
pub fn decode_term<'py>(py: Python<'py>, data: &[u8]) -> R<Bound<'py, PyAny>> {
    let mut c = Cursor::new(data);
    c.version()?;
    let v = term(py, &mut c, 0)?;
    c.finish()?;
    Ok(v)
}

/// Decodes one term at the cursor.
pub fn term<'py>(py: Python<'py>, c: &mut Cursor<'_>, depth: usize) -> R<Bound<'py, PyAny>> {
    if depth > MAX_DEPTH {
        return Err(EtfError::TooDeep(MAX_DEPTH));
    }
    let at = c.pos;
    let t = c.u8()?;
    Ok(match t {
        tag::SMALL_INTEGER => int(py, i64::from(c.u8()?)),
        tag::INTEGER => int(py, i64::from(c.u32()? as i32)),
        tag::NEW_FLOAT => {
            let b = c.take(8)?;
            let f = f64::from_be_bytes(b.try_into().expect("8 bytes"));
            PyFloat::new(py, f).into_any()
        }
        tag::FLOAT => {
            let b = c.take(31)?;
            let text = std::str::from_utf8(b)
                .ok()
                .map(|s| s.trim_end_matches('\0').trim())
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| EtfError::Malformed("unparsable FLOAT_EXT".into()))?;
            PyFloat::new(py, text).into_any()
        }
        tag::ATOM | tag::ATOM_UTF8 | tag::SMALL_ATOM | tag::SMALL_ATOM_UTF8 => {
            let name = c.atom_body(t, at)?;
            atom(py, &name)
        }
        tag::SMALL_TUPLE => {
            let n = c.u8()? as usize;
            tuple(py, c, n, depth)?
        }
        tag::LARGE_TUPLE => {
            let n = c.u32()? as usize;
            tuple(py, c, n, depth)?
        }
        tag::MAP => {
            let n = c.u32()? as usize;
            c.expect_items(n, 2)?;
            let d = PyDict::new(py);
            for _ in 0..n {
                let k = term(py, c, depth + 1)?;
                let v = term(py, c, depth + 1)?;
                // The one Python error a decoded key can cause; the type
                // table's wording names the Erlang side's mistake.
                d.set_item(&k, v).map_err(|_| {
                    EtfError::Value(format!(
                        "map key of Python type '{}' is unhashable",
                        type_name(&k)
                    ))
                })?;
            }
            d.into_any()
        }
        tag::NIL => PyList::empty(py).into_any(),
        tag::STRING => {
            // A list of small integers that Erlang packed as bytes.
            let n = c.u16()? as usize;
            let b = c.take(n)?;
            PyList::new(py, b.iter().copied())?.into_any()
        }
        tag::LIST => {
            let n = c.u32()? as usize;
            c.expect_items(n + 1, 1)?;
            let mut items = super::item_vec(n)?;
            for _ in 0..n {
                items.push(term(py, c, depth + 1)?);
            }
            if c.u8()? != tag::NIL {
                return Err(EtfError::UnsupportedTerm("improper list"));
            }
            PyList::new(py, items)?.into_any()
        }
        tag::BINARY => {
            let n = c.u32()? as usize;
            binary(py, c.take(n)?)?
        }
        tag::SMALL_BIG => {
            let n = c.u8()? as usize;
            big(py, c, n)?
        }
        tag::LARGE_BIG => {
            let n = c.u32()? as usize;
            big(py, c, n)?
        }
        tag::NEW_PID | tag::PID => {
            let node = c.atom()?.into_owned();
            let id = c.u32()?;
            let serial = c.u32()?;
            let creation = if t == tag::NEW_PID {
                c.u32()?
            } else {
                u32::from(c.u8()?)
            };
            Bound::new(
                py,
                Pid {
                    node,
                    id,
                    serial,
                    creation,
                },
            )?
            .into_any()
        }
        tag::NEWER_REFERENCE | tag::NEW_REFERENCE | tag::REFERENCE => {
            let n = if t == tag::REFERENCE {
                1
            } else {
                c.u16()? as usize
            };
            let node = c.atom()?.into_owned();
            let creation = if t == tag::NEWER_REFERENCE {
                c.u32()?
            } else {
                u32::from(c.u8()?)
            };
            c.expect_items(n, 4)?;
            let mut ids = super::item_vec(n)?;
            for _ in 0..n {
                ids.push(c.u32()?);
            }
            Bound::new(
                py,
                Ref {
                    node,
                    creation,
                    ids,
                },
            )?
            .into_any()
        }
        tag::PORT | tag::NEW_PORT | tag::V4_PORT => return Err(EtfError::UnsupportedTerm("port")),
        tag::NEW_FUN | tag::EXPORT | tag::FUN => return Err(EtfError::UnsupportedTerm("fun")),
        tag::BIT_BINARY => return Err(EtfError::UnsupportedTerm("bitstring")),
        tag::COMPRESSED => return Err(EtfError::UnsupportedTerm("compressed term")),
        tag::ATOM_CACHE_REF | tag::DIST_HEADER | tag::LOCAL => {
            return Err(EtfError::UnsupportedTerm("distribution-only encoding"))
        }
        tag => return Err(EtfError::UnknownTag { tag, at }),
    })
}

/// `i64` converts through `PyLong_FromLongLong`; pyo3's `i128` path goes
/// through a byte array and was most of the cost of a list of integers.
fn int(py: Python<'_>, v: i64) -> Bound<'_, PyAny> {
    let Ok(i) = v.into_pyobject(py);
    i.into_any()
}

/// Atoms are strings, except the few that mean a Python constant.
fn atom<'py>(py: Python<'py>, name: &str) -> Bound<'py, PyAny> {
    match name {
        "true" => PyBool::new(py, true).to_owned().into_any(),
        "false" => PyBool::new(py, false).to_owned().into_any(),
        "none" | "nil" | "undefined" => py.None().into_bound(py),
        _ => PyString::intern(py, name).into_any(),
    }
}

/// A binary is text when it is valid UTF-8, bytes otherwise. Its bytes
/// are checked once and copied once: `PyString::new` would run CPython's
/// UTF-8 decoder over text already checked here (the second check was a
/// fifth of a 1 MiB echo's port time, docs/performance.md).
fn binary<'py>(py: Python<'py>, b: &[u8]) -> R<Bound<'py, PyAny>> {
    if b.is_ascii() {
        return ascii(py, b);
    }
    // Text beyond ASCII needs CPython's decoder to pick the width of the
    // `str` and transcode; Rust's check comes first so that bytes that
    // are not text (often invalid from their first bytes on) cost no
    // UnicodeDecodeError, which would copy the whole binary.
    Ok(match std::str::from_utf8(b) {
        Ok(s) => PyString::new(py, s).into_any(),
        Err(_) => PyBytes::new(py, b).into_any(),
    })
}

/// A `str` of ASCII `b`, made by copying: an ASCII `str` stores exactly
/// these bytes (one byte per character, PEP 393's compact ASCII form).
fn ascii<'py>(py: Python<'py>, b: &[u8]) -> R<Bound<'py, PyAny>> {
    let len = pyo3::ffi::Py_ssize_t::try_from(b.len()).map_err(|_| EtfError::NoMemory(b.len()))?;
    // SAFETY: PyUnicode_New(len, 127) returns a new compact ASCII string
    // (or NULL with an exception set, turned into an error here) whose
    // PyUnicode_DATA holds `len` one-byte characters plus the terminating
    // NUL it wrote; those `len` bytes are filled from `b`, which is ASCII,
    // before the object is seen by any Python code, so it is a valid str.
    unsafe {
        let obj = pyo3::ffi::PyUnicode_New(len, 127);
        let obj = Bound::from_owned_ptr_or_err(py, obj)?;
        let data = pyo3::ffi::PyUnicode_DATA(obj.as_ptr()).cast::<u8>();
        std::ptr::copy_nonoverlapping(b.as_ptr(), data, b.len());
        Ok(obj)
    }
}

fn tuple<'py>(py: Python<'py>, c: &mut Cursor<'_>, n: usize, depth: usize) -> R<Bound<'py, PyAny>> {
    c.expect_items(n, 1)?;
    if n == 2 {
        if let Some(b) = tagged_bytes(py, c)? {
            return Ok(b);
        }
    }
    let mut items = super::item_vec(n)?;
    for _ in 0..n {
        items.push(term(py, c, depth + 1)?);
    }
    Ok(PyTuple::new(py, items)?.into_any())
}

/// `{bytes, Binary}` is how Erlang says "these are bytes, not text".
fn tagged_bytes<'py>(py: Python<'py>, c: &mut Cursor<'_>) -> R<Option<Bound<'py, PyAny>>> {
    let mut probe = c.clone();
    let is_bytes_atom = matches!(
        probe.peek()?,
        tag::SMALL_ATOM_UTF8 | tag::ATOM_UTF8 | tag::SMALL_ATOM | tag::ATOM
    ) && probe.atom()? == "bytes";
    if !is_bytes_atom || probe.peek()? != tag::BINARY {
        return Ok(None);
    }
    probe.u8()?;
    let n = probe.u32()? as usize;
    let b = probe.take(n)?;
    *c = probe;
    Ok(Some(PyBytes::new(py, b).into_any()))
}

/// SMALL_BIG/LARGE_BIG: a sign byte, then `n` little-endian magnitude bytes.
fn big<'py>(py: Python<'py>, c: &mut Cursor<'_>, n: usize) -> R<Bound<'py, PyAny>> {
    let sign = c.u8()?;
    let mag = c.take(n)?;
    let v = if n <= 8 {
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(mag);
        let m = u64::from_le_bytes(buf);
        let v = if sign == 0 {
            i128::from(m)
        } else {
            -i128::from(m)
        };
        match i64::try_from(v) {
            Ok(small) => int(py, small),
            Err(_) => {
                let Ok(i) = v.into_pyobject(py);
                i.into_any()
            }
        }
    } else {
        let m = py
            .get_type::<PyInt>()
            .call_method1("from_bytes", (PyBytes::new(py, mag), "little"))?;
        if sign == 0 {
            m
        } else {
            m.neg()?
        }
    };
    Ok(v)
}

pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etf::encode::encode_term;

    /// `term_to_binary(Bin)` for a binary of any size.
    fn etf_binary(b: &[u8]) -> Vec<u8> {
        let mut v = vec![super::super::VERSION, tag::BINARY];
        v.extend_from_slice(&(b.len() as u32).to_be_bytes());
        v.extend_from_slice(b);
        v
    }

    fn check_str(py: Python<'_>, bytes: &[u8]) {
        let etf = etf_binary(bytes);
        let v = decode_term(py, &etf).unwrap();
        let s = v.cast::<PyString>().expect("valid UTF-8 decodes to str");
        let expected = std::str::from_utf8(bytes).unwrap();
        assert_eq!(s.to_str().unwrap(), expected);
        // Equal to (and hashed like) the str CPython builds itself.
        let built = PyString::new(py, expected);
        assert!(s.as_any().eq(built.as_any()).unwrap());
        assert_eq!(s.hash().unwrap(), built.hash().unwrap());
        assert_eq!(s.len().unwrap(), built.len().unwrap());
        let isascii: bool = s.call_method0("isascii").unwrap().extract().unwrap();
        assert_eq!(isascii, expected.is_ascii());
        let mut out = Vec::new();
        encode_term(&v, &mut out).unwrap();
        assert_eq!(out, etf, "round trip");
    }

    #[test]
    fn ascii_and_utf8_binaries_of_every_size_decode_to_equal_strs_and_round_trip() {
        Python::initialize();
        Python::attach(|py| {
            check_str(py, b"");
            check_str(py, b"a");
            check_str(py, b"hello, world\n\0\x7f");
            check_str(py, &vec![b'x'; 1 << 20]);
            let mut mixed = vec![b'y'; (1 << 20) + 3];
            mixed.extend_from_slice("\u{e9}".as_bytes());
            check_str(py, &mixed);
            check_str(py, "caf\u{e9} \u{20ac} \u{1d11e}".as_bytes());
            check_str(py, "\u{20ac}".repeat(300_000).as_bytes());
        });
    }

    #[test]
    fn binaries_that_are_not_utf8_decode_to_bytes_and_round_trip_as_bytes() {
        Python::initialize();
        Python::attach(|py| {
            let mut big = vec![b'x'; 1 << 20];
            big.push(0xff);
            for bytes in [&b"\xff"[..], b"abc\x80", b"\xed\xa0\x80", b"\xc3", &big] {
                let etf = etf_binary(bytes);
                let v = decode_term(py, &etf).unwrap();
                let b = v.cast::<PyBytes>().expect("invalid UTF-8 decodes to bytes");
                assert_eq!(b.as_bytes(), bytes);
                let mut out = Vec::new();
                encode_term(&v, &mut out).unwrap();
                assert_eq!(out, etf, "round trip");
            }
        });
    }
}
