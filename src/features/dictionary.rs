//! The data dictionary of the features stage's tables.

use super::{GROWTH_INDICATORS, VISIT_GROUPS};

/// Column families of `facility_period.parquet` and their meaning; `{i}`
/// stands for an indicator of [`GROWTH_INDICATORS`] (growth columns) or any
/// numeric column above (peer columns),
/// `{g}` for a visit-type group of [`VISIT_GROUPS`].
pub const FACILITY_PERIOD_COLUMNS: &[(&str, &str)] = &[
    ("facility_code", "MA_CSKCB"),
    ("period", "week, month, quarter or year"),
    ("period_start", "first day of the period (weeks start on Monday)"),
    ("visits", "visits (lượt KCB) discharged in the period"),
    ("outpatient_visits", "visits of non-inpatient types"),
    ("inpatient_episodes", "visits of inpatient types (03, 04, 06, 09)"),
    ("patients", "distinct persons (patient_key)"),
    ("visits_per_patient", "visits / patients (tần suất)"),
    ("total_cost", "sum of T_TONGCHI_BV, VND"),
    ("fund_paid", "sum of T_BHTT, VND"),
    ("avg_cost_outpatient", "average T_TONGCHI_BV per outpatient visit (chi bình quân lượt ngoại trú), VND"),
    ("avg_cost_inpatient", "average T_TONGCHI_BV per inpatient episode (chi bình quân đợt nội trú), VND"),
    ("avg_cost_inpatient_mild", "average cost of the stays whose diagnosis is admitted less than half the time (expected admission < 0.5), VND"),
    ("extra_admission_cost", "what an admission beyond expectation costs: per diagnosis (dx3), the admissions above its expected count weigh the gap between its stays' and its outpatient visits' mean cost in the period, VND; null without such a diagnosis"),
    ("avg_fund_outpatient", "average T_BHTT per outpatient visit, VND"),
    ("avg_fund_inpatient", "average T_BHTT per inpatient episode, VND"),
    ("alos", "average length of stay of inpatient episodes, days"),
    ("bed_days", "sum of inpatient lengths of stay, days"),
    ("admission_rate", "inpatient episodes / visits (tỷ lệ nhập viện)"),
    ("bed_cost_share_inpatient", "bed-day lines (MA_NHOM 14/15) / total cost of inpatient episodes"),
    ("drug_share", "drug lines / total cost"),
    ("supply_share", "supply lines / total cost"),
    ("lab_share", "lab-test lines / total cost"),
    ("imaging_share", "imaging lines / total cost"),
    ("procedure_share", "procedure and surgery lines / total cost"),
    ("originator_drug_share", "originator-brand drugs / drug cost (datasets/reference/drug_classes.csv)"),
    ("adjuvant_drug_share", "adjuvant drugs / drug cost"),
    ("vitamin_mineral_drug_share", "vitamins and minerals / drug cost"),
    ("tests_per_visit", "lab-test quantity / visits"),
    ("imaging_per_visit", "imaging quantity / visits"),
    ("oop_visits", "visits of patients with another province's card"),
    ("oop_visit_share", "out-of-province share of visits"),
    ("oop_cost", "cost of out-of-province patients, VND"),
    ("new_patients", "visits of a card the facility had not billed in the 13 weeks before (patients new to it, or back after a long while)"),
    ("oop_new_patients", "new patients with another province's card"),
    ("oop_new_patient_share", "out-of-province share of new patients: counts persons, so one patient's repeat visits weigh once; empty while the facility's claims do not reach 13 weeks back"),
    ("oop_cost_share", "out-of-province share of cost"),
    ("overlapping_claim_share", "share of visits whose dates overlap an earlier visit of the same card at the facility (duplicate or overlapping claims)"),
    ("drug_supply_price_index", "cost of drugs and supplies / their cost at the reference price of each item code in the year (median over facilities of their average unit price)"),
    ("expected_cost", "sum of the visits' expected cost given diagnosis, visit type and age band at the facility's level, VND"),
    ("expected_admissions", "sum of the visits' expected admission probabilities"),
    ("expected_admissions_sq", "sum of the squares of the visits' expected admission probabilities (binomial variance of admissions given the codes: Σp − Σp²)"),
    ("expected_admissions_severe_sq", "the same over visits coded with a diagnosis admitted at least 30 % of the time"),
    ("expected_admissions_severe", "the same over visits coded with a diagnosis admitted at least 30 % of the time (at the facility's level and age band)"),
    ("inpatient_episodes_severe", "inpatient episodes among those visits"),
    ("oe_cost", "observed / expected cost (indirect standardisation)"),
    ("excess_cost_vnd", "observed − expected cost, VND"),
    ("oe_los", "observed / expected inpatient days"),
    ("oe_admission", "observed / expected admissions"),
    ("vg_{g}_visits", "visits of visit-type group {g}"),
    ("vg_{g}_avg_cost", "average cost of a visit of group {g}, VND"),
    ("{i}_yoy", "relative change against the same period one year earlier (52 weeks for weeks)"),
    ("{i}_trend", "relative change against the mean of the facility's previous 8 weeks / 3 months / 2 quarters / 2 years"),
    ("peer_group", "peer group key level|grade|kind (`*` where widened, `all` for everyone)"),
    ("peer_basis", "registry, widened (group below min_peer_size) or cluster (registry attributes missing)"),
    ("peer_size", "facilities in the peer group"),
    ("peer_n", "facilities of the peer group with data in the period"),
    ("{c}_peer_ratio", "value / peer median in the period, for every numeric column {c} above (indicators, growth, case mix)"),
    ("{c}_peer_z", "robust z-score (value − peer median) / (1.4826 · MAD) for every numeric column {c} above; null when MAD = 0"),
];

