//! Sandbox GitHub REST API (`X-GitHub-Api-Version: 2022-11-28`): get a repository, list its
//! commits, workflow runs and deployments, scoped like a fine-grained token limited to the
//! owner's repositories.
//!
//! Shapes follow docs.github.com/rest (operations "Get a repository", "List commits", "List
//! workflow runs for a repository", "List deployments"): snake_case objects, `per_page`/`page`
//! paging with a `Link` header, errors as `{message, documentation_url, status}`. A repository the
//! token cannot see answers `404 Not Found`, exactly as GitHub hides private repositories, so a
//! foreign repository looks the same as one that does not exist.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::{Caller, Fixture, civil_from_days};

/// The only REST API version the sandbox (like GitHub today) accepts in `X-GitHub-Api-Version`.
pub const API_VERSION: &str = "2022-11-28";
/// Each owner's repositories, as `<owner>-web/<name>`.
pub const REPO_NAMES: [&str; 2] = ["website", "infra"];
pub const COMMITS_PER_REPO: usize = 12;
pub const RUNS_PER_REPO: usize = 5;
pub const DEPLOYMENTS_PER_REPO: usize = 3;
/// Branches and the index (newest first) of the commit each points at.
pub const BRANCHES: [(&str, usize); 2] = [("main", 0), ("preview", 1)];

/// GitHub's documented default and maximum page sizes.
const DEFAULT_PER_PAGE: usize = 30;
const MAX_PER_PAGE: usize = 100;
/// 2025-05-02, the day of every repository's newest commit; older ones go back a day each.
const NEWEST_COMMIT_DAY: i64 = 20_210;
/// Each run is on the commit with the same index; the newest one succeeded.
const RUNS: [(&str, &str, &str); RUNS_PER_REPO] = [
    ("main", "success", "push"),
    ("preview", "failure", "push"),
    ("main", "success", "push"),
    ("main", "cancelled", "workflow_dispatch"),
    ("main", "success", "push"),
];
/// `(commit index, environment, ref)` of each deployment, newest first.
const DEPLOYMENTS: [(usize, &str, &str); DEPLOYMENTS_PER_REPO] = [
    (0, "production", "main"),
    (1, "preview", "preview"),
    (3, "production", "main"),
];
const COMMIT_MESSAGES: [&str; COMMITS_PER_REPO] = [
    "Update hero copy",
    "Fix nav overlap on mobile",
    "Add blog post template",
    "Bump dependencies",
    "Tune image sizes",
    "Add contact form",
    "Refactor layout components",
    "Fix typo in footer",
    "Add analytics snippet",
    "Set up CI workflow",
    "Add README",
    "Initial commit",
];

const DOCS_ROOT: &str = "https://docs.github.com/rest";
const DOCS_GET_REPO: &str = "https://docs.github.com/rest/repos/repos#get-a-repository";
const DOCS_LIST_COMMITS: &str = "https://docs.github.com/rest/commits/commits#list-commits";
const DOCS_LIST_RUNS: &str =
    "https://docs.github.com/rest/actions/workflow-runs#list-workflow-runs-for-a-repository";
const DOCS_LIST_DEPLOYMENTS: &str =
    "https://docs.github.com/rest/deployments/deployments#list-deployments";
const DOCS_API_VERSIONS: &str = "https://docs.github.com/rest/overview/api-versions";
const DOCS_SECONDARY_LIMITS: &str = "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits";

/// GitHub routes, ready to merge into the sandbox app.
pub(crate) fn router(state: Arc<GithubState>) -> Router {
    Router::new()
        .route("/repos/{owner}/{repo}", get(get_repo))
        .route("/repos/{owner}/{repo}/commits", get(list_commits))
        .route("/repos/{owner}/{repo}/actions/runs", get(list_runs))
        .route("/repos/{owner}/{repo}/deployments", get(list_deployments))
        .layer(middleware::from_fn(check_api_version))
        .layer(middleware::map_response(rate_limit_headers))
        .with_state(state)
}

/// GitHub refuses a version it does not support, before anything else; a request without the
/// header gets the default version, 2022-11-28.
async fn check_api_version(request: Request, next: Next) -> Response {
    match request.headers().get("x-github-api-version") {
        Some(version) if version.as_bytes() != API_VERSION.as_bytes() => {
            let version = String::from_utf8_lossy(version.as_bytes());
            GithubError::new(
                StatusCode::BAD_REQUEST,
                format!(
                    "The version you specified in the \"X-GitHub-API-Version\" request header, \"{version}\", is not a supported version. The following versions are currently supported: \"{API_VERSION}\" (most recent)."
                ),
                DOCS_API_VERSIONS,
            )
            .into_response()
        }
        _ => {
            let mut response = next.run(request).await;
            response.headers_mut().insert(
                "x-github-api-version-selected",
                HeaderValue::from_static(API_VERSION),
            );
            response
        }
    }
}

/// GitHub sends its primary rate-limit headers on every answer.
async fn rate_limit_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from_static("5000"));
    headers.insert("x-ratelimit-remaining", HeaderValue::from_static("4999"));
    headers.insert("x-ratelimit-resource", HeaderValue::from_static("core"));
    response
}

// ---------------------------------------------------------------------------------------------
// Wire types (GitHub's JSON, snake_case)

