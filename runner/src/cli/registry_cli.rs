//! `sluice plugin push` and `sluice policy push`: publishing to an OCI registry.

use std::path::PathBuf;

use super::ExpectedError;
use crate::host::cache::CacheRoot;

/// `sluice plugin push`.
#[derive(clap::Args, Debug)]
pub(super) struct PushArgs {
    /// The component file (its `FILE.minisig` is pushed with it when present).
    pub file: PathBuf,
    /// Where: `oci://HOST[:PORT]/NS/NAME:TAG`.
    pub reference: String,
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
    let _ = (args, cache_root);
    Err(ExpectedError::Config(
        "`sluice plugin push` is not built yet".into(),
    ))
}

pub(super) async fn push_policy(args: PolicyPushArgs) -> Result<u8, ExpectedError> {
    let _ = args;
    Err(ExpectedError::Config(
        "`sluice policy push` is not built yet".into(),
    ))
}
