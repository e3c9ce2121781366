//! The wire protocol (docs/protocol.md, version `PROTOCOL_VERSION`), the
//! Rust side of it in one place: its version, the atoms of every envelope
//! Rust builds or matches, turning an incoming frame into a message for
//! Python, and the replies the port builds by itself.

use crate::error::EtfError;
use crate::etf::{decode, encode, skip, tag, Cursor, VERSION};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};

/// The version announced in `{ready, #{protocol => V, ...}}`. Python sends
/// `ready` in port mode (it reads this as `_pyport.PROTOCOL_VERSION`);
/// `pyport-echo` sends it itself.
pub const PROTOCOL_VERSION: u32 = 3;

/// The envelope atoms, spelled once.
pub mod atoms {
    // Erlang -> port.
    pub const TASK: &str = "task";
    pub const EXEC: &str = "exec";
    pub const EVAL: &str = "eval";
    pub const CALL_REPLY: &str = "call_reply";
    pub const STOP: &str = "stop";
    /// Actors (docs/actors.md): a start awaits a `result` like a task; a
    /// message whose term has no Python form still reaches the mailbox.
    pub const ACTOR_START: &str = "actor_start";
    pub const ACTOR_MSG: &str = "actor_msg";
    /// The task option that asks for no `result` (`spawn_task`).
    pub const REPLY: &str = "reply";

    // Port -> Erlang.
    pub const READY: &str = "ready";
    pub const PROTOCOL: &str = "protocol";
    pub const PYTHON: &str = "python";
    pub const OS_PID: &str = "os_pid";
    pub const MODE: &str = "mode";
    pub const RESULT: &str = "result";
    pub const OK: &str = "ok";
    pub const ERROR: &str = "error";
    pub const BAD_PACKET: &str = "bad_packet";
    pub const TOO_LARGE: &str = "too_large";
    pub const UNCONVERTIBLE: &str = "unconvertible";

    // Streams (docs/streams.md): the start Rust may answer by itself, and
    // that answer.
    pub const STREAM_START: &str = "stream_start";
    pub const STREAM_END: &str = "stream_end";

    // `pyport-echo` only: its `mode`, and its `bad_packet` reason.
    pub const ECHO: &str = "echo";
    pub const UNDECODABLE: &str = "undecodable";
}

/// What one incoming frame turned into.
pub enum Inbound<'py> {
    /// A message for Python to dispatch.
    Message(Bound<'py, PyAny>),
    /// A reply payload (no frame header) the port answers with itself.
    Reply(Vec<u8>),
}

/// Message tags whose second element is an id awaiting a `result`.
const REPLYING: [&str; 4] = [atoms::TASK, atoms::EXEC, atoms::EVAL, atoms::ACTOR_START];

/// Python's name of the exception an unconvertible task argument raises.
const TYPE_ERROR: &str = "TypeError";

/// Decodes a frame. Top-level tuple elements are decoded one by one, so
/// that an argument outside the type table costs only that task an error
/// reply, while broken bytes are reported as `bad_packet`.
pub fn decode_message<'py>(py: Python<'py>, frame: &[u8]) -> Inbound<'py> {
    match decode_elements(py, frame) {
        Ok(msg) => msg,
        Err(e) => Inbound::Reply(bad_packet(&e.to_string())),
    }
}

