//! The Kubernetes API-server emulator (`gateway_tests::apiserver`) against the real kube-rs
//! client: REST semantics, schema validation, selectors, patches, optimistic concurrency, the
//! status subresource, watches (kube-runtime's watcher), fault injection.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use gateway_adapter_kube::crd::{RemediationRequest, RemediationRequestStatus, to_resource};
use gateway_tests::apiserver::{ApiServer, Fault, Filter, Resource, sample_remediation};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher;
use serde_json::{Value, json};

const NS: &str = "prod";

fn remediations(server: &ApiServer) -> Api<RemediationRequest> {
    Api::namespaced(server.client(), NS)
}

fn config_maps(server: &ApiServer) -> Api<ConfigMap> {
    Api::namespaced(server.client(), NS)
}

/// The custom resource, untyped: to send what the typed struct cannot express.
fn dynamic(server: &ApiServer) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("remediation.kubernaut.io", "v1alpha1", "RemediationRequest");
    Api::namespaced_with(server.client(), NS, &ApiResource::from_gvk(&gvk))
}

fn sample(name: &str) -> RemediationRequest {
    serde_json::from_value(sample_remediation(NS, name)).unwrap()
}

fn config_map(name: &str, labels: Value, data: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": labels},
        "data": data
    }))
    .unwrap()
}

/// The API error a call failed with.
fn api_error<T: std::fmt::Debug>(result: kube::Result<T>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn rv(meta: &kube::api::ObjectMeta) -> u64 {
    meta.resource_version.as_deref().unwrap().parse().unwrap()
}

/// Polls `check` until it holds (or fails the test after `within`).
async fn wait_until(within: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn discovery_describes_the_crd_and_config_maps() {
    let server = ApiServer::start().await;
    let client = server.client();
    let version = client.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "33")
    );
    let groups = client.list_api_groups().await.unwrap();
    assert_eq!(groups.groups[0].name, "remediation.kubernaut.io");
    let crd = client
        .list_api_group_resources("remediation.kubernaut.io/v1alpha1")
        .await
        .unwrap();
    let main = &crd.resources[0];
    assert_eq!(
        (main.name.as_str(), main.kind.as_str(), main.namespaced),
        ("remediationrequests", "RemediationRequest", true)
    );
    for verb in [
        "create", "get", "list", "watch", "update", "patch", "delete",
    ] {
        assert!(main.verbs.iter().any(|v| v == verb), "{verb}");
    }
    assert_eq!(crd.resources[1].name, "remediationrequests/status");
    assert_eq!(crd.resources[1].verbs, ["get", "patch", "update"]);
    let core = client.list_core_api_resources("v1").await.unwrap();
    assert!(core.resources.iter().any(|r| r.name == "configmaps"));

    let requests = server.requests();
    assert_eq!(requests.len(), 4);
    for r in &requests {
        assert_eq!(
            (r.verb, r.group.as_str(), r.resource.as_str()),
            ("get", "", "")
        );
        assert!(!r.is_resource());
        assert_eq!(r.status, 200);
    }
    assert_eq!(requests[0].path, "/version");

    let unknown = reqwest::get(format!("{}/apis/apps/v1/deployments", server.url()))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let status: Value = unknown.json().await.unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("NotFound"))
    );
}

#[tokio::test]
async fn create_sets_server_metadata_drops_status_and_get_returns_it() {
    let server = ApiServer::start().await;
    let api = remediations(&server);
    let mut rr = sample("rr-1");
    rr.status = Some(RemediationRequestStatus {
        phase: Some("Completed".into()),
        message: None,
    });
    let created = api.create(&PostParams::default(), &rr).await.unwrap();
    let meta = &created.metadata;
    assert_eq!(meta.namespace.as_deref(), Some(NS));
    assert!(meta.uid.as_deref().is_some_and(|u| !u.is_empty()));
    assert!(rv(meta) > 0);
    assert_eq!(meta.generation, Some(1));
    assert!(meta.creation_timestamp.is_some());
    assert_eq!(
        created.status, None,
        "create drops the status of a status subresource"
    );
    assert_eq!(created.spec, rr.spec);

    let got = api.get("rr-1").await.unwrap();
    assert_eq!(
        serde_json::to_value(&got).unwrap(),
        serde_json::to_value(&created).unwrap()
    );
    assert_eq!(
        server
            .object(Resource::RemediationRequests, NS, "rr-1")
            .unwrap()["spec"]["severity"],
        "critical"
    );

    let missing = api_error(api.get("nope").await);
    assert_eq!((missing.code, missing.reason.as_str()), (404, "NotFound"));
    assert_eq!(
        missing.message,
        "remediationrequests.remediation.kubernaut.io \"nope\" not found"
    );

    let r = &server.requests()[0];
    assert_eq!(
        (
            r.method.as_str(),
            r.verb,
            r.group.as_str(),
            r.resource.as_str(),
            r.namespace.as_deref(),
            r.status
        ),
        (
            "POST",
            "create",
            "remediation.kubernaut.io",
            "remediationrequests",
            Some(NS),
            201
        )
    );
}

