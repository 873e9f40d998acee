//! Access control lists, as Kafka has them: each entry allows or denies one
//! principal (or `*`, anyone authenticated) one operation on the resources
//! of one type whose name is a literal (`*`: every one) or starts with a
//! prefix. Deny wins over allow; nothing is allowed that no entry allows.
//! Allowing read, write, delete or alter allows describe too, as in Kafka:
//! whoever may write a topic may look it up.

use serde::{Deserialize, Serialize};

use super::tokens::check_principal;

/// Allow or deny.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// The entry allows the operation.
    Allow,
    /// The entry denies it, whatever else allows it.
    Deny,
}

/// What a request does to its resource (`brook acl --operation` takes
/// these names too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Every operation.
    All,
    /// Fetch or subscribe to a topic; join a group.
    Read,
    /// Produce to a topic.
    Write,
    /// Create a topic.
    Create,
    /// Delete a topic or group.
    Delete,
    /// Look a topic, group or the cluster up.
    Describe,
    /// Change a topic's settings or partitions, a group's offsets, or
    /// (on the cluster) the ACLs.
    Alter,
    /// Commit a group's offsets.
    Commit,
}

/// What kind of thing a request is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceType {
    /// A topic, by name.
    Topic,
    /// A consumer group, by name.
    Group,
    /// The broker itself (its only name is `brook`).
    Cluster,
}

/// How an entry's name matches a resource's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatternType {
    /// The name itself, or `*` for every resource of the type.
    Literal,
    /// Every resource whose name starts with this.
    Prefixed,
}

/// The name of the cluster resource.
pub const CLUSTER: &str = "brook";

/// One ACL entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Acl {
    /// Who: a principal name, or `*` for every authenticated one.
    pub principal: String,
    /// Allow or deny.
    pub permission: Permission,
    /// Which operation.
    pub operation: Operation,
    /// On which kind of resource.
    pub resource_type: ResourceType,
    /// How `resource_name` matches.
    pub pattern_type: PatternType,
    /// The name, `*`, or a prefix.
    pub resource_name: String,
}

impl Acl {
    /// Checks the entry's fields; the error says which is wrong.
    pub fn check(&self) -> Result<(), String> {
        if self.principal != "*" {
            check_principal(&self.principal)?;
        }
        let name = &self.resource_name;
        if name.len() > 256 || name.chars().any(char::is_control) {
            return Err(format!(
                "resource name {name:?} must be at most 256 printable bytes"
            ));
        }
        match (self.pattern_type, name.as_str()) {
            (PatternType::Literal, "") => Err("a literal resource name cannot be empty".into()),
            (PatternType::Prefixed, "*") => {
                Err("a prefix of \"*\" matches nothing: use a literal \"*\" for every name".into())
            }
            _ => Ok(()),
        }
    }

    fn matches(&self, principal: &str, resource_type: ResourceType, name: &str) -> bool {
        (self.principal == "*" || self.principal == principal)
            && self.resource_type == resource_type
            && match self.pattern_type {
                PatternType::Literal => self.resource_name == "*" || self.resource_name == name,
                PatternType::Prefixed => name.starts_with(&self.resource_name),
            }
    }

    /// Whether every name `other`'s pattern matches is matched by this one's.
    fn covers_pattern(&self, other: &Acl) -> bool {
        match (self.pattern_type, self.resource_name.as_str()) {
            (PatternType::Literal, "*") => true,
            (PatternType::Literal, name) => {
                other.pattern_type == PatternType::Literal && other.resource_name == name
            }
            (PatternType::Prefixed, prefix) => {
                other.resource_name != "*" && other.resource_name.starts_with(prefix)
            }
        }
    }

    fn covers(&self, op: Operation) -> bool {
        use Operation::*;
        self.operation == All
            || self.operation == op
            // Kafka's rule: whoever may act on a resource may describe it.
            || (op == Describe
                && self.permission == Permission::Allow
                && matches!(self.operation, Read | Write | Delete | Alter)
                // Write on the cluster (for InitProducer) must not open
                // the ACL list and the cluster's description.
                && !(self.operation == Write && self.resource_type == ResourceType::Cluster))
    }
}

/// A set of ACL entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acls {
    entries: Vec<Acl>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    acls: Vec<Acl>,
}

/// The file format's version.
const VERSION: u32 = 1;

impl Acls {
    /// The entries, in the order they were added.
    pub fn entries(&self) -> &[Acl] {
        &self.entries
    }

    /// Whether `principal` may do `op` on the resource: some entry allows
    /// it and none denies it.
    pub fn allows(
        &self,
        principal: &str,
        op: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        let mut allowed = false;
        for acl in &self.entries {
            if acl.matches(principal, resource_type, name) && acl.covers(op) {
                match acl.permission {
                    Permission::Deny => return false,
                    Permission::Allow => allowed = true,
                }
            }
        }
        allowed
    }

    /// Whether some entry allows `principal` `op` on some resource of the
    /// type (for operations that name no single resource, such as
    /// `InitProducer`: may this principal write anywhere?).
    /// An allowed pattern counts unless a deny covers all of it (as
    /// Kafka's authorizeByResourceType decides).
    pub fn allows_some(&self, principal: &str, op: Operation, resource_type: ResourceType) -> bool {
        let applies = |acl: &&Acl, permission| {
            acl.permission == permission
                && (acl.principal == "*" || acl.principal == principal)
                && acl.resource_type == resource_type
                && acl.covers(op)
        };
        let denies: Vec<&Acl> = self
            .entries
            .iter()
            .filter(|a| applies(a, Permission::Deny))
            .collect();
        self.entries
            .iter()
            .filter(|a| applies(a, Permission::Allow))
            .any(|allow| !denies.iter().any(|deny| deny.covers_pattern(allow)))
    }

