//! `sluice lock` (write `sluice.lock`), `sluice plugin keygen` and `sluice plugin
//! sign`: pinning plugins by digest and signing them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::ExpectedError;
use crate::config::PluginRef;
use crate::console;
use crate::host::cache::CacheRoot;
use crate::host::cache::sha256_digest;
use crate::lockfile::{self, Lock, Update};

/// `sluice lock`.
#[derive(clap::Args, Debug)]
pub(super) struct LockArgs {
    /// The pipeline file; the lock is written next to it.
    #[arg(default_value = "sluice.toml")]
    pub file: PathBuf,
    /// Re-pin these `uses` values (or all, when given without a value) to their
    /// current digests; without it, entries already locked keep their digests.
    #[arg(long, value_name = "USES", num_args = 0..)]
    pub update: Option<Vec<String>>,
    /// Exit 1 instead of writing when the lock would change (for CI).
    #[arg(long)]
    pub check: bool,
}

/// `sluice plugin keygen`.
#[derive(clap::Args, Debug)]
pub(super) struct KeygenArgs {
    /// Where to write the secret key; the public key goes to the same path with `.pub`.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The key's id in the policy (shown in the public key file's comment).
    #[arg(long)]
    pub id: String,
}

/// `sluice plugin sign`.
#[derive(clap::Args, Debug)]
pub(super) struct SignArgs {
    /// The component to sign; the signature is written to FILE.minisig.
    pub file: PathBuf,
    /// The secret key (from `sluice plugin keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
}

