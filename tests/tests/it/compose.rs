//! The docker deployment: `shared-server compose` renders one isolated instance per tenant with
//! its own volume, secret, admin port and Caddy site; regenerating is stable and keeps what the
//! operator filled in; no secret value reaches a written file; the healthcheck probe works
//! against a real server; `deploy/generate-compose.sh` works end to end; the Dockerfile is a
//! slim, non-root multi-stage build; Docker Compose itself accepts both renderings (one shared
//! server, or replicas on PostgreSQL).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::tenant::Tenant;
use serde_json::{Value, json};
use shared_server::compose::{
    self, ADMIN_PORT_BASE, ADMIN_PORT_SPAN, CONTAINER_UID, ComposeArgs, ComposeOptions, Contents,
    GeneratedFile, PLACEHOLDER_MARK,
};
use tests::harness::TestServer;
use tests::sandbox::{Fixture, Sandbox};

const DOMAIN: &str = "studio.example";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tenant(id: &str, created_at: u64) -> Tenant {
    serde_json::from_value(json!({
        "id": id,
        "name": format!("{id} Inc"),
        "webflow_sites": ["0123456789abcdef01234567"],
        "toolsets": ["webflow"],
        "created_at": created_at,
    }))
    .unwrap()
}

fn options() -> ComposeOptions {
    ComposeOptions::new(DOMAIN, "registry.example/studio-mcp:1.0").unwrap()
}

fn render(tenants: &[Tenant]) -> BTreeMap<String, Contents> {
    compose::render(tenants, &options())
        .unwrap()
        .into_iter()
        .map(|f| (f.path.display().to_string(), f.contents))
        .collect()
}

fn text<'a>(files: &'a BTreeMap<String, Contents>, path: &str) -> &'a str {
    match files.get(path) {
        Some(Contents::Text { text, .. }) => text,
        other => panic!("{path}: expected a generated text file, got {other:?}"),
    }
}

/// The compose file as top-level key -> entry -> body lines (indent removed, no comments).
/// Enough of YAML for the block style the renderer writes, and strict about indentation.
type Sections = BTreeMap<String, BTreeMap<String, Vec<String>>>;

fn sections(yaml: &str) -> Sections {
    let mut out = Sections::new();
    let (mut top, mut entry) = (None::<String>, None::<String>);
    for line in yaml.lines() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        match indent {
            0 => {
                let key = trimmed.split(':').next().unwrap().to_owned();
                out.entry(key.clone()).or_default();
                top = Some(key);
                entry = None;
            }
            2 => {
                let key = trimmed.split(':').next().unwrap().to_owned();
                let section = out
                    .get_mut(top.as_ref().expect("entry under a section"))
                    .unwrap();
                assert!(
                    section.insert(key.clone(), Vec::new()).is_none(),
                    "duplicate key {key}"
                );
                entry = Some(key);
            }
            n => {
                assert!(n >= 4 && n % 2 == 0, "odd indentation: {line:?}");
                let section = out.get_mut(top.as_ref().unwrap()).unwrap();
                section
                    .get_mut(entry.as_ref().expect("body under an entry"))
                    .unwrap()
                    .push(line[4..].to_owned());
            }
        }
    }
    out
}

/// `site -> reverse_proxy target` of a Caddyfile made of
/// `host { reverse_proxy x { request_buffers 1MiB } }` blocks.
fn caddy_sites(caddyfile: &str) -> BTreeMap<String, String> {
    let mut sites = BTreeMap::new();
    let mut lines = caddyfile
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'));
    while let Some(open) = lines.next() {
        let site = open.strip_suffix(" {").expect("a site block opens");
        let proxy = lines
            .next()
            .unwrap()
            .strip_prefix("reverse_proxy ")
            .and_then(|p| p.strip_suffix(" {"))
            .unwrap();
        assert_eq!(
            lines.next(),
            Some("request_buffers 1MiB"),
            "request bodies buffered"
        );
        assert_eq!(lines.next(), Some("}"), "one option per proxy");
        assert_eq!(lines.next(), Some("}"), "one directive per site");
        sites.insert(site.to_owned(), proxy.to_owned());
    }
    sites
}

