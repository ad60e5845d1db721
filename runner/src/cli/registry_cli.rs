//! `sluice plugin push` and `sluice policy push`: publishing to an OCI registry.
//! The work is in [`crate::registry`]; this is arguments, the check before a push,
//! what is printed, and exit codes (a refusal or a registry's error is exit 2).

use std::path::PathBuf;

use super::ExpectedError;
use crate::console;
use crate::host::cache::CacheRoot;
use crate::registry::{OciRef, Pushed};

/// `sluice plugin push`.
#[derive(clap::Args, Debug)]
pub(super) struct PushArgs {
    /// The component file (its `FILE.minisig` is pushed with it when present).
    pub file: PathBuf,
    /// Where: `oci://HOST[:PORT]/NS/NAME:TAG`.
    pub reference: String,
    /// Who made it, recorded as the artifact config's `author`.
    #[arg(long)]
    pub author: Option<String>,
}

/// `sluice policy push`.
#[derive(clap::Args, Debug)]
pub(super) struct PolicyPushArgs {
    /// The policy file (checked before it is pushed).
    pub file: PathBuf,
    /// Where: `oci://HOST[:PORT]/NS/NAME:TAG`.
    pub reference: String,
}

pub(super) async fn push_plugin(
    args: PushArgs,
    cache_root: Option<CacheRoot>,
) -> Result<u8, ExpectedError> {
    let reference = parse_reference(&args.reference)?;
    let host = super::start_host(1, cache_root)?;
    let created = created()?;
    let pushed = crate::registry::push_plugin(
        &host,
        &args.file,
        &reference,
        created,
        args.author.as_deref(),
    )
    .await
    .map_err(|e| ExpectedError::Config(e.to_string()))?;
    print_pushed(&reference, &pushed, "component");
    Ok(super::exit::OK)
}

pub(super) async fn push_policy(args: PolicyPushArgs) -> Result<u8, ExpectedError> {
    let reference = parse_reference(&args.reference)?;
    let policy =
        crate::policy::load(&args.file).map_err(|e| ExpectedError::Config(e.to_string()))?;
    let created = created()?;
    let pushed = crate::registry::push_policy(
        &policy.source.text,
        &policy.name,
        policy.version.as_deref(),
        &reference,
        created,
    )
    .await
    .map_err(|e| ExpectedError::Config(e.to_string()))?;
    print_pushed(&reference, &pushed, "policy");
    Ok(super::exit::OK)
}

fn parse_reference(text: &str) -> Result<OciRef, ExpectedError> {
    OciRef::parse(text).map_err(|e| ExpectedError::Config(format!("`{text}`: {e}")))
}

/// When the artifact was made: `SOURCE_DATE_EPOCH` when set (reproducible pushes),
/// else the clock's now (the test clock in tests).
fn created() -> Result<jiff::Timestamp, ExpectedError> {
    if let Ok(epoch) = std::env::var("SOURCE_DATE_EPOCH") {
        let seconds: i64 = epoch.trim().parse().map_err(|_| {
            ExpectedError::Config(format!(
                "SOURCE_DATE_EPOCH = `{epoch}` is not a number of seconds"
            ))
        })?;
        return jiff::Timestamp::from_second(seconds)
            .map_err(|e| ExpectedError::Config(format!("SOURCE_DATE_EPOCH = `{epoch}`: {e}")));
    }
    Ok(crate::clock::from_env()
        .map_err(ExpectedError::Config)?
        .now())
}

fn print_pushed(reference: &OciRef, pushed: &Pushed, what: &str) {
    let line = |label: &str, value: &str| {
        console::out_line(&format!("  {:<11}{value}", format!("{label}:")));
    };
    console::out_line(&format!("pushed {reference}"));
    line("manifest", &pushed.manifest);
    line(what, &pushed.content);
    if let Some(tag) = &pushed.signature_tag {
        line(
            "signature",
            &format!("{}:{tag}", reference.repository_url()),
        );
    }
    console::out_line(&format!("pin it with: {}", pushed.pinned));
}
