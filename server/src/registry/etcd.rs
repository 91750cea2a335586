//! etcd v3 backend of [`Registry`]: the keys, values and lease of `rpcxio/rpcx-etcd` v0.5.0's
//! server plugin (rpcx-protocol.md 10.1), so its `EtcdV3Discovery` finds this server.
//!
//! Layout, every key on this server's one lease:
//!
//! | key | value |
//! |---|---|
//! | `BASE` | `rpcx_path` |
//! | `BASE/Service` | `Service` |
//! | `BASE/Service/tcp@host:port` | the service's metadata (`weight=10&group=g1`, may be empty) |
//!
//! Unlike Go's plugin, which writes each service's keys one `Register` call late (so its last
//! service waits for the first refresh), every service is written at once, in one transaction.
//!
//! The client is `etcd-client` (tonic), which is async: this backend owns a current-thread tokio
//! runtime and blocks on it, on the registration thread only.

use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, DeleteOptions, LeaseKeepAliveStream, LeaseKeeper, PutOptions, Txn,
    TxnOp,
};

use super::{Node, Registry, RegistryError};

/// Settings of the etcd backend.
#[derive(Debug, Clone)]
pub struct EtcdConfig {
    /// `host:port` of each etcd member (`http://` is added when missing).
    pub endpoints: Vec<String>,
    /// Key prefix, kept verbatim as Go does (leading `/` included). Default `/rpcx_test`, as in
    /// rpcx's examples.
    pub base_path: String,
    /// Lease TTL. Default 10 s: a killed server leaves the listing within 10 s (Go's plugin: 30 s),
    /// while keep-alives every TTL/3 still ride out an etcd leader election (about 1-2 s) or a
    /// restart of a few seconds without the lease expiring.
    pub ttl: Duration,
    /// Bound on every etcd call. Default 2 s, so an etcd outage is seen within one keep-alive.
    pub timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        EtcdConfig {
            endpoints: vec!["127.0.0.1:2379".into()],
            base_path: "/rpcx_test".into(),
            ttl: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
        }
    }
}

impl EtcdConfig {
    /// Every key of `node` with its value, in write order: `BASE`, then each service's two keys.
    pub fn keys(&self, node: &Node) -> Vec<(String, String)> {
        let base = &self.base_path;
        let mut keys = vec![(base.clone(), "rpcx_path".to_string())];
        for service in node.services() {
            keys.push((format!("{base}/{}", service.name), service.name.clone()));
            keys.push((
                format!("{base}/{}/{}", service.name, node.address()),
                node.metadata(service),
            ));
        }
        keys
    }

    /// The node keys alone (`BASE/Service/tcp@host:port`): what deregistration deletes.
    fn node_keys(&self, node: &Node) -> Vec<String> {
        node.services()
            .iter()
            .map(|s| format!("{}/{}/{}", self.base_path, s.name, node.address()))
            .collect()
    }
}

/// The session with etcd: a client and a lease kept alive by a keeper and its response stream.
struct Session {
    client: Client,
    lease: i64,
    keeper: Option<(LeaseKeeper, LeaseKeepAliveStream)>,
}

/// Registers a node in etcd v3.
pub struct EtcdRegistry {
    config: EtcdConfig,
    runtime: tokio::runtime::Runtime,
    session: Option<Session>,
}

impl EtcdRegistry {
    /// A backend for `config`; connects lazily, on the first registration.
    pub fn new(config: EtcdConfig) -> Result<Self, RegistryError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(RegistryError::Spawn)?;
        Ok(EtcdRegistry {
            config,
            runtime,
            session: None,
        })
    }

    fn unreachable(&self, e: impl std::fmt::Display) -> RegistryError {
        RegistryError::Unreachable {
            registry: self.describe(),
            reason: e.to_string(),
        }
    }

    fn lost(&self, reason: impl std::fmt::Display) -> RegistryError {
        RegistryError::SessionLost {
            registry: self.describe(),
            reason: reason.to_string(),
        }
    }

    /// A client and a fresh lease. A new client each time: after an outage tonic's channel may
    /// hold a dead connection for a while, a new one dials at once.
    async fn open(config: &EtcdConfig) -> Result<Session, etcd_client::Error> {
        let endpoints: Vec<String> = config
            .endpoints
            .iter()
            .map(|e| {
                if e.contains("://") {
                    e.clone()
                } else {
                    format!("http://{e}")
                }
            })
            .collect();
        let options = ConnectOptions::new()
            .with_connect_timeout(config.timeout)
            .with_timeout(config.timeout);
        let mut client = Client::connect(endpoints, Some(options)).await?;
        let ttl = config.ttl.as_secs().max(1) as i64;
        let lease = client.lease_grant(ttl, None).await?.id();
        Ok(Session {
            client,
            lease,
            keeper: None,
        })
    }

    /// Puts every key of `node` on the session's lease, in one transaction.
    async fn put_all(
        session: &mut Session,
        keys: Vec<(String, String)>,
    ) -> Result<(), etcd_client::Error> {
        let ops: Vec<TxnOp> = keys
            .into_iter()
            .map(|(k, v)| TxnOp::put(k, v, Some(PutOptions::new().with_lease(session.lease))))
            .collect();
        session.client.txn(Txn::new().and_then(ops)).await?;
        Ok(())
    }
}

