//! The gateway's integration tests: one binary, one module per concern.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod dedup_conformance;
mod deploy_config;
mod e2e;
mod http_api;
mod pipeline;
mod purity;
