//! `batlehub-server`: the reference server binary.

use std::io::BufRead as _;
use std::process::ExitCode;

use batlehub_server::{Command, USAGE, parse_args, run};

/// jemalloc returns freed memory to the system (glibc's allocator kept the arenas of
/// big transient buffers, several times the live heap).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // The process, not the library, chooses the process-wide TLS provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Ok(Command::Help) => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::HashToken(token)) => {
            let token = match token {
                Some(t) => t,
                None => {
                    let mut line = String::new();
                    if std::io::stdin().lock().read_line(&mut line).is_err() {
                        eprintln!("batlehub-server: could not read the token from stdin");
                        return ExitCode::FAILURE;
                    }
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            if token.len() < 8 {
                eprintln!("batlehub-server: a token must be at least 8 characters");
                return ExitCode::FAILURE;
            }
            match batlehub::auth::hash_token(&token) {
                Ok(h) => {
                    println!("{h}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("batlehub-server: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Ok(Command::Serve {
            config,
            listen,
            data_dir,
        }) => match run(config, listen, data_dir).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("batlehub-server: {e}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!("batlehub-server: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
