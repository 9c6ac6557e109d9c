//! `COMMAND DOCS` entries, replayed from what Redis 7.0 answers.
//!
//! `docs.json` is written by `tools/gen_command_docs.py`, which asks a real
//! redis-server for `COMMAND DOCS` over RESP3 and records every value with its
//! RESP type:
//!
//! | JSON                      | RESP3 / [`Reply`]                       |
//! |---------------------------|-----------------------------------------|
//! | string                    | bulk string `$` / `Reply::Bulk`         |
//! | integer                   | integer `:` / `Reply::Int`              |
//! | number with a fraction    | double `,` / `Reply::Double`            |
//! | `true` / `false`          | boolean `#` / `Reply::Bool`             |
//! | `null`                    | null `_` / `Reply::Nil`                 |
//! | array                     | array `*` / `Reply::Array`              |
//! | object                    | map `%` (bulk keys, order kept) / `Reply::Map` |
//! | `{"~": [..]}`             | set `~` / `Reply::Set`                  |
//! | `{"+": "text"}`           | simple string `+` / `Reply::Status`     |
//! | `{"-": "ERR text"}`       | error `-` / `Reply::Error`              |
//! | `{"=": ["txt", "text"]}`  | verbatim `=` / `Reply::Verbatim`        |
//! | `{",": "inf"}`            | double `,` (inf, -inf, nan)             |
//!
//! An object with exactly one key that is one of the tags above is a tagged
//! value; any other object is a map. The file is parsed straight into
//! [`Reply`] values (not `serde_json::Value`, whose map would lose the key
//! order) once, on first use.

use std::collections::HashMap;
use std::fmt;
use std::sync::LazyLock;

use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::protocol::Reply;

static DOCS_JSON: &str = include_str!("docs.json");

static DOCS: LazyLock<Docs> = LazyLock::new(|| match Docs::parse(DOCS_JSON) {
    Ok(docs) => docs,
    Err(err) => panic!("src/cmd/docs.json is malformed: {err}"),
});

/// The COMMAND DOCS entry for `name` (e.g. `"get"`), as Redis 7 formats it:
/// the docs map only, without the command name around it. Subcommands are
/// nested in their container's entry (`"subcommands"`); asking for
/// `"client|list"` also works, like it does in Redis. Names are matched without
/// regard to case. `None` when the command is not documented.
pub fn command_docs(name: &str) -> Option<Reply> {
    DOCS.lookup(&name.to_ascii_lowercase()).cloned()
}

/// Names of every top-level command in `docs.json`, in file order.
#[cfg(test)]
pub fn all_documented() -> impl Iterator<Item = &'static str> {
    let docs: &'static Docs = &DOCS;
    docs.entries.iter().map(|(name, _)| name.as_str())
}

struct Docs {
    entries: Vec<(String, Reply)>,
    index: HashMap<String, usize>,
}

impl Docs {
    fn parse(json: &str) -> Result<Docs, String> {
        let Node(root) = serde_json::from_str(json).map_err(|err| err.to_string())?;
        let Reply::Map(pairs) = root else {
            return Err("the top level is not an object".into());
        };
        let mut entries = Vec::with_capacity(pairs.len());
        let mut index = HashMap::with_capacity(pairs.len());
        for (key, docs) in pairs {
            let Reply::Bulk(key) = key else {
                return Err("a command name is not a string".into());
            };
            let name = String::from_utf8(key.to_vec()).map_err(|err| err.to_string())?;
            if !matches!(docs, Reply::Map(_)) {
                return Err(format!("the docs of {name:?} are not an object"));
            }
            if index.insert(name.clone(), entries.len()).is_some() {
                return Err(format!("{name:?} is listed twice"));
            }
            entries.push((name, docs));
        }
        Ok(Docs { entries, index })
    }

    fn lookup(&self, name: &str) -> Option<&Reply> {
        if let Some(&i) = self.index.get(name) {
            return Some(&self.entries[i].1);
        }
        let (container, _) = name.split_once('|')?;
        let entry = &self.entries[*self.index.get(container)?].1;
        let subcommands = map_get(entry, "subcommands")?;
        map_get(subcommands, name)
    }
}

/// The value under bulk-string key `key` when `map` is a `Reply::Map`.
fn map_get<'a>(map: &'a Reply, key: &str) -> Option<&'a Reply> {
    let Reply::Map(pairs) = map else {
        return None;
    };
    pairs.iter().find_map(|(k, v)| match k {
        Reply::Bulk(k) if k.as_ref() == key.as_bytes() => Some(v),
        _ => None,
    })
}