#[derive(Debug, Clone, Serialize)]
struct Account {
    login: String,
    id: u64,
    node_id: String,
    avatar_url: String,
    html_url: String,
    #[serde(rename = "type")]
    kind: &'static str,
    site_admin: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Permissions {
    admin: bool,
    maintain: bool,
    push: bool,
    triage: bool,
    pull: bool,
}

#[derive(Debug, Clone, Serialize)]
struct Repository {
    id: u64,
    node_id: String,
    name: String,
    full_name: String,
    private: bool,
    owner: Account,
    html_url: String,
    description: String,
    fork: bool,
    url: String,
    language: &'static str,
    visibility: &'static str,
    default_branch: &'static str,
    created_at: String,
    updated_at: String,
    pushed_at: String,
    size: u64,
    stargazers_count: u64,
    watchers_count: u64,
    forks_count: u64,
    open_issues_count: u64,
    has_issues: bool,
    archived: bool,
    disabled: bool,
    topics: Vec<String>,
    permissions: Permissions,
}

#[derive(Debug, Clone, Serialize)]
struct GitActor {
    name: String,
    email: String,
    date: String,
}

#[derive(Debug, Clone, Serialize)]
struct ObjectRef {
    sha: String,
    url: String,
}

#[derive(Debug, Clone, Serialize)]
struct Verification {
    verified: bool,
    reason: &'static str,
    signature: Option<String>,
    payload: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct CommitDetail {
    author: GitActor,
    committer: GitActor,
    message: String,
    tree: ObjectRef,
    url: String,
    comment_count: u64,
    verification: Verification,
}

#[derive(Debug, Clone, Serialize)]
struct Parent {
    sha: String,
    url: String,
    html_url: String,
}

#[derive(Debug, Clone, Serialize)]
struct Commit {
    sha: String,
    node_id: String,
    commit: CommitDetail,
    url: String,
    html_url: String,
    comments_url: String,
    author: Account,
    committer: Account,
    parents: Vec<Parent>,
}

#[derive(Debug, Clone, Serialize)]
struct NameEmail {
    name: String,
    email: String,
}

#[derive(Debug, Clone, Serialize)]
struct HeadCommit {
    id: String,
    tree_id: String,
    message: String,
    timestamp: String,
    author: NameEmail,
    committer: NameEmail,
}

#[derive(Debug, Clone, Serialize)]
struct RepositorySummary {
    id: u64,
    node_id: String,
    name: String,
    full_name: String,
    private: bool,
    html_url: String,
    url: String,
}

#[derive(Debug, Clone, Serialize)]
struct WorkflowRun {
    id: u64,
    name: String,
    node_id: String,
    head_branch: String,
    head_sha: String,
    path: &'static str,
    display_title: String,
    run_number: u64,
    run_attempt: u64,
    event: String,
    status: &'static str,
    conclusion: String,
    workflow_id: u64,
    url: String,
    html_url: String,
    jobs_url: String,
    logs_url: String,
    created_at: String,
    updated_at: String,
    run_started_at: String,
    actor: Account,
    head_commit: HeadCommit,
    repository: RepositorySummary,
}

#[derive(Debug, Clone, Serialize)]
struct Deployment {
    url: String,
    id: u64,
    node_id: String,
    sha: String,
    #[serde(rename = "ref")]
    git_ref: String,
    task: &'static str,
    payload: Map<String, Value>,
    original_environment: String,
    environment: String,
    description: String,
    creator: Account,
    created_at: String,
    updated_at: String,
    statuses_url: String,
    repository_url: String,
    transient_environment: bool,
    production_environment: bool,
}

// ---------------------------------------------------------------------------------------------
// Data: which owner each repository belongs to; records are derived on demand

#[derive(Debug, Clone)]
struct RepoRecord {
    owner: String,
    full_name: String,
    /// Index into [`REPO_NAMES`].
    index: usize,
}

/// The GitHub sandbox's data. Read-only: every record is a pure function of its repository.
pub(crate) struct GithubState {
    /// Lowercase `owner/name` → record; GitHub matches repository names case-insensitively.
    repos: HashMap<String, RepoRecord>,
}

impl GithubState {
    pub(crate) fn new(fixture: &Fixture) -> GithubState {
        let repos = fixture
            .owners
            .iter()
            .flat_map(|o| {
                o.github_repos.iter().enumerate().map(|(index, full_name)| {
                    let record = RepoRecord {
                        owner: o.owner.clone(),
                        full_name: full_name.clone(),
                        index,
                    };
                    (full_name.to_ascii_lowercase(), record)
                })
            })
            .collect();
        GithubState { repos }
    }
}

fn digest(parts: &[&str]) -> [u8; 32] {
    Sha256::digest(parts.join("\0")).into()
}

/// A positive id below 2^48, so JavaScript clients read it exactly too.
fn numeric_id(parts: &[&str]) -> u64 {
    let d = digest(parts);
    d[..6].iter().fold(0, |id, b| (id << 8) | u64::from(*b)) + 1
}

/// A 40-hex-digit object name, the shape of a Git SHA-1.
fn object_sha(parts: &[&str]) -> String {
    hex::encode(&digest(parts)[..20])
}

fn node_id(kind: &str, id: u64) -> String {
    format!("{kind}_sandbox{id:x}")
}

fn title_case(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

fn account(login: &str, kind: &'static str) -> Account {
    let id = numeric_id(&["account", login]);
    Account {
        login: login.to_owned(),
        id,
        node_id: node_id(if kind == "User" { "U" } else { "O" }, id),
        avatar_url: format!("https://avatars.githubusercontent.com/u/{id}?v=4"),
        html_url: format!("https://github.com/{login}"),
        kind,
        site_admin: false,
    }
}

/// `2025-05-02T10:05:00Z` for commit `index` (a day older per index), `minutes` later.
fn commit_time(index: usize, minutes: usize) -> String {
    let (year, month, day) = civil_from_days(NEWEST_COMMIT_DAY - index as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:00Z",
        10 + index % 8,
        (index * 5) % 50 + minutes
    )
}

struct RepoView<'a> {
    record: &'a RepoRecord,
    /// `http://host:port` of the sandbox, so `url` fields and `Link` headers lead back to it.
    api: String,
}

impl RepoView<'_> {
    fn owner(&self) -> &str {
        &self.record.owner
    }

