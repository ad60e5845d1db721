//! A configuration value written as one string or a list of them (`contains = "ok"`
//! or `contains = ["ok", "ready"]`): read into a `Vec<String>`, shown in the JSON
//! Schema as either.
//!
//! ```ignore
//! #[serde(default, deserialize_with = "sluice_sdk::one_or_many")]
//! #[schemars(with = "sluice_sdk::OneOrMany")]
//! pub body_contains: Vec<String>,
//! ```

/// The schema of a value read by [`one_or_many`].
#[derive(schemars::JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum OneOrMany {
    /// One string.
    One(String),
    /// A list of strings.
    Many(Vec<String>),
}

/// Read one string or a list of strings into a list.
pub fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde::Deserialize;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Written {
        One(String),
        Many(Vec<String>),
    }
    match Written::deserialize(d)
        .map_err(|_| serde::de::Error::custom("expected a string or a list of strings"))?
    {
        Written::One(s) => Ok(vec![s]),
        Written::Many(v) => Ok(v),
    }
}
