//! MCP plumbing both servers use: the `Tool` trait each tool file implements, the `Catalog` that
//! filters tools per tenant, and `McpServer`, the rmcp handler that dispatches calls
//! (`mcp/server.rs`).
//!
//! The tenant of a call is read from the authenticated HTTP request on *every* call (the edge
//! puts an [`Authenticated`] into the request extensions). It is never taken from an MCP session:
//! rmcp does not bind sessions to credentials.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;
use rmcp::model::{JsonObject, ToolAnnotations};
use schemars::JsonSchema;
use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

use crate::domain::{ParseError, RepoName, WebflowId};
use crate::scope::ResourceIndex;
use crate::secrets::{MasterKey, SecretKind};
use crate::store::{Store, StoreError};
use crate::tenant::{Tenant, Tier, Toolset};
use crate::upstream::github::Github;
use crate::upstream::plausible::Plausible;
use crate::upstream::webflow::Webflow;
use crate::upstream::{Upstream, UpstreamError};

mod locale;
mod server;
mod traced;
pub use server::{Incoming, McpServer, caller, request_id};
pub use traced::Traced;

/// Put into the HTTP request's extensions by the server's auth layer.
#[derive(Clone, Debug)]
pub struct Authenticated {
    pub tenant: Arc<Tenant>,
    /// The tenant's rate-limit bucket and metric series.
    pub live: Arc<crate::tenant_state::TenantLive>,
    pub request_id: Arc<str>,
    /// Set when this request took the tenant past its rate limit: seconds until it may retry.
    /// The edge counts every authenticated request; the handler refuses any that would work.
    pub over_limit: Option<u64>,
    /// For an OAuth access token: the person and the client it was granted to.
    pub actor: Option<Arc<crate::store::people::AccessEntry>>,
}

/// A readable tool error: the model and the person both see this text.
#[derive(Debug, Error)]
pub enum ToolError {
    #[error("invalid arguments: {0}")]
    InvalidArguments(String),
    #[error("{what} `{id}` is not one of this tenant's resources")]
    NotYours { what: &'static str, id: String },
    #[error("not permitted: {0}")]
    NotPermitted(String),
    #[error("rate limit reached; retry after {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("internal error (request {request_id}); the studio has been told")]
    Internal { request_id: String },
    /// The store cannot be reached: nothing was written; a retry shortly may succeed.
    #[error(
        "the studio's database is unavailable right now, so nothing was changed; retry in a few seconds"
    )]
    StoreUnavailable,
}

impl ToolError {
    /// The kind of failure as the audit log records it.
    pub fn kind(&self) -> &'static str {
        match self {
            ToolError::InvalidArguments(_) => "invalid_arguments",
            ToolError::NotYours { .. } => "not_yours",
            ToolError::NotPermitted(_) => "not_permitted",
            ToolError::RateLimited { .. } => "rate_limited",
            ToolError::Upstream(_) => "upstream",
            ToolError::Internal { .. } => "internal",
            ToolError::StoreUnavailable => "store_unavailable",
        }
    }
}

impl From<ParseError> for ToolError {
    fn from(e: ParseError) -> Self {
        ToolError::InvalidArguments(e.to_string())
    }
}

/// Everything a tool may use, shared by all calls.
pub struct Services {
    pub store: Store,
    pub master_key: MasterKey,
    pub webflow: Upstream,
    pub plausible: Upstream,
    pub github: Upstream,
    /// Generic HTTP only: the calls that change DNS or billing live in the isolated server.
    pub cloudflare: Upstream,
    pub stripe: Upstream,
    pub index: ResourceIndex,
    pub limiter: crate::ratelimit::RateLimiter,
    /// Keyed once-per-interval gates for actions an upstream allows rarely (publishing).
    pub gates: crate::ratelimit::Buckets<String>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// How long a high-risk action waits for a person's decision.
    pub approval_ttl_secs: u64,
    /// The connector door's origin, where approvers' pages live (`<origin>/approve/<id>`);
    /// `None` without one: approvals then go through the operator's CLI alone.
    pub approval_base: Option<String>,
    /// Where to post a short message when an approval is waiting (`STUDIO_MCP_APPROVAL_WEBHOOK`).
    pub approval_webhook: Option<String>,
    /// What expiry is measured against (sessions, invites, codes, tokens, approvals).
    pub clock: crate::clock::Clock,
}

