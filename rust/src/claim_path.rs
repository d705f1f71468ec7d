//! Dotted claim paths: `realm_access.roles` names the member `roles` of the object in the claim
//! `realm_access`. A member name is matched as written, dots included, so a namespaced claim
//! (`https://example.com/roles`, as Auth0 names custom claims) is a path of its own. Where a
//! document has both readings (a member `a.b` and a member `a` holding `b`), the path reaches
//! both values. The roles reader (`policy`) and the claim lookup of the Python requirements both
//! go through [`step`]; nothing else interprets a path.

/// Where a path goes from one member of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'p> {
    /// The member's value is the path's value.
    Here,
    /// The path continues with this rest inside the member's value, which must be an object.
    Into(&'p str),
}

/// How `path` goes on from a member named `name`, or None when the member is off the path.
pub fn step<'p>(path: &'p str, name: &str) -> Option<Step<'p>> {
    if path == name {
        return Some(Step::Here);
    }
    path.strip_prefix(name)?.strip_prefix('.').map(Step::Into)
}

/// The longest path accepted in a configuration, and the most dots in one.
pub const MAX_PATH_BYTES: usize = 256;
pub const MAX_PATH_DEPTH: usize = 8;

/// Why `path` cannot be a claim path: empty, an empty segment (`a..b`, `.a`, `a.`), too long or
/// too deep. None when it can.
pub fn problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.len() > MAX_PATH_BYTES {
        return Some("is longer than 256 bytes");
    }
    if path.split('.').any(str::is_empty) {
        return Some("has an empty segment (a leading, trailing or doubled dot)");
    }
    if path.matches('.').count() >= MAX_PATH_DEPTH {
        return Some("is nested deeper than 8 levels");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_members_as_written() {
        assert_eq!(step("roles", "roles"), Some(Step::Here));
        assert_eq!(
            step("realm_access.roles", "realm_access"),
            Some(Step::Into("roles"))
        );
        assert_eq!(
            step("resource_access.my-client.roles", "resource_access"),
            Some(Step::Into("my-client.roles"))
        );
        assert_eq!(
            step(
                "resource_access.my-client.roles",
                "resource_access.my-client"
            ),
            Some(Step::Into("roles"))
        );
        let namespaced = "https://example.com/roles";
        assert_eq!(step(namespaced, namespaced), Some(Step::Here));
        assert_eq!(
            step(namespaced, "https://example"),
            Some(Step::Into("com/roles"))
        );
        for off in ["role", "rolesx", "realm", "realm_access.", "", "Roles"] {
            assert_eq!(step("roles", off), None, "{off:?}");
        }
        assert_eq!(step("realm_access.roles", "realm_acces"), None);
    }

    #[test]
    fn configured_paths_are_checked() {
        for good in [
            "roles",
            "realm_access.roles",
            "cognito:groups",
            "https://x.io/roles",
        ] {
            assert_eq!(problem(good), None, "{good}");
        }
        assert_eq!(problem(""), Some("is empty"));
        for bad in [".a", "a.", "a..b"] {
            assert!(
                problem(bad).is_some_and(|p| p.contains("empty segment")),
                "{bad}"
            );
        }
        assert!(problem(&"a".repeat(300)).is_some());
        assert!(problem("a.b.c.d.e.f.g.h.i").is_some());
        assert_eq!(problem("a.b.c.d.e.f.g.h"), None);
    }
}
