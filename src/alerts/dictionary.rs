//! The columns of the detection outputs and their data dictionary
//! (`datasets/detect-dictionary.md`).

use crate::detect;

/// Columns of `alerts.parquet` / `alerts.csv`.
pub const ALERT_COLUMNS: &[(&str, &str)] = &[
    (
        "alert_id",
        "facility:cause:first week — quote it when deciding",
    ),
    ("state", "new, continuing"),
    (
        "suppressed",
        "held back by an earlier explained/dismissed decision (not worse since)",
    ),
    ("facility_code", "MA_CSKCB"),
    ("facility_name", "name in the registry"),
    ("peer_group", "peer group"),
    ("period_start", "week (period) of the run"),
    ("onset", "first period of the episode"),
    (
        "detector",
        "change, peer, forest, mixture, claims, prescriber, upcoding, cost_shift, department",
    ),
    ("cause", "indicator, claim check or multivariate"),
    ("severity", "ensemble severity (see models/detector.md)"),
    ("level", "alert or high"),
    ("observed", "value of the indicator"),
    ("peer_value", "peer-group median"),
    (
        "expected",
        "expected value from the facility's own history, moved as its peers moved",
    ),
    ("excess_vnd", "estimated excess cost of the episode, VND"),
    ("reason", "the reason sentence in the run's language"),
    ("reason_vi", "Vietnamese reason"),
    ("reason_en", "English reason"),
    (
        "top_claims",
        "MA_LK of the claims that add most, with their excess",
    ),
    (
        "top_services",
        "services/drugs whose cost per visit grew most against the baseline, beyond the rest of the province's change for the same item",
    ),
    (
        "top_departments",
        "departments (MA_KHOA) whose cost per visit grew most, beyond the rest of the province's change for the same department; a department alert's own department first, with its excess",
    ),
    (
        "top_prescribers",
        "prescribers (MA_BAC_SI) whose cost per visit grew most; a prescriber alert's doctor first, with its excess",
    ),
    (
        "last_decision",
        "latest reviewer decision on this facility and cause",
    ),
    (
        "decision",
        "for reviewers: confirmed / explained / dismissed",
    ),
    ("comment", "for reviewers"),
    ("reviewer", "for reviewers"),
];

/// The data dictionary of the detection outputs (`datasets/detect-dictionary.md`).
pub fn render_dictionary() -> String {
    let mut o = String::from(
        "# Detection outputs — data dictionary\n\n\
         Generated from the code (`bhyt::alerts::render_dictionary`); \
         `UPDATE_DICTIONARY=1 cargo test --test dictionary` rewrites it.\n\n\
         ## scores.parquet (one row per facility and period)\n\n| column | meaning |\n|---|---|\n",
    );
    for (c, d) in detect::SCORE_COLUMNS {
        o.push_str(&format!("| `{c}` | {d} |\n"));
    }
    o.push_str("\n## alerts.parquet, alerts.csv, alerts.xlsx (the alerts of the run's week)\n\n| column | meaning |\n|---|---|\n");
    for (c, d) in ALERT_COLUMNS {
        o.push_str(&format!("| `{c}` | {d} |\n"));
    }
    o.push_str(
        "\n## multivariate.parquet\n\n| column | meaning |\n|---|---|\n\
        | `facility_code`, `period_start` | the facility-period |\n\
        | `training` | the period is in the model's training range |\n\
        | `change_z:{signal}` | change z-score of the signal (peer-adjusted, clipped to ±8) |\n\
        | `peer_z:{signal}` | peer z-score of the signal's trailing window (clipped to ±8) |\n\
        | `forest_score` | isolation-forest score of the row, unwindowed |\n\
        | `mixture_nll` | negative log-density under the Gaussian mixture, unwindowed |\n",
    );
    o.push_str(&format!(
        "\n## {} (with a store: every doctor's and department's comparison with its colleagues)\n\n\
         | column | meaning |\n|---|---|\n\
         | `kind` | prescriber or department |\n",
        detect::prescriber::UNITS_FILE
    ));
    for (c, d) in detect::prescriber::UNIT_COLUMNS {
        o.push_str(&format!("| `{c}` | {d} |\n"));
    }
    o
}
