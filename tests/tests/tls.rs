//! gRPC over TLS: a broker started with a certificate serves only TLS; the
//! client and the CLI connect with the CA that signed it; with a client CA
//! configured, only clients presenting a certificate it signed get in.

use std::path::Path;
use std::process::Command;

use brook_client::{Client, ConsumerConfig, StartFrom};
use brook_tests::{Broker, DEADLINE, brook_binary, eventually};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA, a server certificate for `localhost` and a client certificate, as PEM files in `dir`.
struct Pki {
    ca: Vec<u8>,
    client_cert: Vec<u8>,
    client_key: Vec<u8>,
}

fn make_pki(dir: &Path, ca_name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem().into_bytes(), key.serialize_pem().into_bytes())
    };
    let (server_cert, server_key) = leaf(vec!["localhost".into()]);
    let (client_cert, client_key) = leaf(vec!["billing-service".into()]);
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), &server_cert).unwrap();
    std::fs::write(dir.join("server.key"), &server_key).unwrap();
    Pki {
        ca: ca_cert.pem().into_bytes(),
        client_cert,
        client_key,
    }
}

fn tls_flags(dir: &Path, client_ca: bool) -> Vec<String> {
    let mut flags = vec![
        "--tls-cert".to_string(),
        dir.join("server.pem").display().to_string(),
        "--tls-key".to_string(),
        dir.join("server.key").display().to_string(),
    ];
    if client_ca {
        flags.push("--tls-client-ca".into());
        flags.push(dir.join("ca.pem").display().to_string());
    }
    flags
}

fn spawn_tls(data: &Path, pki_dir: &Path, client_ca: bool) -> Broker {
    let flags = tls_flags(pki_dir, client_ca);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Broker::spawn(data, &flags)
}

/// Connects over TLS (to 127.0.0.1, checking the certificate's `localhost` name).
async fn tls_client(
    b: &Broker,
    ca: &[u8],
    identity: Option<(&[u8], &[u8])>,
) -> brook_client::Result<Client> {
    let mut builder = Client::builder(format!("https://127.0.0.1:{}", b.grpc.port()))
        .tls_ca_pem(ca)
        .tls_domain("localhost")
        .retries(0, std::time::Duration::from_millis(10));
    if let Some((cert, key)) = identity {
        builder = builder.tls_identity(cert, key);
    }
    builder.connect().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_admits_only_clients_with_a_certificate_from_the_ca() {
    let pki_dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let pki = make_pki(pki_dir.path(), "Brook test CA");
    let broker = spawn_tls(data.path(), pki_dir.path(), true);
    let identity = Some((pki.client_cert.as_slice(), pki.client_key.as_slice()));

    // The broker recovers, then serves: poll until a TLS call succeeds.
    let mut client = None;
    eventually("the TLS broker answers", async || {
        let Ok(c) = tls_client(&broker, &pki.ca, identity).await else {
            return false;
        };
        let ok = c.admin().create_topic("orders", 2).await.is_ok();
        client = Some(c);
        ok
    })
    .await;
    let client = client.unwrap();
    let producer = client.producer(Default::default());
    let stored = producer
        .send("orders", Some("order-1"), "OrderPlaced")
        .await
        .unwrap()
        .await
        .unwrap();
    let mut consumer = client
        .consumer_assigned(
            ConsumerConfig {
                start_from: StartFrom::Earliest,
                ..ConsumerConfig::new("audit", &["orders"])
            },
            "orders",
            &[stored.partition],
        )
        .await
        .unwrap();
    let r = tokio::time::timeout(DEADLINE, consumer.recv())
        .await
        .expect("a record within the deadline")
        .unwrap();
    assert_eq!(&r.value.unwrap()[..], b"OrderPlaced");

    // No client certificate: refused.
    let without = match tls_client(&broker, &pki.ca, None).await {
        Ok(c) => c.admin().list_topics().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(without.is_err(), "a client without a certificate got in");

    // A client that trusts another CA refuses the broker's certificate.
    let other_dir = tempfile::tempdir().unwrap();
    let other = make_pki(other_dir.path(), "Some other CA");
    let wrong_ca = match tls_client(&broker, &other.ca, identity).await {
        Ok(c) => c.admin().list_topics().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(
        wrong_ca.is_err(),
        "the client accepted a certificate from an unknown CA"
    );

    // Plaintext HTTP/2 to a TLS port does not work.
    let plain = match Client::builder(format!("http://{}", broker.grpc))
        .retries(0, std::time::Duration::from_millis(10))
        .connect()
        .await
    {
        Ok(c) => c.admin().list_topics().await.map(|_| ()),
        Err(e) => Err(e),
    };
    assert!(plain.is_err(), "plaintext reached a TLS-only broker");
    assert!(broker.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_connects_over_tls_with_the_ca_file() {
    let pki_dir = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let pki = make_pki(pki_dir.path(), "Brook test CA");
    let broker = spawn_tls(data.path(), pki_dir.path(), false);
    eventually("the TLS broker answers", async || {
        match tls_client(&broker, &pki.ca, None).await {
            Ok(c) => c.admin().list_topics().await.is_ok(),
            Err(_) => false,
        }
    })
    .await;
    let url = format!("https://localhost:{}", broker.grpc.port());
    let ca = pki_dir.path().join("ca.pem");
    let run = |args: &[&str]| {
        Command::new(brook_binary())
            .args(args)
            .args(["--url", &url, "--tls-ca"])
            .arg(&ca)
            .output()
            .unwrap()
    };
    let created = run(&["topic", "create", "payments", "--partitions", "3"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let listed = run(&["topic", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("payments"));
    let bench = run(&[
        "bench",
        "--topic",
        "payments",
        "--json",
        "produce",
        "--messages",
        "2000",
        "--size",
        "100",
    ]);
    assert!(
        bench.status.success(),
        "{}",
        String::from_utf8_lossy(&bench.stderr)
    );
    assert!(String::from_utf8_lossy(&bench.stdout).contains("\"messages\":2000"));
    // Without the CA the system roots do not know this certificate.
    let untrusted = Command::new(brook_binary())
        .args(["topic", "list", "--url", &url])
        .output()
        .unwrap();
    assert!(!untrusted.status.success());
    assert!(
        String::from_utf8_lossy(&untrusted.stderr).contains("cannot reach the broker"),
        "{}",
        String::from_utf8_lossy(&untrusted.stderr)
    );
    assert!(broker.terminate().success());
}
