//! How a province's spending moves over the years: volume and price growth
//! (prices in yearly steps on 1 January, as price decisions do, or
//! continuously), a trend break, a facility that opens or closes, and a
//! merger after which facilities claim under new codes. The forecasting
//! benchmark (`bhyt forecast --benchmark`) draws its family of growth
//! shapes from these settings.

use super::*;

/// Growth rates that change from a day on (a trend break).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GrowthBreak {
    /// First day of the new rates.
    pub from: NaiveDate,
    /// Yearly growth of volume from then on.
    pub volume_growth: f64,
    /// Yearly growth of prices from then on.
    pub price_growth: f64,
}

/// A season of lockdown: every facility's visits at `share` of their
/// usual number from `from` to the day before `to`, back to normal over
/// the two months after (the 2021 wave in the South halved visits from
/// mid-July to mid-October).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lockdown {
    /// First day at the lower level.
    pub from: NaiveDate,
    /// First day of the return to normal (over 61 days).
    pub to: NaiveDate,
    /// Share of the usual visits in between (0.5: half).
    pub share: f64,
}

impl Lockdown {
    /// Share of the usual visits on `day`.
    fn factor(&self, day: NaiveDate) -> f64 {
        if day < self.from {
            1.0
        } else if day < self.to {
            self.share
        } else {
            let back = (day - self.to).num_days() as f64 / 61.0;
            (self.share + (1.0 - self.share) * back).min(1.0)
        }
    }
}

fn years(a: NaiveDate, b: NaiveDate) -> f64 {
    (b - a).num_days() as f64 / 365.25
}

/// Continuous compound growth from `start` to `day` at `g`, at `g2` after
/// the break.
fn compound(start: NaiveDate, day: NaiveDate, g: f64, brk: Option<(NaiveDate, f64)>) -> f64 {
    match brk {
        Some((from, g2)) if day >= from && from >= start => {
            (1.0 + g).powf(years(start, from)) * (1.0 + g2).powf(years(from, day))
        }
        _ => (1.0 + g).powf(years(start, day)),
    }
}

/// Volume on `day` relative to the run's first day.
pub(crate) fn volume_factor(cfg: &GenConfig, day: NaiveDate) -> f64 {
    let brk = cfg.growth_break.as_ref().map(|b| (b.from, b.volume_growth));
    let shock = cfg.lockdown.as_ref().map_or(1.0, |l| l.factor(day));
    compound(cfg.start, day, cfg.volume_growth, brk) * shock
}

/// Price level on `day` relative to the run's first day: a step each
/// 1 January (`price_steps`), or continuous growth.
pub(crate) fn price_factor(cfg: &GenConfig, day: NaiveDate) -> f64 {
    let brk = cfg.growth_break.as_ref().map(|b| (b.from, b.price_growth));
    if !cfg.price_steps {
        return compound(cfg.start, day, cfg.price_growth, brk);
    }
    match brk {
        None => (1.0 + cfg.price_growth).powf((day.year() - cfg.start.year()) as f64),
        Some((from, g2)) => (cfg.start.year() + 1..=day.year())
            .map(|y| {
                let jan1 = NaiveDate::from_ymd_opt(y, 1, 1).expect("valid date");
                1.0 + if jan1 >= from { g2 } else { cfg.price_growth }
            })
            .product(),
    }
}

/// Share of its normal volume a facility has on `day`: none before it
/// opens or from the day it closes; a new facility ramps up from 40 % to
/// its full volume over its first six months.
pub(crate) fn activity(f: &Facility, day: NaiveDate) -> f64 {
    if f.closes.is_some_and(|c| day >= c) {
        return 0.0;
    }
    match f.opens {
        Some(o) if day < o => 0.0,
        Some(o) => (0.4 + 0.6 * (day - o).num_days() as f64 / 182.0).min(1.0),
        None => 1.0,
    }
}

