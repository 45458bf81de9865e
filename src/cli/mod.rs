//! The `tks` command line (clap). Each subcommand lives in its own file; this one only
//! dispatches and prints the error chain once. Without a subcommand, `tks` runs `tks train`
//! with the defaults: the main job on the embedded digits.

mod train;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use train::TrainArgs;

#[derive(Parser)]
#[command(name = "tks", version, about = "Spiking neural networks with Temporal Knowledge Sharing", long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    /// The subcommand; none means `train` with defaults.
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Train a spiking network (default data: the embedded 8×8 digits) and evaluate it.
    Train(TrainArgs),
}

/// Parses the process arguments, runs the command, prints any error as `error: ...` on stderr.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Train(TrainArgs::default())) {
        Command::Train(args) => train::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
