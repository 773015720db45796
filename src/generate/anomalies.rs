//! The injected anomalies and benign look-alikes, and when and where each
//! one runs.

use super::*;
/// Kinds of injected anomalies, and the benign look-alikes a good engine
/// must not flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    UnjustifiedAdmission,
    ProlongedStay,
    LabImagingOveruse,
    Upcoding,
    PriceInflation,
    PhantomOutOfProvince,
    DuplicateClaims,
    BudgetOverrun,
    /// One doctor of an otherwise normal hospital orders more tests and
    /// prescribes twice the quantities of colleagues for the same patients.
    PrescriberOverprescribing,
    /// One inpatient department (cardiology, K04) of an otherwise normal
    /// hospital keeps its patients 30 % longer, orders more tests and
    /// imaging and doubles drug quantities; the hospital's other
    /// departments are honest.
    DepartmentOverservicing,
    /// Benign: a new intensive-care unit makes the case mix heavier.
    CaseMixShift,
    /// Benign: a price change for every facility of a grade on one date.
    GradePriceChange,
    /// Benign: a seasonal epidemic across the province.
    SeasonalEpidemic,
}

impl AnomalyKind {
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::UnjustifiedAdmission => "unjustified_admission",
            AnomalyKind::ProlongedStay => "prolonged_stay",
            AnomalyKind::LabImagingOveruse => "lab_imaging_overuse",
            AnomalyKind::Upcoding => "upcoding",
            AnomalyKind::PriceInflation => "price_inflation",
            AnomalyKind::PhantomOutOfProvince => "phantom_out_of_province",
            AnomalyKind::DuplicateClaims => "duplicate_claims",
            AnomalyKind::BudgetOverrun => "budget_overrun",
            AnomalyKind::PrescriberOverprescribing => "prescriber_overprescribing",
            AnomalyKind::DepartmentOverservicing => "department_overservicing",
            AnomalyKind::CaseMixShift => "case_mix_shift",
            AnomalyKind::GradePriceChange => "grade_price_change",
            AnomalyKind::SeasonalEpidemic => "seasonal_epidemic",
        }
    }

    pub fn benign(self) -> bool {
        matches!(
            self,
            AnomalyKind::CaseMixShift
                | AnomalyKind::GradePriceChange
                | AnomalyKind::SeasonalEpidemic
        )
    }

    const FRAUD: [AnomalyKind; 8] = [
        AnomalyKind::UnjustifiedAdmission,
        AnomalyKind::ProlongedStay,
        AnomalyKind::LabImagingOveruse,
        AnomalyKind::Upcoding,
        AnomalyKind::PriceInflation,
        AnomalyKind::PhantomOutOfProvince,
        AnomalyKind::DuplicateClaims,
        AnomalyKind::BudgetOverrun,
    ];
}

/// One injected anomaly at one facility over a date range.
#[derive(Debug, Clone)]
pub(crate) struct Planned {
    pub(crate) facility: usize,
    pub(crate) kind: AnomalyKind,
    pub(crate) start: NaiveDate,
    /// Exclusive end.
    pub(crate) end: NaiveDate,
}

impl Planned {
    pub(crate) fn active(&self, day: NaiveDate) -> bool {
        day >= self.start && day < self.end
    }
}

/// Chooses the anomalies of a run: per province, each fraud type at a
/// different hospital or clinic, a heavier case mix at another, a price
/// change for one grade, and an epidemic across the province. Windows open
/// after the first third of the run, so every facility has a baseline.
pub(crate) fn plan(cfg: &GenConfig, facs: &[Facility]) -> Vec<Planned> {
    if !cfg.anomalies {
        return Vec::new();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(cfg.seed, "plan", 0));
    let len = cfg.days as i64;
    let window = |rng: &mut ChaCha8Rng, min_len: i64| -> (NaiveDate, NaiveDate) {
        let start = cfg.start + Duration::days((len as f64 * rng.gen_range(0.35..0.6)) as i64);
        let dur = ((len as f64 * rng.gen_range(0.3..0.45)) as i64).max(min_len);
        (
            start,
            (start + Duration::days(dur)).min(cfg.start + Duration::days(len)),
        )
    };
    let mut out = Vec::new();
    for prov in cfg.province_codes.iter().take(cfg.provinces.max(1)) {
        let idx: Vec<usize> = (0..facs.len())
            .filter(|&i| &facs[i].province_code == prov)
            .collect();
        let mut hospitals: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| facs[i].profile.inpatient > 0.05)
            .collect();
        hospitals.shuffle(&mut rng);
        let mut clinics: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&i| facs[i].profile.kind == "clinic")
            .collect();
        clinics.shuffle(&mut rng);
        for kind in AnomalyKind::FRAUD {
            // Clinics have no beds: they take the outpatient frauds first.
            let needs_beds = matches!(
                kind,
                AnomalyKind::UnjustifiedAdmission | AnomalyKind::ProlongedStay
            );
            let f = if !needs_beds
                && matches!(
                    kind,
                    AnomalyKind::PhantomOutOfProvince | AnomalyKind::DuplicateClaims
                ) {
                clinics.pop().or_else(|| hospitals.pop())
            } else {
                hospitals.pop()
            };
            if let Some(f) = f {
                let (start, end) = window(&mut rng, 21);
                out.push(Planned {
                    facility: f,
                    kind,
                    start,
                    end,
                });
            }
        }
        if let Some(f) = hospitals.pop() {
            let (start, _) = window(&mut rng, 21);
            out.push(Planned {
                facility: f,
                kind: AnomalyKind::CaseMixShift,
                start,
                end: cfg.start + Duration::days(len),
            });
        }
        let (start, _) = window(&mut rng, 21);
        for &i in idx.iter().filter(|&&i| facs[i].profile.grade == "III") {
            out.push(Planned {
                facility: i,
                kind: AnomalyKind::GradePriceChange,
                start,
                end: cfg.start + Duration::days(len),
            });
        }
        let (start, end) = window(&mut rng, 28);
        let end = end.min(start + Duration::days(75));
        for &i in &idx {
            out.push(Planned {
                facility: i,
                kind: AnomalyKind::SeasonalEpidemic,
                start,
                end,
            });
        }
        // Drawn last, so the other anomalies stay where they were.
        if let Some(f) = hospitals.pop() {
            let (start, end) = window(&mut rng, 21);
            out.push(Planned {
                facility: f,
                kind: AnomalyKind::PrescriberOverprescribing,
                start,
                end,
            });
        }
        if cfg.department_fraud {
            // A hospital with departments (not a commune station's one ward).
            let pos = hospitals
                .iter()
                .rposition(|&i| facs[i].profile.level != "commune");
            if let Some(f) = pos.map(|p| hospitals.remove(p)) {
                let (start, end) = window(&mut rng, 21);
                out.push(Planned {
                    facility: f,
                    kind: AnomalyKind::DepartmentOverservicing,
                    start,
                    end,
                });
            }
        }
    }
    out
}
