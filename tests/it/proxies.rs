//! Proxies from the environment: used for a remote API over https (a `CONNECT` tunnel, so
//! the proxy never sees the key), never for this machine's addresses.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{expect, set_flag, tally, tenants};
use crate::fixture::Job;
use crate::process::{Finished, command, line, run_to_end};

/// A proxy that records what each connection sends, answers 502 and closes.
struct CapturingProxy {
    url: String,
    seen: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl CapturingProxy {
    async fn start() -> CapturingProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let recorded = seen.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let mut bytes = Vec::new();
                    let mut buffer = [0u8; 4096];
                    while !bytes.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => bytes.extend_from_slice(&buffer[..n]),
                        }
                    }
                    recorded.lock().unwrap().push(bytes);
                    let _ = stream
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        CapturingProxy { url, seen }
    }

    /// What each connection sent, as text.
    fn seen(&self) -> Vec<String> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }
}

/// Every variable a proxy is read from, upper and lower case, set to `proxy`.
fn proxy_env(proxy: &str) -> Vec<(String, String)> {
    ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"]
        .iter()
        .flat_map(|name| [name.to_string(), name.to_lowercase()])
        .map(|name| (name, proxy.to_owned()))
        .collect()
}

async fn run_with(words: &[&str], env: &[(String, String)]) -> Finished {
    let mut command = command(words);
    command.env_remove("NO_PROXY").env_remove("no_proxy");
    for (name, value) in env {
        command.env(name, value);
    }
    run_to_end(command).await
}

#[tokio::test]
async fn this_machine_is_never_reached_through_a_proxy() {
    let proxy = CapturingProxy::start().await;
    let env = proxy_env(&proxy.url);
    for host in ["127.0.0.1", "localhost"] {
        let job = Job::new().await;
        let input = job.input(&tenants("t", 4));
        let mut args = job.args_with_preflight("results.csv");
        let url = job.sandbox.url().replace("127.0.0.1", host);
        set_flag(&mut args, "--base-url", &url);
        let run = run_with(&line(&["run", &input], &args), &env).await;
        assert_eq!(run.exit, 0, "{host}: {}", run.stderr);
        assert_eq!(tally(&job.rows()), expect(&[("created", 4)]), "{host}");
    }
    // The README's first command.
    let job = Job::new().await;
    let input = job.input(&tenants("t", 3));
    let run = run_with(&["run", &input, "--sandbox", "-o", "-"], &env).await;
    assert_eq!(run.exit, 0, "{}", run.stderr);
    assert_eq!(run.stdout.matches(",created,").count(), 3, "{}", run.stdout);
    assert!(proxy.seen().is_empty(), "the proxy saw {:?}", proxy.seen());
}

#[tokio::test]
async fn a_remote_api_is_reached_through_a_tunnel_the_proxy_cannot_read() {
    let proxy = CapturingProxy::start().await;
    let job = Job::new().await;
    let input = job.input(&tenants("t", 3));
    let mut args = job.args_with_preflight("results.csv");
    // A name only the proxy resolves: with the proxy, nothing is looked up here.
    set_flag(&mut args, "--base-url", "https://databrain.example.test");
    let key = job.dir.private_key("a-key-only-the-api-may-see-5e1f\n");
    set_flag(&mut args, "--api-key-file", &key);
    let env = vec![("HTTPS_PROXY".to_owned(), proxy.url.clone())];
    let run = run_with(&line(&["run", &input], &args), &env).await;
    assert_eq!(run.exit, 3, "the proxy refuses the tunnel: {}", run.stderr);
    assert!(
        run.stderr.contains("the API could not be reached") && !run.stderr.contains("(429)"),
        "an API not reached is not called a rate limit: {}",
        run.stderr
    );
    let seen = proxy.seen();
    assert!(!seen.is_empty(), "the proxy was used: {}", run.stderr);
    for request in &seen {
        assert!(
            request.starts_with("CONNECT databrain.example.test:443 "),
            "only a tunnel is asked for: {request}"
        );
        assert!(
            !request.contains("a-key-only"),
            "the key crossed the proxy: {request}"
        );
        assert!(
            !request.to_lowercase().contains("authorization: bearer"),
            "{request}"
        );
    }
    assert_eq!(job.requests().await, 0);
}