/// Every shape the ports model writes: an individual signal (here on a cluster-scoped object),
/// a storm aggregate whose window is open (no end), one whose window closed.
fn model_variants() -> Vec<gateway_ports::RemediationRequest> {
    use gateway_ports::remediation::{DeduplicationInfo, RemediationRequestSpec, StormInfo};
    use gateway_ports::{Fingerprint, ResourceRef, Severity, Timestamp};
    let t = Timestamp::from_millis(1_764_090_000_123);
    let pod = |name: &str| ResourceRef {
        kind: "Pod".to_owned(),
        name: name.to_owned(),
        namespace: NS.to_owned(),
    };
    let request = |name: &str, storm: Option<StormInfo>| gateway_ports::RemediationRequest {
        name: name.to_owned(),
        namespace: NS.to_owned(),
        labels: [("kubernaut.io/storm".to_owned(), storm.is_some().to_string())].into(),
        spec: RemediationRequestSpec {
            signal_fingerprint: Fingerprint::from_hex(&"0a".repeat(32)).unwrap(),
            signal_name: "HighMemoryUsage".to_owned(),
            severity: Severity::Warning,
            signal_type: "prometheus-alert".to_owned(),
            signal_source: "prometheus".to_owned(),
            target_type: "kubernetes".to_owned(),
            target_resource: match storm {
                Some(_) => pod("api-1"),
                None => ResourceRef {
                    kind: "Node".to_owned(),
                    name: "worker-1".to_owned(),
                    namespace: String::new(),
                },
            },
            firing_time: t,
            received_time: t,
            signal_labels: [("team".to_owned(), "payments".to_owned())].into(),
            signal_annotations: [("summary".to_owned(), "memory above 90%".to_owned())].into(),
            is_storm: storm.is_some(),
            storm,
            deduplication: DeduplicationInfo {
                first_occurrence: t,
                last_occurrence: t,
                occurrence_count: 2,
            },
        },
    };
    let storm = |end: Option<Timestamp>| StormInfo {
        storm_type: "rate".to_owned(),
        storm_window: "2m 30s".to_owned(),
        storm_window_start: t,
        storm_window_end: end,
        storm_alert_count: 40,
        storm_sampled_out_count: 10,
        affected_resources: vec![pod("api-1"), pod("api-2")],
    };
    vec![
        request("rr-individual", None),
        request("rr-storm-open", Some(storm(None))),
        request("rr-storm-closed", Some(storm(Some(t)))),
    ]
}

#[tokio::test]
async fn every_shape_the_ports_model_writes_is_accepted_and_stored_as_it_is() {
    let server = ApiServer::start().await;
    let api = remediations(&server);
    for request in model_variants() {
        let created = api
            .create(&PostParams::default(), &to_resource(&request))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", request.name));
        assert_eq!(created.spec.into_inner(), request.spec, "{}", request.name);
        let stored = server
            .object(Resource::RemediationRequests, NS, &request.name)
            .unwrap();
        assert_eq!(
            stored["spec"],
            serde_json::to_value(&request.spec).unwrap(),
            "{}: nothing pruned, nothing defaulted",
            request.name
        );
    }
}

#[tokio::test]
async fn creating_an_existing_name_is_409_already_exists() {
    let server = ApiServer::start().await;
    let api = remediations(&server);
    api.create(&PostParams::default(), &sample("rr-1"))
        .await
        .unwrap();
    let status = api_error(api.create(&PostParams::default(), &sample("rr-1")).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (409, "AlreadyExists")
    );
    let details = status.details.unwrap();
    assert_eq!(
        (details.name.as_str(), details.kind.as_str()),
        ("rr-1", "remediationrequests")
    );
}

#[tokio::test]
async fn create_checks_names_namespaces_and_resource_versions() {
    let server = ApiServer::start().await;
    let api = dynamic(&server);
    let post = |object: Value| {
        let api = api.clone();
        async move {
            let object: DynamicObject = serde_json::from_value(object).unwrap();
            api.create(&PostParams::default(), &object).await
        }
    };
    let mut other_ns = sample_remediation("elsewhere", "rr-1");
    other_ns["metadata"]["namespace"] = json!("elsewhere");
    assert_eq!(api_error(post(other_ns).await).code, 400);
    let mut bad_name = sample_remediation(NS, "Not_A_Name");
    bad_name["metadata"]["name"] = json!("Not_A_Name");
    let status = api_error(post(bad_name).await);
    assert_eq!(
        (
            status.code,
            status.details.unwrap().causes[0].field.as_str()
        ),
        (422, "metadata.name")
    );
    let mut generated = sample_remediation(NS, "");
    generated["metadata"] = json!({"generateName": "rr-"});
    let created = post(generated).await.unwrap();
    assert!(created.metadata.name.unwrap().starts_with("rr-"));
    let mut with_rv = sample_remediation(NS, "rr-2");
    with_rv["metadata"]["resourceVersion"] = json!("5");
    assert_eq!(api_error(post(with_rv).await).code, 500);
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    api.create(
        &dry,
        &serde_json::from_value(sample_remediation(NS, "rr-3")).unwrap(),
    )
    .await
    .unwrap();
    assert!(
        server
            .object(Resource::RemediationRequests, NS, "rr-3")
            .is_none()
    );
}

#[tokio::test]
async fn schema_violations_are_422_invalid_with_causes_naming_the_field() {
    let server = ApiServer::start().await;
    let api = dynamic(&server);
    let attempt = |change: fn(&mut Value)| {
        let api = api.clone();
        async move {
            let mut object = sample_remediation(NS, "rr-bad");
            change(&mut object);
            let object: DynamicObject = serde_json::from_value(object).unwrap();
            api_error(api.create(&PostParams::default(), &object).await)
        }
    };
    type Case = (fn(&mut Value), &'static str, &'static str);
    let cases: [Case; 6] = [
        (
            |o| o["spec"]["signalFingerprint"] = json!("ABC"),
            "spec.signalFingerprint",
            "FieldValueInvalid",
        ),
        (
            |o| o["spec"]["severity"] = json!("urgent"),
            "spec.severity",
            "FieldValueNotSupported",
        ),
        (
            |o| {
                o["spec"].as_object_mut().unwrap().remove("signalName");
            },
            "spec.signalName",
            "FieldValueRequired",
        ),
        (
            |o| o["spec"]["deduplication"]["occurrenceCount"] = json!(0),
            "spec.deduplication.occurrenceCount",
            "FieldValueInvalid",
        ),
        (
            |o| o["spec"]["firingTime"] = json!("yesterday"),
            "spec.firingTime",
            "FieldValueInvalid",
        ),
        (
            |o| o["spec"]["isStorm"] = json!("yes"),
            "spec.isStorm",
            "FieldValueTypeInvalid",
        ),
    ];
    for (change, field, reason) in cases {
        let status = attempt(change).await;
        assert_eq!(
            (status.code, status.reason.as_str()),
            (422, "Invalid"),
            "{field}"
        );
        let details = status.details.clone().unwrap();
        assert_eq!(details.kind, "RemediationRequest");
        assert!(
            details
                .causes
                .iter()
                .any(|c| c.field == field && c.reason == reason),
            "{field}/{reason} not among {:?}",
            details.causes
        );
        assert!(
            status
                .message
                .starts_with("RemediationRequest.remediation.kubernaut.io \"rr-bad\" is invalid: "),
            "{}",
            status.message
        );
    }
    let fingerprint = attempt(|o| o["spec"]["signalFingerprint"] = json!("ABC")).await;
    assert_eq!(
        fingerprint.details.unwrap().causes[0].message,
        "Invalid value: \"ABC\": spec.signalFingerprint in body should match '^[0-9a-f]{64}$'"
    );
    assert!(server.objects(Resource::RemediationRequests).is_empty());

    // Unknown fields are pruned (with a warning), as a structural schema does; nulls of
    // nullable fields stay (`stormWindowEnd`), nulls of the others go (`stormType`: the model
    // never writes one), defaults fill in.
    let mut extra = sample_remediation(NS, "rr-extra");
    extra["spec"]["notInTheSchema"] = json!(1);
    extra["spec"]["stormType"] = Value::Null;
    extra["spec"]["stormWindowEnd"] = Value::Null;
    extra["spec"].as_object_mut().unwrap().remove("isStorm");
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(extra).unwrap(),
        )
        .await
        .unwrap();
    assert!(created.data["spec"].get("notInTheSchema").is_none());
    assert_eq!(created.data["spec"]["isStorm"], false);
    assert_eq!(created.data["spec"]["stormWindowEnd"], Value::Null);
    assert!(created.data["spec"].get("stormWindowEnd").is_some());
    assert!(created.data["spec"].get("stormType").is_none());
}

