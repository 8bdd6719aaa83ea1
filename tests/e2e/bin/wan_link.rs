//! The WAN emulator (`e2e::wan`) as a process of its own, for benchmarks:
//! `wan-link UPSTREAM_PORT` forwards a port of its own (printed as `port N`) to
//! `127.0.0.1:UPSTREAM_PORT`. Each line on standard input sets the link's
//! conditions from then on, as `key=value` words (unnamed keys go back to their
//! defaults):
//!
//! `latency=20ms jitter=5ms up=5000000 down=5000000 first_byte=2s stalled=1`
//!
//! (rates in bytes per second). `moved` prints the bytes moved each way so far.
//! It ends with its standard input.

use std::io::BufRead;
use std::time::Duration;

use e2e::wan::{Conditions, Link};

fn duration(v: &str) -> Result<Duration, String> {
    let (n, unit) = v.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((v, "s"), |i| v.split_at(i));
    let n: f64 = n.parse().map_err(|_| format!("not a duration: {v}"))?;
    let secs = match unit {
        "ms" => n / 1e3,
        "us" => n / 1e6,
        "s" => n,
        _ => return Err(format!("not a duration: {v}")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn conditions(line: &str) -> Result<Conditions, String> {
    let mut c = Conditions::default();
    for word in line.split_whitespace() {
        let (k, v) = word.split_once('=').ok_or_else(|| format!("not key=value: {word}"))?;
        let rate = || v.parse::<u64>().map_err(|_| format!("not a rate: {v}"));
        match k {
            "latency" => c.latency = duration(v)?,
            "jitter" => c.jitter = duration(v)?,
            "first_byte" => c.first_byte_delay = duration(v)?,
            "up" => c.up_rate = Some(rate()?).filter(|&r| r > 0),
            "down" => c.down_rate = Some(rate()?).filter(|&r| r > 0),
            "stalled" => c.stalled = v == "1",
            "stall_after" => c.stall_after = Some(rate()?),
            "reset_after" => c.reset_after = Some(rate()?),
            _ => return Err(format!("unknown condition: {k}")),
        }
    }
    Ok(c)
}

fn main() {
    let Some(upstream) = std::env::args().nth(1).and_then(|p| p.parse::<u16>().ok()) else {
        eprintln!("usage: wan-link UPSTREAM_PORT (then conditions on standard input)");
        std::process::exit(2);
    };
    let link = Link::start(upstream);
    println!("port {}", link.port);
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let line = line.trim();
        if line == "moved" {
            let m = link.moved();
            println!("up {} down {}", m.up, m.down);
            continue;
        }
        match conditions(line) {
            Ok(c) => {
                link.set(c);
                println!("ok");
            }
            Err(e) => println!("error: {e}"),
        }
    }
}
