//! Reference tables kept as data under `datasets/reference/`: province codes
//! (pre-2025 code → current province), MA_NHOM service groups → category, and
//! MA_LOAI_KCB visit types → visit-type group.
//!
//! The CSV files are compiled into the binary so that it runs from anywhere,
//! and can be overridden with a directory holding files of the same names
//! (a province merger or a new MA_NHOM code is a data change, not a release).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("reference table {file}: {source}")]
    Csv {
        file: String,
        #[source]
        source: csv::Error,
    },
    #[error("reference table {file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
}

const PROVINCES_CSV: &str = include_str!("../datasets/reference/provinces.csv");
const SERVICE_GROUPS_CSV: &str = include_str!("../datasets/reference/service_groups.csv");
const VISIT_TYPES_CSV: &str = include_str!("../datasets/reference/visit_types.csv");
const ICD10_CHAPTERS_CSV: &str = include_str!("../datasets/reference/icd10_chapters.csv");
const DRUG_CLASSES_CSV: &str = include_str!("../datasets/reference/drug_classes.csv");
const DEPARTMENTS_CSV: &str = include_str!("../datasets/reference/departments.csv");

/// A department code (MA_KHOA) with its names, for reasons and reports.
#[derive(Debug, Clone, Deserialize)]
pub struct Department {
    pub code: String,
    pub name_vi: String,
    pub name_en: String,
}

/// Department names (bundled table: the codes the generator writes; a
/// code not in it is shown as it is), parsed once.
pub fn departments() -> &'static [Department] {
    static TABLE: std::sync::OnceLock<Vec<Department>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        parse("departments.csv", DEPARTMENTS_CSV).expect("bundled departments parse")
    })
}

/// An ICD-10 chapter as a range of 3-character categories.
#[derive(Debug, Clone, Deserialize)]
pub struct Icd10Chapter {
    pub chapter: String,
    pub first: String,
    pub last: String,
    pub name_vi: String,
    pub name_en: String,
}

/// A rule putting drugs into a class reviewers watch (originator brands,
/// adjuvant drugs, vitamins and minerals).
#[derive(Debug, Clone, Deserialize)]
pub struct DrugClassRule {
    /// `name`: case-insensitive substring of the drug name; `code`: exact MA_THUOC.
    pub field: String,
    pub pattern: String,
    pub class: String,
    #[serde(default)]
    pub note: String,
}

/// ICD-10 chapters (bundled table).
pub fn icd10_chapters() -> Vec<Icd10Chapter> {
    parse("icd10_chapters.csv", ICD10_CHAPTERS_CSV).expect("bundled ICD-10 chapters parse")
}

/// Drug class rules (bundled table, or `drug_classes.csv` in a reference directory).
pub fn drug_classes(dir: Option<&Path>) -> Result<Vec<DrugClassRule>, ReferenceError> {
    if let Some(d) = dir {
        let p = d.join("drug_classes.csv");
        if p.exists() {
            let text = std::fs::read_to_string(&p).map_err(|source| ReferenceError::Io {
                file: p.display().to_string(),
                source,
            })?;
            return parse("drug_classes.csv", &text);
        }
    }
    parse("drug_classes.csv", DRUG_CLASSES_CSV)
}

/// Chapter of an ICD-10 code (by its first 3 characters), if any.
pub fn chapter_of<'a>(chapters: &'a [Icd10Chapter], code: &str) -> Option<&'a Icd10Chapter> {
    let c3: String = code
        .chars()
        .take(3)
        .collect::<String>()
        .to_ascii_uppercase();
    chapters
        .iter()
        .find(|ch| c3.as_str() >= ch.first.as_str() && c3.as_str() <= ch.last.as_str())
}

#[derive(Debug, Clone, Deserialize)]
pub struct Province {
    /// Code as printed on cards and facility codes (may be pre-2025).
    pub code: String,
    pub name: String,
    /// Code of the province it belongs to now.
    pub current_code: String,
    pub current_name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServiceGroup {
    pub ma_nhom: i32,
    /// Normalised category: exam, bed, lab, imaging, functional_test,
    /// procedure, drug, supply, blood, transport, other.
    pub category: String,
    pub name_vi: String,
    pub name_en: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct VisitType {
    /// MA_LOAI_KCB under Decision 130 ("01".."10").
    pub code: String,
    /// outpatient_exam, outpatient_treatment, inpatient, day_inpatient, other.
    pub group: String,
    pub inpatient: bool,
    pub name_vi: String,
    pub name_en: String,
}

/// All reference tables the ingest needs.
#[derive(Debug, Clone)]
pub struct Reference {
    provinces: HashMap<String, Province>,
    service_groups: HashMap<i32, ServiceGroup>,
    visit_types: HashMap<String, VisitType>,
}

fn parse<T: for<'de> Deserialize<'de>>(file: &str, text: &str) -> Result<Vec<T>, ReferenceError> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|source| ReferenceError::Csv {
            file: file.to_string(),
            source,
        })
}