#[tokio::test]
async fn lists_filter_by_label_and_field_selectors() {
    let server = ApiServer::start().await;
    let api = config_maps(&server);
    let pp = PostParams::default();
    for (name, labels) in [
        ("a", json!({"app": "web", "env": "prod", "team": "x"})),
        ("b", json!({"app": "web", "env": "stage"})),
        ("c", json!({"app": "db", "env": "prod"})),
        ("d", json!({})),
    ] {
        api.create(&pp, &config_map(name, labels, json!({"k": "v"})))
            .await
            .unwrap();
    }
    Api::<ConfigMap>::namespaced(server.client(), "other")
        .create(&pp, &config_map("a", json!({"app": "web"}), json!({})))
        .await
        .unwrap();
    let names = |selector: &str, fields: &str| {
        let api = api.clone();
        let lp = ListParams::default().labels(selector).fields(fields);
        async move {
            let list = api.list(&lp).await.unwrap();
            list.items
                .iter()
                .map(|c| c.metadata.name.clone().unwrap())
                .collect::<Vec<_>>()
                .join(",")
        }
    };
    assert_eq!(names("", "").await, "a,b,c,d");
    assert_eq!(names("app=web", "").await, "a,b");
    assert_eq!(names("app==web", "").await, "a,b");
    assert_eq!(names("app!=web", "").await, "c,d");
    assert_eq!(names("env in (prod,stage)", "").await, "a,b,c");
    assert_eq!(names("env notin (prod)", "").await, "b,d");
    assert_eq!(names("team", "").await, "a");
    assert_eq!(names("!team", "").await, "b,c,d");
    assert_eq!(names("app=web,env=prod", "").await, "a");
    assert_eq!(names("", "metadata.name=c").await, "c");
    assert_eq!(names("app=web", "metadata.name!=a").await, "b");

    let all = Api::<ConfigMap>::all(server.client())
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(all.items.len(), 5);
    assert!(
        all.metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );
    let in_other = Api::<ConfigMap>::all(server.client())
        .list(&ListParams::default().fields("metadata.namespace=other"))
        .await
        .unwrap();
    assert_eq!(in_other.items.len(), 1);

    let bad = api_error(api.list(&ListParams::default().fields("data.k=v")).await);
    assert_eq!((bad.code, bad.reason.as_str()), (400, "BadRequest"));
    let bad = api_error(api.list(&ListParams::default().labels("app in (web")).await);
    assert_eq!(bad.code, 400);
    // Pagination is accepted and ignored.
    let page = api.list(&ListParams::default().limit(1)).await.unwrap();
    assert_eq!(
        (
            page.items.len(),
            page.metadata.continue_.as_deref().unwrap_or("")
        ),
        (4, "")
    );

    // Labels of the custom resource, too.
    let rrs = remediations(&server);
    let mut labelled = sample("rr-1");
    labelled.metadata.labels = Some([("kubernaut.io/storm".to_owned(), "true".to_owned())].into());
    rrs.create(&pp, &labelled).await.unwrap();
    rrs.create(&pp, &sample("rr-2")).await.unwrap();
    let storms = rrs
        .list(&ListParams::default().labels("kubernaut.io/storm=true"))
        .await
        .unwrap();
    assert_eq!(storms.items.len(), 1);
}

/// A JSON patch (RFC 6902) through the kube client: kube's `Patch::Json` needs its `jsonpatch`
/// feature, which the workspace does not enable, so the request is built by hand.
async fn json_patch(server: &ApiServer, path: &str, operations: Value) -> kube::Result<Value> {
    let request = hyper::Request::builder()
        .method("PATCH")
        .uri(path)
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&operations).unwrap())
        .unwrap();
    server.client().request::<Value>(request).await
}

