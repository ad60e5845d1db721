//! The pipeline model: a pipeline as the JSON document custom checks receive (and
//! `sluice policy report --format json` embeds). Its shape is versioned
//! (`model-version`) and documented in docs/policy/model.md.
