//! `throome-cli`: see `throome::cli`.

fn main() -> std::process::ExitCode {
    throome::cli::main()
}