    fn mark(&self) -> String {
        format!("(owner:{})", self.record.owner)
    }

    fn full_name(&self) -> &str {
        &self.record.full_name
    }

    fn api_url(&self) -> String {
        format!("{}/repos/{}", self.api, self.full_name())
    }

    fn html_url(&self) -> String {
        format!("https://github.com/{}", self.full_name())
    }

    fn repo_id(&self) -> u64 {
        numeric_id(&["repo", self.full_name()])
    }

    fn developer(&self) -> Account {
        account(&format!("{}-dev", self.owner()), "User")
    }

    fn developer_identity(&self) -> NameEmail {
        NameEmail {
            name: format!("{} Developer", title_case(self.owner())),
            email: format!("dev@{}.example", self.owner()),
        }
    }

    fn commit_sha(&self, index: usize) -> String {
        object_sha(&["commit", self.full_name(), &index.to_string()])
    }

    fn commit_message(&self, index: usize) -> String {
        let text = COMMIT_MESSAGES.get(index).copied().unwrap_or("Update");
        format!("{text} {}", self.mark())
    }

    fn repository(&self) -> Repository {
        let org = self
            .full_name()
            .split_once('/')
            .map_or(self.full_name(), |(org, _)| org);
        let name = REPO_NAMES.get(self.record.index).copied().unwrap_or("repo");
        let id = self.repo_id();
        Repository {
            id,
            node_id: node_id("R", id),
            name: name.to_owned(),
            full_name: self.full_name().to_owned(),
            private: true,
            owner: account(org, "Organization"),
            html_url: self.html_url(),
            description: format!(
                "{} {} for {} {}",
                title_case(self.owner()),
                name,
                title_case(self.owner()),
                self.mark()
            ),
            fork: false,
            url: self.api_url(),
            language: if self.record.index == 0 {
                "TypeScript"
            } else {
                "HCL"
            },
            visibility: "private",
            default_branch: "main",
            created_at: "2021-03-15T09:00:00Z".to_owned(),
            updated_at: commit_time(0, 2),
            pushed_at: commit_time(0, 0),
            size: 2_048 + 512 * self.record.index as u64,
            stargazers_count: 0,
            watchers_count: 0,
            forks_count: 0,
            open_issues_count: 3 - self.record.index as u64,
            has_issues: true,
            archived: false,
            disabled: false,
            topics: vec!["webflow".to_owned(), self.owner().to_owned()],
            permissions: Permissions {
                admin: false,
                maintain: false,
                push: false,
                triage: false,
                pull: true,
            },
        }
    }

    fn commit(&self, index: usize) -> Commit {
        let sha = self.commit_sha(index);
        let tree = object_sha(&["tree", self.full_name(), &index.to_string()]);
        let who = self.developer_identity();
        let actor = |date: String| GitActor {
            name: who.name.clone(),
            email: who.email.clone(),
            date,
        };
        let parents = (index + 1 < COMMITS_PER_REPO)
            .then(|| self.commit_sha(index + 1))
            .into_iter()
            .map(|parent| Parent {
                url: format!("{}/commits/{parent}", self.api_url()),
                html_url: format!("{}/commit/{parent}", self.html_url()),
                sha: parent,
            })
            .collect();
        Commit {
            node_id: node_id("C", numeric_id(&["commit", &sha])),
            commit: CommitDetail {
                author: actor(commit_time(index, 0)),
                committer: actor(commit_time(index, 0)),
                message: self.commit_message(index),
                tree: ObjectRef {
                    url: format!("{}/git/trees/{tree}", self.api_url()),
                    sha: tree,
                },
                url: format!("{}/git/commits/{sha}", self.api_url()),
                comment_count: 0,
                verification: Verification {
                    verified: false,
                    reason: "unsigned",
                    signature: None,
                    payload: None,
                },
            },
            url: format!("{}/commits/{sha}", self.api_url()),
            html_url: format!("{}/commit/{sha}", self.html_url()),
            comments_url: format!("{}/commits/{sha}/comments", self.api_url()),
            author: self.developer(),
            committer: self.developer(),
            parents,
            sha,
        }
    }

    fn run(&self, index: usize) -> WorkflowRun {
        let (branch, conclusion, event) = RUNS.get(index).copied().unwrap_or(RUNS[0]);
        let id = numeric_id(&["run", self.full_name(), &index.to_string()]);
        let name = format!("Deploy {}", self.mark());
        let sha = self.commit_sha(index);
        let repo_id = self.repo_id();
        let who = self.developer_identity();
        WorkflowRun {
            id,
            node_id: node_id("WFR", id),
            head_branch: branch.to_owned(),
            head_sha: sha.clone(),
            path: ".github/workflows/deploy.yml",
            display_title: self.commit_message(index),
            run_number: (40 - index) as u64,
            run_attempt: 1,
            event: event.to_owned(),
            status: "completed",
            conclusion: conclusion.to_owned(),
            workflow_id: numeric_id(&["workflow", self.full_name()]),
            url: format!("{}/actions/runs/{id}", self.api_url()),
            html_url: format!("{}/actions/runs/{id}", self.html_url()),
            jobs_url: format!("{}/actions/runs/{id}/jobs", self.api_url()),
            logs_url: format!("{}/actions/runs/{id}/logs", self.api_url()),
            created_at: commit_time(index, 1),
            updated_at: commit_time(index, 4),
            run_started_at: commit_time(index, 1),
            actor: self.developer(),
            head_commit: HeadCommit {
                id: sha,
                tree_id: object_sha(&["tree", self.full_name(), &index.to_string()]),
                message: self.commit_message(index),
                timestamp: commit_time(index, 0),
                author: who.clone(),
                committer: who,
            },
            repository: RepositorySummary {
                id: repo_id,
                node_id: node_id("R", repo_id),
                name: REPO_NAMES
                    .get(self.record.index)
                    .copied()
                    .unwrap_or("repo")
                    .to_owned(),
                full_name: self.full_name().to_owned(),
                private: true,
                html_url: self.html_url(),
                url: self.api_url(),
            },
            name,
        }
    }

