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
                let pointer = err.instance_path().to_string();
                let mut path = vec![PathSegment::Key("with".into())];
                let mut shown = String::from("with");
                for token in pointer.split('/').skip(1) {
                    let token = token.replace("~1", "/").replace("~0", "~");
                    match token.parse::<usize>() {
                        Ok(i) => {
                            path.push(PathSegment::Index(i));
                            shown.push_str(&format!("[{i}]"));
                        }
                        Err(_) => {
                            shown.push('.');
                            shown.push_str(&token);
                            path.push(PathSegment::Key(token));
                        }
                    }
                }
                let span = source
                    .span_of(&step.key_path(&path))
                    .or_else(|| source.span_of(&step.key_path(&[PathSegment::Key("uses".into())])));
                errors.push(source.error(
                    span.map_or(0, |s| s.start),
                    format!(
                        "step `{}` ({}): `{shown}`: {err}",
                        step.id,
                        step.uses_display()
                    ),
                ));
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
