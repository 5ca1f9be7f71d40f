//! The typed call path: Rust values in through `rhai::serde`, results back out checked against
//! the Rust type the caller expects.

use crate::error::Invalid;
use rhai::Dynamic;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Converts a Rust value into a Rhai value.
pub fn to_dynamic<T: Serialize>(value: &T) -> Result<Dynamic, Invalid> {
    rhai::serde::to_dynamic(value).map_err(|e| Invalid(e.to_string()))
}

/// Converts a Rhai value into `T`. Integers are accepted where floats are expected.
pub fn from_dynamic<T: DeserializeOwned>(value: &Dynamic) -> Result<T, Invalid> {
    match rhai::serde::from_dynamic::<T>(value) {
        Ok(t) => Ok(t),
        // rhai's deserializer is exact about numbers; JSON's is lenient (int → float).
        // rhai's deserializer is exact about numbers; JSON's is lenient (int → float) and its
        // messages name the offending field.
        Err(_) => {
            let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
            serde_json::from_value::<T>(json)
                .map_err(|e| Invalid(format!("got `{}`: {e}", value.type_name())))
        }
    }
}

/// Converts a list of arguments for a policy call.
pub trait IntoArgs {
    fn into_args(self) -> Result<Vec<Dynamic>, Invalid>;
}

impl IntoArgs for Vec<Dynamic> {
    fn into_args(self) -> Result<Vec<Dynamic>, Invalid> {
        Ok(self)
    }
}

impl IntoArgs for () {
    fn into_args(self) -> Result<Vec<Dynamic>, Invalid> {
        Ok(Vec::new())
    }
}

impl<A: Serialize> IntoArgs for (&A,) {
    fn into_args(self) -> Result<Vec<Dynamic>, Invalid> {
        Ok(vec![to_dynamic(self.0)?])
    }
}

impl<A: Serialize, B: Serialize> IntoArgs for (&A, &B) {
    fn into_args(self) -> Result<Vec<Dynamic>, Invalid> {
        Ok(vec![to_dynamic(self.0)?, to_dynamic(self.1)?])
    }
}

/// Converts JSON into a Rhai value without going through serde: the hot path for host facts.
pub fn json_to_dynamic(v: &serde_json::Value) -> Dynamic {
    use serde_json::Value;
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(a) => Dynamic::from_array(a.iter().map(json_to_dynamic).collect()),
        Value::Object(m) => Dynamic::from_map(
            m.iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect(),
        ),
    }
}

/// Shares the Rhai strings of values many hosts have in common (hardware, datacenter, ...),
/// so converting a fleet allocates each once.
#[derive(Debug, Default)]
pub struct Interner {
    strings: std::collections::HashMap<String, rhai::ImmutableString>,
}

impl Interner {
    fn get(&mut self, s: &str) -> Dynamic {
        if let Some(x) = self.strings.get(s) {
            return Dynamic::from(x.clone());
        }
        let x = rhai::ImmutableString::from(s);
        if self.strings.len() < 100_000 {
            self.strings.insert(s.to_string(), x.clone());
        }
        Dynamic::from(x)
    }
}

/// A host as policies see it: the same map `to_dynamic(host)` builds, built directly,
/// because planning converts every host of the fleet.
pub fn host_to_dynamic(h: &crate::model::Host) -> Dynamic {
    host_to_dynamic_with(h, &mut Interner::default())
}

/// [`host_to_dynamic`], sharing common values through `interner`.
pub fn host_to_dynamic_with(h: &crate::model::Host, interner: &mut Interner) -> Dynamic {
    let mut m = rhai::Map::new();
    let s = |x: &str| Dynamic::from(x.to_string());
    m.insert("name".into(), s(&h.name));
    m.insert("address".into(), s(&h.address));
    if let Some(p) = h.port {
        m.insert("port".into(), Dynamic::from_int(i64::from(p)));
    }
    if let Some(u) = &h.user {
        m.insert("user".into(), interner.get(u));
    }
    m.insert("hardware".into(), interner.get(&h.hardware));
    m.insert("workload".into(), interner.get(&h.workload));
    m.insert("datacenter".into(), interner.get(&h.datacenter));
    m.insert("rack".into(), interner.get(&h.rack));
    m.insert("kernel".into(), interner.get(&h.kernel));
    m.insert(
        "tags".into(),
        Dynamic::from_array(h.tags.iter().map(|t| interner.get(t)).collect()),
    );
    m.insert(
        "facts".into(),
        Dynamic::from_map(
            h.facts
                .iter()
                .map(|(k, v)| (k.as_str().into(), json_to_dynamic(v)))
                .collect(),
        ),
    );
    Dynamic::from_map(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_host_conversion_matches_serde() {
        let mut h = crate::model::Host {
            name: "db1".into(),
            address: "10.0.0.1".into(),
            port: Some(2222),
            hardware: "r740".into(),
            tags: vec!["a".into()],
            ..Default::default()
        };
        h.facts.insert(
            "n".into(),
            serde_json::json!({"x": [1, 2.5, null, true, "s"]}),
        );
        let direct = serde_json::to_value(host_to_dynamic(&h)).unwrap();
        let via_serde = serde_json::to_value(to_dynamic(&h).unwrap()).unwrap();
        assert_eq!(direct, via_serde);
    }
}
