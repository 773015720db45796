//! One facility-week of claims: its visits drawn from the facility's
//! profile, the season, growth and the anomalies active that week, written
//! as the facility submits them.

use super::*;

pub(super) struct Ctx<'a> {
    pub(super) cfg: &'a GenConfig,
    pub(super) facs: &'a [Facility],
    pub(super) prices: &'a PriceList,
    pub(super) planned: &'a [Planned],
    /// The late batch: facility index and the days [from, to) whose weeks
    /// go under `claims-late/`.
    pub(super) late: Option<(usize, NaiveDate, NaiveDate)>,
}

pub(super) struct WeekOut {
    pub(super) facility: String,
    pub(super) year: i32,
    pub(super) days: u32,
    pub(super) visits: u64,
    pub(super) inpatient: u64,
    pub(super) lines: u64,
    pub(super) cost: f64,
    pub(super) bytes: u64,
    /// (planned anomaly index, excess VND)
    pub(super) excess: Vec<(usize, f64)>,
    /// (month, spending, visits) of the week's days.
    pub(super) months: Vec<(NaiveDate, f64, u64)>,
}

const GROUPS: &[(&str, f64, char)] = &[
    ("DN", 0.22, '4'),
    ("HC", 0.05, '4'),
    ("HT", 0.08, '2'),
    ("GD", 0.30, '4'),
    ("TE", 0.12, '1'),
    ("HN", 0.10, '3'),
    ("HS", 0.08, '4'),
    ("CN", 0.05, '2'),
];

/// A card of a person from the facility's catchment (so people come back),
/// or from another province.
fn card_for(rng: &mut ChaCha8Rng, ctx: &Ctx, f: &Facility, oop: bool) -> String {
    let provinces: Vec<&String> = ctx
        .cfg
        .province_codes
        .iter()
        .take(ctx.cfg.provinces.max(1))
        .collect();
    let (province, pool_key) = if oop {
        let others: Vec<&str> = if provinces.len() > 1 {
            provinces
                .iter()
                .map(|s| s.as_str())
                .filter(|p| *p != f.province_code)
                .collect()
        } else {
            vec!["86", "82", "89", "79", "01"]
        };
        let p = others[rng.gen_range(0..others.len())].to_string();
        let key = format!("oop{p}");
        (p, key)
    } else {
        (f.province_code.clone(), f.code.clone())
    };
    let pool = ((f.profile.daily * ctx.cfg.scale * 365.0 / 2.5) as u64).max(60);
    let person = stream_seed(ctx.cfg.seed, &pool_key, rng.gen_range(0..pool));
    let mut x = (person % 10_000) as f64 / 10_000.0;
    let (mut group, mut level) = ("GD", '4');
    for (g, w, l) in GROUPS {
        x -= w;
        if x <= 0.0 {
            group = g;
            level = *l;
            break;
        }
    }
    format!(
        "{group}{level}{province}{province}{:08}",
        (person >> 16) % 100_000_000
    )
}

