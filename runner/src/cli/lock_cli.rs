//! `sluice lock` (write `sluice.lock`), `sluice plugin keygen` and `sluice plugin
//! sign`: pinning plugins by digest and signing them.

use std::path::PathBuf;

use super::ExpectedError;
use crate::host::cache::CacheRoot;

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
    let _ = (args, cache_root);
    Err(ExpectedError::Config(
        "`sluice lock` is not built yet".into(),
    ))
}

pub(super) fn keygen(args: KeygenArgs) -> Result<u8, ExpectedError> {
    let _ = args;
    Err(ExpectedError::Config(
        "`sluice plugin keygen` is not built yet".into(),
    ))
}

pub(super) fn sign(args: SignArgs) -> Result<u8, ExpectedError> {
    let _ = args;
    Err(ExpectedError::Config(
        "`sluice plugin sign` is not built yet".into(),
    ))
}