    fn deployment(&self, index: usize) -> Deployment {
        let (commit, environment, git_ref) =
            DEPLOYMENTS.get(index).copied().unwrap_or(DEPLOYMENTS[0]);
        let id = numeric_id(&["deployment", self.full_name(), &index.to_string()]);
        Deployment {
            url: format!("{}/deployments/{id}", self.api_url()),
            id,
            node_id: node_id("DE", id),
            sha: self.commit_sha(commit),
            git_ref: git_ref.to_owned(),
            task: "deploy",
            payload: Map::new(),
            original_environment: environment.to_owned(),
            environment: environment.to_owned(),
            description: format!(
                "Deploy {} to {environment} {}",
                self.full_name(),
                self.mark()
            ),
            creator: self.developer(),
            created_at: commit_time(commit, 6),
            updated_at: commit_time(commit, 8),
            statuses_url: format!("{}/deployments/{id}/statuses", self.api_url()),
            repository_url: self.api_url(),
            transient_environment: environment != "production",
            production_environment: environment == "production",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Errors, in GitHub's body shape: {message, documentation_url, status}

#[derive(Debug)]
pub(crate) struct GithubError {
    status: StatusCode,
    message: String,
    documentation_url: &'static str,
    errors: Vec<Value>,
}

impl GithubError {
    fn new(
        status: StatusCode,
        message: impl Into<String>,
        documentation_url: &'static str,
    ) -> GithubError {
        GithubError {
            status,
            message: message.into(),
            documentation_url,
            errors: Vec::new(),
        }
    }

    /// An unknown token (or another vendor's): GitHub's answer to a credential it does not know.
    fn bad_credentials() -> GithubError {
        GithubError::new(StatusCode::UNAUTHORIZED, "Bad credentials", DOCS_ROOT)
    }

    /// No token at all. GitHub would show a private repository's absence (404) to an anonymous
    /// caller; the sandbox answers 401 instead, with GitHub's message for endpoints that need
    /// authentication, so a client that forgot its credential fails loudly.
    fn requires_authentication() -> GithubError {
        GithubError::new(
            StatusCode::UNAUTHORIZED,
            "Requires authentication",
            DOCS_ROOT,
        )
    }

    /// A repository the token cannot see, or that does not exist: GitHub answers both alike.
    fn not_found(documentation_url: &'static str) -> GithubError {
        GithubError::new(StatusCode::NOT_FOUND, "Not Found", documentation_url)
    }

    /// `422 Validation Failed` with one `invalid` field, GitHub's validation shape.
    fn invalid(resource: &str, field: &str, documentation_url: &'static str) -> GithubError {
        GithubError {
            errors: vec![json!({"resource": resource, "field": field, "code": "invalid"})],
            ..GithubError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Validation Failed",
                documentation_url,
            )
        }
    }

    /// GitHub's message for `status`, for injected failures and unknown routes.
    fn for_status(status: StatusCode) -> GithubError {
        let (message, docs) = match status.as_u16() {
            400 => ("Bad Request", DOCS_ROOT),
            401 => ("Bad credentials", DOCS_ROOT),
            403 => (
                "Resource not accessible by personal access token",
                DOCS_ROOT,
            ),
            404 => ("Not Found", DOCS_ROOT),
            409 => ("Conflict", DOCS_ROOT),
            422 => ("Validation Failed", DOCS_ROOT),
            // A `Retry-After` comes with GitHub's secondary rate limit, so that is the one shown.
            429 => (
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                DOCS_SECONDARY_LIMITS,
            ),
            503 => ("Service Unavailable", DOCS_ROOT),
            s if s >= 500 => ("Server Error", DOCS_ROOT),
            _ => (
                status.canonical_reason().unwrap_or("Bad Request"),
                DOCS_ROOT,
            ),
        };
        GithubError::new(status, message, docs)
    }
}

impl IntoResponse for GithubError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "message": self.message,
            "documentation_url": self.documentation_url,
            "status": self.status.as_u16().to_string(),
        });
        if !self.errors.is_empty() {
            body["errors"] = Value::Array(self.errors);
        }
        (self.status, Json(body)).into_response()
    }
}

/// GitHub's error answer for `status`.
pub(crate) fn error_response(status: StatusCode) -> Response {
    GithubError::for_status(status).into_response()
}

type Answer<T> = Result<T, GithubError>;

/// The repository `owner/repo` if the caller's token may read it; otherwise GitHub's answer.
fn authorize<'a>(
    state: &'a GithubState,
    caller: &Caller,
    headers: &HeaderMap,
    (owner, repo): &(String, String),
    documentation_url: &'static str,
) -> Answer<&'a RepoRecord> {
    let Some(caller) = caller.owner.as_deref() else {
        return Err(if headers.contains_key(header::AUTHORIZATION) {
            GithubError::bad_credentials()
        } else {
            GithubError::requires_authentication()
        });
    };
    state
        .repos
        .get(&format!("{owner}/{repo}").to_ascii_lowercase())
        .filter(|record| record.owner == caller)
        .ok_or_else(|| GithubError::not_found(documentation_url))
}

/// `http://<Host>`: where the caller reached the sandbox, for absolute URLs.
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

type Params = Vec<(String, String)>;

fn params(query: Result<Query<Params>, QueryRejection>) -> Answer<Params> {
    query
        .map(|Query(params)| params)
        .map_err(|_| GithubError::for_status(StatusCode::BAD_REQUEST))
}

