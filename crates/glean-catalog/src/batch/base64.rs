//! `[byte]` values as Glean reads and writes them: base64 without padding.
//!
//! Glean's decoder (hsthrift's Thrift JSON protocol) never fails: it maps
//! every character through a table where anything outside the base64 alphabet
//! (including `=`) becomes 0xff, and decodes groups of four characters into
//! three bytes, a trailing group of three into two, of two into one, of one
//! into nothing. `decode_lenient` reproduces that, so the bytes stored are the
//! bytes real Glean would store; `check_strict` says what a correct writer
//! must never send.

use base64::Engine as _;

/// Unpadded standard base64, the form Glean emits and our writers must send.
pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

fn sextet(c: u8) -> u8 {
    match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => 0xff,
    }
}

/// Decodes exactly as Glean does, garbage in, garbage out.
pub fn decode_lenient(text: &[u8]) -> Vec<u8> {
    let d0 = |a: u8, b: u8| (sextet(a) << 2) | (sextet(b) >> 4);
    let d1 = |b: u8, c: u8| ((sextet(b) << 4) & 0xf0) | (sextet(c) >> 2);
    let d2 = |c: u8, d: u8| ((sextet(c) << 6) & 0xc0) | sextet(d);
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let mut chunks = text.chunks_exact(4);
    for q in &mut chunks {
        out.extend_from_slice(&[d0(q[0], q[1]), d1(q[1], q[2]), d2(q[2], q[3])]);
    }
    match *chunks.remainder() {
        [a, b, c] => out.extend_from_slice(&[d0(a, b), d1(b, c)]),
        [a, b] => out.push(d0(a, b)),
        _ => {}
    }
    out
}

/// Why a base64 string would be misread by Glean, if it would.
pub fn check_strict(text: &str) -> Result<(), String> {
    if text.contains('=') {
        return Err("base64 padding `=` is not understood by Glean (it decodes to 0xff); send unpadded base64".into());
    }
    if let Some(c) = text.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '+' || *c == '/')) {
        return Err(format!("{c:?} is not a base64 character"));
    }
    if text.len() % 4 == 1 {
        return Err("base64 text of length 4n+1 cannot encode whole bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_unpadded() {
        for bytes in [&b""[..], b"h", b"hi", b"hi!", b"\x00\xff\x10\x80"] {
            assert_eq!(decode_lenient(encode(bytes).as_bytes()), bytes);
        }
        assert_eq!(encode(b"hi"), "aGk");
    }

    #[test]
    fn padding_decodes_to_garbage_like_glean() {
        assert_eq!(decode_lenient(b"aGk="), b"hi\xff");
        assert!(check_strict("aGk=").is_err());
        assert!(check_strict("aGk").is_ok());
    }

    #[test]
    fn invalid_characters_are_not_errors_when_lenient() {
        assert_eq!(decode_lenient(b"a").len(), 0);
        assert_eq!(decode_lenient(b"!!").len(), 1);
        assert!(check_strict("a-b_").is_err());
        assert!(check_strict("abcde").is_err());
    }
}
