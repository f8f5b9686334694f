//! Health, readiness and metrics endpoints.

use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::TEST_SECRET;

each_backend! {
    async fn health_and_readiness_answer_without_a_key(backend) {
        let app = TestApp::spawn(backend).await;
        for path in ["/healthz", "/readyz"] {
            let response = app.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
        }
        app.stop().await;
    }

    async fn metrics_count_requests_by_status_and_upstream_errors(backend) {
        let app = TestApp::spawn(backend).await;
        assert_eq!(app.get("customers").await.status(), 200);
        assert_eq!(app.get("customers").await.status(), 200);
        let unauthenticated = app.client.get(app.url("/v1/connections/stripe/customers")).send().await.unwrap();
        assert_eq!(unauthenticated.status(), 401);
        let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(text.contains(r#"agentgate_requests_total{connection="stripe",status="200"} 2"#), "{text}");
        assert!(text.contains(r#"agentgate_requests_total{connection="-",status="401"} 1"#), "{text}");
        assert!(text.contains("agentgate_request_duration_seconds_bucket"), "{text}");
        assert!(text.contains("agentgate_upstream_errors"), "{text}");
        assert!(!text.contains(TEST_SECRET) && !text.contains(&app.key));
        app.stop().await;
    }
}
