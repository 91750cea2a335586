//! Finding a fleet in etcd as a Go `XClient` does with rpcx-etcd v0.5.0's `EtcdV3Discovery`
//! (rpcx-protocol.md 10.1): list the prefix `BASE/Service`, keep the keys under `BASE/Service/`,
//! strip them to `tcp@host:port`, drop `state=inactive`, and keep only `group` when one is asked.
//!
//! It lists once, before the load starts; it does not watch (a benchmark's fleet is fixed).

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Why discovery found nothing to load.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("etcd {endpoints}: {source}")]
    Etcd {
        endpoints: String,
        source: etcd_client::Error,
    },
    #[error("cannot start the etcd client's runtime: {0}")]
    Runtime(std::io::Error),
    #[error("no active server of {service} under {base_path} in etcd{}", group_note(.group))]
    Empty {
        service: String,
        base_path: String,
        group: Option<String>,
    },
    #[error("registered address {key:?} does not resolve: {reason}")]
    Address { key: String, reason: String },
}

fn group_note(group: &Option<String>) -> String {
    group
        .as_ref()
        .map(|g| format!(" in group {g:?}"))
        .unwrap_or_default()
}

/// Where to look and what to keep.
#[derive(Debug, Clone)]
pub struct EtcdQuery {
    /// etcd members, `host:port`.
    pub endpoints: Vec<String>,
    /// The Go client's basePath, e.g. `/rpcx_test`.
    pub base_path: String,
    /// The service path, e.g. `Echo`.
    pub service: String,
    /// Keep only servers whose metadata has this `group` (Go's `Option.Group`).
    pub group: Option<String>,
}

/// A discovered server: where to dial and its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered {
    pub addr: SocketAddr,
    pub metadata: String,
}

/// Lists the servers of `query` once, sorted by key (Go's XClient sorts them too).
pub fn discover(query: &EtcdQuery) -> Result<Vec<Discovered>, DiscoveryError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DiscoveryError::Runtime)?;
    let prefix = format!("{}/{}", query.base_path, query.service);
    let listing = runtime
        .block_on(list(&query.endpoints, &prefix))
        .map_err(|source| DiscoveryError::Etcd {
            endpoints: query.endpoints.join(","),
            source,
        })?;
    let mut servers = Vec::new();
    for (key, metadata) in select(&prefix, &listing, query.group.as_deref()) {
        let hostport = key.trim_start_matches("tcp@");
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| e.to_string())
            .and_then(|mut addrs| addrs.next().ok_or_else(|| "no address".to_string()))
            .map_err(|reason| DiscoveryError::Address {
                key: key.clone(),
                reason,
            })?;
        servers.push(Discovered { addr, metadata });
    }
    if servers.is_empty() {
        return Err(DiscoveryError::Empty {
            service: query.service.clone(),
            base_path: query.base_path.clone(),
            group: query.group.clone(),
        });
    }
    Ok(servers)
}

async fn list(
    endpoints: &[String],
    prefix: &str,
) -> Result<Vec<(String, String)>, etcd_client::Error> {
    let endpoints: Vec<String> = endpoints
        .iter()
        .map(|e| {
            if e.contains("://") {
                e.clone()
            } else {
                format!("http://{e}")
            }
        })
        .collect();
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_timeout(Duration::from_secs(3));
    let mut client = etcd_client::Client::connect(endpoints, Some(options)).await?;
    let response = client
        .get(prefix, Some(etcd_client::GetOptions::new().with_prefix()))
        .await?;
    Ok(response
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                String::from_utf8_lossy(kv.value()).into_owned(),
            )
        })
        .collect())
}

/// The Go client's choice from a listing of `prefix`: `(tcp@host:port, metadata)`, sorted by key.
/// Other networks (`http@`, `quic@`…) are left out: the load generator speaks plain TCP.
fn select(
    prefix: &str,
    listing: &[(String, String)],
    group: Option<&str>,
) -> Vec<(String, String)> {
    let under = format!("{prefix}/");
    let mut chosen: Vec<(String, String)> = listing
        .iter()
        .filter_map(|(key, metadata)| {
            let node = key.strip_prefix(&under)?;
            if !node.starts_with("tcp@") || node.contains('/') {
                return None;
            }
            let pairs: Vec<(&str, &str)> = metadata
                .split('&')
                .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                .collect();
            if pairs.contains(&("state", "inactive")) {
                return None;
            }
            if let Some(group) = group {
                if !pairs.contains(&("group", group)) {
                    return None;
                }
            }
            Some((node.to_string(), metadata.clone()))
        })
        .collect();
    chosen.sort();
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Vec<(String, String)> {
        [
            ("/rpcx_test/Echo", "Echo"),
            ("/rpcx_test/Echo/tcp@127.0.0.1:3", "group=b"),
            ("/rpcx_test/Echo/tcp@127.0.0.1:1", "weight=1&group=a"),
            ("/rpcx_test/Echo/tcp@127.0.0.1:2", "group=a&state=inactive"),
            ("/rpcx_test/Echo/http@127.0.0.1:4", ""),
            ("/rpcx_test/EchoMore/tcp@127.0.0.1:5", ""),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .to_vec()
    }

    #[test]
    fn keeps_active_tcp_servers_of_the_service_sorted() {
        let keys: Vec<String> = select("/rpcx_test/Echo", &listing(), None)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["tcp@127.0.0.1:1", "tcp@127.0.0.1:3"]);
    }

    #[test]
    fn group_filter_keeps_that_group() {
        let keys: Vec<String> = select("/rpcx_test/Echo", &listing(), Some("a"))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["tcp@127.0.0.1:1"]);
    }
}
