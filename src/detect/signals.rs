//! What each monitored indicator means to a reviewer: its name in
//! Vietnamese and English, how its values are written, and how a gap
//! between observed and expected turns into VND.

use std::collections::HashMap;

/// Values of one facility-period needed to price a gap (columns of the
/// features table).
pub(crate) struct RowValues<'a> {
    pub get: &'a dyn Fn(&str) -> Option<f64>,
}

impl RowValues<'_> {
    fn v(&self, c: &str) -> f64 {
        (self.get)(c).filter(|x| x.is_finite()).unwrap_or(0.0)
    }
}

/// Columns [`excess_signed`] and the upcoding check read (a features table
/// without one of them reads nulls).
pub(crate) const PRICING_COLUMNS: &[&str] = &[
    "visits",
    "total_cost",
    "expected_cost",
    "expected_admissions",
    "inpatient_episodes",
    "expected_admissions_severe",
    "expected_admissions_sq",
    "expected_admissions_severe_sq",
    "inpatient_episodes_severe",
    "outpatient_visits",
    "avg_cost_inpatient",
    "avg_cost_inpatient_mild",
    "avg_cost_outpatient",
    "extra_admission_cost",
    "oop_cost",
    "oop_visits",
    "new_patients",
    "drug_share",
    "supply_share",
];

/// Estimated cost in VND of `observed` instead of `expected` for `signal`
/// in one facility-period, negative when observed < expected: a period
/// below expectation gives back what it did not spend, so that summed over
/// a run or a window noise cancels instead of adding up (the positive parts
/// of a noisy indicator's weeks sum to an "excess" when nothing changed,
/// and a run that outlives its cause keeps adding its noise); callers
/// clamp the sum at 0. 0 when a value is missing. Approximations, stated
/// in the model card:
/// - O/E cost: (O/E − expected O/E) × expected cost;
/// - O/E length of stay, bed-day share: the same share of inpatient cost;
/// - O/E admissions: extra admissions × what one costs (per diagnosis, its
///   stays' minus its outpatients' mean cost, weighted by the diagnoses'
///   admissions beyond expectation; without it, average cost of the stays
///   of diagnoses admitted less than half the time − outpatient average);
/// - out-of-province share of visits, overlapping claims, visits: extra
///   visits × their average cost;
/// - out-of-province share of new patients: extra new patients × the
///   out-of-province cost per visit;
/// - price index: the same share of drug and supply cost.
pub(crate) fn excess_signed(signal: &str, observed: f64, expected: f64, r: &RowValues) -> f64 {
    if !(observed.is_finite() && expected.is_finite()) {
        return 0.0;
    }
    let visits = r.v("visits");
    let avg_visit = if visits > 0.0 {
        r.v("total_cost") / visits
    } else {
        0.0
    };
    let inpatient_cost = r.v("avg_cost_inpatient") * r.v("inpatient_episodes");
    // Share of the observed value above expectation (of a ratio that
    // scales a cost: length of stay, bed share, prices).
    let rel = if observed > 0.0 {
        1.0 - expected / observed
    } else {
        0.0
    };
    let x = match signal {
        "oe_cost" => (observed - expected) * r.v("expected_cost"),
        "oe_los" | "bed_cost_share_inpatient" => rel * inpatient_cost,
        "oe_admission" => {
            // An admission beyond expectation is an outpatient of the same
            // diagnosis put in bed: priced at that gap, diagnosis by
            // diagnosis (`extra_admission_cost`); without it, at the stays
            // of diagnoses usually treated without one.
            let per = match (r.get)("extra_admission_cost").filter(|x| x.is_finite()) {
                Some(x) => x.max(0.0),
                None => {
                    let stay = match r.v("avg_cost_inpatient_mild") {
                        x if x > 0.0 => x,
                        _ => r.v("avg_cost_inpatient"),
                    };
                    (stay - r.v("avg_cost_outpatient")).max(0.0)
                }
            };
            (observed - expected) * r.v("expected_admissions") * per
        }
        "oop_visit_share" | "oop_new_patient_share" => {
            let oop = r.v("oop_visits");
            let per = if oop > 0.0 {
                r.v("oop_cost") / oop
            } else {
                avg_visit
            };
            let base = if signal == "oop_visit_share" {
                visits
            } else {
                r.v("new_patients")
            };
            (observed - expected) * base * per
        }
        "overlapping_claim_share" => (observed - expected) * visits * avg_visit,
        // Log visits.
        "visits" => (visits - expected.exp()) * avg_visit,
        "drug_supply_price_index" => {
            rel * (r.v("drug_share") + r.v("supply_share")) * r.v("total_cost")
        }
        _ => 0.0,
    };
    if x.is_finite() {
        x
    } else {
        0.0
    }
}

