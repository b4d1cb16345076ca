//! One fact as parsed JSON: a small tree in a reusable arena.
//!
//! Checking needs a fact whole (its shape is judged before its key, record
//! fields are looked up by name), but building a `serde_json::Value` per fact
//! costs an allocation per string and a hash map per object. `Terms` parses a
//! fact's bytes into flat vectors that are cleared, not freed, between facts;
//! a `Term` is a view into them. Objects behave as `Value`'s do with
//! serde_json's `preserve_order`: keys in first-seen order, the last of
//! duplicate keys wins. A term displays as the compact JSON `Value` would, so
//! messages quoting a term read exactly as before. Nothing here knows Glean's
//! rules; `check` does.

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use std::fmt;
use std::ops::Range;

/// A parsed node; strings, items and entries are ranges into the arena.
#[derive(Debug, Clone)]
enum Node {
    Null,
    Bool(bool),
    /// A non-negative integer (serde_json's `PosInt`).
    PosInt(u64),
    /// A negative integer.
    NegInt(i64),
    Float(f64),
    Str(Range<u32>),
    /// Indexes into `Terms::items`.
    Array(Range<u32>),
    /// Indexes into `Terms::entries`.
    Object(Range<u32>),
}

/// The arena one fact is parsed into, reused for the next one.
#[derive(Debug, Default)]
pub struct Terms {
    nodes: Vec<Node>,
    /// The text of every string and object key.
    text: String,
    /// Array items (node indexes), each array's contiguous.
    items: Vec<u32>,
    /// Object entries (key text, node index), each object's contiguous.
    entries: Vec<(Range<u32>, u32)>,
    /// Children of the containers being parsed, moved into `items`/`entries` when one closes.
    open_items: Vec<u32>,
    open_entries: Vec<(Range<u32>, u32)>,
}

impl Terms {
    /// Parses one JSON value from `bytes` (which hold nothing else), replacing the previous one.
    pub fn parse(&mut self, bytes: &[u8]) -> Result<(), serde_json::Error> {
        self.nodes.clear();
        self.text.clear();
        self.items.clear();
        self.entries.clear();
        let mut de = serde_json::Deserializer::from_slice(bytes);
        // The scanner has already enforced Glean's depth limit (500 > serde's 128).
        de.disable_recursion_limit();
        Build(self).deserialize(&mut de)?;
        de.end()
    }

    /// The value `parse` read last.
    pub fn root(&self) -> Term<'_> {
        // Children are pushed before their parent, so the root is last.
        Term { terms: self, at: self.nodes.len().saturating_sub(1) as u32 }
    }

    fn push(&mut self, node: Node) -> u32 {
        self.nodes.push(node);
        (self.nodes.len() - 1) as u32
    }

    fn push_str(&mut self, s: &str) -> Range<u32> {
        let start = self.text.len() as u32;
        self.text.push_str(s);
        start..self.text.len() as u32
    }

    fn str(&self, r: &Range<u32>) -> &str {
        &self.text[r.start as usize..r.end as usize]
    }

    /// Closes an object whose entries are `open_entries[mark..]`.
    fn close_object(&mut self, mark: usize) -> u32 {
        let start = self.entries.len() as u32;
        dedup_keys(&self.text, &self.open_entries[mark..], &mut self.entries);
        self.open_entries.truncate(mark);
        let node = Node::Object(start..self.entries.len() as u32);
        self.push(node)
    }
}

/// Appends `open` to `out`, the last of duplicate keys in the first one's
/// place (folly's "last wins", in `preserve_order`'s first-seen order).
fn dedup_keys(text: &str, open: &[(Range<u32>, u32)], out: &mut Vec<(Range<u32>, u32)>) {
    let key = |r: &Range<u32>| &text[r.start as usize..r.end as usize];
    let start = out.len();
    if open.len() <= 16 {
        for (k, v) in open {
            match out[start..].iter().position(|(seen, _)| key(seen) == key(k)) {
                Some(j) => out[start + j].1 = *v,
                None => out.push((k.clone(), *v)),
            }
        }
        return;
    }
    // Large objects: a map instead of quadratic search.
    let mut first: std::collections::HashMap<&str, usize> = std::collections::HashMap::with_capacity(open.len());
    for (k, v) in open {
        match first.entry(key(k)) {
            std::collections::hash_map::Entry::Occupied(e) => out[*e.get()].1 = *v,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(out.len());
                out.push((k.clone(), *v));
            }
        }
    }
}