/// One authenticated call: the tenant is fixed here and tools cannot choose another.
pub struct ToolContext<'a> {
    pub tenant: &'a Arc<Tenant>,
    /// The person and client of an OAuth connection; `None` for a static token.
    pub actor: Option<&'a crate::store::people::AccessEntry>,
    /// Set only by the runtime when it carries out an action a person approved (claimed and
    /// running): nothing a model sends can set it.
    pub approval: Option<&'a crate::store::approvals::Approval>,
    pub services: &'a Services,
    pub request_id: &'a str,
}

impl ToolContext<'_> {
    pub fn internal(&self, what: &str, detail: &dyn std::fmt::Display) -> ToolError {
        tracing::error!(request_id = self.request_id, "{what}: {detail}");
        ToolError::Internal {
            request_id: self.request_id.to_owned(),
        }
    }

    /// The tenant's own credential for an upstream, decrypted for this call only.
    pub fn credential(&self, kind: SecretKind) -> Result<SecretString, ToolError> {
        let sealed = self
            .services
            .store
            .secret(&self.tenant.id, kind)
            .map_err(|e| self.store_error(e))?
            .ok_or(UpstreamError::MissingCredential(upstream_name(kind)))?;
        self.services
            .master_key
            .open(&self.tenant.id, kind, &sealed)
            .map_err(|e| self.internal("secret unreadable", &e))
    }

    pub fn store_error(&self, e: StoreError) -> ToolError {
        self.services.metrics.record_store_error(e.kind());
        match e {
            StoreError::Unavailable(_) | StoreError::Lagging(_) => {
                tracing::warn!(request_id = self.request_id, error = %e, "store unavailable");
                ToolError::StoreUnavailable
            }
            e => self.internal("store", &e),
        }
    }

    /// Resolves `site_id`: it must be one of the tenant's sites; it may be left out when the
    /// tenant has exactly one.
    pub fn site(&self, site_id: Option<&str>) -> Result<WebflowId, ToolError> {
        let sites = &self.tenant.webflow_sites;
        match site_id {
            Some(raw) => {
                let id = WebflowId::parse("site_id", raw)?;
                if self.tenant.owns_site(&id) {
                    Ok(id)
                } else {
                    Err(ToolError::NotYours {
                        what: "site",
                        id: id.to_string(),
                    })
                }
            }
            None => match sites.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(ToolError::InvalidArguments(format!(
                    "site_id is required: this tenant has {} sites ({})",
                    sites.len(),
                    sites
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            },
        }
    }

    /// A Webflow client bound to the tenant's own token.
    pub fn webflow(&self) -> Result<Webflow<'_>, ToolError> {
        Ok(Webflow {
            upstream: &self.services.webflow,
            token: self.credential(SecretKind::Webflow)?,
            reads: crate::upstream::Reads::Cached(&self.tenant.id),
        })
    }

    /// Checks that a collection belongs to one of the tenant's sites, before any call names it.
    pub async fn collection(&self, raw: &str) -> Result<WebflowId, ToolError> {
        let id = WebflowId::parse("collection_id", raw)?;
        self.scoped(id, crate::scope::Kind::Collection).await
    }

    /// `id` if the tenant's index (its own sites' listings) holds it; refused otherwise.
    async fn scoped(
        &self,
        id: WebflowId,
        kind: crate::scope::Kind,
    ) -> Result<WebflowId, ToolError> {
        if self
            .services
            .index
            .contains(self.tenant, || self.webflow(), &id, kind)
            .await?
        {
            return Ok(id);
        }
        Err(ToolError::NotYours {
            what: kind.noun(),
            id: id.to_string(),
        })
    }

    /// A Plausible client bound to the tenant's own API key.
    pub fn plausible(&self) -> Result<Plausible<'_>, ToolError> {
        Ok(Plausible {
            upstream: &self.services.plausible,
            token: self.credential(SecretKind::Plausible)?,
        })
    }

    /// A GitHub client bound to the tenant's own token.
    pub fn github(&self) -> Result<Github<'_>, ToolError> {
        Ok(Github {
            upstream: &self.services.github,
            token: self.credential(SecretKind::Github)?,
            reads: crate::upstream::Reads::Cached(&self.tenant.id),
        })
    }

    /// Resolves `repo`: one of the tenant's repositories; may be left out when it has one.
    pub fn repo(&self, repo: Option<&str>) -> Result<RepoName, ToolError> {
        let repos = &self.tenant.github_repos;
        match repo {
            Some(raw) => {
                let name = RepoName::parse(raw)?;
                if repos.contains(&name) {
                    Ok(name)
                } else {
                    Err(ToolError::NotYours {
                        what: "repository",
                        id: name.to_string(),
                    })
                }
            }
            None => match repos.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(ToolError::InvalidArguments(format!(
                    "repo is required: this tenant has {} repositories ({})",
                    repos.len(),
                    repos
                        .iter()
                        .map(|r| r.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))),
            },
        }
    }

    /// A collection the tenant may write: on its writable list *and* in one of its sites.
    pub async fn writable_collection(&self, raw: &str) -> Result<WebflowId, ToolError> {
        let id = WebflowId::parse("collection_id", raw)?;
        if !self.tenant.may_write_collection(&id) {
            return Err(ToolError::NotPermitted(format!(
                "collection `{id}` is not writable for this tenant"
            )));
        }
        self.scoped(id, crate::scope::Kind::Collection).await
    }

    /// Checks that a page belongs to one of the tenant's sites, before any call names it.
    pub async fn page(&self, raw: &str) -> Result<WebflowId, ToolError> {
        let id = WebflowId::parse("page_id", raw)?;
        self.scoped(id, crate::scope::Kind::Page).await
    }

    /// Checks that an asset belongs to one of the tenant's sites, before any call names it.
    pub async fn asset(&self, raw: &str) -> Result<WebflowId, ToolError> {
        let id = WebflowId::parse("asset_id", raw)?;
        self.scoped(id, crate::scope::Kind::Asset).await
    }

    /// Checks that a form belongs to one of the tenant's sites, before any call names it.
    pub async fn form(&self, raw: &str) -> Result<WebflowId, ToolError> {
        let id = WebflowId::parse("form_id", raw)?;
        self.scoped(id, crate::scope::Kind::Form).await
    }
}

