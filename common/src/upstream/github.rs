//! GitHub REST (`X-GitHub-Api-Version: 2022-11-28`): the repository reads the catalog uses.

use crate::upstream_path;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::cache::Freshness;
use super::{Call, Reads, Upstream, UpstreamError};
use crate::domain::RepoName;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Repo {
    pub id: u64,
    pub full_name: String,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
    #[serde(default)]
    pub default_branch: Option<String>,
    #[serde(default)]
    pub visibility: Option<String>,
    #[serde(default)]
    pub pushed_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub open_issues_count: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommitAuthor {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub date: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommitDetail {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub author: Option<CommitAuthor>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Commit {
    pub sha: String,
    #[serde(default)]
    pub html_url: Option<String>,
    pub commit: CommitDetail,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkflowRun {
    pub id: u64,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub head_branch: Option<String>,
    #[serde(default)]
    pub head_sha: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub run_number: Option<u64>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
    #[serde(default)]
    pub html_url: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkflowRuns {
    #[serde(default)]
    pub total_count: u64,
    pub workflow_runs: Vec<WorkflowRun>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Deployment {
    pub id: u64,
    #[serde(default)]
    pub sha: Option<String>,
    #[serde(rename = "ref", default)]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub updated_at: Option<String>,
}

pub struct Github<'a> {
    pub upstream: &'a Upstream,
    pub token: SecretString,
    /// Whose cached answers its reads may use.
    pub reads: Reads<'a>,
}

fn paging(per_page: u32, page: u32) -> Vec<(&'static str, String)> {
    vec![
        ("per_page", per_page.to_string()),
        ("page", page.to_string()),
    ]
}

impl Github<'_> {
    pub async fn repo(&self, repo: &RepoName) -> Result<Repo, UpstreamError> {
        self.upstream
            .send(
                &self.token,
                Call::get(upstream_path!("/repos/{repo}")).cached(self.reads, Freshness::History),
            )
            .await
    }

    pub async fn commits(
        &self,
        repo: &RepoName,
        branch: Option<&str>,
        per_page: u32,
        page: u32,
    ) -> Result<Vec<Commit>, UpstreamError> {
        let mut query = paging(per_page, page);
        if let Some(b) = branch {
            query.push(("sha", b.to_owned()));
        }
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/repos/{repo}/commits"))
        };
        let call = call.cached(self.reads, Freshness::History);
        self.upstream.send(&self.token, call).await
    }

    pub async fn workflow_runs(
        &self,
        repo: &RepoName,
        branch: Option<&str>,
        status: Option<&str>,
        per_page: u32,
        page: u32,
    ) -> Result<WorkflowRuns, UpstreamError> {
        let mut query = paging(per_page, page);
        if let Some(b) = branch {
            query.push(("branch", b.to_owned()));
        }
        if let Some(s) = status {
            query.push(("status", s.to_owned()));
        }
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/repos/{repo}/actions/runs"))
        };
        let call = call.cached(self.reads, Freshness::Live);
        self.upstream.send(&self.token, call).await
    }

    pub async fn deployments(
        &self,
        repo: &RepoName,
        environment: Option<&str>,
        per_page: u32,
        page: u32,
    ) -> Result<Vec<Deployment>, UpstreamError> {
        let mut query = paging(per_page, page);
        if let Some(e) = environment {
            query.push(("environment", e.to_owned()));
        }
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/repos/{repo}/deployments"))
        };
        let call = call.cached(self.reads, Freshness::Live);
        self.upstream.send(&self.token, call).await
    }
}
