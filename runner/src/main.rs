//! The `sluice` binary. Everything lives in the library; see `sluice::cli` for the
//! commands and exit codes.

fn main() -> std::process::ExitCode {
    sluice::cli::main()
}
