#!/usr/bin/env python3
"""An independently written province of Decision 130 claims, for judging the
engine on data its own generator did not make.

Written from `shared/domain/` (the claims format and the users' indicators)
only, without the engine's generator: its own catalogue, prices, case mix,
seasons, numbering (facility codes, MA_LK, doctors' practising-certificate
numbers), envelope styles (compact with a byte-order mark; indented CRLF with
base64 wrapped at 76 columns; inner documents inline; inner roots without the
CHITIEU wrapper) and its own way of committing each kind of fraud. Standard
library only.

usage: province.py OUT_DIR [--scale 0.2] [--seed 1] [--year 2023]
                  [--years 1] [--shape smooth|policy] [--anomaly-year Y]
writes OUT_DIR/facilities.csv, budgets.csv, labels.csv (facility_code, start,
end, type, benign, true_excess_vnd) and claims/<facility>/<week>.xml.

Several years (`--years 4`) make a history for budget forecasts, grown its
own way: `smooth` — each facility's volume grows at its own rate (mean 5 %,
sd 2.5 points a year) and every price rises continuously (6.5 % a year), no
step on 1 January; `policy` — what Vietnam's claims went through: visits
fall by half from mid-July to mid-October 2021 (the epidemic's lockdowns)
and come back over two months, visits grow 7 % a year, services (exam, bed,
labs, imaging, procedures) rise 9 % on 17 November 2023 (a price circular)
and beds another 20 % on 1 July 2024 (a base-salary rise), drugs fall 1 % a
year (tenders). The frauds and look-alikes fall in `--anomaly-year` (default
the last year). One year without `--shape` is the detection province as it
always was (byte-identical).
"""

import argparse
import base64
import csv
import datetime as dt
import math
import os
import random

PROVINCE = "94"

# Diagnoses: code, weight by setting (hospital, commune, clinic), admission
# probability at a hospital, mean length of stay, drugs, labs, imaging,
# procedure probability, season (respiratory, dengue, none), chronic.
DX = [
    ("J06", (9, 14, 12), 0.03, 3, 3, 0.2, 0.02, 0.0, "resp", False),
    ("J18", (3, 0.5, 1), 0.55, 7, 5, 1.5, 0.9, 0.0, "resp", False),
    ("J20", (5, 6, 6), 0.08, 4, 3, 0.4, 0.2, 0.0, "resp", False),
    ("J44", (2, 0.8, 1), 0.45, 8, 5, 1.5, 0.7, 0.0, "resp", True),
    ("J45", (2, 1.5, 1.5), 0.2, 4, 4, 0.5, 0.3, 0.0, "resp", True),
    ("I10", (10, 12, 8), 0.03, 3, 3, 0.8, 0.1, 0.0, "", True),
    ("I50", (1.5, 0.2, 0.3), 0.7, 8, 6, 2.5, 1.0, 0.1, "", True),
    ("I63", (1, 0.05, 0.1), 0.95, 11, 6, 3.0, 1.5, 0.1, "", False),
    ("I25", (2, 0.5, 1), 0.3, 6, 5, 1.5, 0.6, 0.05, "", True),
    ("E11", (7, 6, 5), 0.06, 6, 4, 1.5, 0.1, 0.0, "", True),
    ("E78", (3, 2, 3), 0.01, 3, 2, 1.0, 0.0, 0.0, "", True),
    ("K29", (6, 7, 7), 0.05, 4, 3, 0.3, 0.3, 0.0, "", False),
    ("K25", (1, 0.2, 0.4), 0.5, 6, 5, 1.5, 0.8, 0.2, "", False),
    ("K35", (0.6, 0, 0.05), 0.98, 6, 5, 2.0, 1.0, 0.95, "", False),
    ("K80", (0.8, 0.05, 0.3), 0.6, 6, 4, 1.5, 1.0, 0.5, "", False),
    ("A09", (4, 5, 4), 0.1, 3, 3, 0.5, 0.0, 0.0, "", False),
    ("A04", (0.8, 0.2, 0.3), 0.6, 5, 4, 1.5, 0.2, 0.0, "", False),
    ("A90", (0.3, 0.3, 0.3), 0.4, 5, 3, 2.0, 0.1, 0.0, "dengue", False),
    ("A91", (0.1, 0.02, 0.05), 0.9, 6, 4, 3.0, 0.3, 0.0, "dengue", False),
    ("M54", (5, 5, 7), 0.02, 4, 3, 0.1, 0.4, 0.05, "", False),
    ("M17", (2, 1, 2), 0.05, 5, 3, 0.2, 0.7, 0.1, "", True),
    ("N39", (3, 2, 3), 0.15, 5, 3, 1.0, 0.3, 0.0, "", False),
    ("N18", (0.8, 0.1, 0.2), 0.4, 8, 5, 2.5, 0.5, 0.2, "", True),
    ("N20", (1, 0.2, 0.5), 0.35, 4, 3, 1.0, 1.0, 0.3, "", False),
    ("H10", (2, 3, 3), 0.0, 1, 2, 0.0, 0.0, 0.0, "", False),
    ("H25", (1, 0.1, 0.5), 0.5, 2, 3, 0.5, 0.3, 0.9, "", False),
    ("L20", (2, 2, 3), 0.01, 2, 2, 0.0, 0.0, 0.0, "", False),
    ("S52", (1, 0.3, 0.5), 0.6, 5, 3, 0.5, 1.5, 0.7, "", False),
    ("S06", (0.6, 0.1, 0.2), 0.8, 6, 4, 1.0, 1.5, 0.2, "", False),
    ("T14", (2, 3, 2), 0.05, 2, 2, 0.1, 0.3, 0.3, "", False),
    ("C50", (0.5, 0, 0.05), 0.7, 9, 6, 3.0, 1.5, 0.5, "", True),
    ("O80", (1.5, 0.1, 0.2), 1.0, 3, 4, 1.5, 0.5, 0.9, "", False),
    ("Z34", (3, 2, 2), 0.0, 1, 2, 1.5, 0.8, 0.0, "", False),
    ("O20", (0.6, 0.1, 0.2), 0.5, 3, 3, 1.0, 0.8, 0.0, "", False),
    ("R51", (3, 3, 3), 0.01, 1, 2, 0.1, 0.1, 0.0, "", False),
    ("G43", (0.6, 0.1, 0.2), 0.25, 4, 4, 1.0, 1.0, 0.0, "", False),
]
OBSTETRIC = {"O80", "Z34", "O20", "N39"}
# Milder code → the heavier one an upcoder writes instead.
HEAVIER = {"J06": "J18", "J20": "J44", "I10": "I50", "K29": "K25", "A09": "A04", "R51": "G43"}
DEPT = {"J": "K03", "I": "K04", "E": "K03", "K": "K03", "A": "K11", "M": "K24",
        "N": "K03", "H": "K30", "L": "K13", "S": "K24", "T": "K24", "C": "K32",
        "O": "K27", "Z": "K27", "R": "K03", "G": "K14"}
