//! `sluice targets [FILE]`: the fleet of a pipeline. Every `[[target]]` it declares
//! (group, kind, where it is, its URL) with its record from the state store: what it
//! runs (label, digest, the deployment that installed it), the revision a rollback
//! would go back to, its state (`fresh`, `installing`, `healthy`, `failed`) and when
//! the record last changed. A target no deployment touched says so; records of targets
//! the file no longer declares are listed after the fleet. Nothing is written.
//!
//! Records are kept per application (what `builtin:deploy` deploys): `--application`,
//! else the `application` of the pipeline's `builtin:deploy` steps, else the pipeline's
//! name.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::json;

use super::durable_cli::{load_pipeline, state_error, state_path};
use super::{ExpectedError, OutputFormat, exit, json_text};
use crate::config::{Pipeline, PluginRef};
use crate::console;
use crate::reports::deployments::short_digest;
use crate::state::{RevisionRow, Store, TargetRecordRow};
use crate::targets::{TargetKind, TargetSpec};

/// Options of `sluice targets`.
#[derive(clap::Args, Debug)]
pub(super) struct TargetsArgs {
    /// The pipeline file.
    #[arg(default_value = "sluice.toml")]
    file: PathBuf,
    /// The application whose records to show [default: the `application` of the
    /// pipeline's `builtin:deploy` steps, else the pipeline's name]
    #[arg(long, value_name = "APP")]
    application: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    format: OutputFormat,
}

/// The applications a pipeline deploys: the `application` of each `builtin:deploy`
/// step (in file order, once each), else the pipeline's name.
fn applications(pipeline: &Pipeline) -> Vec<String> {
    let mut apps: Vec<String> = Vec::new();
    for step in pipeline.stages.iter().flat_map(|s| &s.steps) {
        if step.uses != PluginRef::Builtin("deploy".into()) {
            continue;
        }
        let app = step
            .with
            .get("application")
            .and_then(|v| v.as_str())
            .map_or_else(|| pipeline.name.clone(), str::to_string);
        if !apps.contains(&app) {
            apps.push(app);
        }
    }
    if apps.is_empty() {
        apps.push(pipeline.name.clone());
    }
    apps
}

/// Where a target is: its folder (relative to the pipeline's when inside it), or
/// `host:port` and the root there.
fn location(pipeline: &Pipeline, t: &TargetSpec) -> String {
    match &t.kind {
        TargetKind::Local { folder } => folder
            .strip_prefix(&pipeline.dir)
            .unwrap_or(folder)
            .display()
            .to_string(),
        TargetKind::Ssh { host, port, root } if root == "/" => format!("{host}:{port}"),
        TargetKind::Ssh { host, port, root } => format!("{host}:{port}{root}"),
    }
}

fn revision_text(r: &Option<RevisionRow>) -> String {
    match r {
        Some(r) => format!(
            "{} {} ({})",
            r.label,
            short_digest(&r.digest),
            r.deployment_id
        ),
        None => "-".into(),
    }
}

fn at(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The records of `applications`, from the store at `path` (none when it does not
/// exist yet: nothing was deployed).
fn read_records(
    path: &Path,
    applications: &[String],
) -> Result<Vec<TargetRecordRow>, ExpectedError> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let store = Store::open(path).map_err(state_error)?;
    let mut out = Vec::new();
    for app in applications {
        out.extend(store.target_records(app).map_err(state_error)?);
    }
    Ok(out)
}

/// `sluice targets`.
pub(super) fn targets(args: TargetsArgs, flag: Option<PathBuf>) -> Result<u8, ExpectedError> {
    let pipeline = load_pipeline(&args.file)?;
    let path = state_path(&pipeline, flag.as_deref());
    let apps = match &args.application {
        Some(a) => vec![a.clone()],
        None => applications(&pipeline),
    };
    let records = read_records(&path, &apps)?;
    if args.format == OutputFormat::Json {
        console::out_line(&json_text(&to_json(&pipeline, &apps, &records)));
    } else {
        console::out(&render_text(&pipeline, &apps, &records));
    }
    Ok(exit::OK)
}

/// The records of declared target `t`, one per application that has one.
fn records_of<'a>(records: &'a [TargetRecordRow], t: &TargetSpec) -> Vec<&'a TargetRecordRow> {
    records.iter().filter(|r| r.target == t.name).collect()
}

