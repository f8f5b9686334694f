//! A sealed secret is bound to its purpose, workspace and row: a ciphertext copied onto
//! another connection, in the same workspace or another one, does not open, and nothing is
//! forwarded to Stripe with it (500, the cause logged, never the secret).

use agentgate::connections::set_stripe_connection;
use agentgate::connections::stripe::StripeSecret;
use agentgate::crypto::{MasterKey, Sealer};
use agentgate::keys::{create_key, KeySpec};
use base64::Engine;
use sqlx::Connection;

use crate::each_backend;
use crate::support::app::TestApp;
use crate::support::backend::{Backend, TestDb};

/// Copies connection `from`'s sealed secret onto connection `to`, as an attacker with
/// write access to the database would.
async fn copy_secret(db: &TestDb, backend: Backend, from: &str, to: &str) {
    let sql = "UPDATE connections SET secret = (SELECT secret FROM connections WHERE id = $1) WHERE id = $2";
    let changed = match backend {
        Backend::Sqlite => {
            let mut conn = sqlx::SqliteConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql)
                .bind(from)
                .bind(to)
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected()
        }
        Backend::Postgres => {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            sqlx::query(sql)
                .bind(from)
                .bind(to)
                .execute(&mut conn)
                .await
                .unwrap()
                .rows_affected()
        }
    };
    assert_eq!(changed, 1);
}

each_backend! {
    async fn a_ciphertext_copied_to_another_row_or_workspace_does_not_open_and_nothing_is_forwarded(backend) {
        let app = TestApp::spawn(backend).await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(&app.master_key).unwrap();
        let sealer = Sealer::new(&MasterKey::from_bytes(bytes.try_into().unwrap()));
        let other_secret = StripeSecret::parse("sk_test_51OtherConnectionKey0123456789").unwrap();
        let other = set_stripe_connection(app.store.as_ref(), &sealer, &app.workspace, "other", &other_secret, &crate::support::test_origin()).await.unwrap();
        let tenant = app.store.ensure_workspace("tenant-b").await.unwrap();
        let foreign = set_stripe_connection(app.store.as_ref(), &sealer, &tenant.id, "stripe", &other_secret, &crate::support::test_origin()).await.unwrap();
        let tenant_key = create_key(app.store.as_ref(), &tenant.id, KeySpec::agent("b"), &crate::support::test_origin()).await.unwrap().key.to_string();
        let stripe = app.store.find_connection(&app.workspace, "stripe").await.unwrap().unwrap();

        copy_secret(&app.db, backend, stripe.id.as_str(), other.id.as_str()).await;
        copy_secret(&app.db, backend, stripe.id.as_str(), foreign.id.as_str()).await;
        let same_workspace = app
            .client
            .get(app.url("/v1/connections/other/customers"))
            .bearer_auth(&app.key)
            .send()
            .await
            .unwrap();
        let other_workspace = app
            .client
            .get(app.url("/v1/connections/stripe/customers"))
            .bearer_auth(&tenant_key)
            .send()
            .await
            .unwrap();
        for response in [same_workspace, other_workspace] {
            assert_eq!(response.status(), 500);
            assert_eq!(response.headers()["agentgate-error"], "internal");
            let text = response.text().await.unwrap();
            assert!(!text.contains("sk_test_"), "{text}");
        }
        assert!(app.double.received().is_empty(), "nothing was forwarded: {:?}", app.double.received());
        assert_eq!(app.get("customers").await.status(), 200, "the original row still opens");
        app.stop().await;
    }
}