SURGICAL = {"K35", "K80", "S52", "S06", "H25", "O80", "N20"}

# Facility kinds: (level, grade, ownership, kind, visits a day at scale 1,
# inpatient factor, setting index into DX weights).
KINDS = {
    "prov1": ("provincial", "I", "public", "general", 1100, 1.0, 0),
    "prov_obs": ("provincial", "II", "public", "specialist", 260, 1.0, 0),
    "district": ("district", "III", "public", "general", 300, 0.8, 0),
    "private_h": ("provincial", "III", "private", "general", 140, 0.7, 0),
    "clinic": ("district", "unranked", "private", "clinic", 70, 0.0, 2),
    "commune": ("commune", "IV", "public", "general", 16, 0.04, 1),
}
EXAM = {"provincial": 42100, "district": 38700, "commune": 30500}
BED = {"I": 321000, "II": 248000, "III": 199000, "IV": 152000, "unranked": 199000}


class Catalogue:
    """Items with province prices, drawn once per seed."""

    def __init__(self, rng):
        self.drugs = [(f"40.{100 + i}", round(math.exp(rng.gauss(math.log(1500), 1.0)), -1) + 200)
                      for i in range(140)]
        self.labs = [(f"23.{1000 + 17 * i}", round(rng.uniform(18000, 160000), -2)) for i in range(24)]
        self.imaging = [(f"18.{300 + 7 * i}", round(rng.uniform(45000, 850000), -2)) for i in range(10)]
        self.procs = [(f"10.{500 + 11 * i}", round(math.exp(rng.gauss(math.log(900000), 0.9)), -3))
                      for i in range(14)]
        self.supplies = [(f"N0{3 + i % 5}.{10 + i:02d}", round(rng.uniform(4000, 280000), -2)) for i in range(18)]
        # Each diagnosis its own basket and services.
        self.basket = {}
        for d in DX:
            r = random.Random(d[0] + str(rng.random()))
            self.basket[d[0]] = {
                "drugs": r.sample(range(len(self.drugs)), min(12, d[4] + 5)),
                "labs": r.sample(range(len(self.labs)), 6),
                "imaging": r.sample(range(len(self.imaging)), 3),
                "procs": r.sample(range(len(self.procs)), 2),
                "supplies": r.sample(range(len(self.supplies)), 3),
            }


