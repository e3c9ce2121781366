//! Fuzzing the port's input path: the packet decoder
//! (`pyport::protocol::decode_message`), the ETF -> Python converter
//! (`decode_term`), the Python -> ETF encoder on whatever came out, and the
//! `{packet, 4}` frame reader.
//!
//! Inputs are structured-but-corrupted: valid encodings (protocol messages
//! with arbitrary arguments, deep nesting, huge bignums, atoms with invalid
//! UTF-8, thousands of distinct atoms, lying length fields) put through
//! random byte flips, overwrites, truncations, insertions, deletions and
//! splices, next to plain arbitrary bytes.
//!
//! Properties, for every input:
//! - nothing panics, overflows the stack or allocates what a length field
//!   claims without the bytes being there;
//! - a frame the decoder answers by itself gets a reply that is valid ETF
//!   (`eetf` decodes it) of the documented shape;
//! - whatever the converter produced encodes back, and that encoding
//!   decodes again (the round trip through Python is stable);
//! - the frame reader hands out exactly the frames a reference splitter
//!   finds, for any way the stream is cut into reads.
//!
//! `PYPORT_FUZZ_CASES` sets the number of cases per property (default 2000,
//! quick enough for `cargo test`); docs/robustness.md says how to run it
//! for long.

mod strategies;

use eetf::{Atom, Binary, FixInteger, List, Map, Reference, Term, Tuple};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use pyo3::prelude::*;
use pyport::etf::{decode::decode_term, encode::encode_term};
use pyport::framing::{Frame, FrameReader};
use pyport::protocol::{decode_message, Inbound};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use strategies::{any_atom, any_term, eetf_bytes};

/// What the decoder made of the inputs: converted terms, messages for
/// Python, replies of its own (shown at the end, to see the mix is good).
static CONVERTED: AtomicU64 = AtomicU64::new(0);
static MESSAGES: AtomicU64 = AtomicU64::new(0);
static REPLIES: AtomicU64 = AtomicU64::new(0);

const NIL: u8 = 106;
const LIST: u8 = 108;
const SMALL_TUPLE: u8 = 104;
const MAP: u8 = 116;
const LARGE_BIG: u8 = 111;
const ATOM_UTF8: u8 = 118;
const SMALL_ATOM_UTF8: u8 = 119;
const BINARY: u8 = 109;

fn cases() -> u32 {
    std::env::var("PYPORT_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn config() -> Config {
    Config {
        cases: cases(),
        // A failure is worth keeping: proptest-regressions/ next to this file.
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "test/rust/fuzz.proptest-regressions",
        ))),
        ..Config::default()
    }
}

// -- seeds: valid encodings --------------------------------------------------

fn reference() -> impl Strategy<Value = Term> {
    (prop::collection::vec(any::<u32>(), 3..4), any::<u32>()).prop_map(|(id, creation)| {
        Term::from(Reference {
            node: Atom::from("nonode@nohost"),
            id,
            creation,
        })
    })
}

fn tuple(items: Vec<Term>) -> Term {
    Term::from(Tuple::from(items))
}

fn atom(name: &str) -> Term {
    Term::from(Atom::from(name))
}

/// Messages Erlang sends, with arbitrary contents where the protocol has
/// room for them.
fn message() -> impl Strategy<Value = Term> {
    let name = || {
        prop_oneof![
            any_atom().prop_map(|a| Term::from(Atom::from(a))),
            ".{0,12}".prop_map(|s| Term::from(Binary::from(s.as_bytes())))
        ]
    };
    prop_oneof![
        (
            reference(),
            name(),
            name(),
            prop::collection::vec(any_term(), 0..5),
            prop::collection::vec((any_atom(), any_term()), 0..4),
            prop::option::of(0..100_000i32),
        )
            .prop_map(|(id, m, f, args, kwargs, deadline)| {
                let kwargs = Map::from(
                    kwargs
                        .into_iter()
                        .map(|(k, v)| (atom(&k), v))
                        .collect::<std::collections::HashMap<_, _>>(),
                );
                let mut opts = std::collections::HashMap::new();
                if let Some(d) = deadline {
                    opts.insert(atom("deadline_ms"), Term::from(FixInteger::from(d)));
                }
                tuple(vec![
                    atom("task"),
                    id,
                    m,
                    f,
                    Term::from(List::from(args)),
                    Term::from(kwargs),
                    Term::from(Map::from(opts)),
                ])
            }),
        reference().prop_map(|id| tuple(vec![atom("cancel"), id])),
        (reference(), ".{0,40}").prop_map(|(id, code)| tuple(vec![
            atom("exec"),
            id,
            Term::from(Binary::from(code.as_bytes()))
        ])),
        (any::<u32>(), any_term()).prop_map(|(id, t)| tuple(vec![
            atom("call_reply"),
            Term::from(FixInteger::from(id as i32)),
            tuple(vec![atom("ok"), t])
        ])),
        Just(atom("stop")),
        any_term(),
    ]
}

