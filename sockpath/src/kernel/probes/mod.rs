//! Attaching the hook table on the running kernel: each stage gets the first of its hooks the
//! kernel accepts; the reasons the better ones were refused are kept for `sockpath probes`.

mod attach;
mod error;
mod precheck;
#[cfg(test)]
mod tests;

use aya::{Btf, Ebpf};
use serde::Serialize;

use super::facts::KernelFacts;
use crate::hooks::{Hook, HookChoice, HookKind, StageId, TABLE};

/// What happened to one stage at start-up.
#[derive(Clone, Debug, Serialize)]
pub struct StageStatus {
    pub stage: StageId,
    pub name: &'static str,
    pub required: bool,
    /// The hook serving it, if any.
    pub chosen: Option<String>,
    pub kind: HookKind,
    /// Programs of the chosen hook that could not attach but were optional.
    pub partial: Vec<(String, String)>,
    /// Hooks tried and refused, with the reason.
    pub refused: Vec<(String, String)>,
    /// What the chosen hook loses against the stage's preferred one (a fallback's loss).
    pub loses: Option<&'static str>,
    pub without: &'static str,
    /// The table's hook serving it, for the journeys' stage labels.
    #[serde(skip)]
    pub hook: Option<&'static Hook>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("this kernel cannot serve the required stage \"{stage}\": {reasons}")]
    Required { stage: String, reasons: String },
}

/// Loads and attaches every stage's preferred working hook.
/// Stages `wanted` refuses are left out (not attached, not listed).
pub fn attach_all(
    ebpf: &mut Ebpf,
    btf: &Btf,
    facts: &KernelFacts,
    wanted: impl Fn(StageId) -> bool,
) -> Result<Vec<StageStatus>, ProbeError> {
    if let Ok(only) = std::env::var("SOCKPATH_ONLY_PROGRAMS") {
        tracing::warn!(
            "SOCKPATH_ONLY_PROGRAMS is set: only {only} attached, journeys will be incomplete"
        );
    }
    let mut statuses = Vec::new();
    for spec in TABLE.iter().filter(|s| wanted(s.stage)) {
        let mut st = StageStatus {
            stage: spec.stage,
            name: spec.name,
            required: spec.required,
            chosen: None,
            kind: HookKind::Inferred,
            partial: Vec::new(),
            refused: Vec::new(),
            loses: None,
            without: spec.without,
            hook: None,
        };
        for hook in spec.hooks {
            match attach::attach_hook(ebpf, btf, facts, hook) {
                Ok(partial) => {
                    st.chosen = Some(hook.describe());
                    st.kind = hook.kind();
                    st.partial = partial;
                    st.hook = Some(hook);
                    st.loses = hook.loses;
                    break;
                }
                Err(why) => st.refused.push((hook.describe(), why.to_string())),
            }
        }
        if spec.required && st.chosen.is_none() {
            let reasons = st
                .refused
                .iter()
                .map(|(_, w)| w.clone())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ProbeError::Required {
                stage: spec.name.to_string(),
                reasons,
            });
        }
        statuses.push(st);
    }
    Ok(statuses)
}

/// The hook each stage got, for the journeys.
pub fn choice(statuses: &[StageStatus]) -> HookChoice {
    HookChoice::new(statuses.iter().filter_map(|s| s.hook.map(|h| (s.stage, h))))
}

/// One line per stage: the hook serving it, or why none does.
pub fn describe(statuses: &[StageStatus]) -> Vec<String> {
    statuses
        .iter()
        .map(|s| match &s.chosen {
            Some(h) => format!("{}: {h}", s.name),
            None if s.refused.is_empty() => format!("{}: {}", s.name, s.without),
            None => format!("{}: none ({})", s.name, s.without),
        })
        .collect()
}
