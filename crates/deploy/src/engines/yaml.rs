//! A small YAML writer for manifests built as [`serde_json::Value`]s.
//!
//! Every string is written double-quoted with JSON escapes, which YAML reads back unchanged:
//! no value can turn into a number, a boolean or a null by accident (`"on"`, `"1.10"`,
//! `"6379"`), whatever it holds. Keys are written in the order serde_json keeps them (sorted),
//! plain where YAML cannot misread them.

use serde_json::Value;

/// One YAML document (no `---` marker).
pub fn document(value: &Value) -> String {
    let mut out = String::new();
    write_block(&mut out, value, 0);
    out
}

/// Several documents in one stream, each after a `---` line.
pub fn stream(values: &[Value]) -> String {
    values.iter().map(|v| format!("---\n{}", document(v))).collect()
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("null".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(Value::String(s.clone()).to_string()),
        Value::Array(a) if a.is_empty() => Some("[]".into()),
        Value::Object(o) if o.is_empty() => Some("{}".into()),
        _ => None,
    }
}

/// A key plain when YAML cannot read it as anything but that string, quoted otherwise.
fn key(text: &str) -> String {
    const YAML11_WORDS: &[&str] =
        &["y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"];
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
        && !YAML11_WORDS.contains(&text.to_ascii_lowercase().as_str());
    if plain { text.to_string() } else { Value::String(text.to_string()).to_string() }
}

/// Writes a mapping or sequence as a block at `indent` spaces; scalars on their own line.
fn write_block(out: &mut String, value: &Value, indent: usize) {
    let pad = " ".repeat(indent);
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                match scalar(v) {
                    Some(s) => out.push_str(&format!("{pad}{}: {s}\n", key(k))),
                    None => {
                        out.push_str(&format!("{pad}{}:\n", key(k)));
                        // Sequences under a key sit at the key's indent, as kubectl prints them.
                        let inner = if v.is_array() { indent } else { indent + 2 };
                        write_block(out, v, inner);
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for item in items {
                match scalar(item) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        // The item's block, its first line after the dash.
                        let mut inner = String::new();
                        write_block(&mut inner, item, indent + 2);
                        let inner = inner.strip_prefix(&format!("{pad}  ")).unwrap_or(&inner);
                        out.push_str(&format!("{pad}- {inner}"));
                    }
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other).unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nested_maps_and_lists_are_blocks_and_strings_are_quoted() {
        let value = json!({
            "a": {"b": [1, "on", {"c": "6379", "d": [true]}], "e": {}},
            "f": [],
            "g": "multi\nline"
        });
        let text = document(&value);
        let expected = "a:\n  b:\n  - 1\n  - \"on\"\n  - c: \"6379\"\n    d:\n    - true\n  \
                        e: {}\nf: []\ng: \"multi\\nline\"\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn keys_yaml_would_read_otherwise_are_quoted() {
        let text = document(&json!({"on": 1, "app.kubernetes.io/name": 2, "9x": 3}));
        assert_eq!(text, "\"9x\": 3\napp.kubernetes.io/name: 2\n\"on\": 1\n");
    }

    #[test]
    fn lists_of_lists_keep_their_nesting() {
        let text = document(&json!({"x": [[1, 2], [3]]}));
        assert_eq!(text, "x:\n- - 1\n  - 2\n- - 3\n");
    }
}
