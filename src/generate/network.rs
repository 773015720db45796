//! The seed network: facility profiles (level, grade, kind, volume, case
//! profile) and the generated facilities of each province.

use super::*;
/// Kind of facility in the seed network, with its volume and case profile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Profile {
    pub(crate) level: &'static str,
    pub(crate) grade: &'static str,
    pub(crate) ownership: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) name: &'static str,
    /// Mean visits per day at scale 1.
    pub(crate) daily: f64,
    /// Share of visits that are inpatient.
    pub(crate) inpatient: f64,
    /// Share of patients with another province's card.
    pub(crate) out_of_province: f64,
}

pub(crate) fn network() -> Vec<(u32, Profile)> {
    let p = |level, grade, ownership, kind, name, daily, inpatient, oop| Profile {
        level,
        grade,
        ownership,
        kind,
        name,
        daily,
        inpatient,
        out_of_province: oop,
    };
    let mut v = vec![
        (
            1,
            p(
                "provincial",
                "I",
                "public",
                "general",
                "Bệnh viện Đa khoa tỉnh",
                900.0,
                0.15,
                0.08,
            ),
        ),
        (
            2,
            p(
                "provincial",
                "II",
                "public",
                "general",
                "Bệnh viện Đa khoa khu vực",
                600.0,
                0.15,
                0.06,
            ),
        ),
        (
            3,
            p(
                "provincial",
                "II",
                "public",
                "specialist",
                "Bệnh viện Sản Nhi",
                250.0,
                0.17,
                0.07,
            ),
        ),
        (
            4,
            p(
                "provincial",
                "II",
                "public",
                "specialist",
                "Bệnh viện Lao và Bệnh phổi",
                250.0,
                0.16,
                0.05,
            ),
        ),
    ];
    for i in 0..7 {
        v.push((
            11 + i,
            p(
                "district",
                "III",
                "public",
                "general",
                "Trung tâm Y tế huyện",
                220.0,
                0.10,
                0.03,
            ),
        ));
    }
    for i in 0..75 {
        v.push((
            101 + i,
            p(
                "commune",
                "IV",
                "public",
                "general",
                "Trạm Y tế xã",
                6.0,
                0.02,
                0.01,
            ),
        ));
    }
    for i in 0..2 {
        v.push((
            201 + i,
            p(
                "provincial",
                "III",
                "private",
                "general",
                "Bệnh viện tư nhân",
                60.0,
                0.12,
                0.10,
            ),
        ));
    }
    for i in 0..3 {
        v.push((
            301 + i,
            p(
                "district",
                "unranked",
                "private",
                "clinic",
                "Phòng khám đa khoa tư nhân",
                25.0,
                0.0,
                0.05,
            ),
        ));
    }
    v.push((
        401,
        p(
            "commune",
            "unranked",
            "private",
            "clinic",
            "Phòng khám công ty",
            10.0,
            0.0,
            0.02,
        ),
    ));
    v
}

/// A generated facility.
#[derive(Debug, Clone)]
pub struct Facility {
    pub code: String,
    pub province_code: String,
    pub(crate) profile: Profile,
    /// First day of claims (a facility that opens during the run).
    pub opens: Option<NaiveDate>,
    /// First day without claims (a facility that closes during the run).
    pub closes: Option<NaiveDate>,
    /// From a day on, the facility claims under another code and province
    /// (a merger): (day, new code, new province code).
    pub renamed: Option<(NaiveDate, String, String)>,
    /// The facility's own price level for drugs and supplies (its tender
    /// results; 1 without `GenConfig::bid_spread`).
    pub(crate) goods_price: f64,
}

/// A facility's price level for goods: lognormal with σ = `bid_spread`
/// and mean 1, drawn from its own stream so the rest of the world does not
/// change with the setting.
fn bid(cfg: &GenConfig, prov: &str, n: u32) -> f64 {
    if cfg.bid_spread <= 0.0 {
        return 1.0;
    }
    let s = cfg.bid_spread;
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(
        cfg.seed,
        "bid",
        n as u64 * 1000 + prov.parse::<u64>().unwrap_or(0),
    ));
    LogNormal::new(-s * s / 2.0, s)
        .expect("valid")
        .sample(&mut rng)
}

pub(crate) fn facilities(cfg: &GenConfig) -> Vec<Facility> {
    let mut out = Vec::new();
    for prov in cfg.province_codes.iter().take(cfg.provinces.max(1)) {
        for (n, p) in network() {
            out.push(Facility {
                code: format!("{prov}{n:03}"),
                province_code: prov.clone(),
                profile: p,
                opens: None,
                closes: None,
                renamed: None,
                goods_price: bid(cfg, prov, n),
            });
        }
    }
    apply_events(cfg, &mut out);
    out
}
