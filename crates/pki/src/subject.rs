//! Distinguished names written the way operators write them: "CN=gw-17,O=Acme,C=DE".

use rcgen::{DistinguishedName, DnType};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubjectError {
    #[error("the subject is empty; give at least CN=…")]
    Empty,
    #[error("\"{0}\" is not ATTRIBUTE=value (e.g. CN=gateway-17)")]
    NotAPair(String),
    #[error("unknown attribute \"{0}\"; use CN, O, OU, C, ST, L, serialNumber, DC or UID")]
    UnknownAttribute(String),
    #[error("attribute {0} has an empty value")]
    EmptyValue(String),
    #[error("country (C) must be a two-letter code, not \"{0}\"")]
    BadCountry(String),
    #[error("the subject has an empty part (two commas in a row?)")]
    EmptyPart,
    #[error("multi-valued attributes (\"+\") are not supported: write {0} as separate parts, e.g. O=x,OU=y")]
    MultiValued(String),
    #[error("{attr} is {len} characters long; at most {max} are allowed (RFC 5280)")]
    TooLong {
        attr: String,
        len: usize,
        max: usize,
    },
}

/// Parse "CN=a,O=b" (commas inside values escaped as `\,`). Order is kept.
pub fn parse_subject(text: &str) -> Result<DistinguishedName, SubjectError> {
    let mut dn = DistinguishedName::new();
    let parts = split_unescaped(text.trim());
    if parts.iter().all(|p| p.trim().is_empty()) {
        return Err(SubjectError::Empty);
    }
    for part in parts {
        let part = part.trim();
        if part.is_empty() {
            return Err(SubjectError::EmptyPart);
        }
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| SubjectError::NotAPair(part.to_string()))?;
        let (key, value) = (key.trim(), value.trim());
        if value.is_empty() {
            return Err(SubjectError::EmptyValue(key.to_string()));
        }
        if value.contains('+') && value.contains('=') {
            return Err(SubjectError::MultiValued(part.to_string()));
        }
        // Upper bounds of X.520 / RFC 5280 appendix A.
        let max = match key.to_ascii_uppercase().as_str() {
            "CN" | "O" | "OU" | "SERIALNUMBER" => 64,
            "ST" | "L" => 128,
            _ => 255,
        };
        let len = value.chars().count();
        if len > max {
            return Err(SubjectError::TooLong {
                attr: key.to_string(),
                len,
                max,
            });
        }
        let ty = match key.to_ascii_uppercase().as_str() {
            "CN" => DnType::CommonName,
            "O" => DnType::OrganizationName,
            "OU" => DnType::OrganizationalUnitName,
            "C" => {
                if value.len() != 2 || !value.chars().all(|c| c.is_ascii_alphabetic()) {
                    return Err(SubjectError::BadCountry(value.to_string()));
                }
                DnType::CountryName
            }
            "ST" => DnType::StateOrProvinceName,
            "L" => DnType::LocalityName,
            "SERIALNUMBER" => DnType::CustomDnType(vec![2, 5, 4, 5]),
            "DC" => DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 25]),
            "UID" => DnType::CustomDnType(vec![0, 9, 2342, 19200300, 100, 1, 1]),
            _ => return Err(SubjectError::UnknownAttribute(key.to_string())),
        };
        dn.push(ty, value);
    }
    Ok(dn)
}

fn split_unescaped(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ',' => parts.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    parts.push(current);
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_subjects() {
        let dn = parse_subject("CN=gw-17, O=Acme\\, Inc., C=DE").unwrap();
        let items: Vec<_> = dn.iter().collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].0, &DnType::CommonName);
        match items[1].1 {
            rcgen::DnValue::Utf8String(s) => assert_eq!(s, "Acme, Inc."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_bad_subjects() {
        assert_eq!(parse_subject(""), Err(SubjectError::Empty));
        assert_eq!(
            parse_subject("gateway"),
            Err(SubjectError::NotAPair("gateway".into()))
        );
        assert_eq!(
            parse_subject("XX=1"),
            Err(SubjectError::UnknownAttribute("XX".into()))
        );
        assert_eq!(
            parse_subject("CN="),
            Err(SubjectError::EmptyValue("CN".into()))
        );
        assert_eq!(
            parse_subject("CN=a,C=Germany"),
            Err(SubjectError::BadCountry("Germany".into()))
        );
    }
}
