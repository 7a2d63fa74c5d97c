//! Structure-aware mutation: real inputs (JSON bodies, forms, strings, bytes) changed the way a
//! hostile or broken client changes them — a field replaced by another type, removed,
//! duplicated, a string truncated, stuffed or made huge, a value nested deep, bytes cut or
//! spliced — as proptest strategies, so a failure shrinks to the fewest, smallest changes.

use std::fmt;

use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::{Map, Value, json};

/// Bytes, shown in a report as (lossy) text, cut short when long.
#[derive(Clone, PartialEq, Eq)]
pub struct Bytes(pub Vec<u8>);

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = String::from_utf8_lossy(&self.0);
        let shown: String = text.chars().take(4000).collect();
        write!(f, "{} bytes: {shown:?}", self.0.len())?;
        if shown.len() < text.len() {
            write!(f, "…")?;
        }
        Ok(())
    }
}

/// Strings that have broken parsers before: empty, whitespace, controls, bidi and invisible
/// characters, escapes, separators of every syntax involved, path tricks, numbers at their
/// limits, and the schemes and hosts our checks care about.
const NASTY: &[&str] = &[
    "",
    " ",
    "\t",
    "\r\n",
    "\0",
    "\u{7f}",
    "\u{202e}",
    "\u{2066}",
    "\u{200b}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "é",
    "💥",
    "%",
    "%00",
    "%zz",
    "%2e%2e",
    "%ff%fe",
    "+",
    "&",
    "=",
    "?",
    "#",
    "/",
    "//",
    "\\",
    "..",
    "../",
    "/./",
    "*",
    "*.",
    ".",
    "-",
    "_",
    "@",
    ":",
    "\"",
    "'",
    "<script>",
    "{}",
    "[]",
    "null",
    "true",
    "0",
    "-1",
    "1e309",
    "18446744073709551616",
    "-9223372036854775809",
    "NaN",
    "https://",
    "https://evil.example/",
    "https://evil.example/cb#frag",
    "http://localhost/cb",
    "http://127.0.0.1:1/cb",
    "http://[::1]/cb",
    "javascript:alert(1)",
    "data:text/html,x",
    "com.example.app:/cb",
    "file:///etc/passwd",
    "localhost",
    "xn--",
    "a.b",
    "acme",
    "ACME",
    "Bearer",
    "mcp",
    "S256",
    "plain",
    "code",
    "none",
    "authorization_code",
    "refresh_token",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// A string from [`NASTY`], a short random one, or one of the given context strings (ids and
/// values the server knows, so a mutation can land on something that exists).
pub fn string(context: &[String]) -> BoxedStrategy<String> {
    let mut picks: Vec<String> = NASTY.iter().map(|s| (*s).to_owned()).collect();
    picks.extend(context.iter().cloned());
    prop_oneof![
        4 => select(picks),
        2 => "[ -~]{0,24}",
        1 => "\\PC{0,12}",
        1 => any::<String>(),
    ]
    .boxed()
}

/// A replacement JSON value: any type, numbers at their limits, strings from [`string`],
/// small arrays and objects of those.
pub fn value(context: &[String]) -> BoxedStrategy<Value> {
    let numbers = select(vec![
        json!(0),
        json!(-1),
        json!(1),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(9_007_199_254_740_993_u64),
        json!(1e308),
        json!(-1e308),
        json!(0.5),
        json!(4_294_967_296_u64),
        json!(65_536),
    ]);
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        2 => numbers,
        1 => any::<i64>().prop_map(Value::from),
        5 => string(context).prop_map(Value::String),
    ];
    let context = context.to_vec();
    leaf.prop_recursive(3, 12, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((string(&context), inner), 0..4)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    })
    .boxed()
}

/// A change to a string.
#[derive(Clone, Debug)]
pub enum StrOp {
    Truncate(Index),
    Insert(Index, String),
    Repeat(u8),
    Upper,
    Replace(String),
    /// Padded to this many bytes: around every body limit there is.
    Huge(usize),
}

