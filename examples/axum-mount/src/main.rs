//! Mount one batlehub npm proxy inside an existing axum application.
//!
//! ```text
//! cargo run -p example-axum-mount -- http://127.0.0.1:4873/
//! npm --registry http://127.0.0.1:3000/npm/ install left-pad
//! ```

use axum::{Router, routing::get};
use batlehub::Hub;
use batlehub::auth::{AuthLayer, StaticTokens};
use batlehub::npm::NpmService;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let upstream = std::env::args()
        .nth(1)
        .ok_or("usage: example-axum-mount UPSTREAM_URL")?;
    let storage = batlehub::storage::embedded("./example-data").await?;
    let hub = Hub::builder().storage(storage).build()?;
    let npm = NpmService::proxy(&hub, "npm", &upstream, "/npm")?;

    // Your existing application, with the registry mounted beside its own routes.
    let app = Router::new()
        .route("/", get(|| async { "my platform" }))
        .nest_service("/npm", npm)
        .layer(AuthLayer::new(StaticTokens::new(Vec::new())?));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("npm proxy at http://{}/npm/", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
