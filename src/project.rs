//! A project folder: `bhyt.toml` says where one province's (or one
//! office's) store, inputs and outputs live, so every stage finds the same
//! files wherever it is started from — found from the current folder
//! upwards, as cargo finds `Cargo.toml`. Paths in the file are relative to
//! its folder. Every path flag of the command line still overrides it.
//!
//! The file names the key file's location, never the key: the key stays
//! out of every folder that is copied, shared or versioned.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::Lang;

/// Name of the project file.
pub const FILE_NAME: &str = "bhyt.toml";

/// Errors of the project layer.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{0} already holds a project file; edit it, or choose another folder")]
    Exists(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProjectError + '_ {
    move |source| ProjectError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The contents of `bhyt.toml`. Every key is optional; the defaults are
/// those `bhyt init` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectFile {
    /// The claims store. Default `data`.
    pub data_dir: PathBuf,
    /// Where new claims files are put (XML envelopes, CSV, Parquet; plain,
    /// .gz, .zip): `bhyt weekly` ingests what is new there. Default `incoming`.
    pub claims_dir: PathBuf,
    /// Facility registry CSV, read on each ingest when set.
    pub registry: Option<PathBuf>,
    /// Yearly budgets CSV, read on each ingest when set.
    pub budgets: Option<PathBuf>,
    /// Outputs: `features/`, `detect/`, `forecast/`, `report/` under it.
    /// Default `out`.
    pub out_dir: PathBuf,
    /// Alert lifecycle database. Default `<out_dir>/alerts.sqlite`.
    pub alerts_db: Option<PathBuf>,
    /// Detector model. Default `<data_dir>/models/detector.json`: the model
    /// belongs with the data it was fitted on.
    pub model: Option<PathBuf>,
    /// File holding the pseudonymisation key (its location only; the key
    /// itself never goes in this file). Default: none — the key comes from
    /// `$BHYT_PSEUDONYM_KEY` or `$BHYT_PSEUDONYM_KEY_FILE`.
    pub key_file: Option<PathBuf>,
    /// Language of reasons and pages. Default `vi`.
    pub lang: Lang,
    /// Audits the inspection team can do in a round. Default 10.
    pub capacity: usize,
    /// Stage configurations (TOML), when not the defaults.
    pub features_config: Option<PathBuf>,
    pub detect_config: Option<PathBuf>,
    pub forecast_config: Option<PathBuf>,
}

impl Default for ProjectFile {
    fn default() -> Self {
        ProjectFile {
            data_dir: "data".into(),
            claims_dir: "incoming".into(),
            registry: None,
            budgets: None,
            out_dir: "out".into(),
            alerts_db: None,
            model: None,
            key_file: None,
            lang: Lang::Vi,
            capacity: 10,
            features_config: None,
            detect_config: None,
            forecast_config: None,
        }
    }
}

/// The text `bhyt init` writes: every key with its default, commented.
const TEMPLATE: &str = r#"# bhyt project file (`bhyt init`). Every stage started in this folder or
# below reads it; paths are relative to this folder; a command-line flag
# overrides any of them.

# The claims store.
data_dir = "data"
# Where new claims files are put: `bhyt weekly` ingests what is new there.
claims_dir = "incoming"
# Facility registry and yearly budgets (CSV), read on each ingest.
# registry = "reference/facilities.csv"
# budgets = "reference/budgets.csv"
# Outputs: features/, detect/, forecast/, report/ under it.
out_dir = "out"
# Alert lifecycle database (default: out_dir/alerts.sqlite).
# alerts_db = "out/alerts.sqlite"
# Detector model (default: data_dir/models/detector.json).
# model = "data/models/detector.json"
# Where the pseudonymisation key is kept: its location, never the key.
# Without it the key comes from $BHYT_PSEUDONYM_KEY or $BHYT_PSEUDONYM_KEY_FILE.
# key_file = "/etc/bhyt/pseudonym.key"
# Language of reasons and pages: vi or en.
lang = "vi"
# Audits the inspection team can do in a round.
capacity = 10
# Stage configurations, when not the defaults (see models/*.toml).
# features_config = "features.toml"
# detect_config = "detector.toml"
# forecast_config = "forecast.toml"
"#;

