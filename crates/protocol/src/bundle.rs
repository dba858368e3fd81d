//! Trust bundles, format 2: a chain of signed versions, each sent whole ("full") or
//! as the change from a version the receiver holds ("delta").
//!
//! On the wire (docs/BUNDLE-FORMAT.md has the byte layout):
//! `"CSTB" | 0x02 | kind (1 full, 2 delta) | key id (32) | signature length (u16 BE) |
//! signature (DER ECDSA P-256 over SHA-256 of the payload) | payload (CBOR)`.
//! The payload carries the version [`Header`]; a header's hash covers the previous
//! header's hash and the digest of the lists, so one hash stands for a version's
//! whole history. Station and gateway both go through [`advance`]: a bundle is taken
//! only if it extends the chain held (or, after an explicit reset, with the
//! operator's confirmation).

use p256::ecdsa::signature::{Signer, Verifier};
use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::trust_lists::{
    pack, unpack, unpack_owned, Authority, Changes, ChangesWire, ListError, Revocation, TrustLists,
};

const MAGIC: &[u8; 4] = b"CSTB";
/// Allow-list bundles.
const FORMAT: u8 = 2;
/// Revocation-only bundles (an [`Authority`] in place of the allow-list): a receiver
/// built before them says "update" instead of misreading them.
const FORMAT_AUTHORITY: u8 = 3;
/// Allow-list bundles that mark attested certificates (and deltas that change the
/// marks): a receiver built before them says "update" rather than hash the version
/// differently and take the console for a fork.
const FORMAT_MARKS: u8 = 4;
/// The media type bundles and deltas are served with.
pub const MEDIA_TYPE: &str = "application/vnd.cardstation.trust-bundle";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("the trust bundle is malformed: {0}")]
    Malformed(String),
    #[error("the trust bundle's signature does not verify with the pinned console key: it was altered or signed by someone else. It was refused")]
    BadSignature,
    #[error("the pinned console key cannot be read: {0}")]
    Key(String),
    #[error("the console offered trust bundle version {offered}, older than version {held} held here. A rollback is refused; check the console was not restored from an old backup")]
    Rollback { held: u64, offered: u64 },
    #[error("the console's history of the trust bundle differs from the one held here at version {version}: held {held_hash}, the console says {offered_hash}. The console was probably restored from a backup, which would undo every revocation made since; it was refused and the held version stays in force. The console administrator must publish a new chain (`cardstation-console bundle reset`), which is then accepted here with an operator's confirmation")]
    Fork {
        version: u64,
        held_hash: String,
        offered_hash: String,
    },
    #[error("the console started a new trust bundle chain {chain} at version {version} (an explicit reset; the chain held here is {held_chain} at version {held_version}). It is taken only with an operator's confirmation: accept chain {chain} once the console administrator has confirmed the reset")]
    ResetOffered {
        chain: String,
        version: u64,
        held_chain: String,
        held_version: u64,
    },
    #[error("the delta starts at version {from}, but version {held} is held here; fetch the full bundle")]
    DeltaBase { from: u64, held: u64 },
    #[error("the delta does not produce the lists its signed header names (the lists held here differ from the console's): {0}. Fetch the full bundle")]
    DeltaMismatch(String),
}

/// One version of the chain. Its [`Header::hash`] is what the next version names as
/// `prev`, and what a station compares to notice a fork.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Header {
    /// Random on each reset: versions of different chains never extend one another.
    #[serde(with = "serde_bytes")]
    pub chain: [u8; 16],
    pub version: u64,
    pub issued_at: i64,
    pub expires_at: i64,
    /// The previous version's hash; all zero for the first version of a chain.
    #[serde(with = "serde_bytes")]
    pub prev: [u8; 32],
    /// [`TrustLists::digest`] of this version's lists.
    #[serde(with = "serde_bytes")]
    pub content: [u8; 32],
    // Absent from a revocation-only header when zero (see `Serialize`).
    #[serde(default)]
    pub allowed: u64,
    #[serde(default)]
    pub revoked: u64,
    #[serde(default)]
    pub revoked_keys: u64,
    /// Revocation-only versions (format 3): the number of issuing CAs and revoked
    /// ids, and the issued-up-to mark. Zero (and absent on the wire) otherwise.
    #[serde(default)]
    pub authorities: u64,
    #[serde(default)]
    pub revoked_ids: u64,
    #[serde(default)]
    pub issued_up_to: i64,
    /// How many allowed certificates are marked attested (format 4); absent when zero.
    #[serde(default)]
    pub attested: u64,
    /// A revocation-only version's attested-since mark (format 4); absent when zero.
    #[serde(default)]
    pub attested_since: i64,
}

/// An allow-list header carries every count, as receivers built before format 3
/// expect; a revocation-only header leaves out what is zero (its deltas stay small).
impl Serialize for Header {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let authority = self.has_authority();
        let counts = [
            ("allowed", self.allowed, true),
            ("revoked", self.revoked, true),
            ("revoked_keys", self.revoked_keys, true),
            ("authorities", self.authorities, false),
            ("revoked_ids", self.revoked_ids, false),
            ("issued_up_to", self.issued_up_to.unsigned_abs(), false),
        ];
        let written = |(_, n, before_format_3): &(&str, u64, bool)| {
            *n != 0 || (*before_format_3 && !authority)
        };
        // CBOR maps carry their length: count the fields that are written.
        let len = 6
            + counts.iter().filter(|c| written(c)).count()
            + usize::from(self.attested != 0)
            + usize::from(self.attested_since != 0);
        let mut st = s.serialize_struct("Header", len)?;
        st.serialize_field("chain", serde_bytes::Bytes::new(&self.chain))?;
        st.serialize_field("version", &self.version)?;
        st.serialize_field("issued_at", &self.issued_at)?;
        st.serialize_field("expires_at", &self.expires_at)?;
        st.serialize_field("prev", serde_bytes::Bytes::new(&self.prev))?;
        st.serialize_field("content", serde_bytes::Bytes::new(&self.content))?;
        for count in &counts[..5] {
            if written(count) {
                st.serialize_field(count.0, &count.1)?;
            }
        }
        if self.issued_up_to != 0 {
            st.serialize_field("issued_up_to", &self.issued_up_to)?;
        }
        if self.attested != 0 {
            st.serialize_field("attested", &self.attested)?;
        }
        if self.attested_since != 0 {
            st.serialize_field("attested_since", &self.attested_since)?;
        }
        st.end()
    }
}