/// The longest string a mutation makes.
const MAX_STRING: usize = 2 * 1024 * 1024 + 2;

/// Mostly just past the small limits (a name, a line, a form); now and then past the 1 MiB
/// body limit, which costs milliseconds per input in a debug build.
const HUGE: [usize; 8] = [
    1_024,
    1_024,
    4_097,
    4_097,
    16 * 1024 + 1,
    16 * 1024 + 1,
    64 * 1024 + 1,
    1024 * 1024 + 1,
];

pub fn str_op(context: &[String]) -> BoxedStrategy<StrOp> {
    prop_oneof![
        13 => short_str_op(context),
        1 => select(HUGE.to_vec()).prop_map(StrOp::Huge),
    ]
    .boxed()
}

/// A [`StrOp`] that never pads to a limit: for parsers that are called on short strings, where
/// time spent on megabytes is time not spent on cases.
pub fn short_str_op(context: &[String]) -> BoxedStrategy<StrOp> {
    prop_oneof![
        2 => any::<Index>().prop_map(StrOp::Truncate),
        4 => (any::<Index>(), string(context)).prop_map(|(i, s)| StrOp::Insert(i, s)),
        1 => (2u8..64).prop_map(StrOp::Repeat),
        1 => Just(StrOp::Upper),
        3 => string(context).prop_map(StrOp::Replace),
    ]
    .boxed()
}

impl StrOp {
    pub fn apply(&self, s: &str) -> String {
        let at = |i: &Index| {
            let bounds: Vec<usize> = s.char_indices().map(|(b, _)| b).chain([s.len()]).collect();
            bounds[i.index(bounds.len())]
        };
        match self {
            StrOp::Truncate(i) => s[..at(i)].to_owned(),
            StrOp::Insert(i, x) => {
                let b = at(i);
                format!("{}{x}{}", &s[..b], &s[b..])
            }
            // Never past twice the largest limit: bigger only costs time.
            StrOp::Repeat(n) => s.repeat(usize::from(*n).min(MAX_STRING / s.len().max(1)).max(1)),
            StrOp::Upper => s.to_uppercase(),
            StrOp::Replace(x) => x.clone(),
            StrOp::Huge(n) => {
                let mut out = s.chars().take(64).collect::<String>();
                while out.len() < *n {
                    out.push(if out.len() % 7 == 0 { 'é' } else { 'a' });
                }
                out
            }
        }
    }
}

/// A string from `seeds`, changed by up to three [`StrOp`]s.
pub fn text(seeds: Vec<String>, context: &[String]) -> BoxedStrategy<String> {
    (select(seeds), prop::collection::vec(str_op(context), 0..=3))
        .prop_map(|(seed, ops)| ops.iter().fold(seed, |s, op| op.apply(&s)))
        .boxed()
}

/// [`text`] without padding to a limit (see [`short_str_op`]).
pub fn short_text(seeds: Vec<String>, context: &[String]) -> BoxedStrategy<String> {
    (
        select(seeds),
        prop::collection::vec(short_str_op(context), 0..=3),
    )
        .prop_map(|(seed, ops)| ops.iter().fold(seed, |s, op| op.apply(&s)))
        .boxed()
}

/// A change to a JSON document, at the node its index picks (in document order).
#[derive(Clone, Debug)]
pub enum JsonOp {
    Replace(Index, Value),
    Remove(Index),
    /// An array element repeated, an object member copied under a near-identical name, a
    /// string repeated.
    Duplicate(Index, u8),
    /// A new member (into an object) or element (into an array).
    Insert(Index, String, Value),
    /// The node wrapped in this many arrays or objects.
    Nest(Index, u16, bool),
    Text(Index, StrOp),
    /// The node replaced by a node of another (or the same) seed.
    Splice(Index, Index, Index),
    /// Every member of the object written twice (JSON allows it; decoders differ on it).
    DuplicateKeys(Index),
}

