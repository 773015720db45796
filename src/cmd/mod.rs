//! Subcommands of the `bhyt` binary that outgrew `main.rs`: argument
//! parsing and printing only; the work is in the library.

pub mod evaluate;
pub mod forecast;
