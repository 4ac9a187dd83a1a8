//! LanTalk on blocking std::net sockets and threads.
fn main() -> std::process::ExitCode {
    lantalk_cli::main::<lantalk_runtime_std::StdRuntime>("std")
}