impl Header {
    /// A revocation-only version's header (format 3).
    pub fn has_authority(&self) -> bool {
        self.authorities != 0 || self.revoked_ids != 0 || self.issued_up_to != 0
    }

    /// SHA-256 over the fields in a fixed layout (not over their CBOR, so any
    /// implementation computes the same hash).
    pub fn hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"cardstation-bundle-header-2");
        h.update(self.chain);
        h.update(self.version.to_be_bytes());
        h.update(self.issued_at.to_be_bytes());
        h.update(self.expires_at.to_be_bytes());
        h.update(self.prev);
        h.update(self.content);
        h.update(self.allowed.to_be_bytes());
        h.update(self.revoked.to_be_bytes());
        h.update(self.revoked_keys.to_be_bytes());
        // Hashed only when present: allow-list versions keep the hashes they had.
        if self.has_authority() {
            h.update(b"authority");
            h.update(self.authorities.to_be_bytes());
            h.update(self.revoked_ids.to_be_bytes());
            h.update(self.issued_up_to.to_be_bytes());
        }
        if self.attested != 0 {
            h.update(b"attested");
            h.update(self.attested.to_be_bytes());
        }
        if self.attested_since != 0 {
            h.update(b"attested-since");
            h.update(self.attested_since.to_be_bytes());
        }
        h.finalize().into()
    }

    /// The header of `lists` as the version after `prev` (or the first of `chain`).
    pub fn for_lists(
        chain: [u8; 16],
        version: u64,
        issued_at: i64,
        expires_at: i64,
        prev: [u8; 32],
        lists: &TrustLists,
    ) -> Header {
        Header {
            chain,
            version,
            issued_at,
            expires_at,
            prev,
            content: lists.digest(),
            allowed: lists.allowed().len() as u64,
            revoked: lists.revoked().len() as u64,
            revoked_keys: lists.revoked_keys().len() as u64,
            authorities: lists.authority().map_or(0, |a| a.cas.len() as u64),
            revoked_ids: lists.authority().map_or(0, |a| a.revoked_ids.len() as u64),
            issued_up_to: lists.authority().map_or(0, |a| a.issued_up_to),
            attested: lists.attested().len() as u64,
            attested_since: lists.authority().map_or(0, |a| a.attested_since),
        }
    }

    /// Whether the version carries attestation marks (format 4).
    pub fn marks_attestation(&self) -> bool {
        self.attested != 0 || self.attested_since != 0
    }
}

/// A version and its hash, as the console knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub version: u64,
    #[serde(with = "serde_bytes")]
    pub hash: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct FullPayload {
    kind: String,
    header: Header,
    #[serde(with = "serde_bytes")]
    allowed: Vec<u8>,
    revoked: Vec<Revocation>,
    #[serde(with = "serde_bytes")]
    revoked_keys: Vec<u8>,
    /// Revocation-only versions: the issuing CA certificates (DER) and the revoked
    /// ids (16 bytes each, back to back).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    authorities: Vec<serde_bytes::ByteBuf>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    revoked_ids: Vec<u8>,
    /// Format 4: the allowed certificates whose key was attested (32 bytes each).
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    attested: Vec<u8>,
    /// Recent versions of this chain (newest last): lets a receiver several versions
    /// behind check that what it holds is in this version's history.
    ancestors: Vec<Link>,
}

#[derive(Serialize, Deserialize)]
struct DeltaPayload<C = ChangesWire> {
    kind: String,
    header: Header,
    from: Link,
    changes: C,
}

/// An allow-list delta's changes as receivers built before format 3 read them:
/// every list present, empty or not.
#[derive(Serialize)]
struct EveryList {
    #[serde(with = "serde_bytes")]
    allowed_add: Vec<u8>,
    #[serde(with = "serde_bytes")]
    allowed_remove: Vec<u8>,
    revoked_add: Vec<Revocation>,
    #[serde(with = "serde_bytes")]
    revoked_remove: Vec<u8>,
    #[serde(with = "serde_bytes")]
    keys_add: Vec<u8>,
    #[serde(with = "serde_bytes")]
    keys_remove: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Full = 1,
    Delta = 2,
}

/// A full version, verified.
#[derive(Debug, Clone)]
pub struct Full {
    pub header: Header,
    pub lists: TrustLists,
    pub ancestors: Vec<Link>,
}

/// A delta, verified (its result is checked against the held lists in [`advance`]).
#[derive(Debug, Clone)]
pub struct Delta {
    pub header: Header,
    pub from: Link,
    pub changes: Changes,
}

#[derive(Debug, Clone)]
pub enum Opened {
    Full(Full),
    Delta(Delta),
}

impl Opened {
    pub fn header(&self) -> &Header {
        match self {
            Opened::Full(f) => &f.header,
            Opened::Delta(d) => &d.header,
        }
    }
}

fn cbor<T: Serialize>(v: &T, size_hint: usize) -> Result<Vec<u8>, BundleError> {
    let mut out = Vec::with_capacity(size_hint);
    ciborium::into_writer(v, &mut out).map_err(|e| BundleError::Malformed(e.to_string()))?;
    Ok(out)
}

fn frame(kind: Kind, format: u8, payload: &[u8], key: &SigningKey) -> Result<Vec<u8>, BundleError> {
    let sig: Signature = key.sign(payload);
    // Format 3 carries the fixed 64-byte r‖s (its deltas are counted in bytes);
    // format 2 keeps DER, as receivers built before format 3 read it.
    let (der, raw) = (sig.to_der(), sig.to_bytes());
    let sig: &[u8] = if format != FORMAT {
        &raw
    } else {
        der.as_bytes()
    };
    let mut out = Vec::with_capacity(4 + 2 + 32 + 2 + sig.len() + payload.len());
    out.extend_from_slice(MAGIC);
    out.push(format);
    out.push(kind as u8);
    out.extend_from_slice(&key_id_bytes(key.verifying_key())?);
    out.extend_from_slice(&(sig.len() as u16).to_be_bytes());
    out.extend_from_slice(sig);
    out.extend_from_slice(payload);
    Ok(out)
}

