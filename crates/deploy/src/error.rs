//! The deployment crate's error type: every variant names the file, node, layer or field.

use std::path::PathBuf;

use thiserror::Error;

/// A NIR file or graph that cannot be read, written, exported or imported.
#[derive(Debug, Error)]
pub enum NirError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a NIR graph HDF5 can give us (truncated, garbage, missing `/node`).
    #[error("{path}: not a readable NIR file: {what}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// One node of the graph is malformed or has no `tks` equivalent.
    #[error("{origin}: node `{node}` ({kind}): {what}")]
    Node {
        /// The file (or `graph`).
        origin: String,
        /// The node's name.
        node: String,
        /// Its NIR type.
        kind: String,
        /// What is wrong.
        what: String,
    },
    /// The graph as a whole (edges, structure) is not something `tks` can run.
    #[error("{origin}: {what}")]
    Graph {
        /// The file (or `graph`).
        origin: String,
        /// What is wrong.
        what: String,
    },
    /// A layer of a `tks` model that NIR cannot express.
    #[error("cannot export layer `{layer}` to NIR: {why}")]
    Unsupported {
        /// The layer's path in the model (`block1.neuron`, `stages.0.pool`, …).
        layer: String,
        /// Why.
        why: String,
    },
    /// A configuration error (the imported model's configuration).
    #[error(transparent)]
    Config(#[from] tks_core::error::ConfigError),
    /// Writing the run directory failed.
    #[error(transparent)]
    Checkpoint(#[from] tks_train::train::checkpoint::CheckpointError),
}
