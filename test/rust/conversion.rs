//! Round trips through the codec for every row of DESIGN.md's type table,
//! with `eetf` as an independent encoder/decoder on the Erlang side:
//! eetf-encoded term -> our decoder -> Python object -> our encoder ->
//! eetf-decoded term, compared with what the table says must come back.

mod strategies;

use eetf::{Atom, BigInteger, Binary, FixInteger, Float, List, Map, Pid, Reference, Term, Tuple};
use num_bigint::BigInt;
use proptest::prelude::*;
use pyo3::prelude::*;
use pyport::etf::{decode::decode_term, encode::encode_term};
use strategies::{eetf_bytes, hashable_term};

/// Erlang -> Python -> Erlang through our codec.
fn through_python(t: &Term) -> Term {
    Python::initialize();
    Python::attach(|py| {
        let obj = decode_term(py, &eetf_bytes(t)).expect("decodes");
        let mut out = Vec::new();
        encode_term(&obj, &mut out).expect("encodes");
        Term::decode(&out[..]).expect("eetf decodes our output")
    })
}

/// What the type table says comes back for `t`, with every integer in one
/// representation so FixInteger/BigInteger choices do not matter.
fn expected(t: &Term) -> Term {
    match t {
        Term::Atom(a) => match a.name.as_str() {
            "true" | "false" => t.clone(),
            "none" | "nil" | "undefined" => Term::from(Atom::from("none")),
            name => Term::from(Binary::from(name.as_bytes())),
        },
        Term::FixInteger(i) => Term::from(BigInteger::from(i.value)),
        Term::BigInteger(b) => Term::from(b.clone()),
        Term::ByteList(b) => Term::from(List::from(
            b.bytes
                .iter()
                .map(|&x| Term::from(BigInteger::from(x)))
                .collect::<Vec<_>>(),
        )),
        Term::List(l) => Term::from(List::from(
            l.elements.iter().map(expected).collect::<Vec<_>>(),
        )),
        Term::Tuple(tu) => {
            if let [Term::Atom(a), Term::Binary(b)] = &tu.elements[..] {
                if a.name == "bytes" {
                    return Term::from(b.clone());
                }
            }
            Term::from(Tuple::from(
                tu.elements.iter().map(expected).collect::<Vec<_>>(),
            ))
        }
        Term::Map(m) => Term::from(Map::from(
            m.map
                .iter()
                .map(|(k, v)| (expected(k), expected(v)))
                .collect::<std::collections::HashMap<_, _>>(),
        )),
        other => other.clone(),
    }
}

fn normalized(t: &Term) -> Term {
    match t {
        Term::FixInteger(i) => Term::from(BigInteger::from(i.value)),
        Term::List(l) => Term::from(List::from(
            l.elements.iter().map(normalized).collect::<Vec<_>>(),
        )),
        Term::Tuple(tu) => Term::from(Tuple::from(
            tu.elements.iter().map(normalized).collect::<Vec<_>>(),
        )),
        Term::Map(m) => Term::from(Map::from(
            m.map
                .iter()
                .map(|(k, v)| (normalized(k), normalized(v)))
                .collect::<std::collections::HashMap<_, _>>(),
        )),
        other => other.clone(),
    }
}

fn assert_row(t: Term) {
    assert_eq!(normalized(&through_python(&t)), expected(&t), "term {t}");
}

#[test]
fn integers_of_every_size_round_trip_as_integers() {
    for v in [
        0i64,
        1,
        255,
        256,
        -1,
        i32::MAX as i64,
        i32::MIN as i64,
        i64::MAX,
        i64::MIN,
    ] {
        assert_row(Term::from(BigInteger::from(v)));
    }
    let huge: BigInt = BigInt::from(2).pow(2000) + 12345;
    assert_row(Term::from(BigInteger {
        value: huge.clone(),
    }));
    assert_row(Term::from(BigInteger { value: -huge }));
}

#[test]
fn floats_round_trip_and_non_finite_python_floats_become_atoms() {
    assert_row(Term::from(Float::try_from(1.5).unwrap()));
    assert_row(Term::from(Float::try_from(-0.0).unwrap()));
    Python::initialize();
    Python::attach(|py| {
        for (expr, atom) in [
            ("float('nan')", "nan"),
            ("float('inf')", "infinity"),
            ("float('-inf')", "neg_infinity"),
        ] {
            let obj = py
                .eval(&std::ffi::CString::new(expr).unwrap(), None, None)
                .unwrap();
            let mut out = Vec::new();
            encode_term(&obj, &mut out).unwrap();
            assert_eq!(
                Term::decode(&out[..]).unwrap(),
                Term::from(Atom::from(atom))
            );
        }
    });
}

