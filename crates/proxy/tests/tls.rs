//! TLS on the client listener, with certificates made for the test (rcgen) and the real
//! `redis-cli --tls` as the client: commands work through it, a client certificate of another
//! CA is refused, a client that does not trust the proxy's CA gives up, and a plain-RESP
//! client on the TLS port gets a clean error.

mod common;

use std::path::Path;
use std::process::Output;

use common::pki::{Ca, Pki, Usage};
use common::{Conn, start_proxy};
use deploy::testing::TestCluster;
use proxy::tls::{ClientAuth, PLAINTEXT_ERROR, TlsConfig};

async fn redis_cli(port: u16, tls_args: &[&Path], command: &[&str]) -> Output {
    let mut cli = tokio::process::Command::new("redis-cli");
    cli.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--tls"]);
    for pair in tls_args.chunks(2) {
        cli.arg(pair[0]).arg(pair[1]);
    }
    cli.args(command);
    tokio::time::timeout(std::time::Duration::from_secs(30), cli.output())
        .await
        .expect("redis-cli ends")
        .expect("redis-cli runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_over_tls_through_the_proxy_and_wrong_certificates_refused() {
    let pki = Pki::new();
    let ca = Ca::new("redkeep test CA");
    let other = Ca::new("another CA");
    let ca_path = pki.write_ca("ca", &ca);
    let other_path = pki.write_ca("other", &other);
    let (server_cert, server_key) = pki.leaf("proxy", &ca, &[Usage::ServerAuth]);
    let (client_cert, client_key) = pki.leaf("client", &ca, &[Usage::ClientAuth]);
    let (stranger_cert, stranger_key) = pki.leaf("stranger", &other, &[Usage::ClientAuth]);

    let cluster = TestCluster::start(3, 0).await;
    let proxy = start_proxy(&cluster, |c| {
        c.security.tls = Some(TlsConfig {
            cert: server_cert.clone(),
            key: server_key.clone(),
            ca: Some(ca_path.clone()),
            client_auth: ClientAuth::Required,
        });
    })
    .await;
    let port = proxy.local_addr.port();
    let cacert = Path::new("--cacert");
    let (cert_flag, key_flag) = (Path::new("--cert"), Path::new("--key"));
    let trusted = [cacert, &ca_path, cert_flag, &client_cert, key_flag, &client_key];

    let set = redis_cli(port, &trusted, &["SET", "tls:key", "over tls"]).await;
    assert_eq!(text(&set).trim(), "OK", "{set:?}");
    let get = redis_cli(port, &trusted, &["GET", "tls:key"]).await;
    assert_eq!(text(&get).trim(), "over tls");
    // A pipeline of many commands (replies encrypted as they come, from several nodes).
    let many: Vec<String> = (0..200).map(|i| format!("SET tls:{i} {i}")).collect();
    let mut cli = std::process::Command::new("redis-cli");
    cli.args(["-p", &port.to_string(), "--tls", "--cacert"]).arg(&ca_path);
    cli.arg("--cert").arg(&client_cert).arg("--key").arg(&client_key);
    cli.stdin(std::process::Stdio::piped()).stdout(std::process::Stdio::piped());
    let mut child = cli.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all((many.join("\n") + "\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout).matches("OK").count(), 200);

    // A client certificate of another CA: refused in the handshake.
    let stranger = [cacert, &ca_path, cert_flag, &stranger_cert, key_flag, &stranger_key];
    let refused = redis_cli(port, &stranger, &["GET", "tls:key"]).await;
    assert!(!text(&refused).contains("over tls"), "{}", text(&refused));
    // No client certificate, where one is required: refused too.
    let anonymous = redis_cli(port, &[cacert, &ca_path], &["GET", "tls:key"]).await;
    assert!(!text(&anonymous).contains("over tls"), "{}", text(&anonymous));
    // A client that trusts another CA does not accept the proxy's certificate.
    let distrust = [cacert, &other_path, cert_flag, &client_cert, key_flag, &client_key];
    let distrusted = redis_cli(port, &distrust, &["GET", "tls:key"]).await;
    assert!(!text(&distrusted).contains("over tls"), "{}", text(&distrusted));
    assert!(text(&distrusted).to_lowercase().contains("certificate"), "{}", text(&distrusted));

    // Plain RESP on the TLS port: one clear error line, then the proxy closes.
    let mut plain = Conn::connect(proxy.local_addr).await;
    plain.send_raw(b"*1\r\n$4\r\nPING\r\n").await;
    let reply = plain.reply_or_eof().await.expect("an error line");
    let expected = String::from_utf8_lossy(&PLAINTEXT_ERROR[1..PLAINTEXT_ERROR.len() - 2]);
    assert_eq!(common::error_text(&reply), expected);
    assert!(plain.reply_or_eof().await.is_none(), "closed after the error");
    // The proxy still serves TLS clients after all that.
    let after = redis_cli(port, &trusted, &["GET", "tls:key"]).await;
    assert_eq!(text(&after).trim(), "over tls");
    proxy.shutdown().await;
}