/// The first non-empty value of a query parameter.
fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, v)| k == name && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// `per_page` (1–100, default 30) and `page` (from 1, default 1).
#[derive(Debug, Clone, Copy)]
struct Paging {
    per_page: usize,
    page: usize,
}

impl Paging {
    /// GitHub itself clamps an oversized `per_page` and ignores a malformed one; the sandbox
    /// refuses both with GitHub's validation shape, so a client bug shows up in tests.
    fn parse(params: &Params, resource: &str, docs: &'static str) -> Answer<Paging> {
        let per_page = match param(params, "per_page") {
            None => DEFAULT_PER_PAGE,
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| (1..=MAX_PER_PAGE).contains(n))
                .ok_or_else(|| GithubError::invalid(resource, "per_page", docs))?,
        };
        let page = match param(params, "page") {
            None => 1,
            Some(raw) => raw
                .parse()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| GithubError::invalid(resource, "page", docs))?,
        };
        Ok(Paging { per_page, page })
    }

    fn apply<T>(self, records: Vec<T>) -> Vec<T> {
        records
            .into_iter()
            .skip((self.page - 1).saturating_mul(self.per_page))
            .take(self.per_page)
            .collect()
    }

    /// GitHub's `Link` header for this page of `total` records, `None` when all fit one page:
    /// `<…?page=1>; rel="prev", <…?page=3>; rel="next", <…?page=5>; rel="last", <…>; rel="first"`.
    fn link(self, base: &str, params: &Params, total: usize) -> Option<HeaderValue> {
        let last = total.div_ceil(self.per_page).max(1);
        let url = |page: usize| {
            let page = page.to_string();
            let query: Vec<String> = params
                .iter()
                .filter(|(k, _)| k != "page")
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .chain(std::iter::once(("page", page.as_str())))
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            format!("{base}?{}", query.join("&"))
        };
        let mut links = Vec::new();
        if self.page > 1 {
            links.push(format!("<{}>; rel=\"prev\"", url(self.page - 1)));
        }
        if self.page < last {
            links.push(format!("<{}>; rel=\"next\"", url(self.page + 1)));
            links.push(format!("<{}>; rel=\"last\"", url(last)));
        }
        if self.page > 1 {
            links.push(format!("<{}>; rel=\"first\"", url(1)));
        }
        if links.is_empty() {
            return None;
        }
        HeaderValue::from_str(&links.join(", ")).ok()
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A JSON answer, with the `Link` header when there is more than one page.
fn paged(body: impl Serialize, link: Option<HeaderValue>) -> Response {
    let mut response = Json(body).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, link);
    }
    response
}

// ---------------------------------------------------------------------------------------------
// Handlers

async fn get_repo(
    State(state): State<Arc<GithubState>>,
    caller: Caller,
    headers: HeaderMap,
    Path(repo): Path<(String, String)>,
) -> Answer<Json<Repository>> {
    let record = authorize(&state, &caller, &headers, &repo, DOCS_GET_REPO)?;
    let view = RepoView {
        record,
        api: origin(&headers),
    };
    Ok(Json(view.repository()))
}

