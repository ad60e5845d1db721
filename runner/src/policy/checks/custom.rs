//! Custom organisation checks: components of the `policy-check` world, given the
//! pipeline model ([`crate::policy::model`]) as JSON and their `with` config, returning
//! violations. A platform team writes them in any language the author kit supports.