/// A value inside `Terms`.
#[derive(Clone, Copy)]
pub struct Term<'t> {
    terms: &'t Terms,
    at: u32,
}

/// What a term is, with its contents.
pub enum View<'t> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// Any number (see `Term::as_i64` and friends).
    Number,
    /// A string.
    Str(&'t str),
    /// An array.
    Array(Items<'t>),
    /// An object.
    Object(Entries<'t>),
}

impl<'t> Term<'t> {
    fn node(self) -> &'t Node {
        &self.terms.nodes[self.at as usize]
    }

    fn at(self, at: u32) -> Term<'t> {
        Term { terms: self.terms, at }
    }

    /// The kind of value and its contents.
    pub fn view(self) -> View<'t> {
        match self.node() {
            Node::Null => View::Null,
            Node::Bool(b) => View::Bool(*b),
            Node::PosInt(_) | Node::NegInt(_) | Node::Float(_) => View::Number,
            Node::Str(r) => View::Str(self.terms.str(r)),
            Node::Array(r) => View::Array(Items { term: self, range: r.clone() }),
            Node::Object(r) => View::Object(Entries { term: self, range: r.clone() }),
        }
    }

    /// The string, if this is one.
    pub fn as_str(self) -> Option<&'t str> {
        match self.node() {
            Node::Str(r) => Some(self.terms.str(r)),
            _ => None,
        }
    }

    /// The number as an i64, if it is an integer that fits.
    pub fn as_i64(self) -> Option<i64> {
        match *self.node() {
            Node::PosInt(n) => i64::try_from(n).ok(),
            Node::NegInt(n) => Some(n),
            _ => None,
        }
    }

    /// The number as a u64, if it is a non-negative integer.
    pub fn as_u64(self) -> Option<u64> {
        match *self.node() {
            Node::PosInt(n) => Some(n),
            _ => None,
        }
    }

    /// True for a non-negative integer.
    pub fn is_u64(self) -> bool {
        matches!(self.node(), Node::PosInt(_))
    }

    /// True for a number written with a fraction or exponent.
    pub fn is_float(self) -> bool {
        matches!(self.node(), Node::Float(_))
    }

    /// The value of `key`, if this is an object that has it.
    pub fn get(self, key: &str) -> Option<Term<'t>> {
        match self.view() {
            View::Object(entries) => entries.into_iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// The items of an array.
#[derive(Clone)]
pub struct Items<'t> {
    term: Term<'t>,
    range: Range<u32>,
}

impl<'t> Iterator for Items<'t> {
    type Item = Term<'t>;
    fn next(&mut self) -> Option<Term<'t>> {
        let i = self.range.next()?;
        Some(self.term.at(self.term.terms.items[i as usize]))
    }
}

/// The entries of an object, in first-seen key order.
#[derive(Clone)]
pub struct Entries<'t> {
    term: Term<'t>,
    range: Range<u32>,
}

impl Entries<'_> {
    /// Number of distinct keys.
    pub fn len(&self) -> usize {
        self.range.len()
    }
}

impl<'t> Iterator for Entries<'t> {
    type Item = (&'t str, Term<'t>);
    fn next(&mut self) -> Option<(&'t str, Term<'t>)> {
        let i = self.range.next()?;
        let (key, value) = &self.term.terms.entries[i as usize];
        Some((self.term.terms.str(key), self.term.at(*value)))
    }
}

impl Serialize for Term<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self.node() {
            Node::Null => s.serialize_unit(),
            Node::Bool(b) => s.serialize_bool(b),
            Node::PosInt(n) => s.serialize_u64(n),
            Node::NegInt(n) => s.serialize_i64(n),
            Node::Float(f) => s.serialize_f64(f),
            Node::Str(ref r) => s.serialize_str(self.terms.str(r)),
            Node::Array(_) | Node::Object(_) => match self.view() {
                View::Array(items) => {
                    let mut seq = s.serialize_seq(Some(items.range.len()))?;
                    items.into_iter().try_for_each(|item| seq.serialize_element(&item))?;
                    seq.end()
                }
                View::Object(entries) => {
                    let mut map = s.serialize_map(Some(entries.len()))?;
                    entries.into_iter().try_for_each(|(k, v)| map.serialize_entry(k, &v))?;
                    map.end()
                }
                _ => unreachable!("a container node views as a container"),
            },
        }
    }
}

/// Compact JSON, exactly as `serde_json::Value` displays.
impl fmt::Display for Term<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&serde_json::to_string(self).map_err(|_| fmt::Error)?)
    }
}

