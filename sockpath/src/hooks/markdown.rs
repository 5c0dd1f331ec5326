//! The hook table as markdown: `sockpath probes --table`, and the hook table of docs/journeys.md (a test
//! checks that file holds exactly this).

use std::fmt::Write as _;

use super::{program::RING_BUFFER, Hook, TABLE};

/// One line per hook: its stage (on the stage's first hook), its programs, the oldest kernel it
/// is known to work on and what sets that, and what the stage loses without any of its hooks.
pub fn markdown() -> String {
    let mut out = String::from(
        "| stage | hooks, preferred first | oldest kernel | what sets it | without a hook |\n\
         |---|---|---|---|---|\n",
    );
    for spec in TABLE {
        let without = if spec.required {
            format!("sockpath does not start ({})", spec.without)
        } else {
            spec.without.to_string()
        };
        for (i, hook) in spec.hooks.iter().enumerate() {
            let (stage, without) = if i == 0 {
                (spec.name, without.as_str())
            } else {
                ("", "")
            };
            let _ = writeln!(
                out,
                "| {stage} | {} | {} | {} | {without} |",
                programs(hook),
                oldest(hook),
                set_by(hook),
            );
        }
        if spec.hooks.is_empty() {
            let _ = writeln!(out, "| {} | none | | | {without} |", spec.name);
        }
    }
    out
}

fn programs(hook: &Hook) -> String {
    let list = hook
        .programs
        .iter()
        .map(|p| {
            let d = p.attach.describe();
            if p.optional {
                format!("{d} (optional)")
            } else {
                d
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    match hook.loses {
        Some(loses) => format!("{list}; loses {loses}"),
        None => list,
    }
}

/// The hook's oldest kernel, and that of any optional program that needs a later one.
fn oldest(hook: &Hook) -> String {
    let since = hook.since();
    let later: Vec<String> = hook
        .programs
        .iter()
        .filter(|p| p.optional && p.since() > since)
        .map(|p| format!("{}: {}", p.attach.target(), p.since()))
        .collect();
    if later.is_empty() {
        since.to_string()
    } else {
        format!("{since} ({})", later.join(", "))
    }
}

/// What the kernel must have that is newer than the ring buffer every program needs.
fn set_by(hook: &Hook) -> String {
    let mut needs: Vec<String> = Vec::new();
    for p in hook.programs.iter().filter(|p| !p.optional) {
        for (what, since) in p.requirements() {
            let need = format!("{what} ({since})");
            if since > RING_BUFFER.since && !needs.contains(&need) {
                needs.push(need);
            }
        }
    }
    if needs.is_empty() {
        format!("{} ({})", RING_BUFFER.what, RING_BUFFER.since)
    } else {
        needs.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::markdown;

    const DOC: &str = include_str!("../../../docs/journeys.md");
    const BEGIN: &str = "<!-- hook table: `sockpath probes --table` prints it; a unit test keeps this copy equal -->\n";
    const END: &str = "<!-- end of hook table -->";

    #[test]
    fn the_readme_holds_the_hook_table() {
        let start = DOC
            .find(BEGIN)
            .expect("docs/journeys.md has the hook table's start marker");
        let start = start + BEGIN.len();
        let end = start
            + DOC[start..]
                .find(END)
                .expect("docs/journeys.md has the hook table's end marker");
        assert!(
            DOC[start..end] == markdown(),
            "docs/journeys.md's hook table is not the table's: put the output of \
             `sockpath probes --table` between its markers\n{}",
            markdown()
        );
    }
}
