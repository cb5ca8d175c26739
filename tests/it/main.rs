//! The gateway's integration tests: one binary, one module per concern.

#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test
#![allow(clippy::disallowed_methods)] // tests wait on and measure real time

mod alertmanager_tls;
mod apiserver;
mod auth;
mod chaos;
mod config_api;
mod config_sources;
mod configmap_source;
mod dedup_conformance;
mod deploy_config;
mod deploy_manifests;
mod domain_from_outside;
mod e2e;
mod fuzz_corpus;
mod hostile;
mod hot_reload;
mod http_api;
mod hygiene;
mod kube_sink;
mod namespace_scope;
mod outbox_conformance;
mod pipeline;
mod prometheus_stack;
mod purity;
mod redis_cluster;
mod redis_container;
mod redis_store;
mod redis_topology;
mod reload_under_load;
mod replay;
mod secrets;
mod server_bounds;
mod settings_bounds;
mod storm_conformance;
mod storm_writes;
mod tls;
mod tokenreview;