/// Removes the indent-2 entries named `keys` (with their bodies and trailing blank lines).
fn remove_yaml_entries(yaml: &str, keys: &[String]) -> (String, usize) {
    let (mut out, mut removed, mut skipping) = (String::new(), 0, false);
    for line in yaml.lines() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        if skipping && (trimmed.is_empty() || indent > 2) {
            continue;
        }
        skipping = indent == 2 && keys.iter().any(|k| trimmed.starts_with(&format!("{k}:")));
        if skipping {
            removed += 1;
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    (out, removed)
}

/// Removes one site block (and the blank line before it) from a Caddyfile.
fn remove_caddy_site(caddyfile: &str, site: &str) -> String {
    let open = format!("\n{site} {{\n");
    let start = caddyfile.find(&open).expect("site present");
    let end = start + caddyfile[start..].find("\n}\n").unwrap() + "\n}\n".len();
    format!("{}{}", &caddyfile[..start], &caddyfile[end..])
}

fn body_has(body: &[String], line: &str) -> bool {
    body.iter().any(|l| l.trim() == line)
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[test]
fn each_tenant_gets_its_own_service_volume_secret_admin_port_and_site() {
    let files = render(&[tenant("globex", 2), tenant("acme", 1)]);
    let yaml = text(&files, "docker-compose.yml");
    let doc = sections(yaml);

    let services: Vec<_> = doc["services"].keys().cloned().collect();
    assert_eq!(
        services,
        ["caddy", "isolated-acme", "isolated-globex", "shared"]
    );
    let shared = &doc["services"]["shared"];
    for line in [
        r#"image: "registry.example/studio-mcp:1.0""#,
        r#"command: ["shared-server", "serve"]"#,
        r#"STUDIO_MCP_DATA_DIR: "/data""#,
        r#"STUDIO_MCP_LISTEN: "0.0.0.0:8787""#,
        r#"STUDIO_MCP_ADMIN_LISTEN: "0.0.0.0:8788""#,
        r#"STUDIO_MCP_PUBLIC_URL: "https://mcp.studio.example""#,
        r#"STUDIO_MCP_CONNECTOR_LISTEN: "0.0.0.0:8789""#,
        r#"STUDIO_MCP_CONNECTOR_URL: "https://connect.studio.example/mcp""#,
        r#"STUDIO_MCP_MASTER_KEY_FILE: "/run/secrets/shared_master_key""#,
        r#"STUDIO_MCP_LOG_FORMAT: "json""#,
        r#"- "shared-data:/data""#,
        r#"- "shared_master_key""#,
        r#"- "127.0.0.1:8788:8788""#,
        "healthcheck:",
        "restart: unless-stopped",
    ] {
        assert!(body_has(shared, line), "shared lacks {line}: {shared:#?}");
    }

    let mut admin_ports = BTreeSet::new();
    for t in ["acme", "globex"] {
        let body = &doc["services"][&format!("isolated-{t}")];
        for line in [
            r#"command: ["isolated-server", "serve"]"#.to_owned(),
            format!(r#"STUDIO_MCP_TENANT: "{t}""#),
            r#"STUDIO_MCP_LISTEN: "0.0.0.0:8790""#.to_owned(),
            r#"STUDIO_MCP_ADMIN_LISTEN: "0.0.0.0:8791""#.to_owned(),
            format!(r#"STUDIO_MCP_PUBLIC_URL: "https://{t}.mcp.studio.example""#),
            r#"STUDIO_MCP_CONNECTOR_LISTEN: "0.0.0.0:8792""#.to_owned(),
            format!(r#"STUDIO_MCP_CONNECTOR_URL: "https://{t}.connect.studio.example/mcp""#),
            format!(r#"STUDIO_MCP_MASTER_KEY_FILE: "/run/secrets/{t}_master_key""#),
            format!(r#"- "isolated-{t}-data:/data""#),
            format!(r#"- "{t}_master_key""#),
            "healthcheck:".to_owned(),
            "restart: unless-stopped".to_owned(),
        ] {
            assert!(
                body_has(body, &line),
                "isolated-{t} lacks {line}: {body:#?}"
            );
        }
        // Exactly one published port: the admin API, on the host's loopback.
        let published: Vec<_> = body
            .iter()
            .filter_map(|l| l.trim().strip_prefix("- \"127.0.0.1:"))
            .collect();
        assert_eq!(published.len(), 1, "{body:#?}");
        let (host, container) = published[0].trim_end_matches('"').split_once(':').unwrap();
        assert_eq!(container, "8791");
        let host: u16 = host.parse().unwrap();
        assert!((ADMIN_PORT_BASE..ADMIN_PORT_BASE + ADMIN_PORT_SPAN).contains(&host));
        assert!(admin_ports.insert(host), "admin port {host} shared");
        // Another tenant's resources are nowhere in this service.
        let other = if t == "acme" { "globex" } else { "acme" };
        assert!(!body.iter().any(|l| l.contains(other)), "{body:#?}");
    }
    // Every other published port is Caddy's, or on the host's loopback.
    for line in yaml.lines().map(str::trim) {
        if let Some(port) = line.strip_prefix("- \"")
            && port.chars().next().is_some_and(|c| c.is_ascii_digit())
            && port.contains(':')
            && !port.contains(":/")
        {
            assert!(
                port.starts_with("127.0.0.1:")
                    || ["80:80\"", "443:443\"", "443:443/udp\""].contains(&port),
                "published beyond loopback: {line}"
            );
        }
    }

    let volumes: Vec<_> = doc["volumes"].keys().cloned().collect();
    assert_eq!(
        volumes,
        [
            "caddy-config",
            "caddy-data",
            "isolated-acme-data",
            "isolated-globex-data",
            "metrics-isolated-acme",
            "metrics-isolated-globex",
            "metrics-shared",
            "shared-data"
        ]
    );
    let secrets: BTreeMap<_, _> = doc["secrets"]
        .iter()
        .map(|(k, body)| (k.clone(), body.join("\n")))
        .collect();
    assert_eq!(
        secrets,
        BTreeMap::from([
            (
                "acme_master_key".into(),
                "file: ./secrets/acme/master.key".into()
            ),
            (
                "globex_master_key".into(),
                "file: ./secrets/globex/master.key".into()
            ),
            (
                "shared_master_key".into(),
                "file: ./secrets/shared/master.key".into()
            ),
        ])
    );

    let caddy = &doc["services"]["caddy"];
    for line in [
        r#"image: "caddy:2""#,
        r#"- "./caddy:/etc/caddy:ro""#,
        r#"command: ["caddy", "run", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile", "--watch"]"#,
        r#"- "caddy-data:/data""#,
        r#"- "caddy-config:/config""#,
    ] {
        assert!(body_has(caddy, line), "caddy lacks {line}");
    }
    // Two sites per server, the static door and the connector door: the connectors of the
    // isolated instances under connect.<domain>, one wildcard record for all of them.
    let sites = caddy_sites(text(&files, "caddy/Caddyfile"));
    assert_eq!(
        sites,
        BTreeMap::from([
            ("mcp.studio.example".into(), "shared:8787".into()),
            ("connect.studio.example".into(), "shared:8789".into()),
            (
                "acme.mcp.studio.example".into(),
                "isolated-acme:8790".into()
            ),
            (
                "acme.connect.studio.example".into(),
                "isolated-acme:8792".into()
            ),
            (
                "globex.mcp.studio.example".into(),
                "isolated-globex:8790".into()
            ),
            (
                "globex.connect.studio.example".into(),
                "isolated-globex:8792".into()
            ),
        ])
    );

    // Secrets folders: a master key and the three credential placeholders per tenant.
    let secret_files: Vec<_> = files
        .keys()
        .filter(|p| p.starts_with("secrets/"))
        .cloned()
        .collect();
    assert_eq!(
        secret_files,
        [
            "secrets/acme/cloudflare",
            "secrets/acme/master.key",
            "secrets/acme/stripe",
            "secrets/acme/webflow",
            "secrets/globex/cloudflare",
            "secrets/globex/master.key",
            "secrets/globex/stripe",
            "secrets/globex/webflow",
            "secrets/shared/master.key",
        ]
    );
    match &files["secrets/acme/stripe"] {
        Contents::Placeholder(p) => {
            assert!(p.starts_with(PLACEHOLDER_MARK) && p.contains("stripe") && p.contains("acme"))
        }
        other => panic!("{other:?}"),
    }

    check_with_python_yaml(yaml);
}

/// A real YAML parser's view, when this machine has PyYAML (the test does not require it).
fn check_with_python_yaml(yaml: &str) {
    use std::io::Write;
    let child = std::process::Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        eprintln!("python3 not found: YAML checked line by line only");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("No module named"),
            "PyYAML could not parse the compose file: {stderr}"
        );
        eprintln!("PyYAML not installed: YAML checked line by line only");
        return;
    }
    let doc: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["name"], "studio-mcp");
    let services = doc["services"].as_object().unwrap();
    for (name, port) in [
        ("isolated-acme", 8790),
        ("isolated-globex", 8790),
        ("shared", 8787),
    ] {
        let s = &services[name];
        assert_eq!(s["restart"], "unless-stopped");
        assert_eq!(s["environment"]["STUDIO_MCP_DATA_DIR"], "/data");
        let test = s["healthcheck"]["test"].as_array().unwrap();
        assert_eq!(test[..3], [json!("CMD"), json!("bash"), json!("-c")]);
        assert!(
            test[3]
                .as_str()
                .unwrap()
                .contains(&format!("/dev/tcp/127.0.0.1/{port} "))
        );
        assert_eq!(s["ports"].as_array().unwrap().len(), 1);
        assert_eq!(s["secrets"].as_array().unwrap().len(), 1);
    }
    assert_eq!(
        services["isolated-acme"]["environment"]["STUDIO_MCP_TENANT"],
        "acme"
    );
    for (name, url) in [
        ("shared", "https://connect.studio.example/mcp"),
        (
            "isolated-globex",
            "https://globex.connect.studio.example/mcp",
        ),
    ] {
        assert_eq!(
            services[name]["environment"]["STUDIO_MCP_CONNECTOR_URL"],
            url
        );
    }
    assert_eq!(
        doc["secrets"]["globex_master_key"]["file"],
        "./secrets/globex/master.key"
    );
    assert_eq!(doc["volumes"].as_object().unwrap().len(), 8);
}

#[test]
fn regenerating_is_identical_and_a_new_tenant_adds_only_its_own_parts() {
    let before = [tenant("acme", 1), tenant("globex", 2)];
    assert_eq!(render(&before), render(&before));
    let mut after = before.to_vec();
    // Sorts between the two: its blocks land in the middle of every section.
    after.push(tenant("bravo", 3));
    let (old, new) = (render(&before), render(&after));

    let old_paths: BTreeSet<_> = old.keys().cloned().collect();
    let new_paths: BTreeSet<_> = new.keys().cloned().collect();
    assert!(old_paths.is_subset(&new_paths));
    let added: Vec<_> = new_paths.difference(&old_paths).cloned().collect();
    assert_eq!(
        added,
        [
            "secrets/bravo/cloudflare",
            "secrets/bravo/master.key",
            "secrets/bravo/stripe",
            "secrets/bravo/webflow"
        ]
    );
    for path in &old_paths {
        match path.as_str() {
            "docker-compose.yml" => {
                // New minus bravo's service, volume and secret entries is the old file, line
                // for line: the only added lines are those blocks.
                let keys = [
                    "isolated-bravo",
                    "isolated-bravo-data",
                    "metrics-isolated-bravo",
                    "bravo_master_key",
                ]
                .map(String::from);
                let (stripped, removed) = remove_yaml_entries(text(&new, path), &keys);
                assert_eq!(removed, 4, "each of bravo's entries is present once");
                assert_eq!(stripped, text(&old, path));
                assert_eq!(
                    remove_yaml_entries(text(&old, path), &keys).1,
                    0,
                    "bravo was not in the old file"
                );
            }
            "caddy/Caddyfile" => assert_eq!(
                remove_caddy_site(
                    &remove_caddy_site(text(&new, path), "bravo.mcp.studio.example"),
                    "bravo.connect.studio.example"
                ),
                text(&old, path)
            ),
            _ => assert_eq!(new[path], old[path], "{path} changed"),
        }
    }
}

#[test]
fn admin_ports_never_move_when_tenants_are_added_and_collisions_go_by_age() {
    // Two ids whose hashes land on the same port.
    let mut seen = BTreeMap::new();
    let (first, second) = (0..)
        .map(|i| format!("t{i}"))
        .find_map(|id| {
            let slot = compose::fnv1a(id.as_bytes()) % u32::from(ADMIN_PORT_SPAN);
            seen.insert(slot, id.clone()).map(|earlier| (earlier, id))
        })
        .unwrap();
    let hashed =
        ADMIN_PORT_BASE + (compose::fnv1a(first.as_bytes()) % u32::from(ADMIN_PORT_SPAN)) as u16;
    for (older, newer) in [(&first, &second), (&second, &first)] {
        let ports = compose::admin_ports(&[tenant(newer, 20), tenant(older, 10)]).unwrap();
        let old_port = ports[&common::domain::TenantId::parse(older).unwrap()];
        let new_port = ports[&common::domain::TenantId::parse(newer).unwrap()];
        assert_eq!(old_port, hashed, "the older tenant keeps its own port");
        assert_ne!(new_port, old_port);
    }

    // Tenants added one by one (including that collision): no assigned port ever changes.
    let mut ids: Vec<String> = (0..300).map(|i| format!("client-{i}")).collect();
    ids.extend([first, second]);
    let mut tenants = Vec::new();
    let mut previous = BTreeMap::new();
    for (age, id) in ids.iter().enumerate() {
        tenants.push(tenant(id, age as u64));
        let ports = compose::admin_ports(&tenants).unwrap();
        for (t, port) in &previous {
            assert_eq!(ports[t], *port, "{t} moved when {id} was added");
        }
        let distinct: BTreeSet<_> = ports.values().collect();
        assert_eq!(distinct.len(), ports.len());
        previous = ports;
    }
}

#[test]
fn a_tenant_named_shared_and_unsafe_options_are_refused() {
    let err = compose::render(&[tenant("shared", 1)], &options()).unwrap_err();
    assert!(err.to_string().contains("shared"), "{err}");
    assert!(ComposeOptions::new("https://studio.example", "x").is_err());
    assert!(ComposeOptions::new(DOMAIN, "x\nservices:").is_err());
}

#[test]
fn writing_twice_keeps_the_operators_files_and_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<GeneratedFile> =
        compose::render(&[tenant("acme", 1), tenant("globex", 2)], &options()).unwrap();
    let first = compose::write(dir.path(), &files).unwrap();
    assert!(first.kept.is_empty());
    assert_eq!(first.written.len(), files.len());

    let out = dir.path();
    let mode = |p: &str| std::fs::metadata(out.join(p)).unwrap().permissions().mode() & 0o777;
    for p in ["secrets", "secrets/acme", "secrets/shared"] {
        assert_eq!(mode(p), 0o700, "{p}");
    }
    for p in [
        "secrets/acme/webflow",
        "secrets/acme/master.key",
        "secrets/shared/master.key",
    ] {
        assert_eq!(mode(p), 0o600, "{p}");
    }
    assert_eq!(mode("onboard.sh"), 0o755);
    assert_eq!(mode("docker-compose.yml"), 0o644);
    // Master keys are fresh, distinct, valid keys, handed to the container user when possible.
    let key = |p: &str| std::fs::read_to_string(out.join(p)).unwrap();
    let (shared_key, acme_key) = (
        key("secrets/shared/master.key"),
        key("secrets/acme/master.key"),
    );
    assert_eq!(shared_key.len(), 64);
    assert!(shared_key.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_ne!(shared_key, acme_key);
    for p in ["secrets/shared/master.key", "secrets/acme/master.key"] {
        let owner = std::fs::metadata(out.join(p)).unwrap().uid();
        assert!(
            owner == CONTAINER_UID || first.not_chowned.contains(&PathBuf::from(p)),
            "{p}"
        );
    }

    // The operator fills in a credential; regenerating keeps it and every key.
    let filled = "wf_operator_pasted_this";
    std::fs::write(out.join("secrets/acme/webflow"), filled).unwrap();
    let compose_before = std::fs::read(out.join("docker-compose.yml")).unwrap();
    let second = compose::write(out, &files).unwrap();
    assert_eq!(key("secrets/acme/webflow"), filled);
    assert_eq!(key("secrets/shared/master.key"), shared_key);
    assert_eq!(key("secrets/acme/master.key"), acme_key);
    assert_eq!(
        std::fs::read(out.join("docker-compose.yml")).unwrap(),
        compose_before
    );
    assert!(second.kept.contains(&PathBuf::from("secrets/acme/webflow")));
    assert!(
        second.written.iter().all(|p| !p.starts_with("secrets")),
        "{:?}",
        second.written
    );
    assert!(
        !files_under(out)
            .iter()
            .any(|p| p.to_string_lossy().ends_with('~')),
        "no temporary file left behind"
    );

    // A master key file that is not a key is refused, never replaced.
    std::fs::write(out.join("secrets/globex/master.key"), "REPLACE_ME").unwrap();
    let err = compose::write(out, &files).unwrap_err();
    assert!(format!("{err:#}").contains("master.key"), "{err:#}");
    assert_eq!(key("secrets/globex/master.key"), "REPLACE_ME");
}

/// Every credential, token and key a provisioned server knows, for leak searches.
struct Known {
    values: Vec<(String, String)>,
}

impl Known {
    fn assert_absent_from(&self, dir: &Path) {
        let files = files_under(dir);
        assert!(!files.is_empty());
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            let contents = String::from_utf8_lossy(&bytes);
            for (what, value) in &self.values {
                assert!(
                    !contents.contains(value.as_str()),
                    "{what} found in {}",
                    file.display()
                );
            }
        }
    }
}

async fn provisioned_server(sandbox: &Sandbox) -> (TestServer, Known) {
    let server = TestServer::start(sandbox).await;
    let mut values = vec![("admin token".to_owned(), server.admin_token.clone())];
    for owner in ["acme", "globex"] {
        let fixture = sandbox.fixture().owner(owner).unwrap();
        let provisioned = server.provision(fixture).await;
        // The isolated instances' kinds too, so every sandbox credential is on the server.
        for (kind, value) in [
            ("cloudflare", &fixture.cloudflare_token),
            ("stripe", &fixture.stripe_key),
        ] {
            server
                .admin
                .set_secret(owner, kind, value.clone())
                .await
                .unwrap();
        }
        for (what, value) in [
            ("webflow token", &fixture.token),
            ("plausible key", &fixture.plausible_token),
            ("github token", &fixture.github_token),
            ("cloudflare token", &fixture.cloudflare_token),
            ("stripe key", &fixture.stripe_key),
            ("MCP token", &provisioned.token),
        ] {
            values.push((format!("{owner} {what}"), value.clone()));
        }
    }
    (server, Known { values })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_through_the_admin_api_writes_every_tenant_and_no_secret() {
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let (server, known) = provisioned_server(&sandbox).await;
    let out = tempfile::tempdir().unwrap();
    let args = ComposeArgs {
        out_dir: out.path().to_owned(),
        domain: DOMAIN.to_owned(),
        image: "studio-mcp:latest".to_owned(),
        no_tenants: false,
        shared_replicas: None,
        postgres: false,
        postgres_image: None,
        with_prometheus: true,
        prometheus_image: None,
    };
    compose::run(&server.admin, &args).await.unwrap();

    let yaml = std::fs::read_to_string(out.path().join("docker-compose.yml")).unwrap();
    let services: Vec<_> = sections(&yaml)["services"].keys().cloned().collect();
    assert_eq!(
        services,
        [
            "caddy",
            "isolated-acme",
            "isolated-globex",
            "prometheus",
            "shared"
        ]
    );
    // A scrape job per server, each naming its metrics-token file; the admin token (in `known`)
    // is in no file of the folder, Prometheus's included, and none names it.
    let config = std::fs::read_to_string(out.path().join("prometheus/prometheus.yml")).unwrap();
    for server in ["shared", "isolated-acme", "isolated-globex"] {
        assert_eq!(
            config
                .matches(&format!(
                    "credentials_file: \"/metrics-tokens/{server}/token\""
                ))
                .count(),
            1,
            "{config}"
        );
    }
    assert!(!config.contains("admin-token"), "{config}");
    known.assert_absent_from(out.path());
    server.stop().await;
}

/// `docker compose config` on a rendered folder: Compose's own reading of the file, with every
/// reference (secrets, volumes, depends_on) resolved. `None` when no docker binary exists, or
/// one without the Compose v2 plugin (a fresh machine, until tests/compose/run.sh installs it).
fn docker_compose_config(dir: &Path) -> Option<Value> {
    let plugin = std::process::Command::new("docker")
        .args(["compose", "version"])
        .output();
    if !plugin.is_ok_and(|o| o.status.success()) {
        return None;
    }
    let compose_file = dir.join("docker-compose.yml");
    let run = |extra: &[&str]| {
        std::process::Command::new("docker")
            .arg("compose")
            .arg("-f")
            .arg(&compose_file)
            .arg("config")
            .args(extra)
            // The folder's own settings only, whatever the caller's environment says.
            .env_remove("COMPOSE_FILE")
            .env_remove("COMPOSE_PROJECT_NAME")
            .output()
    };
    let quiet = match run(&["-q"]) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        other => other.unwrap(),
    };
    assert!(
        quiet.status.success(),
        "docker compose config -q refused the file: {}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let json = run(&["--format", "json"]).unwrap();
    assert!(json.status.success(), "{json:?}");
    Some(serde_json::from_slice(&json.stdout).unwrap())
}

#[test]
fn docker_compose_accepts_both_renderings() {
    let dir = tempfile::tempdir().unwrap();
    let tenants = [tenant("acme", 1), tenant("globex", 2)];
    let replicated = ComposeOptions::new(DOMAIN, "studio-mcp:latest")
        .unwrap()
        .with_postgres(2, compose::DEFAULT_POSTGRES_IMAGE)
        .unwrap();
    // Both with Prometheus, so Compose also resolves its volumes, secret and dependencies.
    let single = options()
        .with_prometheus(compose::DEFAULT_PROMETHEUS_IMAGE)
        .unwrap();
    let replicated = replicated
        .with_prometheus(compose::DEFAULT_PROMETHEUS_IMAGE)
        .unwrap();
    for (name, options) in [("single", single), ("replicas", replicated)] {
        let out = dir.path().join(name);
        compose::write(&out, &compose::render(&tenants, &options).unwrap()).unwrap();
        let Some(config) = docker_compose_config(&out) else {
            eprintln!("SKIPPED docker compose config: no docker binary with Compose v2 on PATH");
            return;
        };
        let services = config["services"].as_object().unwrap();
        let prometheus = &services["prometheus"];
        let published: Vec<_> = prometheus["ports"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["host_ip"].as_str().unwrap(),
                    p["target"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(published, [("127.0.0.1", 9090)]);
        let mounts: Vec<_> = prometheus["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                let read_only = v["read_only"].as_bool().unwrap_or(false);
                (v["target"].as_str().unwrap().to_owned(), read_only)
            })
            .collect();
        // Each server's metrics-token volume, read-only, and nothing else of the servers: no
        // data volume, no secret (the replicas' shared admin token included).
        let servers: Vec<_> = services
            .keys()
            .filter(|s| s.starts_with("shared") || s.starts_with("isolated-"))
            .collect();
        let mut expected = vec![
            ("/etc/prometheus".to_owned(), true),
            ("/prometheus".to_owned(), false),
        ];
        expected.extend(
            servers
                .iter()
                .map(|s| (format!("/metrics-tokens/{s}"), true)),
        );
        let mut mounts = mounts;
        mounts.sort();
        expected.sort();
        assert_eq!(mounts, expected, "{prometheus}");
        assert!(prometheus.get("secrets").is_none(), "{prometheus}");
        for server in &servers {
            let own = &services[server.as_str()];
            assert_eq!(
                own["environment"]["STUDIO_MCP_METRICS_TOKEN_FILE"],
                "/metrics-token/token"
            );
            let volume = own["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["target"] == "/metrics-token")
                .unwrap_or_else(|| panic!("{server}: {own}"));
            assert_eq!(volume["source"], format!("metrics-{server}"));
        }
        if name == "single" {
            assert!(services.contains_key("shared"));
            continue;
        }
        let mut names: Vec<_> = services.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "caddy",
                "isolated-acme",
                "isolated-globex",
                "postgres",
                "prometheus",
                "shared-1",
                "shared-2"
            ]
        );
        for k in 1..=2 {
            let replica = &services[&format!("shared-{k}")];
            assert_eq!(
                replica["depends_on"]["postgres"]["condition"],
                "service_healthy"
            );
            let env = &replica["environment"];
            assert_eq!(
                env["STUDIO_MCP_STORE"],
                "postgres://studio_mcp@postgres:5432/studio_mcp"
            );
            assert_eq!(env["STUDIO_MCP_REPLICA_NAME"], format!("shared-{k}"));
            // Every replica has the one connector door behind Caddy, on no published port.
            assert_eq!(env["STUDIO_MCP_CONNECTOR_LISTEN"], "0.0.0.0:8789");
            assert_eq!(
                env["STUDIO_MCP_CONNECTOR_URL"],
                "https://connect.studio.example/mcp"
            );
            let published: Vec<_> = replica["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["target"].as_u64().unwrap())
                .collect();
            assert_eq!(published, [8788], "only the admin API, on loopback");
            let mut secrets: Vec<_> = replica["secrets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["source"].as_str().unwrap())
                .collect();
            secrets.sort_unstable();
            assert_eq!(
                secrets,
                [
                    "postgres-password",
                    "shared-admin-token",
                    "shared-master-key",
                    "shared-signing-key"
                ]
            );
        }
        let caddy_needs: BTreeSet<_> = services["caddy"]["depends_on"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            caddy_needs,
            BTreeSet::from(["shared-1".into(), "shared-2".into()])
        );
        let postgres = &services["postgres"];
        assert_eq!(postgres["image"], "postgres:16");
        assert_eq!(postgres["healthcheck"]["test"][1], "pg_isready");
        // Every secret file resolves inside the folder, and holds no value in the file itself.
        for (secret, body) in config["secrets"].as_object().unwrap() {
            let file = Path::new(body["file"].as_str().unwrap());
            assert!(
                file.starts_with(&out) && file.exists(),
                "{secret}: {file:?}"
            );
        }
        let yaml = std::fs::read_to_string(out.join("docker-compose.yml")).unwrap();
        for file in files_under(&out.join("secrets")) {
            let value = std::fs::read_to_string(&file).unwrap();
            if !value.starts_with(PLACEHOLDER_MARK) {
                assert!(!yaml.contains(value.trim()), "{}", file.display());
            }
        }
    }
}

/// Prometheus's own checker on the generated configuration and the copied rules, when this
/// machine has `promtool` (tests/prometheus/run.sh installs it). `--syntax-only`: the token
/// files and the rules are at paths inside the container.
#[test]
fn promtool_accepts_the_generated_prometheus_folder() {
    let dir = tempfile::tempdir().unwrap();
    let options = options()
        .with_prometheus(compose::DEFAULT_PROMETHEUS_IMAGE)
        .unwrap();
    let tenants = [tenant("acme", 1), tenant("globex", 2)];
    compose::write(dir.path(), &compose::render(&tenants, &options).unwrap()).unwrap();
    let folder = dir.path().join("prometheus");
    let promtool = |args: &[&str]| {
        std::process::Command::new("promtool")
            .args(args)
            .current_dir(&folder)
            .output()
    };
    let config = match promtool(&["check", "config", "--syntax-only", "prometheus.yml"]) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("SKIPPED promtool: not on PATH");
            return;
        }
        other => other.unwrap(),
    };
    assert!(config.status.success(), "{config:?}");
    let rules = promtool(&["check", "rules", "alerts.yml"]).unwrap();
    assert!(rules.status.success(), "{rules:?}");
    let repository_rules =
        std::fs::read_to_string(repo_root().join("deploy/prometheus/alerts.yml")).unwrap();
    let count = repository_rules.matches("- alert:").count();
    assert!(
        String::from_utf8_lossy(&rules.stdout).contains(&format!("SUCCESS: {count} rules found")),
        "{rules:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_probe_passes_on_a_live_server_and_fails_otherwise() {
    let sandbox = Sandbox::start(Fixture::new(&["acme"])).await.unwrap();
    let server = TestServer::start(&sandbox).await;
    let argv: Vec<String> = serde_json::from_str(&compose::healthcheck_test(8787)).unwrap();
    assert_eq!(argv[..3], ["CMD", "bash", "-c"]);
    let probe = |port: u16| {
        let script = argv[3].replace("127.0.0.1/8787", &format!("127.0.0.1/{port}"));
        async move {
            tokio::process::Command::new("bash")
                .args(["-c", &script])
                .stderr(std::process::Stdio::null())
                .status()
                .await
                .unwrap()
                .success()
        }
    };
    let live: u16 = server
        .mcp_url
        .trim_end_matches("/mcp")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(probe(live).await, "healthy server");

    // Something listening that answers but is not healthy.
    let sick = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sick_port = sick.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut conn, _)) = sick.accept().await {
            let mut buf = [0u8; 512];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    });
    assert!(!probe(sick_port).await, "503 is unhealthy");

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_port = closed.local_addr().unwrap().port();
    drop(closed);
    assert!(!probe(closed_port).await, "connection refused is unhealthy");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_compose_script_writes_the_deployment_from_a_running_server() {
    let Some(binary) = tests::harness::shared_server_binary().await else {
        return;
    };
    let sandbox = Sandbox::start(Fixture::new(&["acme", "globex"]))
        .await
        .unwrap();
    let (server, known) = provisioned_server(&sandbox).await;
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("deployment");
    let run = |extra: &'static [&'static str]| {
        let mut command = tokio::process::Command::new("bash");
        command
            .arg(repo_root().join("deploy/generate-compose.sh"))
            .arg(&out_dir)
            .args(["--domain", DOMAIN])
            .args(extra)
            .env("SHARED_SERVER_BIN", &binary)
            .env("STUDIO_MCP_ADMIN_URL", &server.admin_url)
            .env("STUDIO_MCP_ADMIN_TOKEN", &server.admin_token)
            .env_remove("STUDIO_MCP_DATA_DIR")
            .env_remove("STUDIO_MCP_CONFIG");
        async move { command.output().await.unwrap() }
    };
    let output = run(&[]).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "generate-compose.sh failed: {stderr}"
    );
    assert!(stderr.contains("2 isolated instance(s)"), "{stderr}");

    let yaml = std::fs::read_to_string(out_dir.join("docker-compose.yml")).unwrap();
    let doc = sections(&yaml);
    assert!(doc["services"].contains_key("isolated-acme"));
    assert!(doc["services"].contains_key("isolated-globex"));
    let sites =
        caddy_sites(&std::fs::read_to_string(out_dir.join("caddy").join("Caddyfile")).unwrap());
    assert_eq!(
        sites.len(),
        6,
        "two doors for each of three servers: {sites:?}"
    );
    assert_eq!(sites["connect.studio.example"], "shared:8789");
    assert_eq!(
        sites["globex.connect.studio.example"],
        "isolated-globex:8792"
    );
    for t in ["acme", "globex", "shared"] {
        assert!(out_dir.join("secrets").join(t).join("master.key").exists());
    }
    known.assert_absent_from(&out_dir);

    // A second run keeps what the operator filled in; a bad admin token fails loudly.
    std::fs::write(out_dir.join("secrets/globex/stripe"), "sk_live_operator").unwrap();
    assert!(run(&[]).await.status.success());
    assert_eq!(
        std::fs::read_to_string(out_dir.join("secrets/globex/stripe")).unwrap(),
        "sk_live_operator"
    );
    let refused = tokio::process::Command::new("bash")
        .arg(repo_root().join("deploy/generate-compose.sh"))
        .arg(&out_dir)
        .env("SHARED_SERVER_BIN", &binary)
        .env("STUDIO_MCP_ADMIN_URL", &server.admin_url)
        .env("STUDIO_MCP_ADMIN_TOKEN", "adm_wrong")
        .output()
        .await
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("admin token required"));
    server.stop().await;
}

/// `FROM` stages of a Dockerfile: (image, instructions), continuation lines joined.
fn dockerfile_stages(text: &str) -> Vec<(String, Vec<String>)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        current.push_str(trimmed.trim_end_matches('\\'));
        current.push(' ');
        if !trimmed.ends_with('\\') {
            instructions.push(current.trim().to_owned());
            current.clear();
        }
    }
    let mut stages: Vec<(String, Vec<String>)> = Vec::new();
    for instruction in instructions {
        let mut words = instruction.split_whitespace();
        if words.next().unwrap().eq_ignore_ascii_case("FROM") {
            let image = words.find(|w| !w.starts_with("--")).unwrap().to_owned();
            stages.push((image, Vec::new()));
        } else if let Some(stage) = stages.last_mut() {
            stage.1.push(instruction);
        } else {
            // Only global build arguments may come before the first FROM.
            assert!(instruction.starts_with("ARG "), "FROM first: {instruction}");
        }
    }
    stages
}

