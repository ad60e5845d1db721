//! The host side of the `policy-check` world (contract 0.1.6): loading an
//! organisation check's component (a file, or an OCI plugin already pulled, through
//! the same compiled-component cache as steps), refusing a component of another world
//! by name, and calling its `describe` and `check`.
//!
//! A check sees only the pipeline model it is given. Its store is made with no
//! capabilities: its own linker links WASI preview 2 (what a guest language's runtime
//! imports) and the contract's `types` and `log`, and nothing else, so a component
//! importing `process`, `secrets`, `deploy-targets`, `grants` or outgoing HTTP is
//! refused when it is loaded. Its WASI context has no preopened folder, no environment
//! variable, no argument, an empty stdin and no socket address allowed; stdout and
//! stderr go to the check's in-memory log, whose tail explains a failure. Clocks and
//! random are there, as for every guest.
//!
//! Limits are a step's defaults: each call (`describe`, `check`) runs in a fresh store
//! with an instance slot of the engine, at most [`CHECK_MEMORY`] of linear memory and
//! a wall-clock deadline of [`CHECK_TIMEOUT`] enforced by epoch interruption (the
//! engine's ticker; wasmtime fuel is not enabled on this engine). A trap, a timeout,
//! the memory cap, an `err` or output that is not what the contract says all come
//! back as a [`CheckFailure`] naming the plugin; nothing here panics on a guest.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;
use wasmtime::component::{Component, HasSelf, Linker};

use crate::capabilities::logs::{Source, StepLog};
use crate::config::PluginRef;
use crate::host::bindings::policy_check::{CheckDescriptor, PolicyCheckPre, Violation};
use crate::host::capacity::{InstanceNeeds, InstanceSlots};
use crate::host::engine::MAX_MEMORIES_PER_COMPONENT;
use crate::host::plugin::{PluginError, PluginHost};
use crate::host::step::{AttemptLimits, StepFailure, StepState, classify, new_store};
use crate::host::worlds::{self, World};

/// Memory a check's instance may use, all linear memories together: a step's default.
pub const CHECK_MEMORY: u64 = 256 << 20;
/// How long one call of a check may take: a step's default timeout is longer, but a
/// check runs before every run and reads one JSON document.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed past the deadline for the call to come back.
const DEADLINE_GRACE: Duration = Duration::from_secs(5);
/// Most bytes of log a check keeps.
const CHECK_LOG_BYTES: u64 = 64 << 10;
/// Most violations one check may return (more is malformed output).
pub const MAX_VIOLATIONS: usize = 10_000;
/// Most bytes of one violation's message.
const MAX_MESSAGE_BYTES: usize = 4096;

/// Why a check could not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum CheckFailure {
    /// The component could not be loaded (unreadable, another world, bad schema...).
    #[error(transparent)]
    Load(#[from] PluginError),
    /// The call trapped, timed out or hit the memory cap.
    #[error("check plugin {name} failed in {call}(): {failure}{}", tail_text(.log_tail))]
    Call {
        name: String,
        call: &'static str,
        failure: StepFailure,
        log_tail: Vec<String>,
    },
    /// The check returned `err`: it could not decide.
    #[error("check plugin {name} returned an error: {message}")]
    Refused { name: String, message: String },
    /// The check returned something the contract does not allow.
    #[error("check plugin {name} returned malformed output: {reason}")]
    Malformed { name: String, reason: String },
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        let start = tail.len().saturating_sub(5);
        format!(
            "\n  its log ended with:\n    {}",
            tail[start..].join("\n    ")
        )
    }
}

/// A check ready to run.
pub struct LoadedCheck {
    reference: PluginRef,
    name: String,
    digest: String,
    engine: wasmtime::Engine,
    pre: PolicyCheckPre<StepState>,
    slots: Arc<InstanceSlots>,
    needs: InstanceNeeds,
    descriptor: CheckDescriptor,
    schema: serde_json::Value,
    validator: jsonschema::Validator,
}