def season(code_season, day):
    doy = day.timetuple().tm_yday
    if code_season == "resp":  # rainy season, peak in September
        return 1.0 + 0.35 * math.exp(-((doy - 250) / 45.0) ** 2)
    if code_season == "dengue":  # an outbreak July–September
        return 1.0 + 9.0 * math.exp(-((doy - 225) / 22.0) ** 2)
    return 1.0


# Lunar new year's day: visits fall to a third from two days before to five after.
TET = {2020: dt.date(2020, 1, 25), 2021: dt.date(2021, 2, 12), 2022: dt.date(2022, 2, 1),
       2023: dt.date(2023, 1, 22), 2024: dt.date(2024, 2, 10), 2025: dt.date(2025, 1, 29),
       2026: dt.date(2026, 2, 17)}


def years_since(day, start):
    return (day - start).days / 365.25


def volume_factor(day, year_start, shape=None, growth_rate=0.0):
    dow = [1.0, 0.95, 0.95, 0.92, 0.9, 0.55, 0.25][day.weekday()]
    tet_day = TET.get(day.year)
    tet = 0.35 if tet_day and tet_day - dt.timedelta(days=2) <= day <= tet_day + dt.timedelta(days=5) else 1.0
    if shape is None:  # the one-year detection province
        growth = 1.0 + 0.06 * (day - year_start).days / 365.0
    else:
        growth = math.exp(growth_rate * years_since(day, year_start))
    if shape == "policy":
        lock0, lock1, back = dt.date(2021, 7, 15), dt.date(2021, 10, 15), dt.date(2021, 12, 15)
        if lock0 <= day < lock1:
            growth *= 0.5
        elif lock1 <= day < back:
            growth *= 0.5 + 0.5 * (day - lock1).days / (back - lock1).days
    return dow * tet * growth


def price_factors(day, start, shape):
    """(services, drugs, bed) price multipliers on `day`."""
    if shape is None:
        return 1.0, 1.0, 1.0
    t = years_since(day, start)
    if shape == "smooth":
        g = math.exp(0.065 * t)
        return g, g, g
    svc = 1.09 if day >= dt.date(2023, 11, 17) else 1.0
    bed = svc * (1.20 if day >= dt.date(2024, 7, 1) else 1.0)
    return svc, math.exp(-0.01 * t), bed


def poisson(rng, lam):
    if lam <= 0:
        return 0
    if lam > 40:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    l, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= l:
            return k
        k += 1


def ts(d, minutes):
    t = dt.datetime.combine(d, dt.time(0, 0)) + dt.timedelta(minutes=minutes)
    return t.strftime("%Y%m%d%H%M")


def money(x):
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.2f}"


