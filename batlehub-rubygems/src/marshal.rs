//! A writer of Ruby's Marshal 4.8 format, for the subset RubyGems' index files use
//! (`specs.4.8.gz`, `quick/Marshal.4.8/*.gemspec.rz`): nil, booleans, small integers,
//! strings (UTF-8 or binary), symbols (with symbol links), arrays, hashes, plain objects
//! and the two custom-marshal shapes (`U`: `marshal_dump`, `u`: `_dump`). It never writes
//! object links: repeated objects are written again, which every reader accepts.

use std::collections::HashMap;

/// A Ruby value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `nil`.
    Nil,
    /// `true`.
    True,
    /// `false`.
    False,
    /// A Fixnum (`-2^30 ..= 2^30 - 1`).
    Int(i32),
    /// A UTF-8 string.
    Str(String),
    /// A binary (ASCII-8BIT) string.
    Bytes(Vec<u8>),
    /// A symbol.
    Sym(String),
    /// An array.
    Array(Vec<Value>),
    /// A hash (no default).
    Hash(Vec<(Value, Value)>),
    /// A plain object: its class and instance variables (names with their `@`).
    Object {
        /// The class name.
        class: String,
        /// `(@name, value)` pairs.
        ivars: Vec<(String, Value)>,
    },
    /// An object with `marshal_dump` (`Gem::Version`, `Gem::Requirement`): its class and
    /// what `marshal_dump` returned.
    UserMarshal {
        /// The class name.
        class: String,
        /// The dumped value.
        data: Box<Value>,
    },
    /// An object with `_dump` (`Gem::Specification`): its class and the bytes `_dump`
    /// returned.
    UserDefined {
        /// The class name.
        class: String,
        /// The dumped bytes.
        bytes: Vec<u8>,
    },
}

/// `value` in Marshal 4.8, with its `04 08` header.
#[must_use]
pub fn dump(value: &Value) -> Vec<u8> {
    let mut w = Writer {
        out: vec![4, 8],
        symbols: HashMap::new(),
    };
    w.value(value);
    w.out
}

struct Writer {
    out: Vec<u8>,
    symbols: HashMap<String, usize>,
}

impl Writer {
    /// Marshal's packed integer.
    fn long(&mut self, n: i64) {
        match n {
            0 => self.out.push(0),
            1..=122 => self.out.push(u8::try_from(n + 5).unwrap_or(0)),
            -123..=-1 => self.out.push((n - 5) as i8 as u8),
            _ => {
                let bytes = n.to_le_bytes();
                let mut len = 1;
                while len < 4 {
                    let fits = if n >= 0 {
                        n < 1 << (8 * len)
                    } else {
                        n >= -(1 << (8 * len))
                    };
                    if fits {
                        break;
                    }
                    len += 1;
                }
                let tag = if n >= 0 { len as i8 } else { -(len as i8) };
                self.out.push(tag as u8);
                self.out.extend_from_slice(&bytes[..len]);
            }
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.long(b.len() as i64);
        self.out.extend_from_slice(b);
    }

    fn symbol(&mut self, name: &str) {
        if let Some(&i) = self.symbols.get(name) {
            self.out.push(b';');
            self.long(i as i64);
        } else {
            let i = self.symbols.len();
            self.symbols.insert(name.to_owned(), i);
            self.out.push(b':');
            self.bytes(name.as_bytes());
        }
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Nil => self.out.push(b'0'),
            Value::True => self.out.push(b'T'),
            Value::False => self.out.push(b'F'),
            Value::Int(n) => {
                self.out.push(b'i');
                self.long(i64::from(*n));
            }
            Value::Str(s) => {
                // A string with one instance variable: its encoding, `E: true` for UTF-8.
                self.out.push(b'I');
                self.out.push(b'"');
                self.bytes(s.as_bytes());
                self.long(1);
                self.symbol("E");
                self.out.push(b'T');
            }
            Value::Bytes(b) => {
                self.out.push(b'"');
                self.bytes(b);
            }
            Value::Sym(s) => self.symbol(s),
            Value::Array(items) => {
                self.out.push(b'[');
                self.long(items.len() as i64);
                for item in items {
                    self.value(item);
                }
            }
            Value::Hash(pairs) => {
                self.out.push(b'{');
                self.long(pairs.len() as i64);
                for (k, v) in pairs {
                    self.value(k);
                    self.value(v);
                }
            }
            Value::Object { class, ivars } => {
                self.out.push(b'o');
                self.symbol(class);
                self.long(ivars.len() as i64);
                for (name, value) in ivars {
                    self.symbol(name);
                    self.value(value);
                }
            }
            Value::UserMarshal { class, data } => {
                self.out.push(b'U');
                self.symbol(class);
                self.value(data);
            }
            Value::UserDefined { class, bytes } => {
                self.out.push(b'u');
                self.symbol(class);
                self.bytes(bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn long(n: i64) -> Vec<u8> {
        let mut w = Writer {
            out: Vec::new(),
            symbols: HashMap::new(),
        };
        w.long(n);
        w.out
    }

    #[test]
    fn integers_as_ruby_packs_them() {
        for (n, bytes) in [
            (0, &[0x00][..]),
            (1, &[0x06]),
            (122, &[0x7f]),
            (-1, &[0xfa]),
            (-123, &[0x80]),
            (123, &[0x01, 0x7b]),
            (255, &[0x01, 0xff]),
            (256, &[0x02, 0x00, 0x01]),
            (-124, &[0xff, 0x84]),
            (-256, &[0xff, 0x00]),
            (-257, &[0xfe, 0xff, 0xfe]),
            (70000, &[0x03, 0x70, 0x11, 0x01]),
        ] {
            assert_eq!(long(n), bytes, "{n}");
        }
    }

    #[test]
    fn a_gem_version_as_ruby_dumps_it() {
        let v = Value::UserMarshal {
            class: "Gem::Version".into(),
            data: Box::new(Value::Array(vec![Value::Str("1.2.0".into())])),
        };
        let mut expected = vec![0x04, 0x08, b'U', b':', 0x11];
        expected.extend_from_slice(b"Gem::Version");
        expected.extend_from_slice(&[b'[', 0x06, b'I', b'"', 0x0a]);
        expected.extend_from_slice(b"1.2.0");
        expected.extend_from_slice(&[0x06, b':', 0x06, b'E', b'T']);
        assert_eq!(dump(&v), expected);
    }

    #[test]
    fn symbols_are_linked_after_their_first_use() {
        let v = Value::Array(vec![Value::Str("a".into()), Value::Str("b".into())]);
        let got = dump(&v);
        // The second string's `E` is a symbol link (`;` 0).
        assert!(
            got.ends_with(&[b'"', 0x06, b'b', 0x06, b';', 0x00, b'T']),
            "{got:02x?}"
        );
    }
}
