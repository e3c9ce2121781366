//! libFuzzer target: one incoming frame through the packet decoder and the
//! ETF -> Python converter; whatever converts goes back through the
//! encoder and must decode again. A panic or a crash is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyo3::prelude::*;
use pyport::etf::{decode::decode_term, encode::encode_term};
use pyport::protocol::{decode_message, Inbound};

fuzz_target!(|data: &[u8]| {
    Python::initialize();
    Python::attach(|py| {
        if let Inbound::Reply(reply) = decode_message(py, data) {
            assert!(
                decode_term(py, &reply).is_ok(),
                "the port's own reply must be valid ETF"
            );
        }
        if let Ok(obj) = decode_term(py, data) {
            let mut out = Vec::new();
            if encode_term(&obj, &mut out).is_ok() {
                assert!(decode_term(py, &out).is_ok(), "re-encoded term must decode");
            }
        }
    });
});
