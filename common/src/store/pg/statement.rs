//! What a unit of PostgreSQL work is called in traces (the database client conventions): its
//! operation and table, never its text or parameters.

use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::store::StoreError;

/// A statement (or transaction) by kind: `SELECT` on `kv` in tree `tokens`, `BATCH` on `kv`.
#[derive(Clone, Copy)]
pub struct Statement {
    operation: &'static str,
    collection: &'static str,
    tree: &'static str,
}

impl Statement {
    /// `collection` and `tree` may be empty.
    pub fn new(operation: &'static str, collection: &'static str, tree: &'static str) -> Self {
        Self {
            operation,
            collection,
            tree,
        }
    }

    /// The statement's span, a child of the caller's current span (made on the caller's
    /// thread, so the engine's runtime need not know it).
    pub fn span(self) -> Span {
        let span = tracing::info_span!(
            target: crate::trace::TARGET,
            parent: &Span::current(),
            "pg",
            otel.name = %crate::trace::Named(self.operation, self.collection),
            otel.kind = "client",
        );
        if !span.is_disabled() {
            span.set_attribute("db.system.name", "postgresql");
            span.set_attribute("db.operation.name", self.operation);
            if !self.collection.is_empty() {
                span.set_attribute("db.collection.name", self.collection);
            }
            if !self.tree.is_empty() {
                crate::trace::own(&span, "store.tree", self.tree);
            }
        }
        span
    }
}

/// Marks a statement's span failed with the error's kind (not its text, which may name a host).
pub fn failed(span: &Span, error: &StoreError) {
    if span.is_disabled() {
        return;
    }
    span.set_attribute("error.type", error.kind());
    span.set_status(opentelemetry::trace::Status::error(error.kind()));
}
