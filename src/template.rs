//! The subset of Go templates that `docker … --format` and `inspect -f`
//! users type: text with `{{.Field.Sub}}`, `{{json .Field}}`, `{{json .}}`
//! and `{{index .Map "key"}}` actions over a JSON value, values printed as
//! Go's `text/template` prints them (strings bare, lists `[a b]`, maps
//! `map[k:v]`, a missing map key empty).

use anyhow::bail;
use serde_json::Value;

/// A parsed template: literal text and actions, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// A field path (`[]` is `.` itself), printed as Go or as JSON; with
    /// `key`, that entry of the map there (`index`).
    Field {
        path: Vec<String>,
        json: bool,
        key: Option<String>,
    },
}

impl Template {
    /// Parses `text`; an action other than a field or `json` is an error.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            parts.push(Part::Text(unescape(&rest[..start])));
            let Some(len) = rest[start..].find("}}") else {
                bail!("template {text:?}: unclosed action");
            };
            let action = rest[start + 2..start + len].trim();
            let (json, field) = match action.strip_prefix("json ") {
                Some(f) => (true, f.trim()),
                None => (false, action),
            };
            let (field, key) = match field.strip_prefix("index ") {
                Some(args) => {
                    let (map, key) = args.trim().split_once(' ').unwrap_or((args, ""));
                    let key = key.trim();
                    let Some(key) = key.strip_prefix('"').and_then(|k| k.strip_suffix('"')) else {
                        bail!("template {text:?}: index takes a field and a quoted key");
                    };
                    (map, Some(key.to_string()))
                }
                None => (field, None),
            };
            let Some(path) = field.strip_prefix('.') else {
                bail!(
                    "template {text:?}: {{{{{action}}}}} is not supported (fields such as .Id, and json)"
                );
            };
            let path = path
                .split('.')
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            parts.push(Part::Field { path, json, key });
            rest = &rest[start + len + 2..];
        }
        parts.push(Part::Text(unescape(rest)));
        Ok(Self { parts })
    }

    /// The template applied to `value`; a missing field is an error naming
    /// it, as Go's.
    pub fn render(&self, value: &Value) -> anyhow::Result<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Field { path, json, key } => {
                    let mut v = value;
                    for key in path {
                        v = match v.get(key) {
                            Some(inner) => inner,
                            None => bail!("template: can't evaluate field {key}"),
                        };
                    }
                    let empty = Value::String(String::new());
                    if let Some(key) = key {
                        // A missing key is the zero value, as Go's index.
                        v = v.get(key).unwrap_or(&empty);
                    }
                    if *json {
                        out.push_str(&v.to_string());
                    } else {
                        go_print(v, &mut out);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// `\t` and `\n` as docker's `--format` reads them.
fn unescape(text: &str) -> String {
    text.replace("\\t", "\t").replace("\\n", "\n")
}

/// A value as Go's `text/template` prints it.
fn go_print(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("<no value>"),
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                go_print(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                go_print(v, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_and_json_print_as_go_does() {
        let v = serde_json::json!({"Id": "sha256:1", "Config": {"Cmd": ["sh", "-c"], "Env": null}, "Size": 5});
        let t = |s: &str| Template::parse(s).unwrap().render(&v).unwrap();
        assert_eq!(t("{{.Id}}"), "sha256:1");
        assert_eq!(t("{{ .Config.Cmd }}\\t{{.Size}}"), "[sh -c]\t5");
        assert_eq!(t("{{json .Config.Cmd}}"), r#"["sh","-c"]"#);
        assert_eq!(t("{{.Config.Env}}"), "<no value>");
        assert_eq!(t("{{json .}}"), v.to_string());
        let missing = Template::parse("{{.Nope}}")
            .unwrap()
            .render(&v)
            .unwrap_err();
        assert!(missing.to_string().contains("Nope"));
        assert!(Template::parse("{{range .X}}").is_err());
        let labels = serde_json::json!({"Config": {"Labels": {"a.b": "1"}}});
        let i = |s: &str| Template::parse(s).unwrap().render(&labels).unwrap();
        assert_eq!(i(r#"{{index .Config.Labels "a.b"}}"#), "1");
        assert_eq!(i(r#"{{ index .Config.Labels "none" }}"#), "");
        assert!(Template::parse("{{index .Config.Labels a}}").is_err());
        assert!(Template::parse("{{.Id").is_err());
    }
}
