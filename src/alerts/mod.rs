//! Alerting: rules (from the config and the CLI), their evaluation by the worker, the state
//! machine, silences and the notification outbox.

pub mod engine;
pub mod external;
pub mod operator;
pub mod state;

// Alert settings are a section of the config; the old path stays for the engine's callers.
pub use crate::config::alerts as config;
pub use config::{AlertConfig, ChannelConfig, RuleConfig};
// The vocabulary lives in `model::rule`; these names stay reachable from here for the engine's
// callers.
pub use crate::model::rule::{
    fmt_value, label_key, percentile, silence_matches, takes_min_count, Matcher, Op, RuleSpec,
    DEFAULT_MIN_COUNT, MEASURES,
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn shipped_rules_are_valid() {
        for r in config::shipped_rules() {
            RuleSpec::from_config(&r).unwrap_or_else(|e| panic!("{}: {e}", r.name));
        }
        AlertConfig::default().validate().unwrap();
    }

    #[test]
    fn matchers_parse_and_match() {
        let labels: BTreeMap<String, String> = [("service".to_string(), "api".to_string())].into();
        assert!(Matcher::parse("service=api").unwrap().matches(&labels));
        assert!(Matcher::parse("service=~a.i").unwrap().matches(&labels));
        assert!(!Matcher::parse("service!=api").unwrap().matches(&labels));
        assert!(Matcher::parse("service!~web").unwrap().matches(&labels));
        assert!(Matcher::parse("=x").is_err());
        assert!(Matcher::parse("a=~(").is_err());
        assert!(!silence_matches(&[], &labels));
    }

    #[test]
    fn the_comparison_text_states_the_relation_that_holds() {
        assert_eq!(Op::standing(0.194, 5.0), "0.194 < 5");
        assert_eq!(Op::standing(50.0, 5.0), "50 > 5");
        assert_eq!(Op::standing(5.0, 5.0), "5 = 5");
        assert_eq!(Op::standing(12.3456, 10.0), "12.346 > 10");
        assert_eq!(fmt_value(1234.56), "1234.6");
    }

    #[test]
    fn rate_rules_take_a_minimum_volume_by_default() {
        let r = RuleConfig {
            name: "e".into(),
            measure: "error_rate".into(),
            ..RuleConfig::default()
        };
        assert_eq!(
            RuleSpec::from_config(&r).unwrap().min_count,
            DEFAULT_MIN_COUNT
        );
        let r = RuleConfig {
            min_count: Some(3),
            ..r
        };
        assert_eq!(RuleSpec::from_config(&r).unwrap().min_count, 3);
        let r = RuleConfig {
            measure: "log_count".into(),
            filter: "level:error".into(),
            ..r
        };
        assert!(RuleSpec::from_config(&r).unwrap_err().contains("min_count"));
    }

    #[test]
    fn label_key_is_canonical_and_unambiguous() {
        let a: BTreeMap<String, String> = [("a".into(), "1,b=2".into())].into();
        let b: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        assert_ne!(label_key(&a), label_key(&b));
        assert_eq!(label_key(&b), "a=1,b=2");
    }
}
