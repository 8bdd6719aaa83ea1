//! The metadata store's guarantees, on SQLite always and on PostgreSQL when
//! `SKYSHARD_TEST_POSTGRES_URL` points at a server (the test script starts one):
//! each test gets a database of its own.

use super::*;

/// A fresh store: a temporary SQLite file, or a new PostgreSQL database.
pub(crate) async fn stores() -> Vec<MetaStore> {
    let mut out = Vec::new();
    let dir = crate::testing::scratch_dir(&format!("meta-{}", rand_suffix()));
    out.push(MetaStore::connect(&format!("sqlite://{}", dir.join("meta.db").display())).await.expect("sqlite"));
    if let Ok(admin) = std::env::var("SKYSHARD_TEST_POSTGRES_URL") {
        out.push(fresh_postgres(&admin).await);
    }
    out
}

fn rand_suffix() -> String {
    let mut b = [0u8; 6];
    offload::random::SecureRandom::fill(&offload::random::SystemRandom::new(), &mut b).expect("random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Creates a database named after the test on the server `admin` points at.
pub(crate) async fn fresh_postgres(admin: &str) -> MetaStore {
    sqlx::any::install_default_drivers();
    let name = format!("skyshard_test_{}", rand_suffix());
    let pool = AnyPoolOptions::new().max_connections(1).connect(admin).await.expect("postgres admin connection");
    // The name is ours: a fixed prefix and hex digits.
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.expect("create database");
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin, |(b, _)| b);
    MetaStore::connect(&format!("{base}/{name}")).await.expect("postgres")
}

use codec::{CodingParams, WrappedKey};

/// Seal number `n`'s id.
fn sid(n: u8) -> SealId {
    SealId([n; 16])
}

/// A pending seal of 10 bytes, 2-of-3, fragments at loc0..loc2.
fn seal(id: SealId) -> Seal {
    let mut wrapped = [7u8; codec::seal::WRAPPED_KEY_LEN];
    wrapped[0] = 1; // the format byte
    Seal {
        id,
        state: SealState::Pending,
        size: 10,
        params: CodingParams::new(2, 3, 4096).expect("params"),
        compression: Compression::None,
        sealed_lens: None,
        wrapped_key: WrappedKey::from_bytes(&wrapped).expect("wrapped key"),
        created_at: now_ms(),
        slots: 0,
        fragments: (0..3)
            .map(|i| Fragment {
                index: i,
                location: format!("loc{i}"),
                name: format!("{id}/{i}"),
                size: 0,
                state: FragmentState::Pending,
                verified_at: 0,
            })
            .collect(),
    }
}

fn landed() -> SealFinish {
    SealFinish { stored: vec![(0, 5), (1, 5)], missing: vec![2], sealed_lens: None, repair_after: 0 }
}

/// Increasing "recorded at" times, one per version made (as each write records
/// its manifest before it commits).
fn recorded_now() -> i64 {
    static LAST: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let now = now_ms();
    let prev = LAST.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
    if prev >= now { LAST.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 } else { now }
}

fn version(id: u8, bucket: &str, key: &[u8], etag: &str) -> VersionRow {
    VersionRow {
        id: VersionId([id; 16]),
        bucket: bucket.into(),
        key: key.to_vec(),
        size: 10,
        etag: etag.into(),
        last_modified: now_ms(),
        attrs: ObjectAttrs {
            content_type: Some("text/plain".into()),
            headers: BTreeMap::from([("cache-control".into(), "no-cache".into())]),
            user_metadata: BTreeMap::from([("colour".into(), "blue".into())]),
            checksum_algorithm: Some(ChecksumAlgorithm::Crc32),
            customer_key: None,
            tags: BTreeMap::from([("project".into(), "blue".into())]),
        },
        checksum_value: Some("AAAAAA==".into()),
        checksum_type: Some("FULL_OBJECT".into()),
        part_count: 1,
        null_version: true,
        delete_marker: false,
        recorded_at: recorded_now(),
        lock: Retention::default(),
    }
}

/// Writes a one-part object of seal `n` (version id `n` too).
async fn put(m: &MetaStore, bucket: &str, key: &[u8], n: u8) -> SealId {
    let s = sid(n);
    m.insert_pending_seal(&seal(s), "node-a").await.expect("pending");
    let part = PartRow { number: 1, seal_id: s, offset: 0, size: 10, member: None };
    m.commit_object(s, &landed(), &version(n, bucket, key, &format!("etag{n}")), &part, None, &WriteCondition::Any)
        .await
        .expect("commit");
    s
}

async fn bucket(m: &MetaStore, name: &str) {
    assert!(m.create_bucket(name, "default", "default").await.expect("create"));
}

async fn state(m: &MetaStore, s: SealId) -> SealState {
    m.seal(s).await.expect("seal").expect("exists").state
}

#[tokio::test]
async fn buckets_create_list_and_refuse_to_delete_when_not_empty() {
    for m in stores().await {
        bucket(&m, "b1").await;
        assert!(!m.create_bucket("b1", "default", "other").await.expect("dup"), "names are global");
        bucket(&m, "a0").await;
        let names: Vec<String> = m.buckets().await.expect("list").into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["a0", "b1"]);
        put(&m, "b1", b"k", 1).await;
        assert_eq!(m.delete_bucket("b1").await.expect("delete"), Some(false));
        m.delete_object("b1", b"k", None, None).await.expect("delete object");
        assert_eq!(m.delete_bucket("b1").await.expect("delete"), Some(true));
        assert_eq!(m.delete_bucket("b1").await.expect("delete"), None);
        assert!(m.bucket("b1").await.expect("get").is_none());
    }
}