/// A mutated JSON document, and the objects whose members are written twice.
#[derive(Clone, Debug)]
pub struct JsonCase {
    pub value: Value,
    pub twice: Vec<String>,
}

fn json_op(context: &[String]) -> BoxedStrategy<JsonOp> {
    prop_oneof![
        5 => (any::<Index>(), value(context)).prop_map(|(i, v)| JsonOp::Replace(i, v)),
        3 => any::<Index>().prop_map(JsonOp::Remove),
        1 => (any::<Index>(), 1u8..40).prop_map(|(i, n)| JsonOp::Duplicate(i, n)),
        2 => (any::<Index>(), string(context), value(context))
            .prop_map(|(i, k, v)| JsonOp::Insert(i, k, v)),
        1 => (any::<Index>(), select(vec![1u16, 2, 8, 64, 127, 129, 400]), any::<bool>())
            .prop_map(|(i, d, arrays)| JsonOp::Nest(i, d, arrays)),
        5 => (any::<Index>(), str_op(context)).prop_map(|(i, op)| JsonOp::Text(i, op)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, c)| JsonOp::Splice(a, b, c)),
        1 => any::<Index>().prop_map(JsonOp::DuplicateKeys),
    ]
    .boxed()
}

/// JSON pointers of every node, in document order (the root is "").
fn pointers(value: &Value) -> Vec<String> {
    fn walk(value: &Value, at: String, out: &mut Vec<String>) {
        out.push(at.clone());
        match value {
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    walk(item, format!("{at}/{i}"), out);
                }
            }
            Value::Object(members) => {
                for (k, v) in members {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    walk(v, format!("{at}/{k}"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(value, String::new(), &mut out);
    out
}

fn unescape(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
}

fn apply(doc: &mut JsonCase, op: &JsonOp, seeds: &[Value], focus: &[&str]) {
    let mut all = pointers(&doc.value);
    for prefix in focus {
        let inside: Vec<String> = all
            .iter()
            .filter(|p| p.starts_with(prefix))
            .cloned()
            .collect();
        if !inside.is_empty() {
            all = inside;
            break;
        }
    }
    let pick = |i: &Index| all[i.index(all.len())].clone();
    match op {
        JsonOp::Replace(i, v) => {
            if let Some(node) = doc.value.pointer_mut(&pick(i)) {
                *node = v.clone();
            }
        }
        JsonOp::Remove(i) => {
            let at = pick(i);
            let Some((parent, last)) = at.rsplit_once('/') else {
                doc.value = Value::Null;
                return;
            };
            match doc.value.pointer_mut(parent) {
                Some(Value::Object(members)) => {
                    members.remove(&unescape(last));
                }
                Some(Value::Array(items)) => {
                    if let Ok(n) = last.parse::<usize>()
                        && n < items.len()
                    {
                        items.remove(n);
                    }
                }
                _ => {}
            }
        }
        JsonOp::Duplicate(i, n) => {
            let at = pick(i);
            let node = doc.value.pointer(&at).cloned().unwrap_or_default();
            // Copies of a huge node would only cost time: the whole stays under 2 MiB.
            let room = MAX_STRING.saturating_sub(doc.value.to_string().len());
            let n = usize::from(*n).min(room / node.to_string().len().max(1));
            if let Some((parent, last)) = at.rsplit_once('/') {
                match doc.value.pointer_mut(parent) {
                    Some(Value::Array(items)) => {
                        items.extend(std::iter::repeat_n(node, n));
                    }
                    Some(Value::Object(members)) => {
                        let name = unescape(last);
                        for k in 0..n.min(8) {
                            let variant = match k {
                                0 => name.to_uppercase(),
                                1 => format!("{name} "),
                                2 => format!("{name}\0"),
                                _ => format!("{name}{k}"),
                            };
                            members.insert(variant, node.clone());
                        }
                    }
                    _ => {}
                }
            } else if let Value::String(s) = &mut doc.value {
                *s = s.repeat(n.max(1));
            }
        }
        JsonOp::Insert(i, k, v) => match doc.value.pointer_mut(&pick(i)) {
            Some(Value::Object(members)) => {
                members.insert(k.clone(), v.clone());
            }
            Some(Value::Array(items)) => items.push(v.clone()),
            Some(other) => {
                let inner = std::mem::take(other);
                *other = Value::Object(Map::from_iter([(k.clone(), inner)]));
            }
            None => {}
        },
        JsonOp::Nest(i, depth, arrays) => {
            if let Some(node) = doc.value.pointer_mut(&pick(i)) {
                let mut wrapped = std::mem::take(node);
                for _ in 0..*depth {
                    wrapped = if *arrays {
                        Value::Array(vec![wrapped])
                    } else {
                        json!({ "a": wrapped })
                    };
                }
                *node = wrapped;
            }
        }
        JsonOp::Text(i, op) => {
            if let Some(node) = doc.value.pointer_mut(&pick(i)) {
                let current = match &*node {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => other.to_string(),
                };
                *node = Value::String(op.apply(&current));
            }
        }
        JsonOp::Splice(i, from_seed, from_node) => {
            let seed = &seeds[from_seed.index(seeds.len())];
            let theirs = pointers(seed);
            let donor = seed
                .pointer(&theirs[from_node.index(theirs.len())])
                .cloned()
                .unwrap_or_default();
            if let Some(node) = doc.value.pointer_mut(&pick(i)) {
                *node = donor;
            }
        }
        JsonOp::DuplicateKeys(i) => {
            let at = pick(i);
            if doc.value.pointer(&at).is_some_and(Value::is_object) {
                doc.twice.push(at);
            }
        }
    }
}

/// A seed from `seeds` with up to four [`JsonOp`]s applied; four times in five only inside
/// the first of `focus` (JSON pointer prefixes, e.g. `/params/arguments/`) the seed has, so
/// that most inputs get past the envelope to the code behind it.
pub fn json(
    seeds: Vec<Value>,
    context: &[String],
    focus: &'static [&'static str],
) -> BoxedStrategy<JsonCase> {
    (
        0..seeds.len(),
        prop::collection::vec(json_op(context), 0..=4),
        prop::bool::weighted(0.8),
    )
        .prop_map(move |(seed, ops, focused)| {
            let mut doc = JsonCase {
                value: seeds[seed].clone(),
                twice: Vec::new(),
            };
            let focus: &[&str] = if focused { focus } else { &[] };
            for op in &ops {
                apply(&mut doc, op, &seeds, focus);
            }
            doc
        })
        .boxed()
}

impl JsonCase {
    /// The document as a client would send it, members of [`Self::twice`] objects twice.
    pub fn to_bytes(&self) -> Vec<u8> {
        fn write(value: &Value, at: &str, twice: &[String], out: &mut String) {
            match value {
                Value::Array(items) => {
                    out.push('[');
                    for (i, item) in items.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        write(item, &format!("{at}/{i}"), twice, out);
                    }
                    out.push(']');
                }
                Value::Object(members) => {
                    let times = if twice.iter().any(|t| t == at) { 2 } else { 1 };
                    out.push('{');
                    let mut first = true;
                    for _ in 0..times {
                        for (k, v) in members {
                            if !first {
                                out.push(',');
                            }
                            first = false;
                            out.push_str(&Value::String(k.clone()).to_string());
                            out.push(':');
                            let k = k.replace('~', "~0").replace('/', "~1");
                            write(v, &format!("{at}/{k}"), twice, out);
                        }
                    }
                    out.push('}');
                }
                scalar => out.push_str(&scalar.to_string()),
            }
        }
        if self.twice.is_empty() {
            return self.value.to_string().into_bytes();
        }
        let mut out = String::new();
        write(&self.value, "", &self.twice, &mut out);
        out.into_bytes()
    }
}

/// A change to raw bytes.
#[derive(Clone, Debug)]
pub enum ByteOp {
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Remove(Index, u8),
    Flip(Index, u8),
    /// A range copied in after itself.
    Repeat(Index, u8),
}

/// Bytes that end, open or break a token in JSON, forms, URLs, base64 and CBOR.
const SNIPPETS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"\\udfff\\ud800",
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\0",
    b"1e99999",
    b"-0",
    b"18446744073709551616",
    b"=",
    b"&",
    b"%",
    b"%FF",
    b"+",
    b"\r\n",
    b"\xef\xbb\xbf",
    b"\x1b\x5b",
    b"\x9f",
    b"\xbf",
    b"\x5b\xff",
    b"\x7b\xff",
    b"\x1b\xff\xff\xff\xff\xff\xff\xff\xff",
];

pub fn byte_op() -> BoxedStrategy<ByteOp> {
    prop_oneof![
        2 => any::<Index>().prop_map(ByteOp::Truncate),
        4 => (
            any::<Index>(),
            prop_oneof![
                3 => select(SNIPPETS.iter().map(|s| s.to_vec()).collect::<Vec<_>>()),
                1 => prop::collection::vec(any::<u8>(), 1..8),
            ],
        )
            .prop_map(|(i, b)| ByteOp::Insert(i, b)),
        2 => (any::<Index>(), 1u8..16).prop_map(|(i, n)| ByteOp::Remove(i, n)),
        3 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| ByteOp::Flip(i, b)),
        1 => (any::<Index>(), 1u8..64).prop_map(|(i, n)| ByteOp::Repeat(i, n)),
    ]
    .boxed()
}