/// Parses one value into the arena, returning its node index.
struct Build<'a>(&'a mut Terms);

impl<'de> DeserializeSeed<'de> for Build<'_> {
    type Value = u32;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<u32, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Build<'_> {
    type Value = u32;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<u32, E> {
        Ok(self.0.push(Node::Null))
    }
    fn visit_bool<E>(self, b: bool) -> Result<u32, E> {
        Ok(self.0.push(Node::Bool(b)))
    }
    fn visit_u64<E>(self, n: u64) -> Result<u32, E> {
        Ok(self.0.push(Node::PosInt(n)))
    }
    fn visit_i64<E>(self, n: i64) -> Result<u32, E> {
        // serde_json only calls this for negative numbers.
        Ok(self.0.push(if n < 0 { Node::NegInt(n) } else { Node::PosInt(n as u64) }))
    }
    fn visit_f64<E>(self, f: f64) -> Result<u32, E> {
        Ok(self.0.push(Node::Float(f)))
    }
    fn visit_str<E>(self, s: &str) -> Result<u32, E> {
        let r = self.0.push_str(s);
        Ok(self.0.push(Node::Str(r)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<u32, A::Error> {
        let terms = self.0;
        let mark = terms.open_items.len();
        while let Some(item) = seq.next_element_seed(Build(&mut *terms))? {
            terms.open_items.push(item);
        }
        let start = terms.items.len() as u32;
        terms.items.extend(terms.open_items.drain(mark..));
        let node = Node::Array(start..terms.items.len() as u32);
        Ok(terms.push(node))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<u32, A::Error> {
        let terms = self.0;
        let mark = terms.open_entries.len();
        while let Some(key) = map.next_key_seed(Key(&mut *terms))? {
            let value = map.next_value_seed(Build(&mut *terms))?;
            terms.open_entries.push((key, value));
        }
        Ok(terms.close_object(mark))
    }
}

/// Parses an object key into the arena's text.
struct Key<'a>(&'a mut Terms);

impl<'de> DeserializeSeed<'de> for Key<'_> {
    type Value = Range<u32>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Range<u32>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key<'_> {
    type Value = Range<u32>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E>(self, s: &str) -> Result<Range<u32>, E> {
        Ok(self.0.push_str(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Every input displays exactly as serde_json's `Value` does.
    #[test]
    fn displays_like_value() {
        let inputs = [
            r#"{"b": 1, "a": [true, null, -3, 1.5, 1e300, 18446744073709551615], "s": "q\"\u0000\n"}"#,
            r#"{"k": 1, "x": 2, "k": {"deep": []}}"#,
            r#"[]"#,
            r#""plain""#,
            r#"-0"#,
            r#"-0.0"#,
            r#"0.1"#,
        ];
        let mut terms = Terms::default();
        for input in inputs {
            let value: Value = serde_json::from_str(input).expect("valid JSON");
            terms.parse(input.as_bytes()).expect("valid JSON");
            assert_eq!(terms.root().to_string(), value.to_string(), "{input}");
        }
    }

    #[test]
    fn duplicate_keys_keep_the_first_place_and_the_last_value() {
        let mut terms = Terms::default();
        terms.parse(br#"{"a": 1, "b": 2, "a": 3}"#).expect("valid");
        let t = terms.root();
        let View::Object(entries) = t.view() else { panic!("object") };
        let keys: Vec<(&str, Option<u64>)> = entries.map(|(k, v)| (k, v.as_u64())).collect();
        assert_eq!(keys, [("a", Some(3)), ("b", Some(2))]);
    }

    #[test]
    fn duplicate_keys_in_large_objects_too() {
        let body: Vec<String> = (0..40).map(|i| format!(r#""k{i}": {i}"#)).collect();
        let json = format!(r#"{{{}, "k3": "last"}}"#, body.join(", "));
        let value: Value = serde_json::from_str(&json).expect("valid");
        let mut terms = Terms::default();
        terms.parse(json.as_bytes()).expect("valid");
        assert_eq!(terms.root().to_string(), value.to_string());
    }

    #[test]
    fn the_arena_is_reused() {
        let mut terms = Terms::default();
        terms.parse(br#"{"long key": "a long string value", "n": [1, 2, 3]}"#).expect("valid");
        terms.parse(br#"{"x": "y"}"#).expect("valid");
        let t = terms.root();
        assert_eq!(t.get("x").and_then(Term::as_str), Some("y"));
        assert!(t.get("n").is_none());
    }
}
