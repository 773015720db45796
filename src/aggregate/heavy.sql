-- The heavy step of the features stage, as SQL: claims → per-visit totals →
-- facility-month aggregates, and the global norms they are measured against
-- (case-mix cells, item reference prices). Defined once here; run by
-- DataFusion in-process or on a Ballista cluster (`bhyt aggregate`).
--
-- Tables (registered by the engine from one store snapshot):
--   visits, lines, superseded  the Delta tables' files at that snapshot;
--   facilities                  the registry (facility_code, level).
-- Placeholders: {superseded} is `superseded`, or an empty select when no
-- claim was ever resubmitted; {dx_chapter} is the ICD-10 chapter of `dx3`
-- from the bundled reference table; {k} the case-mix shrinkage weight.
--
-- `-- view: name` sections become common table expressions of every query
-- (the optimiser drops the unused ones); `-- query: name` sections are the
-- outputs. Keep to SQL that both DataFusion and Spark SQL read.

-- view: current_visits
SELECT v.facility_code, v.visit_key, v.patient_key, v.total_cost,
       COALESCE(v.fund_paid, 0.0) AS fund_paid, v.inpatient, v.los_days,
       v.visit_group, v.dx3, v.age_band, v.out_of_province,
       CAST(date_part('year', v.discharge_date) AS INT) AS year,
       CAST(date_part('month', v.discharge_date) AS INT) AS month,
       COALESCE(f.level, 'unknown') AS level,
       {dx_chapter} AS dx_chapter
FROM visits v
LEFT JOIN facilities f ON v.facility_code = f.facility_code
WHERE NOT EXISTS (SELECT 1 FROM {superseded} s WHERE s.visit_key = v.visit_key)

-- view: current_lines
SELECT l.visit_key, l.facility_code, l.category, l.item_code, l.amount, l.quantity,
       CAST(date_part('year', l.discharge_date) AS INT) AS year,
       CAST(date_part('month', l.discharge_date) AS INT) AS month
FROM lines l
WHERE NOT EXISTS (SELECT 1 FROM {superseded} s WHERE s.visit_key = l.visit_key)

-- view: visit_totals
SELECT visit_key,
       SUM(CASE WHEN category = 'bed' THEN amount ELSE 0.0 END) AS bed_amount,
       SUM(CASE WHEN category = 'drug' THEN amount ELSE 0.0 END) AS drug_amount,
       SUM(CASE WHEN category = 'supply' THEN amount ELSE 0.0 END) AS supply_amount,
       SUM(CASE WHEN category = 'lab' THEN amount ELSE 0.0 END) AS lab_amount,
       SUM(CASE WHEN category = 'imaging' THEN amount ELSE 0.0 END) AS imaging_amount,
       SUM(CASE WHEN category = 'procedure' THEN amount ELSE 0.0 END) AS procedure_amount
FROM current_lines
GROUP BY visit_key

-- view: facility_item_prices
SELECT facility_code, item_code, year,
       CASE WHEN SUM(quantity) > 0 THEN SUM(amount) / SUM(quantity) END AS facility_price
FROM current_lines
WHERE category IN ('drug', 'supply')
GROUP BY facility_code, item_code, year

-- view: item_reference_prices
SELECT item_code, year, median(facility_price) AS reference_price,
       COUNT(facility_price) AS facilities
FROM facility_item_prices
GROUP BY item_code, year

-- view: cells_group
SELECT level, visit_group, AVG(total_cost) AS m0
FROM current_visits GROUP BY level, visit_group

-- view: cells_chapter
SELECT c.level, c.visit_group, c.dx_chapter, c.age_band,
       (c.n * COALESCE(c.m, 0.0) + {k} * g.m0) / (c.n + {k}) AS m1
FROM (SELECT level, visit_group, dx_chapter, age_band,
             AVG(total_cost) AS m, CAST(COUNT(total_cost) AS DOUBLE) AS n
      FROM current_visits GROUP BY level, visit_group, dx_chapter, age_band) c
JOIN cells_group g ON c.level = g.level AND c.visit_group = g.visit_group

-- view: cells_diagnosis
SELECT c.level, c.visit_group, c.dx_chapter, c.dx3, c.age_band, c.n,
       (c.n * COALESCE(c.m, 0.0) + {k} * p.m1) / (c.n + {k}) AS expected_cost
