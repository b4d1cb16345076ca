//! Angle schema parser: tokens in, `SourceSchemas` out.
//!
//! Implements the schema grammar of GLEAN.md 2.2 by recursive descent. The
//! bodies of derived predicates (`stored`/`default` queries, on-demand queries,
//! `derive` declarations) are accepted and skipped by bracket matching: their
//! names are kept, their queries are not checked. It never resolves names.

use super::ast::{Decl, SchemaDef, SourceSchemas, SrcField, SrcRef, SrcType};
use super::lexer::{self, LexError, Pos, Tok, Token};

/// A syntax error with its position and what was expected.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{pos}: {message}")]
pub struct ParseError {
    /// Where the parser stopped.
    pub pos: Pos,
    /// What it found and what it expected.
    pub message: String,
}

impl From<LexError> for ParseError {
    fn from(e: LexError) -> Self {
        ParseError { pos: e.pos, message: e.message }
    }
}

/// Parses one source text (a file, or several joined with `#FILE` lines).
pub fn parse(file: &str, src: &str) -> Result<SourceSchemas> {
    let (angle_version, start) = lexer::angle_version(src);
    let tokens = lexer::tokenize(file, src, start, angle_version)?;
    let mut p = Parser { tokens, i: 0, angle_version };
    let mut out = SourceSchemas { angle_version, schemas: Vec::new(), evolves: Vec::new() };
    while p.peek() != &Tok::Eof {
        p.top_level(&mut out)?;
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    i: usize,
    angle_version: u32,
}

type Result<T> = std::result::Result<T, ParseError>;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.tokens[self.i].tok
    }

    fn pos(&self) -> Pos {
        self.tokens[self.i].pos.clone()
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.i].clone();
        if t.tok != Tok::Eof {
            self.i += 1;
        }
        t
    }

    fn error<T>(&self, expected: &str) -> Result<T> {
        Err(ParseError { pos: self.pos(), message: format!("expected {expected}, got {}", self.peek()) })
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if matches!(self.peek(), Tok::Punct(q) if *q == p) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, p: &str) -> Result<()> {
        if self.eat_punct(p) { Ok(()) } else { self.error(&format!("`{p}`")) }
    }

    fn eat_kw(&mut self, k: &str) -> bool {
        if matches!(self.peek(), Tok::Kw(q) if *q == k) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn top_level(&mut self, out: &mut SourceSchemas) -> Result<()> {
        let pos = self.pos();
        if !self.eat_kw("schema") {
            return self.error("`schema`");
        }
        let name = self.qname()?;
        if self.eat_kw("evolves") {
            let old = self.qname()?;
            out.evolves.push((name, old, pos));
            return Ok(());
        }
        let mut inherits = Vec::new();
        if self.eat_punct(":") {
            inherits.push(self.qname()?);
            while self.eat_punct(",") {
                if matches!(self.peek(), Tok::Punct("{")) {
                    break;
                }
                inherits.push(self.qname()?);
            }
        }
        self.expect_punct("{")?;
        let mut decls = Vec::new();
        while !self.eat_punct("}") {
            decls.push(self.decl()?);
        }
        out.schemas.push(SchemaDef { name, inherits, decls, pos });
        Ok(())
    }

    /// `lident | uident | qident`.
    fn qname(&mut self) -> Result<SrcRef> {
        match self.peek().clone() {
            Tok::LIdent(s) | Tok::UIdent(s) | Tok::QIdent(s) => {
                self.i += 1;
                Ok(SrcRef::parse(&s))
            }
            // `all` is a keyword in queries but a schema name here.
            Tok::Kw(k) if k == "all" => {
                self.i += 1;
                Ok(SrcRef { name: k.to_owned(), version: None })
            }
            _ => self.error("a name"),
        }
    }

    /// `field | qident`: a declared predicate or type name.
    fn pname(&mut self) -> Result<SrcRef> {
        if let Tok::QIdent(s) = self.peek().clone() {
            self.i += 1;
            return Ok(SrcRef::parse(&s));
        }
        Ok(SrcRef { name: self.field_name()?, version: None })
    }

    /// Record/sum/enum field names: identifiers and a few keywords.
    fn field_name(&mut self) -> Result<String> {
        const FIELD_KEYWORDS: &[&str] =
            &["bool", "byte", "enum", "import", "maybe", "nat", "predicate", "schema", "string", "type", "where"];
        match self.peek().clone() {
            Tok::LIdent(s) | Tok::UIdent(s) => {
                self.i += 1;
                Ok(s)
            }
            Tok::Kw(k) if FIELD_KEYWORDS.contains(&k) => {
                self.i += 1;
                Ok(k.to_owned())
            }
            _ => self.error("a field name"),
        }
    }

    fn decl(&mut self) -> Result<Decl> {
        let pos = self.pos();
        if self.eat_kw("import") {
            return Ok(Decl::Import(self.qname()?, pos));
        }
        if self.eat_kw("type") {
            let name = self.pname()?;
            self.expect_punct("=")?;
            let ty = self.ty()?;
            return Ok(Decl::Type { name, ty, pos });
        }
        if self.eat_kw("predicate") {
            let name = self.pname()?;
            self.expect_punct(":")?;
            let key = self.ty()?;
            let value = if self.eat_punct("->") { Some(self.ty()?) } else { None };
            self.deriving(false)?;
            return Ok(Decl::Predicate { name, key, value, pos });
        }
        if self.eat_kw("derive") {
            let name = self.qname()?;
            self.deriving(true)?;
            return Ok(Decl::Derive(name, pos));
        }
        self.error("`import`, `type`, `predicate`, `derive` or `}`")
    }

    /// Skips an optional (or, after `derive`, mandatory) derivation query.
    fn deriving(&mut self, required: bool) -> Result<()> {
        let mut marker = None;
        if self.eat_kw("stored") {
            marker = Some("stored");
        } else if matches!(self.peek(), Tok::Kw("default")) {
            if self.angle_version > 11 {
                return Err(ParseError { pos: self.pos(), message: "`default` derivations need Angle version 11 or lower".into() });
            }
            self.i += 1;
            marker = Some("default");
        }
        if self.at_decl_end() {
            return match (required, marker) {
                (false, None) => Ok(()),
                (_, Some(m)) => self.error(&format!("a query after `{m}`")),
                (true, None) => self.error("a query"),
            };
        }
        self.skip_query()
    }

    fn at_decl_end(&self) -> bool {
        matches!(self.peek(), Tok::Eof | Tok::Punct("}") | Tok::Kw("predicate" | "type" | "import" | "derive"))
    }

    fn skip_query(&mut self) -> Result<()> {
        let mut depth: Vec<(&'static str, Pos)> = Vec::new();
        loop {
            if depth.is_empty() && self.at_decl_end() {
                return Ok(());
            }
            let t = self.next();
            match t.tok {
                Tok::Punct(open @ ("(" | "[" | "{")) => depth.push((open, t.pos)),
                Tok::Punct(close @ (")" | "]" | "}")) => {
                    let want = match close {
                        ")" => "(",
                        "]" => "[",
                        _ => "{",
                    };
                    match depth.pop() {
                        Some((open, _)) if open == want => {}
                        _ => return Err(ParseError { pos: t.pos, message: format!("unbalanced `{close}` in derived predicate query") }),
                    }
                }
                Tok::Eof => {
                    let (open, pos) = depth.pop().map_or(("{", t.pos), |d| d);
                    return Err(ParseError { pos, message: format!("`{open}` is never closed") });
                }
                _ => {}
            }
        }
    }

    fn ty(&mut self) -> Result<SrcType> {
        let pos = self.pos();
        match self.peek().clone() {
            Tok::Kw("byte") => self.simple(SrcType::Byte),
            Tok::Kw("nat") => self.simple(SrcType::Nat),
            Tok::Kw("string") => self.simple(SrcType::String),
            Tok::Kw("bool") => self.simple(SrcType::Bool),
            Tok::Kw("maybe") => {
                self.i += 1;
                Ok(SrcType::Maybe(Box::new(self.ty()?)))
            }
            Tok::Kw("set") => {
                self.i += 1;
                Ok(SrcType::Set(Box::new(self.ty()?)))
            }
            Tok::Kw("enum") => {
                self.i += 1;
                self.enumeration()
            }
            Tok::Punct("[") => {
                self.i += 1;
                let inner = self.ty()?;
                self.expect_punct("]")?;
                Ok(SrcType::Array(Box::new(inner)))
            }
            Tok::Punct("(") => {
                self.i += 1;
                let inner = self.ty()?;
                self.expect_punct(")")?;
                Ok(inner)
            }
            Tok::Punct("{") => {
                self.i += 1;
                self.record_or_sum()
            }
            Tok::LIdent(s) | Tok::UIdent(s) | Tok::QIdent(s) => {
                self.i += 1;
                Ok(SrcType::Named(SrcRef::parse(&s), pos))
            }
            _ => self.error("a type"),
        }
    }

    fn simple(&mut self, t: SrcType) -> Result<SrcType> {
        self.i += 1;
        Ok(t)
    }

    fn enumeration(&mut self) -> Result<SrcType> {
        self.expect_punct("{")?;
        if matches!(self.peek(), Tok::Punct("}")) {
            return self.error("at least one enum constructor");
        }
        let mut names = vec![self.field_name()?];
        while self.eat_punct("|") {
            if matches!(self.peek(), Tok::Punct("}")) {
                break;
            }
            names.push(self.field_name()?);
        }
        self.expect_punct("}")?;
        Ok(SrcType::Enum(names))
    }

    fn field(&mut self) -> Result<SrcField> {
        let pos = self.pos();
        let name = self.field_name()?;
        let ty = if self.eat_punct(":") { self.ty()? } else { SrcType::Record(Vec::new()) };
        Ok(SrcField { name, ty, pos })
    }

    /// After `{`: the unit record, a record, or a sum.
    fn record_or_sum(&mut self) -> Result<SrcType> {
        if self.eat_punct("}") {
            return Ok(SrcType::Record(Vec::new()));
        }
        let first = self.field()?;
        if self.eat_punct("|") {
            let mut alts = vec![first];
            while !self.eat_punct("}") {
                alts.push(self.field()?);
                if !self.eat_punct("|") {
                    self.expect_punct("}")?;
                    break;
                }
            }
            return Ok(SrcType::Sum(alts));
        }
        let mut fields = vec![first];
        while self.eat_punct(",") {
            if matches!(self.peek(), Tok::Punct("}")) {
                break;
            }
            fields.push(self.field()?);
        }
        if matches!(self.peek(), Tok::Punct("|")) {
            return self.error("`,` or `}` (a type is either a record or a sum)");
        }
        self.expect_punct("}")?;
        Ok(SrcType::Record(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(src: &str) -> SourceSchemas {
        parse("t.angle", src).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(src: &str) -> String {
        parse("t.angle", src).expect_err("should fail").to_string()
    }

    #[test]
    fn every_type_construct() {
        let s = parse_ok(
            "schema a.1 {}\nschema b.1 {}\nschema a.2 : a.1 {\n import b.1\n \
             type Y = { x1 : byte, x2 : nat, x3 : string, x4 : bool, x5 : [X], x6 : {}, \
             x7 : { a : X }, x8 : { a : X, }, x10 : { nat : nat }, x11 : { a : X | }, \
             x12 : { a : X | b : Y }, x13 : { a : X | b : Y | }, x14 : { nothing | just : string }, \
             x15 : enum { a }, x16 : enum { a | b }, x17 : maybe X, x18 : maybe (maybe {}), x19 : set nat }\n \
             predicate X : Y\n predicate type : { nat | bool_ }\n}",
        );
        assert_eq!(s.schemas.len(), 3);
        let Decl::Type { ty: SrcType::Record(fields), .. } = &s.schemas[2].decls[1] else { panic!("expected the record type Y") };
        assert_eq!(fields.len(), 18);
        assert!(matches!(&fields[9].ty, SrcType::Sum(alts) if alts.len() == 1 && alts[0].name == "a"));
        assert!(matches!(&fields[12].ty, SrcType::Sum(alts) if alts[0].ty == SrcType::Record(vec![])));
        assert!(matches!(&s.schemas[2].decls[3], Decl::Predicate { name, .. } if name.name == "type"));
    }

    #[test]
    fn derived_predicates_are_skipped() {
        let s = parse_ok(
            "schema ex.1 {\n predicate Parent : { child : string, parent : string }\n \
             predicate Child : { parent : string, child : string }\n   stored { P, C } where Parent { C, P }\n \
             predicate Pair : { x : string, y : nat } {X, Y} where Parent {X, _}, Y = 1\n \
             derive Child { P, C } where Parent { C, P }\n predicate Last : nat\n}",
        );
        let names: Vec<_> = s.schemas[0]
            .decls
            .iter()
            .map(|d| match d {
                Decl::Predicate { name, .. } | Decl::Derive(name, _) => name.to_string(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(names, ["Parent", "Child", "Pair", "Child", "Last"]);
    }

    #[test]
    fn evolves_and_trailing_commas() {
        let s = parse_ok("schema a.2 : b.1, c.1, {}\nschema a.2 evolves a.1");
        assert_eq!(s.schemas[0].inherits.len(), 2);
        assert_eq!(s.evolves.len(), 1);
    }

    #[test]
    fn empty_enum_is_rejected() {
        assert!(parse_err("schema a.1 { type E = enum {} }").contains("enum constructor"));
    }

    #[test]
    fn errors_say_where_and_what() {
        assert_eq!(parse_err("schema a.1 {\n  predicate P string\n}"), "t.angle:2:15: expected `:`, got keyword `string`");
        assert!(parse_err("schema a.1 { predicate P : }").contains("expected a type"));
        assert!(parse_err("schema a.1 { type T = { a : nat | b : nat, c : nat } }").contains("expected"));
        assert!(parse_err("predicate P : nat").contains("expected `schema`"));
    }

    #[test]
    fn default_derivation_depends_on_version() {
        assert!(parse_err("schema a.1 { predicate P : nat default P } ").contains("version 11"));
        parse_ok("version: 11\nschema a.1 { predicate P : nat default 1 }");
    }

    #[test]
    fn stored_needs_a_query() {
        assert!(parse_err("schema a.1 { predicate P : nat stored }").contains("a query after `stored`"));
    }
}
