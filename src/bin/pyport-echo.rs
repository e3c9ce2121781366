//! `pyport-echo`: the benchmark floor. It speaks the wire protocol (`PROTOCOL_VERSION`) on fds
//! 3/4 with the same framing code as `pyport`, but answers every task
//! without Python: `{task, Id, M, F, [X], ...}` -> `{result, Id, {ok, X}}`
//! (`{ok, Args}` for any other argument list). What `make bench` measures
//! against it is the cost of the pipe, the framing and the Erlang side.
//!
//! Streams the same way: `{stream_start, Id, M, F, [N], _, Opts}` streams
//! the integers 0..N-1 and `[N, Size]` N binaries of Size bytes, within the
//! credit (`window`, then `stream_credit`) and `batch` bound, as pyport does.

use eetf::{Atom, FixInteger, List, Map, Term, Tuple};
use pyport::framing::{Frame, FrameReader, FrameWriter};
use pyport::protocol::{atoms, PROTOCOL_VERSION};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Write};

fn atom(name: &str) -> Term {
    Term::from(Atom::from(name))
}

fn queue(writer: &mut FrameWriter, term: &Term) -> io::Result<()> {
    let frame = writer.begin();
    term.encode(writer.buffer())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    writer
        .finish(frame)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
}

/// `spawn_task` sends `reply => false` in the task's options.
fn wants_reply(task: &[Term]) -> bool {
    let Some(Term::Map(opts)) = task.get(6) else {
        return true;
    };
    opts.map.get(&atom(atoms::REPLY)) != Some(&atom("false"))
}

enum Answer {
    Reply(Term),
    Nothing,
    Stop,
}

fn reply(packet: &[u8]) -> Answer {
    let decoded = Term::decode(packet);
    if let Ok(Term::Atom(a)) = &decoded {
        if a.name == atoms::STOP {
            return Answer::Stop;
        }
    }
    let Ok(Term::Tuple(Tuple { elements })) = decoded else {
        return Answer::Reply(Term::from(Tuple::from(vec![
            atom(atoms::ERROR),
            Term::from(Tuple::from(vec![
                atom(atoms::BAD_PACKET),
                atom(atoms::UNDECODABLE),
            ])),
        ])));
    };
    match (elements.first(), elements.get(1), elements.get(4)) {
        (Some(Term::Atom(tag)), Some(_), Some(_))
            if tag.name == atoms::TASK && !wants_reply(&elements) =>
        {
            Answer::Nothing
        }
        (Some(Term::Atom(tag)), Some(id), Some(args)) if tag.name == atoms::TASK => {
            let value = match args {
                Term::List(List { elements }) if elements.len() == 1 => elements[0].clone(),
                // term_to_binary packs a list of small integers as bytes.
                Term::ByteList(b) if b.bytes.len() == 1 => Term::from(FixInteger::from(b.bytes[0])),
                other => other.clone(),
            };
            Answer::Reply(Term::from(Tuple::from(vec![
                atom(atoms::RESULT),
                id.clone(),
                Term::from(Tuple::from(vec![atom(atoms::OK), value])),
            ])))
        }
        _ => Answer::Nothing,
    }
}

/// One stream of the floor: what is left to send and what may be sent.
struct Stream {
    next: i32,
    count: i32,
    chunk: Option<Vec<u8>>,
    credit: i64,
    batch: i64,
}

fn small(term: Option<&Term>) -> Option<i64> {
    match term {
        Some(Term::FixInteger(i)) => Some(i64::from(i.value)),
        _ => None,
    }
}

/// The integers of an argument list (term_to_binary may pack it as bytes).
fn integers(args: &Term) -> Vec<i64> {
    match args {
        Term::List(List { elements }) => elements.iter().filter_map(|t| small(Some(t))).collect(),
        Term::ByteList(b) => b.bytes.iter().map(|&b| i64::from(b)).collect(),
        _ => Vec::new(),
    }
}

fn opt(opts: Option<&Term>, key: &str) -> Option<i64> {
    match opts {
        Some(Term::Map(m)) => small(m.map.get(&atom(key))),
        _ => None,
    }
}

