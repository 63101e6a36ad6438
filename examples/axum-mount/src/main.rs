//! Mount one batlehub npm proxy inside an existing axum application.
//!
//! ```text
//! cargo run -p example-axum-mount -- http://127.0.0.1:4873/
//! npm --registry http://127.0.0.1:3000/npm/ install left-pad
//! ```

use axum::{Router, routing::get};
use batlehub::auth::{AuthLayer, StaticTokens};
use batlehub::axum::RouterExt as _;
use batlehub::npm::NpmService;
use batlehub::{Hub, Mode, RegistryConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = std::env::args()
        .nth(1)
        .ok_or("usage: example-axum-mount UPSTREAM_URL")?;
    let storage = batlehub::storage::embedded("./example-data").await?;
    let hub = Hub::builder().storage(storage).build()?;

    // Your existing application, with the registry mounted beside its own routes (the
    // mount path, written once, also gives the registry its base URL).
    let app = Router::new()
        .route("/", get(|| async { "my platform" }))
        .registry::<NpmService>(
            "/npm",
            &hub,
            RegistryConfig::new("npm", Mode::Proxy).upstreams([upstream]),
        )?
        .layer(AuthLayer::new(StaticTokens::new(Vec::new())?));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("npm proxy at http://{}/npm/", listener.local_addr()?);
    // Streamed artifacts are written in pieces: without TCP_NODELAY the last one waits
    // ~40 ms for the client's delayed ACK.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await?;
    Ok(())
}
