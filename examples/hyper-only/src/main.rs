//! Serve a local batlehub npm registry with plain hyper: no axum, no router.
//!
//! ```text
//! cargo run -p example-hyper-only
//! npm --registry http://127.0.0.1:3001/ view some-package
//! ```

use batlehub::Hub;
use batlehub::auth::{AuthLayer, StaticTokens};
use batlehub::npm::NpmService;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tower::Layer as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let storage = batlehub::storage::embedded("./example-data").await?;
    let hub = Hub::builder().storage(storage).build()?;
    // Mounted at `/`: the base URL is derived from each request's Host header.
    let npm = NpmService::local(&hub, "npm", "")?;
    let service = AuthLayer::new(StaticTokens::new(Vec::new())?).layer(npm);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("npm registry at http://{}/", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        // Streamed artifacts are written in pieces: without TCP_NODELAY the last one
        // waits ~40 ms for the client's delayed ACK.
        stream.set_nodelay(true)?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                eprintln!("connection error: {e}");
            }
        });
    }
}