pub(super) fn gen_week(
    ctx: &Ctx,
    fi: usize,
    start: NaiveDate,
    ndays: u32,
    out: Option<&Path>,
) -> Result<WeekOut, GenerateError> {
    let cfg = ctx.cfg;
    let fac = &ctx.facs[fi];
    // After a merger the facility claims under its new code.
    let f = &*as_of(fac, start);
    let p = f.profile;
    let iso = start.iso_week();
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(
        cfg.seed,
        &f.code,
        (iso.year() as u64) * 100 + iso.week() as u64,
    ));
    let mine: Vec<(usize, &Planned)> = ctx
        .planned
        .iter()
        .enumerate()
        .filter(|(_, a)| a.facility == fi)
        .collect();
    let mut hosos = Vec::new();
    let mut w = WeekOut {
        facility: f.code.clone(),
        year: start.year(),
        days: ndays,
        visits: 0,
        inpatient: 0,
        lines: 0,
        cost: 0.0,
        bytes: 0,
        excess: Vec::new(),
        months: Vec::new(),
    };
    let mut excess: std::collections::BTreeMap<usize, f64> = Default::default();
    let noise = LogNormal::new(0.0, 0.35).expect("valid");
    for di in 0..ndays {
        let day = start + Duration::days(di as i64);
        let active = |k: AnomalyKind| {
            mine.iter()
                .find(|(_, a)| a.kind == k && a.active(day))
                .map(|(i, _)| *i)
        };
        let vol_growth = volume_factor(cfg, day) * activity(fac, day);
        let price_growth = price_factor(cfg, day);
        let (cost_before, visits_before) = (w.cost, w.visits);
        let doy = day.ordinal();
        let weekday = match day.weekday().num_days_from_monday() {
            5 => 0.55,
            6 => 0.35,
            _ => 1.12,
        };
        let seasonal = 0.9 + 0.1 * season_factor(Season::Respiratory, doy);
        let daily = match cfg.station_daily {
            Some(d) if p.level == "commune" && p.kind == "general" => d / VOLUME_LEVEL,
            _ => p.daily * cfg.scale,
        };
        let lambda = daily * VOLUME_LEVEL * weekday * seasonal * vol_growth;
        let epidemic = active(AnomalyKind::SeasonalEpidemic).is_some();
        let heavy = active(AnomalyKind::CaseMixShift).is_some();
        let mut base = Mods {
            service_price: if active(AnomalyKind::GradePriceChange).is_some() {
                1.12
            } else {
                1.0
            },
            ..Default::default()
        };
        if let Some(a) = active(AnomalyKind::PriceInflation) {
            base.drug_supply_price = 1.35;
            let _ = a;
        }
        let poisson = |rng: &mut ChaCha8Rng, l: f64| {
            if l > 0.0 {
                Poisson::new(l).expect("positive").sample(rng) as u64
            } else {
                0
            }
        };
        let mut n = poisson(&mut rng, lambda * if epidemic { 1.08 } else { 1.0 });
        let surge =
            active(AnomalyKind::BudgetOverrun).map(|a| (a, poisson(&mut rng, lambda * 0.3)));
        let phantom = active(AnomalyKind::PhantomOutOfProvince)
            .map(|a| (a, poisson(&mut rng, lambda * 0.15)));
        let n_normal = n;
        n += surge.map_or(0, |s| s.1) + phantom.map_or(0, |s| s.1);
        let inpatient_share = if heavy {
            (p.inpatient * 1.5).min(0.5)
        } else {
            p.inpatient
        };
        for k in 0..n {
            let is_surge = k >= n_normal && surge.is_some_and(|s| k < n_normal + s.1);
            let is_phantom = k >= n_normal && !is_surge;
            let inpatient = !is_phantom && rng.gen::<f64>() < inpatient_share;
            let dx = pick_dx(&mut rng, doy, inpatient, epidemic, heavy);
            let ma_lk = format!("{}{}{:05}", f.code, day.format("%y%m%d"), k);
            let oop = is_phantom || rng.gen::<f64>() < p.out_of_province;
            let card = card_for(&mut rng, ctx, f, oop);
            let price = price_growth * PRICE_LEVEL;
            let twin = rng.clone();
            let mut h = make_visit(
                &mut rng, ctx, &ma_lk, f, day, inpatient, dx, &card, price, &noise, &base,
            );
            let normal_cost = total_of(&h);
            // Fraud that changes the claim of a real visit: the excess is
            // the difference with its honest twin (same random draws).
            let mut fraud: Option<(usize, Mods, bool, &'static Dx)> = None;
            if let Some(a) = active(AnomalyKind::PrescriberOverprescribing) {
                fraud = Some((
                    a,
                    Mods {
                        overprescriber: Some(7),
                        ..base
                    },
                    inpatient,
                    dx,
                ));
            }
            if let Some(a) = active(AnomalyKind::DepartmentOverservicing) {
                if clinical::department(dx, inpatient, f.profile.level == "commune") == "K04" {
                    fraud = Some((
                        a,
                        Mods {
                            overservicing_department: Some("K04"),
                            // And keeps its patients longer.
                            los_factor: 1.3,
                            ..base
                        },
                        inpatient,
                        dx,
                    ));
                }
            }
            if let Some(a) = active(AnomalyKind::UnjustifiedAdmission) {
                if !inpatient && dx.admit < 0.1 && rng.gen::<f64>() < 0.12 {
                    fraud = Some((
                        a,
                        Mods {
                            force_inpatient_los: Some(rng.gen_range(2..5)),
                            ..base
                        },
                        true,
                        dx,
                    ));
                }
            }
            if let Some(a) = active(AnomalyKind::ProlongedStay) {
                if inpatient {
                    fraud = Some((
                        a,
                        Mods {
                            los_factor: 1.7,
                            ..base
                        },
                        true,
                        dx,
                    ));
                }
            }
            if let Some(a) = active(AnomalyKind::LabImagingOveruse) {
                if rng.gen::<f64>() < 0.6 {
                    fraud = Some((
                        a,
                        Mods {
                            extra_labs: 4,
                            extra_imaging: 1,
                            ..base
                        },
                        inpatient,
                        dx,
                    ));
                }
            }
            if let Some(a) = active(AnomalyKind::Upcoding) {
                if rng.gen::<f64>() < 0.3 {
                    fraud = Some((
                        a,
                        Mods {
                            upcode: true,
                            ..base
                        },
                        inpatient,
                        dx_by_code(upcode(dx.code)),
                    ));
                }
            }
            if let Some((a, mods, inp, dx2)) = fraud {
                let mut r2 = twin.clone();
                let h2 = make_visit(
                    &mut r2, ctx, &ma_lk, f, day, inp, dx2, &card, price, &noise, &mods,
                );
                *excess.entry(a).or_default() += total_of(&h2) - normal_cost;
                h = h2;
            }
            if base.drug_supply_price != 1.0 {
                // Price inflation: the same visit at honest prices.
                let mut r2 = twin.clone();
                let honest = Mods {
                    drug_supply_price: 1.0,
                    ..base
                };
                let h0 = make_visit(
                    &mut r2, ctx, &ma_lk, f, day, inpatient, dx, &card, price, &noise, &honest,
                );
                if let Some(a) = active(AnomalyKind::PriceInflation) {
                    *excess.entry(a).or_default() += normal_cost - total_of(&h0);
                }
            }
            if is_surge || is_phantom {
                let a = if is_surge {
                    surge.map(|s| s.0)
                } else {
                    phantom.map(|s| s.0)
                };
                if let Some(a) = a {
                    *excess.entry(a).or_default() += total_of(&h);
                }
            }
            let dup = active(AnomalyKind::DuplicateClaims).filter(|_| rng.gen::<f64>() < 0.06);
            if let Some(a) = dup {
                // The same stay claimed again under another MA_LK.
                let mut d = h.clone();
                if rng.gen::<f64>() < 0.5 {
                    // Overlapping rather than identical: shifted by a day.
                    for field in ["NGAY_VAO", "NGAY_RA"] {
                        if let Some(v) = d.xml1.get(field).map(str::to_string) {
                            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(&v, "%Y%m%d%H%M") {
                                d.xml1.set(
                                    field,
                                    (t + Duration::days(1)).format("%Y%m%d%H%M").to_string(),
                                );
                            }
                        }
                    }
                }
                let dup_lk = format!("{}{}{:05}", f.code, day.format("%y%m%d"), n + k);
                d.xml1.set("MA_LK", dup_lk.clone());
                for l in d.xml2.iter_mut().chain(d.xml3.iter_mut()) {
                    l.set("MA_LK", dup_lk.clone());
                }
                *excess.entry(a).or_default() += total_of(&d);
                push(&mut w, &mut hosos, d);
            }
            push(&mut w, &mut hosos, h);
        }
        // Spending by discharge month (every visit is discharged on `day`).
        let month = NaiveDate::from_ymd_opt(day.year(), day.month(), 1).expect("valid date");
        let (dc, dv) = (w.cost - cost_before, w.visits - visits_before);
        match w.months.last_mut() {
            Some(m) if m.0 == month => {
                m.1 += dc;
                m.2 += dv;
            }
            _ => w.months.push((month, dc, dv)),
        }
    }
    w.excess = excess.into_iter().collect();
    if hosos.is_empty() {
        return Ok(w);
    }
    let Some(out) = out else {
        return Ok(w);
    };
    let dir = out
        .join(
            if ctx
                .late
                .is_some_and(|(lf, from, to)| lf == fi && start >= from && start < to)
            {
                "claims-late"
            } else {
                "claims"
            },
        )
        .join(&f.province_code)
        .join(start.year().to_string());
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let path = dir.join(format!(
        "{}-{}{:02}-{}.xml{}",
        f.code,
        iso.year(),
        iso.week(),
        start.format("%m%d"),
        if cfg.compress { ".gz" } else { "" }
    ));
    let file = std::fs::File::create(&path).map_err(io(&path))?;
    let bw = BufWriter::with_capacity(1 << 20, file);
    let created = (start + Duration::days(ndays as i64 - 1))
        .format("%Y%m%d")
        .to_string();
    if cfg.compress {
        let mut gz = flate2::write::GzEncoder::new(bw, flate2::Compression::best());
        write_envelope(&mut gz, &f.code, &created, &hosos, &Style::default()).map_err(io(&path))?;
        gz.finish().and_then(|mut w| w.flush()).map_err(io(&path))?;
    } else {
        let mut bw = bw;
        write_envelope(&mut bw, &f.code, &created, &hosos, &Style::default()).map_err(io(&path))?;
        bw.flush().map_err(io(&path))?;
    }
    w.bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    Ok(w)
}