impl ByteOp {
    pub fn apply(&self, bytes: &mut Vec<u8>) {
        let at = |i: &Index| i.index(bytes.len() + 1);
        match self {
            ByteOp::Truncate(i) => bytes.truncate(at(i)),
            ByteOp::Insert(i, b) => {
                let p = at(i);
                bytes.splice(p..p, b.iter().copied());
            }
            ByteOp::Remove(i, n) => {
                let p = at(i);
                let end = (p + usize::from(*n)).min(bytes.len());
                bytes.drain(p..end);
            }
            ByteOp::Flip(i, b) => {
                if !bytes.is_empty() {
                    let p = i.index(bytes.len());
                    bytes[p] ^= b | 1;
                }
            }
            ByteOp::Repeat(i, n) => {
                let p = at(i);
                let end = (p + usize::from(*n)).min(bytes.len());
                let copy = bytes[p..end].to_vec();
                bytes.splice(end..end, copy);
            }
        }
    }
}

/// Up to three [`ByteOp`]s (none seven times in eight: most inputs should stay well-formed
/// enough to reach the code behind the parser).
pub fn bytes_ops() -> BoxedStrategy<Vec<ByteOp>> {
    prop_oneof![
        7 => Just(Vec::new()),
        1 => prop::collection::vec(byte_op(), 1..=3),
    ]
    .boxed()
}