/// Sign a full version (console side).
pub fn sign_full(
    header: &Header,
    lists: &TrustLists,
    ancestors: &[Link],
    key: &SigningKey,
) -> Result<Vec<u8>, BundleError> {
    let authority = lists.authority();
    let hint = 256
        + 32 * (lists.allowed().len() + lists.revoked_keys().len())
        + 64 * lists.revoked().len()
        + 48 * ancestors.len()
        + authority.map_or(0, |a| {
            16 * a.revoked_ids.len() + a.cas.iter().map(|c| c.len() + 8).sum::<usize>()
        });
    let payload = cbor(
        &FullPayload {
            kind: "full".into(),
            header: *header,
            allowed: pack(lists.allowed()),
            revoked: lists.revoked().to_vec(),
            revoked_keys: pack(lists.revoked_keys()),
            authorities: authority.map_or_else(Vec::new, |a| {
                a.cas
                    .iter()
                    .cloned()
                    .map(serde_bytes::ByteBuf::from)
                    .collect()
            }),
            revoked_ids: authority.map_or_else(Vec::new, |a| pack(&a.revoked_ids)),
            attested: pack(lists.attested()),
            ancestors: ancestors.to_vec(),
        },
        hint,
    )?;
    let format = if header.marks_attestation() {
        FORMAT_MARKS
    } else if header.has_authority() {
        FORMAT_AUTHORITY
    } else {
        FORMAT
    };
    frame(Kind::Full, format, &payload, key)
}

/// Sign the change from `from` to the version `header` (console side).
pub fn sign_delta(
    header: &Header,
    from: Link,
    changes: &Changes,
    key: &SigningKey,
) -> Result<Vec<u8>, BundleError> {
    let wire = ChangesWire::from(changes);
    let hint = 256 + 64 * changes.len();
    // A delta that adds, changes or removes an authority is format 3, whatever the
    // version it leads to.
    let revocation_only = header.has_authority()
        || changes.cas.is_some()
        || !changes.ids_add.is_empty()
        || !changes.ids_remove.is_empty();
    // Likewise a delta that leads to, or changes, attestation marks is format 4.
    let marks = header.marks_attestation() || changes.marks_attestation();
    let payload = if revocation_only || marks {
        cbor(
            &DeltaPayload {
                kind: "delta".into(),
                header: *header,
                from,
                changes: wire,
            },
            hint,
        )?
    } else {
        cbor(
            &DeltaPayload {
                kind: "delta".into(),
                header: *header,
                from,
                changes: EveryList {
                    allowed_add: wire.allowed_add,
                    allowed_remove: wire.allowed_remove,
                    revoked_add: wire.revoked_add,
                    revoked_remove: wire.revoked_remove,
                    keys_add: wire.keys_add,
                    keys_remove: wire.keys_remove,
                },
            },
            hint,
        )?
    };
    let format = if marks {
        FORMAT_MARKS
    } else if revocation_only {
        FORMAT_AUTHORITY
    } else {
        FORMAT
    };
    frame(Kind::Delta, format, &payload, key)
}

/// The kind and signing key id of framed bytes, without verifying anything.
pub fn peek(bytes: &[u8]) -> Result<(Kind, [u8; 32]), BundleError> {
    let bad = |m: &str| BundleError::Malformed(m.to_string());
    if bytes.len() < 40 || &bytes[..4] != MAGIC {
        return Err(bad(
            "not a trust bundle (no CSTB header); is the bundle URL right?",
        ));
    }
    if ![FORMAT, FORMAT_AUTHORITY, FORMAT_MARKS].contains(&bytes[4]) {
        return Err(BundleError::Malformed(format!(
            "trust bundle format {} is not understood here (this build reads formats {FORMAT} to {FORMAT_MARKS}); update the station or gateway",
            bytes[4]
        )));
    }
    let kind = match bytes[5] {
        1 => Kind::Full,
        2 => Kind::Delta,
        k => return Err(BundleError::Malformed(format!("unknown bundle kind {k}"))),
    };
    let mut key_id = [0u8; 32];
    key_id.copy_from_slice(&bytes[6..38]);
    Ok((kind, key_id))
}

/// Verify the signature, then parse and check the payload. Lists must be sorted
/// and a full version's lists must match its header.
pub fn open(bytes: &[u8], key: &VerifyingKey) -> Result<Opened, BundleError> {
    let (kind, _) = peek(bytes)?;
    let sig_len = usize::from(u16::from_be_bytes([bytes[38], bytes[39]]));
    let rest = &bytes[40..];
    if rest.len() < sig_len {
        return Err(BundleError::Malformed("truncated signature".into()));
    }
    let (sig, payload) = rest.split_at(sig_len);
    let sig = if bytes[4] != FORMAT {
        Signature::from_slice(sig)
    } else {
        Signature::from_der(sig)
    }
    .map_err(|_| BundleError::BadSignature)?;
    key.verify(payload, &sig)
        .map_err(|_| BundleError::BadSignature)?;
    let list = |e: ListError| BundleError::Malformed(e.to_string());
    match kind {
        Kind::Full => {
            let p: FullPayload = ciborium::from_reader(payload)
                .map_err(|e| BundleError::Malformed(format!("payload: {e}")))?;
            if p.kind != "full" {
                return Err(BundleError::Malformed("payload kind is not full".into()));
            }
            let lists = TrustLists::new(
                unpack_owned(p.allowed, "allowed").map_err(list)?,
                p.revoked,
                unpack_owned(p.revoked_keys, "revoked keys").map_err(list)?,
            )
            .map_err(list)?;
            let lists = if p.header.has_authority() {
                lists
                    .with_authority(Authority {
                        cas: p
                            .authorities
                            .into_iter()
                            .map(serde_bytes::ByteBuf::into_vec)
                            .collect(),
                        revoked_ids: unpack(&p.revoked_ids, "revoked ids").map_err(list)?,
                        issued_up_to: p.header.issued_up_to,
                        attested_since: p.header.attested_since,
                    })
                    .map_err(list)?
            } else {
                lists
            };
            let lists = lists
                .with_attested(unpack_owned(p.attested, "attested").map_err(list)?)
                .map_err(list)?;
            if Header::for_lists(
                p.header.chain,
                p.header.version,
                p.header.issued_at,
                p.header.expires_at,
                p.header.prev,
                &lists,
            ) != p.header
            {
                return Err(BundleError::Malformed(
                    "the lists do not match the digest in the signed header".into(),
                ));
            }
            Ok(Opened::Full(Full {
                header: p.header,
                lists,
                ancestors: p.ancestors,
            }))
        }
        Kind::Delta => {
            let p: DeltaPayload = ciborium::from_reader(payload)
                .map_err(|e| BundleError::Malformed(format!("payload: {e}")))?;
            if p.kind != "delta" {
                return Err(BundleError::Malformed("payload kind is not delta".into()));
            }
            if p.from.version > p.header.version {
                return Err(BundleError::Malformed(
                    "the delta goes backwards in version".into(),
                ));
            }
            let mut changes = Changes::try_from(p.changes).map_err(list)?;
            changes.issued_up_to = Some(p.header.issued_up_to);
            changes.attested_since = Some(p.header.attested_since);
            Ok(Opened::Delta(Delta {
                header: p.header,
                from: p.from,
                changes,
            }))
        }
    }
}

