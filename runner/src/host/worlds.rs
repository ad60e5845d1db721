//! Which of the contract's three worlds a component is of, read from what it exports,
//! and the one refusal of a component of one world where another is asked for (a
//! monitor as a step, a step as an organisation check...), naming what it is and where
//! it belongs.

use wasmtime::component::Component;

use crate::host::plugin::PluginError;

/// A world of `wit/plugin.wit`, known by the interface its components export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `step`: exports `plugin`.
    Step,
    /// `monitor`: exports `health-check`.
    Monitor,
    /// `policy-check`: exports `policy-rule`.
    PolicyCheck,
}

impl World {
    /// The export that makes a component one of this world (any 0.1.x version).
    fn export(self) -> &'static str {
        match self {
            World::Step => "sluice:plugin/plugin@",
            World::Monitor => "sluice:plugin/health-check@",
            World::PolicyCheck => "sluice:plugin/policy-rule@",
        }
    }

    /// Whether `component` exports this world's interface.
    pub fn exported_by(self, engine: &wasmtime::Engine, component: &Component) -> bool {
        component
            .component_type()
            .exports(engine)
            .any(|(name, _)| name.starts_with(self.export()))
    }

    /// The world `component` is of, if it is of one.
    pub fn of(engine: &wasmtime::Engine, component: &Component) -> Option<World> {
        [World::Step, World::Monitor, World::PolicyCheck]
            .into_iter()
            .find(|world| world.exported_by(engine, component))
    }

    /// What a component of this world is, as a refusal says it.
    fn what(self) -> &'static str {
        match self {
            World::Step => "a step plugin (world `step`, exports `plugin`)",
            World::Monitor => "a monitor (world `monitor`, exports `health-check`)",
            World::PolicyCheck => {
                "an organisation check (world `policy-check`, exports `policy-rule`)"
            }
        }
    }
}

/// The refusal of plugin `name`, a component of world `found`, where one of `wanted`
/// is asked for; `None` when the two are the same world.
pub fn wrong_world(name: &str, found: World, wanted: World) -> Option<PluginError> {
    let fix = match (wanted, found) {
        (World::Step, World::Monitor) => "declare it in a `[[monitor]]` table, not as a step",
        (World::Step, World::PolicyCheck) => {
            "reference it from a policy file's `[[check]] uses`, not as a step"
        }
        (World::Monitor, World::Step) => {
            "a `[[monitor]]` needs a component of the `monitor` world, which exports `health-check` (sluice_sdk's `export_monitor!`); run this one as a `[[stage.step]]`"
        }
        (World::Monitor, World::PolicyCheck) => {
            "a `[[monitor]]` needs a component of the `monitor` world, which exports `health-check`; reference this one from a policy file's `[[check]] uses`"
        }
        (World::PolicyCheck, World::Step) => {
            "a `[[check]] uses` needs a component of the `policy-check` world, which exports `policy-rule` (`sluice plugin new NAME --world policy-check`); use this one as a `[[stage.step]]`"
        }
        (World::PolicyCheck, World::Monitor) => {
            "a `[[check]] uses` needs a component of the `policy-check` world, which exports `policy-rule` (`sluice plugin new NAME --world policy-check`); declare this one in a `[[monitor]]` table"
        }
        (World::Step, World::Step)
        | (World::Monitor, World::Monitor)
        | (World::PolicyCheck, World::PolicyCheck) => return None,
    };
    Some(PluginError::WrongWorld {
        name: name.to_string(),
        is: found.what(),
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_of_different_worlds_has_its_refusal_and_a_world_is_never_refused_for_itself() {
        let all = [World::Step, World::Monitor, World::PolicyCheck];
        for wanted in all {
            for found in all {
                let refusal = wrong_world("p", found, wanted);
                assert_eq!(refusal.is_none(), wanted == found, "{wanted:?} {found:?}");
                if let Some(e) = refusal {
                    assert!(
                        e.to_string()
                            .starts_with(&format!("plugin p is {}", found.what()))
                    );
                }
            }
        }
    }
}
