//! `vistaflow serve`: a local web viewer of a workflow's image and labels in which clicks
//! run its vista3d_refine node through the engine (README, "Viewer").

mod assets;
mod clicks;
mod http;
mod session;

pub use clicks::{points_csv, Click};
pub use session::{Session, State, Workflow};

use crate::exec::{Engine, RunOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// What `vistaflow serve` was asked.
pub struct ServeOptions {
    pub port: u16,
    /// The session folder (image.nii, labels.nii, clicks.csv).
    pub dir: PathBuf,
}

/// A random access token: 128 bits, hex.
fn new_token() -> Result<String, String> {
    let mut b = [0u8; 16];
    getrandom::getrandom(&mut b).map_err(|e| format!("no randomness for the access token: {e}"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Serves `wf` until Ctrl-C or SIGTERM; prints the URL (with its token) first.
pub async fn serve(
    wf: Workflow,
    engine: Engine,
    opts: RunOptions,
    serve: ServeOptions,
) -> Result<(), String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], serve.port));
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        format!("cannot listen on {addr}: {e}; choose another port with --port (0: any free one)")
    })?;
    let port = listener.local_addr().map_err(|e| e.to_string())?.port();
    let token = new_token()?;
    let session = Arc::new(Session::new(wf, engine, opts, serve.dir));
    let app = Arc::new(http::App {
        session: session.clone(),
        token: token.clone(),
        hosts: [format!("127.0.0.1:{port}"), format!("localhost:{port}")],
    });
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "vistaflow serve: http://127.0.0.1:{port}/?token={token}"
        );
        let _ = writeln!(
            out,
            "  open it in a browser on this machine (ssh -L {port}:127.0.0.1:{port} from another); \
             Ctrl-C stops"
        );
        let _ = out.flush();
    }
    let starter = session.clone();
    tokio::spawn(async move {
        if let Err(e) = starter.start().await {
            eprintln!("error: {e}");
            starter.start_failed(e);
        }
    });
    tokio::spawn(session.clone().worker());
    axum::serve(listener, http::router(app))
        .with_graceful_shutdown(async {
            use tokio::signal::unix::{signal, SignalKind};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = tokio::signal::ctrl_c() => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        })
        .await
        .map_err(|e| e.to_string())
}