/// Where to fetch: the delta from `since` (when a version is held) and the full
/// bundle. From the console API (`{api}/v1/trust-bundle[?since=V]`), or from files
/// `cardstation-console publish` wrote, served at `bundle_url`
/// (`{bundle_url}/deltas/V.cstb`, `{bundle_url}/trust-bundle.cstb`).
pub fn fetch_urls(
    api: &str,
    bundle_url: Option<&str>,
    since: Option<u64>,
) -> (Option<String>, String) {
    match bundle_url {
        Some(base) => {
            let base = base.trim_end_matches('/');
            (
                since.map(|v| format!("{base}/deltas/{v}.cstb")),
                format!("{base}/trust-bundle.cstb"),
            )
        }
        None => {
            let api = api.trim_end_matches('/');
            (
                since.map(|v| format!("{api}/v1/trust-bundle?since={v}")),
                format!("{api}/v1/trust-bundle"),
            )
        }
    }
}

/// The largest bundle accepted (a million cards take ~35 MB).
pub const MAX_BUNDLE_BYTES: u64 = 512 * 1024 * 1024;

/// Bytes a bundle's header must arrive within: framing, signature and the start of
/// the payload (`kind`, then `header`, as [`sign_full`] and [`sign_delta`] write them).
pub const HEADER_WITHIN: usize = 4096;

/// What the start of a bundle says about its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeLimit {
    /// Not enough bytes yet to read the header.
    More,
    /// The bundle cannot honestly be longer than this many bytes.
    AtMost(u64),
    /// The header gives no bound (a delta: its removals are not counted there).
    Unknown,
}

/// The most bytes a bundle that begins with `prefix` can honestly take, read from
/// its (not yet verified) header, so a download can stop at that size instead of
/// reading whatever a server sends. An error: `prefix` is no bundle of this format
/// (opening it says the same).
pub fn size_limit(prefix: &[u8]) -> Result<SizeLimit, BundleError> {
    let more = |have: usize| {
        if have >= HEADER_WITHIN {
            Err(BundleError::Malformed(format!(
                "no bundle header within the first {HEADER_WITHIN} bytes"
            )))
        } else {
            Ok(SizeLimit::More)
        }
    };
    if prefix.len() < 40 {
        let n = prefix.len().min(4);
        if prefix[..n] != MAGIC[..n] {
            return peek(prefix).map(|_| SizeLimit::More);
        }
        return Ok(SizeLimit::More);
    }
    let (kind, _) = peek(prefix)?;
    let start = 40 + usize::from(u16::from_be_bytes([prefix[38], prefix[39]]));
    let Some(payload) = prefix.get(start..) else {
        return more(prefix.len());
    };
    let lead: Lead = match ciborium::from_reader(payload) {
        Ok(lead) => lead,
        Err(ciborium::de::Error::Io(_)) => return more(prefix.len()),
        Err(e) => return Err(BundleError::Malformed(format!("payload: {e}"))),
    };
    let Some(h) = lead.0 else {
        return Err(BundleError::Malformed(
            "the payload does not begin with its header".into(),
        ));
    };
    if kind == Kind::Delta {
        return Ok(SizeLimit::Unknown);
    }
    // Each entry at its largest encoding, plus the framing, the ancestors (256 are
    // served; four times that allowed) and the header itself.
    const SLACK: u64 = 64 * 1024;
    const PER_FINGERPRINT: u64 = 32;
    const PER_REVOCATION: u64 = 256;
    const ANCESTORS: u64 = 1024 * 64;
    const PER_ID: u64 = 16;
    // An issuing CA certificate is a few hundred bytes; a generous bound.
    const PER_AUTHORITY: u64 = 16 * 1024;
    Ok(SizeLimit::AtMost(
        (start as u64)
            .saturating_add(SLACK)
            .saturating_add(ANCESTORS)
            .saturating_add(h.allowed.saturating_mul(PER_FINGERPRINT))
            .saturating_add(h.revoked_keys.saturating_mul(PER_FINGERPRINT))
            .saturating_add(h.attested.saturating_mul(PER_FINGERPRINT))
            .saturating_add(h.revoked.saturating_mul(PER_REVOCATION))
            .saturating_add(h.revoked_ids.saturating_mul(PER_ID))
            .saturating_add(h.authorities.saturating_mul(PER_AUTHORITY)),
    ))
}

/// The payload's header, read without the rest: the map is left at its `header`
/// entry (ciborium does not ask for the remaining entries).
struct Lead(Option<Header>);

impl<'de> Deserialize<'de> for Lead {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Lead;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a bundle payload map")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Lead, A::Error> {
                while let Some(key) = map.next_key::<String>()? {
                    if key == "header" {
                        return Ok(Lead(Some(map.next_value::<Header>()?)));
                    }
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
                Ok(Lead(None))
            }
        }
        d.deserialize_map(V)
    }
}

/// What a station or gateway holds: one version of one chain and its lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustView {
    pub header: Header,
    pub hash: [u8; 32],
    pub lists: TrustLists,
}

impl TrustView {
    pub fn of(header: Header, lists: TrustLists) -> TrustView {
        TrustView {
            hash: header.hash(),
            header,
            lists,
        }
    }

    pub fn chain_hex(&self) -> String {
        hex::encode(self.header.chain)
    }

    /// The status an operator sees, as of `now`.
    pub fn status(&self, fetched_at: i64, now: i64, key_id: &str) -> TrustStatus {
        TrustStatus {
            version: self.header.version,
            issued_at: self.header.issued_at,
            expires_at: self.header.expires_at,
            fetched_at,
            age_secs: (now - self.header.issued_at).max(0),
            expired: now >= self.header.expires_at,
            allowed: self.lists.allowed().len(),
            revoked: self.lists.revoked().len(),
            revoked_keys: self.lists.revoked_keys().len(),
            issuing_cas: self.lists.authority().map_or(0, |a| a.cas.len()),
            revoked_ids: self.lists.authority().map_or(0, |a| a.revoked_ids.len()),
            issued_up_to: self.lists.authority().map(|a| a.issued_up_to),
            attested: self.lists.attested().len(),
            attested_since: self
                .lists
                .authority()
                .map(|a| a.attested_since)
                .filter(|&t| t != 0),
            chain: self.chain_hex(),
            hash: hex::encode(self.hash),
            key_id: key_id.to_string(),
        }
    }
}

