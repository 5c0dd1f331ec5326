//! One client connection: its credentials checked and logged, its requests read and answered,
//! and, once it watches, its queue written out while its connection is watched for `stop` or
//! for the client going away.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter},
    net::{
        unix::{OwnedReadHalf, OwnedWriteHalf},
        UnixListener, UnixStream,
    },
    sync::{mpsc, oneshot},
};

use super::{
    access::{admit, Group, Peer},
    engine::Control,
    queue::{ClientQueue, Entry},
};
use crate::api::{self, Reply, Request, MAX_REQUEST};

/// What every connection shares.
pub struct Shared {
    pub group: Option<Group>,
    pub control: mpsc::UnboundedSender<Control>,
    /// Bytes each watcher's queue holds at most.
    pub queue_bytes: usize,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(
        group: Option<Group>,
        control: mpsc::UnboundedSender<Control>,
        queue_bytes: usize,
    ) -> Self {
        Self {
            group,
            control,
            queue_bytes,
            next_id: AtomicU64::new(1),
        }
    }
}

/// Accepts connections until the task is dropped. Each session holds a clone of `alive`, so
/// whoever holds its receiver learns when the last one ended.
pub async fn serve(listener: UnixListener, shared: Arc<Shared>, alive: mpsc::Sender<()>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
                let (shared, alive) = (shared.clone(), alive.clone());
                tokio::spawn(async move {
                    session(stream, id, &shared).await;
                    drop(alive);
                });
            }
            Err(e) => {
                tracing::warn!("accepting a client failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads one request line; None at the end of the connection. A line longer than
/// `MAX_REQUEST` is an error.
async fn read_request(
    r: &mut BufReader<OwnedReadHalf>,
    buf: &mut Vec<u8>,
) -> Option<Result<String, String>> {
    buf.clear();
    let n = match (&mut *r)
        .take(MAX_REQUEST as u64 + 1)
        .read_until(b'\n', buf)
        .await
    {
        Ok(0) | Err(_) => return None,
        Ok(n) => n,
    };
    if n > MAX_REQUEST {
        return Some(Err(format!(
            "request longer than {MAX_REQUEST} bytes: connection closed"
        )));
    }
    Some(
        String::from_utf8(std::mem::take(buf))
            .map(|s| s.trim_end_matches(['\n', '\r']).to_string())
            .map_err(|_| "a request is UTF-8 text".to_string()),
    )
}

async fn send(w: &mut BufWriter<OwnedWriteHalf>, line: &[u8]) -> std::io::Result<()> {
    w.write_all(line).await?;
    w.flush().await
}

/// Asks the engine something and waits for its answer; an engine that is gone (the daemon
/// stopping) is an error.
async fn ask<T>(
    shared: &Shared,
    make: impl FnOnce(oneshot::Sender<T>) -> Control,
) -> Result<T, String> {
    let (tx, rx) = oneshot::channel();
    shared
        .control
        .send(make(tx))
        .map_err(|_| "the daemon is stopping".to_string())?;
    rx.await.map_err(|_| "the daemon is stopping".to_string())
}

async fn session(stream: UnixStream, id: u64, shared: &Shared) {
    let peer = match stream.peer_cred() {
        Ok(c) => Peer {
            pid: c.pid(),
            uid: c.uid(),
            gid: c.gid(),
        },
        Err(e) => {
            tracing::warn!("client {id}: no peer credentials ({e}); closed");
            return;
        }
    };
    let (rd, wr) = stream.into_split();
    let (mut rd, mut wr) = (BufReader::new(rd), BufWriter::new(wr));
    if let Err(why) = admit(&peer, shared.group.as_ref()) {
        tracing::warn!("client {id} refused: {peer}: not root nor in the daemon's group");
        let _ = send(&mut wr, &Reply::error(why).line()).await;
        return;
    }
    tracing::info!("client {id} connected: {peer}");
    let mut buf = Vec::new();
    // Whether this connection asked `count`: its ports leave the kernel's set when it ends.
    let mut counting = false;
    while let Some(line) = read_request(&mut rd, &mut buf).await {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                let _ = send(&mut wr, &Reply::error(&e).line()).await;
                if e.contains("connection closed") {
                    break;
                }
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let reply = match api::parse(&line) {
            Err(e) => {
                tracing::info!("client {id}: bad request: {e}");
                Reply::error(e).line()
            }
            Ok(Request::Hello) => match ask(shared, |reply| Control::Status { reply }).await {
                Ok((attached, watchers)) => Reply::Hello {
                    api: api::API_VERSION,
                    version: env!("CARGO_PKG_VERSION").into(),
                    attached,
                    watchers,
                }
                .line(),
                Err(e) => Reply::error(e).line(),
            },
            Ok(Request::Probes) => answer(ask(shared, |reply| Control::Probes { reply }).await),
            Ok(Request::Stats) => answer(ask(shared, |reply| Control::Stats { reply }).await),
            Ok(Request::Count(request)) => {
                let r = ask(shared, |reply| Control::Count {
                    id,
                    peer,
                    request,
                    reply,
                })
                .await;
                counting |= matches!(r, Ok(Ok(_)));
                answer(r)
            }
            Ok(Request::Reading) => {
                answer(ask(shared, |reply| Control::Reading { id, reply }).await)
            }
            Ok(Request::Stop) => {
                Reply::error("nothing to stop: this connection is not watching").line()
            }
            Ok(Request::Watch(w)) => {
                let queue = Arc::new(ClientQueue::new(shared.queue_bytes));
                let subscribed = ask(shared, |reply| Control::Watch {
                    id,
                    peer,
                    request: w,
                    queue: queue.clone(),
                    reply,
                })
                .await
                .and_then(|r| r);
                match subscribed {
                    Ok(()) => {
                        watch(id, &queue, shared, rd, wr).await;
                        tracing::info!("client {id} ({peer}) done");
                        return;
                    }
                    Err(e) => {
                        tracing::info!("client {id}: watch refused: {e}");
                        Reply::error(e).line()
                    }
                }
            }
        };
        if send(&mut wr, &reply).await.is_err() {
            break;
        }
    }
    if counting {
        let _ = shared.control.send(Control::Uncount { id });
    }
    tracing::info!("client {id} ({peer}) disconnected");
}

fn answer(r: Result<Result<Vec<u8>, String>, String>) -> Vec<u8> {
    match r {
        Ok(Ok(line)) => line,
        Ok(Err(e)) | Err(e) => Reply::error(e).line(),
    }
}

/// Writes the queue out until the engine closes it (after the summary); meanwhile reads the
/// connection: `stop` finishes the watch, the end of the connection (the client quit or was
/// killed) drops it at once.
async fn watch(
    id: u64,
    queue: &ClientQueue,
    shared: &Shared,
    mut rd: BufReader<OwnedReadHalf>,
    mut wr: BufWriter<OwnedWriteHalf>,
) {
    let writer = async {
        while let Some(entries) = queue.take().await {
            for e in entries {
                match e {
                    Entry::Lines(l) => wr.write_all(&l).await?,
                    Entry::Missed(n) => wr.write_all(&Reply::Missed { items: n }.line()).await?,
                }
            }
            wr.flush().await?;
        }
        wr.shutdown().await
    };
    let reader = async {
        let mut buf = Vec::new();
        let mut stopping = false;
        loop {
            match read_request(&mut rd, &mut buf).await {
                // Gone before asking to stop: killed, or quit without a word.
                None if !stopping => return,
                // Stopping, and done writing to us: wait for the summary.
                None => std::future::pending::<()>().await,
                Some(Ok(l)) if l.trim().is_empty() => {}
                Some(Ok(l)) => match api::parse(&l) {
                    Ok(Request::Stop) if !stopping => {
                        stopping = true;
                        let _ = shared.control.send(Control::Stop { id });
                    }
                    Ok(Request::Stop) => {}
                    Ok(_) => queue.force(
                        Reply::error("this connection is watching: the only request now is stop")
                            .line(),
                    ),
                    Err(e) => queue.force(Reply::error(e).line()),
                },
                Some(Err(e)) => queue.force(Reply::error(e).line()),
            }
        }
    };
    tokio::select! {
        done = writer => {
            if let Err(e) = done {
                tracing::info!("client {id}: write failed ({e}): dropped");
                let _ = shared.control.send(Control::Gone { id });
            }
        }
        () = reader => {
            tracing::info!("client {id} went away: dropped, {} items it missed", queue.missed());
            let _ = shared.control.send(Control::Gone { id });
        }
    }
}
