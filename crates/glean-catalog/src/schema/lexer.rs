//! Angle lexer: turns schema source text into located tokens.
//!
//! Follows Glean's `Lexer.x` for everything a schema can contain: identifiers
//! (lower, upper and dotted/versioned), keywords, literals, punctuation, `#`
//! comments and the `#FILE <path>` directive that renames the source. Tokens
//! that only occur inside derived-predicate queries are kept as `Other` so the
//! parser can skip query bodies without understanding them. It never decides
//! what a token means in context: that is the parser's job.

use std::fmt;

/// A position in a schema source, for error messages (`file:line:col`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pos {
    /// Source name: the file path, or the name given by a `#FILE` line.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    /// A reserved keyword of the schema language (`schema`, `predicate`, ...).
    Kw(&'static str),
    /// `[a-z][A-Za-z0-9_]*` that is not a keyword.
    LIdent(String),
    /// `[A-Z_][A-Za-z0-9_]*`.
    UIdent(String),
    /// A dotted name, possibly versioned: `src.File`, `src.File.1`, `Foo.2`.
    QIdent(String),
    /// A natural-number literal.
    Nat(u64),
    /// A string literal (only meaningful inside queries).
    Str,
    /// One of the punctuation marks the schema grammar uses.
    Punct(&'static str),
    /// Anything else that can appear inside a query body.
    Other(String),
    /// End of input.
    Eof,
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Kw(k) => write!(f, "keyword `{k}`"),
            Tok::LIdent(s) | Tok::UIdent(s) | Tok::QIdent(s) => write!(f, "`{s}`"),
            Tok::Nat(n) => write!(f, "number {n}"),
            Tok::Str => write!(f, "a string literal"),
            Tok::Punct(p) => write!(f, "`{p}`"),
            Tok::Other(s) => write!(f, "`{s}`"),
            Tok::Eof => write!(f, "end of input"),
        }
    }
}

/// A token and where it starts.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token.
    pub tok: Tok,
    /// Where it starts.
    pub pos: Pos,
}

/// A lexical error: an unterminated string, a stray character, a bad version line.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct LexError {
    /// Where the problem is.
    pub pos: Pos,
    /// What was wrong and what was expected.
    pub message: String,
}

/// The Angle syntax version used when a source has no `version:` line.
pub const LATEST_ANGLE_VERSION: u32 = 12;

/// Keywords that are reserved whatever the syntax version.
const KEYWORDS: &[&str] = &[
    "bool",
    "byte",
    "default",
    "derive",
    "enum",
    "import",
    "maybe",
    "nat",
    "predicate",
    "schema",
    "string",
    "type",
    "stored",
    "where",
    "evolves",
    "never",
    "if",
    "then",
    "else",
];

/// Keywords that only exist from syntax version 8 on (before that they are identifiers).
const KEYWORDS_V8: &[&str] = &["set", "elements", "all"];

/// Multi-character punctuation, longest first so that `->` wins over `-`.
const PUNCT: &[&str] =
    &["!==", "->", "++", "!=", ">=", "<=", ".*", ",", "|", ":", "(", ")", "[", "]", "{", "}", "=", "!", ">", "<", "+", ";", "_", "$"];

/// Splits an optional `version: N` first line off a source, as Glean does.
///
/// Returns the syntax version and the byte offset where the schemas start.
pub fn angle_version(src: &str) -> (u32, usize) {
    let Some(rest) = src.strip_prefix("version: ") else {
        return (LATEST_ANGLE_VERSION, 0);
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    match rest[..digits].parse::<u32>() {
        Ok(v) => (v, "version: ".len() + digits),
        Err(_) => (LATEST_ANGLE_VERSION, 0),
    }
}

/// Tokenizes `src`, named `file` in positions, with syntax version `version`.
pub fn tokenize(file: &str, src: &str, start: usize, version: u32) -> Result<Vec<Token>, LexError> {
    Lexer { src, i: start, line: line_of(src, start), col: 1, file: file.to_owned(), version }.run()
}

fn line_of(src: &str, offset: usize) -> u32 {
    1 + src[..offset].bytes().filter(|&b| b == b'\n').count() as u32
}

struct Lexer<'a> {
    src: &'a str,
    i: usize,
    line: u32,
    col: u32,
    file: String,
    version: u32,
}