class Province:
    def __init__(self, scale, seed, year, years=1, shape=None, anomaly_year=None):
        self.rng = random.Random(seed)
        self.scale, self.shape = scale, shape
        self.year = anomaly_year or year + years - 1  # the frauds' year
        self.start = dt.date(year, 1, 1)
        self.end = dt.date(year + years - 1, 12, 31)
        self.cat = Catalogue(self.rng)
        self.facilities = self._facilities()
        # Each facility's own yearly volume growth (its own generator, so one
        # year without a shape keeps its draws).
        g = random.Random(seed * 7919 + 17)
        rate = {"smooth": 0.05, "policy": 0.07}.get(shape, 0.0)
        for f in self.facilities:
            f["growth"] = g.gauss(rate, 0.025) if shape else 0.0
        self.anomalies = self._anomalies()
        self.used_lk = set()
        self.excess = {}  # anomaly index → VND

    def _facilities(self):
        plan = ["prov1", "prov_obs", "private_h"] + ["district"] * 8 + ["clinic"] * 5 + ["commune"] * 40
        codes = self.rng.sample(range(1, 1000), len(plan))
        out = []
        for kind, n in zip(plan, codes):
            level, grade, own, k, per_day, inpat, setting = KINDS[kind]
            size = per_day * math.exp(self.rng.gauss(0, 0.25))
            names = {"prov1": "Bệnh viện Đa khoa tỉnh", "prov_obs": "Bệnh viện Sản - Nhi",
                     "district": "Trung tâm Y tế", "private_h": "Bệnh viện tư nhân",
                     "clinic": "Phòng khám đa khoa", "commune": "Trạm Y tế xã"}
            f = {
                "code": f"{PROVINCE}{n:03d}", "kind": kind, "level": level, "grade": grade,
                "ownership": own, "fkind": k, "per_day": size, "inpatient": inpat,
                "setting": setting, "name": f"{names[kind]} {n:03d}",
                "price": math.exp(self.rng.gauss(0, 0.06)),  # its tender prices
                "style": self.rng.randrange(4),
            }
            ndoc = max(4, int(size * self.scale / 12))
            f["doctors"] = [f"{self.rng.randrange(10**6):06d}/{PROVINCE}-CCHN" for _ in range(ndoc)]
            f["patients"] = []
            out.append(f)
        return out

    def _anomalies(self):
        by = lambda kind: [f for f in self.facilities if f["kind"] == kind]
        d = by("district")
        rng = self.rng
        first = dt.date(self.year, 1, 1)
        onset = lambda: first + dt.timedelta(days=rng.randrange(125, 185))
        a = []

        def add(f, typ, benign=False, start=None, end=None, **kw):
            s = start or onset()
            e = end or min(dt.date(self.year, 12, 31), s + dt.timedelta(days=rng.randrange(120, 170)))
            a.append(dict(fac=f["code"], type=typ, benign=benign, start=s, end=e, **kw))

        add(d[0], "price_inflation", factor=1.25)
        add(d[1], "lab_imaging_overuse")
        add(by("prov_obs")[0], "prolonged_stay", factor=1.6)
        add(d[2], "unjustified_admission")
        add(d[3], "upcoding")
        add(by("clinic")[0], "phantom_visits")
        add(by("private_h")[0], "duplicate_claims")
        p1 = by("prov1")[0]
        add(p1, "prescriber_overprescribing", doctor=p1["doctors"][3])
        add(d[4], "volume_inflation")
        # Benign look-alikes: a heavier case mix treated as such, and a new
        # price list for every district hospital.
        add(p1, "case_mix_shift", benign=True, start=dt.date(self.year, 5, 15), end=self.end)
        for f in d:
            add(f, "grade_price_change", benign=True, start=dt.date(self.year, 7, 1), end=self.end)
        return a

    def active(self, f, day, typ):
        for i, a in enumerate(self.anomalies):
            if a["fac"] == f["code"] and a["type"] == typ and a["start"] <= day <= a["end"]:
                return i, a
        return None

    # --- one visit -------------------------------------------------------
    def lk(self):
        while True:
            k = "".join(self.rng.choice("0123456789ABCDEF") for _ in range(12))
            if k not in self.used_lk:
                self.used_lk.add(k)
                return k

    def patient(self, f, fake=False):
        rng = self.rng
        if f["patients"] and not fake and rng.random() < 0.55:
            return rng.choice(f["patients"])
        prov = PROVINCE if rng.random() > 0.035 else rng.choice(["92", "93", "89", "91", "79", "01"])
        card = (rng.choice(["DN", "HT", "GD", "TE", "CN", "HN", "BT", "HS"]) + str(rng.choice([1, 2, 3, 4, 4, 4, 5]))
                + prov + f"{rng.randrange(10**10):010d}")
        p = {"card": card, "cccd": f"0{rng.randrange(10**11):011d}", "bn": f"P{rng.randrange(10**8):08d}",
             "sex": rng.choice([1, 2]), "birth": dt.date(rng.randrange(1935, 2022), rng.randrange(1, 13), rng.randrange(1, 28)),
             "name": rng.choice(["Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh"]) + " " + rng.choice(["Văn", "Thị", "Hữu", "Ngọc"]) + " " + rng.choice(["An", "Bình", "Cúc", "Dũng", "Hoa", "Minh"]),
             "addr": f"Ấp {rng.randrange(1, 9)}, xã {rng.choice(['Long Phú', 'Mỹ Xuyên', 'Kế Sách', 'Vĩnh Châu'])}"}
        if not fake:
            f["patients"].append(p)
        return p

    def pick_dx(self, f, day, heavy_only=False):
        rng = self.rng
        pool = DX
        if f["kind"] == "prov_obs":
            pool = [x for x in DX if x[0] in OBSTETRIC or x[0] in ("J06", "A09", "J20")]
        if heavy_only:
            pool = [x for x in DX if x[2] >= 0.5]
        w = [x[1][f["setting"]] * season(x[8], day) for x in pool]
        return rng.choices(pool, weights=w)[0]

    def visit(self, f, day):
        """One visit as billed: its coded diagnosis, stay, lines (group, code,
        quantity, unit price), doctor, total, and what an honest claim for the
        same patient would have cost."""
        rng = self.rng
        dx = self.pick_dx(f, day)
        if self.active(f, day, "case_mix_shift") and rng.random() < 0.2:
            dx = self.pick_dx(f, day, heavy_only=True)  # sicker patients, treated as such
        care = coded = dx
        up = self.active(f, day, "upcoding")
        if up and dx[0] in HEAVIER and rng.random() < 0.5:
            coded = next(x for x in DX if x[0] == HEAVIER[dx[0]])
        # Admission and stay follow the true condition.
        admit = f["inpatient"] > 0 and rng.random() < min(0.98, care[2] * f["inpatient"])
        los = max(1, int(round(rng.lognormvariate(math.log(care[3]), 0.35)))) if admit else 0
        unjust = self.active(f, day, "unjustified_admission")
        unjust_hit = bool(unjust and not admit and care[2] < 0.3 and rng.random() < 0.18)
        if unjust_hit:
            admit, los = True, rng.choice([2, 2, 3])
        pro = self.active(f, day, "prolonged_stay")
        billed_los = max(los + 1, int(round(los * pro[1]["factor"]))) if pro and admit else los
        svc_g, drug_g, bed_g = price_factors(day, self.start, self.shape)
        presc = self.active(f, day, "prescriber_overprescribing")
        doctor = rng.choice(f["doctors"])
        fx = {
            "svc": (1.10 if self.active(f, day, "grade_price_change") else 1.0) * svc_g,
            "bed": (1.10 if self.active(f, day, "grade_price_change") else 1.0) * bed_g,
            "drug": drug_g,
            "round": self.shape is not None,
            "infl": self.active(f, day, "price_inflation"),
            "lab": self.active(f, day, "lab_imaging_overuse"),
            "doc": bool(presc and doctor == presc[1]["doctor"]),
        }
        seed = rng.random()
        lines = self._lines(f, coded, care, admit, billed_los, fx, random.Random(seed))
        total = sum(q * p for _, _, q, p in lines)
        # The honest twin (same draws), only when a fraud touched the claim.
        honest = total
        if fx["infl"] or fx["lab"] or fx["doc"] or unjust_hit or billed_los != los or coded is not care:
            honest_fx = dict(fx, infl=None, lab=None, doc=False)
            honest_admit = admit and not unjust_hit
            honest = sum(q * p for _, _, q, p in self._lines(
                f, care, care, honest_admit, los if honest_admit else 0, honest_fx, random.Random(seed)))
        chronic = coded[9] and not admit
        return dict(dx=coded, admit=admit, los=billed_los, lines=lines, doctor=doctor, total=total,
                    honest=honest, chronic=chronic, minutes=45 + rng.randrange(120))

    def _lines(self, f, coded, care, admit, los, fx, rng):
        """Lines billed for a visit coded `coded` whose care follows `care`;
        the same rng seed gives the same draws, so a claim and its honest
        twin differ only by what the fraud changes."""
        # Grown prices are whole đồng, as on a real price list.
        r = round if fx["round"] else (lambda x: x)
        exam = r(EXAM.get(f["level"], 38700) * fx["svc"])
        lines = [(13, "02.1896", 1, exam)]
        if admit:
            lines.append((15, "K19.1911", los, r(BED[f["grade"]] * fx["bed"])))
        basket = self.cat.basket[coded[0]]
        chronic = coded[9] and not admit
        days = rng.choice([28, 30]) if chronic else rng.choice([5, 5, 7, 10])
        k = min(len(basket["drugs"]), max(1, coded[4] + rng.randrange(-1, 2)))
        for j in rng.sample(basket["drugs"], k):
            code, price = self.cat.drugs[j]
            q = rng.choice([1, 1, 2, 2]) * (los if admit else days)
            unit = round(price * fx["drug"] * f["price"] * math.exp(rng.gauss(0, 0.02)), 0)
            if fx["infl"]:
                unit = round(unit * fx["infl"][1]["factor"], 0)
            lines.append((4, code, q * (2 if fx["doc"] else 1), unit))
        nlab = poisson(rng, care[5] * (1.8 if admit else 1.0))
        lab_extra, img_extra = rng.random() < 0.6, rng.random() < 0.3
        if fx["lab"] and lab_extra:
            nlab += rng.randrange(2, 5)
        if fx["doc"]:
            nlab += 2
        for _ in range(nlab):
            code, price = self.cat.labs[rng.choice(basket["labs"])]
            lines.append((1, code, 1, r(price * fx["svc"])))
        nimg = poisson(rng, care[6]) + (1 if fx["lab"] and img_extra else 0)
        for _ in range(nimg):
            code, price = self.cat.imaging[rng.choice(basket["imaging"])]
            lines.append((2, code, 1, r(price * fx["svc"])))
        if (admit or care[0] in SURGICAL) and rng.random() < care[7]:
            code, price = self.cat.procs[rng.choice(basket["procs"])]
            lines.append((8, code, 1, r(price * fx["svc"])))
            code, price = self.cat.supplies[rng.choice(basket["supplies"])]
            lines.append((10, code, rng.randrange(1, 4), r(price * fx["drug"] * f["price"])))
        return lines