#[test]
fn the_dockerfile_builds_in_one_stage_and_runs_slim_and_unprivileged_in_another() {
    let text = std::fs::read_to_string(repo_root().join("deploy/Dockerfile")).unwrap();
    let stages = dockerfile_stages(&text);
    assert!(stages.len() >= 2, "multi-stage: {stages:?}");
    let (builder_image, builder) = &stages[0];
    assert!(builder_image.starts_with("rust:"), "{builder_image}");
    assert!(builder.iter().any(|i| {
        i.contains("cargo build --profile dist --locked -p shared-server -p isolated-server")
    }));

    let (runtime_image, runtime) = stages.last().unwrap();
    assert!(
        runtime_image.starts_with("debian:") && runtime_image.contains("slim"),
        "{runtime_image}"
    );
    let instruction = |keyword: &str| -> Vec<&String> {
        runtime
            .iter()
            .filter(|i| i.split_whitespace().next() == Some(keyword))
            .collect()
    };
    for i in instruction("RUN") {
        for tool in ["cargo", "rustc", "rustup", "build-essential", "gcc", "curl"] {
            assert!(
                !i.split(|c: char| c.is_whitespace() || c == ';' || c == '&')
                    .any(|w| w == tool),
                "{tool} in the runtime stage: {i}"
            );
        }
        if i.contains("apt-get install") {
            assert!(i.contains("--no-install-recommends ca-certificates"), "{i}");
            assert!(i.contains("rm -rf /var/lib/apt/lists"), "{i}");
        }
    }
    let users = instruction("USER");
    let user = users.last().expect("a USER in the runtime stage");
    let uid = user
        .split_whitespace()
        .nth(1)
        .unwrap()
        .split(':')
        .next()
        .unwrap();
    assert!(!["root", "0"].contains(&uid), "{user}");
    assert_eq!(
        uid,
        CONTAINER_UID.to_string(),
        "compose chowns keys to this uid"
    );
    let copies = instruction("COPY")
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("\n");
    for binary in ["shared-server", "isolated-server"] {
        assert!(
            copies.contains(&format!("/{binary}")),
            "{binary} not copied: {copies}"
        );
    }
    assert!(copies.contains("--from=binaries") && copies.contains("/usr/local/bin/"));
    // The binaries come from the builder stage by default, or from the host's dist build.
    assert!(text.contains("ARG BINARIES=builder"));
    assert!(
        stages.iter().any(|(image, _)| image == "${BINARIES}"),
        "{stages:?}"
    );
    let (_, host) = stages
        .iter()
        .find(|(image, _)| image == "scratch")
        .expect("a host stage");
    assert!(
        host.iter()
            .any(|i| i.contains("COPY target/dist/shared-server target/dist/isolated-server /out/")),
        "{host:?}"
    );
    let exposed = instruction("EXPOSE")
        .into_iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    for port in ["8787", "8788", "8789", "8790", "8791", "8792"] {
        assert!(
            exposed.split_whitespace().any(|p| p == port),
            "{port}: {exposed}"
        );
    }
    assert!(
        runtime
            .iter()
            .any(|i| i.starts_with("VOLUME") && i.contains("/data"))
    );

    // The build context keeps sources in and build output and keys out.
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    let patterns: Vec<_> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(patterns.contains(&"**/target") && patterns.contains(&".git"));
    assert!(patterns.contains(&"**/*.key"));
    for needed in [
        "Cargo.toml",
        "Cargo.lock",
        "common",
        "shared-server",
        "isolated-server",
        "tests",
    ] {
        assert!(!patterns.contains(&needed), "{needed} must reach the build");
    }
}

