//! Name-value pairs (FastCGI 1.0 specification, section 3.4): how the
//! script's environment travels in `FCGI_PARAMS`.
//!
//! A length below 128 takes one byte; a longer one four, with the top bit
//! set. The pairs form one stream, cut into records wherever it falls.

use bytes::{BufMut, BytesMut};

use super::record::{self, PARAMS};

/// The longest name or value a length can say (31 bits).
const MAX_LENGTH: usize = 0x7FFF_FFFF;

/// Appends the pairs as `FCGI_PARAMS` records, and the empty record that
/// ends the stream. A pair too long to encode is left out (nothing near
/// that size can come from a request the proxy accepted).
pub fn put_params<'a>(out: &mut BytesMut, pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) {
    let mut stream = BytesMut::new();
    for (name, value) in pairs {
        if name.len() > MAX_LENGTH || value.len() > MAX_LENGTH {
            tracing::warn!(target: "fastcgi", "a parameter too long for FastCGI was left out");
            continue;
        }
        put_length(&mut stream, name.len());
        put_length(&mut stream, value.len());
        stream.put_slice(name);
        stream.put_slice(value);
    }
    record::put_stream(out, PARAMS, &stream);
    record::put_header(out, PARAMS, 0);
}

/// One length, in one byte or four.
fn put_length(out: &mut BytesMut, len: usize) {
    match u8::try_from(len) {
        Ok(short) if short < 0x80 => out.put_u8(short),
        // MAX_LENGTH fits in 31 bits.
        _ => out.put_u32(u32::try_from(len).unwrap_or(0x7FFF_FFFF) | 0x8000_0000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_lengths() {
        let long = vec![b'v'; 300];
        let mut out = BytesMut::new();
        put_params(&mut out, [(&b"A"[..], &b"bc"[..]), (b"LONG", &long)]);
        let content = &out[8..out.len() - 8];
        assert_eq!(&content[..5], b"\x01\x02Abc");
        assert_eq!(&content[5..10], b"\x04\x80\x00\x01\x2c");
        assert_eq!(&content[10..14], b"LONG");
        assert_eq!(content.len(), 14 + 300);
        // The stream ends with an empty PARAMS record.
        assert_eq!(&out[out.len() - 8..], [1, PARAMS, 0, 1, 0, 0, 0, 0]);
    }
}
