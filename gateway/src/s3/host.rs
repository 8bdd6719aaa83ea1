//! Virtual-host-style addressing: `bucket.<domain>[:port]` names the bucket; any
//! other host (an IP address, the bare domain, a name under no configured domain)
//! is path style. Unlike s3s's `MultiDomain`, a host never becomes a bucket name
//! by itself, and the port never matters.

use s3s::S3Result;
use s3s::host::{S3Host, VirtualHost};

/// The configured base domains.
#[derive(Debug, Clone)]
pub struct Domains(Vec<String>);

impl Domains {
    /// Base domains, lower-cased, without ports.
    pub fn new(domains: &[String]) -> Self {
        Self(domains.iter().map(|d| d.trim_end_matches('.').to_ascii_lowercase()).collect())
    }

    /// The bucket a host header names, if any.
    pub fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = match host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        self.0.iter().find_map(|d| {
            let bucket = name.len().checked_sub(d.len() + 1).map(|n| &name[..n])?;
            (name[bucket.len()..].starts_with('.')
                && name[bucket.len() + 1..].eq_ignore_ascii_case(d)
                && !bucket.is_empty())
            .then_some(bucket)
        })
    }
}

impl S3Host for Domains {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(bucket) => VirtualHost::new(host).with_bucket(bucket),
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_from_hosts() {
        let d = Domains::new(&["s3.example.com".into(), "Store.Local.".into()]);
        assert_eq!(d.bucket_of("photos.s3.example.com"), Some("photos"));
        assert_eq!(d.bucket_of("photos.s3.example.com:9000"), Some("photos"));
        assert_eq!(d.bucket_of("my.dotted.bucket.store.local:1"), Some("my.dotted.bucket"));
        assert_eq!(d.bucket_of("s3.example.com:9000"), None, "the bare domain is path style");
        assert_eq!(d.bucket_of("127.0.0.1:9000"), None);
        assert_eq!(d.bucket_of("photos.s3.example.org"), None);
        assert_eq!(d.bucket_of("xs3.example.com"), None);
    }
}