#[tokio::test]
async fn merge_and_json_patches_apply_and_fail_as_the_api_does() {
    let server = ApiServer::start().await;
    let cms = config_maps(&server);
    let pp = PostParams::default();
    cms.create(
        &pp,
        &config_map("settings", json!({}), json!({"a": "1", "b": "2"})),
    )
    .await
    .unwrap();
    let patched = cms
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "c": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        serde_json::to_value(patched.data.unwrap()).unwrap(),
        json!({"b": "2", "c": "3"})
    );
    let strategic = cms
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"d": "4"}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.data.unwrap()["d"], "4");

    let rrs = remediations(&server);
    rrs.create(&pp, &sample("rr-1")).await.unwrap();
    let merged = rrs
        .patch(
            "rr-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deduplication": {"occurrenceCount": 5}}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.spec.deduplication.occurrence_count, 5);
    assert_eq!(merged.metadata.generation, Some(2));

    let path = "/apis/remediation.kubernaut.io/v1alpha1/namespaces/prod/remediationrequests/rr-1";
    let patched: Value = json_patch(
        &server,
        path,
        json!([
            {"op": "test", "path": "/spec/deduplication/occurrenceCount", "value": 5},
            {"op": "replace", "path": "/spec/deduplication/occurrenceCount", "value": 6},
            {"op": "add", "path": "/spec/signalLabels/team", "value": "payments"},
            {"op": "remove", "path": "/spec/signalAnnotations/summary"},
            {"op": "copy", "from": "/spec/signalName", "path": "/spec/stormWindow"},
        ]),
    )
    .await
    .unwrap();
    // A lone `stormWindow` is no storm the model can hold (its storm part is all or nothing):
    // read from the JSON, as the server stored it.
    assert_eq!(patched["spec"]["stormWindow"], "HighMemoryUsage");
    let patched: RemediationRequest = serde_json::from_value(patched).unwrap();
    assert_eq!(patched.spec.deduplication.occurrence_count, 6);
    assert_eq!(patched.spec.signal_labels["team"], "payments");
    assert!(patched.spec.signal_annotations.is_empty());

    let failed_test = api_error(
        json_patch(
            &server,
            path,
            json!([{"op": "test", "path": "/spec/deduplication/occurrenceCount", "value": 1}]),
        )
        .await,
    );
    assert_eq!(
        (failed_test.code, failed_test.reason.as_str()),
        (422, "Invalid")
    );
    let invalid = api_error(
        rrs.patch(
            "rr-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"severity": "meh"}})),
        )
        .await,
    );
    assert_eq!(
        (
            invalid.code,
            invalid.details.unwrap().causes[0].field.as_str()
        ),
        (422, "spec.severity")
    );
    let strategic = api_error(
        rrs.patch(
            "rr-1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {}})),
        )
        .await,
    );
    assert_eq!(
        (strategic.code, strategic.reason.as_str()),
        (415, "UnsupportedMediaType")
    );
    let missing = api_error(
        rrs.patch(
            "nope",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {}})),
        )
        .await,
    );
    assert_eq!(missing.code, 404);
    assert_eq!(server.requests().last().unwrap().verb, "patch");
}

#[tokio::test]
async fn a_stale_resource_version_is_409_conflict_and_no_op_writes_keep_it() {
    let server = ApiServer::start().await;
    let api = remediations(&server);
    let created = api
        .create(&PostParams::default(), &sample("rr-1"))
        .await
        .unwrap();
    let mut first = created.clone();
    first.spec.deduplication.occurrence_count = 2;
    let replaced = api
        .replace("rr-1", &PostParams::default(), &first)
        .await
        .unwrap();
    assert!(rv(&replaced.metadata) > rv(&created.metadata));
    assert_eq!(replaced.metadata.generation, Some(2));

    let mut stale = created.clone();
    stale.spec.deduplication.occurrence_count = 3;
    let conflict = api_error(api.replace("rr-1", &PostParams::default(), &stale).await);
    assert_eq!((conflict.code, conflict.reason.as_str()), (409, "Conflict"));
    assert!(
        conflict.message.contains("the object has been modified"),
        "{}",
        conflict.message
    );

    let stale_patch = Patch::Merge(json!({
        "metadata": {"resourceVersion": created.metadata.resource_version},
        "spec": {"deduplication": {"occurrenceCount": 4}}
    }));
    let conflict = api_error(
        api.patch("rr-1", &PatchParams::default(), &stale_patch)
            .await,
    );
    assert_eq!(conflict.code, 409);

    // Without a resourceVersion, a replace of a custom resource is invalid (ConfigMaps allow it).
    let mut unconditional = replaced.clone();
    unconditional.metadata.resource_version = None;
    assert_eq!(
        api_error(
            api.replace("rr-1", &PostParams::default(), &unconditional)
                .await
        )
        .code,
        422
    );

    let same = api
        .patch(
            "rr-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"deduplication": {"occurrenceCount": 2}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        same.metadata.resource_version,
        replaced.metadata.resource_version
    );
}

#[tokio::test]
async fn the_status_subresource_changes_only_the_status() {
    let server = ApiServer::start().await;
    let api = remediations(&server);
    let created = api
        .create(&PostParams::default(), &sample("rr-1"))
        .await
        .unwrap();

    let mut with_status = created.clone();
    with_status.status = Some(RemediationRequestStatus {
        phase: Some("Processing".into()),
        message: None,
    });
    with_status.spec.severity = gateway_ports::Severity::Info;
    let after = api
        .replace_status("rr-1", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_eq!(after.status.unwrap().phase.as_deref(), Some("Processing"));
    assert_eq!(after.spec, created.spec, "a status update ignores the spec");
    assert_eq!(after.metadata.generation, Some(1));

    let patched = api
        .patch_status(
            "rr-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"message": "working"}, "spec": {"signalName": "x"}})),
        )
        .await
        .unwrap();
    assert_eq!(
        patched.status.as_ref().unwrap().message.as_deref(),
        Some("working")
    );
    assert_eq!(
        patched.status.as_ref().unwrap().phase.as_deref(),
        Some("Processing")
    );
    assert_eq!(patched.spec.signal_name, created.spec.signal_name);

    let mut main = patched.clone();
    main.status = Some(RemediationRequestStatus {
        phase: Some("Completed".into()),
        message: None,
    });
    main.spec.deduplication.occurrence_count = 9;
    let replaced = api
        .replace("rr-1", &PostParams::default(), &main)
        .await
        .unwrap();
    assert_eq!(
        replaced.status, patched.status,
        "an update of the resource keeps the stored status"
    );
    assert_eq!(replaced.spec.deduplication.occurrence_count, 9);
    assert_eq!(replaced.metadata.generation, Some(2));

    let status_request = server
        .requests()
        .into_iter()
        .find(|r| r.subresource.is_some())
        .unwrap();
    assert_eq!(
        (status_request.verb, status_request.subresource.as_deref()),
        ("update", Some("status"))
    );
}

#[tokio::test]
async fn delete_returns_success_then_not_found() {
    let server = ApiServer::start().await;
    let api = config_maps(&server);
    api.create(
        &PostParams::default(),
        &config_map("gone", json!({}), json!({})),
    )
    .await
    .unwrap();
    let deleted = api.delete("gone", &DeleteParams::default()).await.unwrap();
    let status = deleted.right().expect("a Success status");
    assert_eq!(status.details.unwrap().name, "gone");
    assert_eq!(
        api_error(api.delete("gone", &DeleteParams::default()).await).code,
        404
    );
    assert!(server.object(Resource::ConfigMaps, NS, "gone").is_none());
    assert_eq!(server.requests().last().unwrap().verb, "delete");

    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        api.create(
            &PostParams::default(),
            &config_map(name, json!({"app": app}), json!({})),
        )
        .await
        .unwrap();
    }
    let deleted = api
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels("app=web"),
        )
        .await
        .unwrap();
    let names: Vec<String> = deleted
        .left()
        .unwrap()
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    assert_eq!(server.objects(Resource::ConfigMaps).len(), 1);
    assert_eq!(server.requests().last().unwrap().verb, "deletecollection");
}

