//! `sluice policy report DIR...`: the policy standing and automation level of every
//! pipeline under the folders given, for the people who lead the teams that own them.

use std::path::PathBuf;

use super::ExpectedError;
use crate::host::cache::CacheRoot;

/// How `sluice policy report` prints.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReportFormat {
    /// A table for a terminal.
    Table,
    /// One JSON document.
    Json,
    /// A Markdown page (for a wiki or a GitHub job summary).
    Markdown,
}

/// `sluice policy report`.
#[derive(clap::Args, Debug)]
pub(super) struct ReportArgs {
    /// Folders searched for pipeline files (`sluice.toml` and `*.toml` files with a
    /// `[pipeline]` table), recursively.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The policy to report against, instead of each pipeline's own.
    #[arg(long, value_name = "FILE|oci://...")]
    pub policy: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
}

/// `sluice policy report`.
pub(super) async fn report(
    args: ReportArgs,
    cache_root: Option<CacheRoot>,
) -> Result<u8, ExpectedError> {
    let _ = (args, cache_root);
    Err(ExpectedError::Config(
        "`sluice policy report` is not built yet".into(),
    ))
}