/// Nesting around `inner`, as deep as asked: lists, tuples and maps mixed.
fn nested(kinds: &[u8], inner: &[u8]) -> Vec<u8> {
    let mut out = vec![131];
    for &k in kinds {
        match k % 3 {
            0 => out.extend_from_slice(&[LIST, 0, 0, 0, 1]),
            1 => out.extend_from_slice(&[SMALL_TUPLE, 1]),
            _ => out.extend_from_slice(&[MAP, 0, 0, 0, 1, 97, 1]),
        }
    }
    out.extend_from_slice(inner);
    for &k in kinds.iter().rev() {
        if k % 3 == 0 {
            out.push(NIL);
        }
    }
    out
}

/// Encodings written by hand because they are the hostile ones.
fn hostile() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Deep nesting, below, at and far beyond the converter's limit.
        (
            prop::collection::vec(any::<u8>(), 990..1010),
            Just(vec![NIL])
        )
            .prop_map(|(k, i)| nested(&k, &i)),
        (1usize..200_000).prop_map(|depth| nested(&vec![0u8; depth], &[NIL])),
        (1usize..100_000).prop_map(|depth| nested(&vec![1u8; depth], &[97, 1])),
        // Huge bignums (up to 2^(8 * 200000)), and ones whose length lies.
        (1usize..200_000, any::<bool>(), any::<u8>()).prop_map(|(n, neg, b)| {
            let mut out = vec![131, LARGE_BIG];
            out.extend_from_slice(&(n as u32).to_be_bytes());
            out.push(u8::from(neg));
            out.extend(std::iter::repeat_n(b, n));
            out
        }),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(n, digits)| {
            let mut out = vec![131, LARGE_BIG];
            out.extend_from_slice(&n.to_be_bytes());
            out.push(0);
            out.extend(digits);
            out
        }),
        // Atoms: invalid UTF-8, over-long, and thousands of distinct ones.
        prop::collection::vec(any::<u8>(), 0..300).prop_map(|name| {
            let mut out = vec![131, ATOM_UTF8];
            out.extend_from_slice(&(name.len() as u16).to_be_bytes());
            out.extend(name);
            out
        }),
        (1usize..5000).prop_map(|n| {
            let mut out = vec![131, LIST];
            out.extend_from_slice(&(n as u32).to_be_bytes());
            for i in 0..n {
                let name = format!("fuzz_atom_{i}_{}", i.wrapping_mul(2_654_435_761));
                out.push(SMALL_ATOM_UTF8);
                out.push(name.len() as u8);
                out.extend_from_slice(name.as_bytes());
            }
            out.push(NIL);
            out
        }),
        // Length fields that promise far more than is there.
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(n, rest)| {
            let mut out = vec![131, LIST];
            out.extend_from_slice(&n.to_be_bytes());
            out.extend(rest);
            out
        }),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(n, rest)| {
            let mut out = vec![131, BINARY];
            out.extend_from_slice(&n.to_be_bytes());
            out.extend(rest);
            out
        }),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(n, rest)| {
            let mut out = vec![131, 105];
            out.extend_from_slice(&n.to_be_bytes());
            out.extend(rest);
            out
        }),
        (any::<u32>(), prop::collection::vec(any::<u8>(), 0..64)).prop_map(|(n, rest)| {
            let mut out = vec![131, MAP];
            out.extend_from_slice(&n.to_be_bytes());
            out.extend(rest);
            out
        }),
    ]
}