pub fn apply_bytes(mut bytes: Vec<u8>, ops: &[ByteOp]) -> Vec<u8> {
    for op in ops {
        op.apply(&mut bytes);
    }
    bytes
}

/// A JSON body: a mutated seed (see [`json`]), written out, its bytes then sometimes mangled.
pub fn json_body(
    seeds: Vec<Value>,
    context: &[String],
    focus: &'static [&'static str],
) -> BoxedStrategy<Bytes> {
    (json(seeds, context, focus), bytes_ops())
        .prop_map(|(doc, ops)| Bytes(apply_bytes(doc.to_bytes(), &ops)))
        .boxed()
}

/// A change to a form (`application/x-www-form-urlencoded` body or query string).
#[derive(Clone, Debug)]
pub enum FormOp {
    Remove(Index),
    Duplicate(Index, String),
    SetValue(Index, StrOp),
    SetKey(Index, String),
    Add(String, String),
}

fn form_op(keys: Vec<String>, context: &[String]) -> BoxedStrategy<FormOp> {
    let mut names: Vec<String> = keys;
    names.extend(["", "x", "__proto__", "a[]", "a[b]"].map(str::to_owned));
    prop_oneof![
        2 => any::<Index>().prop_map(FormOp::Remove),
        2 => (any::<Index>(), string(context)).prop_map(|(i, v)| FormOp::Duplicate(i, v)),
        6 => (any::<Index>(), str_op(context)).prop_map(|(i, op)| FormOp::SetValue(i, op)),
        1 => (any::<Index>(), string(context)).prop_map(|(i, k)| FormOp::SetKey(i, k)),
        2 => (select(names), string(context)).prop_map(|(k, v)| FormOp::Add(k, v)),
    ]
    .boxed()
}

