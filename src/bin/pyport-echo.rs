//! `pyport-echo`: the benchmark floor. It speaks wire protocol v1 on fds
//! 3/4 with the same framing code as `pyport`, but answers every task
//! without Python: `{task, Id, M, F, [X], ...}` -> `{result, Id, {ok, X}}`
//! (`{ok, Args}` for any other argument list). What `make bench` measures
//! against it is the cost of the pipe, the framing and the Erlang side.

use eetf::{Atom, FixInteger, List, Map, Term, Tuple};
use pyport::framing::{Frame, FrameReader, FrameWriter};
use pyport::protocol::{atoms, PROTOCOL_VERSION};
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

fn main() -> io::Result<()> {
    // The Erlang VM opens fds 3 and 4 for a `nouse_stdio` port; duplicates
    // share their pipes (and blocking mode), so this reads and writes them.
    let mut input = File::from(pyport::fd::dup_cloexec(3)?);
    let mut output = File::from(pyport::fd::dup_cloexec(4)?);
    let mut reader = FrameReader::new(64 << 20);
    let mut writer = FrameWriter::new();
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
