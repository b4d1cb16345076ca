//! Canonical JSON text: string literals as the checker writes them.
//!
//! Stored keys and values are compared as text, so every string must be
//! written one way only: `"` and `\` escaped, newline, return and tab as
//! `\n`, `\r`, `\t`, other control characters as `\u00XX`, everything
//! else as it is. This runs for every string of every fact, hence the fast
//! path over plain bytes.

use std::fmt::Write as _;

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(out: &mut String, s: &str) {
    out.push('"');
    let mut rest = s;
    while let Some(i) = first_escape(rest.as_bytes()) {
        out.push_str(&rest[..i]);
        let b = rest.as_bytes()[i];
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ => {
                let _ = write!(out, "\\u{b:04x}");
            }
        }
        // The escaped byte is ASCII, so the rest starts on a character boundary.
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

/// Index of the first `"`, `\` or control character in `bytes`. Strings are
/// tested 8 bytes at a time (most need no escape at all): `(x - n) & !x`
/// has the high bit set in the first byte of `x` below `n` (for `n <= 0x80`;
/// bytes after it may be marked too), and `x ^ c` has a zero byte where `x` has `c`.
fn first_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    for (chunk, start) in bytes.chunks(8).zip((0..).step_by(8)) {
        // A short last chunk is padded with spaces, which need no escape.
        let mut eight = [b' '; 8];
        eight[..chunk.len()].copy_from_slice(chunk);
        let x = u64::from_le_bytes(eight);
        let marks = below(x, 0x20) | below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1);
        if marks != 0 {
            return Some(start + marks.trailing_zeros() as usize / 8);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain byte-by-byte escaping `write_str` must agree with.
    fn reference(s: &str) -> String {
        let mut out = String::from("\"");
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    #[test]
    fn write_str_escapes_like_the_plain_loop() {
        let mut inputs: Vec<String> = vec![String::new(), "plain ascii text, long enough for words".into(), "é ü ✓ 𝄞 — unicode".into()];
        for special in ['"', '\\', '\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é'] {
            for at in 0..20 {
                let mut s: String = "abcdefghijklmnopqrstu".chars().take(at).collect();
                s.push(special);
                s.push_str("tail-of-the-string");
                inputs.push(s);
            }
        }
        for s in inputs {
            let mut out = String::new();
            write_str(&mut out, &s);
            assert_eq!(out, reference(&s), "{s:?}");
        }
    }
}