/// The text layout: one table of the declared fleet, then undeclared records.
pub(super) fn render_text(
    pipeline: &Pipeline,
    apps: &[String],
    records: &[TargetRecordRow],
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "targets of pipeline `{}` ({}, application {})",
        pipeline.name,
        pipeline.source.path.display(),
        apps.join(", ")
    );
    if pipeline.targets.is_empty() {
        let _ = writeln!(
            out,
            "no [[target]] is declared; declare hosts with [[target]] name, group and local or ssh"
        );
    }
    let header = [
        "TARGET",
        "GROUP",
        "KIND",
        "WHERE",
        "URL",
        "STATE",
        "CURRENT",
        "LAST GOOD",
        "UPDATED",
    ];
    let mut rows: Vec<Vec<String>> = Vec::new();
    for t in &pipeline.targets {
        let mine = records_of(records, t);
        let base = vec![
            t.name.clone(),
            t.group.clone(),
            t.kind.as_str().to_string(),
            location(pipeline, t),
            t.url.clone().unwrap_or_else(|| "-".into()),
        ];
        if mine.is_empty() {
            let mut row = base.clone();
            row.extend([
                "fresh".into(),
                "never deployed to".into(),
                "-".into(),
                "-".into(),
            ]);
            rows.push(row);
        }
        for r in mine {
            let mut row = base.clone();
            if apps.len() > 1 {
                row[0] = format!("{} [{}]", t.name, r.application);
            }
            row.extend([
                r.state.as_str().to_string(),
                revision_text(&r.current),
                revision_text(&r.last_good),
                at(r.updated_at),
            ]);
            rows.push(row);
        }
    }
    if !rows.is_empty() {
        out.push_str(&table(&header, &rows));
    }
    let undeclared: Vec<&TargetRecordRow> = records
        .iter()
        .filter(|r| !pipeline.targets.iter().any(|t| t.name == r.target))
        .collect();
    if !undeclared.is_empty() {
        let _ = writeln!(out, "recorded, but not declared in this file:");
        for r in undeclared {
            let _ = writeln!(
                out,
                "  {} ({}): {}, current {}, last good {}, updated {}",
                r.target,
                r.application,
                r.state.as_str(),
                revision_text(&r.current),
                revision_text(&r.last_good),
                at(r.updated_at)
            );
        }
    }
    out
}

/// Columns padded to their widest cell; the last one is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let pad = widths[i] - c.chars().count();
                s.push_str(c);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The JSON form: every declared target with its records (`deployed: false` and no
/// record for one never deployed to), and the undeclared records.
pub(super) fn to_json(
    pipeline: &Pipeline,
    apps: &[String],
    records: &[TargetRecordRow],
) -> serde_json::Value {
    let targets: Vec<serde_json::Value> = pipeline
        .targets
        .iter()
        .map(|t| {
            let mine = records_of(records, t);
            json!({
                "name": t.name,
                "group": t.group,
                "kind": t.kind.as_str(),
                "where": location(pipeline, t),
                "url": t.url,
                "deployed": !mine.is_empty(),
                "records": mine,
            })
        })
        .collect();
    let undeclared: Vec<&TargetRecordRow> = records
        .iter()
        .filter(|r| !pipeline.targets.iter().any(|t| t.name == r.target))
        .collect();
    json!({
        "pipeline": pipeline.name,
        "applications": apps,
        "targets": targets,
        "undeclared": undeclared,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::deployments::fixture;

    const PIPELINE: &str = r#"
[pipeline]
name = "shop"

[[target]]
name = "box-1"
group = "one-box"
local = "fleet/box-1"
url = "http://127.0.0.1:18081"

[[target]]
name = "box-2"
group = "zone-a"
local = "fleet/box-2"
url = "http://127.0.0.1:18082"

[[target]]
name = "web-9"
group = "rest"
ssh = "10.0.0.9:2222"

[[stage]]
name = "prod"
[[stage.step]]
id = "deploy"
uses = "builtin:deploy"
with = { application = "web", bundle = "dist" }
[stage.step.grants]
targets = ["one-box", "zone-a", "rest"]
"#;

    fn pipeline(dir: &Path) -> Pipeline {
        let file = dir.join("sluice.toml");
        std::fs::write(&file, PIPELINE).unwrap();
        crate::config::load_lenient(&file).unwrap().0
    }

    fn normalized(text: &str, dir: &Path) -> String {
        text.replace(&dir.display().to_string(), "[PROJECT]")
    }

    #[test]
    fn the_fleet_shows_each_target_with_its_record_and_the_never_deployed() {
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path());
        let apps = applications(&p);
        assert_eq!(apps, ["web"]);
        let store = fixture::store(dir.path());
        // A target the file no longer declares keeps its record.
        let mut gone = store.target_record("web", "box-1").unwrap();
        gone.target = "box-0".into();
        store.write_target_record(&gone, fixture::t(5)).unwrap();
        let records = read_records(&dir.path().join("state.db"), &apps).unwrap();
        insta::assert_snapshot!(normalized(&render_text(&p, &apps, &records), dir.path()));
        let json = to_json(&p, &apps, &records);
        assert_eq!(json["targets"][0]["deployed"], true);
        assert_eq!(
            json["targets"][0]["records"][0]["current"]["label"],
            "1.1.0"
        );
        assert_eq!(json["targets"][2]["deployed"], false);
        assert_eq!(json["targets"][2]["where"], "10.0.0.9:2222");
        assert_eq!(json["undeclared"][0]["target"], "box-0");
    }

    #[test]
    fn without_a_state_database_every_target_is_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let p = pipeline(dir.path());
        let records = read_records(&dir.path().join("no.db"), &["web".into()]).unwrap();
        assert!(records.is_empty());
        let text = render_text(&p, &["web".into()], &records);
        assert_eq!(text.matches("never deployed to").count(), 3, "{text}");
        assert!(
            !dir.path().join("no.db").exists(),
            "reading creates no database"
        );
    }
}