# --- XML ------------------------------------------------------------------
def xml1(v, f, lk, p, day, t_in):
    dx = v["dx"]
    los = v["los"]
    t_out = t_in + (los * 1440 + 60 if v["admit"] else v["minutes"])
    level = int(p["card"][2])
    rate = 100 if level in (1, 2) else 95 if level == 3 else 80
    total = v["total"]
    drugs = sum(q * pr for g, _, q, pr in v["lines"] if g == 4)
    supplies = sum(q * pr for g, _, q, pr in v["lines"] if g == 10)
    fund = round(total * rate / 100.0, 2)
    out_date = (dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=t_out)).date()
    kcb = "03" if v["admit"] else ("08" if v["chronic"] else "01")
    fields = [
        ("MA_LK", lk), ("STT", "1"), ("MA_BN", p["bn"]), ("HO_TEN", p["name"]), ("SO_CCCD", p["cccd"]),
        ("NGAY_SINH", p["birth"].strftime("%Y%m%d") + "0000"), ("GIOI_TINH", str(p["sex"])),
        ("DIA_CHI", p["addr"]), ("MA_THE_BHYT", p["card"]), ("MA_DKBD", f["code"]),
        ("MA_BENH_CHINH", dx[0]), ("MA_BENH_KT", ""), ("MA_DOITUONG_KCB", "1"),
        ("NGAY_VAO", ts(day, t_in)), ("NGAY_RA", ts(day, t_out)), ("SO_NGAY_DTRI", str(los)),
        ("KET_QUA_DTRI", "1"), ("MA_LOAI_RV", "1"), ("T_THUOC", money(drugs)), ("T_VTYT", money(supplies)),
        ("T_TONGCHI_BV", money(total)), ("T_TONGCHI_BH", money(total)), ("T_BNTT", "0"),
        ("T_BNCCT", money(round(total - fund, 2))), ("T_BHTT", money(fund)), ("T_NGUONKHAC", "0"),
        ("NAM_QT", str(out_date.year)), ("THANG_QT", str(out_date.month)), ("MA_LOAI_KCB", kcb),
        ("MA_KHOA", DEPT[dx[0][0]] if v["admit"] else "K01"), ("MA_CSKCB", f["code"]),
    ]
    return fields, out_date, rate