/// Names of an indicator for the reason sentence.
pub fn label(signal: &str, lang: Lang) -> &'static str {
    let (vi, en) = match signal {
        "oe_cost" => (
            "chi phí so với mức dự kiến theo cơ cấu bệnh (O/E chi phí)",
            "cost against the case-mix expectation (O/E cost)",
        ),
        "oe_los" => (
            "số ngày điều trị nội trú so với dự kiến (O/E ngày điều trị)",
            "inpatient days against expectation (O/E length of stay)",
        ),
        "oe_admission" => (
            "tỷ lệ nhập viện so với dự kiến (O/E nhập viện)",
            "admissions against expectation (O/E admission)",
        ),
        "oop_visit_share" => (
            "tỷ lệ lượt khám của người thẻ ngoại tỉnh",
            "share of visits by out-of-province card-holders",
        ),
        "oop_new_patient_share" => (
            "tỷ lệ người thẻ ngoại tỉnh trong số người bệnh mới đến cơ sở",
            "share of out-of-province card-holders among patients new to the facility",
        ),
        "bed_cost_share_inpatient" => (
            "tỷ trọng tiền giường trong chi phí nội trú",
            "bed-day share of inpatient cost",
        ),
        "drug_supply_price_index" => (
            "chỉ số giá thuốc và vật tư so với giá tham chiếu",
            "drug and supply price index against reference prices",
        ),
        "overlapping_claim_share" => (
            "tỷ lệ hồ sơ trùng hoặc chồng lấn thời gian của cùng một thẻ",
            "share of duplicate or overlapping claims of one card",
        ),
        "visits" => ("số lượt khám chữa bệnh", "number of visits"),
        "duplicate" => (
            "hồ sơ trùng lặp (cùng thẻ, trùng thời gian, cùng chẩn đoán)",
            "duplicate claims (same card, overlapping dates, same diagnosis)",
        ),
        "los_outlier" => (
            "đợt nội trú dài bất thường so với chuẩn của chẩn đoán",
            "stays far longer than the diagnosis norm",
        ),
        "mismatch" => (
            "hồ sơ có dịch vụ không phù hợp loại hình khám (tiền giường nội trú ở lượt ngoại trú, số ngày giường vượt số ngày điều trị)",
            "claims with services that do not fit the visit type (inpatient bed-days on outpatient visits, more bed-days than days of stay)",
        ),
        "upcoding" => (
            "mức độ nặng của mã chẩn đoán so với điều trị thực tế (dấu hiệu nâng mã bệnh)",
            "coded severity against the care given (signs of upcoding)",
        ),
        "coded_admission_rate" => (
            "tỷ lệ nhập viện mà các mã chẩn đoán hàm ý",
            "admission rate the coded diagnoses imply",
        ),
        "claim_cost" => (
            "chi phí mỗi hồ sơ so với mức trước đây của cơ sở, cùng chẩn đoán (tính trên từng hồ sơ)",
            "cost per claim against the facility's own earlier level, same diagnoses (claim by claim)",
        ),
        "prescriber" => (
            "chi phí mỗi hồ sơ của một bác sĩ so với đồng nghiệp cùng cơ sở, cùng chẩn đoán",
            "one doctor's cost per claim against colleagues at the same facility, same diagnoses",
        ),
        "department" => (
            "mức tăng chi phí mỗi hồ sơ của một khoa so với các khoa khác cùng cơ sở, cùng chẩn đoán",
            "one department's rise in cost per claim against the facility's other departments, same diagnoses",
        ),
        "multivariate" => (
            "tổ hợp nhiều chỉ số cùng lệch (mô hình đa biến)",
            "several indicators off together (multivariate model)",
        ),
        _ => ("chỉ số", "indicator"),
    };
    match lang {
        Lang::Vi => vi,
        Lang::En => en,
    }
}