/// What [`advance`] decided about received bytes.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one per fetch, moved straight into storage
pub enum Advance {
    /// The version held already (fetched again, or an empty delta).
    Unchanged,
    /// A new version: keep `view`; `replaces_base` says whether the received bytes
    /// were a full version (store them as the new base) or a delta (store it after the
    /// ones held). `history_checked` is false only when the receiver was so far behind
    /// that the console no longer lists its version.
    Advanced {
        view: TrustView,
        replaces_base: bool,
        history_checked: bool,
    },
}

/// Whether `confirm` (an operator's answer) names `chain`: its hex, or at least the
/// first 8 digits of it.
pub fn confirms_chain(confirm: Option<&str>, chain: &[u8; 16]) -> bool {
    let hex = hex::encode(chain);
    confirm.is_some_and(|c| {
        let c = c.trim().to_ascii_lowercase();
        c.len() >= 8 && hex.starts_with(&c)
    })
}

/// Take `received` (already [`open`]ed) as the next state after `held`, or refuse it.
/// `floor` is the highest version ever accepted (a rollback below it is refused even
/// when nothing is held any more). `accept_reset` is an operator's confirmation of a
/// new chain (see [`confirms_chain`]).
pub fn advance(
    held: Option<&TrustView>,
    floor: Option<u64>,
    received: Opened,
    accept_reset: Option<&str>,
) -> Result<Advance, BundleError> {
    let offered = *received.header();
    let Some(held) = held else {
        return match received {
            Opened::Delta(d) => Err(BundleError::DeltaBase {
                from: d.from.version,
                held: 0,
            }),
            Opened::Full(f) => {
                if let Some(floor) = floor {
                    if f.header.version < floor && !confirms_chain(accept_reset, &f.header.chain) {
                        return Err(BundleError::Rollback {
                            held: floor,
                            offered: f.header.version,
                        });
                    }
                }
                Ok(Advance::Advanced {
                    view: TrustView::of(f.header, f.lists),
                    replaces_base: true,
                    history_checked: false,
                })
            }
        };
    };
    if offered.chain != held.header.chain {
        if !confirms_chain(accept_reset, &offered.chain) {
            return Err(BundleError::ResetOffered {
                chain: hex::encode(offered.chain),
                version: offered.version,
                held_chain: held.chain_hex(),
                held_version: held.header.version,
            });
        }
        return match received {
            Opened::Full(f) => Ok(Advance::Advanced {
                view: TrustView::of(f.header, f.lists),
                replaces_base: true,
                history_checked: false,
            }),
            Opened::Delta(d) => Err(BundleError::DeltaBase {
                from: d.from.version,
                held: held.header.version,
            }),
        };
    }
    let floor = floor.unwrap_or(0).max(held.header.version);
    if offered.version < floor {
        return Err(BundleError::Rollback {
            held: floor,
            offered: offered.version,
        });
    }
    let fork = |version: u64, offered_hash: [u8; 32]| BundleError::Fork {
        version,
        held_hash: hex::encode(held.hash),
        offered_hash: hex::encode(offered_hash),
    };
    let offered_hash = offered.hash();
    if offered.version == held.header.version {
        return if offered_hash == held.hash {
            Ok(Advance::Unchanged)
        } else {
            Err(fork(offered.version, offered_hash))
        };
    }
    match received {
        Opened::Full(f) => {
            let known = f
                .ancestors
                .iter()
                .find(|l| l.version == held.header.version)
                .copied();
            let oldest = f.ancestors.iter().map(|l| l.version).min();
            let history_checked = match known {
                Some(l) if l.hash == held.hash => true,
                Some(l) => return Err(fork(l.version, l.hash)),
                // A version the console lists no more: too far behind to check.
                None if oldest.is_some_and(|o| o > held.header.version) => false,
                // Within the listed range (or nothing listed) yet absent: not our history.
                None => return Err(fork(held.header.version, [0; 32])),
            };
            Ok(Advance::Advanced {
                view: TrustView::of(f.header, f.lists),
                replaces_base: true,
                history_checked,
            })
        }
        Opened::Delta(d) => {
            if d.from.version != held.header.version {
                return Err(BundleError::DeltaBase {
                    from: d.from.version,
                    held: held.header.version,
                });
            }
            if d.from.hash != held.hash {
                return Err(fork(d.from.version, d.from.hash));
            }
            let lists = held
                .lists
                .apply(&d.changes)
                .map_err(|e| BundleError::DeltaMismatch(e.to_string()))?;
            let expect = Header::for_lists(
                d.header.chain,
                d.header.version,
                d.header.issued_at,
                d.header.expires_at,
                d.header.prev,
                &lists,
            );
            if expect != d.header {
                return Err(BundleError::DeltaMismatch(
                    "the digest of the lists after the change differs".into(),
                ));
            }
            Ok(Advance::Advanced {
                view: TrustView::of(d.header, lists),
                replaces_base: false,
                history_checked: true,
            })
        }
    }
}

/// Rebuild what is held from stored bytes: a full version and the deltas taken after
/// it, each verified again (stored bytes are trusted for their signatures only).
pub fn replay(
    base: &[u8],
    deltas: &[Vec<u8>],
    key: &VerifyingKey,
) -> Result<TrustView, BundleError> {
    let Opened::Full(f) = open(base, key)? else {
        return Err(BundleError::Malformed(
            "the stored base is a delta, not a full bundle".into(),
        ));
    };
    let mut view = TrustView::of(f.header, f.lists);
    for d in deltas {
        match advance(Some(&view), None, open(d, key)?, None)? {
            Advance::Advanced {
                view: v,
                replaces_base: false,
                ..
            } => view = v,
            _ => {
                return Err(BundleError::Malformed(format!(
                    "a stored delta does not follow version {}",
                    view.header.version
                )))
            }
        }
    }
    Ok(view)
}

