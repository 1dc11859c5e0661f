//! The alert vocabulary's two enums: `AlertState` (the state machine's states) and the sqlx,
//! serde and clap glue that lets `AlertState` and `Severity` travel as the lowercase text the
//! database stores (`alert.state`, `alert.severity`, CHECKed in migration 0001), the JSON and
//! the CLI print, instead of strings compared by hand.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};

use super::Severity;

/// An alert's state: pending -> firing -> acknowledged -> resolved, suppressed while a silence
/// matches. Declared in display order (the Alerts list sorts by it: firing first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// Firing and notified.
    Firing,
    /// Condition true, waiting for its `for` period.
    Pending,
    /// Firing, acknowledged by an operator.
    Acknowledged,
    /// Firing but matched by a silence.
    Suppressed,
    /// Ended (condition false for the resolve period, or resolved by hand).
    Resolved,
}

impl AlertState {
    pub const ALL: [AlertState; 5] = [
        AlertState::Firing,
        AlertState::Pending,
        AlertState::Acknowledged,
        AlertState::Suppressed,
        AlertState::Resolved,
    ];

    /// The name stored in `alert.state`.
    pub fn name(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Acknowledged => "acknowledged",
            AlertState::Suppressed => "suppressed",
            AlertState::Resolved => "resolved",
        }
    }

    /// Whether `self -> to` is a legal change (operators and the worker alike).
    pub fn may_become(self, to: AlertState) -> bool {
        use AlertState::*;
        matches!(
            (self, to),
            (Pending, Firing | Suppressed | Resolved)
                | (Firing, Suppressed | Acknowledged | Resolved)
                | (Suppressed, Firing | Resolved)
                | (Acknowledged, Resolved)
        )
    }

    /// Still open (anything but resolved).
    pub fn is_open(self) -> bool {
        self != AlertState::Resolved
    }
}

/// The `--state` flag lists the states in their lifecycle order (pending first), which is not
/// the declaration order the Alerts list sorts by; so the clap side is written out.
impl clap::ValueEnum for AlertState {
    fn value_variants<'a>() -> &'a [Self] {
        use AlertState::*;
        &[Pending, Firing, Acknowledged, Suppressed, Resolved]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        let help = match self {
            AlertState::Pending => "condition true, waiting for its `for` period",
            AlertState::Firing => "firing and notified",
            AlertState::Acknowledged => "firing, acknowledged by an operator",
            AlertState::Suppressed => "firing but matched by a silence",
            AlertState::Resolved => {
                "ended (condition false for the resolve period, or resolved by hand)"
            }
        };
        Some(clap::builder::PossibleValue::new(self.name()).help(help))
    }
}

impl fmt::Display for AlertState {
    // `pad`: the CLI's tables align it with `{:<12}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for AlertState {
    type Err = String;
    /// Exactly the stored names: a state is never typed loosely.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AlertState::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown alert state {s:?} (pending, firing, acknowledged, suppressed, resolved)"
                )
            })
    }
}

/// Both enums are stored as text: decoded from and bound as the text column's own type, so a
/// query reads them like the strings they were (and an unknown value is a decode error naming
/// it, not a silent default).
macro_rules! text_enum {
    ($t:ty) => {
        impl Type<Postgres> for $t {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }
            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl<'r> Decode<'r, Postgres> for $t {
            fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
                let s = <&str as Decode<Postgres>>::decode(value)?;
                Ok(s.parse::<$t>()?)
            }
        }

        impl Encode<'_, Postgres> for $t {
            fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
                <&str as Encode<Postgres>>::encode(self.name(), buf)
            }
        }
    };
}

text_enum!(AlertState);
text_enum!(Severity);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in AlertState::ALL {
            assert_eq!(s.name().parse::<AlertState>().unwrap(), s);
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
            assert_eq!(
                <AlertState as clap::ValueEnum>::to_possible_value(&s)
                    .unwrap()
                    .get_name(),
                s.name()
            );
        }
        for s in Severity::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
            assert_eq!(
                <Severity as clap::ValueEnum>::to_possible_value(&s)
                    .unwrap()
                    .get_name(),
                s.name()
            );
        }
        assert!("Firing".parse::<AlertState>().is_err());
    }

    #[test]
    fn legal_changes() {
        use AlertState::*;
        assert!(Firing.may_become(Acknowledged));
        assert!(!Acknowledged.may_become(Firing));
        assert!(!Resolved.may_become(Firing));
        assert!(Pending.may_become(Resolved));
    }
}