pub(super) async fn lock(
    args: LockArgs,
    cache_root: Option<CacheRoot>,
) -> Result<u8, ExpectedError> {
    // Digests are of the components' bytes: nothing is compiled, so no cache is used.
    let _ = cache_root;
    let mut pipeline = crate::config::load(&args.file).map_err(|e| match e {
        crate::config::PipelineFileError::Unreadable { .. } => ExpectedError::Config(e.to_string()),
        crate::config::PipelineFileError::Invalid(errors) => super::config_error(&errors),
    })?;
    let old = lockfile::read_for(&pipeline, &args.file).map_err(|e| super::config_error(&e))?;
    let update = match &args.update {
        None => Update::Nothing,
        Some(list) if list.is_empty() => Update::All,
        Some(list) => Update::Only(list.clone()),
    };
    // `--update X` names what the lock names; anything else is a typo.
    if let Update::Only(list) = &update {
        let known: std::collections::BTreeSet<String> = lockfile::uses_of(&pipeline)
            .into_iter()
            .map(|u| u.key)
            .collect();
        let unknown: Vec<&String> = list.iter().filter(|u| !known.contains(*u)).collect();
        if !unknown.is_empty() {
            let names: Vec<String> = unknown.iter().map(|u| format!("`{u}`")).collect();
            let known: Vec<String> = known.iter().map(|u| format!("`{u}`")).collect();
            return Err(ExpectedError::Config(format!(
                "{}: --update {}: the pipeline uses no such plugin; it locks {}",
                args.file.display(),
                names.join(", "),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    // OCI references resolve at the digests the lock keeps (a moved tag changes
    // nothing until `--update` names it); the rest resolve afresh.
    let kept = old.as_ref().map(|l| Lock {
        path: l.path.clone(),
        plugins: l
            .plugins
            .iter()
            .filter(|p| !update.covers(&p.uses))
            .cloned()
            .collect(),
    });
    crate::registry::resolve(&mut pipeline, kept.as_ref())
        .await
        .map_err(|e| super::config_error(&e))?;
    let mut current = BTreeMap::new();
    let mut errors = Vec::new();
    for u in lockfile::uses_of(&pipeline) {
        if current.contains_key(&u.key) {
            continue;
        }
        let digest = match u.reference {
            PluginRef::File(path) => match std::fs::read(path) {
                Ok(bytes) => sha256_digest(&bytes),
                Err(e) => {
                    errors.push(pipeline.source.error(
                        u.offset,
                        format!("{}: cannot read {}: {e}", u.what, path.display()),
                    ));
                    continue;
                }
            },
            PluginRef::Oci(r) => match &r.digest {
                Some(d) => d.clone(),
                None => {
                    errors.push(pipeline.source.error(
                        u.offset,
                        format!("{}: `{r}` did not resolve to a digest", u.what),
                    ));
                    continue;
                }
            },
            PluginRef::Builtin(_) => continue,
        };
        current.insert(u.key, digest);
    }
    if !errors.is_empty() {
        return Err(super::config_error(&errors));
    }
    let path = lockfile::lock_path(&args.file);
    let shown = path.display().to_string();
    let (new, diff) = lockfile::relock(old.as_ref(), &current, &update, path);
    // Pins kept while the component changed: `run` would refuse them.
    let drift: Vec<String> = new
        .plugins
        .iter()
        .filter_map(|l| {
            let now = current.get(&l.uses)?;
            (now != &l.digest).then(|| {
                format!(
                    "! {} is {now} now but stays pinned at {}; run `sluice lock --update {}` if the change is intended",
                    l.uses, l.digest, l.uses
                )
            })
        })
        .collect();
    let unchanged = old.is_some() && diff.is_empty();
    if args.check {
        if unchanged && drift.is_empty() {
            console::out_line(&format!(
                "{shown} is up to date ({} plugins)",
                new.plugins.len()
            ));
            return Ok(super::exit::OK);
        }
        if old.is_none() {
            console::out_line(&format!("{shown} does not exist; run `sluice lock`"));
        }
        for line in diff.lines().into_iter().chain(drift) {
            console::out_line(&line);
        }
        console::err_line(&format!(
            "error: {shown} is stale; run `sluice lock` (and commit it)"
        ));
        return Ok(super::exit::PIPELINE_FAILED);
    }
    for line in diff.lines() {
        console::out_line(&line);
    }
    for line in &drift {
        console::err_line(&format!("warning: {line}"));
    }
    if unchanged {
        console::out_line(&format!(
            "{shown} is up to date ({} plugins)",
            new.plugins.len()
        ));
        return Ok(super::exit::OK);
    }
    lockfile::write(&new)
        .map_err(|e| ExpectedError::Internal(format!("cannot write {shown}: {e}")))?;
    console::out_line(&format!("wrote {shown} ({} plugins)", new.plugins.len()));
    Ok(super::exit::OK)
}

pub(super) fn keygen(args: KeygenArgs) -> Result<u8, ExpectedError> {
    let made = crate::signing::keygen(&args.out, &args.id)
        .map_err(|e| ExpectedError::Config(e.to_string()))?;
    console::out_line(&format!(
        "wrote {} (secret key {}, unencrypted, mode 0600: keep it in your CI's secret store)",
        made.secret_path.display(),
        made.key_id
    ));
    console::out_line(&format!(
        "wrote {} (public key)",
        made.public_path.display()
    ));
    console::out_line("trust it in the policy file:");
    console::out_line("[[key]]");
    console::out_line(&format!("id = \"{}\"", made.id));
    console::out_line(&format!("public-key = \"{}\"", made.public_key));
    Ok(super::exit::OK)
}

pub(super) fn sign(args: SignArgs) -> Result<u8, ExpectedError> {
    let signed = crate::signing::sign(&args.file, &args.key)
        .map_err(|e| ExpectedError::Config(e.to_string()))?;
    let by = match &signed.id {
        Some(id) => format!("key `{id}` ({})", signed.key_id),
        None => format!("key {}", signed.key_id),
    };
    console::out_line(&format!(
        "wrote {}: {} {} signed by {by}",
        signed.signature_path.display(),
        args.file.display(),
        signed.digest
    ));
    Ok(super::exit::OK)
}