#[tokio::test]
async fn a_version_is_visible_only_after_commit_and_overwrites_retire_the_old() {
    for m in stores().await {
        bucket(&m, "b").await;
        m.insert_pending_seal(&seal(sid(1)), "node-a").await.expect("pending");
        assert!(m.current_version("b", b"k").await.expect("get").is_none(), "pending is invisible");
        assert!(m.manifest("b", b"k").await.expect("get").is_none(), "pending is invisible");
        assert!(m.list_objects("b", b"", false, 10).await.expect("list").is_empty());
        let part = PartRow { number: 1, seal_id: sid(1), offset: 0, size: 10, member: None };
        let replaced = m
            .commit_object(sid(1), &landed(), &version(1, "b", b"k", "e1"), &part, None, &WriteCondition::Any)
            .await
            .expect("commit");
        assert_eq!(replaced.version_id, None);
        let (v, parts) = m.current_version("b", b"k").await.expect("get").expect("visible");
        assert_eq!((v.etag.as_str(), v.attrs.user_metadata["colour"].as_str()), ("e1", "blue"));
        assert_eq!(v.attrs.headers["cache-control"], "no-cache");
        assert_eq!(v.attrs.checksum_algorithm, Some(ChecksumAlgorithm::Crc32));
        assert_eq!(parts, [part]);
        let s = m.seal(sid(1)).await.expect("seal").expect("exists");
        assert_eq!(s.state, SealState::Stored);
        assert_eq!(
            s.fragments.iter().map(|f| (f.state, f.size)).collect::<Vec<_>>(),
            [(FragmentState::Stored, 5), (FragmentState::Stored, 5), (FragmentState::Missing, 0)]
        );
        // The manifest is the version with every part's seal and fragments.
        let manifest = m.manifest("b", b"k").await.expect("get").expect("visible");
        assert_eq!((manifest.version.clone(), manifest.tenant_number), (v, 0));
        assert_eq!(manifest.parts.len(), 1);
        assert_eq!(manifest.parts[0].seal, s);

        let s2 = put(&m, "b", b"k", 2).await;
        let (v, _) = m.current_version("b", b"k").await.expect("get").expect("visible");
        assert_eq!(v.etag, "etag2");
        assert_eq!(state(&m, sid(1)).await, SealState::Garbage, "kept until collected");
        assert_eq!(state(&m, s2).await, SealState::Stored);

        assert!(m.delete_object("b", b"k", None, None).await.expect("delete").is_some());
        assert!(m.current_version("b", b"k").await.expect("get").is_none());
        assert!(m.delete_object("b", b"k", None, None).await.expect("delete").is_none());
        assert_eq!(state(&m, s2).await, SealState::Garbage);
    }
}

