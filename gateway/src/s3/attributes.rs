//! GetObjectAttributes: what HEAD says of an object, and its parts, in one answer.

use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::checksum::set_checksum;
use super::{S3Front, quoted, sse_c, timestamp};

impl S3Front {
    pub(super) async fn op_get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let i = &req.input;
        let (bucket, v, parts) = self.version(&req.extensions, &i.bucket, &i.key, i.version_id.as_deref()).await?;
        let customer = sse_c::customer_key_of!(self, i)?;
        sse_c::admit(v.attrs.customer_key.as_deref(), customer.as_deref())?;
        // One header, `x-amz-object-attributes: ETag,Checksum`, as clients send it,
        // may arrive as one element.
        let wants = |a: &str| i.object_attributes.iter().flat_map(|x| x.as_str().split(',')).any(|x| x.trim() == a);
        let mut out = GetObjectAttributesOutput {
            last_modified: Some(timestamp(v.last_modified)),
            version_id: super::versioning::shown(&bucket, &v),
            ..Default::default()
        };
        if wants(ObjectAttributes::ETAG) {
            out.e_tag = Some(quoted(&v.etag));
        }
        if wants(ObjectAttributes::OBJECT_SIZE) {
            out.object_size = Some(v.size as i64);
        }
        if wants(ObjectAttributes::STORAGE_CLASS) {
            out.storage_class = Some(StorageClass::from_static(StorageClass::STANDARD));
        }
        if wants(ObjectAttributes::CHECKSUM)
            && let (Some(alg), Some(value)) = (v.attrs.checksum_algorithm, v.checksum_value.clone())
        {
            let mut c =
                Checksum { checksum_type: v.checksum_type.clone().map(ChecksumType::from), ..Default::default() };
            set_checksum!(c, alg, value);
            out.checksum = Some(c);
        }
        if wants(ObjectAttributes::OBJECT_PARTS) && v.part_count > 1 {
            let max = i.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
            let after = i.part_number_marker.and_then(|m| u32::try_from(m).ok()).unwrap_or(0);
            let rest: Vec<_> = parts.iter().filter(|(n, _)| *n > after).collect();
            let page: Vec<ObjectPart> = rest
                .iter()
                .take(max)
                .map(|(n, r)| ObjectPart {
                    part_number: Some(*n as i32),
                    size: Some((r.end - r.start) as i64),
                    ..Default::default()
                })
                .collect();
            let truncated = rest.len() > max;
            out.object_parts = Some(GetObjectAttributesParts {
                total_parts_count: Some(v.part_count as i32),
                part_number_marker: i.part_number_marker,
                next_part_number_marker: page.last().and_then(|p| p.part_number).filter(|_| truncated),
                max_parts: Some(max as i32),
                is_truncated: Some(truncated),
                parts: Some(page),
            });
        }
        Ok(S3Response::new(out))
    }
}
