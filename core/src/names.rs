//! Usernames: what is allowed and how uniqueness is judged.

/// Longest accepted username, in characters (LanTalk 2.0's limit).
pub const MAX_USERNAME_CHARS: usize = 24;

/// Checks a username, returning the reason a person would need to fix it.
pub fn validate_username(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Invalid username: it is empty.".to_string());
    }
    if name.chars().count() > MAX_USERNAME_CHARS {
        return Err(format!(
            "Invalid username: at most {MAX_USERNAME_CHARS} characters."
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
    {
        return Err(format!(
            "Invalid username: {bad:?} is not allowed; use ASCII letters (a-z, A-Z), digits, _ \
             and -."
        ));
    }
    Ok(())
}

/// The key under which a name is unique: "alice" and "Alice" are the same user.
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(validate_username("Al_ice-9").is_ok());
        assert!(validate_username(&"a".repeat(24)).is_ok());
        assert!(validate_username(&"a".repeat(25)).is_err());
        assert!(validate_username("").is_err());
        assert!(validate_username("al ice").is_err());
        assert!(validate_username("ålice").is_err());
        // "ö is not allowed; use letters" would be false: ö is a letter.
        let why = validate_username("Böb").unwrap_err();
        assert!(
            why.contains("'ö'") && why.contains("ASCII letters"),
            "{why}"
        );
        assert_eq!(name_key("ALice"), name_key("alICE"));
    }
}