#[test]
fn onboard_sh_feeds_only_filled_in_credentials_to_the_instance() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("deployment");
    let files = compose::render(&[tenant("acme", 1)], &options()).unwrap();
    compose::write(&out, &files).unwrap();
    std::fs::write(out.join("secrets/acme/stripe"), "sk_test_filled_in\n").unwrap();

    // A stand-in `docker` that records each call and what it was fed: an exported bash
    // function rather than a script, since exec'ing a file this process has just written can
    // fail with ETXTBSY when another test thread forks at that moment.
    let log = dir.path().join("docker.log");
    let docker = r#"() { { echo "ARGS $*"; echo "STDIN $(cat)"; } >>"$DOCKER_LOG"; }"#;
    let run = |args: &[&str]| {
        std::process::Command::new("bash")
            .arg(out.join("onboard.sh"))
            .args(args)
            .env("BASH_FUNC_docker%%", docker)
            .env("DOCKER_LOG", &log)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };

    let output = run(&["acme", "--name", "Acme", "--stripe-customer", "cus_1"]);
    assert!(output.status.success(), "{output:?}");
    let calls = std::fs::read_to_string(&log).unwrap();
    let exec =
        "ARGS compose exec -T isolated-acme isolated-server --admin-url http://127.0.0.1:8791";
    assert_eq!(
        calls,
        format!(
            "{exec} tenant set --name Acme --stripe-customer cus_1\nSTDIN \n\
             {exec} secret set acme stripe\nSTDIN sk_test_filled_in\n"
        ),
        "webflow and cloudflare are still placeholders and are skipped"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("skipped webflow") && stderr.contains("skipped cloudflare"));

    // A tenant without a secrets folder is refused before docker is called.
    std::fs::remove_file(&log).unwrap();
    assert_eq!(run(&["../acme"]).status.code(), Some(2));
    assert_eq!(run(&["globex"]).status.code(), Some(2));
    assert!(!log.exists());
}