FROM (SELECT level, visit_group, dx_chapter, dx3, age_band,
             AVG(total_cost) AS m, CAST(COUNT(total_cost) AS DOUBLE) AS n
      FROM current_visits GROUP BY level, visit_group, dx_chapter, dx3, age_band) c
JOIN cells_chapter p ON c.level = p.level AND c.visit_group = p.visit_group
     AND c.dx_chapter = p.dx_chapter AND c.age_band = p.age_band

-- view: visits_expected
SELECT v.*, c.expected_cost
FROM current_visits v
LEFT JOIN cells_diagnosis c ON v.level = c.level AND v.visit_group = c.visit_group
     AND v.dx3 = c.dx3 AND v.age_band = c.age_band

-- view: facility_month_visits
SELECT v.facility_code, v.year, v.month,
       COUNT(*) AS visits,
       SUM(CASE WHEN v.inpatient THEN 0 ELSE 1 END) AS outpatient_visits,
       SUM(CASE WHEN v.inpatient THEN 1 ELSE 0 END) AS inpatient_episodes,
       COUNT(DISTINCT v.patient_key) AS patients,
       SUM(v.total_cost) AS total_cost,
       SUM(v.fund_paid) AS fund_paid,
       SUM(CASE WHEN v.inpatient THEN v.total_cost ELSE 0.0 END) AS inpatient_cost,
       SUM(CASE WHEN v.inpatient THEN CAST(v.los_days AS BIGINT) ELSE 0 END) AS bed_days,
       SUM(CASE WHEN v.inpatient THEN COALESCE(t.bed_amount, 0.0) ELSE 0.0 END) AS inpatient_bed_amount,
       SUM(COALESCE(t.drug_amount, 0.0)) AS drug_amount,
       SUM(COALESCE(t.supply_amount, 0.0)) AS supply_amount,
       SUM(COALESCE(t.lab_amount, 0.0)) AS lab_amount,
       SUM(COALESCE(t.imaging_amount, 0.0)) AS imaging_amount,
       SUM(COALESCE(t.procedure_amount, 0.0)) AS procedure_amount,
       SUM(CASE WHEN v.out_of_province THEN 1 ELSE 0 END) AS oop_visits,
       SUM(CASE WHEN v.out_of_province THEN v.total_cost ELSE 0.0 END) AS oop_cost,
       SUM(v.expected_cost) AS expected_cost
FROM visits_expected v
LEFT JOIN visit_totals t ON v.visit_key = t.visit_key
GROUP BY v.facility_code, v.year, v.month

-- view: facility_month_prices
SELECT l.facility_code, l.year, l.month, SUM(l.amount) AS goods_amount,
       SUM(l.quantity * p.reference_price) AS goods_at_reference
FROM current_lines l
LEFT JOIN item_reference_prices p ON l.item_code = p.item_code AND l.year = p.year
WHERE l.category IN ('drug', 'supply')
GROUP BY l.facility_code, l.year, l.month

-- query: facility_month
SELECT a.facility_code, a.year, a.month,
       CAST(a.visits AS BIGINT) AS visits,
       CAST(a.outpatient_visits AS BIGINT) AS outpatient_visits,
       CAST(a.inpatient_episodes AS BIGINT) AS inpatient_episodes,
       CAST(a.patients AS BIGINT) AS patients,
       a.total_cost, a.fund_paid, a.inpatient_cost,
       CAST(a.bed_days AS BIGINT) AS bed_days,
       a.inpatient_bed_amount, a.drug_amount, a.supply_amount, a.lab_amount,
       a.imaging_amount, a.procedure_amount,
       CAST(a.oop_visits AS BIGINT) AS oop_visits, a.oop_cost, a.expected_cost,
       CASE WHEN p.goods_at_reference > 0 THEN p.goods_amount / p.goods_at_reference END
           AS drug_supply_price_index
FROM facility_month_visits a
LEFT JOIN facility_month_prices p
  ON a.facility_code = p.facility_code AND a.year = p.year AND a.month = p.month
ORDER BY a.facility_code, a.year, a.month

-- query: item_reference_prices
SELECT item_code, year, reference_price, CAST(facilities AS BIGINT) AS facilities
FROM item_reference_prices
ORDER BY item_code, year

-- query: casemix_cells
SELECT level, visit_group, dx_chapter, dx3, age_band, CAST(n AS BIGINT) AS visits, expected_cost
FROM cells_diagnosis
ORDER BY level, visit_group, dx_chapter, dx3, age_band
