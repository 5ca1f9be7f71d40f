//! A parsed document with the line of every value: the common form YAML, JSON and TOML
//! inventories are read into, so errors can name `file:line`.

use super::Problem;
use saphyr::{LoadableYamlNode, MarkedYaml, Scalar, YamlData};
use serde_json::{Map, Number, Value};

/// A value and the line it starts on (1-based; map entries carry the line of their key).
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub line: usize,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A scalar, as JSON: null, bool, number or string.
    Scalar(Value),
    Seq(Vec<Node>),
    /// Entries in document order.
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.kind {
            NodeKind::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// What the node is, for error messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Scalar(Value::Null) => "null",
            NodeKind::Scalar(Value::Bool(_)) => "a bool",
            NodeKind::Scalar(Value::Number(_)) => "a number",
            NodeKind::Scalar(_) => "a string",
            NodeKind::Seq(_) => "a list",
            NodeKind::Map(_) => "a map",
        }
    }

    /// The node as plain JSON (lines dropped).
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Scalar(v) => v.clone(),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json()))
                    .collect::<Map<String, Value>>(),
            ),
        }
    }
}

/// Parses YAML (and so JSON, which YAML 1.2 contains). Duplicate keys are errors.
pub fn parse_yaml(text: &str) -> Result<Node, Problem> {
    let docs = MarkedYaml::load_from_str(text).map_err(|e| Problem {
        line: Some(e.marker().line().max(1)),
        message: format!("not valid YAML: {}", e.info()),
    })?;
    match docs.len() {
        0 => Ok(Node {
            line: 1,
            kind: NodeKind::Scalar(Value::Null),
        }),
        1 => docs.first().map(from_yaml).unwrap_or(Ok(Node {
            line: 1,
            kind: NodeKind::Scalar(Value::Null),
        })),
        n => Err(Problem {
            line: docs.get(1).map(|d| d.span.start.line()),
            message: format!("holds {n} YAML documents; an inventory is one document"),
        }),
    }
}

fn from_yaml(y: &MarkedYaml<'_>) -> Result<Node, Problem> {
    let line = y.span.start.line().max(1);
    let bad = |what: &str| Problem {
        line: Some(line),
        message: what.to_string(),
    };
    let kind = match &y.data {
        YamlData::Value(s) => NodeKind::Scalar(scalar(s)),
        YamlData::Representation(s, _, _) => NodeKind::Scalar(Value::String(s.to_string())),
        YamlData::Sequence(items) => {
            NodeKind::Seq(items.iter().map(from_yaml).collect::<Result<_, _>>()?)
        }
        YamlData::Mapping(m) => {
            let mut entries = Vec::with_capacity(m.len());
            for (k, v) in m.iter() {
                let key = match &k.data {
                    YamlData::Value(s) => match scalar(s) {
                        Value::String(s) => s,
                        Value::Null => return Err(bad("a map key is empty")),
                        other => other.to_string(),
                    },
                    YamlData::Representation(s, _, _) => s.to_string(),
                    _ => return Err(bad("map keys must be plain strings")),
                };
                let mut node = from_yaml(v)?;
                node.line = k.span.start.line().max(1);
                entries.push((key, node));
            }
            NodeKind::Map(entries)
        }
        YamlData::Tagged(_, inner) => return from_yaml(inner),
        YamlData::Alias(_) => return Err(bad("YAML aliases are not supported in inventories")),
        YamlData::BadValue => return Err(bad("a value could not be read")),
    };
    Ok(Node { line, kind })
}

fn scalar(s: &Scalar<'_>) -> Value {
    match s {
        Scalar::Null => Value::Null,
        Scalar::Boolean(b) => Value::Bool(*b),
        Scalar::Integer(i) => Value::Number((*i).into()),
        Scalar::FloatingPoint(f) => Number::from_f64(f.into_inner())
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        Scalar::String(s) => Value::String(s.to_string()),
    }
}

/// Parses TOML. Tables and array elements carry the line they start on.
pub fn parse_toml(text: &str) -> Result<Node, Problem> {
    let doc = toml::de::DeTable::parse(text).map_err(|e| Problem {
        line: e.span().map(|s| crate::error::line_col(text, s.start).0),
        message: format!("not valid TOML: {}", e.message().trim_end()),
    })?;
    let lines = LineIndex::new(text);
    Ok(Node {
        line: 1,
        kind: toml_table(doc.get_ref(), &lines),
    })
}

