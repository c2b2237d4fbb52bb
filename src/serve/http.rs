//! The viewer's HTTP side: fixed routes only (no path from the browser reaches the disk),
//! every request checked for the session's token and for a localhost `Host` (a page on
//! another site cannot reach the server through DNS rebinding).

use super::assets;
use super::clicks::clickable_classes;
use super::session::Session;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub struct App {
    pub session: Arc<Session>,
    pub token: String,
    /// `Host` values the server answers: 127.0.0.1:PORT and localhost:PORT.
    pub hosts: [String; 2],
}

impl App {
    fn cookie_name(&self) -> String {
        // Cookies do not tell ports apart: one name per server.
        format!(
            "vistaflow_token_{}",
            self.hosts[0].rsplit(':').next().unwrap_or("0")
        )
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/assets/{name}", get(asset))
        .route("/api/state", get(state))
        .route("/api/classes", get(classes))
        .route("/api/image.nii", get(image))
        .route("/api/labels.nii", get(labels))
        .route("/api/click", post(click))
        .route("/api/undo", post(undo))
        .route("/api/redo", post(redo))
        .route("/api/clear", post(clear))
        .route("/api/clicks.csv", get(clicks_csv))
        .route("/api/save", post(save))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

fn forbidden(why: &str) -> Response {
    (StatusCode::FORBIDDEN, format!("403 forbidden: {why}\n")).into_response()
}

/// Equal without a timing difference that would give the token away byte by byte.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

fn query_token(req: &Request) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("token=").map(str::to_string))
}

fn cookie_token(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then(|| v.to_string())
        })
}

async fn guard(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    if !app.hosts.iter().any(|h| h == host) {
        return forbidden(
            "this server answers only http://127.0.0.1 or http://localhost on its own port",
        );
    }
    let from_query = query_token(&req);
    let given = from_query
        .clone()
        .or_else(|| cookie_token(&req, &app.cookie_name()))
        .or_else(|| {
            req.headers()
                .get("x-vistaflow-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        });
    if !given.is_some_and(|t| same(&t, &app.token)) {
        return forbidden(
            "open the page with the URL `vistaflow serve` printed (it holds the access token)",
        );
    }
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if from_query.is_some() {
        let cookie = format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            app.cookie_name(),
            app.token
        );
        if let Ok(v) = HeaderValue::from_str(&cookie) {
            h.insert(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 not found\n").into_response()
}

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        assets::INDEX_HTML,
    )
        .into_response()
}

async fn asset(Path(name): Path<String>) -> Response {
    match assets::get(&name) {
        Some((mime, bytes)) => ([(header::CONTENT_TYPE, mime)], bytes).into_response(),
        None => not_found().await,
    }
}

#[derive(Deserialize)]
struct StateQuery {
    /// `wait=1`: answer once nothing is computing (at most 25 s), instead of at once.
    wait: Option<u8>,
}

async fn state(State(app): State<Arc<App>>, Query(q): Query<StateQuery>) -> Response {
    let s = match q.wait {
        Some(1) => {
            app.session
                .wait_idle(std::time::Duration::from_secs(25))
                .await
        }
        _ => app.session.state(),
    };
    Json(s).into_response()
}

async fn classes() -> Response {
    let list: Vec<_> = clickable_classes()
        .into_iter()
        .map(|(id, name)| json!({ "id": id, "name": name }))
        .collect();
    Json(list).into_response()
}

/// A file of the session folder, by a name fixed here.
async fn session_file(path: std::path::PathBuf) -> Response {
    match tokio::fs::read(&path).await {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            Body::from(bytes),
        )
            .into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "not computed yet\n").into_response(),
    }
}

async fn image(State(app): State<Arc<App>>) -> Response {
    session_file(app.session.image_path()).await
}

async fn labels(State(app): State<Arc<App>>) -> Response {
    session_file(app.session.labels_path()).await
}

fn answer(r: Result<(), String>, app: &App) -> Response {
    match r {
        Ok(()) => Json(app.session.state()).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response(),
    }
}

#[derive(Deserialize)]
struct ClickRequest {
    ras_mm: [f64; 3],
    positive: bool,
    class: u32,
}

async fn click(State(app): State<Arc<App>>, Json(c): Json<ClickRequest>) -> Response {
    let r = app
        .session
        .place(c.ras_mm, c.positive, c.class)
        .and_then(|click| {
            app.session.change(|clicks, undo, redo| {
                undo.push(clicks.clone());
                redo.clear();
                clicks.push(click);
                Ok(())
            })
        });
    answer(r, &app)
}

async fn undo(State(app): State<Arc<App>>) -> Response {
    let r = app.session.change(|clicks, undo, redo| {
        let before = undo.pop().ok_or("nothing to undo")?;
        redo.push(std::mem::replace(clicks, before));
        Ok(())
    });
    answer(r, &app)
}

async fn redo(State(app): State<Arc<App>>) -> Response {
    let r = app.session.change(|clicks, undo, redo| {
        let after = redo.pop().ok_or("nothing to redo")?;
        undo.push(std::mem::replace(clicks, after));
        Ok(())
    });
    answer(r, &app)
}

async fn clear(State(app): State<Arc<App>>) -> Response {
    let r = app.session.change(|clicks, undo, redo| {
        if clicks.is_empty() {
            return Err("there are no clicks to clear".into());
        }
        undo.push(std::mem::take(clicks));
        redo.clear();
        Ok(())
    });
    answer(r, &app)
}

async fn clicks_csv(State(app): State<Arc<App>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"clicks.csv\"",
            ),
        ],
        app.session.clicks_csv(),
    )
        .into_response()
}

async fn save(State(app): State<Arc<App>>) -> Response {
    match app.session.save().await {
        Ok(files) => Json(json!({ "saved": files })).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({ "error": e }))).into_response(),
    }
}
