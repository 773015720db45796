//! Subcommands of the `bhyt` binary: argument parsing, path resolution and
//! printing only; the work is in the library. What they share: the project
//! context (paths from `bhyt.toml`, overridden by flags), the console (human
//! text on stdout, or on stderr when `--json` puts one JSON object on
//! stdout), and the outcome that sets the exit code.

pub mod cluster;
pub mod demo;
pub mod docs;
pub mod evaluate;
pub mod forecast;
pub mod generate;
pub mod ingest;
pub mod project;
pub mod review;
#[cfg(feature = "serve")]
pub mod serve;
pub mod stages;
pub mod status;
pub mod store;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use bhyt::detect::Lang;
use bhyt::project::Project;

/// How a command ended, for the exit code (see `main.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything read was accepted.
    Done,
    /// The run completed, but part of its input was rejected or
    /// quarantined (exit code 2).
    Partial,
}

/// A mistake in how the command was called or configured (a flag, the
/// project file, a configuration file, the key): exit code 1, not 3.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Where human text goes: stdout, or stderr when stdout carries JSON.
#[derive(Debug, Clone, Copy)]
pub struct Console {
    pub json: bool,
}

impl Console {
    pub fn line(&self, a: std::fmt::Arguments) {
        if self.json {
            eprintln!("{a}");
        } else {
            println!("{a}");
        }
    }

    /// The one JSON object of a `--json` run (nothing otherwise).
    pub fn emit(&self, v: &serde_json::Value) -> Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(v)?);
        }
        Ok(())
    }
}

/// `say!(console, "...", args)`: a line of human text.
macro_rules! say {
    ($c:expr, $($t:tt)*) => { $c.line(format_args!($($t)*)) };
}
pub(crate) use say;

/// The project (if any) and the defaults of every path flag.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub project: Option<Project>,
    /// `--as-of-snapshot`: stages read the store as it was then.
    pub as_of_snapshot: Option<i64>,
}

impl Ctx {
    /// The project named by `--project` or `$BHYT_PROJECT`, else the one
    /// found from the current folder upwards.
    pub fn discover(explicit: Option<&Path>) -> Result<Ctx> {
        let env = std::env::var_os("BHYT_PROJECT").map(PathBuf::from);
        let project = match explicit.map(Path::to_path_buf).or(env) {
            Some(p) => {
                let file = if p.is_dir() {
                    p.join(bhyt::project::FILE_NAME)
                } else {
                    p
                };
                Some(Project::load(&file).map_err(|e| UsageError(e.to_string()))?)
            }
            None => Project::discover(Path::new(".")).map_err(|e| UsageError(e.to_string()))?,
        };
        Ok(Ctx {
            project,
            as_of_snapshot: None,
        })
    }

    /// The claims store: the flag, the project's, else `data`.
    pub fn data_dir(&self, flag: Option<PathBuf>) -> PathBuf {
        flag.or_else(|| self.project.as_ref().map(Project::data_dir))
            .unwrap_or_else(|| "data".into())
    }

    /// The store when one is known (flag or project), for stages that can
    /// run without it.
    pub fn data_dir_if_known(&self, flag: Option<PathBuf>) -> Option<PathBuf> {
        flag.or_else(|| self.project.as_ref().map(Project::data_dir))
    }

    /// An output folder of a stage: the flag, `<out_dir>/<stage>` of the
    /// project, else `out/<stage>`.
    pub fn out(&self, flag: Option<PathBuf>, stage: &str) -> PathBuf {
        flag.unwrap_or_else(|| self.out_root().join(stage))
    }

    fn out_root(&self) -> PathBuf {
        self.project
            .as_ref()
            .map_or_else(|| PathBuf::from("out"), Project::out_dir)
    }

    /// The features table the detector reads.
    pub fn features_table(&self, flag: Option<PathBuf>) -> PathBuf {
        flag.unwrap_or_else(|| {
            self.out_root()
                .join("features")
                .join("facility_period.parquet")
        })
    }

    pub fn alerts_db(&self, flag: Option<PathBuf>) -> PathBuf {
        flag.or_else(|| self.project.as_ref().map(Project::alerts_db))
            .unwrap_or_else(|| self.out_root().join("alerts.sqlite"))
    }

    /// The detector model that belongs with the data: the flag, the
    /// project's, under the store, or beside the features table when
    /// detection runs without the store. Never a file of the working
    /// folder, which would score one province with another's model.
    pub fn model(
        &self,
        flag: Option<PathBuf>,
        data_dir: Option<&Path>,
        features: &Path,
    ) -> PathBuf {
        if let Some(m) = flag {
            return m;
        }
        if let Some(p) = &self.project {
            return p.model();
        }
        default_model(data_dir, features)
    }