impl Lexer<'_> {
    fn run(mut self) -> Result<Vec<Token>, LexError> {
        let mut out = Vec::new();
        loop {
            self.skip_space_and_comments();
            let pos = self.pos();
            let Some(c) = self.peek() else {
                out.push(Token { tok: Tok::Eof, pos });
                return Ok(out);
            };
            let tok = if c.is_ascii_digit() {
                self.number(&pos)?
            } else if c == '"' {
                self.string(&pos)?
            } else if c.is_ascii_alphabetic() || c == '_' {
                self.word()
            } else if c == '.' {
                self.dot()
            } else if let Some(p) = PUNCT.iter().find(|p| self.rest().starts_with(**p)) {
                self.advance_bytes(p.len());
                Tok::Punct(p)
            } else {
                return Err(LexError { pos, message: format!("unexpected character {c:?}") });
            };
            out.push(Token { tok, pos });
        }
    }

    fn rest(&self) -> &str {
        &self.src[self.i..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn pos(&self) -> Pos {
        Pos { file: self.file.clone(), line: self.line, col: self.col }
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }

    fn advance_bytes(&mut self, n: usize) {
        let end = self.i + n;
        while self.i < end {
            self.bump();
        }
    }

    fn skip_space_and_comments(&mut self) {
        loop {
            match self.peek() {
                Some(c) if c.is_whitespace() => {
                    self.bump();
                }
                Some('#') => {
                    let line_end = self.rest().find('\n').unwrap_or(self.rest().len());
                    if let Some(name) = self.rest()[..line_end].strip_prefix("#FILE ") {
                        let name = name.trim_end_matches('\r').to_owned();
                        self.advance_bytes(line_end);
                        self.bump();
                        // The directive names the file the following lines came from.
                        self.file = name;
                        self.line = 1;
                        self.col = 1;
                    } else {
                        self.advance_bytes(line_end);
                    }
                }
                _ => return,
            }
        }
    }

    fn number(&mut self, pos: &Pos) -> Result<Tok, LexError> {
        let len = self.rest().bytes().take_while(u8::is_ascii_digit).count();
        let text = &self.rest()[..len];
        let n =
            text.parse::<u64>().map_err(|_| LexError { pos: pos.clone(), message: format!("number {text} does not fit in 64 bits") })?;
        self.advance_bytes(len);
        Ok(Tok::Nat(n))
    }

    fn string(&mut self, pos: &Pos) -> Result<Tok, LexError> {
        self.bump();
        loop {
            match self.bump() {
                Some('"') => return Ok(Tok::Str),
                Some('\\') => {
                    self.bump();
                }
                Some(_) => {}
                None => return Err(LexError { pos: pos.clone(), message: "unterminated string literal, expected a closing `\"`".into() }),
            }
        }
    }

    /// An identifier, keyword, or dotted (possibly versioned) name.
    fn word(&mut self) -> Tok {
        let first = ident_len(self.rest());
        let first_word = &self.rest()[..first];
        let lower = first_word.starts_with(|c: char| c.is_ascii_lowercase());
        // Try the longest dotted name the grammar allows, as Alex's longest match does.
        let mut end = first;
        let mut last_versioned = false;
        loop {
            let after = &self.rest()[end..];
            let Some(tail) = after.strip_prefix('.') else { break };
            let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
            let ident = ident_len(tail);
            if digits > 0 && !tail[digits..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
                end += 1 + digits;
                last_versioned = true;
                // A version ends a qualified name.
                break;
            } else if ident > 0 && tail.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
                end += 1 + ident;
            } else {
                break;
            }
        }
        let dotted = end > first;
        // Upper-case dotted names are only names when they end in a version (`Foo.2`).
        let end = if dotted && !lower && !last_versioned { first } else { end };
        let text = self.rest()[..end].to_owned();
        self.advance_bytes(end);
        if end > first {
            return Tok::QIdent(text);
        }
        if let Some(k) = KEYWORDS.iter().find(|k| **k == text) {
            return Tok::Kw(k);
        }
        if let Some(k) = KEYWORDS_V8.iter().find(|k| **k == text)
            && self.version >= 8
        {
            return Tok::Kw(k);
        }
        if lower { Tok::LIdent(text) } else { Tok::UIdent(text) }
    }

    /// `..`, `.*`, or a field selection `.name` (queries only).
    fn dot(&mut self) -> Tok {
        let dots = self.rest().bytes().take_while(|&b| b == b'.').count();
        if dots >= 2 {
            self.advance_bytes(dots);
            return Tok::Other("..".into());
        }
        if self.rest().starts_with(".*") {
            self.advance_bytes(2);
            return Tok::Punct(".*");
        }
        let len = 1 + ident_len(&self.rest()[1..]);
        let text = self.rest()[..len].to_owned();
        self.advance_bytes(len);
        Tok::Other(text)
    }
}

/// Length of the `[A-Za-z0-9_]*` run at the start of `s`.
fn ident_len(s: &str) -> usize {
    s.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize("t.angle", src, 0, LATEST_ANGLE_VERSION).expect("lexes").into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn qualified_and_versioned_names() {
        assert_eq!(
            toks("src.File.1 src.File Foo.2 Foo a.b.c"),
            vec![
                Tok::QIdent("src.File.1".into()),
                Tok::QIdent("src.File".into()),
                Tok::QIdent("Foo.2".into()),
                Tok::UIdent("Foo".into()),
                Tok::QIdent("a.b.c".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn keywords_need_whole_words() {
        assert_eq!(toks("boolean bool"), vec![Tok::LIdent("boolean".into()), Tok::Kw("bool"), Tok::Eof]);
    }

    #[test]
    fn set_is_a_keyword_from_version_8() {
        let old = tokenize("t", "set", 0, 7).expect("lexes");
        assert_eq!(old[0].tok, Tok::LIdent("set".into()));
        assert_eq!(toks("set")[0], Tok::Kw("set"));
    }

    #[test]
    fn comments_and_file_directive_set_positions() {
        let t = tokenize("x", "# a comment\n#FILE other.angle\n  schema", 0, 12).expect("lexes");
        assert_eq!(t[0].tok, Tok::Kw("schema"));
        assert_eq!(t[0].pos.to_string(), "other.angle:1:3");
    }

    #[test]
    fn version_line() {
        assert_eq!(angle_version("version: 7\nschema"), (7, 10));
        assert_eq!(angle_version("schema"), (LATEST_ANGLE_VERSION, 0));
    }

    #[test]
    fn unterminated_string_is_located() {
        let e = tokenize("f.angle", "\n  \"abc", 0, 12).expect_err("fails");
        assert_eq!(e.pos.to_string(), "f.angle:2:3");
    }
}
