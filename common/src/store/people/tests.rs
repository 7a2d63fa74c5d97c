//! Unit tests of people and their OAuth state over an embedded store.

use super::*;

const AUD: &str = "https://connect.example/mcp";

fn people() -> (tempfile::TempDir, Db, People) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::embedded(dir.path()).unwrap();
    let p = People::open(&db, 0).unwrap();
    (dir, db, p)
}

fn person(id: &str, tenant: &str) -> Person {
    Person {
        id: id.into(),
        tenant: TenantId::parse(tenant).unwrap(),
        name: "Alex".into(),
        email: None,
        role: Role::Member,
        created_at: 1,
        user_handle: format!("h-{id}"),
        passkeys: vec![],
        last_sign_in_at: None,
    }
}

fn code(person: &str, tenant: &str) -> AuthCode {
    AuthCode {
        client_id: "c1".into(),
        client_name: "Client".into(),
        redirect_uri: "https://c.example/cb".into(),
        code_challenge: "x".into(),
        resource: AUD.into(),
        scope: "mcp".into(),
        person: person.into(),
        tenant: TenantId::parse(tenant).unwrap(),
        expires_at: 100,
    }
}

fn grant_for(p: &People, person: &str, tenant: &str) -> TokenPair {
    let (_, hash) = new_secret("c_");
    p.add_code(&hash, &code(person, tenant), 10).unwrap();
    let c = p.redeem_code(&hash, 10, |_| Ok(())).unwrap();
    p.create_grant(&hash, &c, "Alex", 10, 3600, 86400).unwrap()
}

#[test]
fn a_code_is_good_once_and_its_replay_revokes_the_grant() {
    let (_d, _db, p) = people();
    p.add_person(&person("p1", "acme")).unwrap();
    let (_, hash) = new_secret("c_");
    p.add_code(&hash, &code("p1", "acme"), 10).unwrap();
    let c = p.redeem_code(&hash, 10, |_| Ok(())).unwrap();
    let pair = p.create_grant(&hash, &c, "Alex", 10, 3600, 86400).unwrap();
    let access = digest(&pair.access_token);
    assert!(p.access_token(&access, 11).is_some());
    assert!(matches!(
        p.redeem_code(&hash, 12, |_| Ok(())),
        Err(GrantError::CodeReplayed { .. })
    ));
    assert!(p.access_token(&access, 12).is_none());
    assert!(
        p.grant(&pair.grant.id)
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
}

#[test]
fn a_failed_check_still_consumes_the_code() {
    let (_d, _db, p) = people();
    let (_, hash) = new_secret("c_");
    p.add_code(&hash, &code("p1", "acme"), 10).unwrap();
    assert!(matches!(
        p.redeem_code(&hash, 10, |_| Err(GrantError::WrongClient)),
        Err(GrantError::WrongClient)
    ));
    assert!(matches!(
        p.redeem_code(&hash, 10, |_| Ok(())),
        Err(GrantError::UnknownCode)
    ));
}

#[test]
fn refresh_rotates_and_a_replayed_refresh_token_revokes_the_grant() {
    let (_d, _db, p) = people();
    let first = grant_for(&p, "p1", "acme");
    let second = p
        .refresh(&digest(&first.refresh_token), "c1", AUD, 20, 3600, 86400)
        .unwrap();
    assert!(p.access_token(&digest(&second.access_token), 21).is_some());
    assert!(matches!(
        p.refresh(&digest(&first.refresh_token), "c1", AUD, 22, 3600, 86400),
        Err(GrantError::RefreshReplayed { .. })
    ));
    assert!(p.access_token(&digest(&second.access_token), 23).is_none());
    assert!(p.access_token(&digest(&first.access_token), 23).is_none());
    assert!(matches!(
        p.refresh(&digest(&second.refresh_token), "c1", AUD, 24, 3600, 86400),
        Err(GrantError::UnknownRefresh)
    ));
}

#[test]
fn removing_a_person_revokes_their_grants_and_sessions_and_survives_a_reopen() {
    let (dir, db, p) = people();
    p.add_person(&person("p1", "acme")).unwrap();
    p.add_person(&person("p2", "acme")).unwrap();
    let mine = grant_for(&p, "p1", "acme");
    let theirs = grant_for(&p, "p2", "acme");
    let (_, session) = new_secret("s_");
    p.add_session(
        &session,
        &Session {
            person: "p1".into(),
            tenant: TenantId::parse("acme").unwrap(),
            created_at: 1,
            expires_at: 1000,
        },
    )
    .unwrap();
    assert!(p.session(&session, 5).unwrap().is_some());
    let (_, revoked) = p.remove_person("p1", 30).unwrap().unwrap();
    assert_eq!(revoked, 1);
    assert!(p.session(&session, 5).unwrap().is_none());
    assert!(p.access_token(&digest(&mine.access_token), 31).is_none());
    assert!(p.access_token(&digest(&theirs.access_token), 31).is_some());
    drop(p);
    drop(db);
    // sled's flusher lets go of the directory's lock a moment after the last handle drops.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let db = loop {
        match Db::embedded(dir.path()) {
            Ok(db) => break db,
            Err(_) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("reopen: {e}"),
        }
    };
    let p = People::open(&db, 31).unwrap();
    assert!(p.access_token(&digest(&mine.access_token), 32).is_none());
    assert!(p.access_token(&digest(&theirs.access_token), 32).is_some());
    assert!(
        p.access_token(&digest(&theirs.access_token), 4000)
            .is_none()
    );
}

#[test]
fn an_invite_is_taken_once() {
    let (_d, _db, p) = people();
    let (_, hash) = new_secret("i_");
    let invite = Invite {
        person: "p1".into(),
        tenant: TenantId::parse("acme").unwrap(),
        created_at: 1,
        expires_at: 10,
    };
    p.add_invite(&hash, &invite).unwrap();
    assert!(p.take_invite(&hash).unwrap().is_some());
    assert!(p.take_invite(&hash).unwrap().is_none());
}

#[test]
fn a_passkey_ceremony_is_spent_once_and_swept_when_it_expires() {
    let (_d, _db, p) = people();
    assert!(!p.ceremony_spent(b"c1").unwrap());
    assert!(p.spend_ceremony(b"c1", 100).unwrap());
    assert!(p.ceremony_spent(b"c1").unwrap());
    assert!(!p.spend_ceremony(b"c1", 100).unwrap(), "a replay");
    assert!(p.spend_ceremony(b"c2", 200).unwrap());
    p.sweep(150, |_| u64::MAX).unwrap();
    assert!(!p.ceremony_spent(b"c1").unwrap(), "expired: swept");
    assert!(p.ceremony_spent(b"c2").unwrap(), "not yet expired: kept");
}
