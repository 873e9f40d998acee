//! The ACLs' home: `<data>/~acls.json`, replaced atomically (a temporary
//! file, fsync, rename, fsync of the directory) at every change, so that a
//! change acknowledged is a change kept, and a crash leaves the old set or
//! the new one, never a mix. A file that does not parse stops the broker
//! with its name and the fault: starting with no ACLs would lock everyone
//! out, and starting with some would be a guess.

use std::path::PathBuf;
use std::sync::{Mutex, RwLock, RwLockReadGuard};

use super::acl::{Acl, Acls};

/// The file's name in the data directory.
pub const FILE: &str = "~acls.json";

/// The ACLs in force, and their file.
pub struct AclStore {
    dir: PathBuf,
    acls: RwLock<Acls>,
    /// Serialises changes: each writes the whole file.
    writing: Mutex<()>,
}

impl AclStore {
    /// Reads `<dir>/~acls.json`; none means no ACLs yet.
    pub fn open(dir: PathBuf) -> Result<AclStore, String> {
        let path = dir.join(FILE);
        let acls = match std::fs::read(&path) {
            Ok(bytes) => {
                Acls::parse(&bytes).map_err(|e| format!("ACL file {}: {e}", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Acls::default(),
            Err(e) => return Err(format!("reading ACL file {}: {e}", path.display())),
        };
        Ok(AclStore {
            dir,
            acls: RwLock::new(acls),
            writing: Mutex::new(()),
        })
    }

    /// The ACLs in force.
    pub fn read(&self) -> RwLockReadGuard<'_, Acls> {
        self.acls.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `new` (each checked first; entries already there are skipped)
    /// and stores the set before it takes effect. Returns how many were new.
    pub fn add(&self, new: &[Acl]) -> Result<usize, String> {
        for (i, acl) in new.iter().enumerate() {
            acl.check().map_err(|e| format!("ACL {}: {e}", i + 1))?;
        }
        self.change(|acls| acls.add(new))
    }

    /// Removes the entries equal to one of `gone`; returns how many went.
    pub fn remove(&self, gone: &[Acl]) -> Result<usize, String> {
        self.change(|acls| acls.remove(gone))
    }

    fn change(&self, f: impl FnOnce(&mut Acls) -> usize) -> Result<usize, String> {
        let _one_writer = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = self.read().clone();
        let n = f(&mut next);
        if n == 0 {
            return Ok(0);
        }
        brook_storage::write_atomic(&self.dir, FILE, &next.to_bytes())
            .map_err(|e| format!("storing the ACLs: {e}"))?;
        *self.acls.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::acl::{Operation, PatternType, Permission, ResourceType};
    use super::*;

    #[test]
    fn changes_survive_a_reopen_and_a_damaged_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let store = AclStore::open(dir.path().to_path_buf()).unwrap();
        let acl = Acl {
            principal: "alice".into(),
            permission: Permission::Allow,
            operation: Operation::Read,
            resource_type: ResourceType::Topic,
            pattern_type: PatternType::Literal,
            resource_name: "orders".into(),
        };
        assert_eq!(store.add(std::slice::from_ref(&acl)).unwrap(), 1);
        let again = AclStore::open(dir.path().to_path_buf()).unwrap();
        assert_eq!(again.read().entries(), std::slice::from_ref(&acl));
        assert_eq!(again.remove(std::slice::from_ref(&acl)).unwrap(), 1);
        let empty = AclStore::open(dir.path().to_path_buf()).unwrap();
        assert!(empty.read().entries().is_empty());

        let bad = Acl {
            principal: String::new(),
            ..acl
        };
        assert!(store.add(&[bad]).unwrap_err().contains("ACL 1"));
        std::fs::write(dir.path().join(FILE), b"{\"version\":1,\"acls\":[").unwrap();
        let e = AclStore::open(dir.path().to_path_buf()).err().unwrap();
        assert!(e.contains(FILE), "{e}");
    }
}
