//! Words Glean refuses as predicate, type, field, enum or namespace names.
//!
//! Real Glean generates Thrift (and from it code in several languages) from a
//! schema, so it rejects Thrift keywords and keywords of the generated
//! languages. A schema that glean-local accepts must also load into real
//! Glean, so the list has to be the same; it is kept sorted for lookup.

/// Sorted list of reserved words (byte order, so `Client` sorts before `abstract`).
const RESERVED: &[&str] = &[
    "Client",
    "IFace",
    "None",
    "Object",
    "Processor",
    "_tmp_",
    "abstract",
    "and",
    "args",
    "as",
    "assert",
    "auto",
    "binary",
    "bool",
    "break",
    "byte",
    "case",
    "char",
    "class",
    "const",
    "continue",
    "cpp_include",
    "declare",
    "def",
    "default",
    "del",
    "do",
    "double",
    "elif",
    "else",
    "elseif",
    "enum",
    "except",
    "exception",
    "exec",
    "extends",
    "extern",
    "false",
    "finally",
    "float",
    "for",
    "foreach",
    "function",
    "global",
    "goto",
    "hash_map",
    "hash_set",
    "hs_include",
    "i16",
    "i32",
    "i64",
    "if",
    "implements",
    "import",
    "in",
    "include",
    "inline",
    "instanceof",
    "int",
    "interface",
    "is",
    "lambda",
    "list",
    "long",
    "map",
    "namespace",
    "native",
    "new",
    "not",
    "oneway",
    "operator",
    "optional",
    "or",
    "pass",
    "print",
    "private",
    "protected",
    "public",
    "raise",
    "register",
    "required",
    "return",
    "senum",
    "service",
    "set",
    "short",
    "signed",
    "sizeof",
    "static",
    "stream",
    "string",
    "struct",
    "switch",
    "synchronized",
    "template",
    "this",
    "throw",
    "throws",
    "transient",
    "true",
    "try",
    "typedef",
    "union",
    "unsigned",
    "var",
    "view",
    "virtual",
    "void",
    "volatile",
    "while",
    "with",
    "yield",
];

/// True when `name` may not be used as a name in a schema.
pub fn is_reserved(name: &str) -> bool {
    RESERVED.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_is_sorted_for_binary_search() {
        assert!(RESERVED.windows(2).all(|w| w[0] < w[1]), "RESERVED must stay sorted and unique");
    }

    #[test]
    fn examples() {
        for w in ["class", "string", "import", "set", "default", "Object", "_tmp_", "yield"] {
            assert!(is_reserved(w), "{w}");
        }
        for w in ["id", "kind", "label", "source", "target", "Node", "Edge", "type", "version"] {
            assert!(!is_reserved(w), "{w}");
        }
    }
}