fn upstream_name(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Webflow => "Webflow",
        SecretKind::WebflowApp => "Webflow App",
        SecretKind::Plausible => "Plausible",
        SecretKind::Github => "GitHub",
        SecretKind::Cloudflare => "Cloudflare",
        SecretKind::Stripe => "Stripe",
    }
}

/// What a tool's call does to the world outside this server: each tool states it, and its MCP
/// annotations follow from it by one rule (ARCHITECTURE.md, "Tool annotations").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Reads only.
    Reads,
    /// Only adds something new (a draft item): nothing that existed changes. Not destructive.
    Adds,
    /// Replaces values that exist, even staged ones (a draft's fields): what was there is lost,
    /// which the spec calls destructive. The same call twice leaves the same state.
    Overwrites,
    /// A high-risk action on the live site, DNS or billing, behind a person's approval.
    Acts,
}

impl Effect {
    /// The annotations clients act on: `readOnlyHint`, `destructiveHint` (ChatGPT asks a
    /// person on every call of a tool where it is not explicitly false), `idempotentHint`.
    pub fn hints(self) -> (bool, bool, bool) {
        match self {
            Effect::Reads => (true, false, true),
            Effect::Adds => (false, false, false),
            Effect::Overwrites => (false, true, true),
            Effect::Acts => (false, true, false),
        }
    }
}

/// One tool. Each lives in its own file under `tools/` and is registered in one place.
pub trait Tool: Send + Sync + 'static {
    const NAME: &'static str;
    const TITLE: &'static str;
    const DESCRIPTION: &'static str;
    const TIER: Tier;
    /// Stated by every tool (no default): its annotations follow from it.
    const EFFECT: Effect;
    /// `None`: every tenant has it.
    const TOOLSET: Option<Toolset>;
    type Args: DeserializeOwned + JsonSchema + Send;
    type Output: Serialize;

    /// Whether this tenant may see and call the tool (beyond toolset and read-only).
    fn available(_tenant: &Tenant) -> bool {
        true
    }

    fn run(
        ctx: &ToolContext<'_>,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::Output, ToolError>> + Send;
}

type CallFn = for<'a> fn(
    &'a ToolContext<'a>,
    JsonObject,
) -> BoxFuture<'a, Result<serde_json::Value, ToolError>>;

/// A tool with its types erased, so the catalog can hold many.
pub struct ToolEntry {
    pub definition: rmcp::model::Tool,
    name: &'static str,
    pub tier: Tier,
    pub toolset: Option<Toolset>,
    available: fn(&Tenant) -> bool,
    call: CallFn,
}

