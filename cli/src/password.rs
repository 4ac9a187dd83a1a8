//! Getting a password without ever putting it on the command line, where
//! other users of the machine could read it from the process list.

use std::io::IsTerminal;

use crate::args::PasswordArgs;

/// The password given by `--password-env` or `--password-file`, if any.
pub fn from_args(args: &PasswordArgs) -> Result<Option<String>, String> {
    if let Some(var) = &args.password_env {
        return match std::env::var(var) {
            Ok(pw) if !pw.is_empty() => Ok(Some(pw)),
            Ok(_) => Err(format!("the environment variable {var} is empty")),
            Err(_) => Err(format!("the environment variable {var} is not set")),
        };
    }
    if let Some(path) = &args.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
        let pw = text.lines().next().unwrap_or("").to_string();
        if pw.is_empty() {
            return Err(format!("the password file {} is empty", path.display()));
        }
        return Ok(Some(pw));
    }
    Ok(None)
}

/// Asks at a hidden prompt when standard input is a terminal. `None` when it
/// is not, or the answer was empty.
pub fn prompt(question: &str) -> Option<String> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    match rpassword::prompt_password(question) {
        Ok(pw) if !pw.is_empty() => Some(pw),
        _ => None,
    }
}
