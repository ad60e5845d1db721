//! Checks that need the plugins: every `uses` loads, and every step's `with` table
//! matches the JSON Schema its plugin declared. Run before any step starts, so a typo
//! in the last stage fails the run in the first second, not after an hour.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::{ConfigError, PathSegment, Pipeline, PluginRef};
use crate::host::plugin::{LoadedPlugin, PluginError, PluginHost};

/// Why a pipeline cannot run.
#[derive(Debug)]
pub enum Invalid {
    /// Problems in the pipeline file, each at its place.
    Config(Vec<ConfigError>),
    /// The runner itself failed while loading a plugin (e.g. the OS refused a thread);
    /// not the pipeline's fault.
    Internal(PluginError),
}

/// Load every plugin the pipeline uses and check each step's configuration.
/// Returns the loaded plugins, or every problem found.
pub async fn validate(
    pipeline: &Pipeline,
    host: &PluginHost,
) -> Result<HashMap<PluginRef, Arc<LoadedPlugin>>, Invalid> {
    let source = &pipeline.source;
    let mut plugins = HashMap::new();
    let mut errors = Vec::new();
    for stage in &pipeline.stages {
        for step in &stage.steps {
            let plugin = match plugins.get(&step.uses) {
                Some(p) => Some(Arc::clone(p)),
                None => match host.load(&step.uses).await {
                    Ok(p) => {
                        plugins.insert(step.uses.clone(), p.clone());
                        Some(p)
                    }
                    Err(e @ PluginError::Internal { .. }) => return Err(Invalid::Internal(e)),
                    Err(e) => {
                        let span =
                            source.span_of(&step.key_path(&[PathSegment::Key("uses".into())]));
                        errors.push(source.error(
                            span.map_or(0, |s| s.start),
                            format!("step `{}`: {e}", step.id),
                        ));
                        None
                    }
                },
            };
            let Some(plugin) = plugin else { continue };
            for err in plugin.validator().iter_errors(&step.with) {
                for problem in explain(&err, plugin.schema()) {
                    let (path, shown) = with_path(&problem.at);
                    let span = source.span_of(&step.key_path(&path)).or_else(|| {
                        source.span_of(&step.key_path(&[PathSegment::Key("uses".into())]))
                    });
                    errors.push(source.error(
                        span.map_or(0, |s| s.start),
                        format!(
                            "step `{}` ({}): `{shown}`: {}",
                            step.id,
                            step.uses_display(),
                            problem.message
                        ),
                    ));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(plugins)
    } else {
        errors.sort_by_key(|e| (e.pos.line, e.pos.column));
        Err(Invalid::Config(errors))
    }
}

/// One problem with a step's `with` table, at a place in it.
struct Problem {
    /// The JSON pointer tokens of the place, inside `with`.
    at: Vec<String>,
    message: String,
}

/// The TOML path of a place inside `with`, and how to show it (`with.args[1]`).
fn with_path(tokens: &[String]) -> (Vec<PathSegment>, String) {
    let mut path = vec![PathSegment::Key("with".into())];
    let mut shown = String::from("with");
    for token in tokens {
        match token.parse::<usize>() {
            Ok(i) => {
                path.push(PathSegment::Index(i));
                shown.push_str(&format!("[{i}]"));
            }
            Err(_) => {
                shown.push('.');
                shown.push_str(token);
                path.push(PathSegment::Key(token.clone()));
            }
        }
    }
    (path, shown)
}

/// The tokens of a JSON pointer (`/a/0` → `a`, `0`), unescaped.
fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// What a schema error means for the person who wrote the step: unknown keys with
/// the closest known key, enum values with the closest valid one, and for `oneOf`
/// or `anyOf` either the one alternative the value was evidently meant to be (its
/// own errors) or the list of alternatives.
fn explain(err: &jsonschema::ValidationError<'_>, schema: &serde_json::Value) -> Vec<Problem> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let at = pointer_tokens(err.instance_path().as_str());
    let keyword_parent = |path: &str| -> Option<&serde_json::Value> {
        let parent = &path[..path.rfind('/').unwrap_or(0)];
        schema.pointer(parent)
    };
    match err.kind() {
        Kind::AdditionalProperties { unexpected } => {
            let known: Vec<&str> = keyword_parent(err.schema_path().as_str())
                .and_then(|s| s.get("properties"))
                .and_then(serde_json::Value::as_object)
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            unexpected
                .iter()
                .map(|key| {
                    let mut message = format!("unknown key `{key}`");
                    if let Some(meant) = crate::suggest::closest(key, known.iter().copied()) {
                        message.push_str(&format!("; did you mean `{meant}`?"));
                    }
                    if !known.is_empty() {
                        message.push_str(&format!(" (known keys: {})", quoted_list(&known)));
                    }
                    let mut at = at.clone();
                    at.push(key.clone());
                    Problem { at, message }
                })
                .collect()
        }
        Kind::Enum { options } => {
            let options = options.as_array().map(Vec::as_slice).unwrap_or_default();
            vec![Problem {
                at,
                message: not_one_of(err.instance(), options.iter()),
            }]
        }
        Kind::OneOfNotValid { context } | Kind::AnyOf { context } => {
            // The alternatives whose type the value has: if only one, the value was
            // meant to be that one, and its own errors say what is wrong.
            let same_type: Vec<&Vec<jsonschema::ValidationError<'static>>> = context
                .iter()
                .filter(|branch| {
                    !branch.iter().any(|e| {
                        matches!(
                            e.kind(),
                            Kind::Type { .. } | Kind::Constant { .. } | Kind::Enum { .. }
                        ) && e.instance_path().as_str() == err.instance_path().as_str()
                    })
                })
                .collect();
            if let [branch] = same_type.as_slice()
                && !branch.is_empty()
            {
                return branch.iter().flat_map(|e| explain(e, schema)).collect();
            }
            let branches: Vec<&serde_json::Value> = schema
                .pointer(err.schema_path().as_str())
                .and_then(serde_json::Value::as_array)
                .map(|a| a.iter().map(|branch| resolve(branch, schema)).collect())
                .unwrap_or_default();
            // Alternatives that are all fixed values read as one list of values.
            let values: Option<Vec<&serde_json::Value>> = branches
                .iter()
                .map(|b| match (b.get("const"), b.get("enum")) {
                    (Some(c), _) => Some(vec![c]),
                    (None, Some(serde_json::Value::Array(e))) => Some(e.iter().collect()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|v| v.into_iter().flatten().collect());
            if let Some(values) = values
                && !values.is_empty()
            {
                return vec![Problem {
                    at,
                    message: not_one_of(err.instance(), values.into_iter()),
                }];
            }
            // TOML has no null: an optional key is simply left out.
            let alternatives: Vec<String> = branches
                .iter()
                .filter(|b| b.get("type").and_then(serde_json::Value::as_str) != Some("null"))
                .map(|branch| describe(branch, schema))
                .collect();
            let message = if alternatives.is_empty() {
                err.to_string()
            } else {
                format!(
                    "{} is not valid; expected {}",
                    err.instance(),
                    alternatives.join(", or ")
                )
            };
            vec![Problem { at, message }]
        }
        Kind::Pattern { .. } => {
            let form = keyword_parent(err.schema_path().as_str())
                .and_then(|s| s.get("description"))
                .and_then(serde_json::Value::as_str);
            let message = match form {
                Some(form) => format!("{} is not of the expected form: {form}", err.instance()),
                None => err.to_string(),
            };
            vec![Problem { at, message }]
        }
        _ => vec![Problem {
            at,
            message: err.to_string(),
        }],
    }
}

/// "`x` is not a valid value; expected one of a, b, c; did you mean b?"
fn not_one_of<'v>(
    instance: &serde_json::Value,
    values: impl Iterator<Item = &'v serde_json::Value> + Clone,
) -> String {
    let listed: Vec<String> = values.clone().map(ToString::to_string).collect();
    let mut message = format!(
        "{instance} is not a valid value; expected one of {}",
        listed.join(", ")
    );
    if let Some(typed) = instance.as_str() {
        let names = values.filter_map(serde_json::Value::as_str);
        if let Some(meant) = crate::suggest::closest(typed, names) {
            message.push_str(&format!("; did you mean \"{meant}\"?"));
        }
    }
    message
}

/// A subschema, with a local `$ref` followed.
fn resolve<'s>(
    branch: &'s serde_json::Value,
    root: &'s serde_json::Value,
) -> &'s serde_json::Value {
    match branch.get("$ref").and_then(serde_json::Value::as_str) {
        Some(r) if r.starts_with('#') => root.pointer(&r[1..]).unwrap_or(branch),
        _ => branch,
    }
}

/// A schema as a short phrase: its values, or its type and keys.
fn describe(branch: &serde_json::Value, root: &serde_json::Value) -> String {
    let branch = resolve(branch, root);
    if let Some(description) = branch.get("title").and_then(serde_json::Value::as_str) {
        return description.to_string();
    }
    if let Some(value) = branch.get("const") {
        return value.to_string();
    }
    if let Some(values) = branch.get("enum").and_then(serde_json::Value::as_array) {
        let values: Vec<String> = values.iter().map(ToString::to_string).collect();
        return format!("one of {}", values.join(", "));
    }
    let kind = branch.get("type").and_then(serde_json::Value::as_str);
    match kind {
        Some("object") => {
            let keys: Vec<&str> = branch
                .get("properties")
                .and_then(serde_json::Value::as_object)
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            if keys.is_empty() {
                "a table".to_string()
            } else {
                format!("a table with keys {}", quoted_list(&keys))
            }
        }
        Some("array") => match branch.get("items") {
            Some(items) => format!("a list of ({})", describe(items, root)),
            None => "a list".to_string(),
        },
        Some("string") => match branch
            .get("description")
            .and_then(serde_json::Value::as_str)
        {
            Some(form) if branch.get("pattern").is_some() => format!("a string ({form})"),
            _ => "a string".to_string(),
        },
        Some("integer") => "an integer".to_string(),
        Some("number") => "a number".to_string(),
        Some("boolean") => "true or false".to_string(),
        Some(other) => other.to_string(),
        None => "a value of another shape".to_string(),
    }
}

/// `a`, `b`, `c`
fn quoted_list(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
