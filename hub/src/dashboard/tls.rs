//! The dashboard over HTTPS, with the broker's certificate: tokio-rustls connections served
//! by hyper, as axum's own `serve` does for plain TCP.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A TLS acceptor with the broker's certificate and key (made if missing).
pub(super) fn tls_acceptor(
    mqtt: &crate::broker::MqttConfig,
) -> std::io::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let fingerprint = crate::tls::ensure_cert(mqtt).map_err(std::io::Error::other)?;
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        std::io::Error::other(format!("dashboard TLS: {what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(&mqtt.tls_cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(&mqtt.tls_cert.display().to_string(), &e))?;
    let key = PrivateKeyDer::from_pem_file(&mqtt.tls_key)
        .map_err(|e| bad(&mqtt.tls_key.display().to_string(), &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate", &e))?;
    tracing::info!(cert = %mqtt.tls_cert.display(), %fingerprint, "the dashboard speaks HTTPS with the broker's certificate");
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` over TLS until `stop` fires: each connection's handshake (10 s at most),
/// then HTTP/1.1 with hyper (30 s to send the headers); at `stop` the connections finish
/// what they are answering (5 s at most) before this returns, as `axum::serve` does.
pub(super) async fn serve_tls(
    listener: tokio::net::TcpListener,
    app: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            _ = stop.cancelled() => {
                connections.close();
                if tokio::time::timeout(Duration::from_secs(5), connections.wait()).await.is_err() {
                    tracing::warn!("dashboard: connections still open after 5 s at shutdown");
                }
                return Ok(());
            }
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "dashboard: cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (acceptor, app, stop) = (acceptor.clone(), app.clone(), stop.clone());
        connections.spawn(async move {
            let tls =
                match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => tls,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "dashboard: TLS handshake failed");
                        return;
                    }
                    Err(_) => return,
                };
            let service = hyper_util::service::TowerToHyperService::new(app);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(30))
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
}