def element(name, fields, nl):
    inner = nl.join(f"<{k}>{val}</{k}>" if val != "" else f"<{k}/>" for k, val in fields)
    return f"<{name}>{nl}{inner}{nl}</{name}>"


def lines_xml(v, lk, f, day, t_in, rate, style, nl):
    drugs, svcs = [], []
    for i, (g, code, q, pr) in enumerate(v["lines"], start=1):
        amount = round(q * pr, 2)
        fund = round(amount * rate / 100.0, 2)
        common = [("MA_LK", lk), ("STT", str(i)), ("MA_NHOM", str(g)), ("SO_LUONG", str(q)), ("PHAM_VI", "1"),
                  ("MUC_HUONG", str(rate)), ("T_BHTT", money(fund)), ("T_BNCCT", money(round(amount - fund, 2))),
                  ("T_BNTT", "0"), ("MA_KHOA", "K01" if not v["admit"] else DEPT[v["dx"][0][0]]),
                  ("MA_BAC_SI", v["doctor"]), ("NGAY_YL", ts(day, t_in))]
        if g == 4:
            drugs.append(element("CHI_TIET_THUOC", common + [
                ("MA_THUOC", code), ("TEN_THUOC", f"Thuốc {code}"), ("DON_VI_TINH", "Viên"),
                ("DON_GIA", money(pr)), ("THANH_TIEN_BV", money(amount)), ("THANH_TIEN_BH", money(amount)),
                ("TYLE_TT_BH", "100")], nl))
        else:
            code_field = ("MA_VAT_TU", code) if g == 10 else ("MA_DICH_VU", code)
            svcs.append(element("CHI_TIET_DVKT", common + [
                code_field, ("DON_VI_TINH", "Lần"), ("DON_GIA_BV", money(pr)), ("DON_GIA_BH", money(pr)),
                ("THANH_TIEN_BV", money(amount)), ("THANH_TIEN_BH", money(amount)), ("TYLE_TT_BH", "100")], nl))
    if style == 3:  # inner roots without the CHITIEU wrapper
        x2 = f"<DSACH_CHI_TIET_THUOC>{nl}{nl.join(drugs)}{nl}</DSACH_CHI_TIET_THUOC>"
        x3 = f"<DSACH_CHI_TIET_DVKT>{nl}{nl.join(svcs)}{nl}</DSACH_CHI_TIET_DVKT>"
    else:
        x2 = f"<CHITIEU_CHITIET_THUOC><DSACH_CHI_TIET_THUOC>{nl}{nl.join(drugs)}{nl}</DSACH_CHI_TIET_THUOC></CHITIEU_CHITIET_THUOC>"
        x3 = f"<CHITIEU_CHITIET_DVKT_VTYT><DSACH_CHI_TIET_DVKT>{nl}{nl.join(svcs)}{nl}</DSACH_CHI_TIET_DVKT></CHITIEU_CHITIET_DVKT_VTYT>"
    return x2, x3


