//! Subject templates: the certificate subject an operator configures once, with
//! `{serial}` and `{guid}` filled in from each card.

/// Only `{serial}` and `{guid}` may appear in braces.
pub fn check(template: &str) -> Result<(), String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| "the subject has a \"{\" without \"}\"".to_string())?;
        let name = &after[..close];
        if name != "serial" && name != "guid" {
            return Err(format!(
                "unknown placeholder {{{name}}} in the subject; use {{serial}} or {{guid}}"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// The subject for a card: `{serial}` (or "unknown") and `{guid}` filled in.
pub fn fill(template: &str, serial: Option<u32>, guid_hex: &str) -> String {
    template
        .replace(
            "{serial}",
            &serial
                .map(|s| s.to_string())
                .unwrap_or_else(|| "unknown".into()),
        )
        .replace("{guid}", guid_hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_in_card_values() {
        assert_eq!(fill("CN=dev {serial} {guid}", Some(7), "AB"), "CN=dev 7 AB");
        assert_eq!(fill("CN={serial}", None, "AB"), "CN=unknown");
    }

    #[test]
    fn unknown_and_unclosed_placeholders_are_refused() {
        assert!(check("CN={nope}").unwrap_err().contains("{nope}"));
        assert!(check("CN={guid").is_err());
        assert!(check("CN=gw {serial} {guid}").is_ok());
    }
}
