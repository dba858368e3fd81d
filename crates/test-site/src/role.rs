//! The kinds of identity a console issues.

/// Who an identity is for (`identity add --role`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Station,
    Gateway,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Station => "station",
            Role::Gateway => "gateway",
        }
    }

    /// The settings file `identity add` writes into the kit.
    pub fn config_file(self) -> &'static str {
        match self {
            Role::Station => "cardstation.toml",
            Role::Gateway => "gateway.toml",
        }
    }
}
