//! Proptest strategies for Erlang terms, shared by the round-trip tests
//! (`conversion.rs`) and the fuzzer (`fuzz.rs`); each includes this module
//! with `mod strategies;`. Terms are `eetf` values, so the bytes our
//! decoder gets come from an independent encoder.

// Each test crate uses its own subset of these.
#![allow(dead_code)]

use eetf::{Atom, BigInteger, Binary, FixInteger, Float, List, Map, Pid, Reference, Term, Tuple};
use num_bigint::BigInt;
use proptest::prelude::*;
use std::collections::HashMap;

/// `term_to_binary` of `t`, as `eetf` writes it.
pub fn eetf_bytes(t: &Term) -> Vec<u8> {
    let mut v = Vec::new();
    t.encode(&mut v).expect("eetf encodes");
    v
}

/// The atoms with a meaning in the type table, and two plain ones.
pub fn table_atom() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "ok",
        "error",
        "true",
        "false",
        "none",
        "nil",
        "undefined",
        "x",
    ])
    .prop_map(str::to_owned)
}

/// Any atom name: the table's, the protocol's message tags, identifiers,
/// and any Unicode.
pub fn any_atom() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "ok",
            "error",
            "true",
            "false",
            "none",
            "nil",
            "undefined",
            "task",
            "cancel",
            "stop",
            "result",
            "exec",
            "eval",
            "call_reply",
        ])
        .prop_map(str::to_owned),
        "[a-z_][a-zA-Z0-9_@]{0,30}",
        // Any Unicode, up to 255 characters as Erlang allows.
        "\\PC{0,40}",
    ]
}

/// Sizes of the leaves [`leaf`] makes.
#[derive(Clone, Copy)]
pub struct LeafSizes {
    /// Bytes of a negative bignum's magnitude, at most (exclusive).
    pub bignum_bytes: usize,
    /// Bytes of a non-UTF-8 binary, at most (exclusive).
    pub binary_bytes: usize,
}

/// A term with nothing inside: every integer size, finite floats, atoms
/// from `atoms`, text and byte binaries, pids and references.
pub fn leaf(
    atoms: impl Strategy<Value = String> + 'static,
    sizes: LeafSizes,
) -> impl Strategy<Value = Term> {
    prop_oneof![
        // eetf 0.12 encodes a list of FixIntegers below 256 as a STRING_EXT,
        // negative ones included (as `i as u8`); negatives come from the
        // BigInteger arm instead, which eetf encodes correctly.
        (0..=i32::MAX).prop_map(|v| Term::from(FixInteger::from(v))),
        any::<i128>().prop_map(|v| Term::from(BigInteger {
            value: BigInt::from(v)
        })),
        prop::collection::vec(any::<u8>(), 0..sizes.bignum_bytes).prop_map(|b| Term::from(
            BigInteger {
                value: BigInt::from_bytes_le(num_bigint::Sign::Minus, &b) - 1
            }
        )),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| Term::from(Float::try_from(f).unwrap())),
        atoms.prop_map(|a| Term::from(Atom::from(a))),
        ".{0,20}".prop_map(|s| Term::from(Binary::from(s.as_bytes()))),
        prop::collection::vec(any::<u8>(), 0..sizes.binary_bytes)
            .prop_map(|b| Term::from(Binary::from(b))),
        (any::<u32>(), any::<u32>(), any::<u32>())
            .prop_map(|(i, s, c)| Term::from(Pid::new("a@b", i, s, c))),
        (prop::collection::vec(any::<u32>(), 1..5), any::<u32>()).prop_map(|(id, creation)| {
            Term::from(Reference {
                node: Atom::from("a@b"),
                id,
                creation,
            })
        }),
    ]
}

/// Lists of up to `max - 1` of `inner`'s terms.
fn list_of(inner: impl Strategy<Value = Term>, max: usize) -> impl Strategy<Value = Term> {
    prop::collection::vec(inner, 0..max).prop_map(|v| Term::from(List::from(v)))
}

/// Tuples of up to `max - 1` of `inner`'s terms.
fn tuple_of(inner: impl Strategy<Value = Term>, max: usize) -> impl Strategy<Value = Term> {
    prop::collection::vec(inner, 0..max).prop_map(|v| Term::from(Tuple::from(v)))
}

/// Terms whose conversion the type table fully determines: map keys are
/// integers, which Python can hash and which stay distinct after
/// conversion.
pub fn hashable_term() -> impl Strategy<Value = Term> {
    let sizes = LeafSizes {
        bignum_bytes: 40,
        binary_bytes: 20,
    };
    leaf(table_atom(), sizes).prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            list_of(inner.clone(), 8),
            tuple_of(inner.clone(), 8),
            prop::collection::hash_map(any::<i64>(), inner, 0..6).prop_map(|m| Term::from(
                Map::from(
                    m.into_iter()
                        .map(|(k, v)| (Term::from(BigInteger::from(k)), v))
                        .collect::<HashMap<_, _>>()
                )
            )),
        ]
    })
}

/// Any term, deeper and larger, with maps keyed by anything (lists and
/// maps included, which Python cannot hash).
pub fn any_term() -> impl Strategy<Value = Term> {
    let sizes = LeafSizes {
        bignum_bytes: 300,
        binary_bytes: 40,
    };
    leaf(any_atom(), sizes).prop_recursive(8, 128, 10, |inner| {
        prop_oneof![
            list_of(inner.clone(), 10),
            tuple_of(inner.clone(), 10),
            prop::collection::vec((inner.clone(), inner), 0..6)
                .prop_map(|kv| Term::from(Map::from(kv.into_iter().collect::<HashMap<_, _>>()))),
        ]
    })
}