    pub fn lang(&self, flag: Option<Lang>) -> Lang {
        flag.or_else(|| self.project.as_ref().map(|p| p.file.lang))
            .unwrap_or_default()
    }

    /// A stage's configuration file: the flag, else the project's.
    pub fn config(
        &self,
        flag: Option<PathBuf>,
        pick: impl Fn(&bhyt::project::ProjectFile) -> &Option<PathBuf>,
    ) -> Option<PathBuf> {
        flag.or_else(|| {
            self.project
                .as_ref()
                .and_then(|p| p.optional(pick(&p.file)))
        })
    }

    pub fn key_file(&self, flag: Option<PathBuf>) -> Option<PathBuf> {
        self.config(flag, |f| &f.key_file)
    }

    /// The claims store, as of `--as-of-snapshot` when given.
    pub fn open_store(&self, dir: &Path) -> Result<bhyt::store::Store> {
        let s = bhyt::store::Store::open(dir)?;
        Ok(match self.as_of_snapshot {
            Some(id) => s.at_snapshot(id)?,
            None => s,
        })
    }

    pub fn capacity(&self, flag: Option<usize>) -> usize {
        flag.or_else(|| self.project.as_ref().map(|p| p.file.capacity))
            .unwrap_or(10)
    }
}

/// The model's place without a project: under the store, else beside the
/// features table.
pub fn default_model(data_dir: Option<&Path>, features: &Path) -> PathBuf {
    match data_dir {
        Some(d) => d.join("models").join("detector.json"),
        None => features
            .parent()
            .unwrap_or(Path::new("."))
            .join("models")
            .join("detector.json"),
    }
}

/// A typed configuration from a TOML file, or its defaults without one. A
/// file that does not parse is a usage error (exit code 1).
pub fn load_config<T: serde::de::DeserializeOwned + Default>(path: Option<&Path>) -> Result<T> {
    let Some(p) = path else {
        return Ok(T::default());
    };
    let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
    toml::from_str(&text).map_err(|e| UsageError(format!("{}: {e}", p.display())).into())
}

/// A spinner for a step without its own progress bar (hidden in `--json`
/// runs' stdout: indicatif draws on stderr).
pub fn spinner(step: &str) -> indicatif::ProgressBar {
    let b = indicatif::ProgressBar::new_spinner();
    b.set_message(step.to_string());
    b.enable_steady_tick(std::time::Duration::from_millis(120));
    b
}

/// Records a finished stage in the store's run log (for `bhyt status`);
/// a store that cannot record it does not fail the stage.
/// `--as-of-snapshot` of this process, for [`record_run`].
pub static AS_OF_SNAPSHOT: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();

pub fn record_run(
    data_dir: Option<&Path>,
    stage: &str,
    seconds: f64,
    inputs: serde_json::Value,
    summary: &serde_json::Value,
) {
    let Some(d) = data_dir.filter(|d| d.join("manifest.sqlite").exists()) else {
        return;
    };
    // The snapshot read is recorded with the inputs: `--as-of-snapshot`
    // reads the same tables again.
    let mut inputs = inputs;
    let r = bhyt::store::Manifest::open(&d.join("manifest.sqlite")).and_then(|m| {
        if inputs.get("store_snapshot").is_none() {
            let id = match AS_OF_SNAPSHOT.get().copied().flatten() {
                Some(id) => Some(id),
                None => m.snapshot().ok().map(|s| s.id),
            };
            if let Some(o) = inputs.as_object_mut() {
                o.insert("store_snapshot".into(), serde_json::json!(id));
            }
        }
        m.record_run(stage, seconds, &inputs, summary)
    });
    if let Err(e) = r {
        tracing::warn!("run of {stage} not recorded in {}: {e}", d.display());
    }
}

/// Fails with the next step to take when `dir` holds no claims store.
pub fn require_store(dir: &Path) -> Result<()> {
    anyhow::ensure!(
        dir.join("manifest.sqlite").exists(),
        "{} holds no claims store yet: run `bhyt ingest` (or `bhyt weekly`) first",
        dir.display()
    );
    Ok(())
}

/// A path as text for JSON.
pub fn p(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detector model belongs with the data it was fitted on, never
    /// to the folder the command happens to run in.
    #[test]
    fn the_default_model_lives_with_the_data() {
        let f = Path::new("/w/out/features/facility_period.parquet");
        assert_eq!(
            default_model(Some(Path::new("/w/data")), f),
            PathBuf::from("/w/data/models/detector.json")
        );
        assert_eq!(
            default_model(None, f),
            PathBuf::from("/w/out/features/models/detector.json")
        );
    }
}