#[tokio::test]
async fn a_watch_by_label_sees_objects_move_in_and_out_of_its_selector() {
    let server = ApiServer::start().await;
    let api = config_maps(&server);
    let start = server.resource_version().to_string();
    api.create(
        &PostParams::default(),
        &config_map("m", json!({"app": "db"}), json!({})),
    )
    .await
    .unwrap();
    let relabel = |app: &'static str| {
        let api = api.clone();
        async move {
            api.patch(
                "m",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"app": app}}})),
            )
            .await
            .unwrap();
        }
    };
    relabel("web").await;
    api.patch(
        "m",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "v"}})),
    )
    .await
    .unwrap();
    relabel("db").await;
    let events: Vec<WatchEvent<ConfigMap>> = api
        .watch(&WatchParams::default().labels("app=web").timeout(1), &start)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(event_type).collect();
    assert_eq!(kinds, ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]);
}

#[tokio::test]
async fn pruned_unknown_fields_come_with_a_warning_header() {
    let server = ApiServer::start().await;
    let mut object = sample_remediation(NS, "rr-1");
    object["spec"]["surprise"] = json!(true);
    let response = reqwest::Client::new()
        .post(format!(
            "{}/apis/remediation.kubernaut.io/v1alpha1/namespaces/{NS}/remediationrequests",
            server.url()
        ))
        .json(&object)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(
        response.headers()["warning"],
        "299 - \"unknown field \\\"spec.surprise\\\"\""
    );
}

#[tokio::test]
async fn watch_replays_from_a_resource_version_and_ends_at_its_timeout() {
    let server = ApiServer::start().await;
    let api = config_maps(&server);
    let pp = PostParams::default();
    let first = api
        .create(&pp, &config_map("w", json!({}), json!({"v": "1"})))
        .await
        .unwrap();
    set_v(&api, "w", "2").await;
    api.delete("w", &DeleteParams::default()).await.unwrap();
    api.create(&pp, &config_map("other", json!({}), json!({})))
        .await
        .unwrap();

    let started = Instant::now();
    let wp = WatchParams::default().fields("metadata.name=w").timeout(1);
    let events: Vec<WatchEvent<ConfigMap>> = api
        .watch(&wp, first.metadata.resource_version.as_deref().unwrap())
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let kinds: Vec<&str> = events.iter().map(event_type).collect();
    assert_eq!(kinds, ["MODIFIED", "DELETED", "BOOKMARK"]);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );

    server.compact();
    let expired: Vec<WatchEvent<ConfigMap>> = api
        .watch(
            &WatchParams::default().timeout(1),
            first.metadata.resource_version.as_deref().unwrap(),
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    match &expired[..] {
        [WatchEvent::Error(e)] => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected one 410 ERROR event, got {other:?}"),
    }
    let watch = server
        .requests()
        .into_iter()
        .find(|r| r.verb == "watch")
        .unwrap();
    assert_eq!(
        watch.param("fieldSelector").as_deref(),
        Some("metadata.name=w")
    );
}

type WatcherEvents =
    tokio::sync::mpsc::UnboundedReceiver<Result<watcher::Event<ConfigMap>, watcher::Error>>;

/// Runs kube-runtime's watcher in a task (it only makes requests while polled), forwarding
/// its events; it stops when the receiver is dropped.
fn spawn_watcher(api: &Api<ConfigMap>, config: watcher::Config) -> WatcherEvents {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut stream = watcher(api.clone(), config).boxed();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = tx.closed() => return,
                event = stream.next() => match event {
                    Some(event) => {
                        if tx.send(event).is_err() {
                            return;
                        }
                    }
                    None => return,
                },
            }
        }
    });
    rx
}

/// Sets `data.v` of the ConfigMap `name` (a merge patch through the API).
async fn set_v(api: &Api<ConfigMap>, name: &str, v: &str) {
    api.patch(
        name,
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": v}})),
    )
    .await
    .unwrap();
}

/// `data.v` of the next ConfigMap the watcher delivers (within 2 s).
async fn next_v(events: &mut WatcherEvents) -> String {
    let cm = next_applied(events, Duration::from_secs(2)).await;
    cm.data.unwrap()["v"].clone()
}

/// Waits for the next watcher event carrying an object (`InitApply` or `Apply`).
async fn next_applied(events: &mut WatcherEvents, within: Duration) -> ConfigMap {
    tokio::time::timeout(within, async {
        loop {
            match events.recv().await.expect("the watcher never ends") {
                Ok(watcher::Event::Apply(cm) | watcher::Event::InitApply(cm)) => return cm,
                Ok(_) => {}
                Err(e) => panic!("watcher error: {e}"),
            }
        }
    })
    .await
    .expect("a watcher event in time")
}

