//! The whole deployment on one page: `/api/v1/checks?scope=cluster` asks every other member
//! for its checks (`GET /api/v1/checks`) at once, with a short deadline, and marks the ones
//! that did not answer. Members are `host:port` (from DNS or a fixed list); `--shard` names
//! are not addresses, so each shard is asked on its own.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use serde_json::{Value, json};

/// How long a peer has to answer before it is marked as not answering.
pub(super) const DEADLINE: Duration = Duration::from_secs(2);
/// The most of a peer's answer read (10,000 checks are a few MB).
const MAX_ANSWER: usize = 64 << 20;

/// Every member's checks, each row with the `instance` that owns it, and the members that
/// did not answer in time (with why).
pub(super) async fn gather(own: Vec<Value>, me: &str, members: &[String]) -> Value {
    let mut rows: Vec<Value> = own
        .into_iter()
        .map(|mut c| {
            c["instance"] = json!(me);
            c
        })
        .collect();
    let asks = members
        .iter()
        .filter(|m| m.as_str() != me)
        .map(|m| async move {
            (
                m.clone(),
                tokio::time::timeout(DEADLINE, checks_of(m)).await,
            )
        });
    let mut unreachable = Vec::new();
    for (member, answer) in futures_util::future::join_all(asks).await {
        match answer {
            Ok(Ok(list)) => rows.extend(list.into_iter().map(|mut c| {
                c["instance"] = json!(member);
                c
            })),
            Ok(Err(e)) => unreachable.push(json!({"instance": member, "error": e})),
            Err(_) => unreachable.push(json!({
                "instance": member,
                "error": format!("no answer within {}", humantime::format_duration(DEADLINE)),
            })),
        }
    }
    json!({ "checks": rows, "unreachable": unreachable })
}

/// `GET http://MEMBER/api/v1/checks`, its `checks`.
async fn checks_of(member: &str) -> Result<Vec<Value>, String> {
    let tcp = tokio::net::TcpStream::connect(member)
        .await
        .map_err(|e| format!("cannot connect: {}", e.kind()))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|_| "the HTTP handshake failed".to_string())?;
    tokio::spawn(conn);
    let request = hyper::Request::get("/api/v1/checks")
        .header(hyper::header::HOST, member)
        .body(Empty::new())
        .map_err(|_| "bad member address".to_string())?;
    let response = send
        .send_request(request)
        .await
        .map_err(|_| "the connection broke before the answer".to_string())?;
    if !response.status().is_success() {
        return Err(format!("answered HTTP {}", response.status().as_u16()));
    }
    let body = Limited::new(response.into_body(), MAX_ANSWER)
        .collect()
        .await
        .map_err(|_| "the answer broke off or was too large".to_string())?
        .to_bytes();
    let doc: Value =
        serde_json::from_slice(&body).map_err(|_| "the answer is not JSON".to_string())?;
    match doc.get("checks") {
        Some(Value::Array(list)) => Ok(list.clone()),
        _ => Err("the answer has no `checks` list".into()),
    }
}
