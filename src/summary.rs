//! `rbuild build --explain`: after the build, one row per step of the
//! Dockerfile (the `[internal]` loads of base images and the context are
//! left out) — its name, whether it ran or came from the cache, and for a
//! step that ran, why it was not cached.

use rbuild_build::{StepId, StepRecord, StepStatus};

/// The summary table of a build's `steps`, in graph order.
pub fn table(steps: &[StepRecord]) -> String {
    let mut rows: Vec<(usize, &StepRecord)> = (steps.iter())
        .filter_map(|s| match s.step {
            StepId::Vertex(i) if !s.name.starts_with("[internal]") => Some((i, s)),
            _ => None,
        })
        .collect();
    rows.sort_by_key(|(i, _)| *i);
    let width = rows.iter().map(|(_, s)| s.name.chars().count()).max();
    let width = width.unwrap_or(0).max("STEP".len());
    let mut out = format!("{:<width$}  {:<6}  WHY\n", "STEP", "RESULT");
    for (_, step) in rows {
        let result = match step.status {
            StepStatus::Cached => "cached",
            StepStatus::Done(_) => "ran",
            StepStatus::Failed(_) => "failed",
        };
        let why = step.cause.as_ref().map_or(String::new(), |c| c.to_string());
        let row = format!("{:<width$}  {result:<6}  {why}", step.name);
        out.push_str(row.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rbuild_build::Cause;

    use super::*;

    fn record(step: StepId, name: &str, status: StepStatus, cause: Option<Cause>) -> StepRecord {
        StepRecord {
            step,
            name: name.to_string(),
            status,
            cause,
        }
    }

    #[test]
    fn the_table_lists_the_graph_steps_in_order_with_why_each_ran() {
        let second = Cause::Parent {
            step: String::from("[1/2] COPY a /"),
        };
        let steps = [
            record(
                StepId::Vertex(3),
                "[2/2] RUN make",
                StepStatus::Done(Duration::ZERO),
                Some(second),
            ),
            record(
                StepId::Vertex(2),
                "[1/2] COPY a /",
                StepStatus::Cached,
                None,
            ),
            record(
                StepId::Vertex(0),
                "[internal] load busybox",
                StepStatus::Done(Duration::ZERO),
                None,
            ),
            record(
                StepId::Own(1),
                "exporting to image",
                StepStatus::Done(Duration::ZERO),
                None,
            ),
        ];
        assert_eq!(
            table(&steps),
            "STEP            RESULT  WHY\n\
             [1/2] COPY a /  cached\n\
             [2/2] RUN make  ran     parent step ran: [1/2] COPY a /\n"
        );
    }
}