/// `sha` may name a branch, `HEAD` or a commit by its full SHA or a prefix of 7 or more digits;
/// listing starts there and goes back in history.
async fn list_commits(
    State(state): State<Arc<GithubState>>,
    caller: Caller,
    headers: HeaderMap,
    Path(repo): Path<(String, String)>,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer<Response> {
    let record = authorize(&state, &caller, &headers, &repo, DOCS_LIST_COMMITS)?;
    let params = params(query)?;
    let paging = Paging::parse(&params, "Commit", DOCS_LIST_COMMITS)?;
    let view = RepoView {
        record,
        api: origin(&headers),
    };
    let start = match param(&params, "sha") {
        None | Some("HEAD") => 0,
        Some(reference) => BRANCHES
            .iter()
            .find(|(branch, _)| *branch == reference)
            .map(|(_, index)| *index)
            .or_else(|| {
                let prefix = reference.to_ascii_lowercase();
                (prefix.len() >= 7)
                    .then(|| {
                        (0..COMMITS_PER_REPO).find(|i| view.commit_sha(*i).starts_with(&prefix))
                    })
                    .flatten()
            })
            .ok_or_else(|| GithubError::not_found(DOCS_LIST_COMMITS))?,
    };
    let commits: Vec<Commit> = (start..COMMITS_PER_REPO).map(|i| view.commit(i)).collect();
    let total = commits.len();
    let link = paging.link(&format!("{}/commits", view.api_url()), &params, total);
    Ok(paged(paging.apply(commits), link))
}

/// Filters `branch`, `event`, `head_sha` and `status` (a status or a conclusion, as GitHub
/// reads it); `total_count` counts every match, not just this page.
async fn list_runs(
    State(state): State<Arc<GithubState>>,
    caller: Caller,
    headers: HeaderMap,
    Path(repo): Path<(String, String)>,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer<Response> {
    let record = authorize(&state, &caller, &headers, &repo, DOCS_LIST_RUNS)?;
    let params = params(query)?;
    let paging = Paging::parse(&params, "WorkflowRun", DOCS_LIST_RUNS)?;
    let view = RepoView {
        record,
        api: origin(&headers),
    };
    let matches = |wanted: Option<&str>, value: &str| wanted.is_none_or(|w| w == value);
    let runs: Vec<WorkflowRun> = (0..RUNS_PER_REPO)
        .map(|i| view.run(i))
        .filter(|run| {
            matches(param(&params, "branch"), &run.head_branch)
                && matches(param(&params, "event"), &run.event)
                && matches(param(&params, "head_sha"), &run.head_sha)
                && param(&params, "status").is_none_or(|s| s == run.status || s == run.conclusion)
        })
        .collect();
    let total = runs.len();
    let link = paging.link(&format!("{}/actions/runs", view.api_url()), &params, total);
    Ok(paged(
        json!({ "total_count": total, "workflow_runs": paging.apply(runs) }),
        link,
    ))
}

/// Filters `environment`, `sha`, `ref` and `task`.
async fn list_deployments(
    State(state): State<Arc<GithubState>>,
    caller: Caller,
    headers: HeaderMap,
    Path(repo): Path<(String, String)>,
    query: Result<Query<Params>, QueryRejection>,
) -> Answer<Response> {
    let record = authorize(&state, &caller, &headers, &repo, DOCS_LIST_DEPLOYMENTS)?;
    let params = params(query)?;
    let paging = Paging::parse(&params, "Deployment", DOCS_LIST_DEPLOYMENTS)?;
    let view = RepoView {
        record,
        api: origin(&headers),
    };
    let matches = |wanted: Option<&str>, value: &str| wanted.is_none_or(|w| w == value);
    let deployments: Vec<Deployment> = (0..DEPLOYMENTS_PER_REPO)
        .map(|i| view.deployment(i))
        .filter(|d| {
            matches(param(&params, "environment"), &d.environment)
                && matches(param(&params, "sha"), &d.sha)
                && matches(param(&params, "ref"), &d.git_ref)
                && matches(param(&params, "task"), d.task)
        })
        .collect();
    let total = deployments.len();
    let link = paging.link(&format!("{}/deployments", view.api_url()), &params, total);
    Ok(paged(paging.apply(deployments), link))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::tests::{Reply, get, send_with, two_owners};
    use crate::sandbox::{Failure, Sandbox};
    use anyhow::Context as _;

    /// A GET the way the GitHub client sends it: `Bearer` token, JSON media type, pinned version.
    async fn gh(sandbox: &Sandbox, path: &str, token: &str) -> anyhow::Result<Reply> {
        send_with(
            sandbox,
            "GET",
            path,
            Some(&format!("Bearer {token}")),
            &[
                ("accept", "application/vnd.github+json"),
                ("x-github-api-version", API_VERSION),
            ],
            None,
        )
        .await
    }

    fn message(reply: &Reply) -> anyhow::Result<String> {
        Ok(reply.json()?["message"]
            .as_str()
            .context("message")?
            .to_owned())
    }

    /// `(rel, page)` of each `Link` entry.
    fn links(reply: &Reply) -> Vec<(String, String)> {
        reply
            .header("link")
            .unwrap_or_default()
            .split(", ")
            .filter_map(|entry| {
                let (url, rel) = entry.split_once("; rel=")?;
                let page = url.rsplit_once("page=")?.1.trim_end_matches('>');
                Some((rel.trim_matches('"').to_owned(), page.to_owned()))
            })
            .collect()
    }

    #[test]
    fn timestamps_start_on_the_documented_day() {
        assert_eq!(civil_from_days(NEWEST_COMMIT_DAY), (2025, 5, 2));
        assert_eq!(commit_time(0, 0), "2025-05-02T10:00:00Z");
        assert_eq!(commit_time(11, 4), "2025-04-21T13:09:00Z");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[tokio::test]
    async fn each_token_reads_only_its_own_repos() -> anyhow::Result<()> {
        let (sandbox, acme, globex) = two_owners().await?;
        for (me, other) in [(&acme, &globex), (&globex, &acme)] {
            for (i, full_name) in me.github_repos.iter().enumerate() {
                let reply = gh(&sandbox, &format!("/repos/{full_name}"), &me.github_token).await?;
                assert_eq!(reply.status, 200, "{}", reply.body);
                let repo = reply.json()?;
                assert_eq!(repo["full_name"], full_name.as_str());
                assert_eq!(repo["name"], REPO_NAMES[i]);
                assert_eq!(
                    (repo["private"].as_bool(), repo["visibility"].as_str()),
                    (Some(true), Some("private"))
                );
                assert_eq!(repo["default_branch"], "main");
                assert!(repo["id"].as_u64().is_some_and(|id| id > 0));
                assert!(repo["pushed_at"].is_string() && repo["updated_at"].is_string());
                assert!(repo["open_issues_count"].is_u64());
                assert!(
                    repo["description"]
                        .as_str()
                        .is_some_and(|d| d.contains(&format!("(owner:{})", me.owner)))
                );
                assert!(!reply.body.contains(&format!("owner:{}", other.owner)));
            }
            let mine = &me.github_repos[0];
            let theirs = &other.github_repos[0];
            for (suffix, docs) in [
                ("", DOCS_GET_REPO),
                ("/commits", DOCS_LIST_COMMITS),
                ("/actions/runs", DOCS_LIST_RUNS),
                ("/deployments", DOCS_LIST_DEPLOYMENTS),
            ] {
                let own = gh(
                    &sandbox,
                    &format!("/repos/{mine}{suffix}"),
                    &me.github_token,
                )
                .await?;
                assert_eq!(own.status, 200, "{suffix}");
                let foreign = gh(
                    &sandbox,
                    &format!("/repos/{theirs}{suffix}"),
                    &me.github_token,
                )
                .await?;
                let missing = gh(
                    &sandbox,
                    &format!("/repos/{}-web/nothing{suffix}", me.owner),
                    &me.github_token,
                )
                .await?;
                assert_eq!(foreign.status, 404, "{suffix}");
                assert_eq!(
                    foreign.json()?,
                    json!({"message": "Not Found", "documentation_url": docs, "status": "404"})
                );
                assert_eq!(
                    foreign.body, missing.body,
                    "foreign and missing must look alike"
                );
            }
        }
        // GitHub matches repository names case-insensitively.
        let shouted = gh(&sandbox, "/repos/ACME-web/Website", &acme.github_token).await?;
        assert_eq!(shouted.json()?["full_name"], "acme-web/website");
        Ok(())
    }

    #[tokio::test]
    async fn only_github_tokens_authenticate() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let path = format!("/repos/{}", acme.github_repos[0]);
        let missing = get(&sandbox, &path, None).await?;
        assert_eq!(
            (missing.status, message(&missing)?.as_str()),
            (401, "Requires authentication")
        );
        for token in [
            "gh-sandbox-acme-0000000000000000",
            &acme.token,
            &acme.plausible_token,
        ] {
            let reply = get(&sandbox, &path, Some(token)).await?;
            assert_eq!(reply.status, 401);
            assert_eq!(
                reply.json()?,
                json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest", "status": "401"})
            );
        }
        let classic = send_with(
            &sandbox,
            "GET",
            &path,
            Some(&format!("token {}", acme.github_token)),
            &[],
            None,
        )
        .await?;
        assert_eq!(classic.status, 200);
        let log = sandbox.requests();
        let owners: Vec<Option<&str>> = log.iter().map(|r| r.token_owner.as_deref()).collect();
        // The Webflow and Plausible tokens are still recorded as acme's, though GitHub refused them.
        assert_eq!(
            owners,
            [None, None, Some("acme"), Some("acme"), Some("acme")]
        );
        Ok(())
    }

    #[tokio::test]
    async fn commits_page_with_link_headers() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let token = acme.github_token.as_str();
        let repo = &acme.github_repos[0];
        let all = gh(&sandbox, &format!("/repos/{repo}/commits"), token).await?;
        assert!(
            all.header("link").is_none(),
            "12 commits fit the default page of 30"
        );
        let all = all.json()?;
        let all = all.as_array().context("commits")?;
        assert_eq!(all.len(), COMMITS_PER_REPO);
        let first = &all[0];
        assert_eq!(first["sha"].as_str().map(str::len), Some(40));
        assert!(
            first["commit"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("(owner:acme)"))
        );
        assert_eq!(first["commit"]["author"]["email"], "dev@acme.example");
        assert_eq!(first["commit"]["author"]["date"], "2025-05-02T10:00:00Z");
        assert_eq!(first["author"]["login"], "acme-dev");
        assert_eq!(first["parents"][0]["sha"], all[1]["sha"]);
        assert!(
            first["html_url"]
                .as_str()
                .is_some_and(|u| u.starts_with("https://github.com/acme-web/website/commit/"))
        );

        let mut seen = Vec::new();
        for page in 1..=3 {
            let reply = gh(
                &sandbox,
                &format!("/repos/{repo}/commits?sha=main&per_page=5&page={page}"),
                token,
            )
            .await?;
            let expected: Vec<(&str, &str)> = match page {
                1 => vec![("next", "2"), ("last", "3")],
                2 => vec![("prev", "1"), ("next", "3"), ("last", "3"), ("first", "1")],
                _ => vec![("prev", "2"), ("first", "1")],
            };
            let got = links(&reply);
            let got: Vec<(&str, &str)> =
                got.iter().map(|(r, p)| (r.as_str(), p.as_str())).collect();
            assert_eq!(got, expected, "page {page}");
            let link = reply.header("link").unwrap_or_default();
            assert!(
                link.contains(&format!(
                    "<{}/repos/{repo}/commits?sha=main&per_page=5&page=",
                    sandbox.base_url()
                )),
                "{link}"
            );
            for commit in reply.json()?.as_array().context("page")? {
                seen.push(commit["sha"].clone());
            }
        }
        let shas: Vec<Value> = all.iter().map(|c| c["sha"].clone()).collect();
        assert_eq!(seen, shas);
        let past_end = gh(&sandbox, &format!("/repos/{repo}/commits?page=9"), token).await?;
        assert_eq!(past_end.json()?, json!([]));

        let preview = gh(
            &sandbox,
            &format!("/repos/{repo}/commits?sha=preview"),
            token,
        )
        .await?
        .json()?;
        assert_eq!(preview[0]["sha"], all[1]["sha"]);
        let short = all[4]["sha"]
            .as_str()
            .context("sha")?
            .get(..7)
            .context("prefix")?
            .to_owned();
        let from_sha = gh(
            &sandbox,
            &format!("/repos/{repo}/commits?sha={short}"),
            token,
        )
        .await?
        .json()?;
        assert_eq!(
            from_sha.as_array().map(Vec::len),
            Some(COMMITS_PER_REPO - 4)
        );
        let unknown = gh(
            &sandbox,
            &format!("/repos/{repo}/commits?sha=no-such-branch"),
            token,
        )
        .await?;
        assert_eq!(
            (unknown.status, message(&unknown)?.as_str()),
            (404, "Not Found")
        );

        for query in [
            "per_page=0",
            "per_page=101",
            "per_page=ten",
            "page=0",
            "page=-1",
        ] {
            let reply = gh(&sandbox, &format!("/repos/{repo}/commits?{query}"), token).await?;
            assert_eq!(reply.status, 422, "{query}");
            let body = reply.json()?;
            assert_eq!(body["message"], "Validation Failed");
            assert_eq!(body["status"], "422");
            assert_eq!(
                body["errors"][0]["field"],
                query.split('=').next().context("field")?
            );
            assert_eq!(body["errors"][0]["code"], "invalid");
        }
        Ok(())
    }

    #[tokio::test]
    async fn runs_and_deployments_filter_and_page() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let token = acme.github_token.as_str();
        let repo = &acme.github_repos[1];
        let runs = gh(&sandbox, &format!("/repos/{repo}/actions/runs"), token)
            .await?
            .json()?;
        assert_eq!(runs["total_count"], RUNS_PER_REPO);
        let list = runs["workflow_runs"].as_array().context("runs")?;
        assert_eq!(list.len(), RUNS_PER_REPO);
        assert_eq!(
            (list[0]["status"].as_str(), list[0]["conclusion"].as_str()),
            (Some("completed"), Some("success"))
        );
        assert!(
            list[0]["name"]
                .as_str()
                .is_some_and(|n| n.contains("(owner:acme)"))
        );
        let created: Vec<&str> = list
            .iter()
            .filter_map(|r| r["created_at"].as_str())
            .collect();
        assert!(
            created.windows(2).all(|w| w[0] > w[1]),
            "newest first: {created:?}"
        );
        let numbers: Vec<u64> = list
            .iter()
            .filter_map(|r| r["run_number"].as_u64())
            .collect();
        assert!(numbers.windows(2).all(|w| w[0] > w[1]));

        let failed = gh(
            &sandbox,
            &format!("/repos/{repo}/actions/runs?status=failure"),
            token,
        )
        .await?
        .json()?;
        assert_eq!(failed["total_count"], 1);
        assert_eq!(failed["workflow_runs"][0]["head_branch"], "preview");
        let completed = gh(
            &sandbox,
            &format!("/repos/{repo}/actions/runs?status=completed&branch=main"),
            token,
        )
        .await?
        .json()?;
        assert_eq!(completed["total_count"], 4);
        let page = gh(
            &sandbox,
            &format!("/repos/{repo}/actions/runs?per_page=2&page=3"),
            token,
        )
        .await?;
        assert_eq!(
            links(&page)
                .first()
                .map(|(rel, p)| (rel.as_str(), p.as_str())),
            Some(("prev", "2"))
        );
        let page = page.json()?;
        assert_eq!(
            (
                page["total_count"].as_u64(),
                page["workflow_runs"].as_array().map(Vec::len)
            ),
            (Some(5), Some(1))
        );

        let deployments = gh(&sandbox, &format!("/repos/{repo}/deployments"), token)
            .await?
            .json()?;
        let deployments = deployments.as_array().context("deployments")?;
        assert_eq!(deployments.len(), DEPLOYMENTS_PER_REPO);
        assert_eq!(deployments[0]["environment"], "production");
        assert_eq!(deployments[0]["sha"], list[0]["head_sha"]);
        assert_eq!(deployments[0]["ref"], "main");
        assert_eq!(deployments[0]["creator"]["login"], "acme-dev");
        assert!(
            deployments[0]["description"]
                .as_str()
                .is_some_and(|d| d.contains("(owner:acme)"))
        );
        assert!(deployments.iter().all(|d| d["created_at"].is_string()
            && d["updated_at"].is_string()
            && d["id"].is_u64()));
        let production = gh(
            &sandbox,
            &format!("/repos/{repo}/deployments?environment=production"),
            token,
        )
        .await?
        .json()?;
        assert_eq!(production.as_array().map(Vec::len), Some(2));
        let paged = gh(
            &sandbox,
            &format!("/repos/{repo}/deployments?environment=production&per_page=1"),
            token,
        )
        .await?;
        assert_eq!(links(&paged).len(), 2);
        Ok(())
    }

    #[tokio::test]
    async fn api_version_is_checked_and_headers_recorded() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let path = format!("/repos/{}", acme.github_repos[0]);
        let auth = format!("Bearer {}", acme.github_token);
        let ok = gh(&sandbox, &path, &acme.github_token).await?;
        assert_eq!(
            ok.header("x-github-api-version-selected"),
            Some(API_VERSION)
        );
        assert_eq!(ok.header("x-ratelimit-limit"), Some("5000"));
        let old = send_with(
            &sandbox,
            "GET",
            &path,
            Some(&auth),
            &[("x-github-api-version", "v3")],
            None,
        )
        .await?;
        assert_eq!(old.status, 400);
        assert_eq!(
            message(&old)?,
            "The version you specified in the \"X-GitHub-API-Version\" request header, \"v3\", is not a supported version. The following versions are currently supported: \"2022-11-28\" (most recent)."
        );
        assert_eq!(old.json()?["status"], "400");
        let none = send_with(&sandbox, "GET", &path, Some(&auth), &[], None).await?;
        assert_eq!(none.status, 200, "no header means the default version");

        let log = sandbox.requests();
        assert_eq!(
            log[0].headers,
            [
                ("x-github-api-version".to_owned(), API_VERSION.to_owned()),
                (
                    "accept".to_owned(),
                    "application/vnd.github+json".to_owned()
                ),
            ]
        );
        assert_eq!(
            log[1].headers[0],
            ("x-github-api-version".to_owned(), "v3".to_owned())
        );
        assert!(
            log.iter()
                .all(|r| r.headers.iter().all(|(n, _)| n != "authorization"))
        );
        Ok(())
    }

    #[tokio::test]
    async fn failures_use_githubs_error_shape() -> anyhow::Result<()> {
        let (sandbox, acme, _) = two_owners().await?;
        let path = format!("/repos/{}/commits", acme.github_repos[0]);
        sandbox.fail_next(Failure::rate_limited(60), 1);
        sandbox.fail_next(Failure::status(502), 1);
        let limited = gh(&sandbox, &path, &acme.github_token).await?;
        assert_eq!(
            (limited.status, limited.header("retry-after")),
            (429, Some("60"))
        );
        assert!(message(&limited)?.contains("secondary rate limit"));
        let broken = gh(&sandbox, &path, &acme.github_token).await?;
        assert_eq!(
            broken.json()?,
            json!({"message": "Server Error", "documentation_url": DOCS_ROOT, "status": "502"})
        );
        let nowhere = gh(
            &sandbox,
            &format!("{path}/nowhere/else"),
            &acme.github_token,
        )
        .await?;
        assert_eq!(
            (nowhere.status, message(&nowhere)?.as_str()),
            (404, "Not Found")
        );
        Ok(())
    }
}