/// One JSON value read as the RESP value it stands for.
struct Node(Reply);

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Node, D::Error> {
        deserializer.deserialize_any(NodeVisitor).map(Node)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Reply;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-encoded RESP value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Reply, E> {
        Ok(Reply::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Reply, E> {
        Ok(Reply::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Reply, E> {
        i64::try_from(v)
            .map(Reply::Int)
            .map_err(|_| E::custom(format!("integer {v} does not fit in 64 bits")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Reply, E> {
        Ok(Reply::Double(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Reply, E> {
        Ok(Reply::Bulk(Bytes::copy_from_slice(v.as_bytes())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Reply, E> {
        Ok(Reply::Bulk(Bytes::from(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Reply, E> {
        Ok(Reply::Nil)
    }

    fn visit_none<E: de::Error>(self) -> Result<Reply, E> {
        Ok(Reply::Nil)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Reply, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Node(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Reply::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Reply, A::Error> {
        let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<String>()? {
            let Node(value) = map.next_value()?;
            pairs.push((key, value));
        }
        if pairs.len() == 1 && is_tag(&pairs[0].0) {
            let (tag, value) = pairs.pop().expect("one pair");
            return tagged(&tag, value).map_err(de::Error::custom);
        }
        Ok(Reply::Map(
            pairs
                .into_iter()
                .map(|(key, value)| (Reply::Bulk(Bytes::from(key)), value))
                .collect(),
        ))
    }
}

fn is_tag(key: &str) -> bool {
    matches!(key, "~" | "+" | "-" | "=" | ",")
}

/// The value of a one-key tagged object such as `{"~": [...]}`.
fn tagged(tag: &str, value: Reply) -> Result<Reply, String> {
    let text = |value: Reply| match value {
        Reply::Bulk(bytes) => String::from_utf8(bytes.to_vec()).map_err(|err| err.to_string()),
        other => Err(format!("tag {tag:?} needs a string, got {other:?}")),
    };
    match tag {
        "~" => match value {
            Reply::Array(items) => Ok(Reply::Set(items)),
            other => Err(format!("tag \"~\" needs an array, got {other:?}")),
        },
        "+" => text(value).map(Reply::Status),
        "-" => text(value).map(Reply::Error),
        "," => match text(value)?.as_str() {
            "inf" => Ok(Reply::Double(f64::INFINITY)),
            "-inf" => Ok(Reply::Double(f64::NEG_INFINITY)),
            "nan" => Ok(Reply::Double(f64::NAN)),
            other => other
                .parse()
                .map(Reply::Double)
                .map_err(|_| format!("bad double {other:?}")),
        },
        "=" => match value {
            Reply::Array(parts) if parts.len() == 2 => {
                let mut parts = parts.into_iter();
                let format = text(parts.next().expect("two parts"))?;
                let Some(Reply::Bulk(body)) = parts.next() else {
                    return Err("verbatim text is not a string".into());
                };
                let format: &'static str = match format.as_str() {
                    "txt" => "txt",
                    "mkd" => "mkd",
                    other => return Err(format!("unknown verbatim format {other:?}")),
                };
                Ok(Reply::Verbatim(format, body))
            }
            other => Err(format!("tag \"=\" needs [format, text], got {other:?}")),
        },
        _ => Err(format!("unknown tag {tag:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(map: &'a Reply, key: &str) -> &'a Reply {
        map_get(map, key).unwrap_or_else(|| panic!("no {key:?} in {map:?}"))
    }

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(Bytes::copy_from_slice(text.as_bytes()))
    }

    fn items(reply: &Reply) -> &[Reply] {
        match reply {
            Reply::Array(items) | Reply::Set(items) => items,
            other => panic!("not an array or set: {other:?}"),
        }
    }

    /// A RESP3 encoder just for these tests (the real one lives in `protocol`).
    fn resp3(reply: &Reply, out: &mut Vec<u8>) {
        match reply {
            Reply::Bulk(b) => {
                out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Status(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Reply::Int(n) => out.extend_from_slice(format!(":{n}\r\n").as_bytes()),
            Reply::Array(items) => {
                out.extend_from_slice(format!("*{}\r\n", items.len()).as_bytes());
                items.iter().for_each(|item| resp3(item, out));
            }
            Reply::Set(items) => {
                out.extend_from_slice(format!("~{}\r\n", items.len()).as_bytes());
                items.iter().for_each(|item| resp3(item, out));
            }
            Reply::Map(pairs) => {
                out.extend_from_slice(format!("%{}\r\n", pairs.len()).as_bytes());
                for (key, value) in pairs {
                    resp3(key, out);
                    resp3(value, out);
                }
            }
            other => panic!("COMMAND DOCS never holds {other:?}"),
        }
    }

    #[test]
    fn get_is_byte_exact() {
        // `COMMAND DOCS get` from redis-server 7.0.15 under HELLO 3, minus the
        // outer `%1 $3 get`.
        let expected = b"%5\r\n$7\r\nsummary\r\n$22\r\nGet the value of a key\r\n\
$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n\
$9\r\narguments\r\n*1\r\n%3\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n\
$14\r\nkey_spec_index\r\n:0\r\n";
        let mut out = Vec::new();
        resp3(&command_docs("get").expect("get"), &mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(expected)
        );
    }

    #[test]
    fn get_fields() {
        let docs = command_docs("get").expect("get is documented");
        assert!(matches!(docs, Reply::Map(_)));
        assert!(matches!(get(&docs, "summary"), Reply::Bulk(_)));
        assert_eq!(get(&docs, "since"), &bulk("1.0.0"));
        assert_eq!(get(&docs, "group"), &bulk("string"));
        let Reply::Array(args) = get(&docs, "arguments") else {
            panic!("arguments is not an array");
        };
        assert_eq!(get(&args[0], "name"), &bulk("key"));
        assert_eq!(get(&args[0], "type"), &bulk("key"));
        assert_eq!(get(&args[0], "key_spec_index"), &Reply::Int(0));
        // Key order is Redis's, not alphabetical.
        let Reply::Map(pairs) = &docs else {
            unreachable!()
        };
        let keys: Vec<_> = pairs.iter().map(|(k, _)| k.clone()).collect();
        let want: Vec<_> = ["summary", "since", "group", "complexity", "arguments"]
            .into_iter()
            .map(bulk)
            .collect();
        assert_eq!(keys, want);
    }

    fn find_token<'a>(args: &'a [Reply], token: &str) -> Option<&'a Reply> {
        args.iter().find_map(|arg| {
            if map_get(arg, "token") == Some(&bulk(token)) {
                return Some(arg);
            }
            map_get(arg, "arguments").and_then(|nested| find_token(items(nested), token))
        })
    }

    #[test]
    fn set_types() {
        let docs = command_docs("SET").expect("set is documented (any case)");
        let args = items(get(&docs, "arguments"));
        let nx = find_token(args, "NX").expect("NX token nested in SET's arguments");
        assert_eq!(get(nx, "type"), &bulk("pure-token"));
        // history: a set of [version, text] arrays of bulk strings.
        let Reply::Set(history) = get(&docs, "history") else {
            panic!("history is not a set");
        };
        assert!(!history.is_empty());
        for entry in history {
            let pair = match entry {
                Reply::Array(pair) => pair,
                other => panic!("history entry {other:?}"),
            };
            assert_eq!(pair.len(), 2);
            assert!(pair.iter().all(|p| matches!(p, Reply::Bulk(_))));
        }
        // flags: a set of simple strings.
        let condition = args
            .iter()
            .find(|a| map_get(a, "name") == Some(&bulk("condition")))
            .expect("condition argument");
        assert_eq!(
            get(condition, "flags"),
            &Reply::Set(vec![Reply::Status("optional".into())])
        );
    }

    #[test]
    fn doc_flags_and_deprecation() {
        let docs = command_docs("georadius").expect("georadius");
        assert_eq!(
            get(&docs, "doc_flags"),
            &Reply::Set(vec![Reply::Status("deprecated".into())])
        );
        assert!(matches!(get(&docs, "deprecated_since"), Reply::Bulk(_)));
        assert!(matches!(get(&docs, "replaced_by"), Reply::Bulk(_)));
    }

    #[test]
    fn containers_nest_subcommands() {
        let docs = command_docs("client").expect("client");
        let subs = get(&docs, "subcommands");
        let list = get(subs, "client|list");
        assert_eq!(get(list, "group"), &bulk("connection"));
        assert_eq!(command_docs("client|list").as_ref(), Some(list));
        assert_eq!(command_docs("CLIENT|LIST").as_ref(), Some(list));
        assert!(command_docs("client|nope").is_none());
        assert!(command_docs("get|x").is_none());
    }

    #[test]
    fn unknown_is_none() {
        assert!(command_docs("no-such-command").is_none());
        assert!(command_docs("").is_none());
    }

    #[test]
    fn every_entry_is_well_formed() {
        let names: Vec<_> = all_documented().collect();
        assert!(names.len() > 200, "only {} commands", names.len());
        for name in names {
            assert_eq!(name, name.to_ascii_lowercase());
            let docs = command_docs(name).unwrap();
            for field in ["summary", "since", "group"] {
                assert!(
                    matches!(get(&docs, field), Reply::Bulk(_)),
                    "{name}.{field}"
                );
            }
        }
    }

    #[test]
    fn tagged_values() {
        let Node(reply) = serde_json::from_str(
            r#"{"b":{"~":[1,{"+":"x"}]},"a":[null,true,1.5,{",":"inf"},{"-":"ERR e"},{"=":["txt","t"]}],"~":1,"+":2}"#,
        )
        .unwrap();
        assert_eq!(
            reply,
            Reply::Map(vec![
                (
                    bulk("b"),
                    Reply::Set(vec![Reply::Int(1), Reply::Status("x".into())])
                ),
                (
                    bulk("a"),
                    Reply::Array(vec![
                        Reply::Nil,
                        Reply::Bool(true),
                        Reply::Double(1.5),
                        Reply::Double(f64::INFINITY),
                        Reply::Error("ERR e".into()),
                        Reply::Verbatim("txt", Bytes::from_static(b"t")),
                    ])
                ),
                (bulk("~"), Reply::Int(1)),
                (bulk("+"), Reply::Int(2)),
            ])
        );
        assert!(serde_json::from_str::<Node>(r#"{"~":"x"}"#).is_err());
        assert!(serde_json::from_str::<Node>(r#"{"=":["htm","x"]}"#).is_err());
    }
}