/// The facility as it claims on `day`: after a merger, under its new code
/// and province.
pub(crate) fn as_of(f: &Facility, day: NaiveDate) -> std::borrow::Cow<'_, Facility> {
    match &f.renamed {
        Some((from, code, province)) if day >= *from => std::borrow::Cow::Owned(Facility {
            code: code.clone(),
            province_code: province.clone(),
            renamed: None,
            ..f.clone()
        }),
        _ => std::borrow::Cow::Borrowed(f),
    }
}

/// Applies the configured events to the network: the facility that opens
/// (a new private hospital in the first province), the one that closes
/// (the first province's second private hospital), and the new codes after
/// a merger (each facility of a province whose current province differs
/// takes a code of the current province; see `datasets/reference/provinces.csv`).
pub(crate) fn apply_events(cfg: &GenConfig, facs: &mut Vec<Facility>) {
    let first = cfg.province_codes.first().cloned().unwrap_or_default();
    if let Some(day) = cfg.closes {
        if let Some(f) = facs.iter_mut().find(|f| f.code == format!("{first}202")) {
            f.closes = Some(day);
        }
    }
    if let Some(day) = cfg.opens {
        if let Some(f) = facs.iter().find(|f| f.code == format!("{first}201")) {
            let mut new = f.clone();
            new.code = format!("{first}205");
            new.opens = Some(day);
            facs.push(new);
        }
    }
    if let Some(day) = cfg.merger {
        let reference = crate::reference::Reference::builtin();
        let provinces: Vec<&String> = cfg
            .province_codes
            .iter()
            .take(cfg.provinces.max(1))
            .collect();
        for f in facs.iter_mut() {
            let Some(p) = reference.province(&f.province_code) else {
                continue;
            };
            if p.current_code == f.province_code {
                continue;
            }
            let k = provinces
                .iter()
                .position(|q| **q == f.province_code)
                .unwrap_or(0);
            let n: u32 = f.code[2..].parse().unwrap_or(0);
            f.renamed = Some((
                day,
                format!("{}{:03}", p.current_code, n + 500 * k as u32),
                p.current_code.clone(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn growth_shapes() {
        let mut cfg = GenConfig {
            start: d(2021, 1, 1),
            price_growth: 0.05,
            volume_growth: 0.04,
            ..Default::default()
        };
        // Steps: flat within a year, +5 % on 1 January.
        assert_eq!(price_factor(&cfg, d(2021, 12, 31)), 1.0);
        assert!((price_factor(&cfg, d(2022, 1, 1)) - 1.05).abs() < 1e-12);
        // Continuous: half the growth by mid-year.
        cfg.price_steps = false;
        let mid = price_factor(&cfg, d(2021, 7, 2));
        assert!((mid - 1.05f64.sqrt()).abs() < 1e-3, "{mid}");
        // A break: from 2023 on, volume grows 10 % a year.
        cfg.growth_break = Some(GrowthBreak {
            from: d(2023, 1, 1),
            volume_growth: 0.10,
            price_growth: 0.0,
        });
        let a = volume_factor(&cfg, d(2023, 1, 1));
        let b = volume_factor(&cfg, d(2024, 1, 1));
        assert!((b / a - 1.10).abs() < 1e-3, "{}", b / a);
        cfg.price_steps = true;
        assert!((price_factor(&cfg, d(2024, 6, 1)) - 1.05).abs() < 1e-12);
        // A lockdown halves visits for its season, then they come back
        // over two months.
        cfg.lockdown = Some(Lockdown {
            from: d(2021, 7, 15),
            to: d(2021, 10, 15),
            share: 0.5,
        });
        let usual = |day| {
            volume_factor(
                &GenConfig {
                    lockdown: None,
                    ..cfg.clone()
                },
                day,
            )
        };
        let share = |day| volume_factor(&cfg, day) / usual(day);
        assert_eq!(share(d(2021, 7, 14)), 1.0);
        assert_eq!(share(d(2021, 8, 20)), 0.5);
        assert!((share(d(2021, 11, 14)) - 0.75).abs() < 0.01);
        assert_eq!(share(d(2021, 12, 20)), 1.0);
    }
}