#[tokio::test]
async fn the_runtime_watcher_lists_then_watches_and_sees_changes_quickly() {
    let server = ApiServer::start().await;
    let api = config_maps(&server);
    api.create(
        &PostParams::default(),
        &config_map("gateway", json!({}), json!({"v": "1"})),
    )
    .await
    .unwrap();
    api.create(
        &PostParams::default(),
        &config_map("unrelated", json!({}), json!({})),
    )
    .await
    .unwrap();
    server.clear_requests();

    let config = watcher::Config::default().fields("metadata.name=gateway");
    let mut stream = spawn_watcher(&api, config);
    let initial = next_applied(&mut stream, Duration::from_secs(2)).await;
    assert_eq!(initial.data.unwrap()["v"], "1");
    wait_until(Duration::from_secs(2), "the watch to open", || {
        server.open_watches() == 1
    })
    .await;

    let changed = Instant::now();
    set_v(&api, "gateway", "2").await;
    let modified = next_applied(&mut stream, Duration::from_secs(1)).await;
    assert_eq!(modified.data.unwrap()["v"], "2");
    assert!(
        changed.elapsed() < Duration::from_millis(500),
        "{:?}",
        changed.elapsed()
    );

    // What the watcher sends: a list by field selector (no resourceVersion: a quorum read;
    // limit=500), then a watch from the list's resource version with bookmarks and a 290 s
    // timeout.
    let requests = server.requests();
    let list = &requests[0];
    assert_eq!((list.verb, list.resource.as_str()), ("list", "configmaps"));
    assert_eq!(
        list.param("fieldSelector").as_deref(),
        Some("metadata.name=gateway")
    );
    assert_eq!(list.param("limit").as_deref(), Some("500"));
    assert_eq!(list.param("resourceVersion"), None);
    let watch = &requests[1];
    assert_eq!(watch.verb, "watch");
    assert_eq!(watch.param("allowWatchBookmarks").as_deref(), Some("true"));
    assert_eq!(watch.param("timeoutSeconds").as_deref(), Some("290"));
    assert!(watch.param("resourceVersion").is_some_and(|rv| rv != "0"));
}

#[tokio::test]
async fn the_runtime_watcher_resumes_after_a_dropped_watch_and_relists_after_410() {
    let server = ApiServer::start().await;
    let api = config_maps(&server);
    api.create(
        &PostParams::default(),
        &config_map("gateway", json!({}), json!({"v": "1"})),
    )
    .await
    .unwrap();
    let mut stream = spawn_watcher(
        &api,
        watcher::Config::default().fields("metadata.name=gateway"),
    );
    next_applied(&mut stream, Duration::from_secs(2)).await;
    wait_until(Duration::from_secs(2), "the watch to open", || {
        server.open_watches() == 1
    })
    .await;

    // The connection of the watch ends: the watcher resumes from its resource version and
    // misses nothing written meanwhile.
    server.end_watches();
    set_v(&api, "gateway", "2").await;
    assert_eq!(next_v(&mut stream).await, "2");
    let lists = |server: &ApiServer| {
        server
            .requests()
            .iter()
            .filter(|r| r.verb == "list")
            .count()
    };
    assert_eq!(lists(&server), 1);

    // The history is gone too: the resumed watch gets 410 Expired and the watcher lists again.
    wait_until(Duration::from_secs(2), "the watch to reopen", || {
        server.open_watches() == 1
    })
    .await;
    server.end_watches();
    server.compact();
    set_v(&api, "gateway", "3").await;
    server.compact();
    let relisted = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            // Errors (the 410) and other events are expected on the way.
            if let Ok(watcher::Event::InitApply(cm)) = stream.recv().await.unwrap() {
                return cm;
            }
        }
    })
    .await
    .expect("a re-list");
    assert_eq!(relisted.data.unwrap()["v"], "3");
    assert_eq!(lists(&server), 2);
}

