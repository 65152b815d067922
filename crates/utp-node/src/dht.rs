//! `NativeDht`: a BitTorrent Mainline DHT node (BEP 5) storing and fetching BEP 44 mutable items, for
//! pairing by code without a server of ours (lib/dht/).
//!
//! The node is the `mainline` crate (docs/dht.md says why that crate): it runs its own actor thread and
//! UDP socket, and this file only turns its API into promises. Its socket is not the uTP socket: the DHT
//! is a way to find the peer, not a path to it. What the uTP socket's public address is, lib/dht/ learns
//! by asking DHT nodes from that socket itself.
//!
//! Items are checked by `mainline` before they reach us: a value whose signature does not verify
//! under the key we asked for, or that belongs to another target, is counted in `invalidValues` and
//! never returned.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_lite::{FutureExt, StreamExt};
use mainline::async_dht::AsyncDht;
use mainline::errors::{PutMutableError, PutQueryError};
use mainline::{Dht, MutableItem, SigningKey};
use napi::bindgen_prelude::{Buffer, BufferSlice};
use napi_derive::napi;
use parking_lot::Mutex;

use crate::errors::{error, invalid, Code, JsResult};

const CLOSED: &str = "ERR_DHT_CLOSED";
const BIND: &str = "ERR_DHT_BIND";
const NO_NODES: &str = "ERR_DHT_NO_NODES";
const PUT_FAILED: &str = "ERR_DHT_PUT_FAILED";
const CONFLICT: &str = "ERR_DHT_CONFLICT";
const INTERNAL: &str = "ERR_DHT_INTERNAL";
const BOOTSTRAP: &str = "ERR_DHT_BOOTSTRAP";

/// BEP 44: a value is at most 1000 bytes (bencoded), a salt at most 64
const MAX_VALUE: usize = 1000;
const MAX_SALT: usize = 64;

#[napi(object)]
pub struct DhtConfig {
  /// Nodes to join through, "host:port" (IPv4). Empty: this node starts a network of its own
  pub bootstrap: Vec<String>,
  /// IPv4 address to bind. Default 0.0.0.0
  pub host: Option<String>,
  /// UDP port. Default: any free port
  pub port: Option<u32>,
  /// Answer queries and store items for others from the start, not only once reachable
  pub server: Option<bool>,
  /// How long one query to one node may take, ms. Default: mainline's (it adapts to observed RTTs)
  pub request_timeout_ms: Option<u32>,
}

#[napi(object)]
pub struct DhtInfo {
  /// This node's id, hex
  pub id: String,
  /// The local address and port of the DHT's own socket
  pub address: String,
  pub port: u32,
  /// Our address as other nodes report seeing it (BEP 42 `ip`), when enough of them agree
  pub public_address: Option<String>,
  pub public_port: Option<u32>,
  pub firewalled: bool,
  pub server: bool,
  /// Estimated number of nodes in the whole DHT
  pub size_estimate: u32,
}

#[napi(object)]
pub struct DhtItem {
  pub value: Buffer,
  pub seq: i64,
}

#[napi(object)]
pub struct DhtGetResult {
  /// The item with the highest seq among those that verified; none when no node had one
  pub item: Option<DhtItem>,
  /// Nodes asked, nodes that answered, and answers whose item failed verification (forged or broken)
  pub queried: u32,
  pub responded: u32,
  pub invalid_values: u32,
}

#[napi]
pub struct NativeDht {
  dht: Mutex<Option<AsyncDht>>,
}

#[napi]
impl NativeDht {
  /// Bind and start a node; resolves once its socket is bound (joining the network goes on after)
  #[napi(factory)]
  pub async fn open(config: DhtConfig) -> napi::Result<NativeDht> {
    let bootstrap = config.bootstrap;
    let host = config.host;
    let port = config.port;
    let server = config.server.unwrap_or(false);
    let timeout = config.request_timeout_ms;
    guarded(async move {
      let bind = match host.as_deref() {
        None => Ipv4Addr::UNSPECIFIED,
        Some(h) => h
          .parse::<Ipv4Addr>()
          .map_err(|_| invalid(format!("DHT host must be an IPv4 address, got {h:?}")))?,
      };
      let port = match port {
        None => 0,
        Some(p) if p <= 65535 => p as u16,
        Some(p) => return Err(invalid(format!("DHT port out of range: {p}"))),
      };
      // Names resolve here, off the JS thread: mainline's builder would resolve them wherever it runs
      let nodes = tokio::task::spawn_blocking(move || resolve(&bootstrap))
        .await
        .map_err(|e| error(INTERNAL, e))??;
      let mut builder = Dht::builder();
      builder.bootstrap(&nodes).bind_address(bind).port(port);
      if server {
        builder.server_mode();
      }
      if let Some(ms) = timeout {
        builder.request_timeout(Duration::from_millis(u64::from(ms.max(1))));
      }
      let dht = tokio::task::spawn_blocking(move || builder.build())
        .await
        .map_err(|e| error(INTERNAL, e))?
        .map_err(|e| error(BIND, format!("cannot bind the DHT socket to {bind}:{port}: {e}")))?;
      Ok(NativeDht {
        dht: Mutex::new(Some(dht.as_async())),
      })
    })
    .await
  }