/// Whether a column name is described by [`FACILITY_PERIOD_COLUMNS`].
pub fn documented(column: &str) -> bool {
    for suffix in ["_peer_ratio", "_peer_z"] {
        if let Some(base) = column.strip_suffix(suffix) {
            return documented(base);
        }
    }
    FACILITY_PERIOD_COLUMNS.iter().any(|(pat, _)| {
        if pat.contains("{g}") {
            VISIT_GROUPS.iter().any(|g| pat.replace("{g}", g) == column)
        } else if pat.contains("{i}") {
            GROWTH_INDICATORS
                .iter()
                .any(|i| pat.replace("{i}", i) == column)
        } else {
            *pat == column
        }
    })
}

/// Renders `datasets/features-dictionary.md`.
pub fn render_dictionary() -> String {
    let mut s = String::from(
        "# Data dictionary of the features stage\n\n\
         Generated from `src/features/mod.rs` (`UPDATE_DICTIONARY=1 cargo test --test dictionary`).\n\
         Written by `bhyt features` under the output folder.\n\n\
         ## facility_period.parquet — one row per facility and period\n\n| column | meaning |\n|---|---|\n",
    );
    for (c, m) in FACILITY_PERIOD_COLUMNS {
        s.push_str(&format!("| `{c}` | {m} |\n"));
    }
    s.push_str(&format!(
        "\n`{{g}}` ∈ {}.\n`{{i}}` of `_yoy`/`_trend` ∈ {}.\n",
        VISIT_GROUPS.join(", "),
        GROWTH_INDICATORS.join(", "),
    ));
    s.push_str(
        "\n## province_outflow.parquet — a province's card-holders treated in other provinces (chi đi ngoại tỉnh)\n\n\
         | column | meaning |\n|---|---|\n\
         | `card_province` | current province of the card |\n| `destination_province` | current province of the facility |\n\
         | `year` | discharge year |\n| `visits` | visits |\n| `inpatient_episodes` | inpatient episodes |\n\
         | `total_cost` | T_TONGCHI_BV, VND |\n| `fund_paid` | T_BHTT, VND |\n\
         | `card_holders_cost` | cost of all the province's card-holders in the data (any destination), VND |\n\
         | `share_of_card_holders_cost` | total_cost / card_holders_cost |\n\
         \n## budget.parquet — budget use per facility and per province (`province:<code>`) and year\n\n\
         | column | meaning |\n|---|---|\n\
         | `facility_code` | MA_CSKCB, or `province:<code>` for the province total |\n| `province` | current province |\n\
         | `year` | budget year |\n| `as_of` | last discharge date in the data (for earlier years the year is complete) |\n\
         | `budget_vnd` | yearly budget (dự toán), VND |\n| `spent_to_date` | total cost up to `as_of`, VND |\n\
         | `use_rate` | spent_to_date / budget |\n\
         | `seasonal_share` | share of a year's spending usually reached by `as_of` (from complete earlier years; linear by days without them) |\n\
         | `projection_basis` | actual, seasonal or linear |\n| `projected_year_end` | spent_to_date / seasonal_share, VND |\n\
         | `projected_use_rate` | projected_year_end / budget |\n| `projected_overrun_vnd` | projected_year_end − budget (negative: surplus), VND |\n\
         \n## peer_groups.parquet\n\n| column | meaning |\n|---|---|\n\
         | `facility_code` | MA_CSKCB |\n| `peer_group` | see facility_period |\n| `peer_basis` | see facility_period |\n| `peer_size` | facilities in the group |\n",
    );
    s
}