fn decode_elements<'py>(py: Python<'py>, frame: &[u8]) -> Result<Inbound<'py>, EtfError> {
    let mut c = Cursor::new(frame);
    c.version()?;
    let arity = match c.peek()? {
        tag::SMALL_TUPLE => {
            c.u8()?;
            c.u8()? as usize
        }
        tag::LARGE_TUPLE => {
            c.u8()?;
            c.u32()? as usize
        }
        _ => {
            let term = decode::term(py, &mut c, 0)?;
            c.finish()?;
            // `stop` is the one bare-atom message; give Python a uniform tuple.
            if term
                .cast::<PyString>()
                .is_ok_and(|s| s.to_str().is_ok_and(|s| s == atoms::STOP))
            {
                return Ok(Inbound::Message(PyTuple::new(py, [term])?.into_any()));
            }
            return Ok(Inbound::Message(term));
        }
    };
    c.expect_items(arity, 1)?;
    let mut items: Vec<Bound<'py, PyAny>> = Vec::with_capacity(arity);
    let mut first_error: Option<(usize, EtfError)> = None;
    for i in 0..arity {
        let start = c.clone();
        match decode::term(py, &mut c, 1) {
            Ok(v) => items.push(v),
            Err(e) if e.is_malformed() => return Err(e),
            Err(e) => {
                c = start;
                skip::skip_term(&mut c)?;
                first_error.get_or_insert((i, e));
                items.push(py.None().into_bound(py));
            }
        }
    }
    c.finish()?;
    if let Some((index, err)) = first_error {
        let tag = items.first().and_then(|t| {
            t.cast::<PyString>()
                .ok()
                .and_then(|s| s.to_str().ok().map(str::to_owned))
        });
        if index == 2 && arity == 3 && tag.as_deref() == Some(atoms::CALL_REPLY) {
            // An erlang.call() waits for this reply: give it an error it
            // can raise rather than drop the reply as a bad packet.
            return Ok(Inbound::Message(unconvertible_reply(
                py,
                &items[1],
                &err.to_string(),
            )?));
        }
        if index == 2 && arity == 3 && tag.as_deref() == Some(atoms::ACTOR_MSG) {
            // The actor's flow control counts every message: Python gets
            // `('actor_msg', Id, None, Reason)` and drops it, counted.
            let reason = PyString::new(py, &err.to_string());
            return Ok(Inbound::Message(
                PyTuple::new(
                    py,
                    [
                        items[0].clone(),
                        items[1].clone(),
                        py.None().into_bound(py),
                        reason.into_any(),
                    ],
                )?
                .into_any(),
            ));
        }
        if index >= 2 && tag.as_deref() == Some(atoms::STREAM_START) {
            // The stream's consumer waits for its end, not for a result.
            return Ok(Inbound::Reply(stream_python_error(
                &items[1],
                TYPE_ERROR,
                &err.to_string(),
            )?));
        }
        let replying = tag.is_some_and(|t| REPLYING.contains(&t.as_str()));
        if index >= 2 && replying {
            // Always a TypeError on the wire, whatever Python raised while
            // converting: the argument is what the caller got wrong.
            return Ok(Inbound::Reply(python_error(
                &items[1],
                TYPE_ERROR,
                &err.to_string(),
            )?));
        }
        return Err(err);
    }
    Ok(Inbound::Message(PyTuple::new(py, items)?.into_any()))
}

/// `('call_reply', CallId, ('error', ('unconvertible', Reason)))`: what
/// Python gets for a reply whose value has no Python form (a fun, a port).
fn unconvertible_reply<'py>(
    py: Python<'py>,
    call_id: &Bound<'py, PyAny>,
    reason: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let inner = PyTuple::new(
        py,
        [
            PyString::new(py, atoms::UNCONVERTIBLE),
            PyString::new(py, reason),
        ],
    )?;
    let error = PyTuple::new(
        py,
        [PyString::new(py, atoms::ERROR).into_any(), inner.into_any()],
    )?;
    let message = PyTuple::new(
        py,
        [
            PyString::new(py, atoms::CALL_REPLY).into_any(),
            call_id.clone(),
            error.into_any(),
        ],
    )?;
    Ok(message.into_any())
}

/// Starts `{error, {bad_packet, _}}`, version byte included; the caller
/// appends the reason.
fn bad_packet_envelope() -> Vec<u8> {
    let mut out = vec![VERSION];
    encode::small_tuple_header(2, &mut out);
    encode::atom(atoms::ERROR, &mut out);
    encode::small_tuple_header(2, &mut out);
    encode::atom(atoms::BAD_PACKET, &mut out);
    out
}

/// `{error, {bad_packet, Reason}}`.
pub fn bad_packet(reason: &str) -> Vec<u8> {
    let mut out = bad_packet_envelope();
    encode::text(reason, &mut out);
    out
}

