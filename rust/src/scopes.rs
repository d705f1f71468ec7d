//! The scope engine: which scopes a token's grant amounts to (implications applied transitively),
//! which needed scopes it lacks, and the refusal when a required one is missing. Both the
//! policy's `required_scopes` and the middleware's rules (`ScopeRules` in Python) are a
//! [`ScopeRules`]; nothing else does scope arithmetic.

use crate::error::{ConfigError, TokenError};
use crate::trace::{Check, Recorder, Silent};
use std::collections::HashMap;

/// A scope token as RFC 6749 section 3.3 defines it; it also keeps header values injection-free.
pub fn is_scope_token(scope: &str) -> bool {
    !scope.is_empty()
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// Scope implications and the scopes every token needs. A broader scope grants the narrower ones
/// it implies, transitively (`mcp:admin` -> `mcp:write` -> `mcp:read`); the closure is computed
/// once, when the rules are built. Immutable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeRules {
    /// Each broad scope with every scope it grants, directly or through others.
    implied: HashMap<String, Vec<String>>,
    /// Each once, in the order given.
    required: Vec<String>,
}

impl ScopeRules {
    /// Rules from direct implications (`broad -> narrower scopes`) and required scopes.
    /// `required_name` names the setting in the error for a required scope that is not a scope
    /// token.
    pub fn new(
        implications: impl IntoIterator<Item = (String, Vec<String>)>,
        required: Vec<String>,
        required_name: &str,
    ) -> Result<Self, ConfigError> {
        let direct: HashMap<String, Vec<String>> = implications.into_iter().collect();
        let implied = direct
            .keys()
            .map(|broad| {
                let mut seen: Vec<String> = Vec::new();
                let mut stack: Vec<&String> = direct[broad].iter().collect();
                while let Some(scope) = stack.pop() {
                    if !seen.contains(scope) {
                        seen.push(scope.clone());
                        stack.extend(direct.get(scope).into_iter().flatten());
                    }
                }
                (broad.clone(), seen)
            })
            .collect();
        let mut required = required;
        dedup_in_order(&mut required);
        if let Some(bad) = required.iter().find(|s| !is_scope_token(s)) {
            return Err(ConfigError(format!(
                "{required_name} holds {bad:?}, which is not a scope token (RFC 6749 section \
                 3.3: printable ASCII without spaces, quotes or backslashes), e.g. \"mcp:tools\""
            )));
        }
        Ok(Self { implied, required })
    }

    /// Rules that only require `required` (no implications).
    pub fn requiring(required: Vec<String>, required_name: &str) -> Result<Self, ConfigError> {
        Self::new([], required, required_name)
    }

    /// The scopes every token needs, each once, in the order given.
    pub fn required(&self) -> &[String] {
        &self.required
    }

    /// Each broad scope with everything it grants (transitively), sorted by the broad scope.
    pub fn implications(&self) -> Vec<(&str, &[String])> {
        let mut pairs: Vec<(&str, &[String])> = self
            .implied
            .iter()
            .map(|(broad, narrow)| (broad.as_str(), narrow.as_slice()))
            .collect();
        pairs.sort_unstable();
        pairs
    }

    /// `granted` plus everything it implies, sorted, without repeats.
    pub fn effective<'a>(&'a self, granted: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
        let mut out: Vec<&str> = Vec::new();
        for scope in granted {
            out.push(scope);
            if let Some(implied) = self.implied.get(scope) {
                out.extend(implied.iter().map(String::as_str));
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The scopes of `needed` that `effective` (sorted, as [`Self::effective`] gives it) does
    /// not hold, in the order of `needed`, each once.
    pub fn missing<'n>(
        effective: &[&str],
        needed: impl IntoIterator<Item = &'n str>,
    ) -> Vec<&'n str> {
        let mut missing: Vec<&str> = Vec::new();
        for scope in needed {
            if effective.binary_search(&scope).is_err() && !missing.contains(&scope) {
                missing.push(scope);
            }
        }
        missing
    }