  /// Whether joining the network found any node (waits for the first lookup to end)
  #[napi]
  pub async fn bootstrapped(&self) -> napi::Result<bool> {
    let dht = self.handle();
    guarded(async move {
      let dht = dht?;
      Ok(dht.bootstrapped().await)
    })
    .await
  }

  #[napi]
  pub async fn info(&self) -> napi::Result<DhtInfo> {
    let dht = self.handle();
    guarded(async move {
      let dht = dht?;
      let info = dht.info().await;
      let local = info.local_addr();
      let public = info.public_address();
      Ok(DhtInfo {
        id: info.id().to_string(),
        address: local.ip().to_string(),
        port: u32::from(local.port()),
        public_address: public.map(|a| a.ip().to_string()),
        public_port: public.map(|a| u32::from(a.port())),
        firewalled: info.firewalled(),
        server: info.server_mode(),
        size_estimate: u32::try_from(info.dht_size_estimate().0).unwrap_or(u32::MAX),
      })
    })
    .await
  }

  /// Nodes of our routing table, "ip:port": where to ask what our public address is
  #[napi]
  pub async fn nodes(&self) -> napi::Result<Vec<String>> {
    let dht = self.handle();
    guarded(async move {
      let dht = dht?;
      Ok(dht.to_bootstrap().await)
    })
    .await
  }

  /// Sign `value` with the ed25519 key whose 32-byte seed is `seed` and store it under (key, salt) at the
  /// nodes closest to that target. `cas`: fail with ERR_DHT_CONFLICT unless the stored seq is this one.
  /// Resolves to the number of nodes that stored it
  #[napi]
  pub async fn put_mutable(
    &self,
    seed: Buffer,
    salt: Buffer,
    value: Buffer,
    seq: i64,
    cas: Option<i64>,
  ) -> napi::Result<u32> {
    let dht = self.handle();
    guarded(async move {
      let dht = dht?;
      let key = signing_key(&seed)?;
      check_salt(&salt)?;
      if value.len() > MAX_VALUE {
        return Err(invalid(format!(
          "a DHT value is at most {MAX_VALUE} bytes, got {}",
          value.len()
        )));
      }
      let item = MutableItem::new(key, &value, seq, salt_of(&salt));
      match dht.put_mutable(item, cas).await {
        Ok(outcome) => Ok(outcome.stored_at),
        Err(PutMutableError::Query(PutQueryError::NoClosestNodes)) => Err(error(
          NO_NODES,
          "no DHT node to store at: joining the DHT found no nodes",
        )),
        Err(PutMutableError::Query(e)) => Err(error(PUT_FAILED, format!("no DHT node stored the item: {e}"))),
        Err(PutMutableError::Concurrency(e)) => Err(error(
          CONFLICT,
          format!("the DHT holds a different version of the item: {e}"),
        )),
      }
    })
    .await
  }

