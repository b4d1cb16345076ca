//! A reader that refuses JSON nested deeper than Glean's parser allows.
//!
//! Glean parses batches with folly at a recursion limit of 500. serde_json's
//! own limit is 128, so we lift it and enforce 500 here instead, on the raw
//! bytes as they stream past, before the parser can recurse that deep. Only
//! brackets outside strings count.

use std::io::{self, Read};

/// Glean's JSON recursion limit.
pub const MAX_DEPTH: u32 = 500;

/// Wraps a byte stream and fails it once brackets nest deeper than `MAX_DEPTH`.
pub struct DepthLimit<R> {
    inner: R,
    depth: u32,
    in_string: bool,
    escaped: bool,
}

impl<R: Read> DepthLimit<R> {
    /// Watches `inner`.
    pub fn new(inner: R) -> Self {
        DepthLimit { inner, depth: 0, in_string: false, escaped: false }
    }

    fn scan(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &b in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if b == b'\\' {
                    self.escaped = true;
                } else if b == b'"' {
                    self.in_string = false;
                }
                continue;
            }
            match b {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth > MAX_DEPTH {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, TooDeep));
                    }
                }
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for DepthLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.scan(&buf[..n])?;
        Ok(n)
    }
}

/// The error a too-deep document produces (recognisable inside `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error("JSON nested deeper than {MAX_DEPTH} levels (Glean's parser limit)")]
pub struct TooDeep;

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(s: &str) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        DepthLimit::new(s.as_bytes()).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn limit_is_500() {
        let ok = "[".repeat(500) + &"]".repeat(500);
        assert!(read_all(&ok).is_ok());
        let deep = "[".repeat(501) + &"]".repeat(501);
        assert!(read_all(&deep).is_err());
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        let s = format!("[\"{}\\\"{}\"]", "[".repeat(600), "{".repeat(600));
        assert!(read_all(&s).is_ok());
    }
}
