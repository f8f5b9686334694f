//! The direct client over TLS, against a loopback server with the test certificate, which
//! this client alone is told to trust (pinned), so the TLS stream, the reuse of a TLS
//! connection and its idle check are exercised for real.

use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::{self, CryptoProvider};
use tokio_rustls::rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime,
};
use tokio_rustls::rustls::{self, ClientConfig, DigitallySignedStruct, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::*;

/// The test certificate (self-signed, for 127.0.0.1) and its key.
const CERT: &[u8] = include_bytes!("../../../../tests/fixtures/tls/self_signed_cert.der");
const KEY: &[u8] = include_bytes!("../../../../tests/fixtures/tls/self_signed_key.der");

/// Trusts exactly the test certificate.
#[derive(Debug)]
struct Pinned(Arc<CryptoProvider>);

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match end_entity.as_ref() == CERT {
            true => Ok(ServerCertVerified::assertion()),
            false => Err(rustls::Error::General("not the pinned certificate".into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The ring crypto provider, as the gateway uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(crypto::ring::default_provider())
}

/// A direct client trusting only the test certificate.
fn client(listener: &Listener) -> DirectClient {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned(provider())))
        .with_no_client_auth();
    let tls = TlsConnector::from(Arc::new(config));
    DirectClient::with_tls(&listener.authority, Some(tls), Duration::from_secs(2))
}

/// The server side with the test certificate.
fn acceptor() -> TlsAcceptor {
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(KEY.to_vec()));
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(CERT.to_vec())], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn a_tls_connection_carries_several_requests() {
    let listener = Listener::bind().await;
    let acceptor = acceptor();
    listener.spawn(move |stream| {
        let acceptor = acceptor.clone();
        async move { answer_each(acceptor.accept(stream).await.unwrap(), OK_HELLO).await }
    });
    let client = client(&listener);
    for _ in 0..3 {
        let (response, _) = client.send(request(Method::POST, "a=1")).await.unwrap();
        assert_eq!(body_of(response).await.unwrap(), "{\"a\":1}");
    }
    assert_eq!(listener.accepted(), 1);
}

#[tokio::test]
async fn a_tls_connection_the_server_closed_while_idle_is_replaced() {
    let listener = Listener::bind().await;
    let acceptor = acceptor();
    listener.spawn(move |stream| {
        let acceptor = acceptor.clone();
        async move {
            let mut tls = acceptor.accept(stream).await.unwrap();
            read_request(&mut tls).await.unwrap();
            tls.write_all(OK_HELLO.as_bytes()).await.unwrap();
            tls.shutdown().await.unwrap();
        }
    });
    let client = client(&listener);
    for _ in 0..2 {
        let (response, _) = client.send(request(Method::POST, "a=1")).await.unwrap();
        assert_eq!(body_of(response).await.unwrap(), "{\"a\":1}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(listener.accepted(), 2);
}
