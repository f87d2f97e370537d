//! `redkeep deploy render`, checked offline by the engines' own tools: the Kubernetes
//! manifests by `kubectl apply --dry-run=client` and by the schemas of `kubernetes-validate`
//! (PyPI, pinned in the Makefile), the Swarm stack by `docker-compose config`. A missing tool
//! fails the test with what to install: it never skips.
//!
//! kubectl's client-side dry run still asks an API server which resources the kinds map to
//! (discovery) and whether each object exists. No cluster runs here, so the test serves
//! kubectl a discovery document for the kinds the manifests use, and 404 for every object,
//! as an empty cluster answers; kubectl's schema download is off (`--validate=false`), the
//! schemas being `kubernetes-validate`'s part.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use assert_cmd::cargo::CommandCargoExt;

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `program args`, failing the test with an install hint when the tool is missing.
fn tool(program: &str, args: &[&str], install: &str) -> Output {
    match Command::new(program).args(args).output() {
        Ok(output) => output,
        Err(e) => panic!("`{program}` did not run ({e}): {install}"),
    }
}

fn redkeep(args: &[&str]) -> Output {
    Command::cargo_bin("redkeep").unwrap().args(args).output().unwrap()
}

fn render_kubernetes(dir: &Path, extra: &[&str]) {
    let mut args = vec!["deploy", "render", "kubernetes", "--out", dir.to_str().unwrap()];
    args.extend(extra);
    let output = redkeep(&args);
    assert!(output.status.success(), "{}", text(&output));
}

/// The API resources kubectl may ask about, as `(group/version, plural, kind, namespaced)`.
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("v1", "namespaces", "Namespace", false),
    ("v1", "configmaps", "ConfigMap", true),
    ("v1", "services", "Service", true),
    ("apps/v1", "statefulsets", "StatefulSet", true),
    ("apps/v1", "deployments", "Deployment", true),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", true),
];

/// The discovery answer for `path`, or None (404).
fn discovery(path: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    let list = |group_version: &str| {
        let resources: Vec<serde_json::Value> = RESOURCES
            .iter()
            .filter(|r| r.0 == group_version)
            .map(|(_, plural, kind, namespaced)| {
                json!({"name": plural, "singularName": kind.to_lowercase(), "kind": kind,
                       "namespaced": namespaced,
                       "verbs": ["create", "delete", "get", "list", "patch", "update"]})
            })
            .collect();
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
               "resources": resources})
    };
    match path {
        "/api" => Some(json!({"kind": "APIVersions", "versions": ["v1"]})),
        "/apis" => {
            let groups: Vec<serde_json::Value> = ["apps", "policy"]
                .iter()
                .map(|g| {
                    let version = json!({"groupVersion": format!("{g}/v1"), "version": "v1"});
                    json!({"name": g, "versions": [version.clone()], "preferredVersion": version})
                })
                .collect();
            Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}))
        }
        "/api/v1" => Some(list("v1")),
        "/apis/apps/v1" => Some(list("apps/v1")),
        "/apis/policy/v1" => Some(list("policy/v1")),
        _ => None,
    }
}

/// Serves discovery, and 404 for everything else, on a port of its own until the test ends.
fn start_discovery_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&stream);
                let mut request = String::new();
                reader.read_line(&mut request).ok();
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path);
                let (status, body) = match discovery(path) {
                    Some(body) => ("200 OK", body),
                    None => (
                        "404 Not Found",
                        serde_json::json!({
                            "kind": "Status", "apiVersion": "v1", "status": "Failure",
                            "reason": "NotFound", "code": 404, "message": format!("{path} not found"),
                        }),
                    ),
                };
                let body = body.to_string();
                let mut stream = &stream;
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    format!("http://{addr}")
}

fn kubectl_dry_run(dir: &Path) -> Output {
    let server = start_discovery_server();
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("config");
    std::fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\n").unwrap();
    let cache = home.path().join("cache");
    tool(
        "kubectl",
        &[
            "--kubeconfig",
            kubeconfig.to_str().unwrap(),
            "--server",
            &server,
            "--cache-dir",
            cache.to_str().unwrap(),
            "apply",
            "--dry-run=client",
            "--validate=false",
            "-o",
            "name",
            "-f",
            dir.to_str().unwrap(),
        ],
        "install kubectl (https://kubernetes.io/docs/tasks/tools/) and run make test again",
    )
}

fn kubernetes_validate(dir: &Path) -> Output {
    let files: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path().display().to_string()).collect();
    let mut args = vec!["--strict", "--quiet"];
    args.extend(files.iter().map(String::as_str));
    tool("kubernetes-validate", &args, "run `make deps` (pip install kubernetes-validate==1.37.0)")
}

#[test]
fn kubernetes_manifests_pass_kubectl_dry_run_and_schema_validation() {
    let dir = tempfile::tempdir().unwrap();
    render_kubernetes(dir.path(), &["--masters", "4", "--replicas", "2", "--namespace", "cache"]);

    let applied = kubectl_dry_run(dir.path());
    assert!(applied.status.success(), "kubectl: {}", text(&applied));
    let names = String::from_utf8_lossy(&applied.stdout);
    for object in [
        "namespace/cache",
        "configmap/redkeep-redis-config",
        "service/redkeep-nodes",
        "statefulset.apps/redkeep-s3",
        "poddisruptionbudget.policy/redkeep-s0",
        "deployment.apps/redkeep-proxy",
        "service/redkeep",
        "deployment.apps/redkeep-controller",
    ] {
        assert!(names.lines().any(|l| l == object), "{object} not applied: {names}");
    }
    assert_eq!(names.lines().count(), 3 + 4 * 2 + 3 + 1, "{names}");

    let validated = kubernetes_validate(dir.path());
    assert!(validated.status.success(), "kubernetes-validate: {}", text(&validated));
}

