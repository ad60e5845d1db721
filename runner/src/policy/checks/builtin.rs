//! The built-in organisation checks: production stages bake at least T with N data
//! points, alarms on every deploy stage, a security scan before the first production
//! stage, waves that start with one box, minimum healthy hosts at least P%, no
//! `allow-failure` in test stages, a time window on production.

/// The names of the built-in checks, as `builtin = "..."` spells them.
pub const NAMES: &[&str] = &[];