fn toml_table(t: &toml::de::DeTable<'_>, lines: &LineIndex) -> NodeKind {
    NodeKind::Map(
        t.iter()
            .map(|(k, v)| {
                let mut node = toml_value(v, lines);
                node.line = lines.line(k.span().start);
                (k.get_ref().to_string(), node)
            })
            .collect(),
    )
}

fn toml_value(v: &toml::Spanned<toml::de::DeValue<'_>>, lines: &LineIndex) -> Node {
    use toml::de::DeValue;
    let line = lines.line(v.span().start);
    let kind = match v.get_ref() {
        DeValue::String(s) => NodeKind::Scalar(Value::String(s.to_string())),
        DeValue::Integer(i) => NodeKind::Scalar(
            i64::from_str_radix(&i.as_str().replace('_', ""), i.radix())
                .map(|n| Value::Number(n.into()))
                .unwrap_or_else(|_| Value::String(i.as_str().to_string())),
        ),
        DeValue::Float(f) => NodeKind::Scalar(
            f.as_str()
                .replace('_', "")
                .parse::<f64>()
                .ok()
                .and_then(Number::from_f64)
                .map(Value::Number)
                .unwrap_or_else(|| Value::String(f.as_str().to_string())),
        ),
        DeValue::Boolean(b) => NodeKind::Scalar(Value::Bool(*b)),
        DeValue::Datetime(d) => NodeKind::Scalar(Value::String(d.to_string())),
        DeValue::Array(items) => {
            NodeKind::Seq(items.iter().map(|i| toml_value(i, lines)).collect())
        }
        DeValue::Table(t) => toml_table(t, lines),
    };
    Node { line, kind }
}

/// Byte offset → 1-based line, by binary search over line starts.
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    pub fn line(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_lines_follow_keys() {
        let n = parse_yaml("all:\n  hosts:\n    a:\n      x: 1\n    b:\n").unwrap();
        let hosts = n.get("all").unwrap().get("hosts").unwrap();
        assert_eq!(hosts.get("a").unwrap().line, 3);
        assert_eq!(hosts.get("b").unwrap().line, 5);
        assert_eq!(hosts.get("b").unwrap().to_json(), Value::Null);
        assert_eq!(
            hosts.get("a").unwrap().to_json(),
            serde_json::json!({"x": 1})
        );
    }

    #[test]
    fn json_is_yaml() {
        let n = parse_yaml(
            "{\n \"hosts\": [\n  {\"name\": \"a\"},\n  {\"name\": \"b\", \"p\": 2.5}\n ]\n}",
        )
        .unwrap();
        let NodeKind::Seq(hosts) = &n.get("hosts").unwrap().kind else {
            panic!()
        };
        assert_eq!(hosts[1].line, 4);
        assert_eq!(
            hosts[1].to_json(),
            serde_json::json!({"name": "b", "p": 2.5})
        );
    }

    #[test]
    fn yaml_errors_have_lines() {
        let e = parse_yaml("a: 1\nb: [\n").unwrap_err();
        assert!(e.line.is_some(), "{e:?}");
        let e = parse_yaml("a: 1\na: 2\n").unwrap_err();
        assert!(e.message.contains("YAML"), "{e:?}");
    }

    #[test]
    fn toml_lines() {
        let n = parse_toml("[defaults]\nuser = \"x\"\n\n[[hosts]]\nname = \"a\"\nport = 0x16\n\n[[hosts]]\nname = \"b\"\n").unwrap();
        let NodeKind::Seq(hosts) = &n.get("hosts").unwrap().kind else {
            panic!()
        };
        assert_eq!(hosts.iter().map(|h| h.line).collect::<Vec<_>>(), vec![4, 8]);
        assert_eq!(
            hosts[0].get("port").unwrap().to_json(),
            serde_json::json!(22)
        );
        let e = parse_toml("a = \n").unwrap_err();
        assert_eq!(e.line, Some(1));
    }
}
