//! The records a FastCGI server sends: `upstream::fastcgi::record::Decoder`,
//! on any bytes.
//!
//! Whatever the bytes, the decoder answers records, "more please", or an
//! error, and never panics; the records it finds are the same whether the
//! bytes arrive at once or in reads of any size; and its buffer never holds
//! more than one record and one read.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sessiongate::upstream::fastcgi::record::{Decoder, HEADER_LEN, MAX_CONTENT, Record};

/// Every record the decoder takes out of `pieces`, and how it stopped.
fn decode<'a>(pieces: impl Iterator<Item = &'a [u8]>) -> (Vec<Record>, bool) {
    let mut decoder = Decoder::new();
    let mut records = Vec::new();
    for piece in pieces {
        decoder.buffer().extend_from_slice(piece);
        loop {
            match decoder.next_record() {
                Ok(Some(record)) => records.push(record),
                Ok(None) => break,
                Err(_) => return (records, true),
            }
        }
        // At most one partial record (with its padding) and one piece.
        assert!(decoder.buffer().len() < HEADER_LEN + MAX_CONTENT + 256 + piece.len());
    }
    (records, false)
}

fuzz_target!(|data: &[u8]| {
    let whole = decode(std::iter::once(data));
    let step = 1 + usize::from(data.first().copied().unwrap_or(0) % 32);
    let pieces = decode(data.chunks(step));
    assert_eq!(whole, pieces, "step {step}");
    for record in &whole.0 {
        if let Record::Stdout(bytes) | Record::Stderr(bytes) = record {
            assert!(bytes.len() <= MAX_CONTENT);
        }
    }
});