/// Writes an indicator value: shares as percentages, ratios with two
/// decimals, visits as counts.
pub fn show(signal: &str, value: f64, lang: Lang) -> String {
    if !value.is_finite() {
        return "–".into();
    }
    let dec = |s: String| match lang {
        Lang::Vi => s.replace('.', ","),
        Lang::En => s,
    };
    match signal {
        "oop_visit_share"
        | "oop_new_patient_share"
        | "bed_cost_share_inpatient"
        | "overlapping_claim_share"
        | "coded_admission_rate" => dec(format!("{:.1}", value * 100.0)) + " %",
        "visits" => {
            let n = value.exp().round() as i64;
            match lang {
                Lang::Vi => crate::format::group_vi(n),
                Lang::En => crate::format::group_en(n),
            }
        }
        "duplicate" | "los_outlier" | "mismatch" => format!("{}", value.round() as i64),
        _ => dec(format!("{value:.2}")),
    }
}

/// Language of user-facing text: Vietnamese first.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    #[default]
    Vi,
    En,
}

/// Amount in VND with the grouping of the language.
pub fn vnd(x: f64, lang: Lang) -> String {
    let n = x.round() as i64;
    match lang {
        Lang::Vi => format!("{} đồng", crate::format::group_vi(n)),
        Lang::En => format!("VND {}", crate::format::group_en(n)),
    }
}

/// Reads a row of named columns.
pub(crate) fn row_getter<'a>(
    cols: &'a HashMap<String, Vec<Option<f64>>>,
    i: usize,
) -> impl Fn(&str) -> Option<f64> + 'a {
    move |c| cols.get(c).and_then(|v| v[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_priced() {
        let vals: HashMap<&str, f64> = [
            ("visits", 100.0),
            ("total_cost", 1.0e7),
            ("expected_cost", 8.0e6),
            ("drug_share", 0.3),
            ("supply_share", 0.1),
        ]
        .into();
        let get = |c: &str| vals.get(c).copied();
        let r = RowValues { get: &get };
        assert!((excess_signed("oe_cost", 1.25, 1.0, &r) - 2.0e6).abs() < 1e-6);
        // Price index 1.35 against 1.0: 0.35/1.35 of the 4 million drugs and supplies.
        let p = excess_signed("drug_supply_price_index", 1.35, 1.0, &r);
        assert!((p - 0.35 / 1.35 * 4.0e6).abs() < 1e-6);
        // Below expectation: given back (summed over a run, noise cancels).
        assert!((excess_signed("oe_cost", 0.9, 1.0, &r) + 0.8e6).abs() < 1e-6);
        assert_eq!(excess_signed("oe_cost", f64::NAN, 1.0, &r), 0.0);
        assert_eq!(show("oop_visit_share", 0.123, Lang::Vi), "12,3 %");
        assert_eq!(vnd(1234567.0, Lang::Vi), "1.234.567 đồng");
    }

    /// Ten admissions beyond the 20 expected (O/E 1.5 against 1.0) are
    /// priced at what one costs over an outpatient of its diagnosis; without
    /// that, at the stays of diagnoses usually treated without admission,
    /// and without such stays, at the average stay.
    #[test]
    fn extra_admissions_are_priced_at_mild_stays() {
        let mut vals: HashMap<&str, f64> = [
            ("expected_admissions", 20.0),
            ("avg_cost_inpatient", 3.0e6),
            ("avg_cost_inpatient_mild", 9.0e5),
            ("avg_cost_outpatient", 3.0e5),
        ]
        .into();
        let price = |vals: &HashMap<&str, f64>| {
            let get = |c: &str| vals.get(c).copied();
            excess_signed("oe_admission", 1.5, 1.0, &RowValues { get: &get })
        };
        vals.insert("extra_admission_cost", 4.0e5);
        assert!((price(&vals) - 10.0 * 4.0e5).abs() < 1e-6);
        vals.remove("extra_admission_cost");
        assert!((price(&vals) - 10.0 * 6.0e5).abs() < 1e-6);
        vals.remove("avg_cost_inpatient_mild");
        assert!((price(&vals) - 10.0 * 2.7e6).abs() < 1e-6);
    }
}
