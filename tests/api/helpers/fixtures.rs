//! What tests arrange through the API as a client would: users and their sessions,
//! drafts, uploaded photos, and valid images to upload.
use super::TestApp;
use serde_json::{json, Value};
use uuid::Uuid;

/// A registered user and the session registration opened.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
}

impl TestApp {
    /// Registers a user with a unique e-mail starting with `name`.
    pub async fn register(&self, name: &str) -> TestUser {
        let email = format!("{name}-{}@example.com", &Uuid::new_v4().simple().to_string()[..8]);
        let password = "correct horse battery".to_string();
        let r = self
            .gql(
                None,
                "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken user { id } } }",
                json!({ "i": { "email": email, "password": password } }),
            )
            .await;
        let p = &r["data"]["register"];
        assert!(p.is_object(), "register failed: {r}");
        TestUser {
            id: p["user"]["id"].as_str().unwrap().parse().unwrap(),
            email,
            password,
            access: p["accessToken"].as_str().unwrap().to_owned(),
            refresh: p["refreshToken"].as_str().unwrap().to_owned(),
        }
    }

    /// Rotates `user`'s session: a fresh access token (after a change that revoked the
    /// old one, say) and the next refresh token.
    pub async fn refresh_session(&self, user: &mut TestUser) {
        let r = self
            .gql(
                None,
                "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken } }",
                json!({ "t": user.refresh }),
            )
            .await;
        let p = &r["data"]["refreshSession"];
        user.access = p["accessToken"].as_str().unwrap_or_else(|| panic!("refreshSession failed: {r}")).to_owned();
        user.refresh = p["refreshToken"].as_str().unwrap().to_owned();
    }

    /// Creates a draft as `token`; returns its id.
    pub async fn create_draft(&self, token: &str, title: &str) -> String {
        let r = self
            .gql(
                Some(token),
                "mutation($i: CreateDraftInput!) { createDraft(input: $i) { id } }",
                json!({ "i": { "title": title } }),
            )
            .await;
        r["data"]["createDraft"]["id"].as_str().unwrap_or_else(|| panic!("createDraft failed: {r}")).to_owned()
    }

    /// Uploads `bytes` as a photo of `content_type` through the presigned URL and
    /// confirms it, attached to `draft_id`; returns the confirmed photo.
    pub async fn upload_photo(&self, token: &str, draft_id: Option<&str>, content_type: &str, bytes: &[u8]) -> Value {
        let r = self
            .gql(
                Some(token),
                "mutation($ct: String!, $n: Int!, $d: ID) { createUpload(contentType: $ct, byteSize: $n, draftId: $d) {
                   photo { id } uploadUrl headers { name value } } }",
                json!({ "ct": content_type, "n": bytes.len(), "d": draft_id }),
            )
            .await;
        let up = &r["data"]["createUpload"];
        assert!(up.is_object(), "createUpload failed: {r}");
        let status = self.put_upload(up, bytes.to_vec()).await.status();
        assert!(status.is_success(), "upload answered {status}");
        let c = self
            .gql(
                Some(token),
                "mutation($p: ID!) { confirmUpload(photoId: $p) { id draftId position width height sha256 status url byteSize contentType } }",
                json!({ "p": up["photo"]["id"] }),
            )
            .await;
        assert!(c["data"]["confirmUpload"].is_object(), "confirmUpload failed: {c}");
        c["data"]["confirmUpload"].clone()
    }

    /// PUTs `body` to the presigned URL of a `createUpload` answer, with its headers.
    pub async fn put_upload(&self, upload: &Value, body: Vec<u8>) -> reqwest::Response {
        self.put_upload_to(upload["uploadUrl"].as_str().unwrap(), upload, body).await
    }

    /// PUTs `body` to `url` with the headers of a `createUpload` answer.
    pub async fn put_upload_to(&self, url: &str, upload: &Value, body: Vec<u8>) -> reqwest::Response {
        let mut put = self.client.put(url).body(body);
        for h in upload["headers"].as_array().unwrap() {
            put = put.header(h["name"].as_str().unwrap(), h["value"].as_str().unwrap());
        }
        put.send().await.unwrap()
    }
}

/// A valid PNG of `w`×`h` pixels (uncompressed, for tests).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
            }
        }
        !crc
    }
    fn adler32(bytes: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &x in bytes {
            a = (a + u32::from(x)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut c = kind.to_vec();
        c.extend(data);
        out.extend(&c);
        out.extend(crc32(&c).to_be_bytes());
    }
    let mut raw = Vec::new();
    for _ in 0..h {
        raw.push(0u8);
        raw.extend(std::iter::repeat_n(0x7Fu8, (w * 3) as usize));
    }
    // zlib stream of stored (uncompressed) deflate blocks.
    let mut z = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = raw.chunks(65535).collect();
    for (i, block) in blocks.iter().enumerate() {
        z.push(u8::from(i + 1 == blocks.len()));
        z.extend((block.len() as u16).to_le_bytes());
        z.extend((!(block.len() as u16)).to_le_bytes());
        z.extend(*block);
    }
    z.extend(adler32(&raw).to_be_bytes());
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    let mut out = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &z);
    chunk(&mut out, b"IEND", &[]);
    out
}
