//! The `tks` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    tks::cli::main()
}
