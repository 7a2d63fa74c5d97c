//! Stripe: invoices and billing-portal sessions. Bodies are form-encoded; every POST carries an
//! `Idempotency-Key`, so a retried request never acts twice.

use crate::tools::approval::Approved;
use common::domain::StripeCustomer;
use common::upstream::{Call, Upstream, UpstreamError};
use common::upstream_path;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Invoice {
    pub id: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub number: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub currency: Option<String>,
    #[serde(default)]
    pub amount_due: Option<i64>,
    #[serde(default)]
    pub amount_paid: Option<i64>,
    #[serde(default)]
    pub created: Option<i64>,
    #[serde(default)]
    pub due_date: Option<i64>,
    #[serde(default)]
    pub hosted_invoice_url: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InvoiceList {
    pub data: Vec<Invoice>,
    #[serde(default)]
    pub has_more: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PortalSession {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub return_url: Option<String>,
    #[serde(default)]
    pub created: Option<i64>,
}

pub struct Stripe<'a> {
    pub upstream: &'a Upstream,
    pub token: SecretString,
}

impl Stripe<'_> {
    pub async fn invoices(
        &self,
        customer: &StripeCustomer,
        limit: u32,
        starting_after: Option<&str>,
    ) -> Result<InvoiceList, UpstreamError> {
        let mut query = vec![
            ("customer", customer.as_str().to_owned()),
            ("limit", limit.to_string()),
        ];
        if let Some(after) = starting_after {
            query.push(("starting_after", after.to_owned()));
        }
        let call = Call {
            query: &query,
            ..Call::get(upstream_path!("/v1/invoices"))
        };
        self.upstream.send(&self.token, call).await
    }

    pub async fn create_portal_session(
        &self,
        // The proof a person approved this exact action: no caller can make one.
        _approved: &Approved,
        customer: &StripeCustomer,
        return_url: Option<&str>,
        idempotency_key: &str,
    ) -> Result<PortalSession, UpstreamError> {
        let mut form = vec![("customer".to_owned(), customer.as_str().to_owned())];
        if let Some(url) = return_url {
            form.push(("return_url".to_owned(), url.to_owned()));
        }
        let headers = [("idempotency-key", idempotency_key.to_owned())];
        let call = Call {
            form: Some(&form),
            headers: &headers,
            ..Call::with_method(
                reqwest::Method::POST,
                upstream_path!("/v1/billing_portal/sessions"),
            )
        };
        self.upstream.send(&self.token, call).await
    }
}
