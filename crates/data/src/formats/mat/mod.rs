//! MATLAB 5.0 MAT-files: numeric, char, cell and struct arrays; the ST-MNIST `spiketrain`
//! layout and the Stanford Dogs / Stanford Cars split lists.
//!
//! [`parse`] is the generic MAT-5 reader (every variable, with the layout it follows);
//! [`datasets`] turns the variables of the MAT-files some data sets ship into samples or
//! split lists. Everything is re-exported here: `formats::mat::parse_mat`, …

pub mod datasets;
pub mod parse;

pub use datasets::*;
pub use parse::*;