// -- mutations ----------------------------------------------------------------

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    /// Copy a slice of the input over another place (confuses lengths).
    Splice(usize, usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, 0u8..8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (
            at,
            prop_oneof![
                any::<u8>(),
                prop::sample::select(vec![0u8, 0xff, 97, 104, 106, 108, 111, 116, 118, 131])
            ]
        )
            .prop_map(|(i, b)| Mutation::Set(i, b)),
        at.prop_map(Mutation::Truncate),
        (at, prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (at, 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (at, at, 1usize..32).prop_map(|(a, b, n)| Mutation::Splice(a, b, n)),
    ]
}

fn apply(mut data: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for m in mutations {
        let len = data.len();
        match *m {
            Mutation::Flip(i, bit) if len > 0 => data[i % len] ^= 1 << bit,
            Mutation::Set(i, b) if len > 0 => data[i % len] = b,
            Mutation::Truncate(i) => data.truncate(i % (len + 1)),
            Mutation::Insert(i, ref bytes) => {
                let at = i % (len + 1);
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete(i, n) if len > 0 => {
                let at = i % len;
                data.drain(at..(at + n).min(len));
            }
            Mutation::Splice(a, b, n) if len > 0 => {
                let (a, b) = (a % len, b % len);
                let n = n.min(len - a).min(len - b);
                let piece = data[a..a + n].to_vec();
                data[b..b + n].copy_from_slice(&piece);
            }
            _ => {}
        }
    }
    data
}

/// Inputs: mutated valid encodings most of the time, plain bytes sometimes.
fn input() -> impl Strategy<Value = Vec<u8>> {
    let seed = prop_oneof![
        4 => message().prop_map(|t| eetf_bytes(&t)),
        2 => hostile(),
        1 => prop::collection::vec(any::<u8>(), 0..512).prop_map(|mut b| {
            b.insert(0, 131);
            b
        }),
    ];
    (seed, prop::collection::vec(mutation(), 0..4)).prop_map(|(s, m)| apply(s, &m))
}

// -- the checks -------------------------------------------------------------

/// Whatever `data` is: no panic, a valid error reply when the decoder
/// answers, and a stable round trip for what it converts.
fn check(data: &[u8]) -> Result<(), TestCaseError> {
    Python::attach(|py| {
        match decode_term(py, data) {
            Ok(obj) => {
                CONVERTED.fetch_add(1, Ordering::Relaxed);
                let mut out = Vec::new();
                if encode_term(&obj, &mut out).is_ok() {
                    let again = decode_term(py, &out);
                    prop_assert!(
                        again.is_ok(),
                        "our own encoding of a decoded term does not decode: {:?}",
                        again.err()
                    );
                    // And eetf (Erlang's view) accepts it as well.
                    prop_assert!(Term::decode(&out[..]).is_ok());
                }
            }
            Err(e) => {
                // Errors render (they travel as text in replies).
                e.to_string();
            }
        }
        match decode_message(py, data) {
            Inbound::Message(m) => {
                MESSAGES.fetch_add(1, Ordering::Relaxed);
                // Messages render, whatever they hold.
                m.repr().ok();
            }
            Inbound::Reply(reply) => {
                REPLIES.fetch_add(1, Ordering::Relaxed);
                let term = Term::decode(&reply[..]);
                prop_assert!(term.is_ok(), "reply is not ETF: {:?}", reply);
                let shape_ok = match term.unwrap() {
                    Term::Tuple(t) => {
                        matches!(
                            (&t.elements[..], t.elements.len()),
                            ([Term::Atom(a), _], 2) if a.name == "error"
                        ) || matches!(
                            &t.elements[..],
                            [Term::Atom(a), _, Term::Tuple(_)] if a.name == "result"
                        )
                    }
                    _ => false,
                };
                prop_assert!(shape_ok, "reply of an unexpected shape");
            }
        }
        Ok(())
    })
}

/// The frames in `stream`, split by a reference implementation.
fn reference_frames(stream: &[u8], max: usize) -> Vec<Result<Vec<u8>, usize>> {
    let mut out = Vec::new();
    let mut at = 0;
    while stream.len() - at >= 4 {
        let size = u32::from_be_bytes(stream[at..at + 4].try_into().unwrap()) as usize;
        at += 4;
        if size > max {
            out.push(Err(size));
            at += size.min(stream.len() - at);
            continue;
        }
        if stream.len() - at < size {
            break;
        }
        out.push(Ok(stream[at..at + size].to_vec()));
        at += size;
    }
    out
}

fn fuzz_framing(stream: &[u8], cuts: &[usize], max: usize) -> Result<(), TestCaseError> {
    let mut reader = FrameReader::new(max);
    let mut got = Vec::new();
    let mut at = 0;
    let mut pieces = cuts.iter().map(|c| c % 97 + 1).chain(std::iter::repeat(64));
    while at < stream.len() {
        let n = pieces.next().unwrap().min(stream.len() - at);
        reader.extend(&stream[at..at + n]);
        at += n;
        while let Some(frame) = reader.next_frame() {
            got.push(match frame {
                Frame::Packet(p) => Ok(p.to_vec()),
                Frame::TooLarge { size } => Err(size),
            });
        }
    }
    prop_assert_eq!(got, reference_frames(stream, max));
    Ok(())
}

fn framed_stream() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::collection::vec(any::<u8>(), 0..200).prop_map(|p| {
                let mut f = (p.len() as u32).to_be_bytes().to_vec();
                f.extend(p);
                f
            }),
            prop::collection::vec(any::<u8>(), 0..16),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

#[test]
fn mutated_and_arbitrary_packets_never_break_the_decoder() {
    Python::initialize();
    let started = Instant::now();
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let result = runner.run(&input(), |data| check(&data));
    eprintln!(
        "fuzz decoder: {} cases in {:.1} s ({} converted, {} messages, {} error replies)",
        cases(),
        started.elapsed().as_secs_f64(),
        CONVERTED.load(Ordering::Relaxed),
        MESSAGES.load(Ordering::Relaxed),
        REPLIES.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}

#[test]
fn frame_reader_matches_a_reference_splitter_for_any_cut() {
    let started = Instant::now();
    let mut runner = proptest::test_runner::TestRunner::new(config());
    let strategy = (
        framed_stream(),
        prop::collection::vec(any::<usize>(), 0..40),
        prop_oneof![Just(64usize), Just(1 << 20), 0usize..300],
    );
    let mutated = (strategy, prop::collection::vec(mutation(), 0..3))
        .prop_map(|((s, c, m), muts)| (apply(s, &muts), c, m));
    let result = runner.run(&mutated, |(stream, cuts, max)| {
        fuzz_framing(&stream, &cuts, max)
    });
    eprintln!(
        "fuzz framing: {} cases in {:.1} s",
        cases(),
        started.elapsed().as_secs_f64()
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
