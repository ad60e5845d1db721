//! `sluice policy check`: every organisation check of a pipeline's policy (or
//! `--policy FILE`), at the current instant, with what each finds, when it will be
//! enforced, and the exemptions in use.

use std::path::PathBuf;

use super::ExpectedError;
use crate::host::cache::CacheRoot;

/// `sluice policy check`.
#[derive(clap::Args, Debug)]
pub(super) struct CheckArgs {
    /// The pipeline files to check.
    #[arg(default_value = "sluice.toml")]
    pub files: Vec<PathBuf>,
    /// The policy to check against, instead of each pipeline's `[pipeline] policy`.
    #[arg(long, value_name = "FILE|oci://...")]
    pub policy: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `sluice policy check`.
pub(super) async fn check(
    args: CheckArgs,
    cache_root: Option<CacheRoot>,
) -> Result<u8, ExpectedError> {
    let _ = (args, cache_root);
    Err(ExpectedError::Config(
        "`sluice policy check` is not built yet".into(),
    ))
}