impl ToolEntry {
    pub fn of<T: Tool>() -> Self {
        let schema = schemars::SchemaGenerator::default().into_root_schema_for::<T::Args>();
        let schema = match serde_json::to_value(schema) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => JsonObject::new(),
        };
        let (read_only, destructive, idempotent) = T::EFFECT.hints();
        // Every hint explicit: a client's default for a missing one is the cautious reading.
        let annotations = ToolAnnotations::with_title(T::TITLE)
            .read_only(read_only)
            .destructive(destructive)
            .idempotent(idempotent)
            .open_world(T::TOOLSET.is_some());
        let definition = rmcp::model::Tool::new(T::NAME, T::DESCRIPTION, Arc::new(schema))
            .with_title(T::TITLE)
            .annotate(annotations);
        Self {
            definition,
            name: T::NAME,
            tier: T::TIER,
            toolset: T::TOOLSET,
            available: T::available,
            call: call_erased::<T>,
        }
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Runs the tool with JSON arguments (what `tools/call` does, without the protocol).
    pub fn invoke<'a>(
        &self,
        ctx: &'a ToolContext<'a>,
        args: JsonObject,
    ) -> BoxFuture<'a, Result<serde_json::Value, ToolError>> {
        (self.call)(ctx, args)
    }

    pub fn allowed_for(&self, tenant: &Tenant) -> bool {
        let toolset_ok = self.toolset.is_none_or(|t| tenant.has_toolset(t));
        let tier_ok = !(tenant.read_only && self.tier != Tier::Read);
        toolset_ok && tier_ok && (self.available)(tenant)
    }
}

fn call_erased<'a, T: Tool>(
    ctx: &'a ToolContext<'a>,
    args: JsonObject,
) -> BoxFuture<'a, Result<serde_json::Value, ToolError>> {
    Box::pin(async move {
        let value = serde_json::Value::Object(args);
        let args: T::Args = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                ToolError::InvalidArguments(inner.to_string())
            } else {
                ToolError::InvalidArguments(format!("{path}: {inner}"))
            }
        })?;
        // Only a tool that reaches outside (it has a toolset) can use the read cache: `whoami`,
        // the hot path, runs without the freshness scope.
        let (output, cached_for) = if T::TOOLSET.is_some() {
            crate::upstream::cache::observed(T::run(ctx, args)).await
        } else {
            (T::run(ctx, args).await, None)
        };
        let mut value =
            serde_json::to_value(output?).map_err(|e| ctx.internal("result encoding", &e))?;
        // A result built (even partly) from cached upstream answers says how old the oldest was.
        if let (Some(secs), serde_json::Value::Object(fields)) = (cached_for, &mut value) {
            fields.insert("cached_for_secs".to_owned(), secs.into());
        }
        Ok(value)
    })
}

/// The tools one server offers.
pub struct Catalog {
    entries: Vec<ToolEntry>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    pub fn new(entries: Vec<ToolEntry>) -> Self {
        let by_name = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name().to_owned(), i))
            .collect();
        Self { entries, by_name }
    }

    pub fn get(&self, name: &str) -> Option<&ToolEntry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    pub fn entries(&self) -> &[ToolEntry] {
        &self.entries
    }

    /// Exactly what `tools/list` shows this tenant.
    pub fn for_tenant(&self, tenant: &Tenant) -> Vec<rmcp::model::Tool> {
        self.entries
            .iter()
            .filter(|e| e.allowed_for(tenant))
            .map(|e| e.definition.clone())
            .collect()
    }
}

/// A server's MCP resources, as functions: `common` knows how to serve resources, not which.
/// The shared server's are its Webflow sites and collections; the isolated server has none.
pub struct ResourceCatalog {
    /// Whether this tenant sees any resource at all.
    pub visible: fn(&ToolContext<'_>) -> bool,
    pub templates: fn() -> Vec<rmcp::model::ResourceTemplate>,
    pub list: ListResourcesFn,
    pub read: ReadResourceFn,
}

pub type ListResourcesFn =
    for<'a> fn(&'a ToolContext<'a>) -> BoxFuture<'a, Result<Vec<rmcp::model::Resource>, ToolError>>;
pub type ReadResourceFn =
    for<'a> fn(
        &'a ToolContext<'a>,
        &'a str,
    ) -> BoxFuture<'a, Result<rmcp::model::ResourceContents, ToolError>>;