/// `{error, {bad_packet, {too_large, Size, Max}}}`.
pub fn too_large(size: usize, max: usize) -> Vec<u8> {
    let mut out = bad_packet_envelope();
    encode::small_tuple_header(3, &mut out);
    encode::atom(atoms::TOO_LARGE, &mut out);
    encode::small_int(size as i64, &mut out);
    encode::small_int(max as i64, &mut out);
    out
}

/// Appends `{result, Id, ` with the version byte first; the caller
/// appends the outcome.
fn result_envelope(id: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> Result<(), EtfError> {
    crate::etf::reserve(out, encode::HEADROOM)?;
    out.push(VERSION);
    encode::small_tuple_header(3, out);
    encode::atom(atoms::RESULT, out);
    encode::encode(id, 1, out)
}

/// `{result, Id, {error, {python, Type, Message, <<>>}}}` for an id that
/// was itself decoded from the same message, so it always re-encodes.
pub fn python_error(id: &Bound<'_, PyAny>, kind: &str, message: &str) -> Result<Vec<u8>, EtfError> {
    let mut out = Vec::new();
    result_envelope(id, &mut out)?;
    encode::small_tuple_header(2, &mut out);
    encode::atom(atoms::ERROR, &mut out);
    encode::small_tuple_header(4, &mut out);
    encode::atom(atoms::PYTHON, &mut out);
    encode::text(kind, &mut out);
    encode::text(message, &mut out);
    encode::text("", &mut out);
    Ok(out)
}

/// `{stream_end, Id, {error, {python, Type, Message, <<>>}}}`: a stream
/// that could not start, for an id decoded from the same message.
pub fn stream_python_error(
    id: &Bound<'_, PyAny>,
    kind: &str,
    message: &str,
) -> Result<Vec<u8>, EtfError> {
    let mut out = Vec::new();
    crate::etf::reserve(&mut out, encode::HEADROOM)?;
    out.push(VERSION);
    encode::small_tuple_header(3, &mut out);
    encode::atom(atoms::STREAM_END, &mut out);
    encode::encode(id, 1, &mut out)?;
    python_error_payload(kind, message, &mut out);
    Ok(out)
}

/// Appends `{error, {python, Type, Message, <<>>}}`.
fn python_error_payload(kind: &str, message: &str, out: &mut Vec<u8>) {
    encode::small_tuple_header(2, out);
    encode::atom(atoms::ERROR, out);
    encode::small_tuple_header(4, out);
    encode::atom(atoms::PYTHON, out);
    encode::text(kind, out);
    encode::text(message, out);
    encode::text("", out);
}

/// Appends `{result, Id, {ok, Value}}` (no version byte handling needed by
/// the caller).
pub fn result_ok(
    id: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
    out: &mut Vec<u8>,
) -> Result<(), EtfError> {
    result_envelope(id, out)?;
    crate::etf::reserve(out, encode::HEADROOM)?;
    encode::small_tuple_header(2, out);
    encode::atom(atoms::OK, out);
    encode::encode(value, 2, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etf::decode::decode_term;

    fn reply_of(frame: &[u8]) -> String {
        Python::initialize();
        Python::attach(|py| match decode_message(py, frame) {
            Inbound::Reply(bytes) => decode_term(py, &bytes).unwrap().repr().unwrap().to_string(),
            Inbound::Message(m) => format!("message {}", m.repr().unwrap()),
        })
    }

    /// `{task, 7, m, f, [Arg], #{}, #{}}` with `arg` spliced in raw.
    fn task_with_arg(arg: &[u8]) -> Vec<u8> {
        let mut v = vec![VERSION, tag::SMALL_TUPLE, 7];
        encode::atom(atoms::TASK, &mut v);
        v.extend_from_slice(&[tag::SMALL_INTEGER, 7]);
        encode::atom("m", &mut v);
        encode::atom("f", &mut v);
        v.extend_from_slice(&[tag::LIST, 0, 0, 0, 1]);
        v.extend_from_slice(arg);
        v.push(tag::NIL);
        v.extend_from_slice(&[tag::MAP, 0, 0, 0, 0, tag::MAP, 0, 0, 0, 0]);
        v
    }

    #[test]
    fn a_task_decodes_to_a_tuple_with_atoms_as_str() {
        let frame = task_with_arg(&[tag::SMALL_INTEGER, 5]);
        assert_eq!(
            reply_of(&frame),
            "message ('task', 7, 'm', 'f', [5], {}, {})"
        );
    }

    #[test]
    fn stop_becomes_a_one_element_tuple() {
        let mut frame = vec![VERSION];
        encode::atom(atoms::STOP, &mut frame);
        assert_eq!(reply_of(&frame), "message ('stop',)");
    }

    #[test]
    fn an_unconvertible_argument_costs_only_that_task_a_type_error() {
        // A port identifier: well-formed, but outside the type table.
        let mut port = vec![tag::NEW_PORT];
        encode::atom("n@h", &mut port);
        port.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(
            reply_of(&task_with_arg(&port)),
            "('result', 7, ('error', ('python', 'TypeError', 'cannot convert Erlang port to Python', '')))"
        );
    }

    #[test]
    fn an_unconvertible_stream_argument_ends_that_stream() {
        let mut port = vec![tag::NEW_PORT];
        encode::atom("n@h", &mut port);
        port.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        let mut frame = task_with_arg(&port);
        // The same fields under the stream's tag: `task` -> `stream_start`.
        let mut start = vec![VERSION, tag::SMALL_TUPLE, 7];
        encode::atom(atoms::STREAM_START, &mut start);
        start.extend_from_slice(&frame.split_off(3 + 2 + atoms::TASK.len()));
        assert_eq!(
            reply_of(&start),
            "('stream_end', 7, ('error', ('python', 'TypeError', 'cannot convert Erlang port to Python', '')))"
        );
    }

    #[test]
    fn a_call_reply_without_a_python_form_becomes_an_error_reply() {
        // {call_reply, 9, {ok, Port}}
        let mut frame = vec![VERSION, tag::SMALL_TUPLE, 3];
        encode::atom(atoms::CALL_REPLY, &mut frame);
        frame.extend_from_slice(&[tag::SMALL_INTEGER, 9, tag::SMALL_TUPLE, 2]);
        encode::atom(atoms::OK, &mut frame);
        frame.push(tag::NEW_PORT);
        encode::atom("n@h", &mut frame);
        frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(
            reply_of(&frame),
            "message ('call_reply', 9, ('error', ('unconvertible', 'cannot convert Erlang port to Python')))"
        );
    }

    #[test]
    fn an_unconvertible_actor_message_still_reaches_its_mailbox() {
        // {actor_msg, 9, Port}
        let mut frame = vec![VERSION, tag::SMALL_TUPLE, 3];
        encode::atom(atoms::ACTOR_MSG, &mut frame);
        frame.extend_from_slice(&[tag::SMALL_INTEGER, 9, tag::NEW_PORT]);
        encode::atom("n@h", &mut frame);
        frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(
            reply_of(&frame),
            "message ('actor_msg', 9, None, 'cannot convert Erlang port to Python')"
        );
    }

    #[test]
    fn garbage_and_truncated_bytes_are_bad_packets() {
        assert_eq!(
            reply_of(b"hello"),
            "('error', ('bad_packet', 'unsupported external term format version 104 (expected 131)'))"
        );
        let frame = task_with_arg(&[tag::SMALL_INTEGER, 5]);
        let cut = &frame[..frame.len() - 3];
        assert!(reply_of(cut).starts_with("('error', ('bad_packet', 'truncated term"));
        assert!(reply_of(&[VERSION, 250]).contains("unknown term tag 250"));
    }

    #[test]
    fn an_oversize_reply_names_size_and_limit() {
        Python::initialize();
        Python::attach(|py| {
            let t = decode_term(py, &too_large(100, 10)).unwrap();
            assert_eq!(
                t.repr().unwrap().to_string(),
                "('error', ('bad_packet', ('too_large', 100, 10)))"
            );
        });
    }
}
