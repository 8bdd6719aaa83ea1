use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use super::*;
use crate::meter::Meters;

struct Pki {
    server: ServerConfig,
    client: ClientConfig,
}

fn pki() -> Pki {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params").self_signed(&key).expect("cert");
    let der = CertificateDer::from(cert.der().to_vec());
    let server = server_builder()
        .with_no_client_auth()
        .with_single_cert(vec![der.clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
        .expect("server config");
    let mut roots = rustls::RootCertStore::empty();
    roots.add(der).expect("root");
    let client = client_builder().with_root_certificates(roots).with_no_client_auth();
    Pki { server, client }
}

async fn exchange(server: TlsKind, client: TlsKind, len: usize) -> std::io::Result<(Arc<Meters>, Arc<Meters>)> {
    let (sm, cm) = (Arc::new(Meters::default()), Arc::new(Meters::default()));
    let lo = loopback::Loopback::new(TlsEngine::new(server, &sm), TlsEngine::new(client, &cm), None)?;
    lo.exchange(len, 16 << 10).await?;
    Ok((sm, cm))
}

fn bytes(meters: &Meters, job: &str) -> u64 {
    meters.snapshot().iter().filter(|u| u.job == job).map(|u| u.bytes).sum()
}

#[tokio::test]
async fn rustls_moves_bytes_and_meters_them() {
    let len = 3 << 20;
    let (sm, cm) = exchange(TlsKind::Rustls, TlsKind::Rustls, len).await.expect("exchange");
    for m in [&sm, &cm] {
        assert_eq!(bytes(m, "tls-send"), len as u64);
        assert_eq!(bytes(m, "tls-recv"), len as u64);
        let usage = m.snapshot();
        assert!(usage.iter().all(|u| u.engine == "rustls"));
        assert!(usage.iter().all(|u| u.busy_ns > 0), "{usage:?}");
    }
}

#[tokio::test]
async fn small_records_and_odd_write_sizes_move_intact() {
    let (sm, cm) = (Meters::default(), Meters::default());
    let lo =
        loopback::Loopback::new(TlsEngine::new(TlsKind::Rustls, &sm), TlsEngine::new(TlsKind::Rustls, &cm), Some(512))
            .expect("loopback");
    lo.exchange(100_003, 777).await.expect("exchange");
}

#[tokio::test]
async fn ktls_works_where_the_kernel_has_it_and_fails_cleanly_where_not() {
    match ktls::trial() {
        Ok(()) => {
            // Kernel TLS on both ends, and against a plain rustls peer either way.
            for (s, c) in
                [(TlsKind::Ktls, TlsKind::Ktls), (TlsKind::Ktls, TlsKind::Rustls), (TlsKind::Rustls, TlsKind::Ktls)]
            {
                let (sm, cm) = exchange(s, c, 1 << 20).await.expect("kTLS exchange");
                assert_eq!(bytes(&sm, "tls-recv"), 1 << 20);
                assert_eq!(bytes(&cm, "tls-recv"), 1 << 20);
            }
        }
        Err(reason) => {
            assert!(reason.contains("tcp_available_ulp"), "{reason}");
            let err = exchange(TlsKind::Rustls, TlsKind::Ktls, 1024).await.expect_err("no kernel TLS here");
            assert!(err.to_string().contains("TCP_ULP"), "{err}");
        }
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let Pki { server, .. } = pki();
    let Pki { client, .. } = pki(); // trusts another certificate
    let meters = Meters::default();
    let engine = TlsEngine::new(TlsKind::Rustls, &meters);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let srv = engine.clone();
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        srv.accept(tcp, Arc::new(server)).await.map(|_| ())
    });
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let err = engine
        .connect(tcp, ServerName::try_from("localhost").expect("name"), Arc::new(client))
        .await
        .expect_err("an unknown issuer must be refused");
    assert!(err.to_string().contains("UnknownIssuer") || err.to_string().contains("certificate"), "{err}");
    assert!(server_task.await.expect("join").is_err(), "the server saw the alert");
}
