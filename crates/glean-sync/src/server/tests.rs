//! Every route and error status, through the router (`oneshot`), with real parts behind it.

use super::*;
use crate::exporter::tests::exporter;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const GRAPH: &str = r#"{"graph_id":"g","nodes":[{"id":"a","type":"table","label":"A"},{"id":"b"}],"edges":[{"source":"a","target":"b"}]}"#;

struct Api {
    _dir: tempfile::TempDir,
    state: AppState,
}

async fn api(token: Option<&str>) -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let exp = exporter(dir.path(), true, 10).await;
    let config = ServerConfig { listen: "127.0.0.1:0".parse().expect("addr"), token: token.map(str::to_owned), max_body_bytes: 4096 };
    Api { state: AppState::new(exp, &config), _dir: dir }
}

impl Api {
    async fn call(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = router(self.state.clone()).oneshot(request).await.expect("response");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, body)
    }

    async fn post(&self, path: &str, content_type: &str, body: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::post(path).header("content-type", content_type);
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        self.call(request.body(Body::from(body.to_owned())).expect("request")).await
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Request::get(path).body(Body::empty()).expect("request")).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graph_is_accepted_with_its_export_id_then_shown() {
    let api = api(None).await;
    let (status, body) = api.post("/knowledge-graph", "application/json; charset=utf-8", GRAPH, None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["state"], "queued");
    assert_eq!(body["graph_version"], 1);
    assert!(body["batch_file"].as_str().is_some_and(|f| f.starts_with("graph_")));
    let id = body["export_id"].as_i64().expect("id");
    let (status, export) = api.get(&format!("/exports/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(export["id"], id);
    assert!(export["attempts"].is_number() && export.get("last_error").is_some());
    let (_, again) = api.post("/knowledge-graph", "application/json", GRAPH, None).await;
    assert!(again["state"] == "unchanged" || again["state"] == "queued", "{again}");
}

#[tokio::test]
async fn bad_bodies_get_400_naming_the_element() {
    let api = api(None).await;
    let (status, body) = api.post("/knowledge-graph", "application/json", "{not json", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
    let (status, body) = api.post("/knowledge-graph", "application/json", r#"{"nodes":[{"id":"a"},{"id":""}]}"#, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body, serde_json::json!({"error": "nodes[1].id is empty", "field": "nodes[1].id"}));
    let (status, body) = api.post("/knowledge-graph", "application/json", r#"{"edges":[{"source":"a"}]}"#, None).await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("edges[0].target")));
}

#[tokio::test]
async fn wrong_content_type_is_415_and_large_bodies_413() {
    let api = api(None).await;
    let (status, body) = api.post("/knowledge-graph", "text/plain", GRAPH, None).await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::UNSUPPORTED_MEDIA_TYPE, Some("expected Content-Type: application/json")));
    let big = format!(r#"{{"nodes":[{}]}}"#, vec![r#"{"id":"xxxxxxxxxxxxxxxx"}"#; 400].join(","));
    let (status, body) = api.post("/knowledge-graph", "application/json", &big, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"].as_str().is_some_and(|e| e.contains("GLEAN_SYNC_MAX_BODY_BYTES")));
}

#[tokio::test]
async fn write_routes_need_the_token_when_one_is_set() {
    let api = api(Some("s3cret")).await;
    for token in [None, Some("wrong"), Some("s3cre")] {
        let (status, body) = api.post("/knowledge-graph", "application/json", GRAPH, token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{token:?}");
        assert_eq!(body["error"], "missing or wrong bearer token");
        assert_eq!(api.post("/exports/replay", "application/json", "", token).await.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(api.post("/knowledge-graph", "application/json", GRAPH, Some("s3cret")).await.0, StatusCode::ACCEPTED);
    assert_eq!(api.get("/stats").await.0, StatusCode::OK, "reads need no token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_saved_graph_is_served_by_key() {
    let api = api(None).await;
    let graph = r#"{"project_id":"p","system_id":"s","nodes":[{"id":"a","props":{"k":1}}],"edges":[]}"#;
    assert_eq!(api.post("/knowledge-graph", "application/json", graph, None).await.0, StatusCode::ACCEPTED);
    let (status, stored) = api.get("/graphs/p/s").await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!((stored["graph_key"].as_str(), stored["version"].as_i64()), (Some("p/s"), Some(1)));
    assert_eq!(stored["nodes"][0]["properties_json"], r#"{"k":1}"#);
    let (status, body) = api.get("/graphs/none").await;
    assert_eq!((status, body["error"].as_str()), (StatusCode::NOT_FOUND, Some(r#"no graph saved under key "none""#)));
}

#[tokio::test]
async fn exports_that_do_not_exist_or_are_not_numbers() {
    let api = api(None).await;
    assert_eq!(api.get("/exports/999").await, (StatusCode::NOT_FOUND, serde_json::json!({"error": "no export 999"})));
    let (status, body) = api.get("/exports/abc").await;
    assert_eq!((status, body["field"].as_str()), (StatusCode::BAD_REQUEST, Some("id")));
    assert_eq!(api.get("/nope").await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_metrics_health_and_readiness() {
    let api = api(None).await;
    api.post("/knowledge-graph", "application/json", GRAPH, None).await;
    let (status, stats) = api.get("/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert!(stats["total_exports"].as_u64() >= Some(1) && stats["sink"] == "local", "{stats}");
    let (status, text) = api.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    let text = text.as_str().expect("text");
    for name in ["glean_sync_saves_total", "glean_sync_queue_depth", "glean_sync_http_requests_total", "glean_sync_pending_exports"] {
        assert!(text.contains(name), "{name} missing from:\n{text}");
    }
    assert_eq!(api.get("/healthz").await, (StatusCode::OK, serde_json::json!({"status": "ok"})));
    let (status, ready) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    std::fs::remove_dir_all(api.state.exporter.batch_dir()).expect("remove export dir");
    let (status, ready) = api.get("/readyz").await;
    assert_eq!((status, ready["checks"]["export_dir"]["ok"].as_bool()), (StatusCode::SERVICE_UNAVAILABLE, Some(false)));
}

#[tokio::test]
async fn replay_requeues_and_rejects_unknown_fields() {
    let api = api(None).await;
    let (status, body) = api.post("/exports/replay", "application/json", r#"{"dead": true}"#, None).await;
    assert_eq!((status, body), (StatusCode::OK, serde_json::json!({"requeued": []})));
    let (status, _) = api.post("/exports/replay", "application/json", r#"{"everything": true}"#, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn while_draining_writes_get_503() {
    let api = api(None).await;
    api.state.draining.store(true, Ordering::SeqCst);
    let (status, body) = api.post("/knowledge-graph", "application/json", GRAPH, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(api.get("/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(api.get("/healthz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn a_save_after_the_exporter_stopped_is_503() {
    let api = api(None).await;
    api.state.exporter.shutdown().await;
    let (status, body) = api.post("/knowledge-graph", "application/json", GRAPH, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("shutting down")));
}