/// A form as a client sends it: pairs encoded properly, or written raw (so `%`, `+`, `&` and
/// `=` inside values mean what they mean), its bytes then sometimes mangled.
#[derive(Clone, Debug)]
pub struct Form {
    pub pairs: Vec<(String, String)>,
    pub raw: bool,
    pub ops: Vec<ByteOp>,
}

impl Form {
    pub fn to_bytes(&self) -> Vec<u8> {
        let text = if self.raw {
            self.pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
        } else {
            let mut url = reqwest::Url::parse("http://form.invalid/").unwrap();
            url.query_pairs_mut().extend_pairs(&self.pairs);
            url.query().unwrap_or_default().to_owned()
        };
        apply_bytes(text.into_bytes(), &self.ops)
    }

    /// As a URL's query: bytes a URI may not carry percent-encoded, `%` itself left alone.
    pub fn to_query(&self) -> String {
        let mut out = String::new();
        for b in self.to_bytes() {
            if b.is_ascii_graphic() && b != b'#' {
                out.push(char::from(b));
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    }
}

pub fn form(seeds: Vec<Vec<(String, String)>>, context: &[String]) -> BoxedStrategy<Form> {
    let keys: Vec<String> = seeds
        .iter()
        .flat_map(|pairs| pairs.iter().map(|(k, _)| k.clone()))
        .collect();
    (
        select(seeds),
        prop::collection::vec(form_op(keys, context), 0..=4),
        prop::bool::weighted(0.25),
        prop_oneof![4 => Just(Vec::new()), 1 => prop::collection::vec(byte_op(), 1..=2)],
    )
        .prop_map(|(mut pairs, ops, raw, byte_ops)| {
            for op in &ops {
                let len = pairs.len();
                match op {
                    FormOp::Remove(i) if len > 0 => {
                        pairs.remove(i.index(len));
                    }
                    FormOp::Duplicate(i, v) if len > 0 => {
                        let k = pairs[i.index(len)].0.clone();
                        pairs.push((k, v.clone()));
                    }
                    FormOp::SetValue(i, op) if len > 0 => {
                        let p = &mut pairs[i.index(len)];
                        p.1 = op.apply(&p.1);
                    }
                    FormOp::SetKey(i, k) if len > 0 => pairs[i.index(len)].0 = k.clone(),
                    FormOp::Add(k, v) => pairs.push((k.clone(), v.clone())),
                    _ => {}
                }
            }
            Form {
                pairs,
                raw,
                ops: byte_ops,
            }
        })
        .boxed()
}

/// Pairs from `(name, value)` literals.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Replaces every `placeholder` in `bytes` by `value`.
pub fn fill(bytes: &[u8], placeholder: &str, value: &str) -> Vec<u8> {
    let text = placeholder.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(at) = rest.windows(text.len()).position(|w| w == text) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(value.as_bytes());
        rest = &rest[at + text.len()..];
    }
    out.extend_from_slice(rest);
    out
}

pub fn contains(bytes: &[u8], placeholder: &str) -> bool {
    bytes
        .windows(placeholder.len())
        .any(|w| w == placeholder.as_bytes())
}
