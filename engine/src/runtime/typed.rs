//! The typed call path: Rust values in through `rhai::serde`, results back out checked against
//! the Rust type the caller expects.

use rhai::Dynamic;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Converts a Rust value into a Rhai value.
pub fn to_dynamic<T: Serialize>(value: &T) -> Result<Dynamic, String> {
    rhai::serde::to_dynamic(value).map_err(|e| e.to_string())
}

/// Converts a Rhai value into `T`. Integers are accepted where floats are expected.
pub fn from_dynamic<T: DeserializeOwned>(value: &Dynamic) -> Result<T, String> {
    match rhai::serde::from_dynamic::<T>(value) {
        Ok(t) => Ok(t),
        // rhai's deserializer is exact about numbers; JSON's is lenient (int → float).
        // rhai's deserializer is exact about numbers; JSON's is lenient (int → float) and its
        // messages name the offending field.
        Err(_) => {
            let json = serde_json::to_value(value).map_err(|e| e.to_string())?;
            serde_json::from_value::<T>(json)
                .map_err(|e| format!("got `{}`: {e}", value.type_name()))
        }
    }
}

/// Converts a list of arguments for a policy call.
pub trait IntoArgs {
    fn into_args(self) -> Result<Vec<Dynamic>, String>;
}

impl IntoArgs for Vec<Dynamic> {
    fn into_args(self) -> Result<Vec<Dynamic>, String> {
        Ok(self)
    }
}

impl IntoArgs for () {
    fn into_args(self) -> Result<Vec<Dynamic>, String> {
        Ok(Vec::new())
    }
}

impl<A: Serialize> IntoArgs for (&A,) {
    fn into_args(self) -> Result<Vec<Dynamic>, String> {
        Ok(vec![to_dynamic(self.0)?])
    }
}

impl<A: Serialize, B: Serialize> IntoArgs for (&A, &B) {
    fn into_args(self) -> Result<Vec<Dynamic>, String> {
        Ok(vec![to_dynamic(self.0)?, to_dynamic(self.1)?])
    }
}