#[tokio::test]
async fn a_429_carries_retry_after_in_the_header_and_the_status() {
    let server = ApiServer::start().await;
    let api = remediations(&server);
    server.faults().fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 7,
        },
        Filter::verb("create"),
    );
    let status = api_error(api.create(&PostParams::default(), &sample("rr-1")).await);
    assert_eq!(
        (status.code, status.reason.as_str()),
        (429, "TooManyRequests")
    );
    assert_eq!(status.details.unwrap().retry_after_seconds, 7);
    // The next one goes through.
    api.create(&PostParams::default(), &sample("rr-1"))
        .await
        .unwrap();

    server.faults().fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 3,
        },
        Filter::any(),
    );
    let response = reqwest::get(format!("{}/version", server.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(server.faults().injected(), 2);
    let faulted: Vec<_> = server
        .requests()
        .into_iter()
        .filter_map(|r| r.fault)
        .collect();
    assert_eq!(faulted, ["TooManyRequests(7s)", "TooManyRequests(3s)"]);
}

#[tokio::test]
async fn status_faults_surface_as_api_errors_with_their_reasons() {
    let server = ApiServer::start().await;
    let api = config_maps(&server);
    for (code, reason) in [
        (500, "InternalError"),
        (503, "ServiceUnavailable"),
        (504, "Timeout"),
    ] {
        server
            .faults()
            .fail_next(1, Fault::Status(code), Filter::verb("get").on("configmaps"));
        let status = api_error(api.get("x").await);
        assert_eq!((status.code, status.reason.as_str()), (code, reason));
        assert_eq!(server.requests().last().unwrap().status, code);
    }
    // The filter: a list is not a get, and the rules are used up.
    assert_eq!(
        api.list(&ListParams::default()).await.unwrap().items.len(),
        0
    );
    assert_eq!(api_error(api.get("x").await).code, 404);
    assert_eq!(server.faults().injected(), 3);
}

#[tokio::test]
async fn a_slow_fault_delays_then_answers() {
    let server = ApiServer::start().await;
    let api = config_maps(&server);
    api.create(
        &PostParams::default(),
        &config_map("c", json!({}), json!({})),
    )
    .await
    .unwrap();
    server
        .faults()
        .fail_next(1, Fault::Slow(Duration::from_millis(300)), Filter::any());
    let started = Instant::now();
    api.get("c").await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        server.requests().last().unwrap().fault.as_deref(),
        Some("Slow(300ms)")
    );
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error_not_a_status() {
    let server = ApiServer::start().await;
    let api = remediations(&server);
    server
        .faults()
        .fail_next(1, Fault::Drop, Filter::verb("create"));
    let error = api
        .create(&PostParams::default(), &sample("rr-1"))
        .await
        .unwrap_err();
    // kube-rs: Service(hyper_util legacy Error(SendRequest, hyper::Error(IncompleteMessage))).
    assert!(
        matches!(error, kube::Error::Service(_))
            && format!("{error:?}").contains("IncompleteMessage"),
        "expected a transport error, got {error:?}"
    );
    let dropped = server.requests().pop().unwrap();
    assert_eq!(
        (dropped.status, dropped.fault.as_deref()),
        (0, Some("Drop"))
    );
    assert!(
        server
            .object(Resource::RemediationRequests, NS, "rr-1")
            .is_none()
    );
    // The client recovers on a new connection.
    api.create(&PostParams::default(), &sample("rr-1"))
        .await
        .unwrap();
}

#[tokio::test]
async fn faults_filtered_by_verb_leave_watches_alone() {
    let server = ApiServer::start().await;
    let cms = config_maps(&server);
    cms.create(
        &PostParams::default(),
        &config_map("gateway", json!({}), json!({"v": "1"})),
    )
    .await
    .unwrap();
    server
        .faults()
        .set_rate(1.0, vec![Fault::Status(503)], Filter::verb("create"), 1);
    let mut stream = spawn_watcher(
        &cms,
        watcher::Config::default().fields("metadata.name=gateway"),
    );
    next_applied(&mut stream, Duration::from_secs(2)).await;
    assert_eq!(
        api_error(
            remediations(&server)
                .create(&PostParams::default(), &sample("rr-1"))
                .await
        )
        .code,
        503
    );
    set_v(&cms, "gateway", "2").await;
    assert_eq!(next_v(&mut stream).await, "2");
    assert_eq!(server.faults().injected(), 1);
    server.faults().clear();
    remediations(&server)
        .create(&PostParams::default(), &sample("rr-1"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_seeded_fault_rate_is_deterministic() {
    let server = ApiServer::start().await;
    let api = config_maps(&server);
    api.create(
        &PostParams::default(),
        &config_map("c", json!({}), json!({})),
    )
    .await
    .unwrap();
    let run = |seed: u64| {
        let api = api.clone();
        let faults = server.faults();
        faults.set_rate(
            0.3,
            vec![Fault::Status(500), Fault::Status(503)],
            Filter::verb("get"),
            seed,
        );
        async move {
            let mut outcomes = Vec::new();
            for _ in 0..40 {
                outcomes.push(match api.get("c").await {
                    Ok(_) => 200,
                    Err(kube::Error::Api(s)) => s.code,
                    Err(e) => panic!("{e}"),
                });
            }
            outcomes
        }
    };
    let first = run(42).await;
    let again = run(42).await;
    let other = run(7).await;
    assert_eq!(first, again);
    assert_ne!(first, other);
    let failed = first.iter().filter(|&&c| c != 200).count();
    assert!((4..=20).contains(&failed), "{failed} of 40 at rate 0.3");
    assert!(first.contains(&500) && first.contains(&503));
}

#[tokio::test]
async fn the_kubeconfig_points_at_the_server() {
    let server = ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = server.write_kubeconfig(dir.path());
    let kubeconfig = kube::config::Kubeconfig::read_from(&path).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client);
    cms.create(
        &PostParams::default(),
        &config_map("c", json!({}), json!({})),
    )
    .await
    .unwrap();
    assert!(
        server
            .object(Resource::ConfigMaps, "default", "c")
            .is_some()
    );
}

#[tokio::test]
async fn test_setup_writes_directly_and_watches_see_it() {
    let server = ApiServer::start().await;
    let stored = server.put_object(
        Resource::ConfigMaps,
        json!({"metadata": {"name": "c", "namespace": NS}, "data": {"v": "1"}}),
    );
    assert_eq!(stored["kind"], "ConfigMap");
    let api = config_maps(&server);
    let got = api.get("c").await.unwrap();
    assert_eq!(
        got.metadata.resource_version.as_deref(),
        stored["metadata"]["resourceVersion"].as_str()
    );
    let mut stream = spawn_watcher(&api, watcher::Config::default());
    next_applied(&mut stream, Duration::from_secs(2)).await;
    let replaced = server.put_object(
        Resource::ConfigMaps,
        json!({"metadata": {"name": "c", "namespace": NS}, "data": {"v": "2"}}),
    );
    assert_eq!(replaced["metadata"]["uid"], stored["metadata"]["uid"]);
    assert_eq!(next_v(&mut stream).await, "2");
    server.delete_object(Resource::ConfigMaps, NS, "c");
    assert!(server.objects(Resource::ConfigMaps).is_empty());
    assert!(server.requests().iter().all(|r| r.verb != "create"));
}

/// The `type` of a watch event, as the API writes it.
fn event_type<K>(event: &WatchEvent<K>) -> &'static str {
    match event {
        WatchEvent::Added(_) => "ADDED",
        WatchEvent::Modified(_) => "MODIFIED",
        WatchEvent::Deleted(_) => "DELETED",
        WatchEvent::Bookmark(_) => "BOOKMARK",
        WatchEvent::Error(_) => "ERROR",
    }
}

/// A raw POST to the emulator: status and JSON body.
async fn post_json(server: &ApiServer, path: &str, body: &Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.url()))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn token_and_access_reviews_answer_from_the_tokens_and_grants_set_up() {
    use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
    };
    let server = ApiServer::start().await;
    server.grant_token("t-1", "system:serviceaccount:monitoring:am", &["team-a"]);
    server.grant_token_for("t-2", "bound", &[], &["gateway"]);
    server.allow("team-a", "create", "gateway.kubernaut.io", "signals");
    let tokens: Api<TokenReview> = Api::all(server.client());
    let review = |token: &str, audiences: Option<Vec<String>>| TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.to_owned()),
            audiences,
        },
        ..TokenReview::default()
    };
    let pp = PostParams::default();

    let answer = tokens.create(&pp, &review("t-1", None)).await.unwrap();
    assert_eq!(
        answer.spec.token.as_deref(),
        Some("t-1"),
        "the object is echoed"
    );
    let status = answer.status.unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(
        status.audiences.unwrap(),
        [gateway_tests::apiserver::API_AUDIENCE]
    );
    let user = status.user.unwrap();
    assert_eq!(
        user.username.as_deref(),
        Some("system:serviceaccount:monitoring:am")
    );
    assert_eq!(user.groups.unwrap(), ["team-a"]);
    assert!(!user.uid.clone().unwrap().is_empty());

    for (token, audiences) in [
        ("unknown", None),
        ("t-2", None),
        ("t-2", Some(vec!["other".to_owned()])),
    ] {
        let status = tokens
            .create(&pp, &review(token, audiences.clone()))
            .await
            .unwrap()
            .status
            .unwrap();
        assert_ne!(status.authenticated, Some(true), "{token} {audiences:?}");
        assert!(!status.error.unwrap().is_empty());
    }
    let bound = tokens
        .create(
            &pp,
            &review("t-2", Some(vec!["x".to_owned(), "gateway".to_owned()])),
        )
        .await
        .unwrap()
        .status
        .unwrap();
    assert_eq!(bound.authenticated, Some(true));
    assert_eq!(bound.audiences.unwrap(), ["gateway"]);

    let access: Api<SubjectAccessReview> = Api::all(server.client());
    let ask = |user: &str, groups: &[&str], verb: &str| SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_owned()),
            groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
            resource_attributes: Some(ResourceAttributes {
                group: Some("gateway.kubernaut.io".to_owned()),
                resource: Some("signals".to_owned()),
                verb: Some(verb.to_owned()),
                ..ResourceAttributes::default()
            }),
            ..SubjectAccessReviewSpec::default()
        },
        ..SubjectAccessReview::default()
    };
    let allowed = |r: SubjectAccessReview| r.status.unwrap().allowed;
    assert!(allowed(
        access
            .create(&pp, &ask("u", &["team-a"], "create"))
            .await
            .unwrap()
    ));
    assert!(!allowed(
        access
            .create(&pp, &ask("u", &["team-b"], "create"))
            .await
            .unwrap()
    ));
    assert!(!allowed(
        access
            .create(&pp, &ask("u", &["team-a"], "delete"))
            .await
            .unwrap()
    ));
    server.deny("team-a", "create", "gateway.kubernaut.io", "signals");
    assert!(!allowed(
        access
            .create(&pp, &ask("u", &["team-a"], "create"))
            .await
            .unwrap()
    ));
    server.revoke_token("t-1");
    let status = tokens
        .create(&pp, &review("t-1", None))
        .await
        .unwrap()
        .status
        .unwrap();
    assert_ne!(status.authenticated, Some(true));

    // Logged with their bodies, as create on the review resources; nothing else has a body.
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .all(|r| r.verb == "create" && r.status == 201)
    );
    assert_eq!(requests[0].group, "authentication.k8s.io");
    assert_eq!(requests[0].resource, "tokenreviews");
    assert_eq!(requests[0].body.as_ref().unwrap()["spec"]["token"], "t-1");
    let last_access = requests
        .iter()
        .rev()
        .find(|r| r.resource == "subjectaccessreviews")
        .unwrap();
    assert_eq!(last_access.group, "authorization.k8s.io");
    assert_eq!(
        last_access.body.as_ref().unwrap()["spec"]["resourceAttributes"]["verb"],
        "create"
    );
}

