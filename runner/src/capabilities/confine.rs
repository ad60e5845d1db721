//! Landlock for native programs, applied by the program's own process inside its
//! sandbox just before it executes (see [`crate::sandbox::init`]), on top of the
//! sandbox's namespaces: read (and execute) only the system folders and the `read`
//! grants, write only the `write` grants, `/tmp`, `/dev/shm` and a few devices,
//! connect over TCP only to the granted ports, bind none, and neither signal nor reach
//! abstract UNIX sockets of processes outside the sandbox.
//!
//! Every right is taken where the kernel has it (best effort): the namespaces already
//! confine the program; Landlock is the second layer. [`abi`] says which version the
//! kernel offers, for the step log.

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
};

use crate::sandbox::plan::LandlockPlan;

/// Why a program could not be confined.
#[derive(Debug, thiserror::Error)]
#[error("Landlock: {0}")]
pub struct ConfineError(String);

/// The Landlock ABI version of this kernel, if it has Landlock.
pub fn abi() -> Option<u32> {
    crate::sandbox::landlock_abi()
}

/// Restrict the calling process (and what it executes) to `plan`.
pub fn restrict_self(plan: &LandlockPlan) -> Result<(), ConfineError> {
    let fail = |e: &dyn std::fmt::Display| ConfineError(e.to_string());
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(ABI::V6))
        .map_err(|e| fail(&e))?
        .handle_access(AccessNet::from_all(ABI::V6))
        .map_err(|e| fail(&e))?
        .scope(Scope::from_all(ABI::V6))
        .map_err(|e| fail(&e))?
        .create()
        .map_err(|e| fail(&e))?;
    let read = AccessFs::from_read(ABI::V6);
    let all = AccessFs::from_all(ABI::V6);
    let device = AccessFs::from_file(ABI::V6);
    let rules = plan
        .read
        .iter()
        .map(|p| (p, read))
        .chain(plan.write.iter().map(|p| (p, all)))
        .chain(plan.devices.iter().map(|p| (p, device)))
        .chain(plan.list.iter().map(|p| (p, AccessFs::ReadDir.into())));
    for (path, access) in rules {
        // A rule on a file (the program, a device) may only carry file rights.
        let access = if path.is_dir() {
            access
        } else {
            access & AccessFs::from_file(ABI::V6)
        };
        let fd = PathFd::new(path).map_err(|e| ConfineError(format!("{}: {e}", path.display())))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|e| fail(&e))?;
    }
    for port in &plan.tcp_ports {
        ruleset = ruleset
            .add_rule(NetPort::new(*port, AccessNet::ConnectTcp))
            .map_err(|e| fail(&e))?;
    }
    ruleset.restrict_self().map_err(|e| fail(&e))?;
    Ok(())
}
