//! The records' unit tests over an embedded store: reopening, the token journal, and what a
//! token resolves to.

use super::*;
use crate::domain::WebflowId;
use crate::tenant::TenantSpec;

/// Opens the store again once the last handle is gone. sled's background threads let go of
/// the directory's lock a moment after the handle drops, so an immediate reopen in the same
/// process can see `Locked` (CI did, once).
fn reopen(dir: &Path) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match Store::open(dir) {
            Ok(store) => return store,
            Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopen {}: {e}", dir.display()),
        }
    }
}

fn tenant(id: &str) -> Tenant {
    TenantSpec {
        name: id.to_uppercase(),
        webflow_sites: vec![WebflowId::parse("site", "aaaaaaaaaaaaaaaaaaaaaaaa").unwrap()],
        ..Default::default()
    }
    .into_tenant(TenantId::parse(id).unwrap(), 1)
    .unwrap()
}

#[test]
fn tenants_tokens_and_revocations_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let record = TokenRecord {
        id: "tok1".into(),
        tenant: TenantId::parse("acme").unwrap(),
        label: "laptop".into(),
        created_at: 5,
        expires_at: None,
        revoked_at: None,
    };
    {
        let store = reopen(dir.path());
        store.add_tenant(tenant("acme")).unwrap();
        assert!(matches!(
            store.add_tenant(tenant("acme")),
            Err(StoreError::TenantExists(_))
        ));
        store.insert_token(&[1; 32], &record).unwrap();
        store.revoke_token("tok1", 9).unwrap();
    }
    let store = reopen(dir.path());
    assert_eq!(store.tenants().len(), 1);
    let got = store.token_by_hash(&[1; 32]).unwrap().unwrap();
    assert!(got.revoked);
    assert!(matches!(
        store.revoke_token("nope", 1),
        Err(StoreError::NoToken(_))
    ));
}

#[test]
fn the_token_journal_is_rebuilt_from_sled_and_tolerates_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let record = |id: &str| TokenRecord {
        id: id.into(),
        tenant: TenantId::parse("acme").unwrap(),
        label: String::new(),
        created_at: 1,
        expires_at: None,
        revoked_at: None,
    };
    {
        let store = reopen(dir.path());
        store.insert_token(&[1; 32], &record("a")).unwrap();
        store.insert_token(&[2; 32], &record("b")).unwrap();
        store.revoke_token("a", 5).unwrap();
    }
    // A crash mid-append leaves half a line, here cut inside a character: ignored (the fuzz
    // target store_open found such a byte refusing the whole start).
    let journal = dir.path().join("tokens.idx");
    let mut bytes = std::fs::read(&journal).unwrap();
    bytes.extend_from_slice(b"I 0102\xe2\x80");
    std::fs::write(&journal, &bytes).unwrap();
    {
        let store = reopen(dir.path());
        assert!(store.token_by_hash(&[1; 32]).unwrap().unwrap().revoked);
        assert!(!store.token_by_hash(&[2; 32]).unwrap().unwrap().revoked);
    }
    // A revocation journaled for a token the journal never saw issued (two crashes at the
    // worst moments) still refuses it, though sled says otherwise.
    {
        let store = reopen(dir.path());
        store
            .tokens
            .insert([3; 32], encode(&record("c")).unwrap())
            .unwrap();
        let journal = store.token_journal.as_ref().unwrap();
        journal.revoked(&[3u8; 32]).unwrap();
    }
    {
        let store = reopen(dir.path());
        assert!(store.token_by_hash(&[3; 32]).unwrap().unwrap().revoked);
    }
    std::fs::remove_file(&journal).unwrap();
    let store = reopen(dir.path());
    assert!(journal.exists());
    assert!(store.token_by_hash(&[1; 32]).unwrap().unwrap().revoked);
    assert!(!store.token_by_hash(&[2; 32]).unwrap().unwrap().revoked);
}