#[test]
fn the_validators_reject_a_broken_manifest() {
    let dir = tempfile::tempdir().unwrap();
    render_kubernetes(dir.path(), &[]);
    // A field of the wrong type, and a field Kubernetes does not have.
    let path = dir.path().join("30-shard-1.yaml");
    let original = std::fs::read_to_string(&path).unwrap();
    let broken = original
        .replace("  replicas: 2\n", "  replicas: \"two\"\n")
        .replace("  serviceName:", "  serviceNames:");
    assert_ne!(broken, original);
    std::fs::write(&path, broken).unwrap();
    let validated = kubernetes_validate(dir.path());
    assert!(!validated.status.success(), "{}", text(&validated));
    assert!(text(&validated).contains("30-shard-1.yaml"), "{}", text(&validated));

    // A document kubectl cannot map to a resource.
    std::fs::write(&path, original.replace("kind: \"StatefulSet\"", "kind: \"StatefulSets\""))
        .unwrap();
    let applied = kubectl_dry_run(dir.path());
    assert!(!applied.status.success(), "{}", text(&applied));
}

fn compose_config(file: &Path) -> Output {
    tool(
        "docker-compose",
        &["-f", file.to_str().unwrap(), "config", "--quiet"],
        "run `make deps` (apt-get install docker-compose)",
    )
}

#[test]
fn the_swarm_stack_passes_docker_compose_config() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("stack.yml");
    let output = redkeep(&[
        "deploy",
        "render",
        "swarm",
        "--replicas",
        "2",
        "--hosts",
        "4",
        "--out",
        file.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output));
    let checked = compose_config(&file);
    assert!(checked.status.success(), "docker-compose config: {}", text(&checked));

    let stack = std::fs::read_to_string(&file).unwrap();
    // A key the compose schema does not have.
    std::fs::write(&file, stack.replace("placement:", "placment:")).unwrap();
    let checked = compose_config(&file);
    assert!(!checked.status.success(), "a misspelt key passed: {}", text(&checked));
    assert!(text(&checked).contains("placment"), "{}", text(&checked));
}

#[test]
fn bad_render_flags_get_a_clear_error_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("manifests");
    let output = redkeep(&[
        "deploy",
        "render",
        "kubernetes",
        "--masters",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!output.status.success());
    assert!(text(&output).contains("at least 3 masters"), "{}", text(&output));
    assert!(!out.exists());
    let file = dir.path().join("stack.yml");
    let output =
        redkeep(&["deploy", "render", "swarm", "--replicas", "3", "--out", file.to_str().unwrap()]);
    assert!(text(&output).contains("--hosts 4 or more"), "{}", text(&output));
    assert!(!file.exists());
}

/// [`redkeep`] off the async test's threads.
async fn redkeep_async(args: Vec<String>) -> Output {
    let run = move || redkeep(&args.iter().map(String::as_str).collect::<Vec<_>>());
    tokio::task::spawn_blocking(run).await.unwrap()
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_forms_empty_nodes_and_the_probe_says_when_they_are_ready() {
    let cluster = deploy::testing::TestCluster::start_blank(3, 0).await;
    let nodes = cluster.addrs().join(",");
    let probe = |args: &[&str]| redkeep_async(strings(&[&["deploy", "probe"], args].concat()));
    let first = cluster.addrs()[0].clone();

    let blank = probe(&["--node", &first]).await;
    assert!(!blank.status.success(), "an empty node is not ready: {}", text(&blank));
    assert!(text(&blank).contains("cluster_state:fail"), "{}", text(&blank));
    let live = probe(&["--live", "--node", &first]).await;
    assert!(live.status.success(), "{}", text(&live));

    let dry = redkeep_async(strings(&[
        "controller",
        "--nodes",
        &nodes,
        "--masters",
        "3",
        "--replicas",
        "0",
        "--dry-run",
    ]))
    .await;
    assert!(dry.status.success(), "{}", text(&dry));
    assert!(text(&dry).contains("would: form a cluster"), "{}", text(&dry));
    let still = probe(&["--node", &first]).await;
    assert!(!still.status.success(), "a dry run changes nothing: {}", text(&still));

    let once = redkeep_async(strings(&[
        "controller",
        "--nodes",
        &nodes,
        "--masters",
        "3",
        "--replicas",
        "0",
        "--once",
    ]))
    .await;
    assert!(once.status.success(), "{}", text(&once));
    assert!(text(&once).contains("done: form a cluster"), "{}", text(&once));
    cluster::ops::wait_healthy(&cluster.addrs(), std::time::Duration::from_secs(60)).await.unwrap();
    let ready = probe(&["--node", &first]).await;
    assert!(ready.status.success(), "{}", text(&ready));

    let again = redkeep_async(strings(&[
        "controller",
        "--nodes",
        &nodes,
        "--masters",
        "3",
        "--replicas",
        "0",
        "--once",
    ]))
    .await;
    assert!(text(&again).contains("the cluster is whole: nothing to do"), "{}", text(&again));

    let nobody = probe(&["--live", "--node", "127.0.0.1:1"]).await;
    assert!(!nobody.status.success());
    assert!(text(&nobody).contains("cannot connect"), "{}", text(&nobody));
}