#[tokio::test]
async fn a_write_whose_seal_was_collected_cannot_commit() {
    for m in stores().await {
        bucket(&m, "b").await;
        m.insert_pending_seal(&seal(sid(3)), "node-a").await.expect("pending");
        m.discard_seal(sid(3)).await.expect("collected as dead");
        let part = PartRow { number: 1, seal_id: sid(3), offset: 0, size: 10, member: None };
        let r =
            m.commit_object(sid(3), &landed(), &version(3, "b", b"k", "e"), &part, None, &WriteCondition::Any).await;
        assert!(matches!(r, Err(MetaError::Conflict(_))), "{r:?}");
        assert!(m.current_version("b", b"k").await.expect("get").is_none(), "nothing became visible");
    }
}

#[tokio::test]
async fn listing_is_in_byte_order() {
    for m in stores().await {
        bucket(&m, "b").await;
        let keys: [&[u8]; 6] = [b"a", b"a/b", b"B", "é".as_bytes(), b"z", "a\u{7f}".as_bytes()];
        for (i, k) in keys.iter().enumerate() {
            put(&m, "b", k, i as u8 + 1).await;
        }
        let listed: Vec<Vec<u8>> =
            m.list_objects("b", b"", false, 100).await.expect("list").into_iter().map(|o| o.key).collect();
        let mut expect: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
        expect.sort();
        assert_eq!(listed, expect);
        let after_a: Vec<Vec<u8>> =
            m.list_objects("b", b"a", true, 2).await.expect("list").into_iter().map(|o| o.key).collect();
        assert_eq!(after_a, vec![b"a/b".to_vec(), "a\u{7f}".as_bytes().to_vec()]);
    }
}

fn upload_part(number: u32, s: SealId) -> UploadPartRow {
    UploadPartRow { number, seal_id: s, size: 5, etag: format!("e{number}"), checksum_value: None, last_modified: 0 }
}

#[tokio::test]
async fn multipart_parts_replace_complete_once_and_abort() {
    for m in stores().await {
        bucket(&m, "b").await;
        let u1 = UploadId([1; 16]);
        let up = UploadRow {
            id: u1,
            bucket: "b".into(),
            key: b"big".to_vec(),
            created_at: now_ms(),
            attrs: ObjectAttrs::default(),
            checksum_type: None,
            lock: Retention::default(),
        };
        m.create_upload(&up).await.expect("create");
        for (n, s) in [(1, 11), (1, 12), (2, 20), (3, 30)] {
            m.insert_pending_seal(&seal(sid(s)), "node-a").await.expect("pending");
            assert!(m.commit_part(u1, &landed(), &upload_part(n, sid(s))).await.expect("part"));
        }
        assert_eq!(state(&m, sid(11)).await, SealState::Garbage, "replaced part");
        let parts = m.upload_parts(u1, 0, 100).await.expect("parts");
        assert_eq!(parts.iter().map(|p| p.seal_id).collect::<Vec<_>>(), [sid(12), sid(20), sid(30)]);
        assert_eq!(m.list_uploads("b", b"", "", 10).await.expect("uploads").len(), 1);
        // Complete with parts 1 and 2 only: part 3 becomes garbage.
        let mut v = version(9, "b", b"big", "x-2");
        v.part_count = 2;
        let chosen = [
            PartRow { number: 1, seal_id: sid(12), offset: 0, size: 5, member: None },
            PartRow { number: 2, seal_id: sid(20), offset: 5, size: 5, member: None },
        ];
        assert!(m.complete_upload(u1, &v, &chosen, None, &WriteCondition::Any).await.expect("complete").is_some());
        assert!(m.upload(u1).await.expect("upload").is_none());
        assert_eq!(state(&m, sid(30)).await, SealState::Garbage);
        assert_eq!(state(&m, sid(20)).await, SealState::Stored);
        assert_eq!(m.current_version("b", b"big").await.expect("get").expect("visible").1.len(), 2);
        // A second completion of the same upload changes nothing: two versions
        // never share seals (the first one's would be collected under the second).
        let again = VersionRow { id: VersionId([10; 16]), ..v.clone() };
        assert!(
            m.complete_upload(u1, &again, &chosen, None, &WriteCondition::Any).await.expect("complete again").is_none()
        );
        assert_eq!(m.current_version("b", b"big").await.expect("get").expect("visible").0.id, v.id);
        assert_eq!(state(&m, sid(20)).await, SealState::Stored);

        // A part for an upload that is gone is refused and its seal discarded.
        m.insert_pending_seal(&seal(sid(40)), "node-a").await.expect("pending");
        assert!(!m.commit_part(u1, &landed(), &upload_part(4, sid(40))).await.expect("part"));
        assert_eq!(state(&m, sid(40)).await, SealState::Garbage);

        let u2 = UploadId([2; 16]);
        m.create_upload(&UploadRow { id: u2, ..up }).await.expect("create");
        m.insert_pending_seal(&seal(sid(50)), "node-a").await.expect("pending");
        m.commit_part(u2, &landed(), &upload_part(1, sid(50))).await.expect("part");
        assert!(m.abort_upload(u2).await.expect("abort"));
        assert!(!m.abort_upload(u2).await.expect("abort twice"));
        assert_eq!(state(&m, sid(50)).await, SealState::Garbage);
    }
}