/// SHA-256 of the key's SubjectPublicKeyInfo.
fn key_id_bytes(key: &VerifyingKey) -> Result<[u8; 32], BundleError> {
    let der = key
        .to_public_key_der()
        .map_err(|e| BundleError::Key(e.to_string()))?;
    Ok(Sha256::digest(der.as_bytes()).into())
}

/// SHA-256 (hex) of the key's SubjectPublicKeyInfo.
pub fn key_id(key: &VerifyingKey) -> Result<String, BundleError> {
    Ok(hex::encode(key_id_bytes(key)?))
}

/// Read a PEM public key ("PUBLIC KEY") such as bundle-signing.pub.pem.
pub fn verifying_key_from_pem(pem: &str) -> Result<VerifyingKey, BundleError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|e| BundleError::Key(e.to_string()))
}

/// A held trust bundle as an operator (or a gateway's status) sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrustStatus {
    pub version: u64,
    pub issued_at: i64,
    pub expires_at: i64,
    pub fetched_at: i64,
    /// Seconds since the version was signed.
    pub age_secs: i64,
    pub expired: bool,
    pub allowed: usize,
    pub revoked: usize,
    pub revoked_keys: usize,
    /// A revocation-only version: its issuing CAs, revoked ids and issued-up-to mark.
    pub issuing_cas: usize,
    pub revoked_ids: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issued_up_to: Option<i64>,
    /// Allowed certificates marked attested (keys proven generated on the card).
    #[serde(default)]
    pub attested: usize,
    /// A revocation-only version: since when its CA issues only for attested keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attested_since: Option<i64>,
    /// The chain (changes only on an explicit reset) and this version's hash, hex.
    pub chain: String,
    pub hash: String,
    pub key_id: String,
}

