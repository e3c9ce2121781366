//! Python objects -> external term format (DESIGN.md's type table).
//!
//! Anything outside the table is an error naming the Python type, never a
//! silent `repr`.

use super::{reserve, tag, MAX_DEPTH, MAX_INT_BITS, VERSION};
use crate::error::EtfError;
use crate::etf::decode::type_name;
use crate::terms::{Atom, Pid, Ref};
use pyo3::prelude::*;
use pyo3::types::{
    PyBool, PyByteArray, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple,
};

type R<T> = Result<T, EtfError>;

/// Room made before each term for its fixed-size part (the longest is a
/// pid or reference header with a 255-character node name), so that no
/// small append below has to grow `out` with an allocation that aborts.
/// Variable-size parts (binaries, big integers, reference ids) reserve
/// their own length.
pub const HEADROOM: usize = 2048;

/// Encodes a whole term, version byte first, appending to `out`.
pub fn encode_term(obj: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> R<()> {
    reserve(out, HEADROOM)?;
    out.push(VERSION);
    encode(obj, 0, out)
}

/// Appends one term (no version byte).
pub fn encode(obj: &Bound<'_, PyAny>, depth: usize, out: &mut Vec<u8>) -> R<()> {
    if depth > MAX_DEPTH {
        return Err(EtfError::TooDeep(MAX_DEPTH));
    }
    reserve(out, HEADROOM)?;
    // Exact builtin types first: one pointer comparison each, and the
    // common case of large lists of ints or strings.
    if let Ok(i) = obj.cast_exact::<PyInt>() {
        if let Ok(v) = i.extract::<i64>() {
            small_int(v, out);
            return Ok(());
        }
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        if let Ok(text) = s.to_str() {
            return binary(text.as_bytes(), out);
        }
    }
    if obj.is_none() {
        atom(none_atom::current(), out);
    } else if let Ok(b) = obj.cast::<PyBool>() {
        atom(if b.is_true() { "true" } else { "false" }, out);
    } else if let Ok(i) = obj.cast::<PyInt>() {
        int(i, out)?;
    } else if let Ok(f) = obj.cast::<PyFloat>() {
        float(f.value(), out);
    } else if let Ok(s) = obj.cast::<PyString>() {
        let text = s.to_str().map_err(|_| {
            EtfError::Value("str holds lone surrogates and is not valid UTF-8".into())
        })?;
        binary(text.as_bytes(), out)?;
    } else if let Ok(b) = obj.cast::<PyBytes>() {
        binary(b.as_bytes(), out)?;
    } else if let Ok(b) = obj.cast::<PyByteArray>() {
        // SAFETY: the slice is only copied into `out` by `binary`, which
        // runs no Python code, so nothing can resize or free the
        // bytearray's buffer while it is borrowed (we hold the GIL).
        binary(unsafe { b.as_bytes() }, out)?;
    } else if let Ok(l) = obj.cast::<PyList>() {
        if l.is_empty() {
            out.push(tag::NIL);
        } else {
            out.push(tag::LIST);
            out.extend_from_slice(&len32(l.len())?.to_be_bytes());
            for item in l.iter() {
                encode(&item, depth + 1, out)?;
            }
            out.push(tag::NIL);
        }
    } else if let Ok(t) = obj.cast::<PyTuple>() {
        tuple_header(t.len(), out)?;
        for item in t.iter() {
            encode(&item, depth + 1, out)?;
        }
    } else if let Ok(d) = obj.cast::<PyDict>() {
        out.push(tag::MAP);
        out.extend_from_slice(&len32(d.len())?.to_be_bytes());
        for (k, v) in d.iter() {
            encode(&k, depth + 1, out)?;
            encode(&v, depth + 1, out)?;
        }
    } else if let Ok(a) = obj.cast::<Atom>() {
        atom(&a.get().name, out);
    } else if let Ok(p) = obj.cast::<Pid>() {
        pid(p.get(), out);
    } else if let Ok(r) = obj.cast::<Ref>() {
        reference(r.get(), out)?;
    } else if obj.hasattr("__erlang__")? {
        // The object's own term form (docs/handles.md): only types outside
        // the table get here, so the table's types pay nothing for it. A
        // hook returning itself ends at MAX_DEPTH.
        let term = obj.call_method0("__erlang__")?;
        encode(&term, depth + 1, out)?;
    } else {
        return Err(EtfError::UnsupportedType(type_name(obj)));
    }
    Ok(())
}

/// What Python's `None` becomes: `none` (the type table's default), or
/// `nil`/`undefined` for a port (`--none-atom`, application env
/// `none_atom`) or one reply (the task option `none_atom`). Elixir code
/// wants `nil`. All three decode back to `None`, so the choice never
/// breaks a round trip. Read only when a `None` is encoded: the common
/// types above never look at it.
pub mod none_atom {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU8, Ordering};

    const NAMES: [&str; 3] = ["none", "nil", "undefined"];
    /// Index into NAMES, for every encoding of this process.
    static PORT: AtomicU8 = AtomicU8::new(0);

    thread_local! {
        /// An override for the encoding running on this thread (one reply).
        static CALL: Cell<Option<u8>> = const { Cell::new(None) };
    }

    fn index(name: &str) -> Option<u8> {
        NAMES.iter().position(|n| *n == name).map(|i| i as u8)
    }

    /// The atom `None` is written as now.
    pub fn current() -> &'static str {
        let i = CALL
            .with(Cell::get)
            .unwrap_or_else(|| PORT.load(Ordering::Relaxed));
        NAMES[usize::from(i)]
    }

    /// Sets the port's default; false (and nothing changed) for a name
    /// outside `none`, `nil`, `undefined`.
    pub fn set_port(name: &str) -> bool {
        match index(name) {
            Some(i) => {
                PORT.store(i, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Runs `f` with `None` written as `name` on this thread (`None`: the
    /// port's default); false without running it for an unknown name.
    pub fn with<T>(name: Option<&str>, f: impl FnOnce() -> T) -> Option<T> {
        let Some(name) = name else { return Some(f()) };
        let i = index(name)?;
        // Restored even if `f` unwinds, and nested overrides stack.
        struct Restore(Option<u8>);
        impl Drop for Restore {
            fn drop(&mut self) {
                CALL.with(|c| c.set(self.0));
            }
        }
        let _restore = Restore(CALL.with(|c| c.replace(Some(i))));
        Some(f())
    }

    /// The accepted names, for error messages.
    pub fn names() -> &'static [&'static str] {
        &NAMES
    }
}

fn len32(n: usize) -> R<u32> {
    u32::try_from(n).map_err(|_| EtfError::Value(format!("{n} elements exceed the 2^32 limit")))
}

/// A tuple header of the port's own envelopes, which never have more than
/// 255 elements.
pub fn small_tuple_header(n: u8, out: &mut Vec<u8>) {
    out.push(tag::SMALL_TUPLE);
    out.push(n);
}

pub fn tuple_header(n: usize, out: &mut Vec<u8>) -> R<()> {
    counted_header(tag::SMALL_TUPLE, tag::LARGE_TUPLE, n, out)
}

/// Tag `small` and a one-byte count below 256, else `large` and four bytes.
fn counted_header(small: u8, large: u8, n: usize, out: &mut Vec<u8>) -> R<()> {
    if n < 256 {
        out.push(small);
        out.push(n as u8);
    } else {
        out.push(large);
        out.extend_from_slice(&len32(n)?.to_be_bytes());
    }
    Ok(())
}

/// Atoms the port writes itself are short UTF-8; names from Python were
/// checked by `Atom::new`.
pub fn atom(name: &str, out: &mut Vec<u8>) {
    let b = name.as_bytes();
    if b.len() < 256 {
        out.push(tag::SMALL_ATOM_UTF8);
        out.push(b.len() as u8);
    } else {
        out.push(tag::ATOM_UTF8);
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(b);
}

pub fn binary(b: &[u8], out: &mut Vec<u8>) -> R<()> {
    let len = len32(b.len())?;
    reserve(out, 5 + b.len())?;
    out.push(tag::BINARY);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

/// Text the port writes itself (error messages, type names) as a binary.
/// Such text is far below the 4 GiB a binary can hold; anything longer is
/// cut there rather than leaving the reply unsent.
pub fn text(s: &str, out: &mut Vec<u8>) {
    let b = &s.as_bytes()[..s.len().min(u32::MAX as usize)];
    out.push(tag::BINARY);
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

fn float(f: f64, out: &mut Vec<u8>) {
    if f.is_nan() {
        atom("nan", out);
    } else if f.is_infinite() {
        atom(if f > 0.0 { "infinity" } else { "neg_infinity" }, out);
    } else {
        out.push(tag::NEW_FLOAT);
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    }
}

pub fn int(i: &Bound<'_, PyInt>, out: &mut Vec<u8>) -> R<()> {
    if let Ok(v) = i.extract::<i64>() {
        small_int(v, out);
        return Ok(());
    }
    // Beyond 64 bits: let Python produce the magnitude bytes. What it
    // raises (an `int` subclass may override these) reaches the caller.
    let negative = i.lt(0)?;
    let mag = if negative {
        i.neg()?
    } else {
        i.clone().into_any()
    };
    // The bit length is checked before any bytes are made: a result the
    // BEAM could not decode costs no conversion and reaches no log.
    let bits: usize = mag.call_method0("bit_length")?.extract()?;
    if bits > MAX_INT_BITS {
        return Err(EtfError::IntTooLarge { bits });
    }
    let n = bits.div_ceil(8);
    let bytes = mag.call_method1("to_bytes", (n, "little"))?;
    let bytes = bytes.cast::<PyBytes>().map_err(PyErr::from)?;
    reserve(out, 6 + n)?;
    big_header(n, negative, out)?;
    out.extend_from_slice(bytes.as_bytes());
    Ok(())
}

pub fn small_int(v: i64, out: &mut Vec<u8>) {
    if (0..=255).contains(&v) {
        out.push(tag::SMALL_INTEGER);
        out.push(v as u8);
    } else if let Ok(v32) = i32::try_from(v) {
        out.push(tag::INTEGER);
        out.extend_from_slice(&v32.to_be_bytes());
    } else {
        let mag = v.unsigned_abs().to_le_bytes();
        let n = 8 - mag.iter().rev().take_while(|&&b| b == 0).count();
        out.push(tag::SMALL_BIG);
        out.push(n as u8);
        out.push(u8::from(v < 0));
        out.extend_from_slice(&mag[..n]);
    }
}

fn big_header(n: usize, negative: bool, out: &mut Vec<u8>) -> R<()> {
    counted_header(tag::SMALL_BIG, tag::LARGE_BIG, n, out)?;
    out.push(u8::from(negative));
    Ok(())
}

fn pid(p: &Pid, out: &mut Vec<u8>) {
    out.push(tag::NEW_PID);
    atom(&p.node, out);
    out.extend_from_slice(&p.id.to_be_bytes());
    out.extend_from_slice(&p.serial.to_be_bytes());
    out.extend_from_slice(&p.creation.to_be_bytes());
}

fn reference(r: &Ref, out: &mut Vec<u8>) -> R<()> {
    let n = u16::try_from(r.ids.len())
        .map_err(|_| EtfError::Value("reference with too many id words".into()))?;
    reserve(out, HEADROOM + 4 * r.ids.len())?;
    out.push(tag::NEWER_REFERENCE);
    out.extend_from_slice(&n.to_be_bytes());
    atom(&r.node, out);
    out.extend_from_slice(&r.creation.to_be_bytes());
    for id in &r.ids {
        out.extend_from_slice(&id.to_be_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyo3::exceptions::{PyMemoryError, PyOverflowError};

    fn eval<'py>(py: Python<'py>, code: &std::ffi::CStr) -> Bound<'py, PyAny> {
        py.eval(code, None, None).unwrap()
    }

    #[test]
    fn none_becomes_the_atom_chosen_for_one_encoding_only() {
        Python::initialize();
        Python::attach(|py| {
            let obj = eval(py, c"[None]");
            let encoded = |name: Option<&str>| {
                none_atom::with(name, || {
                    let mut out = Vec::new();
                    encode_term(&obj, &mut out).unwrap();
                    out
                })
            };
            let nil = encoded(Some("nil")).unwrap();
            assert!(nil
                .windows(5)
                .any(|w| w == [tag::SMALL_ATOM_UTF8, 3, b'n', b'i', b'l']));
            // Unknown names are refused without encoding; afterwards the
            // default is back.
            assert!(encoded(Some("null")).is_none());
            let none = encoded(None).unwrap();
            assert!(none.windows(4).any(|w| w == b"none"));
            assert!(!none.windows(3).any(|w| w == b"nil"));
        });
    }

    #[test]
    fn the_largest_integer_the_beam_holds_encodes_and_one_bit_more_is_overflow() {
        Python::initialize();
        Python::attach(|py| {
            let largest = eval(py, c"-(1 << 33554367)");
            let mut out = Vec::new();
            encode_term(&largest, &mut out).unwrap();
            assert_eq!(&out[..6], &[VERSION, tag::LARGE_BIG, 0, 0x3f, 0xff, 0xf8]);
            assert_eq!(out[6], 1, "sign");
            assert_eq!(out.len(), 7 + MAX_INT_BITS / 8);

            let mut out = vec![VERSION];
            let err = encode(&eval(py, c"1 << 33554368"), 0, &mut out).unwrap_err();
            assert!(
                matches!(err, EtfError::IntTooLarge { bits: 33554369 }),
                "{err:?}"
            );
            assert_eq!(out, vec![VERSION], "nothing appended");
            let raised = PyErr::from(err);
            assert!(raised.is_instance_of::<PyOverflowError>(py));
            assert!(raised.value(py).to_string().contains("33554368-bit limit"));
        });
    }

    #[test]
    fn an_allocation_that_cannot_be_had_is_memory_error_not_an_abort() {
        let mut out = vec![0u8; 16];
        let err = reserve(&mut out, usize::MAX - 8).unwrap_err();
        assert!(matches!(err, EtfError::NoMemory(_)), "{err:?}");
        assert_eq!(out.len(), 16);
        Python::initialize();
        Python::attach(|py| assert!(PyErr::from(err).is_instance_of::<PyMemoryError>(py)));
        assert!(matches!(
            crate::etf::item_vec::<u64>(usize::MAX / 4),
            Err(EtfError::NoMemory(_))
        ));
    }

    #[test]
    fn an_object_with_an_erlang_hook_encodes_as_what_it_returns() {
        Python::initialize();
        Python::attach(|py| {
            let obj = eval(py, c"type('T', (), {'__erlang__': lambda self: [1]})()");
            let mut out = Vec::new();
            encode_term(&obj, &mut out).unwrap();
            assert_eq!(out, vec![VERSION, tag::LIST, 0, 0, 0, 1, 97, 1, tag::NIL]);
            let selfish = eval(py, c"type('S', (), {'__erlang__': lambda self: self})()");
            let err = encode_term(&selfish, &mut Vec::new()).unwrap_err();
            assert!(matches!(err, EtfError::TooDeep(_)), "{err:?}");
        });
    }

    #[test]
    fn a_bytearray_encodes_as_its_bytes() {
        Python::initialize();
        Python::attach(|py| {
            let mut out = Vec::new();
            encode_term(&eval(py, c"bytearray(b'ab')"), &mut out).unwrap();
            assert_eq!(out, vec![VERSION, tag::BINARY, 0, 0, 0, 2, b'a', b'b']);
        });
    }
}
