//! Parsing the Angle subset glean-local answers: one predicate and a pattern.
//!
//! ```text
//! query   = PREDICATE [pattern]
//! pattern = "string" | NAT | true | false | _ | $NAT | nothing
//!         | { field = pattern, ... }       (record fields, sum alternative, `just`)
//!         | [ pattern, ... ]
//! ```

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The predicate name, possibly versioned.
    pub predicate: String,
    /// What the key must match (`Wild` when omitted).
    pub pattern: Pattern,
}

/// A pattern over a fact's key.
#[derive(Debug, Clone, PartialEq)]
pub enum Pattern {
    /// `_`: anything.
    Wild,
    /// A string literal.
    Str(String),
    /// A natural number.
    Nat(u64),
    /// `true` / `false`.
    Bool(bool),
    /// `$N`: the fact with id N.
    FactId(u64),
    /// `nothing`: an absent `maybe`.
    Nothing,
    /// `{ f = p, ... }`.
    Fields(Vec<(String, Pattern)>),
    /// `[p, ...]`.
    Array(Vec<Pattern>),
}

/// A query syntax error, with the character offset where it happened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("query syntax error at column {column}: {message}")]
pub struct SyntaxError {
    /// 1-based column in the query text.
    pub column: usize,
    /// What was expected.
    pub message: String,
}

/// Parses `text`.
pub fn parse(text: &str) -> Result<Query, SyntaxError> {
    let mut p = Parser { chars: text.chars().collect(), i: 0 };
    p.skip_ws();
    let predicate = p.word();
    if predicate.is_empty() || !predicate.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return p.error("a predicate name");
    }
    p.skip_ws();
    let pattern = if p.at_end() { Pattern::Wild } else { p.pattern()? };
    p.skip_ws();
    if !p.at_end() {
        return p.error("the end of the query");
    }
    Ok(Query { predicate, pattern })
}

struct Parser {
    chars: Vec<char>,
    i: usize,
}

impl Parser {
    fn at_end(&self) -> bool {
        self.i >= self.chars.len()
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn error<T>(&self, expected: &str) -> Result<T, SyntaxError> {
        let got = self.peek().map_or("end of query".to_owned(), |c| format!("{c:?}"));
        Err(SyntaxError { column: self.i + 1, message: format!("expected {expected}, got {got}") })
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    /// `[A-Za-z0-9_.]*`
    fn word(&mut self) -> String {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') {
            self.i += 1;
        }
        self.chars[start..self.i].iter().collect()
    }

    fn nat(&mut self) -> Result<u64, SyntaxError> {
        let start = self.i;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.i += 1;
        }
        let digits: String = self.chars[start..self.i].iter().collect();
        digits.parse().or_else(|_| {
            self.i = start;
            self.error("a number")
        })
    }

    fn pattern(&mut self) -> Result<Pattern, SyntaxError> {
        self.skip_ws();
        match self.peek() {
            Some('"') => self.string().map(Pattern::Str),
            Some('$') => {
                self.i += 1;
                self.nat().map(Pattern::FactId)
            }
            Some('{') => {
                self.i += 1;
                self.fields()
            }
            Some('[') => {
                self.i += 1;
                self.array()
            }
            Some(c) if c.is_ascii_digit() => self.nat().map(Pattern::Nat),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.i;
                match self.word().as_str() {
                    "_" => Ok(Pattern::Wild),
                    "true" => Ok(Pattern::Bool(true)),
                    "false" => Ok(Pattern::Bool(false)),
                    "nothing" => Ok(Pattern::Nothing),
                    _ => {
                        self.i = start;
                        self.error("a pattern")
                    }
                }
            }
            _ => self.error("a pattern: a string, a number, true, false, _, $ID, nothing, {...} or [...]"),
        }
    }

    fn fields(&mut self) -> Result<Pattern, SyntaxError> {
        let mut fields = Vec::new();
        if self.eat('}') {
            return Ok(Pattern::Fields(fields));
        }
        loop {
            self.skip_ws();
            let name = self.word();
            if name.is_empty() || name.contains('.') {
                return self.error("a field name");
            }
            if !self.eat('=') {
                return self.error("`=`");
            }
            fields.push((name, self.pattern()?));
            if self.eat('}') {
                return Ok(Pattern::Fields(fields));
            }
            if !self.eat(',') {
                return self.error("`,` or `}`");
            }
        }
    }

    fn array(&mut self) -> Result<Pattern, SyntaxError> {
        let mut items = Vec::new();
        if self.eat(']') {
            return Ok(Pattern::Array(items));
        }
        loop {
            items.push(self.pattern()?);
            if self.eat(']') {
                return Ok(Pattern::Array(items));
            }
            if !self.eat(',') {
                return self.error("`,` or `]`");
            }
        }
    }

    fn string(&mut self) -> Result<String, SyntaxError> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.i = start;
                    return self.error("a closing `\"`");
                }
                Some('"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some('\\') => {
                    self.i += 1;
                    let c = self.peek();
                    self.i += 1;
                    out.push(match c {
                        Some('n') => '\n',
                        Some('t') => '\t',
                        Some('r') => '\r',
                        Some(c @ ('"' | '\\')) => c,
                        _ => return self.error("an escape: \\n \\t \\r \\\" or \\\\"),
                    });
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse("a.P").expect("ok"), Query { predicate: "a.P".into(), pattern: Pattern::Wild });
        assert_eq!(parse("a.P.1 \"x\\\"y\"").expect("ok").pattern, Pattern::Str("x\"y".into()));
        assert_eq!(parse("a.P 42").expect("ok").pattern, Pattern::Nat(42));
        let q = parse(r#"a.P { id = "n1", kind = _, n = { x = $1024 }, m = nothing, t = true, l = [1, _] }"#).expect("ok");
        let Pattern::Fields(f) = q.pattern else { panic!("fields") };
        assert_eq!(f.len(), 6);
        assert_eq!(f[2].1, Pattern::Fields(vec![("x".into(), Pattern::FactId(1024))]));
    }

    #[test]
    fn errors_say_where() {
        let e = parse("a.P { id \"x\" }").expect_err("missing =");
        assert_eq!(e.to_string(), "query syntax error at column 10: expected `=`, got '\"'");
        assert!(parse("a.P \"open").is_err());
        assert!(parse("a.P 1 2").is_err());
        assert!(parse("").is_err());
    }
}
