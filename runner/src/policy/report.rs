//! `sluice policy report DIR...`: for many pipelines, the checks each fails or will
//! fail (and when), its exemptions and their expiry, and its automation level
//! (manual approvals, manual stages, missing bake, alarms or canary), as a table,
//! JSON, or a Markdown page.
