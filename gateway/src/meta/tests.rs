//! The metadata store's guarantees, on SQLite always and on PostgreSQL when
//! `SKYSHARD_TEST_POSTGRES_URL` points at a server (the test script starts one):
//! each test gets a database of its own.

use super::*;

/// A fresh store: a temporary SQLite file, or a new PostgreSQL database.
pub(crate) async fn stores() -> Vec<MetaStore> {
    let mut out = Vec::new();
    let dir = std::env::temp_dir().join(format!("skyshard-meta-{}-{}", std::process::id(), rand_suffix()));
    std::fs::create_dir_all(&dir).expect("temp dir");
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

fn seal(id: &str) -> SealRow {
    SealRow {
        id: id.into(),
        state: SealState::Pending,
        size: 10,
        k: 2,
        n: 3,
        segment_size: 4096,
        compression: None,
        sealed_lens: None,
        wrapped_key: vec![1, 2, 3],
        created_at: now_ms(),
    }
}

fn frags() -> Vec<FragmentRow> {
    (0..3)
        .map(|i| FragmentRow {
            idx: i,
            location: format!("loc{i}"),
            object_name: format!("p/x/{i}"),
            size: 0,
            state: FragmentState::Pending,
        })
        .collect()
}

fn version(id: &str, bucket: &str, key: &[u8], etag: &str) -> VersionRow {
    VersionRow {
        id: id.into(),
        bucket: bucket.into(),
        key: key.to_vec(),
        size: 10,
        etag: etag.into(),
        last_modified: now_ms(),
        attrs: ObjectAttrs {
            content_type: Some("text/plain".into()),
            headers: BTreeMap::from([("cache-control".into(), "no-cache".into())]),
            user_metadata: BTreeMap::from([("colour".into(), "blue".into())]),
            checksum_algorithm: Some("CRC32".into()),
        },
        checksum_value: Some("AAAAAA==".into()),
        checksum_type: Some("FULL_OBJECT".into()),
        part_count: 1,
    }
}

async fn put(m: &MetaStore, bucket: &str, key: &[u8], n: u32) -> String {
    let s = format!("seal-{bucket}-{}-{n}", String::from_utf8_lossy(key));
    m.insert_pending_seal(&seal(&s), &frags(), "node-a").await.expect("pending");
    m.finish_seal(&s, &[(0, 5), (1, 5)], &[2], None).await.expect("finish");
    let v = format!("v-{s}");
    m.commit_version(
        &version(&v, bucket, key, &format!("etag{n}")),
        &[PartRow { part_number: 1, seal_id: s.clone(), offset: 0, size: 10 }],
        None,
    )
    .await
    .expect("commit");
    s
}

fn bucket_row(name: &str, tenant: &str) -> BucketRow {
    BucketRow { name: name.into(), policy: "default".into(), created_at: now_ms(), tenant: tenant.into() }
}

async fn bucket(m: &MetaStore, name: &str) {
    assert!(m.create_bucket(&bucket_row(name, "default")).await.expect("create"));
}

#[tokio::test]
async fn buckets_create_list_and_refuse_to_delete_when_not_empty() {
    for m in stores().await {
        bucket(&m, "b1").await;
        assert!(!m.create_bucket(&bucket_row("b1", "other")).await.expect("dup"), "names are global");
        bucket(&m, "a0").await;
        let names: Vec<String> = m.buckets().await.expect("list").into_iter().map(|b| b.name).collect();
        assert_eq!(names, ["a0", "b1"]);
        put(&m, "b1", b"k", 1).await;
        assert_eq!(m.delete_bucket("b1").await.expect("delete"), Some(false));
        m.delete_object("b1", b"k").await.expect("delete object");
        assert_eq!(m.delete_bucket("b1").await.expect("delete"), Some(true));
        assert_eq!(m.delete_bucket("b1").await.expect("delete"), None);
        assert!(m.bucket("b1").await.expect("get").is_none());
    }
}

#[tokio::test]
async fn a_version_is_visible_only_after_commit_and_overwrites_retire_the_old() {
    for m in stores().await {
        bucket(&m, "b").await;
        m.insert_pending_seal(&seal("s1"), &frags(), "node-a").await.expect("pending");
        assert!(m.current_version("b", b"k").await.expect("get").is_none(), "pending is invisible");
        assert!(m.list_objects("b", b"", false, 10).await.expect("list").is_empty());
        m.finish_seal("s1", &[(0, 7), (1, 7)], &[2], None).await.expect("finish");
        let replaced = m
            .commit_version(
                &version("v1", "b", b"k", "e1"),
                &[PartRow { part_number: 1, seal_id: "s1".into(), offset: 0, size: 10 }],
                None,
            )
            .await
            .expect("commit");
        assert_eq!(replaced.version_id, None);
        let (v, parts) = m.current_version("b", b"k").await.expect("get").expect("visible");
        assert_eq!((v.etag.as_str(), v.attrs.user_metadata["colour"].as_str()), ("e1", "blue"));
        assert_eq!(v.attrs.headers["cache-control"], "no-cache");
        assert_eq!(parts.len(), 1);
        let (s, f) = m.seal("s1").await.expect("seal").expect("exists");
        assert_eq!(s.state, SealState::Stored);
        assert_eq!(
            f.iter().map(|f| f.state).collect::<Vec<_>>(),
            [FragmentState::Stored, FragmentState::Stored, FragmentState::Missing]
        );

        let s2 = put(&m, "b", b"k", 2).await;
        let (v, _) = m.current_version("b", b"k").await.expect("get").expect("visible");
        assert_eq!(v.etag, "etag2");
        assert_eq!(m.seal("s1").await.expect("seal").expect("kept until collected").0.state, SealState::Garbage);
        assert_eq!(m.seal(&s2).await.expect("seal").expect("exists").0.state, SealState::Stored);

        assert!(m.delete_object("b", b"k").await.expect("delete").is_some());
        assert!(m.current_version("b", b"k").await.expect("get").is_none());
        assert!(m.delete_object("b", b"k").await.expect("delete").is_none());
        assert_eq!(m.seal(&s2).await.expect("seal").expect("exists").0.state, SealState::Garbage);
    }
}

#[tokio::test]
async fn listing_is_in_byte_order() {
    for m in stores().await {
        bucket(&m, "b").await;
        let keys: [&[u8]; 6] = [b"a", b"a/b", b"B", "é".as_bytes(), b"z", "a\u{7f}".as_bytes()];
        for (i, k) in keys.iter().enumerate() {
            put(&m, "b", k, i as u32).await;
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

#[tokio::test]
async fn multipart_parts_replace_complete_and_abort() {
    for m in stores().await {
        bucket(&m, "b").await;
        let up = UploadRow {
            id: "u1".into(),
            bucket: "b".into(),
            key: b"big".to_vec(),
            created_at: now_ms(),
            attrs: ObjectAttrs::default(),
        };
        m.create_upload(&up).await.expect("create");
        for (n, s) in [(1, "p1a"), (1, "p1b"), (2, "p2"), (3, "p3")] {
            m.insert_pending_seal(&seal(s), &frags(), "node-a").await.expect("pending");
            let part = UploadPartRow {
                part_number: n,
                seal_id: s.into(),
                size: 5,
                etag: s.into(),
                checksum_value: None,
                last_modified: now_ms(),
            };
            assert!(m.put_upload_part("u1", &part).await.expect("part"));
        }
        assert_eq!(m.seal("p1a").await.expect("seal").expect("exists").0.state, SealState::Garbage, "replaced part");
        let parts = m.upload_parts("u1", 0, 100).await.expect("parts");
        assert_eq!(parts.iter().map(|p| p.seal_id.as_str()).collect::<Vec<_>>(), ["p1b", "p2", "p3"]);
        assert_eq!(m.list_uploads("b", b"", "", 10).await.expect("uploads").len(), 1);
        // Complete with parts 1 and 2 only: part 3 becomes garbage.
        let mut v = version("vm", "b", b"big", "x-2");
        v.part_count = 2;
        let chosen = [
            PartRow { part_number: 1, seal_id: "p1b".into(), offset: 0, size: 5 },
            PartRow { part_number: 2, seal_id: "p2".into(), offset: 5, size: 5 },
        ];
        m.commit_version(&v, &chosen, Some("u1")).await.expect("complete");
        assert!(m.upload("u1").await.expect("upload").is_none());
        assert_eq!(m.seal("p3").await.expect("seal").expect("exists").0.state, SealState::Garbage);
        assert_eq!(m.seal("p2").await.expect("seal").expect("exists").0.state, SealState::Stored);
        assert_eq!(m.current_version("b", b"big").await.expect("get").expect("visible").1.len(), 2);

        // A part for an upload that is gone is refused and its seal discarded.
        m.insert_pending_seal(&seal("late"), &frags(), "node-a").await.expect("pending");
        let late = UploadPartRow {
            part_number: 4,
            seal_id: "late".into(),
            size: 5,
            etag: "l".into(),
            checksum_value: None,
            last_modified: 0,
        };
        assert!(!m.put_upload_part("u1", &late).await.expect("part"));
        assert_eq!(m.seal("late").await.expect("seal").expect("exists").0.state, SealState::Garbage);

        let up2 = UploadRow { id: "u2".into(), ..up };
        m.create_upload(&up2).await.expect("create");
        m.insert_pending_seal(&seal("q1"), &frags(), "node-a").await.expect("pending");
        let q = UploadPartRow {
            part_number: 1,
            seal_id: "q1".into(),
            size: 5,
            etag: "q".into(),
            checksum_value: None,
            last_modified: 0,
        };
        m.put_upload_part("u2", &q).await.expect("part");
        assert!(m.abort_upload("u2").await.expect("abort"));
        assert!(!m.abort_upload("u2").await.expect("abort twice"));
        assert_eq!(m.seal("q1").await.expect("seal").expect("exists").0.state, SealState::Garbage);
    }
}

#[tokio::test]
async fn collection_finds_garbage_and_dead_writes_but_never_live_seals() {
    for m in stores().await {
        bucket(&m, "b").await;
        let live = put(&m, "b", b"k", 1).await;
        m.insert_pending_seal(&seal("dead"), &frags(), "node-a").await.expect("pending");
        m.insert_pending_seal(&seal("young"), &frags(), "node-a").await.expect("pending");
        m.discard_seal("young").await.expect("discard");
        let scan = |before: i64, writer: &'static str, writer_before: i64| {
            let m = m.clone();
            async move {
                let dead = DeadWrites { before, writer, writer_before };
                let found = m.collectable_seals(&dead, 10).await.expect("scan");
                found.into_iter().map(|(s, _)| s.id).collect::<Vec<String>>()
            }
        };
        let found = scan(now_ms() + 1, "node-b", 0).await;
        assert!(found.contains(&"dead".to_string()) && found.contains(&"young".to_string()));
        assert!(!found.contains(&live), "a visible version's seal is never collectable");
        assert_eq!(
            scan(0, "node-b", now_ms() + 1).await,
            ["young"],
            "another node's recent pending write is left alone"
        );
        assert_eq!(scan(0, "node-a", 0).await, ["young"], "the writer's pending write from this run is left alone");
        let restarted = scan(0, "node-a", now_ms() + 1).await;
        assert!(restarted.contains(&"dead".to_string()), "the writer's pending write from an earlier run is dead");
        assert!(m.forget_seal("dead").await.expect("forget"));
        assert!(m.seal("dead").await.expect("seal").is_none());
        assert!(!m.forget_seal(&live).await.expect("forget live"), "referenced seals stay");
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
        let key = |id: &str, tenant: &str| AccessKeyRow {
            id: id.into(),
            secret_sealed: vec![1; 40],
            kek_version: 1,
            enabled: true,
            created_at: 1,
            tenant: tenant.into(),
        };
        assert!(m.insert_access_key(&key("A1", "acme")).await.expect("key"));
        assert!(!m.insert_access_key(&key("G1", "ghost")).await.expect("key"), "a key needs its tenant");
        assert!(m.access_key("G1").await.expect("get").is_none());
        assert!(m.create_bucket(&bucket_row("acme-data", "acme")).await.expect("bucket"));
        bucket(&m, "shared").await;
        let acme = m.tenant("acme").await.expect("get").expect("exists");
        assert_eq!((acme.keys, acme.buckets), (1, 1));
        let of_acme: Vec<String> = m.buckets_of("acme").await.expect("of").into_iter().map(|b| b.name).collect();
        assert_eq!(of_acme, ["acme-data"]);
        assert_eq!(m.bucket("acme-data").await.expect("get").expect("exists").tenant, "acme");
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