  /// The most recent item under (publicKey, salt) with seq above `moreRecentThan`, and what the lookup saw
  #[napi]
  pub async fn get_mutable(
    &self,
    public_key: Buffer,
    salt: Buffer,
    more_recent_than: Option<i64>,
  ) -> napi::Result<DhtGetResult> {
    let dht = self.handle();
    guarded(async move {
      let dht = dht?;
      let key: [u8; 32] = public_key
        .as_ref()
        .try_into()
        .map_err(|_| invalid(format!("a DHT public key is 32 bytes, got {}", public_key.len())))?;
      check_salt(&salt)?;
      let lookup = dht.get_mutable_detailed(&key, salt_of(&salt), more_recent_than);
      let mut best: Option<MutableItem> = None;
      let mut items = lookup.items;
      while let Some(item) = items.next().await {
        // BEP 44 asks nodes to leave out items not newer than `seq`; one that does not is not believed
        if more_recent_than.is_some_and(|floor| item.seq() <= floor) {
          continue;
        }
        if best.as_ref().is_none_or(|b| item.seq() > b.seq()) {
          best = Some(item);
        }
      }
      let outcome = lookup.outcome.recv().await;
      Ok(DhtGetResult {
        item: best.map(|i| DhtItem {
          value: i.value().to_vec().into(),
          seq: i.seq(),
        }),
        queried: outcome.queried,
        responded: outcome.responded(),
        invalid_values: outcome.invalid_values,
      })
    })
    .await
  }

  /// Stop the node: its thread ends and its socket closes once running lookups let go of it
  #[napi]
  pub fn close(&self) {
    self.dht.lock().take();
  }
}

/// The ed25519 public key of a 32-byte seed: where the holder of the seed publishes
#[napi]
pub fn dht_public_key(seed: BufferSlice) -> napi::Result<Buffer, Code> {
  Ok(signing_key(&seed)?.verifying_key().to_bytes().to_vec().into())
}

impl NativeDht {
  fn handle(&self) -> JsResult<AsyncDht> {
    self
      .dht
      .lock()
      .clone()
      .ok_or_else(|| error(CLOSED, "the DHT node is closed"))
  }
}

fn signing_key(seed: &[u8]) -> JsResult<SigningKey> {
  let seed: [u8; 32] = seed
    .try_into()
    .map_err(|_| invalid(format!("a DHT key seed is 32 bytes, got {}", seed.len())))?;
  Ok(SigningKey::from_bytes(&seed))
}

fn check_salt(salt: &[u8]) -> JsResult<()> {
  if salt.len() > MAX_SALT {
    return Err(invalid(format!(
      "a DHT salt is at most {MAX_SALT} bytes, got {}",
      salt.len()
    )));
  }
  Ok(())
}

/// An empty salt is no salt (BEP 44 signs "salt" only when there is one)
fn salt_of(salt: &[u8]) -> Option<&[u8]> {
  (!salt.is_empty()).then_some(salt)
}

/// The IPv4 addresses of the bootstrap nodes. A name that does not resolve is skipped (one router down or
/// unknown must not stop the others); none resolving at all is ERR_DHT_BOOTSTRAP. An IPv6 literal is a
/// mistake, not a lookup result: the Mainline DHT (BEP 5's compact node format) is IPv4
fn resolve(nodes: &[String]) -> JsResult<Vec<String>> {
  let mut out = Vec::with_capacity(nodes.len());
  let mut failures = Vec::new();
  for node in nodes {
    if let Ok(SocketAddr::V6(_)) = node.parse::<SocketAddr>() {
      return Err(invalid(format!(
        "DHT bootstrap node {node:?} is IPv6: the Mainline DHT is IPv4"
      )));
    }
    match node.to_socket_addrs() {
      Ok(addrs) => {
        let before = out.len();
        out.extend(addrs.filter_map(|a| match a {
          SocketAddr::V4(a) => Some(a.to_string()),
          SocketAddr::V6(_) => None,
        }));
        if out.len() == before {
          failures.push(format!("{node} (no IPv4 address)"));
        }
      }
      Err(e) => failures.push(format!("{node} ({e})")),
    }
  }
  if out.is_empty() && !nodes.is_empty() {
    return Err(error(
      BOOTSTRAP,
      format!("no DHT bootstrap node resolves: {}", failures.join(", ")),
    ));
  }
  Ok(out)
}

/// Runs one async call for JS. mainline `expect`s its actor thread to be alive; a panic there must reach
/// JS as an error, not abort the process. napi-rs rejects async calls with plain `napi::Error`s only, so
/// the code travels as the reason's prefix ("ERR_DHT_CLOSED: ..."), and lib/dht/native.ts makes it
/// `err.code` again
async fn guarded<T>(work: impl Future<Output = JsResult<T>>) -> napi::Result<T> {
  let result = match AssertUnwindSafe(work).catch_unwind().await {
    Ok(result) => result,
    Err(_) => Err(error(INTERNAL, "the DHT node stopped unexpectedly")),
  };
  result.map_err(|e| napi::Error::from_reason(format!("{}: {}", e.status.as_ref(), e.reason)))
}
