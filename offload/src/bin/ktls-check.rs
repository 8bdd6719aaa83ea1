//! Kernel TLS, for real: a rustls handshake over loopback, then both ends (and each
//! end against a user-space rustls peer) switched to kernel TLS, moving and checking
//! 8 MiB each way. Prints `KTLS-CHECK PASS` or `KTLS-CHECK FAIL: why`.
//!
//! The machines this project is built on have no kernel TLS, so `scripts/ktls-vm.sh`
//! builds this statically and runs it in a QEMU guest booted from Debian's kernel
//! with the `tls` module loaded.

use std::process::ExitCode;

use offload::meter::Meters;
use offload::tls::loopback::Loopback;
use offload::tls::{TlsEngine, TlsKind};

const LEN: usize = 8 << 20;

async fn run() -> Result<(), String> {
    offload::tls::ktls::trial()?;
    println!("ktls-check: the kernel accepts TCP_ULP \"tls\"");
    for (server, client) in
        [(TlsKind::Ktls, TlsKind::Ktls), (TlsKind::Ktls, TlsKind::Rustls), (TlsKind::Rustls, TlsKind::Ktls)]
    {
        let (sm, cm) = (Meters::default(), Meters::default());
        let lo =
            Loopback::new(TlsEngine::new(server, &sm), TlsEngine::new(client, &cm), None).map_err(|e| e.to_string())?;
        let x = lo.exchange(LEN, 64 << 10).await.map_err(|e| format!("{}/{}: {e}", server.name(), client.name()))?;
        for (side, meters, kind) in [("server", &sm, server), ("client", &cm, client)] {
            for job in ["tls-send", "tls-recv"] {
                let u = meters.snapshot().into_iter().find(|u| u.job == job).ok_or("meter missing")?;
                if u.bytes != LEN as u64 || u.engine != kind.name() {
                    return Err(format!(
                        "{side} {job}: {} bytes through {}, expected {LEN} through {}",
                        u.bytes,
                        u.engine,
                        kind.name()
                    ));
                }
            }
        }
        println!(
            "ktls-check: server {} / client {}: {} MiB each way checked (up {:.0} MB/s, down {:.0} MB/s under emulation)",
            server.name(),
            client.name(),
            LEN >> 20,
            LEN as f64 / x.upload.as_secs_f64() / 1e6,
            LEN as f64 / x.download.as_secs_f64() / 1e6,
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            println!("KTLS-CHECK FAIL: runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run()) {
        Ok(()) => {
            println!("KTLS-CHECK PASS");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("KTLS-CHECK FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}
