//! Client-side `Encryption` (protocol.md §7 "Client side") with a data key the load
//! generator holds, so that many requests can share one data key — as real clients do,
//! and as the server's data-key cache is built for. `cardcheck_encryption::encrypt_params`
//! always draws a fresh key and does not hand it out, so the few lines are repeated here:
//! RSA PKCS#1 v1.5 wrap for AES-256-CBC, SM2 C1C3C2 (with `04`) for SM4-GCM, one random IV
//! per request shared by the fields, `TagList` in `EncryptList` order.

use aes_gcm::aead::array::Array;
use aes_gcm::aead::consts::U12;
use aes_gcm::{AeadInOut, AesGcm, KeyInit};
use anyhow::anyhow;
use base64::Engine as _;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockModeEncrypt, KeyIvInit};
use rsa::Pkcs1v15Encrypt;
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::pkcs8::DecodePublicKey;
use serde_json::{Map, Value};

use super::EncryptArg;

/// The fields BankCard2EVerification encrypts.
const FIELDS: [&str; 2] = ["Name", "BankCard"];

enum PublicKey {
    Rsa(Box<rsa::PublicKey>),
    Sm2(Box<sm2::PublicKey>),
}

/// Encrypts request parameters, with one reused data key or a fresh one each time.
pub struct Encryptor {
    alg: EncryptArg,
    public: PublicKey,
    /// `(data key, Base64 CiphertextBlob)` when the key is reused.
    reused: Option<(Vec<u8>, String)>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn random(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    rand::fill(&mut buf[..]);
    buf
}

impl Encryptor {
    /// `public_key_pem`: the server's RSA (AES-256-CBC) or SM2 (SM4-GCM) public key.
    pub fn new(alg: EncryptArg, public_key_pem: &str, fresh_key: bool) -> anyhow::Result<Self> {
        let pem = public_key_pem.trim();
        let public = match alg {
            EncryptArg::Aes256Cbc => PublicKey::Rsa(Box::new(
                rsa::PublicKey::from_pkcs1_pem(pem)
                    .or_else(|_| rsa::PublicKey::from_public_key_pem(pem))
                    .map_err(|_| anyhow!("AES-256-CBC needs the server's RSA public key (PEM)"))?,
            )),
            EncryptArg::Sm4Gcm => PublicKey::Sm2(Box::new(
                sm2::PublicKey::from_public_key_pem(pem)
                    .map_err(|_| anyhow!("SM4-GCM needs the server's SM2 public key (PEM)"))?,
            )),
        };
        let mut this = Encryptor {
            alg,
            public,
            reused: None,
        };
        if !fresh_key {
            let key = random(this.key_len());
            let blob = this.wrap(&key)?;
            this.reused = Some((key, blob));
        }
        Ok(this)
    }

    fn key_len(&self) -> usize {
        match self.alg {
            EncryptArg::Aes256Cbc => 32,
            EncryptArg::Sm4Gcm => 16,
        }
    }

    fn wrap(&self, key: &[u8]) -> anyhow::Result<String> {
        let blob = match &self.public {
            PublicKey::Rsa(public) => public
                .encrypt(&mut rand::rngs::SysRng, Pkcs1v15Encrypt, key)
                .map_err(|e| anyhow!("RSA encryption failed: {e}"))?,
            PublicKey::Sm2(public) => {
                sm2::pke::EncryptingKey::new_with_mode(**public, sm2::pke::Mode::C1C3C2)
                    .encrypt(&mut rand::rngs::SysRng, key)
                    .map_err(|e| anyhow!("SM2 encryption failed: {e}"))?
            }
        };
        Ok(b64(&blob))
    }

    /// Replaces `Name` and `BankCard` in `params` by their ciphertexts and adds the
    /// `Encryption` object.
    pub fn encrypt(&self, params: &mut Map<String, Value>) -> anyhow::Result<()> {
        let (key, blob) = match &self.reused {
            Some((key, blob)) => (key.clone(), blob.clone()),
            None => {
                let key = random(self.key_len());
                let blob = self.wrap(&key)?;
                (key, blob)
            }
        };
        let iv = random(match self.alg {
            EncryptArg::Aes256Cbc => 16,
            EncryptArg::Sm4Gcm => 12,
        });
        let mut tags = Vec::new();
        for field in FIELDS {
            let plain = match params.get(field) {
                Some(Value::String(s)) => s.clone(),
                _ => return Err(anyhow!("{field} must be a string to encrypt it")),
            };
            let cipher = match self.alg {
                EncryptArg::Aes256Cbc => {
                    let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &iv)
                        .map_err(|_| anyhow!("AES-256-CBC key setup failed"))?;
                    b64(&enc.encrypt_padded_vec::<Pkcs7>(plain.as_bytes()))
                }
                EncryptArg::Sm4Gcm => {
                    let cipher = AesGcm::<sm4::Sm4, U12>::new_from_slice(&key)
                        .map_err(|_| anyhow!("SM4-GCM key setup failed"))?;
                    let nonce = Array::<u8, U12>::try_from(&iv[..])
                        .map_err(|_| anyhow!("SM4-GCM nonce setup failed"))?;
                    let mut buf = plain.into_bytes();
                    let tag = cipher
                        .encrypt_inout_detached(&nonce, b"", buf.as_mut_slice().into())
                        .map_err(|_| anyhow!("SM4-GCM encryption failed"))?;
                    tags.push(Value::String(b64(&tag)));
                    b64(&buf)
                }
            };
            params.insert(field.to_owned(), Value::String(cipher));
        }
        let mut envelope = Map::new();
        envelope.insert(
            "EncryptList".into(),
            Value::Array(
                FIELDS
                    .iter()
                    .map(|f| Value::String((*f).to_owned()))
                    .collect(),
            ),
        );
        envelope.insert("CiphertextBlob".into(), Value::String(blob));
        envelope.insert("Iv".into(), Value::String(b64(&iv)));
        let alg = match self.alg {
            EncryptArg::Aes256Cbc => "AES-256-CBC",
            EncryptArg::Sm4Gcm => "SM4-GCM",
        };
        envelope.insert("Algorithm".into(), Value::String(alg.to_owned()));
        if self.alg == EncryptArg::Sm4Gcm {
            envelope.insert("TagList".into(), Value::Array(tags));
        }
        params.insert("Encryption".to_owned(), Value::Object(envelope));
        Ok(())
    }
}
