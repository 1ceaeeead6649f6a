use std::collections::BTreeSet;

use serde_json::Value;

use super::errors::TABLE;
use super::{document, BEARER, DOCUMENT};

/// Every operation the router answers: method, path, and whether it takes the
/// bearer token. The router and the document come from one list (`api::routes`);
/// this table pins it, so adding, removing or moving a route shows here.
const OPERATIONS: &[(&str, &str, bool)] = &[
    ("post", "/auth/register", false),
    ("post", "/auth/login", false),
    ("post", "/auth/refresh", false),
    ("post", "/auth/logout", false),
    ("post", "/auth/logout-all", true),
    ("get", "/auth/me", true),
    ("post", "/auth/verify-email", false),
    ("post", "/auth/resend-verification", true),
    ("post", "/auth/forgot-password", false),
    ("post", "/auth/reset-password", false),
    ("get", "/auth/notifications", true),
    ("post", "/auth/notifications/read", true),
    ("get", "/auth/notifications/stream", true),
    ("get", "/auth/tenants", true),
    ("post", "/auth/tenants", true),
    ("get", "/auth/tenants/{id}", true),
    ("patch", "/auth/tenants/{id}", true),
    ("post", "/auth/tenants/{id}/activate", true),
    ("post", "/auth/tenants/{id}/deactivate", true),
    ("post", "/auth/tenants/{id}/domain/verify", true),
    ("post", "/auth/tenants/{id}/leave", true),
    ("get", "/auth/tenants/{id}/members", true),
    ("patch", "/auth/tenants/{id}/members/{user}", true),
    ("delete", "/auth/tenants/{id}/members/{user}", true),
    ("get", "/auth/tenants/{id}/invitations", true),
    ("post", "/auth/tenants/{id}/invitations", true),
    ("delete", "/auth/tenants/{id}/invitations/{invitation}", true),
    ("get", "/auth/tenants/{id}/api-keys", true),
    ("post", "/auth/tenants/{id}/api-keys", true),
    ("delete", "/auth/tenants/{id}/api-keys/{key}", true),
    ("get", "/auth/tenants/{id}/audit", true),
    ("post", "/auth/invitations/accept", true),
    ("get", "/.well-known/jwks.json", false),
    ("get", "/auth/openapi.json", false),
];

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn json() -> Value {
    serde_json::to_value(document()).expect("the document serializes")
}

/// `(method, path, operation)` of every operation in the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item");
            item.iter()
                .filter(|(method, _)| METHODS.contains(&method.as_str()))
                .map(|(method, op)| (method.clone(), path.clone(), op.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every `$ref` string anywhere under `value`.
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[test]
fn it_is_openapi_3_1_and_is_served_as_rendered() {
    let doc = json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "tenantgate auth API");
    let served: Value = serde_json::from_slice(DOCUMENT.as_ref().expect("rendered")).expect("valid JSON");
    assert_eq!(served, doc);
}

#[test]
fn it_lists_exactly_the_routed_operations() {
    let doc = json();
    let documented: BTreeSet<(String, String)> = operations(&doc).into_iter().map(|(m, p, _)| (m, p)).collect();
    let routed: BTreeSet<(String, String)> =
        OPERATIONS.iter().map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned())).collect();
    assert_eq!(OPERATIONS.len(), 34);
    let missing: Vec<_> = routed.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&routed).collect();
    assert!(missing.is_empty() && extra.is_empty(), "not documented: {missing:?}; not in the table: {extra:?}");
}

#[test]
fn operations_have_unique_ids_a_tag_and_a_summary() {
    let doc = json();
    let mut ids = BTreeSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(id.to_owned()), "{method} {path}: operationId {id} used twice");
        assert!(op["tags"].as_array().is_some_and(|t| t.len() == 1), "{method} {path}: one tag");
        assert!(op["summary"].as_str().is_some_and(|s| !s.is_empty()), "{method} {path}: summary");
    }
}

#[test]
fn bearer_operations_say_so_and_document_401() {
    let doc = json();
    assert_eq!(doc["components"]["securitySchemes"][BEARER]["scheme"], "bearer");
    assert_eq!(doc["components"]["securitySchemes"][BEARER]["bearerFormat"], "JWT");
    for (method, path, bearer) in OPERATIONS {
        let op = &doc["paths"][path][method];
        if *bearer {
            assert_eq!(op["security"], serde_json::json!([{ BEARER: [] }]), "{method} {path}");
            assert_eq!(op["responses"]["401"]["$ref"], "#/components/responses/Unauthenticated", "{method} {path}");
        } else {
            assert!(op.get("security").is_none(), "{method} {path} takes no token");
        }
    }
}

#[test]
fn error_responses_exist_and_have_the_status_of_their_codes() {
    let doc = json();
    let components = doc["components"]["responses"].as_object().expect("response components");
    for (name, codes) in TABLE {
        let status = codes[0].status();
        assert!(codes.iter().all(|c| c.status() == status), "{name}: codes of one status");
        assert!(components.contains_key(*name), "{name} registered");
    }
    for (method, path, op) in operations(&doc) {
        for (status, response) in op["responses"].as_object().expect("responses") {
            let Some(reference) = response["$ref"].as_str() else {
                assert!(status.starts_with('2'), "{method} {path}: error {status} not a component");
                continue;
            };
            let name = reference.strip_prefix("#/components/responses/").expect("a response component");
            let (_, codes) = TABLE.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("{name} unknown"));
            assert_eq!(codes[0].status().as_str(), status, "{method} {path}: {name} under {status}");
        }
    }
}

#[test]
fn operations_document_what_every_request_can_meet() {
    let doc = json();
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().expect("responses");
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(responses.contains_key(status), "{method} {path}: a JSON body can get {status}");
            }
        }
        if path.contains('{') {
            assert!(responses.contains_key("400"), "{method} {path}: a malformed id gets 400");
        }
        let static_answer = ["/.well-known/jwks.json", "/auth/openapi.json", "/auth/forgot-password"];
        if !static_answer.contains(&path.as_str()) {
            assert!(responses.contains_key("503"), "{method} {path}: needs the database");
        }
    }
}

#[test]
fn every_reference_resolves() {
    let doc = json();
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(!all.is_empty());
    for reference in all {
        let pointer = reference.strip_prefix('#').unwrap_or_else(|| panic!("{reference}: not local"));
        assert!(doc.pointer(pointer).is_some(), "{reference} does not resolve");
    }
}

#[test]
fn the_notification_schema_matches_the_message_the_api_serializes() {
    let message = shared::queue::NotificationMessage {
        id: uuid::Uuid::now_v7(),
        user_id: shared::domain::UserId::from(uuid::Uuid::now_v7()),
        tenant_id: None,
        event: "login".into(),
        data: serde_json::json!({}),
        at: chrono::Utc::now(),
        read_at: None,
    };
    let serialized = serde_json::to_value(&message).expect("serializes");
    let keys: BTreeSet<&str> = serialized.as_object().expect("object").keys().map(String::as_str).collect();
    let doc = json();
    let schema = &doc["components"]["schemas"]["Notification"];
    let properties: BTreeSet<&str> =
        schema["properties"].as_object().expect("properties").keys().map(String::as_str).collect();
    let required: BTreeSet<&str> =
        schema["required"].as_array().expect("required").iter().filter_map(Value::as_str).collect();
    assert_eq!(keys, properties);
    assert_eq!(keys, required, "every field is always sent");
}