    /// Adds the entries not there yet; returns how many were new.
    pub fn add(&mut self, acls: &[Acl]) -> usize {
        let mut added = 0;
        for acl in acls {
            if !self.entries.contains(acl) {
                self.entries.push(acl.clone());
                added += 1;
            }
        }
        added
    }

    /// Removes the entries equal to one of `acls`; returns how many went.
    pub fn remove(&mut self, acls: &[Acl]) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| !acls.contains(e));
        before - self.entries.len()
    }

    /// The file form (JSON, versioned).
    pub fn to_bytes(&self) -> Vec<u8> {
        let file = File {
            version: VERSION,
            acls: self.entries.clone(),
        };
        let mut out = serde_json::to_vec_pretty(&file).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Parses the file form; the error names what is wrong.
    pub fn parse(bytes: &[u8]) -> Result<Acls, String> {
        let file: File = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if file.version != VERSION {
            return Err(format!(
                "version {} is not one this broker reads ({VERSION})",
                file.version
            ));
        }
        for (i, acl) in file.acls.iter().enumerate() {
            acl.check().map_err(|e| format!("entry {}: {e}", i + 1))?;
        }
        let mut acls = Acls::default();
        acls.add(&file.acls);
        Ok(acls)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        principal: &str,
        permission: Permission,
        operation: Operation,
        resource_type: ResourceType,
        pattern_type: PatternType,
        name: &str,
    ) -> Acl {
        Acl {
            principal: principal.into(),
            permission,
            operation,
            resource_type,
            pattern_type,
            resource_name: name.into(),
        }
    }

    use Operation::*;
    use PatternType::*;
    use Permission::*;
    use ResourceType::*;

    #[test]
    fn nothing_is_allowed_without_an_entry_and_deny_wins() {
        let mut acls = Acls::default();
        assert!(!acls.allows("alice", Read, Topic, "orders"));
        acls.add(&[
            acl("alice", Allow, Read, Topic, Prefixed, "ord"),
            acl("*", Allow, Write, Topic, Literal, "orders"),
            acl("bob", Deny, Write, Topic, Literal, "*"),
        ]);
        assert!(acls.allows("alice", Read, Topic, "orders"));
        assert!(acls.allows("alice", Read, Topic, "ord"));
        assert!(!acls.allows("alice", Read, Topic, "or"));
        assert!(!acls.allows("alice", Read, Group, "orders"), "other type");
        assert!(!acls.allows("alice", Delete, Topic, "orders"), "other op");
        assert!(acls.allows("carol", Write, Topic, "orders"), "*: anyone");
        assert!(!acls.allows("bob", Write, Topic, "orders"), "deny wins");
        assert!(
            acls.allows("bob", Describe, Topic, "orders"),
            "write implies describe"
        );
    }

    #[test]
    fn describe_follows_from_acting_but_a_denied_read_does_not_deny_describe() {
        let mut acls = Acls::default();
        acls.add(&[
            acl("a", Allow, Alter, Group, Literal, "g"),
            acl("a", Deny, Read, Group, Literal, "g"),
            acl("b", Allow, Commit, Group, Literal, "g"),
            acl("c", Allow, All, Cluster, Literal, CLUSTER),
        ]);
        assert!(acls.allows("a", Describe, Group, "g"));
        assert!(!acls.allows("a", Read, Group, "g"));
        assert!(!acls.allows("b", Describe, Group, "g"), "commit alone");
        assert!(acls.allows("c", Alter, Cluster, CLUSTER));
        assert!(acls.allows_some("a", Alter, Group));
        assert!(!acls.allows_some("a", Write, Topic));

        let mut some = Acls::default();
        some.add(&[
            acl("w", Allow, Write, Topic, Literal, "orders"),
            acl("w", Allow, Write, Topic, Prefixed, "eu-"),
        ]);
        assert!(some.allows_some("w", Write, Topic));
        some.add(&[acl("w", Deny, Write, Topic, Literal, "orders")]);
        assert!(some.allows_some("w", Write, Topic), "eu-* is still allowed");
        some.add(&[acl("w", Deny, Write, Topic, Prefixed, "eu")]);
        assert!(
            !some.allows_some("w", Write, Topic),
            "every allow is denied"
        );
    }

    #[test]
    fn the_file_round_trips_and_bad_files_are_named() {
        let mut acls = Acls::default();
        let entries = [
            acl("alice", Allow, Read, Topic, Prefixed, "ord"),
            acl("*", Deny, Delete, Group, Literal, "*"),
        ];
        assert_eq!(acls.add(&entries), 2);
        assert_eq!(acls.add(&entries[..1]), 0, "no duplicates");
        assert_eq!(Acls::parse(&acls.to_bytes()).unwrap(), acls);
        assert_eq!(acls.remove(&entries[1..]), 1);
        assert_eq!(acls.entries(), &entries[..1]);

        for (text, says) in [
            (r#"{"version":2,"acls":[]}"#, "version 2"),
            (r#"{"version":1}"#, "acls"),
            (
                r#"{"version":1,"acls":[{"principal":"","permission":"allow","operation":"read","resource_type":"topic","pattern_type":"literal","resource_name":"x"}]}"#,
                "entry 1",
            ),
            (
                r#"{"version":1,"acls":[{"principal":"a","permission":"maybe","operation":"read","resource_type":"topic","pattern_type":"literal","resource_name":"x"}]}"#,
                "maybe",
            ),
            ("\u{0}", "expected"),
        ] {
            let e = Acls::parse(text.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