/// The late batch of `GenConfig::late_batch`: the last district health
/// centre of the first province without a planned anomaly, four whole
/// weeks from 60 % of the run.
pub(super) fn late_batch(
    cfg: &GenConfig,
    facs: &[Facility],
    planned: &[Planned],
    weeks: &[(NaiveDate, u32)],
) -> Option<(usize, NaiveDate, NaiveDate)> {
    if !cfg.late_batch {
        return None;
    }
    let first = cfg.province_codes.first()?;
    let fi = (0..facs.len()).rev().find(|&i| {
        let p = facs[i].profile;
        &facs[i].province_code == first
            && p.level == "district"
            && p.kind == "general"
            && p.ownership == "public"
            && !planned.iter().any(|a| a.facility == i)
    })?;
    let from_day = cfg.start + Duration::days((cfg.days as f64 * 0.6) as i64);
    let k = weeks.iter().position(|w| w.0 >= from_day && w.1 == 7)?;
    let to = weeks
        .get(k + 4)
        .map_or(from_day + Duration::days(28), |w| w.0);
    Some((fi, weeks[k].0, to))
}

fn push(w: &mut WeekOut, hosos: &mut Vec<Hoso>, h: Hoso) {
    w.visits += 1;
    w.inpatient += matches!(h.xml1.get("MA_LOAI_KCB"), Some("03" | "06")) as u64;
    w.lines += (h.xml2.len() + h.xml3.len()) as u64;
    w.cost += total_of(&h);
    hosos.push(h);
}