#[tokio::test]
async fn review_requests_are_refused_as_the_api_refuses_them_and_faults_apply() {
    let server = ApiServer::start().await;
    let tokens = "/apis/authentication.k8s.io/v1/tokenreviews";
    let access = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
    let token_review = |spec: Value| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec});
    let access_review = |spec: Value| json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec});

    let (code, status) = post_json(&server, tokens, &token_review(json!({}))).await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (400, Some("BadRequest")),
        "{status}"
    );
    let (code, _) = post_json(&server, tokens, &access_review(json!({"token": "x"}))).await;
    assert_eq!(code, 400, "the wrong kind");
    let attributes = json!({"verb": "create", "group": "g", "resource": "r"});
    let (code, status) = post_json(
        &server,
        access,
        &access_review(json!({"resourceAttributes": attributes})),
    )
    .await;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "no user or group: {status}"
    );
    let (code, _) = post_json(&server, access, &access_review(json!({"user": "u"}))).await;
    assert_eq!(code, 422, "neither resource nor non-resource attributes");
    let (code, _) = post_json(
        &server,
        access,
        &access_review(json!({"user": "u", "resourceAttributes": attributes, "nonResourceAttributes": {"path": "/", "verb": "get"}})),
    )
    .await;
    assert_eq!(code, 422, "both");
    let get = reqwest::get(format!("{}{tokens}", server.url()))
        .await
        .unwrap();
    assert_eq!(get.status(), 405, "create only");
    let (code, _) = post_json(
        &server,
        "/apis/authentication.k8s.io/v2/tokenreviews",
        &token_review(json!({"token": "x"})),
    )
    .await;
    assert_eq!(code, 404, "only v1");

    server.faults().fail_next(
        1,
        Fault::Status(503),
        Filter::verb("create").on("subjectaccessreviews"),
    );
    let sar = access_review(json!({"user": "u", "resourceAttributes": attributes}));
    let (code, _) = post_json(&server, access, &sar).await;
    assert_eq!(code, 503);
    let (code, answer) = post_json(&server, access, &sar).await;
    assert_eq!(code, 201);
    assert_eq!(answer["status"]["allowed"], false);
    let faulted = server.requests().into_iter().rev().nth(1).unwrap();
    assert_eq!(faulted.fault.as_deref(), Some("Status(503)"));
    assert_eq!(faulted.body, None, "faulted before the body was read");
}