#[tokio::test]
async fn collection_finds_garbage_and_dead_writes_but_never_live_seals() {
    for m in stores().await {
        bucket(&m, "b").await;
        let live = put(&m, "b", b"k", 1).await;
        let (dead, young) = (sid(2), sid(3));
        m.insert_pending_seal(&seal(dead), "node-a").await.expect("pending");
        m.insert_pending_seal(&seal(young), "node-a").await.expect("pending");
        m.discard_seal(young).await.expect("discard");
        let scan = |before: i64, writer: &'static str, writer_before: i64| {
            let m = m.clone();
            async move {
                let dead = DeadWrites { before, writer, writer_before, retired_before: i64::MAX };
                let found = m.collectable_seals(&dead, 10).await.expect("scan");
                assert!(found.iter().all(|s| s.fragments.len() == 3), "each comes with its fragments");
                found.into_iter().map(|s| s.id).collect::<Vec<SealId>>()
            }
        };
        let found = scan(now_ms() + 1, "node-b", 0).await;
        assert!(found.contains(&dead) && found.contains(&young));
        assert!(!found.contains(&live), "a visible version's seal is never collectable");
        assert_eq!(scan(0, "node-b", now_ms() + 1).await, [young], "another node's recent pending write is left alone");
        assert_eq!(scan(0, "node-a", 0).await, [young], "the writer's pending write from this run is left alone");
        let recent = DeadWrites { before: 0, writer: "node-b", writer_before: 0, retired_before: now_ms() - 60_000 };
        let found = m.collectable_seals(&recent, 10).await.expect("scan");
        assert!(found.is_empty(), "garbage younger than the grace may still be read: left alone");
        let restarted = scan(0, "node-a", now_ms() + 1).await;
        assert!(restarted.contains(&dead), "the writer's pending write from an earlier run is dead");
        assert!(m.forget_seal(dead).await.expect("forget"));
        assert!(m.seal(dead).await.expect("seal").is_none());
        assert!(!m.forget_seal(live).await.expect("forget live"), "referenced seals stay");
    }
}

#[tokio::test]
async fn access_keys_round_trip() {
    for m in stores().await {
        let k = AccessKeyRow {
            id: "AKID".into(),
            secret_sealed: vec![9; 40],
            kek_version: 1,
            enabled: true,
            created_at: 5,
            tenant: "default".into(),
            bypass_governance: true,
        };
        assert!(m.insert_access_key(&k).await.expect("insert"));
        assert!(!m.insert_access_key(&k).await.expect("dup"));
        assert_eq!(m.access_key("AKID").await.expect("get"), Some(k.clone()));
        assert!(m.set_access_key_enabled("AKID", false).await.expect("disable"));
        assert!(!m.access_key("AKID").await.expect("get").expect("exists").enabled);
        assert_eq!(m.access_keys().await.expect("list").len(), 1);
        assert!(m.delete_access_key("AKID").await.expect("delete"));
        assert!(m.access_key("AKID").await.expect("get").is_none());
    }
}