impl Registry for EtcdRegistry {
    fn register(&mut self, node: &Node) -> Result<(), RegistryError> {
        let keys = self.config.keys(node);
        let config = self.config.clone();
        let mut session = self.session.take();
        let result = self.runtime.block_on(async {
            let mut session = match session.take() {
                Some(session) => session,
                None => Self::open(&config).await?,
            };
            Self::put_all(&mut session, keys).await?;
            Ok::<_, etcd_client::Error>(session)
        });
        match result {
            Ok(session) => {
                self.session = Some(session);
                Ok(())
            }
            // The session is dropped: the next attempt starts from a new client and lease.
            Err(e) => Err(self.unreachable(e)),
        }
    }

    fn keep_alive(&mut self, _node: &Node) -> Result<(), RegistryError> {
        let Some(mut session) = self.session.take() else {
            return Err(self.lost("no lease"));
        };
        let timeout = self.config.timeout;
        let result = self.runtime.block_on(async {
            let bounded = async {
                if session.keeper.is_none() {
                    session.keeper = Some(session.client.lease_keep_alive(session.lease).await?);
                }
                let (keeper, stream) = session.keeper.as_mut().expect("set above");
                keeper.keep_alive().await?;
                stream.message().await
            };
            match tokio::time::timeout(timeout, bounded).await {
                Ok(Ok(Some(response))) if response.ttl() > 0 => Ok(()),
                Ok(Ok(Some(_))) => Err("the lease expired".to_string()),
                Ok(Ok(None)) => Err("keep-alive stream closed".to_string()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!("no keep-alive answer within {timeout:?}")),
            }
        });
        match result {
            Ok(()) => {
                self.session = Some(session);
                Ok(())
            }
            Err(reason) => Err(self.lost(reason)),
        }
    }

    fn deregister(&mut self, node: &Node) -> Result<(), RegistryError> {
        let Some(mut session) = self.session.take() else {
            // Never registered, or lost: the keys are gone or go with the old lease.
            return Ok(());
        };
        let node_keys = self.config.node_keys(node);
        let result = self.runtime.block_on(async {
            // Node keys first, as Go's plugin does; then the lease, which takes `BASE` and
            // `BASE/Service` with it when this server wrote them last (other servers' node keys
            // are on their own leases, and the Go client lists the prefix, not those two keys).
            let ops: Vec<TxnOp> = node_keys
                .into_iter()
                .map(|k| TxnOp::delete(k, None::<DeleteOptions>))
                .collect();
            session.client.txn(Txn::new().and_then(ops)).await?;
            session.client.lease_revoke(session.lease).await?;
            Ok::<_, etcd_client::Error>(())
        });
        result.map_err(|e| self.unreachable(e))
    }

    fn keep_alive_interval(&self) -> Duration {
        self.config.ttl / 3
    }

    fn describe(&self) -> String {
        format!(
            "etcd [{}] {}",
            self.config.endpoints.join(","),
            self.config.base_path
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::ServiceEntry;

    #[test]
    fn keys_follow_the_go_plugin_layout() {
        let node = Node::tcp(
            "10.0.0.7:8972".parse().unwrap(),
            vec![
                ServiceEntry::new("Arith", "weight=10&group=g1").unwrap(),
                ServiceEntry::new("Echo", "").unwrap(),
            ],
        )
        .unwrap();
        let config = EtcdConfig::default();
        assert_eq!(
            config.keys(&node),
            [
                ("/rpcx_test", "rpcx_path"),
                ("/rpcx_test/Arith", "Arith"),
                ("/rpcx_test/Arith/tcp@10.0.0.7:8972", "weight=10&group=g1"),
                ("/rpcx_test/Echo", "Echo"),
                ("/rpcx_test/Echo/tcp@10.0.0.7:8972", ""),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }
}
