//! S3 object lock (WORM): a bucket's lock and default retention, a version's
//! retention and legal hold as a write asks for them, changed later, and shown.
//! A version a lock protects is not deleted for good by anything: the metadata
//! store refuses it (`meta::lock`), whoever asks.

use s3s::dto::*;
use s3s::{S3Error, S3Request, S3Response, S3Result, s3_error};

use super::{S3Front, error, timestamp};
use crate::meta::{BucketRow, LockDefault, LockMode, MetaError, Retention, VersionRow, now_ms};

fn missing_configuration() -> S3Error {
    s3_error!(InvalidRequest, "Bucket is missing Object Lock Configuration")
}

fn mode_of(m: &str) -> S3Result<LockMode> {
    m.parse().map_err(|_| s3_error!(InvalidArgument, "Unknown wormMode directive."))
}

fn ms(t: &Timestamp) -> i64 {
    let t = time::OffsetDateTime::from(t.clone());
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// The object lock a write into `bucket` asks for (`x-amz-object-lock-*`), or the
/// bucket's default retention; refused where the bucket has no object lock.
pub(super) fn requested(
    bucket: &BucketRow,
    mode: Option<&ObjectLockMode>,
    until: Option<&Timestamp>,
    hold: Option<&ObjectLockLegalHoldStatus>,
) -> S3Result<Retention> {
    let asked = mode.is_some() || until.is_some() || hold.is_some();
    let Some(default) = &bucket.object_lock else {
        return match asked {
            true => Err(missing_configuration()),
            false => Ok(Retention::default()),
        };
    };
    let now = now_ms();
    let mut lock = match (mode, until) {
        (None, None) => default.retention(now),
        (Some(m), Some(u)) => {
            let until = ms(u);
            if until <= now {
                return Err(s3_error!(InvalidArgument, "The retain until date must be in the future!"));
            }
            Retention { mode: Some(mode_of(m.as_str())?), until: Some(until), legal_hold: false }
        }
        _ => {
            return Err(s3_error!(
                InvalidArgument,
                "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
            ));
        }
    };
    lock.legal_hold = hold_of(hold)?;
    Ok(lock)
}

fn hold_of(hold: Option<&ObjectLockLegalHoldStatus>) -> S3Result<bool> {
    match hold.map(ObjectLockLegalHoldStatus::as_str) {
        None | Some(ObjectLockLegalHoldStatus::OFF) => Ok(false),
        Some(ObjectLockLegalHoldStatus::ON) => Ok(true),
        Some(_) => Err(s3_error!(InvalidArgument, "Legal Hold must be either of 'ON' or 'OFF'")),
    }
}

/// Sets the `x-amz-object-lock-*` fields of a GET or HEAD answer from a version.
macro_rules! set_lock {
    ($out:expr, $v:expr) => {{
        let lock = &$v.lock;
        if let (Some(m), Some(u)) = (lock.mode, lock.until) {
            $out.object_lock_mode = Some(ObjectLockMode::from(m.as_str().to_string()));
            $out.object_lock_retain_until_date = Some(super::timestamp(u));
        }
        if lock.legal_hold {
            $out.object_lock_legal_hold_status =
                Some(ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON));
        }
    }};
}
pub(super) use set_lock;

impl S3Front {
    /// Whether a request's `x-amz-bypass-governance-retention: true` counts: only
    /// for keys allowed to bypass (`skyshard admin keys create --bypass-governance`).
    pub(super) async fn bypass<T>(&self, req: &S3Request<T>, asked: Option<bool>) -> S3Result<bool> {
        if asked != Some(true) {
            return Ok(false);
        }
        let Some(c) = &req.credentials else { return Ok(false) };
        let key = self.gw.meta.access_key(&c.access_key).await.map_err(error::meta)?;
        Ok(key.is_some_and(|k| k.bypass_governance))
    }