def b64(doc, wrap):
    s = base64.b64encode(doc.encode("utf-8")).decode("ascii")
    if wrap:
        s = "\r\n".join(s[i:i + 76] for i in range(0, len(s), 76))
    return s


def envelope(f, hosos, made):
    style = f["style"]
    nl = "\r\n" if style == 1 else ""
    decl = '<?xml version="1.0" encoding="utf-8"?>'
    parts = []
    for x1, x2, x3 in hosos:
        files = []
        for kind, doc in (("XML1", x1), ("XML2", x2), ("XML3", x3)):
            if style == 2:  # inline, no base64
                body = doc
            else:
                body = b64(decl + nl + doc, wrap=(style == 1))
            files.append(f"<FILEHOSO>{nl}<LOAIHOSO>{kind}</LOAIHOSO>{nl}<NOIDUNGFILE>{body}</NOIDUNGFILE>{nl}</FILEHOSO>")
        parts.append(f"<HOSO>{nl}{nl.join(files)}{nl}</HOSO>")
    head = "\ufeff" if style == 0 else ""
    return (f'{head}{decl}{nl}<GIAMDINHHS xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">{nl}'
            f"<THONGTINDONVI><MACSKCB>{f['code']}</MACSKCB></THONGTINDONVI>{nl}<THONGTINHOSO>{nl}"
            f"<NGAYLAP>{made.strftime('%Y%m%d')}</NGAYLAP>{nl}<SOLUONGHOSO>{len(hosos)}</SOLUONGHOSO>{nl}"
            f"<DANHSACHHOSO>{nl}{nl.join(parts)}{nl}</DANHSACHHOSO>{nl}</THONGTINHOSO>{nl}"
            f"<CHUKYDONVI>MIIB{made.toordinal()}</CHUKYDONVI>{nl}</GIAMDINHHS>")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--scale", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--year", type=int, default=2023)
    ap.add_argument("--years", type=int, default=1)
    ap.add_argument("--shape", choices=["smooth", "policy"], default=None)
    ap.add_argument("--anomaly-year", type=int, default=None)
    args = ap.parse_args()
    if args.years > 1 and args.shape is None:
        args.shape = "smooth"
    pv = Province(args.scale, args.seed, args.year, args.years, args.shape, args.anomaly_year)
    rng = pv.rng
    os.makedirs(os.path.join(args.out, "claims"), exist_ok=True)
    years = list(range(args.year, args.year + args.years))
    spend = {(f["code"], y): 0.0 for f in pv.facilities for y in years}
    nvis = 0
    for f in pv.facilities:
        weeks = {}
        d = os.path.join(args.out, "claims", f["code"])
        os.makedirs(d, exist_ok=True)

        def flush(before=None):
            """Write the weeks that can no longer receive a discharge."""
            for (y, w) in sorted(weeks):
                if before is not None and (y, w) >= before:
                    break
                made = dt.date.fromisocalendar(y, w, 7) + dt.timedelta(days=1)
                with open(os.path.join(d, f"{y}-W{w:02d}.xml"), "w", encoding="utf-8", newline="") as fh:
                    fh.write(envelope(f, weeks.pop((y, w)), made))

        day = pv.start
        while day <= pv.end:
            if day.day == 1:  # stays last < 90 days: older weeks are whole
                flush((day - dt.timedelta(days=90)).isocalendar()[:2])
            lam = f["per_day"] * args.scale * volume_factor(day, pv.start, pv.shape, f["growth"])
            dengue = season("dengue", day) - 1.0
            lam *= 1.0 + 0.02 * dengue  # the outbreak's extra patients
            vol = pv.active(f, day, "volume_inflation")
            extra = poisson(rng, lam * 0.35) if vol else 0
            ph = pv.active(f, day, "phantom_visits")
            fakes = poisson(rng, lam * 0.4) if ph else 0
            n = poisson(rng, lam)
            for k in range(n + extra + fakes):
                fake = k >= n + extra
                p = pv.patient(f, fake=fake)
                v = pv.visit(f, day)
                t_in = 420 + rng.randrange(600)
                lk = pv.lk()
                x1f, out_date, rate = xml1(v, f, lk, p, day, t_in)
                style = f["style"]
                nl = "\r\n" if style == 1 else ""
                x2, x3 = lines_xml(v, lk, f, day, t_in, rate, style, nl)
                x1 = element("TONG_HOP", x1f, nl)
                wk = out_date.isocalendar()[:2]
                weeks.setdefault(wk, []).append((x1, x2, x3))
                spend[f["code"], min(max(out_date.year, years[0]), years[-1])] += v["total"]
                nvis += 1
                # The fraud's excess: its own part of this visit.
                idx, ex = None, 0.0
                if fake:
                    idx, ex = ph[0], v["total"]
                elif k >= n and vol:
                    idx, ex = vol[0], v["total"]
                elif v["total"] > v["honest"]:
                    for typ in ("price_inflation", "lab_imaging_overuse", "prolonged_stay",
                                "unjustified_admission", "upcoding", "prescriber_overprescribing"):
                        a = pv.active(f, day, typ)
                        if a:
                            idx, ex = a[0], v["total"] - v["honest"]
                            break
                if idx is not None:
                    pv.excess[idx] = pv.excess.get(idx, 0.0) + ex
                dup = pv.active(f, day, "duplicate_claims")
                if dup and rng.random() < 0.08:
                    lk2 = pv.lk()
                    x1d, _, _ = xml1(v, f, lk2, p, day, t_in)
                    x2d, x3d = lines_xml(v, lk2, f, day, t_in, rate, style, nl)
                    weeks[wk].append((element("TONG_HOP", x1d, nl), x2d, x3d))
                    pv.excess[dup[0]] = pv.excess.get(dup[0], 0.0) + v["total"]
                    spend[f["code"], min(max(out_date.year, years[0]), years[-1])] += v["total"]
            day += dt.timedelta(days=1)
        flush()
    with open(os.path.join(args.out, "facilities.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["facility_code", "name", "province_code", "level", "grade", "ownership", "kind", "previous_code"])
        for f in pv.facilities:
            w.writerow([f["code"], f["name"], PROVINCE, f["level"], f["grade"], f["ownership"], f["fkind"], ""])
    with open(os.path.join(args.out, "budgets.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["facility_code", "year", "budget_vnd"])
        for y in years:
            for f in pv.facilities:
                w.writerow([f["code"], y, int(spend[f["code"], y] * rng.uniform(0.9, 1.05))])
    with open(os.path.join(args.out, "labels.csv"), "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["facility_code", "start", "end", "type", "benign", "true_excess_vnd"])
        for i, a in enumerate(pv.anomalies):
            w.writerow([a["fac"], a["start"], a["end"], a["type"], str(a["benign"]).lower(),
                        0 if a["benign"] else int(pv.excess.get(i, 0.0))])
    print(f"{len(pv.facilities)} facilities, {nvis} visits, {sum(spend.values()) / 1e9:.1f} bn VND → {args.out}")
    if len(years) > 1:
        for y in years:
            print(f"  {y}: {sum(v for (c, yy), v in spend.items() if yy == y) / 1e9:.2f} bn VND")


if __name__ == "__main__":
    main()
