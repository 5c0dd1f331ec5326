//! `/metrics` over HTTP/1 (hyper on tokio): each scrape asks the engine for a fresh snapshot.

use std::{convert::Infallible, net::SocketAddr, time::Duration};

use http_body_util::Full;
use hyper::{
    body::{Bytes, Incoming},
    header, Method, Request, Response, StatusCode,
};
use hyper_util::rt::TokioIo;
use tokio::sync::{mpsc, oneshot};

use super::{render, Snapshot};

/// Where a scrape gets its snapshot: a request to the engine, answered on the oneshot.
pub type SnapshotRequests = mpsc::UnboundedSender<oneshot::Sender<Snapshot>>;

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// A scrape that waits longer than this for the engine (busy attaching) gets a 503.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);

/// Binds `addr` now, so a port that cannot be had fails the daemon's start.
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot serve metrics on {addr}: {e}"))
}

/// Serves until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, snapshots: SnapshotRequests) {
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of file descriptors and the like: wait, then go on serving.
                tracing::warn!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let snapshots = snapshots.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(req, snapshots.clone()));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!("metrics: connection from {from}: {e}");
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(header::CONTENT_TYPE, v);
    }
    r
}

async fn answer(
    req: Request<Incoming>,
    snapshots: SnapshotRequests,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let plain = "text/plain; charset=utf-8";
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            plain,
            "only GET\n".into(),
        ));
    }
    match req.uri().path() {
        "/metrics" => {}
        "/" => {
            return Ok(reply(
                StatusCode::OK,
                plain,
                "sockpath daemon: metrics at /metrics\n".into(),
            ))
        }
        _ => return Ok(reply(StatusCode::NOT_FOUND, plain, "not found\n".into())),
    }
    let (tx, rx) = oneshot::channel();
    if snapshots.send(tx).is_err() {
        return Ok(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            plain,
            "the daemon is stopping\n".into(),
        ));
    }
    match tokio::time::timeout(SNAPSHOT_WAIT, rx).await {
        Ok(Ok(s)) => Ok(reply(StatusCode::OK, TEXT_FORMAT, render(s))),
        _ => Ok(reply(
            StatusCode::SERVICE_UNAVAILABLE,
            plain,
            "no snapshot from the daemon in time\n".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    async fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[test]
    fn metrics_are_served_from_a_fresh_snapshot_and_other_paths_are_not_found() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, mut rx) = mpsc::unbounded_channel::<oneshot::Sender<Snapshot>>();
            // The engine's side: each request gets the count of requests so far.
            tokio::spawn(async move {
                let mut n = 0;
                while let Some(reply) = rx.recv().await {
                    n += 1;
                    let _ = reply.send(Snapshot {
                        events_lost: n,
                        ..Snapshot::default()
                    });
                }
            });
            tokio::spawn(serve(listener, tx));
            let first = get(addr, "/metrics").await;
            assert!(first.starts_with("HTTP/1.1 200"), "{first}");
            assert!(
                first.contains("content-type: text/plain; version=0.0.4"),
                "{first}"
            );
            assert!(
                first.contains("\nsockpath_events_lost_total 1\n"),
                "{first}"
            );
            let second = get(addr, "/metrics").await;
            assert!(
                second.contains("\nsockpath_events_lost_total 2\n"),
                "{second}"
            );
            assert!(get(addr, "/nothing").await.starts_with("HTTP/1.1 404"));
        });
    }
}
