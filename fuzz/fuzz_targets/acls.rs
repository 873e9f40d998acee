//! The ACL file, `<data>/~acls.json` (broker/src/auth/acl.rs `Acls::parse`),
//! read at start by the ACL store.
//!
//! Where a file parses, the file form this build writes (`to_bytes`) parses
//! back to the same ACLs, and every entry can be evaluated.
#![no_main]

use brook_broker::auth::acl::Acls;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(acls) = Acls::parse(data) else {
        return;
    };
    match Acls::parse(&acls.to_bytes()) {
        Ok(again) => assert_eq!(again, acls, "the ACL file does not round-trip"),
        Err(e) => panic!("the broker cannot read the ACL file it writes: {e}"),
    }
    for acl in acls.entries() {
        let _ = acls.allows(
            &acl.principal,
            acl.operation,
            acl.resource_type,
            &acl.resource_name,
        );
        let _ = acls.allows_some(&acl.principal, acl.operation, acl.resource_type);
    }
});