/// A project found on disk: its folder and its file.
#[derive(Debug, Clone)]
pub struct Project {
    /// The folder holding `bhyt.toml`; relative paths start here.
    pub root: PathBuf,
    pub file: ProjectFile,
}

impl Project {
    /// Writes a new project in `dir` (created if needed): `bhyt.toml` with
    /// the defaults and the folders it names. Refuses to overwrite.
    pub fn init(dir: &Path) -> Result<Project, ProjectError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let path = dir.join(FILE_NAME);
        if path.exists() {
            return Err(ProjectError::Exists(path.display().to_string()));
        }
        crate::store::write_atomic(&path, TEMPLATE.as_bytes()).map_err(|e| ProjectError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let p = Project::load(&path)?;
        for d in [p.data_dir(), p.claims_dir(), p.out_dir()] {
            std::fs::create_dir_all(&d).map_err(io(&d))?;
        }
        Ok(p)
    }

    /// Reads a project file.
    pub fn load(path: &Path) -> Result<Project, ProjectError> {
        let text = std::fs::read_to_string(path).map_err(io(path))?;
        let file: ProjectFile = toml::from_str(&text).map_err(|e| ProjectError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let root = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(Project { root, file })
    }

    /// The project whose `bhyt.toml` is in `start` or the nearest folder
    /// above it; None when there is none.
    pub fn discover(start: &Path) -> Result<Option<Project>, ProjectError> {
        let start = std::path::absolute(start).map_err(io(start))?;
        for dir in start.ancestors() {
            let f = dir.join(FILE_NAME);
            if f.is_file() {
                return Project::load(&f).map(Some);
            }
        }
        Ok(None)
    }

    /// A path of the file, made absolute against the project's folder.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.root.join(p)
        }
    }

    pub fn file_path(&self) -> PathBuf {
        self.root.join(FILE_NAME)
    }
    pub fn data_dir(&self) -> PathBuf {
        self.resolve(&self.file.data_dir)
    }
    pub fn claims_dir(&self) -> PathBuf {
        self.resolve(&self.file.claims_dir)
    }
    pub fn out_dir(&self) -> PathBuf {
        self.resolve(&self.file.out_dir)
    }
    pub fn alerts_db(&self) -> PathBuf {
        match &self.file.alerts_db {
            Some(p) => self.resolve(p),
            None => self.out_dir().join("alerts.sqlite"),
        }
    }
    pub fn model(&self) -> PathBuf {
        match &self.file.model {
            Some(p) => self.resolve(p),
            None => self.data_dir().join("models").join("detector.json"),
        }
    }
    /// An optional path of the file, resolved.
    pub fn optional(&self, p: &Option<PathBuf>) -> Option<PathBuf> {
        p.as_deref().map(|p| self.resolve(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The template `bhyt init` writes parses to the documented defaults,
    /// so the file a user edits says what the code does.
    #[test]
    fn the_template_is_the_defaults() {
        let f: ProjectFile = toml::from_str(TEMPLATE).unwrap();
        assert_eq!(f, ProjectFile::default());
    }

    #[test]
    fn found_from_a_subfolder_and_paths_resolved_from_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let p = Project::init(&dir.path().join("p")).unwrap();
        assert!(p.data_dir().is_dir() && p.claims_dir().is_dir());
        let deep = dir.path().join("p/a/b");
        std::fs::create_dir_all(&deep).unwrap();
        let found = Project::discover(&deep).unwrap().expect("found upwards");
        assert_eq!(found.data_dir(), p.data_dir());
        assert_eq!(
            found.alerts_db(),
            found.root.join("out").join("alerts.sqlite")
        );
        assert!(Project::discover(dir.path()).unwrap().is_none());
        // A second init does not overwrite the first.
        assert!(matches!(
            Project::init(&dir.path().join("p")),
            Err(ProjectError::Exists(_))
        ));
        // An unknown key is an error naming the file, not a silent default.
        std::fs::write(dir.path().join("p/bhyt.toml"), "data_dri = \"x\"\n").unwrap();
        let e = Project::discover(&deep).unwrap_err().to_string();
        assert!(e.contains("bhyt.toml") && e.contains("data_dri"), "{e}");
    }
}