    /// The effective scopes of `granted` (sorted), or `InsufficientScope` naming every required
    /// scope and the ones missing.
    pub fn admit<'a>(
        &'a self,
        granted: impl IntoIterator<Item = &'a str>,
    ) -> Result<Vec<&'a str>, TokenError> {
        self.admit_recorded(granted, &mut Silent)
    }

    /// [`Self::admit`], recording its outcome in `rec`.
    pub fn admit_recorded<'a, R: Recorder>(
        &'a self,
        granted: impl IntoIterator<Item = &'a str>,
        rec: &mut R,
    ) -> Result<Vec<&'a str>, TokenError> {
        let effective = self.effective(granted);
        let missing = Self::missing(&effective, self.required.iter().map(String::as_str));
        let result = if missing.is_empty() {
            Ok(effective)
        } else {
            Err(self.lacking(&missing))
        };
        rec.outcome(Check::ScopeRules, result, |effective| {
            let words = |scopes: &[&str]| match scopes {
                [] => "none".to_owned(),
                scopes => scopes.join(" "),
            };
            let required: Vec<&str> = self.required.iter().map(String::as_str).collect();
            format!(
                "effective scopes: {}; required: {}",
                words(effective),
                words(&required)
            )
        })
    }

    /// Whether `granted` covers the required scopes (`admit` without the effective list).
    pub fn check<'a>(
        &'a self,
        granted: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), TokenError> {
        if self.required.is_empty() {
            return Ok(());
        }
        self.admit(granted).map(|_| ())
    }

    /// The refusal of a token without `missing`, challenging for every required scope.
    pub fn lacking(&self, missing: &[&str]) -> TokenError {
        TokenError::InsufficientScope {
            required: self.required.clone(),
            missing: missing.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Keeps the first of each repeated name, in order.
fn dedup_in_order(names: &mut Vec<String>) {
    let mut index = 0;
    while index < names.len() {
        if names[..index].contains(&names[index]) {
            names.remove(index);
        } else {
            index += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(pairs: &[(&str, &[&str])], required: &[&str]) -> ScopeRules {
        let implications = pairs
            .iter()
            .map(|(broad, narrow)| {
                (
                    (*broad).to_owned(),
                    narrow.iter().map(|s| (*s).to_owned()).collect(),
                )
            })
            .collect::<Vec<_>>();
        let required = required.iter().map(|s| (*s).to_owned()).collect();
        ScopeRules::new(implications, required, "required").expect("valid rules")
    }

    #[test]
    fn implications_apply_transitively_and_through_cycles() {
        let r = rules(
            &[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("x", &["y"])],
            &[],
        );
        assert_eq!(r.effective(["a"]), vec!["a", "b", "c"]);
        assert_eq!(r.effective(["x", "q", "x"]), vec!["q", "x", "y"]);
        assert_eq!(ScopeRules::default().effective(["b", "a"]), vec!["a", "b"]);
        let admin = rules(&[("admin", &["write"]), ("write", &["read"])], &[]);
        assert_eq!(admin.effective(["admin"]), vec!["admin", "read", "write"]);
        assert_eq!(
            admin.implications()[0],
            ("admin", &["write".into(), "read".into()][..])
        );
    }

    #[test]
    fn missing_keeps_the_order_of_needed_without_repeats() {
        let effective = ["a", "c"];
        assert_eq!(
            ScopeRules::missing(&effective, ["z", "a", "y", "z"]),
            vec!["z", "y"]
        );
        assert!(ScopeRules::missing(&effective, ["c"]).is_empty());
    }

    #[test]
    fn admit_refuses_naming_every_required_scope() {
        let r = rules(&[("admin", &["tools"])], &["tools", "read", "tools"]);
        assert_eq!(r.required(), ["tools", "read"]);
        assert_eq!(
            r.admit(["admin", "read"]),
            Ok(vec!["admin", "read", "tools"])
        );
        assert_eq!(
            r.admit(["admin"]),
            Err(TokenError::InsufficientScope {
                required: vec!["tools".into(), "read".into()],
                missing: vec!["read".into()],
            })
        );
        assert_eq!(r.check(["tools", "read"]), Ok(()));
        assert!(r.check(["read"]).is_err());
        assert_eq!(ScopeRules::default().check([]), Ok(()));
    }

    #[test]
    fn required_scopes_must_be_scope_tokens() {
        for bad in ["", "a b", "q\"", "back\\slash", "é"] {
            let err = ScopeRules::requiring(vec![bad.into()], "required_scopes").expect_err(bad);
            assert!(err.0.starts_with("required_scopes holds"), "{}", err.0);
            assert!(err.0.contains("scope token"));
        }
        assert!(is_scope_token("mcp:tools!#[]~"));
    }
}
