//! `GET /healthz` (the process answers) and `GET /readyz` (the database answers too), for load
//! balancers and systemd's watchdog scripts.

use std::time::Duration;

use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

use super::State;

pub fn routes() -> Router<State> {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
}

async fn ready(AxState(state): AxState<State>) -> (StatusCode, String) {
    let probe = sqlx::query_scalar::<_, i32>("SELECT 1").fetch_one(&state.db.write);
    match tokio::time::timeout(Duration::from_secs(2), probe).await {
        Ok(Ok(_)) => (StatusCode::OK, "ready\n".into()),
        Ok(Err(e)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "database unavailable: {}\n",
                crate::sanitize::clean(&e.to_string())
            ),
        ),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unavailable: no answer within 2 s\n".into(),
        ),
    }
}