#[test]
fn atoms_become_str_except_booleans_and_none() {
    for name in ["ok", "true", "false", "none", "nil", "undefined", "héllo"] {
        assert_row(Term::from(Atom::from(name)));
    }
}

#[test]
fn binaries_are_text_when_utf8_and_bytes_otherwise() {
    assert_row(Term::from(Binary::from("héllo".as_bytes())));
    assert_row(Term::from(Binary::from(&[0xff, 0x00, 0xc3][..])));
    assert_row(Term::from(Tuple::from(vec![
        Term::from(Atom::from("bytes")),
        Term::from(Binary::from("text".as_bytes())),
    ])));
    Python::initialize();
    Python::attach(|py| {
        let bad = decode_term(py, &eetf_bytes(&Term::from(Binary::from(&[0xff][..])))).unwrap();
        assert_eq!(bad.get_type().name().unwrap().to_string(), "bytes");
        let tagged = eetf_bytes(&Term::from(Tuple::from(vec![
            Term::from(Atom::from("bytes")),
            Term::from(Binary::from("text".as_bytes())),
        ])));
        let obj = decode_term(py, &tagged).unwrap();
        assert_eq!(obj.get_type().name().unwrap().to_string(), "bytes");
    });
}

#[test]
fn pids_and_refs_round_trip_unchanged() {
    assert_row(Term::from(Pid::new("node@host", 123, 4, 1_700_000_000)));
    assert_row(Term::from(Reference {
        node: Atom::from("nonode@nohost"),
        id: vec![1, 2, 3],
        creation: 7,
    }));
}

#[test]
fn nesting_beyond_the_limit_is_an_error_both_ways() {
    let mut t = Term::from(List::nil());
    for _ in 0..(pyport::etf::MAX_DEPTH + 5) {
        t = Term::from(List::from(vec![t]));
    }
    Python::initialize();
    Python::attach(|py| {
        let err = decode_term(py, &eetf_bytes(&t)).unwrap_err();
        assert!(err.to_string().contains("deeper than"), "{err}");
        let locals = pyo3::types::PyDict::new(py);
        py.run(
            c"deep = []\nfor _ in range(1200): deep = [deep]",
            None,
            Some(&locals),
        )
        .unwrap();
        let deep = locals.get_item("deep").unwrap().unwrap();
        let err = encode_term(&deep, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("deeper than"), "{err}");
    });
}

#[test]
fn unconvertible_python_objects_name_their_type() {
    Python::initialize();
    Python::attach(|py| {
        let obj = py.eval(c"object()", None, None).unwrap();
        let err = encode_term(&obj, &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "cannot convert Python object of type 'object' to an Erlang term; return a list"
            ),
            "{err}"
        );
        assert!(err.to_string().contains("result => handle"), "{err}");
        let generator = py.eval(c"(i for i in ())", None, None).unwrap();
        let err = encode_term(&generator, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("as a stream"), "{err}");
        let nested = py.eval(c"{'k': [1, {2, 3}]}", None, None).unwrap();
        let err = encode_term(&nested, &mut Vec::new()).unwrap_err();
        assert!(err.to_string().contains("'set'"), "{err}");
    });
}

#[test]
fn terms_outside_the_table_are_type_errors_not_crashes() {
    Python::initialize();
    Python::attach(|py| {
        let improper = eetf::ImproperList::from((
            vec![Term::from(FixInteger::from(1))],
            Term::from(FixInteger::from(2)),
        ));
        let err = decode_term(py, &eetf_bytes(&Term::from(improper))).unwrap_err();
        assert!(!err.is_malformed());
        assert!(err.to_string().contains("improper list"));
        let port = Term::from(eetf::Port::from(("n@h", 3)));
        assert!(decode_term(py, &eetf_bytes(&port))
            .unwrap_err()
            .to_string()
            .contains("port"));
        let unhashable = Term::from(Map::from([(
            Term::from(List::from(vec![Term::from(FixInteger::from(1))])),
            Term::from(FixInteger::from(1)),
        )]));
        assert!(decode_term(py, &eetf_bytes(&unhashable))
            .unwrap_err()
            .to_string()
            .contains("unhashable"));
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn generated_terms_come_back_as_the_type_table_says(t in hashable_term()) {
        prop_assert_eq!(normalized(&through_python(&t)), expected(&t));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        Python::initialize();
        Python::attach(|py| {
            let mut framed = vec![131];
            framed.extend_from_slice(&bytes);
            // Only that neither panics matters here.
            decode_term(py, &framed).ok();
            pyport::protocol::decode_message(py, &framed);
        });
    }
}