    pub(super) async fn op_put_object_lock_configuration(
        &self,
        req: S3Request<PutObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<PutObjectLockConfigurationOutput>> {
        let i = &req.input;
        let bucket = self.bucket(&req.extensions, &i.bucket).await?;
        let c = i.object_lock_configuration.as_ref().ok_or_else(|| s3_error!(MalformedXML))?;
        if c.object_lock_enabled.as_ref().map(ObjectLockEnabled::as_str) != Some(ObjectLockEnabled::ENABLED) {
            return Err(s3_error!(MalformedXML, "ObjectLockEnabled must be Enabled."));
        }
        if bucket.object_lock.is_none() && bucket.versioning != Some(crate::meta::Versioning::Enabled) {
            return Err(s3_error!(
                InvalidBucketState,
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"
            ));
        }
        let mut default = LockDefault::default();
        if let Some(r) = c.rule.as_ref().and_then(|r| r.default_retention.as_ref()) {
            let mode = r.mode.as_ref().ok_or_else(|| s3_error!(MalformedXML, "A default retention needs a Mode."))?;
            mode_of(mode.as_str())?;
            let positive = |n: Option<i32>| match n {
                Some(n) if n > 0 => Ok(Some(n as u32)),
                Some(_) => {
                    Err(s3_error!(InvalidArgument, "Default retention period must be a positive integer value."))
                }
                None => Ok(None),
            };
            let (days, years) = (positive(r.days)?, positive(r.years)?);
            if days.is_some() == years.is_some() {
                return Err(s3_error!(MalformedXML, "A default retention has either Days or Years."));
            }
            default = LockDefault { mode: Some(mode.as_str().to_string()), days, years };
        }
        if !self.gw.meta.set_object_lock(&bucket.name, &default).await.map_err(error::meta)? {
            return Err(s3_error!(NoSuchBucket));
        }
        self.gw.publish_catalog().await;
        Ok(S3Response::new(PutObjectLockConfigurationOutput::default()))
    }

    pub(super) async fn op_get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        let bucket = self.bucket(&req.extensions, &req.input.bucket).await?;
        let Some(d) = bucket.object_lock else {
            let why = "Object Lock configuration does not exist for this bucket";
            return Err(error::coded("ObjectLockConfigurationNotFoundError", http::StatusCode::NOT_FOUND, why));
        };
        let rule = d.mode.map(|m| ObjectLockRule {
            default_retention: Some(DefaultRetention {
                mode: Some(ObjectLockRetentionMode::from(m)),
                days: d.days.map(|n| n as i32),
                years: d.years.map(|n| n as i32),
            }),
        });
        let c = ObjectLockConfiguration {
            object_lock_enabled: Some(ObjectLockEnabled::from_static(ObjectLockEnabled::ENABLED)),
            rule,
        };
        Ok(S3Response::new(GetObjectLockConfigurationOutput { object_lock_configuration: Some(c) }))
    }

