//! Custom domains are proven by a DNS TXT record before they route, against a DNS
//! server the test runs (`GATEWAY_DNS_RESOLVER` points the gateway at it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::rdata::TXT;
use hickory_proto::rr::{RData, Record, RecordType};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::proxy::{get, member};

/// An authoritative DNS server on a free UDP port that answers TXT queries from a
/// table the test edits.
pub struct TestDns {
    pub addr: String,
    records: Arc<Mutex<HashMap<String, Vec<String>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestDns {
    pub async fn start() -> TestDns {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        let records: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let table = records.clone();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
                let Ok(query) = Message::from_vec(&buf[..n]) else { continue };
                let mut answer = Message::response(query.metadata.id, query.metadata.op_code);
                answer.metadata.authoritative = true;
                answer.metadata.recursion_desired = query.metadata.recursion_desired;
                answer.metadata.recursion_available = true;
                answer.queries = query.queries.clone();
                let mut found = false;
                for q in &query.queries {
                    let name = q.name().to_ascii().to_ascii_lowercase();
                    let values = table.lock().unwrap().get(name.trim_end_matches('.')).cloned();
                    if let (RecordType::TXT, Some(values)) = (q.query_type(), values) {
                        found = true;
                        for v in values {
                            answer.add_answer(Record::from_rdata(q.name().clone(), 0, RData::TXT(TXT::new(vec![v]))));
                        }
                    }
                }
                if !found {
                    answer.metadata.response_code = ResponseCode::NXDomain;
                }
                if let Ok(bytes) = answer.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        TestDns { addr, records, task }
    }

    pub fn publish(&self, name: &str, values: &[&str]) {
        self.records.lock().unwrap().insert(name.to_owned(), values.iter().map(|v| (*v).to_owned()).collect());
    }
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> reqwest::Response {
    let mut req = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_domain_routes_only_after_its_txt_challenge_is_published() {
    let dns = TestDns::start().await;
    let app = spawn_app_with(&[("GATEWAY_DNS_RESOLVER", dns.addr.as_str())]).await;
    let m = member(&app, "Acme").await;
    let rival = member(&app, "Rival").await;
    let tenant = format!("/auth/tenants/{}", m.tenant_id);
    let res = call(&app, Method::PATCH, &tenant, &m.token, Some(json!({"domain": "shop.acme.test"}))).await;
    assert_eq!(res.status(), 200);
    let pending = res.json::<Value>().await.unwrap()["tenant"]["pendingDomain"].clone();
    let token = pending["txtValue"].as_str().unwrap().to_owned();
    assert_eq!(pending["txtName"], "_tenantgate.shop.acme.test");

    // The rival claims the same name; nobody's claim routes yet.
    let rival_path = format!("/auth/tenants/{}", rival.tenant_id);
    let res = call(&app, Method::PATCH, &rival_path, &rival.token, Some(json!({"domain": "shop.acme.test"}))).await;
    let rival_token =
        res.json::<Value>().await.unwrap()["tenant"]["pendingDomain"]["txtValue"].as_str().unwrap().to_owned();
    let (status, body) = get(&app, "/app/x", Some(&m.token), &[("host", "shop.acme.test")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("tenant_required")), "{body}");

    // Not published, then the wrong value: refused, the claim stays, the reason is kept.
    let verify = format!("{tenant}/domain/verify");
    let res = call(&app, Method::POST, &verify, &m.token, None).await;
    let body = assert_error(res, 409, "domain_not_verified").await;
    assert!(body["message"].as_str().unwrap().contains("_tenantgate.shop.acme.test"), "{body}");
    dns.publish("_tenantgate.shop.acme.test", &[&rival_token]);
    assert_error(call(&app, Method::POST, &verify, &m.token, None).await, 409, "domain_not_verified").await;
    let read = call(&app, Method::GET, &tenant, &m.token, None).await.json::<Value>().await.unwrap();
    assert!(
        read["tenant"]["pendingDomain"]["lastError"].as_str().is_some_and(|e| e.contains("does not hold")),
        "{read}"
    );

    // Only members who may edit verify; a member of another tenant learns nothing.
    assert_error(call(&app, Method::POST, &verify, &rival.token, None).await, 404, "tenant_not_found").await;

    // The right value among others: verified, routed at once.
    dns.publish("_tenantgate.shop.acme.test", &["v=spf1 -all", &token]);
    let res = call(&app, Method::POST, &verify, &m.token, None).await;
    assert_eq!(res.status(), 200);
    let verified = res.json::<Value>().await.unwrap();
    assert_eq!(verified["tenant"]["domain"], "shop.acme.test");
    assert!(verified["tenant"].get("pendingDomain").is_none());
    let (status, echo) = get(&app, "/app/x", Some(&m.token), &[("host", "shop.acme.test")]).await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["headers"]["x-tenant-id"], m.tenant_id.as_str());

    // The rival's proof comes too late: the first to prove a name gets it.
    let rival_verify = format!("{rival_path}/domain/verify");
    dns.publish("_tenantgate.shop.acme.test", &[&rival_token]);
    assert_error(call(&app, Method::POST, &rival_verify, &rival.token, None).await, 409, "domain_taken").await;
    // Nothing left to verify for the winner.
    assert_error(call(&app, Method::POST, &verify, &m.token, None).await, 404, "no_pending_domain").await;

    // Removing the domain stops routing it.
    let res = call(&app, Method::PATCH, &tenant, &m.token, Some(json!({"domain": null}))).await;
    assert_eq!(res.status(), 200);
    let (status, _) = get(&app, "/app/x", Some(&m.token), &[("host", "shop.acme.test")]).await;
    assert_eq!(status, 400);

    let audit =
        call(&app, Method::GET, &format!("{tenant}/audit"), &m.token, None).await.json::<Value>().await.unwrap();
    let actions: Vec<&str> = audit["entries"].as_array().unwrap().iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions[..3], ["tenant.updated", "tenant.domain_verified", "tenant.updated"], "{audit}");
}