impl LoadedCheck {
    pub fn reference(&self) -> &PluginRef {
        &self.reference
    }
    /// `sha256:<hex>` of the component.
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// What `describe()` returned.
    pub fn descriptor(&self) -> &CheckDescriptor {
        &self.descriptor
    }
    /// The config schema, parsed.
    pub fn schema(&self) -> &serde_json::Value {
        &self.schema
    }
    /// The config schema, compiled.
    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }

    /// Call `check` with the model and the `with` config (both JSON text), on a fresh
    /// instance under the check limits.
    pub async fn check(&self, model: &str, config: &str) -> Result<Vec<Violation>, CheckFailure> {
        let (model, config) = (model.to_owned(), config.to_owned());
        let (outcome, log) = call(self, "check", move |instance, store| {
            Box::pin(async move {
                instance
                    .sluice_plugin_policy_rule()
                    .call_check(store, &model, &config)
                    .await
            })
        })
        .await;
        let result = outcome.map_err(|failure| CheckFailure::Call {
            name: self.name.clone(),
            call: "check",
            failure,
            log_tail: log.tail(),
        })?;
        let violations = result.map_err(|message| CheckFailure::Refused {
            name: self.name.clone(),
            message,
        })?;
        self.well_formed(&violations)?;
        Ok(violations)
    }

    fn well_formed(&self, violations: &[Violation]) -> Result<(), CheckFailure> {
        let malformed = |reason: String| CheckFailure::Malformed {
            name: self.name.clone(),
            reason,
        };
        if violations.len() > MAX_VIOLATIONS {
            return Err(malformed(format!(
                "{} violations, more than the {MAX_VIOLATIONS} a check may return",
                violations.len()
            )));
        }
        for (i, v) in violations.iter().enumerate() {
            if v.message.trim().is_empty() {
                return Err(malformed(format!(
                    "violation {} has an empty message",
                    i + 1
                )));
            }
            if v.message.len() > MAX_MESSAGE_BYTES {
                return Err(malformed(format!(
                    "violation {} has a message of {} bytes, more than {MAX_MESSAGE_BYTES}",
                    i + 1,
                    v.message.len()
                )));
            }
            if v.step.is_some() && v.stage.is_none() {
                return Err(malformed(format!(
                    "violation {} names step `{}` but no stage",
                    i + 1,
                    v.step.as_deref().unwrap_or_default()
                )));
            }
        }
        Ok(())
    }
}

/// The boxed future of one guest call.
type CallFuture<'a, T> =
    std::pin::Pin<Box<dyn std::future::Future<Output = wasmtime::Result<T>> + Send + 'a>>;

/// Run one call of a check on a fresh instance, in a slot of the engine, under the
/// check limits; the log is returned whatever happened.
async fn call<T>(
    check: &LoadedCheck,
    what: &'static str,
    f: impl for<'s> FnOnce(
        &'s crate::host::bindings::policy_check::PolicyCheck,
        &'s mut wasmtime::Store<StepState>,
    ) -> CallFuture<'s, T>,
) -> (Result<T, StepFailure>, StepLog) {
    call_with(
        &check.engine,
        &check.pre,
        &check.slots,
        check.needs,
        what,
        f,
    )
    .await
}

async fn call_with<T>(
    engine: &wasmtime::Engine,
    pre: &PolicyCheckPre<StepState>,
    slots: &InstanceSlots,
    needs: InstanceNeeds,
    what: &'static str,
    f: impl for<'s> FnOnce(
        &'s crate::host::bindings::policy_check::PolicyCheck,
        &'s mut wasmtime::Store<StepState>,
    ) -> CallFuture<'s, T>,
) -> (Result<T, StepFailure>, StepLog) {
    let _slot = slots.acquire(needs, |_| {}).await;
    let limits = AttemptLimits {
        timeout: CHECK_TIMEOUT,
        memory: CHECK_MEMORY,
    };
    let deadline = Instant::now() + limits.timeout;
    let log = StepLog::in_memory(CHECK_LOG_BYTES, Default::default());
    // No preopens, no environment, no arguments, no sockets: the defaults of a
    // builder, plus the check's log for stdout and stderr.
    let mut b = wasmtime_wasi::WasiCtxBuilder::new();
    b.stdout(log.stream(Source::Stdout));
    b.stderr(log.stream(Source::Stderr));
    let mut store = new_store(engine, b.build(), log.clone(), None, limits, deadline);
    let outcome = {
        let call = async {
            let instance = pre.instantiate_async(&mut store).await?;
            f(&instance, &mut store).await
        };
        tokio::time::timeout(
            limits.timeout + DEADLINE_GRACE,
            super::watchdog::watch(deadline, call),
        )
        .await
    };
    tracing::debug!(call = what, "policy check called");
    let result = if Instant::now() >= deadline {
        Err(StepFailure::Timeout(limits.timeout))
    } else {
        match outcome {
            Err(_elapsed) => Err(StepFailure::Timeout(limits.timeout)),
            Ok(Err(e)) => Err(classify(e, &store, limits)),
            Ok(Ok(value)) => Ok(value),
        }
    };
    (result, log)
}

