//! Photos over the wire, on the local store and on a real S3-compatible server:
//! presigned upload, confirmation checks, attachment order, download, deletion, and
//! presigned URLs that cannot reach another user's object.

use crate::helpers::{code, png, TestApp};
use serde_json::json;
use sha2::{Digest, Sha256};

async fn upload_attach_download_delete(app: &TestApp) {
    let ann = app.register("ann").await;
    let draft = app.create_draft(&ann.access, "Jacket").await;
    let bytes = png(3, 2);
    let first = app.upload_photo(&ann.access, Some(&draft), "image/png", &bytes).await;
    assert_eq!(first["status"], "READY");
    assert_eq!((first["width"].as_i64(), first["height"].as_i64()), (Some(3), Some(2)));
    assert_eq!(first["sha256"], hex::encode(Sha256::digest(&bytes)));
    assert_eq!(first["position"], 0);
    assert_eq!(first["draftId"], draft.as_str());
    let second = app.upload_photo(&ann.access, Some(&draft), "image/png", &png(1, 1)).await;
    assert_eq!(second["position"], 1);

    let downloaded = app.http().get(first["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let r = app
        .gql(Some(&ann.access), "query($d: ID!) { draft(id: $d) { photos { id position } } }", json!({ "d": draft }))
        .await;
    let ids: Vec<_> = r["data"]["draft"]["photos"].as_array().unwrap().iter().map(|p| p["id"].clone()).collect();
    assert_eq!(ids, [first["id"].clone(), second["id"].clone()]);

    let del =
        app.gql(Some(&ann.access), "mutation($p: ID!) { deletePhoto(id: $p) }", json!({ "p": first["id"] })).await;
    assert_eq!(del["data"]["deletePhoto"], true);
    let gone = app.http().get(first["url"].as_str().unwrap()).send().await.unwrap();
    assert_ne!(gone.status(), 200, "the object is deleted");
    let dash = app.gql(Some(&ann.access), "{ dashboard { photoCount storageBytes } }", json!({})).await;
    assert_eq!(dash["data"]["dashboard"]["photoCount"], 1);
    assert_eq!(dash["data"]["dashboard"]["storageBytes"], png(1, 1).len());
}

#[tokio::test]
async fn photos_on_the_local_store() {
    upload_attach_download_delete(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn photos_on_s3() {
    upload_attach_download_delete(&TestApp::builder().with_s3().spawn().await).await;
}

const CREATE: &str = "mutation($ct: String!, $n: Int!) { createUpload(contentType: $ct, byteSize: $n) {
    photo { id } uploadUrl headers { name value } } }";

async fn bad_uploads_are_refused(app: &TestApp) {
    let ann = app.register("ann").await;
    for (ct, n, field) in
        [("image/gif", 10, "contentType"), ("image/png", 0, "byteSize"), ("image/png", 999_999_999, "byteSize")]
    {
        let r = app.gql(Some(&ann.access), CREATE, json!({ "ct": ct, "n": n })).await;
        assert_eq!(code(&r), "BAD_USER_INPUT", "{r}");
        assert_eq!(r["errors"][0]["extensions"]["field"], field);
    }
    assert_eq!(app.count("photos").await, 0);
    let anon = app.gql(None, CREATE, json!({ "ct": "image/png", "n": 10 })).await;
    assert_eq!(code(&anon), "UNAUTHENTICATED");

    // Declared PNG, uploaded text of the right size: refused at confirmation.
    let fake = b"definitely not a png image".to_vec();
    let r = app.gql(Some(&ann.access), CREATE, json!({ "ct": "image/png", "n": fake.len() })).await;
    let up = &r["data"]["createUpload"];
    let confirm = "mutation($p: ID!) { confirmUpload(photoId: $p) { id } }";
    let early = app.gql(Some(&ann.access), confirm, json!({ "p": up["photo"]["id"] })).await;
    assert_eq!(code(&early), "BAD_USER_INPUT", "nothing uploaded yet: {early}");
    assert!(app.put_upload(up, fake).await.status().is_success());
    let refused = app.gql(Some(&ann.access), confirm, json!({ "p": up["photo"]["id"] })).await;
    assert_eq!(code(&refused), "BAD_USER_INPUT", "{refused}");

    // The wrong Content-Type is refused by the presigned URL itself.
    let bytes = png(1, 1);
    let r = app.gql(Some(&ann.access), CREATE, json!({ "ct": "image/png", "n": bytes.len() })).await;
    let up = &r["data"]["createUpload"];
    let wrong = app
        .http()
        .put(up["uploadUrl"].as_str().unwrap())
        .header("content-type", "image/jpeg")
        .body(bytes.clone())
        .send()
        .await
        .unwrap();
    assert!(!wrong.status().is_success(), "a different Content-Type was accepted");
}

#[tokio::test]
async fn bad_uploads_are_refused_locally() {
    bad_uploads_are_refused(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn bad_uploads_are_refused_on_s3() {
    bad_uploads_are_refused(&TestApp::builder().with_s3().spawn().await).await;
}

/// A URL signed for one key opens only that key: pointing it at another user's
/// object (the key is in the path) breaks the signature.
async fn presigned_urls_stay_with_their_owner(app: &TestApp) {
    let ann = app.register("ann").await;
    let bob = app.register("bob").await;
    let ann_photo = app.upload_photo(&ann.access, None, "image/png", &png(2, 2)).await;
    let ann_url = url::Url::parse(ann_photo["url"].as_str().unwrap()).unwrap();
    let ann_key = ann_url.path().to_owned();

    // Bob gets an upload URL of his own, then aims it at Ann's object.
    let bytes = png(5, 5);
    let r = app.gql(Some(&bob.access), CREATE, json!({ "ct": "image/png", "n": bytes.len() })).await;
    let up = &r["data"]["createUpload"];
    let mut bob_url = url::Url::parse(up["uploadUrl"].as_str().unwrap()).unwrap();
    assert!(!bob_url.path().contains(&ann.id.to_string()), "Bob's URL names Bob's key only");
    bob_url.set_path(&ann_key);
    let status = app.put_upload_to(bob_url.as_str(), up, bytes.clone()).await.status();
    assert!(status == 403 || status == 400, "overwrite with a re-aimed URL answered {status}");

    // Bob's download URL re-aimed at Ann's object is refused too.
    let bob_photo = app.upload_photo(&bob.access, None, "image/png", &png(1, 1)).await;
    let mut bob_get = url::Url::parse(bob_photo["url"].as_str().unwrap()).unwrap();
    bob_get.set_path(&ann_key);
    let status = app.http().get(bob_get.as_str()).send().await.unwrap().status();
    assert!(status == 403 || status == 400, "read with a re-aimed URL answered {status}");

    // Ann's object is intact.
    let body = app.http().get(ann_photo["url"].as_str().unwrap()).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(body.as_ref(), png(2, 2).as_slice());
    // And Bob cannot confirm, attach or delete Ann's photo through the API.
    for q in ["mutation($p: ID!) { confirmUpload(photoId: $p) { id } }", "mutation($p: ID!) { deletePhoto(id: $p) }"] {
        let r = app.gql(Some(&bob.access), q, json!({ "p": ann_photo["id"] })).await;
        assert_eq!(code(&r), "NOT_FOUND", "{r}");
    }
}

#[tokio::test]
async fn presigned_urls_stay_with_their_owner_locally() {
    presigned_urls_stay_with_their_owner(&TestApp::spawn().await).await;
}

#[tokio::test]
async fn presigned_urls_stay_with_their_owner_on_s3() {
    presigned_urls_stay_with_their_owner(&TestApp::builder().with_s3().spawn().await).await;
}

/// Issue 11, item 10: after confirmation the served object is the checked one. The
/// upload URL still works until it expires, but what it writes is never served; a
/// download declares the checked type, is not sniffed, and is named.
async fn confirmed_bytes_cannot_be_swapped(app: &TestApp, local: bool) {
    let ann = app.register("ann").await;
    let bytes = png(4, 4);
    let r = app.gql(Some(&ann.access), CREATE, json!({ "ct": "image/png", "n": bytes.len() })).await;
    let up = r["data"]["createUpload"].clone();
    assert!(app.put_upload(&up, bytes.clone()).await.status().is_success());
    let confirm = "mutation($p: ID!) { confirmUpload(photoId: $p) { id status url } }";
    let photo =
        app.gql(Some(&ann.access), confirm, json!({ "p": up["photo"]["id"] })).await["data"]["confirmUpload"].clone();
    assert_eq!(photo["status"], "READY");

    let mut html = b"<html><body><script>alert(document.cookie)</script>".to_vec();
    html.resize(bytes.len(), b' ');
    let swapped = app.put_upload(&up, html).await;
    assert!(swapped.status().is_success(), "the URL itself still works until it expires");

    let url = photo["url"].as_str().unwrap();
    let served = app.http().get(url).send().await.unwrap();
    assert_eq!(served.status(), 200);
    let header = |name: &str| served.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("content-type").as_deref(), Some("image/png"));
    if local {
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"));
        let disposition = header("content-disposition").unwrap();
        assert!(disposition.starts_with("inline; filename=") && disposition.ends_with(".png\""), "{disposition}");
    } else {
        let query: Vec<(String, String)> = reqwest::Url::parse(url).unwrap().query_pairs().into_owned().collect();
        assert!(query.iter().any(|(k, v)| k == "response-content-disposition" && v.starts_with("inline")), "{url}");
        assert!(query.iter().any(|(k, v)| k == "response-content-type" && v == "image/png"), "{url}");
    }
    assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice(), "the checked bytes, not the swapped ones");
    // Confirming again changes nothing.
    let again = app.gql(Some(&ann.access), confirm, json!({ "p": up["photo"]["id"] })).await;
    assert_eq!(again["data"]["confirmUpload"]["status"], "READY");
    let served = app.http().get(again["data"]["confirmUpload"]["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(served.bytes().await.unwrap().as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn confirmed_photos_cannot_be_swapped_on_the_local_store() {
    confirmed_bytes_cannot_be_swapped(&TestApp::spawn().await, true).await;
}

#[tokio::test]
async fn confirmed_photos_cannot_be_swapped_on_s3() {
    confirmed_bytes_cannot_be_swapped(&TestApp::builder().with_s3().spawn().await, false).await;
}

/// Issue 11, item 9: a reservation whose URL expired stops counting: the sweeper
/// deletes its object and its row; a confirmed photo is never swept.
#[tokio::test]
async fn expired_reservations_are_swept_with_their_objects() {
    let app = TestApp::builder().with_env("PLINTH_UPLOAD_SWEEP_SECS", "1").spawn().await;
    let ann = app.register("ann").await;
    let kept = app.upload_photo(&ann.access, None, "image/png", &png(1, 1)).await;
    let bytes = png(2, 2);
    let r = app.gql(Some(&ann.access), CREATE, json!({ "ct": "image/png", "n": bytes.len() })).await;
    let up = r["data"]["createUpload"].clone();
    assert!(app.put_upload(&up, bytes.clone()).await.status().is_success());
    let storage = || async {
        let r = app.gql(Some(&ann.access), "{ usage { metric used } dashboard { storageBytes } }", json!({})).await;
        let used = r["data"]["usage"].as_array().unwrap().iter().find(|u| u["metric"] == "STORAGE_BYTES").unwrap()
            ["used"]
            .as_i64()
            .unwrap();
        assert_eq!(r["data"]["dashboard"]["storageBytes"].as_i64(), Some(used), "dashboard and gauge agree");
        used
    };
    let both = (png(1, 1).len() + bytes.len()) as i64;
    assert_eq!(storage().await, both, "a reservation counts");
    let object = app.data_dir.join("objects").join(format!("u/{}/p/{}", ann.id, up["photo"]["id"].as_str().unwrap()));
    assert!(object.exists());

    // Its URL expired 15 minutes ago, and the grace after it too.
    sqlx::query("UPDATE photos SET created_at = now() - interval '31 minutes' WHERE status = 'pending'")
        .execute(&app.db)
        .await
        .unwrap();
    let swept = async {
        while app.count("photos").await != 1 {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), swept).await.expect("swept within 20 s");
    assert!(!object.exists(), "its object is deleted");
    assert_eq!(storage().await, png(1, 1).len() as i64);
    let still = app.http().get(kept["url"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(still.status(), 200, "a confirmed photo is never swept");
}
