//! `{{name}}` templates in a canary's URLs, headers and bodies: a value captured by an
//! earlier request of the flow, or `{{secret.NAME}}`, a secret granted to the monitor.
//!
//! Hand-written: the whole language is "replace `{{name}}`", with no loops, filters or
//! escaping, and a template engine's own syntax (Handlebars' `{{{ }}}`, Tera's `{% %}`)
//! would only add ways for a URL or a JSON body to mean something unexpected.

use std::fmt;

/// A text with `{{name}}` holes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Name(String),
}

/// Where a template's values come from.
pub trait Values {
    /// The value of `name`, or why there is none.
    fn value(&self, name: &str) -> Result<String, String>;
}

impl Template {
    /// Parse `text`; an unclosed `{{` or an empty name is an error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("`{{{{` without `}}}}` in `{text}`"))?;
            let name = after[..close].trim();
            if name.is_empty() || name.contains('{') {
                return Err(format!("empty or malformed `{{{{...}}}}` in `{text}`"));
            }
            parts.push(Part::Name(name.to_owned()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        Ok(Template { parts })
    }

    /// The names the template uses, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Name(n) => Some(n.as_str()),
            Part::Text(_) => None,
        })
    }

    /// Every name is a secret or in `captured` (what earlier requests capture).
    pub fn check_names(&self, captured: &[String]) -> Result<(), String> {
        for name in self.names() {
            if name.starts_with("secret.") || captured.iter().any(|c| c == name) {
                continue;
            }
            let known = if captured.is_empty() {
                "no earlier request captures anything".to_owned()
            } else {
                format!("captured before it: {}", captured.join(", "))
            };
            return Err(format!(
                "`{{{{{name}}}}}` is not captured by an earlier request of the check ({known}); \
                 secrets are written `{{{{secret.NAME}}}}`"
            ));
        }
        Ok(())
    }

    /// The text with every hole filled.
    pub fn render(&self, values: &dyn Values) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Name(n) => out.push_str(&values.value(n)?),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Text(t) => f.write_str(t)?,
                Part::Name(n) => write!(f, "{{{{{n}}}}}")?,
            }
        }
        Ok(())
    }
}

/// Fill the templates in every string of a JSON value.
pub fn render_json(
    value: &serde_json::Value,
    values: &dyn Values,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(Template::parse(s)?.render(values)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_json(v, values))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_json(v, values)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct Map(BTreeMap<&'static str, &'static str>);

    impl Values for Map {
        fn value(&self, name: &str) -> Result<String, String> {
            self.0
                .get(name)
                .map(|v| v.to_string())
                .ok_or_else(|| format!("no {name}"))
        }
    }

    fn values() -> Map {
        Map(BTreeMap::from([("token", "abc"), ("id", "42")]))
    }

    #[test]
    fn fills_every_hole() {
        let t = Template::parse("http://h/items/{{id}}?t={{ token }}&x").unwrap();
        assert_eq!(t.render(&values()).unwrap(), "http://h/items/42?t=abc&x");
        assert_eq!(t.names().collect::<Vec<_>>(), ["id", "token"]);
        assert_eq!(t.to_string(), "http://h/items/{{id}}?t={{token}}&x");
        assert_eq!(
            Template::parse("plain").unwrap().render(&values()).unwrap(),
            "plain"
        );
    }

    #[test]
    fn malformed_templates_are_refused() {
        assert!(
            Template::parse("a {{token")
                .unwrap_err()
                .contains("without `}}`")
        );
        assert!(Template::parse("a {{ }}").unwrap_err().contains("empty"));
    }

    #[test]
    fn names_must_be_captured_earlier_or_secrets() {
        let t = Template::parse("Bearer {{tokn}} {{secret.api-key}}").unwrap();
        let err = t.check_names(&["token".into()]).unwrap_err();
        assert_eq!(
            err,
            "`{{tokn}}` is not captured by an earlier request of the check (captured before it: token); secrets are written `{{secret.NAME}}`"
        );
        let t = Template::parse("Bearer {{token}} {{secret.api-key}}").unwrap();
        assert!(t.check_names(&["token".into()]).is_ok());
    }

    #[test]
    fn json_strings_are_templates_other_values_stay() {
        let v = serde_json::json!({"auth": "Bearer {{token}}", "n": 3, "list": ["{{id}}", true]});
        assert_eq!(
            render_json(&v, &values()).unwrap(),
            serde_json::json!({"auth": "Bearer abc", "n": 3, "list": ["42", true]})
        );
    }
}