/// The linker of checks: WASI preview 2 and the contract's `types` and `log`, nothing
/// else (see the module's doc).
pub(crate) fn check_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<StepState>> {
    use crate::host::bindings::sluice::plugin::{log, types};
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    types::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)?;
    log::add_to_linker::<StepState, HasSelf<StepState>>(&mut linker, |s| s)?;
    Ok(linker)
}

/// The checks loaded so far, by reference (a field of [`PluginHost`]).
pub type LoadedChecks = Mutex<HashMap<PluginRef, Arc<LoadedCheck>>>;

/// Load an organisation check (once per process; later calls share it): compile (or
/// take from the cache), check its world, link it with the check linker, and call
/// `describe`.
pub async fn load_check(
    host: &PluginHost,
    reference: &PluginRef,
) -> Result<Arc<LoadedCheck>, PluginError> {
    let mut loaded = host.loaded_checks().lock().await;
    if let Some(c) = loaded.get(reference) {
        return Ok(c.clone());
    }
    let name = reference.to_string();
    let (digest, component, _) = host.component(reference).await?;
    let engine = host.engine().clone();
    if !World::PolicyCheck.exported_by(&engine, &component) {
        if let Some(refusal) = World::of(&engine, &component)
            .and_then(|found| worlds::wrong_world(&name, found, World::PolicyCheck))
        {
            return Err(refusal);
        }
        return Err(PluginError::Incompatible {
            name,
            reason: "it does not export `sluice:plugin/policy-rule@0.1.6` (world `policy-check`)"
                .into(),
        });
    }
    let linker = check_linker(&engine).map_err(|e| PluginError::Internal {
        name: name.clone(),
        reason: format!("cannot link the policy-check world: {e:#}"),
    })?;
    let pre = linker
        .instantiate_pre(&component)
        .and_then(PolicyCheckPre::new)
        .map_err(|e| PluginError::Incompatible {
            name: name.clone(),
            reason: check_refusal(&engine, &component).unwrap_or_else(|| format!("{e:#}")),
        })?;
    let needs = InstanceNeeds::of(&component, MAX_MEMORIES_PER_COMPONENT);
    let slots = host.shared_slots().clone();
    let (described, log) = call_with(&engine, &pre, &slots, needs, "describe", |i, s| {
        Box::pin(async move { i.sluice_plugin_policy_rule().call_describe(s).await })
    })
    .await;
    let descriptor = described.map_err(|mut failure| {
        if let StepFailure::Trap(t) = &mut failure {
            *t = t.replace("backtrace in the step log", "backtrace below");
            for l in log.tail() {
                t.push('\n');
                t.push_str(&l);
            }
        }
        PluginError::Describe {
            name: name.clone(),
            failure,
        }
    })?;
    let schema: serde_json::Value =
        serde_json::from_str(&descriptor.config_schema).map_err(|e| PluginError::BadSchema {
            name: name.clone(),
            reason: e.to_string(),
        })?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| PluginError::BadSchema {
        name: name.clone(),
        reason: e.to_string(),
    })?;
    let check = Arc::new(LoadedCheck {
        reference: reference.clone(),
        name,
        digest,
        engine,
        pre,
        slots,
        needs,
        descriptor,
        schema,
        validator,
    });
    loaded.insert(reference.clone(), check.clone());
    Ok(check)
}

/// Why the check linker cannot link `component`: the contract imports a check may not
/// have, by name, or what [`crate::host::imports::refusal`] says.
fn check_refusal(engine: &wasmtime::Engine, component: &Component) -> Option<String> {
    let denied: Vec<String> = component
        .component_type()
        .imports(engine)
        .map(|(name, _)| name.to_owned())
        .filter(|name| {
            ["process", "secrets", "deploy-targets", "grants"]
                .iter()
                .any(|i| name.starts_with(&format!("sluice:plugin/{i}@")))
                || name.starts_with("wasi:http/")
        })
        .collect();
    if !denied.is_empty() {
        return Some(format!(
            "it imports {}, which a check of the `policy-check` world may not: a check \
             imports only `log` and sees only the pipeline model",
            denied
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    crate::host::imports::refusal(engine, component)
}