#[test]
fn a_token_resolves_to_the_current_tenant_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let acme = TenantId::parse("acme").unwrap();
    let record = |id: &str| TokenRecord {
        id: id.into(),
        tenant: acme.clone(),
        label: String::new(),
        created_at: 1,
        expires_at: None,
        revoked_at: None,
    };
    let name = |found: TokenTenant| match found {
        TokenTenant::Tenant(t, _) => t.name.clone(),
        other => format!("{other:?}"),
    };
    {
        let store = reopen(dir.path());
        store.add_tenant(tenant("acme")).unwrap();
        store.insert_token(&[1; 32], &record("a")).unwrap();
        store.insert_token(&[2; 32], &record("b")).unwrap();
        assert_eq!(name(store.token_tenant(&[1; 32], "acme").unwrap()), "ACME");
        assert_eq!(
            name(store.token_tenant(&[1; 32], "globex").unwrap()),
            "Unknown"
        );
        assert_eq!(
            name(store.token_tenant(&[9; 32], "acme").unwrap()),
            "Unknown"
        );
        let mut renamed = tenant("acme");
        renamed.name = "Acme Two".into();
        store.put_tenant(renamed).unwrap();
        assert_eq!(
            name(store.token_tenant(&[1; 32], "acme").unwrap()),
            "Acme Two"
        );
        store.revoke_token("a", 5).unwrap();
        assert_eq!(
            name(store.token_tenant(&[1; 32], "acme").unwrap()),
            "Revoked"
        );
    }
    let store = reopen(dir.path());
    assert_eq!(
        name(store.token_tenant(&[1; 32], "acme").unwrap()),
        "Revoked"
    );
    assert_eq!(
        name(store.token_tenant(&[2; 32], "acme").unwrap()),
        "Acme Two"
    );
    let removed = store.remove_tenant(&acme, 7).unwrap();
    assert_eq!(
        removed,
        Removed {
            existed: true,
            tokens_revoked: 1,
            secrets_deleted: 0
        }
    );
    assert_eq!(
        name(store.token_tenant(&[2; 32], "acme").unwrap()),
        "Revoked"
    );
    // A tenant created later under the same id gets none of the old tokens, not even
    // after a restart.
    store.add_tenant(tenant("acme")).unwrap();
    assert_eq!(
        name(store.token_tenant(&[2; 32], "acme").unwrap()),
        "Revoked"
    );
    drop(store);
    let store = reopen(dir.path());
    assert_eq!(
        name(store.token_tenant(&[2; 32], "acme").unwrap()),
        "Revoked"
    );
}

/// A backup taken from a serving store, written to a file and read back, restores into an
/// empty data dir as the same records: tenants, tokens and their revocations, the audit log.
/// An occupied dir is refused with nothing written.
#[test]
fn a_backup_restores_the_same_records_into_an_empty_dir() {
    use crate::store::backup;
    let dir = tempfile::tempdir().unwrap();
    let record = |id: &str| TokenRecord {
        id: id.into(),
        tenant: TenantId::parse("acme").unwrap(),
        label: "laptop".into(),
        created_at: 5,
        expires_at: None,
        revoked_at: None,
    };
    let store = reopen(dir.path());
    store.add_tenant(tenant("acme")).unwrap();
    store.insert_token(&[1; 32], &record("tok1")).unwrap();
    store.insert_token(&[2; 32], &record("tok2")).unwrap();
    store.revoke_token("tok2", 9).unwrap();
    store
        .audit()
        .append(crate::store::audit::AuditRecord {
            at_ms: 1_796_662_588_000,
            tenant: "acme".into(),
            action: "whoami".into(),
            args_digest: "00".into(),
            outcome: "ok".into(),
            duration_us: 1,
            request_id: "r1".into(),
            person: None,
            client: None,
        })
        .unwrap();
    let snapshot = store.snapshot().unwrap();
    assert_eq!(snapshot.audit.len(), 1);
    let header = backup::Header {
        format: 0,
        server: "studio-mcp-shared".into(),
        tenant: None,
        taken_at_ms: 1,
        counts: Default::default(),
        keys: Default::default(),
        sha256: String::new(),
    };
    let file = backup::write(header, &snapshot).unwrap();
    let (_, read) = backup::read(&file).unwrap();

    let target = tempfile::tempdir().unwrap();
    let copied = crate::store::restore_dir(target.path(), &read).unwrap();
    assert!(copied.contains(&("audit".to_owned(), 1)), "{copied:?}");
    let restored = reopen(target.path());
    assert_eq!(restored.snapshot().unwrap(), snapshot);
    assert!(!restored.token_by_hash(&[1; 32]).unwrap().unwrap().revoked);
    assert!(restored.token_by_hash(&[2; 32]).unwrap().unwrap().revoked);
    drop(restored);

    let again = crate::store::restore_dir(target.path(), &read);
    assert!(
        matches!(&again, Err(StoreError::Io(why)) if why.contains("is not empty")),
        "{again:?}"
    );
}