impl Reference {
    /// The tables shipped in `datasets/reference/`.
    pub fn builtin() -> Self {
        Self::from_texts(PROVINCES_CSV, SERVICE_GROUPS_CSV, VISIT_TYPES_CSV)
            .expect("bundled reference tables parse")
    }

    /// Loads tables from a directory; files that are absent fall back to the
    /// bundled ones.
    pub fn from_dir(dir: &Path) -> Result<Self, ReferenceError> {
        let read = |name: &str, default: &str| -> Result<String, ReferenceError> {
            let p = dir.join(name);
            if p.exists() {
                std::fs::read_to_string(&p).map_err(|source| ReferenceError::Io {
                    file: p.display().to_string(),
                    source,
                })
            } else {
                Ok(default.to_string())
            }
        };
        Self::from_texts(
            &read("provinces.csv", PROVINCES_CSV)?,
            &read("service_groups.csv", SERVICE_GROUPS_CSV)?,
            &read("visit_types.csv", VISIT_TYPES_CSV)?,
        )
    }

    fn from_texts(p: &str, s: &str, v: &str) -> Result<Self, ReferenceError> {
        let provinces = parse::<Province>("provinces.csv", p)?
            .into_iter()
            .map(|r| (r.code.clone(), r))
            .collect();
        let service_groups = parse::<ServiceGroup>("service_groups.csv", s)?
            .into_iter()
            .map(|r| (r.ma_nhom, r))
            .collect();
        let visit_types = parse::<VisitType>("visit_types.csv", v)?
            .into_iter()
            .map(|r| (r.code.clone(), r))
            .collect();
        Ok(Reference {
            provinces,
            service_groups,
            visit_types,
        })
    }

    /// Looks up a 2-digit province code (old or current).
    pub fn province(&self, code: &str) -> Option<&Province> {
        self.provinces.get(code)
    }

    /// Normalised category of a MA_NHOM code; unknown codes are "other".
    pub fn category(&self, ma_nhom: i32) -> &str {
        self.service_groups
            .get(&ma_nhom)
            .map(|g| g.category.as_str())
            .unwrap_or("other")
    }

    pub fn is_known_group(&self, ma_nhom: i32) -> bool {
        self.service_groups.contains_key(&ma_nhom)
    }

    /// Visit type for a MA_LOAI_KCB value; 4210's one-digit codes (1, 2, 3)
    /// map onto 130's two-digit ones.
    pub fn visit_type(&self, code: &str) -> Option<&VisitType> {
        if code.len() == 1 {
            let padded = format!("0{code}");
            return self.visit_types.get(&padded);
        }
        self.visit_types.get(code)
    }

    pub fn provinces(&self) -> impl Iterator<Item = &Province> {
        self.provinces.values()
    }

    pub fn service_groups(&self) -> impl Iterator<Item = &ServiceGroup> {
        self.service_groups.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_provinces_map_to_current() {
        let r = Reference::builtin();
        assert_eq!(r.province("93").unwrap().current_code, "92");
        assert_eq!(r.province("94").unwrap().current_name, "Cần Thơ");
        assert_eq!(r.province("01").unwrap().current_code, "01");
        assert!(r.province("99").is_none());
        assert_eq!(r.provinces().count(), 63);
    }

    #[test]
    fn icd10_chapters_cover_codes() {
        let ch = icd10_chapters();
        assert_eq!(chapter_of(&ch, "J44").unwrap().chapter, "X");
        assert_eq!(chapter_of(&ch, "s52.1").unwrap().chapter, "XIX");
        assert_eq!(chapter_of(&ch, "T98").unwrap().chapter, "XIX");
        assert_eq!(chapter_of(&ch, "C34").unwrap().chapter, "II");
        assert!(chapter_of(&ch, "999").is_none());
        assert!(drug_classes(None)
            .unwrap()
            .iter()
            .any(|r| r.class == "adjuvant"));
    }

    #[test]
    fn service_groups_and_visit_types() {
        let r = Reference::builtin();
        assert_eq!(r.category(15), "bed");
        assert_eq!(r.category(4), "drug");
        assert_eq!(r.category(99), "other");
        assert_eq!(r.visit_type("3").unwrap().group, "inpatient");
        assert_eq!(r.visit_type("01").unwrap().group, "outpatient_exam");
        assert!(r.visit_type("11").is_none());
    }
}