#[tokio::test]
async fn tenants_own_keys_and_buckets_and_go_only_when_empty() {
    for m in stores().await {
        let names = |ts: Vec<TenantRow>| ts.into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(names(m.tenants().await.expect("list")), ["default"], "migrations create the default tenant");
        assert!(m.create_tenant("acme").await.expect("create"));
        assert!(!m.create_tenant("acme").await.expect("dup"));
        assert!(m.create_tenant("zeta").await.expect("create"));
        let numbers: Vec<u32> = m.tenants().await.expect("list").iter().map(|t| t.number).collect();
        assert_eq!(numbers, [1, 0, 2], "default is 0 (the cache's old entries), others distinct");
        let key = |id: &str, tenant: &str| AccessKeyRow {
            id: id.into(),
            secret_sealed: vec![1; 40],
            kek_version: 1,
            enabled: true,
            created_at: 1,
            tenant: tenant.into(),
            bypass_governance: false,
        };
        assert!(m.insert_access_key(&key("A1", "acme")).await.expect("key"));
        assert!(!m.insert_access_key(&key("G1", "ghost")).await.expect("key"), "a key needs its tenant");
        assert!(m.access_key("G1").await.expect("get").is_none());
        assert!(m.create_bucket("acme-data", "default", "acme").await.expect("bucket"));
        bucket(&m, "shared").await;
        let acme = m.tenant("acme").await.expect("get").expect("exists");
        assert_eq!((acme.keys, acme.buckets), (1, 1));
        let of_acme: Vec<String> = m.buckets_of("acme").await.expect("of").into_iter().map(|b| b.name).collect();
        assert_eq!(of_acme, ["acme-data"]);
        let b = m.bucket("acme-data").await.expect("get").expect("exists");
        assert_eq!((b.tenant.as_str(), b.tenant_number), ("acme", 1));
        assert_eq!(m.access_keys_of("acme").await.expect("keys").len(), 1);
        assert_eq!(m.delete_tenant("acme").await.expect("busy"), Some(false));
        assert!(m.delete_access_key("A1").await.expect("delete key"));
        assert_eq!(m.delete_tenant("acme").await.expect("still a bucket"), Some(false));
        assert_eq!(m.delete_bucket("acme-data").await.expect("delete bucket"), Some(true));
        assert_eq!(m.delete_tenant("acme").await.expect("empty"), Some(true));
        assert_eq!(m.delete_tenant("acme").await.expect("gone"), None);
    }
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires() {
    for m in stores().await {
        assert!(m.acquire_lease("gc", "a", 60_000).await.expect("a takes it"));
        assert!(!m.acquire_lease("gc", "b", 60_000).await.expect("b is refused"));
        assert!(m.acquire_lease("gc", "a", 60_000).await.expect("a renews"));
        assert!(m.acquire_lease("other", "b", 60_000).await.expect("another lease is free"));
        // Expired: the next comer takes it, and the old holder is then refused.
        assert!(m.acquire_lease("gc", "a", -1).await.expect("a renews into the past"));
        assert!(m.acquire_lease("gc", "b", 60_000).await.expect("b takes the expired lease"));
        assert!(!m.acquire_lease("gc", "a", 60_000).await.expect("a is refused"));
    }
}

/// A manifest row for version `n` of `key`.
fn manifest_row(n: u8, key: &[u8]) -> RecordRow {
    RecordRow {
        name: format!("m/{n}"),
        kind: RecordKind::Manifest,
        version_id: Some(VersionId([n; 16])),
        bucket: Some("b".into()),
        key: Some(key.to_vec()),
        at: now_ms(),
        locations: vec!["loc0".into()],
        digest: String::new(),
        size: 10,
    }
}

#[tokio::test]
async fn a_copy_shares_seals_which_stay_until_no_version_uses_them() {
    for m in stores().await {
        bucket(&m, "b").await;
        let s = put(&m, "b", b"src", 1).await;
        let part = PartRow { number: 1, seal_id: s, offset: 0, size: 10, member: None };
        let copy = version(2, "b", b"dst", "etag1");
        let row = manifest_row(2, b"dst");
        let r = m.copy_version(&copy, std::slice::from_ref(&part), &row, &WriteCondition::Any);
        assert!(r.await.expect("copy").is_some());
        m.delete_object("b", b"src", None, None).await.expect("delete source");
        assert_eq!(state(&m, s).await, SealState::Stored, "the copy still uses the seal");
        assert!(m.manifest("b", b"dst").await.expect("read").is_some());
        // Overwriting the copy with a copy of itself keeps the seal too.
        let again = version(3, "b", b"dst", "etag1");
        let row = manifest_row(3, b"dst");
        let r = m.copy_version(&again, std::slice::from_ref(&part), &row, &WriteCondition::Any);
        assert!(r.await.expect("copy onto itself").is_some());
        assert_eq!(state(&m, s).await, SealState::Stored);
        m.delete_object("b", b"dst", None, None).await.expect("delete copy");
        assert_eq!(state(&m, s).await, SealState::Garbage, "no version uses it now");
        // A copy of a seal that became garbage meanwhile changes nothing.
        let late = version(4, "b", b"late", "etag1");
        let row = manifest_row(4, b"late");
        let r = m.copy_version(&late, std::slice::from_ref(&part), &row, &WriteCondition::Any);
        assert!(r.await.expect("copy").is_none());
        assert!(m.current_version("b", b"late").await.expect("read").is_none());
    }
}

/// Writes seal `n` as version `n` (ETag `e<n>`) of `key` in bucket `b`, if `condition` holds.
async fn commit_to(m: MetaStore, n: u8, key: Vec<u8>, condition: WriteCondition) -> MetaResult<Replaced> {
    let s = sid(n);
    m.insert_pending_seal(&seal(s), "node-a").await.expect("pending");
    let part = PartRow { number: 1, seal_id: s, offset: 0, size: 10, member: None };
    m.commit_object(s, &landed(), &version(n, "b", &key, &format!("e{n}")), &part, None, &condition).await
}

#[tokio::test]
async fn conditional_commits_hold_or_change_nothing() {
    for m in stores().await {
        bucket(&m, "b").await;
        let commit = |n: u8, condition: WriteCondition| commit_to(m.clone(), n, b"k".to_vec(), condition);
        assert!(matches!(commit(1, WriteCondition::ETag("e0".into())).await, Err(MetaError::NoSuchKey)));
        commit(2, WriteCondition::Absent).await.expect("absent key");
        assert!(matches!(commit(3, WriteCondition::Absent).await, Err(MetaError::Precondition(_))));
        assert!(matches!(commit(4, WriteCondition::ETag("e3".into())).await, Err(MetaError::Precondition(_))));
        commit(5, WriteCondition::ETag("e2".into())).await.expect("matching ETag");
        let (v, _) = m.current_version("b", b"k").await.expect("read").expect("object");
        assert_eq!(v.etag, "e5", "only the commits whose condition held changed the key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_conditional_commits_have_one_winner() {
    for m in stores().await {
        bucket(&m, "b").await;
        let commit = |n: u8, condition: WriteCondition| commit_to(m.clone(), n, b"k".to_vec(), condition);
        commit(1, WriteCondition::Any).await.expect("first");
        let mut current = "e1".to_string();
        for round in 0..6u8 {
            let racers = (0..8u8).map(|i| 10 + round * 10 + i);
            let tasks: Vec<_> =
                racers.map(|n| tokio::spawn(commit(n, WriteCondition::ETag(current.clone())))).collect();
            let mut won = Vec::new();
            for (i, t) in tasks.into_iter().enumerate() {
                match t.await.expect("task") {
                    Ok(_) => won.push(10 + round * 10 + i as u8),
                    Err(MetaError::Precondition(_)) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            assert_eq!(won.len(), 1, "round {round}: {won:?}");
            current = format!("e{}", won[0]);
            let (v, _) = m.current_version("b", b"k").await.expect("read").expect("object");
            assert_eq!(v.etag, current);
        }
        // Racing creators of keys that must be absent: one each.
        let create = |n: u8, key: Vec<u8>| commit_to(m.clone(), n, key, WriteCondition::Absent);
        for round in 0..6u8 {
            let key = format!("new{round}").into_bytes();
            let tasks: Vec<_> = (0..8u8).map(|i| tokio::spawn(create(100 + round * 10 + i, key.clone()))).collect();
            let mut won = 0;
            for t in tasks {
                match t.await.expect("task") {
                    Ok(_) => won += 1,
                    Err(MetaError::Precondition(_)) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            assert_eq!(won, 1, "round {round}");
        }
    }
}

#[tokio::test]
async fn versioned_keys_keep_their_versions_markers_hide_them_and_null_versions_replace_each_other() {
    for m in stores().await {
        bucket(&m, "v").await;
        assert!(m.set_versioning("v", Versioning::Enabled).await.expect("enable"));
        let put = |n: u8, null_version: bool| {
            let m = m.clone();
            async move {
                let s = sid(n);
                m.insert_pending_seal(&seal(s), "node-a").await.expect("pending");
                let part = PartRow { number: 1, seal_id: s, offset: 0, size: 10, member: None };
                let v = VersionRow { null_version, ..version(n, "v", b"k", &format!("e{n}")) };
                m.commit_object(s, &landed(), &v, &part, None, &WriteCondition::Any).await.expect("commit");
                s
            }
        };
        let ids =
            |l: Vec<ListedVersion>| -> Vec<(u8, bool)> { l.iter().map(|v| (v.version.id.0[0], v.latest)).collect() };
        let s1 = put(1, false).await;
        let s2 = put(2, false).await;
        assert_eq!(state(&m, s1).await, SealState::Stored, "an older version keeps its seal");
        assert_eq!(m.current_version("v", b"k").await.expect("read").expect("latest").0.etag, "e2");

        // A delete marker hides the key; its versions stay.
        let marker = VersionRow { delete_marker: true, size: 0, part_count: 0, ..version(3, "v", b"k", "") };
        let marker = VersionRow { null_version: false, ..marker };
        m.commit_marker(&marker, None, &WriteCondition::Any).await.expect("marker");
        assert!(m.current_version("v", b"k").await.expect("read").is_none());
        assert!(m.list_objects("v", b"", false, 10).await.expect("list").is_empty());
        assert_eq!(m.latest_marker("v", b"k").await.expect("read").map(|v| v.id), Some(VersionId([3; 16])));
        let all = m.list_versions("v", b"", false, None, 10).await.expect("versions");
        assert_eq!(ids(all), [(3, true), (2, false), (1, false)], "newest first");
        // Paging: after version 2, only version 1.
        let two = m.find_version("v", b"k", VersionRef::Id(VersionId([2; 16]))).await.expect("find").expect("2");
        let rest = m.list_versions("v", b"k", false, Some(&two.version), 10).await.expect("page");
        assert_eq!(ids(rest), [(1, false)]);

        // Deleting the marker brings version 2 back; deleting version 1 frees its seal.
        m.delete_version("v", b"k", VersionId([3; 16]), None, false).await.expect("delete").expect("the marker");
        assert_eq!(m.current_version("v", b"k").await.expect("read").expect("back").0.etag, "e2");
        m.delete_version("v", b"k", VersionId([1; 16]), None, false).await.expect("delete").expect("version 1");
        assert_eq!(state(&m, s1).await, SealState::Garbage);
        assert!(m.delete_version("v", b"k", VersionId([1; 16]), None, false).await.expect("again").is_none());

        // Suspended: a null version replaces the key's null version only.
        assert!(m.set_versioning("v", Versioning::Suspended).await.expect("suspend"));
        let s4 = put(4, true).await;
        put(5, true).await;
        assert_eq!(state(&m, s4).await, SealState::Garbage, "the older null version went");
        assert_eq!(state(&m, s2).await, SealState::Stored);
        let all = m.list_versions("v", b"", false, None, 10).await.expect("versions");
        assert_eq!(ids(all), [(5, true), (2, false)]);
        let null = m.find_version("v", b"k", VersionRef::Null).await.expect("find").expect("null");
        assert_eq!(null.version.shown_id(), "null");
        // Deleting the latest makes the one before it the latest; the last one, nothing.
        m.delete_version("v", b"k", VersionId([5; 16]), None, false).await.expect("delete").expect("5");
        assert_eq!(m.current_version("v", b"k").await.expect("read").expect("2").0.etag, "e2");
        m.delete_version("v", b"k", VersionId([2; 16]), None, false).await.expect("delete").expect("2");
        assert!(m.list_versions("v", b"", false, None, 10).await.expect("versions").is_empty());
        assert_eq!(m.delete_bucket("v").await.expect("delete bucket"), Some(true), "empty once its versions went");
    }
}
