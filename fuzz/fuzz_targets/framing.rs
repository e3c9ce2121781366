//! libFuzzer target: a byte stream through the `{packet, 4}` frame reader,
//! cut into reads by the first bytes of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pyport::framing::{Frame, FrameReader};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let mut reader = FrameReader::new(4096);
    let step = usize::from(cut) + 1;
    for piece in stream.chunks(step) {
        reader.extend(piece);
        while let Some(frame) = reader.next_frame() {
            match frame {
                Frame::Packet(p) => assert!(p.len() <= 4096),
                Frame::TooLarge { size } => assert!(size > 4096),
            }
        }
    }
});