    /// The version a retention or legal-hold request names, in a bucket with
    /// object lock.
    async fn locked_version(
        &self,
        extensions: &http::Extensions,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> S3Result<VersionRow> {
        let row = self.bucket(extensions, bucket).await?;
        if row.object_lock.is_none() {
            return Err(missing_configuration());
        }
        Ok(self.read_version(bucket, key, version_id).await?.version)
    }

    /// Changes a version's lock with `change`; the answer S3 gives when refused.
    async fn change_lock(
        &self,
        v: &VersionRow,
        change: impl Fn(&Retention) -> Result<Retention, MetaError>,
    ) -> S3Result<()> {
        let relock = |v: &VersionRow| Ok(VersionRow { lock: change(&v.lock)?, ..v.clone() });
        let done = crate::pipeline::restate(&self.gw.pipeline, &v.bucket, &v.key, v.id, relock).await;
        match done.map_err(error::pipeline)? {
            Some(_) => Ok(()),
            None => Err(s3_error!(NoSuchVersion, "The specified version does not exist.")),
        }
    }

    pub(super) async fn op_put_object_retention(
        &self,
        req: S3Request<PutObjectRetentionInput>,
    ) -> S3Result<S3Response<PutObjectRetentionOutput>> {
        let i = &req.input;
        let v = self.locked_version(&req.extensions, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        let r = i.retention.as_ref().ok_or_else(|| s3_error!(MalformedXML))?;
        let (mode, until) = match (&r.mode, &r.retain_until_date) {
            (Some(m), Some(u)) => (Some(mode_of(m.as_str())?), Some(ms(u))),
            (None, None) => (None, None),
            _ => return Err(s3_error!(MalformedXML, "A retention has both a Mode and a RetainUntilDate, or neither.")),
        };
        let now = now_ms();
        if until.is_some_and(|u| u <= now) {
            return Err(s3_error!(InvalidArgument, "The retain until date must be in the future!"));
        }
        let bypass = self.bypass(&req, i.bypass_governance_retention).await?;
        self.change_lock(&v, |old| old.with_retention(mode, until, now, bypass).map_err(MetaError::Locked)).await?;
        Ok(S3Response::new(PutObjectRetentionOutput::default()))
    }

    pub(super) async fn op_get_object_retention(
        &self,
        req: S3Request<GetObjectRetentionInput>,
    ) -> S3Result<S3Response<GetObjectRetentionOutput>> {
        let i = &req.input;
        let v = self.locked_version(&req.extensions, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        let (Some(mode), Some(until)) = (v.lock.mode, v.lock.until) else {
            let why = "The specified object does not have a ObjectLock configuration";
            return Err(error::coded("NoSuchObjectLockConfiguration", http::StatusCode::NOT_FOUND, why));
        };
        let retention = ObjectLockRetention {
            mode: Some(ObjectLockRetentionMode::from(mode.as_str().to_string())),
            retain_until_date: Some(timestamp(until)),
        };
        Ok(S3Response::new(GetObjectRetentionOutput { retention: Some(retention) }))
    }

    pub(super) async fn op_put_object_legal_hold(
        &self,
        req: S3Request<PutObjectLegalHoldInput>,
    ) -> S3Result<S3Response<PutObjectLegalHoldOutput>> {
        let i = &req.input;
        let v = self.locked_version(&req.extensions, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        let status = i.legal_hold.as_ref().and_then(|h| h.status.as_ref()).ok_or_else(|| s3_error!(MalformedXML))?;
        let on = hold_of(Some(status))?;
        self.change_lock(&v, |old| Ok(Retention { legal_hold: on, ..*old })).await?;
        Ok(S3Response::new(PutObjectLegalHoldOutput::default()))
    }

    pub(super) async fn op_get_object_legal_hold(
        &self,
        req: S3Request<GetObjectLegalHoldInput>,
    ) -> S3Result<S3Response<GetObjectLegalHoldOutput>> {
        let i = &req.input;
        let v = self.locked_version(&req.extensions, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        let status = match v.lock.legal_hold {
            true => ObjectLockLegalHoldStatus::ON,
            false => ObjectLockLegalHoldStatus::OFF,
        };
        let hold = ObjectLockLegalHold { status: Some(ObjectLockLegalHoldStatus::from_static(status)) };
        Ok(S3Response::new(GetObjectLegalHoldOutput { legal_hold: Some(hold) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(lock: Option<LockDefault>) -> BucketRow {
        BucketRow {
            name: "b".into(),
            policy: "default".into(),
            created_at: 0,
            tenant: "t".into(),
            tenant_number: 1,
            versioning: None,
            object_lock: lock,
        }
    }

    #[test]
    fn a_write_gets_the_lock_it_asks_for_or_the_buckets_default_or_a_refusal() {
        let later = Timestamp::from(std::time::SystemTime::now() + std::time::Duration::from_secs(3600));
        let past = Timestamp::from(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1000));
        let gov = ObjectLockMode::from_static(ObjectLockMode::GOVERNANCE);
        let on = ObjectLockLegalHoldStatus::from_static(ObjectLockLegalHoldStatus::ON);
        let code = |r: S3Result<Retention>| r.err().map(|e| e.code().as_str().to_string());
        assert_eq!(code(requested(&bucket(None), Some(&gov), Some(&later), None)).as_deref(), Some("InvalidRequest"));
        assert_eq!(requested(&bucket(None), None, None, None).ok(), Some(Retention::default()));
        let locked = bucket(Some(LockDefault { mode: Some("COMPLIANCE".into()), days: Some(1), years: None }));
        let r = requested(&locked, None, None, Some(&on)).expect("the default");
        assert_eq!((r.mode, r.legal_hold), (Some(LockMode::Compliance), true));
        let r = requested(&locked, Some(&gov), Some(&later), None).expect("asked");
        assert_eq!(r.mode, Some(LockMode::Governance));
        assert_eq!(code(requested(&locked, Some(&gov), None, None)).as_deref(), Some("InvalidArgument"));
        assert_eq!(code(requested(&locked, Some(&gov), Some(&past), None)).as_deref(), Some("InvalidArgument"));
        let odd = ObjectLockMode::from("FOREVER".to_string());
        assert_eq!(code(requested(&locked, Some(&odd), Some(&later), None)).as_deref(), Some("InvalidArgument"));
    }
}
