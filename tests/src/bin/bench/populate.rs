//! Data dirs filled offline the way a provisioned server's looks (tenants, tokens, OAuth grants),
//! for `run` and kept by `bench populate`; and the in-process token check timed on one.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use common::domain::{TenantId, WebflowId};
use common::secrets::{MasterKey, write_private_file};
use common::store::{Store, StoreError};
use common::tenant::TenantSpec;
use common::token::TokenAuthority;
use secrecy::ExposeSecret as _;

/// Token lifetime for the benchmark's tokens (a year, the server's default).
const TOKEN_TTL_SECS: u64 = 365 * 86_400;

/// `bench populate`: a filled data dir kept for profiling by hand, with its tokens in files.
pub fn populate_kept(
    dir: &Path,
    public_url: &str,
    connector_url: &str,
    tenants: usize,
    per_tenant: usize,
) -> anyhow::Result<()> {
    if dir.exists() {
        bail!("{} exists: populate wants a new dir", dir.display());
    }
    std::fs::create_dir_all(dir)?;
    let tokens = populate(dir, public_url, tenants, per_tenant)?;
    let path = dir.join("tokens.txt");
    write_private_file(&path, (tokens.join("\n") + "\n").as_bytes())?;
    let oauth = populate_oauth(dir, connector_url, tenants)?;
    write_private_file(
        &dir.join("oauth-tokens.txt"),
        (oauth.join("\n") + "\n").as_bytes(),
    )?;
    eprintln!(
        "bench: {} OAuth access tokens (one person and grant a tenant, valid a day) in {}; load them on {connector_url}",
        oauth.len(),
        dir.join("oauth-tokens.txt").display()
    );
    eprintln!(
        "bench: {} tokens in {}; serve with STUDIO_MCP_DATA_DIR={} STUDIO_MCP_PUBLIC_URL={public_url} STUDIO_MCP_CONNECTOR_URL={connector_url}",
        tokens.len(),
        path.display(),
        dir.display()
    );
    Ok(())
}

/// Fills `dir` the way a provisioned server's data dir looks: store, master key, signing key,
/// admin token; `tenants` tenants with one dummy Webflow site each and `per_tenant` tokens each.
/// Returns the tokens interleaved (token 0 of every tenant, then token 1 …), so walking the list
/// in order touches every tenant before any repeats.
pub fn populate(
    dir: &Path,
    public_url: &str,
    tenants: usize,
    per_tenant: usize,
) -> anyhow::Result<Vec<String>> {
    let store = open_store(&dir.join("store"))?;
    MasterKey::load_or_generate(&dir.join("master.key"))?;
    let authority = TokenAuthority::load_or_generate(&dir.join("signing.key"), public_url)?;
    write_private_file(
        &dir.join("admin-token"),
        b"adm_0000000000000000000000000000000000000000000000000000000000000000",
    )?;
    let now = common::now_unix();
    let mut by_tenant: Vec<Vec<String>> = Vec::with_capacity(tenants);
    let progress = Instant::now();
    for i in 0..tenants {
        let id = TenantId::parse(&format!("bench-{i:05}"))?;
        let site = WebflowId::parse("site", &format!("{:024x}", i + 1))?;
        let tenant = TenantSpec {
            name: format!("Bench tenant {i}"),
            webflow_sites: vec![site],
            ..Default::default()
        }
        .into_tenant(id.clone(), now)
        .map_err(|e| anyhow!(e))?;
        store.add_tenant(tenant)?;
        let mut tokens = Vec::with_capacity(per_tenant);
        for j in 0..per_tenant {
            let issued =
                authority.issue(&store, &id, &format!("bench {j}"), TOKEN_TTL_SECS, now)?;
            tokens.push(issued.token.expose_secret().to_owned());
        }
        by_tenant.push(tokens);
        if (i + 1) % 1000 == 0 {
            eprintln!(
                "bench:   {} tenants after {:.1} s",
                i + 1,
                progress.elapsed().as_secs_f64()
            );
        }
    }
    store.flush()?;
    drop(store);
    let mut tokens = Vec::with_capacity(tenants * per_tenant);
    for j in 0..per_tenant {
        for tenant in &by_tenant {
            if let Some(t) = tenant.get(j) {
                tokens.push(t.clone());
            }
        }
    }
    Ok(tokens)
}

/// One person and one OAuth grant a tenant, made through the store's own grant path (a code
/// redeemed into a grant); returns the access tokens, valid a day.
pub fn populate_oauth(
    dir: &Path,
    connector_url: &str,
    tenants: usize,
) -> anyhow::Result<Vec<String>> {
    use common::store::people::{self, AuthCode, Person, Role};
    let store = open_store(&dir.join("store"))?;
    let now = common::now_unix();
    let mut tokens = Vec::with_capacity(tenants);
    for i in 0..tenants {
        let tenant = TenantId::parse(&format!("bench-{i:05}"))?;
        let person = Person {
            id: format!("p_bench{i}"),
            tenant: tenant.clone(),
            name: format!("Bench person {i}"),
            email: None,
            role: Role::Member,
            created_at: now,
            user_handle: format!("00000000-0000-4000-8000-{i:012}"),
            passkeys: Vec::new(),
            last_sign_in_at: None,
        };
        store.people().add_person(&person)?;
        let code = AuthCode {
            client_id: "bench-client".into(),
            client_name: "bench".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: String::new(),
            resource: connector_url.to_owned(),
            scope: "mcp".into(),
            person: person.id.clone(),
            tenant,
            expires_at: now + 60,
        };
        let (_, hash) = people::new_secret("bench_");
        store.people().add_code(&hash, &code, now)?;
        let code = store
            .people()
            .redeem_code(&hash, now, |_| Ok(()))
            .map_err(|e| anyhow!(e.to_string()))?;
        let pair = store
            .people()
            .create_grant(&hash, &code, &person.name, now, 86_400, 86_400)?;
        tokens.push(pair.access_token);
    }
    store.flush()?;
    Ok(tokens)
}

/// `Store::open`, waiting out the lock a just-dropped handle holds for a few milliseconds.
/// (A loop of its own, not `tests::harness::eventually`: that fails a test by panicking, and
/// the bench reports the store's error instead.)
fn open_store(path: &Path) -> anyhow::Result<Store> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Store::open(path) {
            Err(StoreError::Locked(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => return Ok(other?),
        }
    }
}

/// Mean cost of the per-request token check, in process, over every token once (after a short
/// warm-up), on the freshly reopened store: signature, audience, expiry, stored record, tenant.
pub fn token_check(dir: &Path, public_url: &str, tokens: &[String]) -> anyhow::Result<f64> {
    let store = open_store(&dir.join("store"))?;
    let authority = TokenAuthority::load_or_generate(&dir.join("signing.key"), public_url)?;
    let rounds = tokens.len().max(100_000);
    for token in tokens.iter().take(10_000) {
        authority.authenticate(&store, token)?;
    }
    let started = Instant::now();
    for i in 0..rounds {
        // A stride through the list so consecutive checks hit unrelated records.
        let token = &tokens[(i * 7_919) % tokens.len()];
        std::hint::black_box(authority.authenticate(&store, token)?);
    }
    let mean = started.elapsed().as_secs_f64() * 1e6 / rounds as f64;
    drop(store);
    Ok(mean)
}
