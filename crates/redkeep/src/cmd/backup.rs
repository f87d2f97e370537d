//! `redkeep backup` and `redkeep restore`.
//!
//! A backup is a dir with one RDB file per master (fetched with `redis-cli --rdb`, which asks
//! the master for a fresh snapshot over the replication protocol) and `topology.json`, the
//! masters with their ids, addresses and slots when the backup was taken.
//!
//! Restore does not need the same topology: each RDB is loaded by a temporary standalone
//! redis-server on loopback, and every key is copied into the target cluster with
//! DUMP / RESTORE (its TTL kept) to whichever master serves its slot there.

use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context;
use cluster::admin::{AdminConn, DEFAULT_TIMEOUT};
use resp::Value;
use serde::{Deserialize, Serialize};

/// Back up a cluster: each master's data as an RDB file (a fresh snapshot, taken with
/// `redis-cli --rdb`), and the topology as `topology.json`, into DIR (created; it must not
/// hold a backup already).
#[derive(clap::Args)]
pub struct BackupArgs {
    /// Any node of the cluster.
    node: String,
    /// Where to write the backup.
    dir: PathBuf,
}

/// Restore a backup made by `redkeep backup` into a running cluster, which may have another
/// number of masters: every key (with its TTL) goes to the master serving its slot there.
/// A key that already exists in the target is an error (nothing overwritten) unless
/// --replace.
#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup dir.
    dir: PathBuf,
    /// Any node of the target cluster.
    node: String,
    /// Overwrite keys that exist in the target.
    #[arg(long)]
    replace: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BackupManifest {
    pub created_unix: u64,
    pub masters: Vec<BackedUpMaster>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct BackedUpMaster {
    pub id: String,
    pub addr: String,
    pub slots: String,
    pub keys: u64,
    /// The RDB file, relative to the backup dir.
    pub rdb: String,
}

const MANIFEST: &str = "topology.json";

pub fn run_backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    if args.dir.join(MANIFEST).exists() {
        anyhow::bail!("{} holds a backup already; choose another dir", args.dir.display());
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let topology = super::block_on(cluster::ops::topology_of(&args.node))?;
    let mut masters = Vec::new();
    for master in topology.masters().filter(|m| m.slot_count() > 0) {
        if master.is_failing() {
            anyhow::bail!("master {} is failing: its data cannot be backed up", master.addr());
        }
        let rdb = format!("master-{}.rdb", master.id);
        println!(">>> Snapshot of {} ({}) into {rdb}", master.addr(), master.id);
        fetch_rdb(&master.ip, master.port, &args.dir.join(&rdb))?;
        let keys = super::block_on(async {
            let mut conn = AdminConn::connect(&master.addr(), DEFAULT_TIMEOUT).await?;
            conn.query_int(&["DBSIZE"]).await
        })?;
        masters.push(BackedUpMaster {
            id: master.id.clone(),
            addr: master.addr(),
            slots: cluster::topology::format_ranges(&master.slots),
            keys: keys.max(0) as u64,
            rdb,
        });
    }
    let manifest = BackupManifest {
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        masters,
    };
    let path = args.dir.join(MANIFEST);
    std::fs::write(&path, serde_json::to_string_pretty(&manifest)? + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("[OK] Backed up {} masters into {}", manifest.masters.len(), args.dir.display());
    Ok(ExitCode::SUCCESS)
}

/// `redis-cli -h HOST -p PORT --rdb FILE`.
fn fetch_rdb(host: &str, port: u16, file: &Path) -> anyhow::Result<()> {
    let output = std::process::Command::new("redis-cli")
        .args(["-h", host, "-p", &port.to_string(), "--rdb"])
        .arg(file)
        .output()
        .context("cannot run redis-cli (install redis-tools: `apt-get install redis-tools`)")?;
    if !output.status.success() || !file.exists() {
        anyhow::bail!(
            "redis-cli --rdb from {host}:{port} failed: {}{}",
            String::from_utf8_lossy(&output.stdout).trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

pub fn run_restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let path = args.dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!("{} is not a redkeep backup (no {MANIFEST})", args.dir.display())
    })?;
    let manifest: BackupManifest =
        serde_json::from_str(&text).with_context(|| format!("{} is damaged", path.display()))?;
    let mut totals = Copied::default();
    for master in &manifest.masters {
        println!(">>> Restoring {} ({} keys when backed up)", master.rdb, master.keys);
        let server = TempServer::load(&args.dir.join(&master.rdb))?;
        let copied = super::block_on(copy_into_cluster(&server.addr(), &args.node, args.replace))?;
        totals.keys += copied.keys;
        totals.existing.extend(copied.existing);
    }
    if !totals.existing.is_empty() {
        let shown: Vec<&str> = totals.existing.iter().take(5).map(String::as_str).collect();
        anyhow::bail!(
            "{} keys exist in the target already and were left as they are (e.g. {}); \
             run again with --replace to overwrite them",
            totals.existing.len(),
            shown.join(", ")
        );
    }
    println!("[OK] Restored {} keys into the cluster of {}", totals.keys, args.node);
    Ok(ExitCode::SUCCESS)
}

/// A key and the RESTORE command that recreates it.
type KeyRestore = (Vec<u8>, Vec<Vec<u8>>);

#[derive(Debug, Default)]
struct Copied {
    keys: u64,
    /// Keys the target had already (BUSYKEY), not overwritten.
    existing: Vec<String>,
}

/// Copies every key of the standalone server at `source` into the cluster of `seed`.
async fn copy_into_cluster(source: &str, seed: &str, replace: bool) -> anyhow::Result<Copied> {
    let topology = cluster::ops::topology_of(seed).await?;
    let owners = topology.slot_owners();
    let mut targets: Vec<Option<AdminConn>> = (0..topology.nodes.len()).map(|_| None).collect();
    let mut from = AdminConn::connect(source, DEFAULT_TIMEOUT).await?;
    let mut copied = Copied::default();
    let mut cursor = "0".to_string();
    loop {
        let reply = from.query(&["SCAN", &cursor, "COUNT", "1000"]).await?;
        let (next, keys) = scan_reply(&reply)?;
        let dumps = dump_all(&mut from, &keys).await?;
        let mut per_node: Vec<Vec<KeyRestore>> = vec![Vec::new(); targets.len()];
        for (key, (ttl, payload)) in keys.into_iter().zip(dumps) {
            let Some(payload) = payload else { continue }; // expired or deleted meanwhile
            let slot = cluster::key_slot(&key);
            let owner = owners[usize::from(slot)]
                .with_context(|| format!("slot {slot} is not served in the target cluster"))?;
            let mut args = vec![b"RESTORE".to_vec(), key.clone(), ttl.to_string().into_bytes()];
            args.push(payload);
            if replace {
                args.push(b"REPLACE".to_vec());
            }
            per_node[owner].push((key, args));
        }
        for (index, commands) in per_node.into_iter().enumerate() {
            if commands.is_empty() {
                continue;
            }
            let conn = match &mut targets[index] {
                Some(conn) => conn,
                slot => slot.insert(
                    AdminConn::connect(&topology.nodes[index].addr(), DEFAULT_TIMEOUT).await?,
                ),
            };
            let args: Vec<Vec<Vec<u8>>> = commands.iter().map(|(_, a)| a.clone()).collect();
            let replies = conn.pipeline(&args).await?;
            for ((key, _), reply) in commands.iter().zip(&replies) {
                match reply {
                    Value::Error(e) if e.starts_with(b"BUSYKEY") => {
                        copied.existing.push(String::from_utf8_lossy(key).into_owned());
                    }
                    Value::Error(e) => anyhow::bail!(
                        "RESTORE of `{}` on {} failed: {}",
                        String::from_utf8_lossy(key),
                        conn.addr(),
                        String::from_utf8_lossy(e)
                    ),
                    _ => copied.keys += 1,
                }
            }
        }
        if next == "0" {
            return Ok(copied);
        }
        cursor = next;
    }
}

fn scan_reply(reply: &Value) -> anyhow::Result<(String, Vec<Vec<u8>>)> {
    let parts = reply.as_list().context("SCAN did not answer a list")?;
    let cursor = parts
        .first()
        .and_then(Value::as_bytes)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .context("SCAN did not answer a cursor")?;
    let keys = parts
        .get(1)
        .and_then(Value::as_list)
        .unwrap_or(&[])
        .iter()
        .filter_map(|k| k.as_bytes().map(<[u8]>::to_vec))
        .collect();
    Ok((cursor, keys))
}

/// `PTTL` and `DUMP` of each key, pipelined: (ttl for RESTORE, payload or `None` if gone).
async fn dump_all(
    conn: &mut AdminConn,
    keys: &[Vec<u8>],
) -> anyhow::Result<Vec<(i64, Option<Vec<u8>>)>> {
    let commands: Vec<Vec<&[u8]>> = keys
        .iter()
        .flat_map(|k| [vec![&b"PTTL"[..], k.as_slice()], vec![&b"DUMP"[..], k.as_slice()]])
        .collect();
    let replies = conn.pipeline(&commands).await?;
    Ok(replies
        .chunks(2)
        .map(|pair| {
            let ttl = match pair[0] {
                Value::Integer(ms) if ms > 0 => ms,
                _ => 0,
            };
            let payload = match &pair[1] {
                Value::Bulk(bytes) => Some(bytes.clone()),
                _ => None,
            };
            (ttl, payload)
        })
        .collect())
}

/// A standalone redis-server on loopback serving one RDB file (a copy of it, so the backup
/// is never touched), killed and deleted on drop.
struct TempServer {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl TempServer {
    fn load(rdb: &Path) -> anyhow::Result<TempServer> {
        let dir = std::env::temp_dir().join(format!(
            "redkeep-restore-{}-{}",
            std::process::id(),
            deploy::ports::free_port()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::copy(rdb, dir.join("dump.rdb"))
            .with_context(|| format!("cannot read {}", rdb.display()))?;
        let port = deploy::ports::free_port();
        let child = std::process::Command::new(deploy::local::redis_server_path()?)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
            .args(["--appendonly", "no", "--daemonize", "no", "--logfile", ""])
            .arg("--dir")
            .arg(&dir)
            .args(["--dbfilename", "dump.rdb"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("cannot start redis-server to read the backup")?;
        let mut server = TempServer { child, dir, port };
        server.wait_loaded(rdb)?;
        Ok(server)
    }

    /// Until it answers PONG (it answers LOADING while it reads the file).
    fn wait_loaded(&mut self, rdb: &Path) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(600);
        while !deploy::local::ping("127.0.0.1", self.port) {
            if let Ok(Some(status)) = self.child.try_wait() {
                anyhow::bail!("redis-server could not load {} ({status})", rdb.display());
            }
            if Instant::now() > deadline {
                anyhow::bail!("redis-server took over 10 minutes to load {}", rdb.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TempServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