impl TrustStatus {
    /// The counts an operator reads: an allow-list's, or a revocation-only version's.
    pub fn counts(&self) -> String {
        if self.issuing_cas > 0 || self.issued_up_to.is_some() {
            let revoked = self.revoked_ids + self.revoked + self.revoked_keys;
            format!(
                "revocations only: {} issuing CA{}, {revoked} revoked",
                self.issuing_cas,
                if self.issuing_cas == 1 { "" } else { "s" }
            )
        } else if self.attested > 0 {
            format!(
                "{} allowed ({} attested), {} revoked",
                self.allowed, self.attested, self.revoked
            )
        } else {
            format!("{} allowed, {} revoked", self.allowed, self.revoked)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;
    use crate::trust_lists::Fingerprint;

    fn fp(n: u8) -> Fingerprint {
        [n; 32]
    }

    fn lists(allowed: &[u8], revoked: &[u8]) -> TrustLists {
        TrustLists::from_unsorted(
            allowed.iter().map(|&n| fp(n)).collect(),
            revoked
                .iter()
                .map(|&n| Revocation {
                    fp: fp(n),
                    reason: "lost".into(),
                    at: 7,
                })
                .collect(),
            vec![],
        )
    }

    /// A console in miniature: versions of one chain.
    struct Chain {
        key: SigningKey,
        id: [u8; 16],
        versions: Vec<(Header, TrustLists)>,
    }

    impl Chain {
        fn new(id: u8) -> Chain {
            Chain {
                key: SigningKey::random(&mut rand::rngs::OsRng),
                id: [id; 16],
                versions: vec![],
            }
        }
        fn push(&mut self, l: TrustLists) -> Header {
            let (version, prev) = match self.versions.last() {
                Some((h, _)) => (h.version + 1, h.hash()),
                None => (1, [0; 32]),
            };
            let h = Header::for_lists(self.id, version, 100, 1000, prev, &l);
            self.versions.push((h, l));
            h
        }
        fn full(&self) -> Vec<u8> {
            let (h, l) = self.versions.last().unwrap();
            let anc: Vec<Link> = self
                .versions
                .iter()
                .map(|(h, _)| Link {
                    version: h.version,
                    hash: h.hash(),
                })
                .collect();
            sign_full(h, l, &anc, &self.key).unwrap()
        }
        fn delta_from(&self, v: u64) -> Vec<u8> {
            let (from_h, from_l) = &self.versions[(v - 1) as usize];
            let (h, l) = self.versions.last().unwrap();
            sign_delta(
                h,
                Link {
                    version: from_h.version,
                    hash: from_h.hash(),
                },
                &from_l.diff(l),
                &self.key,
            )
            .unwrap()
        }
        fn vk(&self) -> VerifyingKey {
            *self.key.verifying_key()
        }
    }

    fn take(
        held: Option<&TrustView>,
        bytes: &[u8],
        vk: &VerifyingKey,
    ) -> Result<TrustView, BundleError> {
        match advance(held, None, open(bytes, vk)?, None)? {
            Advance::Advanced { view, .. } => Ok(view),
            Advance::Unchanged => Ok(held.unwrap().clone()),
        }
    }

    #[test]
    fn a_delta_gives_the_same_view_as_the_full_bundle() {
        let mut c = Chain::new(1);
        c.push(lists(&[1, 2], &[]));
        let base = c.full();
        let v1 = take(None, &base, &c.vk()).unwrap();
        c.push(lists(&[2, 3], &[1]));
        c.push(lists(&[2, 3, 4], &[1]));
        let by_delta = take(Some(&v1), &c.delta_from(1), &c.vk()).unwrap();
        let by_full = take(Some(&v1), &c.full(), &c.vk()).unwrap();
        assert_eq!(by_delta, by_full);
        assert_eq!(by_delta.header.version, 3);
        assert!(by_delta.lists.revocation(&fp(1)).is_some());
        // What is stored (base and deltas) replays to the same view...
        assert_eq!(replay(&base, &[c.delta_from(1)], &c.vk()).unwrap(), by_full);
        // ...but not over a base the delta was not made for.
        assert!(replay(&c.full(), &[c.delta_from(1)], &c.vk()).is_err());
    }

    #[test]
    fn a_tampered_delta_is_refused() {
        let mut c = Chain::new(1);
        c.push(lists(&[1], &[]));
        let v1 = take(None, &c.full(), &c.vk()).unwrap();
        c.push(lists(&[1, 2], &[]));
        let mut d = c.delta_from(1);
        let n = d.len();
        d[n - 3] ^= 1;
        assert_eq!(open(&d, &c.vk()).unwrap_err(), BundleError::BadSignature);
        // Signed by another key.
        let other = Chain::new(1);
        assert_eq!(
            open(&c.delta_from(1), &other.vk()).unwrap_err(),
            BundleError::BadSignature
        );
        // Correctly signed but made for other lists: the digest tells.
        let wrong = sign_delta(
            &c.versions[1].0,
            Link {
                version: 1,
                hash: c.versions[0].0.hash(),
            },
            &Changes {
                allowed_add: vec![fp(3)],
                ..Changes::default()
            },
            &c.key,
        )
        .unwrap();
        assert!(matches!(
            take(Some(&v1), &wrong, &c.vk()),
            Err(BundleError::DeltaMismatch(_))
        ));
    }

    #[test]
    fn a_restored_console_is_a_fork_and_a_reset_needs_confirmation() {
        let mut c = Chain::new(1);
        c.push(lists(&[1], &[]));
        c.push(lists(&[1, 2], &[]));
        let mut restored = Chain {
            key: c.key.clone(),
            id: c.id,
            versions: c.versions[..1].to_vec(),
        };
        c.push(lists(&[2], &[1])); // version 3: card 1 revoked
        let held = take(None, &c.full(), &c.vk()).unwrap();
        // The backup (version 1) goes on: its version 2 and 3 differ.
        restored.push(lists(&[1, 5], &[]));
        let r3 = restored.push(lists(&[1, 5, 6], &[]));
        let err = take(Some(&held), &restored.full(), &c.vk()).unwrap_err();
        match &err {
            BundleError::Fork {
                version,
                held_hash,
                offered_hash,
            } => {
                assert_eq!(*version, 3);
                assert_eq!(held_hash, &hex::encode(held.hash));
                assert_eq!(offered_hash, &hex::encode(r3.hash()));
            }
            e => panic!("expected a fork, got {e:?}"),
        }
        assert!(err.to_string().contains("bundle reset"), "{err}");
        restored.push(lists(&[1, 5, 6, 7], &[]));
        assert!(matches!(
            take(Some(&held), &restored.full(), &c.vk()),
            Err(BundleError::Fork { version: 3, .. })
        ));
        assert!(matches!(
            take(Some(&held), &restored.delta_from(3), &c.vk()),
            Err(BundleError::Fork { version: 3, .. })
        ));

        // The administrator resets: a new chain, taken only when confirmed.
        let mut reset = Chain {
            key: c.key.clone(),
            id: [9; 16],
            versions: vec![],
        };
        reset.push(lists(&[1, 5, 6, 7], &[]));
        let offered = open(&reset.full(), &c.vk()).unwrap();
        let err = advance(Some(&held), Some(3), offered.clone(), None).unwrap_err();
        assert!(matches!(err, BundleError::ResetOffered { .. }), "{err:?}");
        assert!(advance(Some(&held), Some(3), offered.clone(), Some("0909")).is_err());
        let ok = advance(Some(&held), Some(3), offered, Some("09090909")).unwrap();
        assert!(matches!(
            ok,
            Advance::Advanced {
                replaces_base: true,
                ..
            }
        ));
    }

    #[test]
    fn rollback_and_same_version_rules() {
        let mut c = Chain::new(1);
        c.push(lists(&[1], &[]));
        let old = c.full();
        c.push(lists(&[1, 2], &[]));
        let held = take(None, &c.full(), &c.vk()).unwrap();
        assert!(matches!(
            take(Some(&held), &old, &c.vk()),
            Err(BundleError::Rollback {
                held: 2,
                offered: 1
            })
        ));
        assert!(matches!(
            advance(None, Some(2), open(&old, &c.vk()).unwrap(), None),
            Err(BundleError::Rollback { .. })
        ));
        assert!(matches!(
            advance(Some(&held), None, open(&c.full(), &c.vk()).unwrap(), None),
            Ok(Advance::Unchanged)
        ));
        assert!(matches!(
            advance(
                Some(&held),
                None,
                open(&c.delta_from(2), &c.vk()).unwrap(),
                None
            ),
            Ok(Advance::Unchanged)
        ));
        assert!(peek(b"{\"payload\":1}").is_err());
    }

    #[test]
    fn a_revocation_only_version_travels_as_format_3_with_small_deltas() {
        use crate::trust_lists::{short_id, Standing};
        let id_of = |i: u32| -> Fingerprint { Sha256::digest(i.to_be_bytes()).into() };
        let ids = |n: u32| (0..n).map(|i| short_id(&id_of(i))).collect::<Vec<_>>();
        let ca = b"an issuing CA certificate".to_vec();
        let mut c = Chain::new(1);
        // A million cards issued, 1 % revoked: no allow-list travels.
        c.push(TrustLists::revocations_only(
            vec![ca.clone()],
            ids(10_000),
            1_000,
        ));
        let full = c.full();
        assert_eq!(full[4], FORMAT_AUTHORITY);
        assert!(full.len() < 10_000 * 16 + 4096, "{} bytes", full.len());
        let v1 = take(None, &full, &c.vk()).unwrap();
        let SizeLimit::AtMost(limit) = size_limit(&full).unwrap() else {
            panic!("no bound for a full bundle")
        };
        assert!(limit >= full.len() as u64);
        assert_eq!(v1.lists.authority().unwrap().cas, vec![ca.clone()]);
        let later = id_of(10_050);
        assert_eq!(v1.lists.standing(&later, None), Standing::ChainDecides);

        // 100 revocations later: the delta stays within 2 kB and gives the full view.
        c.push(TrustLists::revocations_only(
            vec![ca.clone()],
            ids(10_100),
            2_000,
        ));
        let d = c.delta_from(1);
        assert!(
            d.len() <= 2000,
            "a 100-revocation delta is {} bytes",
            d.len()
        );
        let v2 = take(Some(&v1), &d, &c.vk()).unwrap();
        assert_eq!(v2, take(Some(&v1), &c.full(), &c.vk()).unwrap());
        assert_eq!(v2.lists.standing(&later, None), Standing::RevokedId);
        // A revoked key revokes every certificate that carries it.
        assert_eq!(
            v2.lists.standing(&[0xEE; 32], Some(&later)),
            Standing::RevokedId
        );
        assert_eq!(v2.header.issued_up_to, 2_000);

        // The site goes back to card-signed certificates: the authority leaves by delta.
        c.push(lists(&[1], &[]));
        let back = take(Some(&v2), &c.delta_from(2), &c.vk()).unwrap();
        assert!(back.lists.authority().is_none());
        assert_eq!(back.lists.standing(&fp(1), None), Standing::Allowed);
        assert_eq!(c.full()[4], FORMAT);
    }

    #[test]
    fn attestation_marks_travel_as_format_4_in_full_bundles_and_deltas() {
        let marked = |allowed: &[u8], attested: &[u8]| {
            lists(allowed, &[]).with_attested_unsorted(attested.iter().map(|&n| fp(n)).collect())
        };
        let mut c = Chain::new(1);
        c.push(lists(&[1, 2], &[]));
        let v1 = take(None, &c.full(), &c.vk()).unwrap();
        assert_eq!(
            c.full()[4],
            FORMAT,
            "no marks: the format receivers already read"
        );

        // A mark is added: the delta and the full bundle are format 4 and agree.
        c.push(marked(&[1, 2, 3], &[3, 9]));
        assert_eq!(
            c.versions[1].1.attested(),
            [fp(3)],
            "only allowed ones are marked"
        );
        let (d, full) = (c.delta_from(1), c.full());
        assert_eq!((d[4], full[4]), (FORMAT_MARKS, FORMAT_MARKS));
        let v2 = take(Some(&v1), &d, &c.vk()).unwrap();
        assert_eq!(v2, take(Some(&v1), &full, &c.vk()).unwrap());
        assert!(v2.lists.is_attested(&fp(3)) && !v2.lists.is_attested(&fp(1)));
        assert_eq!(v2.header.attested, 1);
        let SizeLimit::AtMost(limit) = size_limit(&full).unwrap() else {
            panic!("no bound")
        };
        assert!(limit >= full.len() as u64);

        // The mark goes with its certificate; a delta over both versions composes.
        c.push(marked(&[1, 2], &[]));
        let v3 = take(Some(&v2), &c.delta_from(2), &c.vk()).unwrap();
        assert!(v3.lists.attested().is_empty());
        assert_eq!(take(Some(&v1), &c.delta_from(1), &c.vk()).unwrap(), v3);
        let composed =
            crate::trust_lists::compose(&v1.lists.diff(&v2.lists), &v2.lists.diff(&v3.lists));
        assert_eq!(v1.lists.apply(&composed).unwrap(), v3.lists);

        // Lists without marks hash as before: the header and digest of a version
        // without marks do not move.
        let plain = lists(&[1, 2], &[3]);
        assert_eq!(
            plain.digest(),
            plain.clone().with_attested(vec![]).unwrap().digest()
        );
        assert_ne!(plain.digest(), marked(&[1, 2], &[1]).digest());
        // A forged mark (a delta the console did not sign for these lists) is refused.
        let forged = sign_delta(
            &c.versions[2].0,
            Link {
                version: 2,
                hash: c.versions[1].0.hash(),
            },
            &Changes {
                allowed_remove: vec![fp(3)],
                ..Changes::default()
            },
            &c.key,
        )
        .unwrap();
        assert!(matches!(
            take(Some(&v2), &forged, &c.vk()),
            Err(BundleError::DeltaMismatch(_))
        ));
    }

    #[test]
    fn a_ca_sites_attested_since_mark_is_format_4_and_vouches_by_start_date() {
        let ca = b"an issuing CA certificate".to_vec();
        let site = |since: i64| {
            TrustLists::revocations_only(vec![ca.clone()], vec![[7; 16]], 1_000)
                .with_attested_since(since)
        };
        let mut c = Chain::new(1);
        c.push(site(0));
        assert_eq!(c.full()[4], FORMAT_AUTHORITY, "no mark: format 3 as before");
        let v1 = take(None, &c.full(), &c.vk()).unwrap();
        let before = v1.header.hash();

        // The console starts requiring attestation: a delta carries the mark.
        c.push(site(500));
        let d = c.delta_from(1);
        assert_eq!(d[4], FORMAT_MARKS);
        let v2 = take(Some(&v1), &d, &c.vk()).unwrap();
        assert_eq!(v2, take(Some(&v1), &c.full(), &c.vk()).unwrap());
        let a = v2.lists.authority().unwrap();
        assert!(a.vouches_attested(500) && a.vouches_attested(9_999));
        assert!(
            !a.vouches_attested(499),
            "issued before the rule: not vouched for"
        );
        assert_eq!(v2.status(0, 0, "k").attested_since, Some(500));
        // And stops: the mark goes, by delta too.
        c.push(site(0));
        let v3 = take(Some(&v2), &c.delta_from(2), &c.vk()).unwrap();
        assert!(!v3.lists.authority().unwrap().vouches_attested(9_999));
        // A version without the mark hashes as format 3 did.
        assert_eq!(
            Header::for_lists(c.id, 1, 100, 1000, [0; 32], &site(0)).hash(),
            before
        );
        // No mark on an allow-list version: it has no CA to vouch.
        assert!(lists(&[1], &[])
            .with_attested_since(5)
            .authority()
            .is_none());
    }

    #[test]
    fn an_allow_list_header_hashes_without_the_authority_fields() {
        let l = lists(&[1, 2], &[3]);
        let h = Header::for_lists([1; 16], 4, 100, 1000, [9; 32], &l);
        assert!(!h.has_authority());
        let mut wire = Vec::new();
        ciborium::into_writer(&h, &mut wire).unwrap();
        let text = String::from_utf8_lossy(&wire);
        assert!(!text.contains("issued_up_to"), "{text}");
        let mut marked = h;
        marked.issued_up_to = 5;
        assert_ne!(marked.hash(), h.hash());
    }

    #[test]
    fn size_limit_is_read_from_the_header_of_a_prefix() {
        let mut c = Chain::new(1);
        c.push(lists(&[1, 2, 3], &[4]));
        let full = c.full();
        let SizeLimit::AtMost(limit) = size_limit(&full).unwrap() else {
            panic!("no bound for a full bundle")
        };
        assert!(limit >= full.len() as u64, "{limit} < {}", full.len());
        // The header arrives early: a short prefix is enough, a shorter one asks for more.
        let mut n = 1;
        while size_limit(&full[..n]).unwrap() == SizeLimit::More {
            n += 1;
            assert!(n < HEADER_WITHIN, "no bound from a {n}-byte prefix");
        }
        assert_eq!(size_limit(&full[..n]).unwrap(), SizeLimit::AtMost(limit));
        assert!(size_limit(b"<html>").is_err());
        assert!(size_limit(&[0u8; 5000]).is_err());
        c.push(lists(&[1, 2], &[3, 4]));
        assert_eq!(size_limit(&c.delta_from(1)).unwrap(), SizeLimit::Unknown);
    }
}
