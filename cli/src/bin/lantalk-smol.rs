//! LanTalk on the smol event loop.
fn main() -> std::process::ExitCode {
    lantalk_cli::main::<lantalk_runtime_smol::SmolRuntime>("smol")
}