/// Handles the stream packets; None for any other packet.
fn stream_packet(packet: &[u8], streams: &mut HashMap<Term, Stream>) -> Option<Vec<Term>> {
    // The tag is the first atom: the task path does not decode twice.
    let head = &packet[..packet.len().min(16)];
    if !head.windows(7).any(|w| w == b"stream_") && !head.windows(6).any(|w| w == b"cancel") {
        return None;
    }
    let Ok(Term::Tuple(Tuple { elements })) = Term::decode(packet) else {
        return None;
    };
    let (Some(Term::Atom(tag)), Some(id)) = (elements.first(), elements.get(1)) else {
        return None;
    };
    match (tag.name.as_str(), elements.len()) {
        ("stream_start", 7) => {
            let args = integers(&elements[4]);
            let stream = Stream {
                next: 0,
                count: args.first().copied().unwrap_or(0) as i32,
                chunk: args.get(1).map(|&size| vec![b'x'; size as usize]),
                credit: opt(elements.get(6), "window").unwrap_or(16),
                batch: opt(elements.get(6), "batch").unwrap_or(1024).max(1),
            };
            streams.insert(id.clone(), stream);
        }
        ("stream_credit", 3) => {
            if let Some(s) = streams.get_mut(id) {
                s.credit += small(elements.get(2)).unwrap_or(0);
            }
        }
        ("stream_cancel", 2) | ("cancel", 2) => {
            streams.remove(id)?;
            return Some(vec![stream_end(id, Some("cancelled"))]);
        }
        _ => return None,
    }
    let mut out = Vec::new();
    let Some(s) = streams.get_mut(id) else {
        return Some(out);
    };
    while s.credit > 0 && s.next < s.count {
        let n = s.credit.min(s.batch).min(i64::from(s.count - s.next)) as i32;
        let items: Vec<Term> = (s.next..s.next + n)
            .map(|i| match &s.chunk {
                Some(c) => Term::from(eetf::Binary::from(c.as_slice())),
                None => Term::from(FixInteger::from(i)),
            })
            .collect();
        s.next += n;
        s.credit -= i64::from(n);
        out.push(Term::from(Tuple::from(vec![
            atom("stream_data"),
            id.clone(),
            Term::from(List::from(items)),
        ])));
    }
    if s.next >= s.count {
        streams.remove(id);
        out.push(stream_end(id, None));
    }
    Some(out)
}

fn stream_end(id: &Term, error: Option<&str>) -> Term {
    let end = match error {
        None => atom("done"),
        Some(reason) => Term::from(Tuple::from(vec![atom(atoms::ERROR), atom(reason)])),
    };
    Term::from(Tuple::from(vec![atom(atoms::STREAM_END), id.clone(), end]))
}

fn main() -> io::Result<()> {
    // The Erlang VM opens fds 3 and 4 for a `nouse_stdio` port; duplicates
    // share their pipes (and blocking mode), so this reads and writes them.
    let mut input = File::from(pyport::fd::dup_cloexec(3)?);
    let mut output = File::from(pyport::fd::dup_cloexec(4)?);
    let mut reader = FrameReader::new(64 << 20);
    let mut writer = FrameWriter::new();
    let mut streams: HashMap<Term, Stream> = HashMap::new();
    let info = Map::from([
        (
            atom(atoms::PROTOCOL),
            Term::from(FixInteger::from(PROTOCOL_VERSION as i32)),
        ),
        (
            atom(atoms::PYTHON),
            Term::from(eetf::Binary::from(&b"none"[..])),
        ),
        (
            atom(atoms::OS_PID),
            Term::from(FixInteger::from(std::process::id() as i32)),
        ),
        (atom(atoms::MODE), atom(atoms::ECHO)),
    ]);
    queue(
        &mut writer,
        &Term::from(Tuple::from(vec![atom(atoms::READY), Term::from(info)])),
    )?;
    writer.write_to(&mut output)?;
    loop {
        if reader.fill_from(&mut input, 64 * 1024)? == 0 {
            return Ok(());
        }
        while let Some(frame) = reader.next_frame() {
            if let Frame::Packet(p) = frame {
                if let Some(packets) = stream_packet(p, &mut streams) {
                    for t in &packets {
                        queue(&mut writer, t)?;
                    }
                    continue;
                }
                match reply(p) {
                    Answer::Reply(r) => queue(&mut writer, &r)?,
                    Answer::Nothing => {}
                    Answer::Stop => {
                        writer.write_to(&mut output)?;
                        return Ok(());
                    }
                }
            }
        }
        // Blocking fd: write_to returns only once everything is written.
        writer.write_to(&mut output)?;
        output.flush()?;
    }
}
