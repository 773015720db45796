//! `bhyt completions SHELL` and `bhyt man`: generated from the one clap
//! definition, so they never drift from the flags.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use super::Outcome;

#[derive(Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

pub fn completions(a: CompletionsArgs, mut cmd: clap::Command) -> Result<Outcome> {
    clap_complete::generate(a.shell, &mut cmd, "bhyt", &mut std::io::stdout());
    Ok(Outcome::Done)
}

#[derive(Args)]
pub struct ManArgs {
    /// Write one page per command (bhyt.1, bhyt-ingest.1, …) into this
    /// folder instead of printing the main page.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn man(a: ManArgs, cmd: clap::Command) -> Result<Outcome> {
    match a.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing pages into {}", dir.display()))?;
            println!("man pages → {}", dir.display());
        }
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
    }
    Ok(Outcome::Done)
}
