//! The lists a trust bundle carries, held in the form checks need: sorted binary
//! fingerprints answered by binary search (O(log n), no parsing per check), the
//! difference between two versions, and the digest that ties the lists to a signed
//! version header.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 fingerprint (of a certificate's DER, or of a key's SubjectPublicKeyInfo).
pub type Fingerprint = [u8; 32];

/// The first 16 bytes of a [`Fingerprint`]: how a revocation-only bundle names what
/// it revokes. A chance match can only refuse a good card, never admit one
/// (docs/BUNDLE-FORMAT.md, "Revocation-only bundles").
pub type ShortId = [u8; 16];

pub fn short_id(fp: &Fingerprint) -> ShortId {
    let mut id = [0u8; 16];
    id.copy_from_slice(&fp[..16]);
    id
}

/// Read 64 hex digits (either case) as a fingerprint.
pub fn fingerprint_from_hex(s: &str) -> Option<Fingerprint> {
    let mut fp = [0u8; 32];
    hex::decode_to_slice(s, &mut fp).ok()?;
    Some(fp)
}

/// One revoked certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    #[serde(with = "serde_bytes")]
    pub fp: Fingerprint,
    pub reason: String,
    pub at: i64,
}

/// What a site whose certificates a CA issues sends instead of an allow-list: the
/// issuing CA certificates, what was revoked (certificates and keys, as short ids),
/// and the time of the newest certificate the version accounts for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Authority {
    /// DER certificates, sorted, without duplicates.
    pub cas: Vec<Vec<u8>>,
    /// Sorted, without duplicates.
    pub revoked_ids: Vec<ShortId>,
    /// Unix seconds: every certificate recorded at or before it is accounted for here.
    pub issued_up_to: i64,
    /// Unix seconds, 0 for none: the CA has issued only for keys whose attestation the
    /// console verified since then, so a certificate of this CA with a notBefore at or
    /// after it holds an attested key (keys proven generated on the card).
    pub attested_since: i64,
}

impl Authority {
    /// A bundle without an authority is an allow-list bundle (format 2).
    pub fn is_empty(&self) -> bool {
        self.cas.is_empty()
            && self.revoked_ids.is_empty()
            && self.issued_up_to == 0
            && self.attested_since == 0
    }

    /// Whether a certificate of this CA that begins at `not_before` holds an attested key.
    pub fn vouches_attested(&self, not_before: i64) -> bool {
        self.attested_since != 0 && not_before >= self.attested_since
    }

    pub fn is_revoked(&self, fp: &Fingerprint) -> bool {
        self.revoked_ids.binary_search(&short_id(fp)).is_ok()
    }
}

/// Where a certificate stands in one version's lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing<'a> {
    /// The certificate is on the revocation list.
    Revoked(&'a Revocation),
    /// Its key was revoked (under this or another certificate).
    KeyRevoked,
    /// A revocation-only bundle names the certificate or its key as revoked.
    RevokedId,
    /// On the allow-list.
    Allowed,
    /// Not revoked, and the bundle trusts what chains to its issuing CAs: the chain
    /// check decides.
    ChainDecides,
    /// Neither allowed nor vouched for by an issuing CA.
    NotAllowed,
}

/// The allow-list, the revocation list and the revoked keys of one version, and (at
/// sites with an issuing CA) its [`Authority`]. Each list is sorted without
/// duplicates (checked on every way in).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustLists {
    allowed: Vec<Fingerprint>,
    revoked: Vec<Revocation>,
    revoked_keys: Vec<Fingerprint>,
    authority: Authority,
    /// Allowed certificates whose key the console verified was generated on the card
    /// (PIV attestation). Allow-list versions only.
    attested: Vec<Fingerprint>,
}

/// What changed between two versions. Removals apply before additions, so a
/// revocation whose reason or time changed is one removal and one addition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub allowed_add: Vec<Fingerprint>,
    pub allowed_remove: Vec<Fingerprint>,
    pub revoked_add: Vec<Revocation>,
    pub revoked_remove: Vec<Fingerprint>,
    pub keys_add: Vec<Fingerprint>,
    pub keys_remove: Vec<Fingerprint>,
    /// The issuing CAs, when they changed (all of them; empty: none any more).
    pub cas: Option<Vec<Vec<u8>>>,
    pub ids_add: Vec<ShortId>,
    pub ids_remove: Vec<ShortId>,
    /// The new issued-up-to mark, when it moved (a received delta takes it from its
    /// signed header).
    pub issued_up_to: Option<i64>,
    pub attested_add: Vec<Fingerprint>,
    pub attested_remove: Vec<Fingerprint>,
    /// The authority's new attested-since mark, when it moved (a received delta takes
    /// it from its signed header).
    pub attested_since: Option<i64>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries change.
    pub fn len(&self) -> usize {
        self.allowed_add.len()
            + self.allowed_remove.len()
            + self.revoked_add.len()
            + self.revoked_remove.len()
            + self.keys_add.len()
            + self.keys_remove.len()
            + usize::from(self.cas.is_some())
            + self.ids_add.len()
            + self.ids_remove.len()
            + usize::from(self.issued_up_to.is_some())
            + self.attested_add.len()
            + self.attested_remove.len()
            + usize::from(self.attested_since.is_some())
    }

    /// Whether the change touches the attestation marks (format 4 on the wire).
    pub fn marks_attestation(&self) -> bool {
        !self.attested_add.is_empty()
            || !self.attested_remove.is_empty()
            || self.attested_since.is_some_and(|t| t != 0)
    }
}

/// [`Changes`] on the wire (CBOR) and in the console's version rows: each list of
/// fingerprints one byte string, an empty list left out. (Allow-list deltas are
/// written with every list present, for receivers built before revocation-only
/// bundles: `bundle::sign_delta`.) The issued-up-to mark travels in the header.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChangesWire {
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub allowed_add: Vec<u8>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub allowed_remove: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub revoked_add: Vec<Revocation>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub revoked_remove: Vec<u8>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub keys_add: Vec<u8>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub keys_remove: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cas: Option<Vec<serde_bytes::ByteBuf>>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub ids_add: Vec<u8>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub ids_remove: Vec<u8>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub attested_add: Vec<u8>,
    #[serde(default, with = "serde_bytes", skip_serializing_if = "Vec::is_empty")]
    pub attested_remove: Vec<u8>,
}

impl From<&Changes> for ChangesWire {
    fn from(c: &Changes) -> Self {
        ChangesWire {
            allowed_add: pack(&c.allowed_add),
            allowed_remove: pack(&c.allowed_remove),
            revoked_add: c.revoked_add.clone(),
            revoked_remove: pack(&c.revoked_remove),
            keys_add: pack(&c.keys_add),
            keys_remove: pack(&c.keys_remove),
            cas: c.cas.as_ref().map(|cas| {
                cas.iter()
                    .cloned()
                    .map(serde_bytes::ByteBuf::from)
                    .collect()
            }),
            ids_add: pack(&c.ids_add),
            ids_remove: pack(&c.ids_remove),
            attested_add: pack(&c.attested_add),
            attested_remove: pack(&c.attested_remove),
        }
    }
}

impl TryFrom<ChangesWire> for Changes {
    type Error = ListError;
    fn try_from(w: ChangesWire) -> Result<Self, ListError> {
        Ok(Changes {
            allowed_add: unpack_owned(w.allowed_add, "allowed")?,
            allowed_remove: unpack_owned(w.allowed_remove, "allowed")?,
            revoked_add: w.revoked_add,
            revoked_remove: unpack_owned(w.revoked_remove, "revoked")?,
            keys_add: unpack_owned(w.keys_add, "revoked keys")?,
            keys_remove: unpack_owned(w.keys_remove, "revoked keys")?,
            cas: w.cas.map(|cas| {
                cas.into_iter()
                    .map(serde_bytes::ByteBuf::into_vec)
                    .collect()
            }),
            ids_add: unpack(&w.ids_add, "revoked ids")?,
            ids_remove: unpack(&w.ids_remove, "revoked ids")?,
            issued_up_to: None,
            attested_add: unpack_owned(w.attested_add, "attested")?,
            attested_remove: unpack_owned(w.attested_remove, "attested")?,
            attested_since: None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListError {
    #[error("the {0} list is not in fingerprint order or repeats an entry")]
    Unsorted(&'static str),
    #[error("the {0} list is not a whole number of fingerprints")]
    Ragged(&'static str),
    #[error("the change does not apply to the held lists: {0}")]
    DoesNotApply(String),
}

fn strictly_sorted<T, K: Ord>(items: &[T], key: impl Fn(&T) -> &K) -> bool {
    items.windows(2).all(|w| key(&w[0]) < key(&w[1]))
}

/// Fingerprints (32 bytes) or short ids (16) packed back to back (the wire form of a list).
pub fn pack<const N: usize>(fps: &[[u8; N]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(fps.len() * N);
    for fp in fps {
        out.extend_from_slice(fp);
    }
    out
}

/// The inverse of [`pack`], reusing the buffer (a million fingerprints are 32 MB:
/// not copied again); `what` names the list in errors.
pub fn unpack_owned(bytes: Vec<u8>, what: &'static str) -> Result<Vec<Fingerprint>, ListError> {
    if !bytes.len().is_multiple_of(32) {
        return Err(ListError::Ragged(what));
    }
    match bytemuck::allocation::try_cast_vec::<u8, Fingerprint>(bytes) {
        Ok(fps) => Ok(fps),
        // The buffer's capacity is not a whole number of fingerprints: copy.
        Err((_, bytes)) => unpack(&bytes, what),
    }
}

/// The inverse of [`pack`]; `what` names the list in errors.
pub fn unpack<const N: usize>(bytes: &[u8], what: &'static str) -> Result<Vec<[u8; N]>, ListError> {
    if !bytes.len().is_multiple_of(N) {
        return Err(ListError::Ragged(what));
    }
    Ok(bytes
        .chunks_exact(N)
        .map(|c| {
            let mut fp = [0u8; N];
            fp.copy_from_slice(c);
            fp
        })
        .collect())
}

impl TrustLists {
    /// Lists from parts that must already be sorted without duplicates.
    pub fn new(
        allowed: Vec<Fingerprint>,
        revoked: Vec<Revocation>,
        revoked_keys: Vec<Fingerprint>,
    ) -> Result<Self, ListError> {
        if !strictly_sorted(&allowed, |f| f) {
            return Err(ListError::Unsorted("allowed"));
        }
        if !strictly_sorted(&revoked, |r| &r.fp) {
            return Err(ListError::Unsorted("revoked"));
        }
        if !strictly_sorted(&revoked_keys, |f| f) {
            return Err(ListError::Unsorted("revoked keys"));
        }
        Ok(TrustLists {
            allowed,
            revoked,
            revoked_keys,
            authority: Authority::default(),
            attested: Vec::new(),
        })
    }

    /// These lists with the attestation marks `attested` (sorted without duplicates).
    pub fn with_attested(mut self, attested: Vec<Fingerprint>) -> Result<Self, ListError> {
        if !strictly_sorted(&attested, |f| f) {
            return Err(ListError::Unsorted("attested"));
        }
        self.attested = attested;
        Ok(self)
    }

    /// The console's side: the marks in any order, kept only for allowed certificates.
    pub fn with_attested_unsorted(mut self, mut attested: Vec<Fingerprint>) -> Self {
        attested.sort_unstable();
        attested.dedup();
        attested.retain(|fp| self.is_allowed(fp));
        self.attested = attested;
        self
    }

    /// These lists with `authority` (whose lists must be sorted without duplicates).
    pub fn with_authority(mut self, authority: Authority) -> Result<Self, ListError> {
        if !strictly_sorted(&authority.cas, |c| c) {
            return Err(ListError::Unsorted("issuing CA"));
        }
        if !strictly_sorted(&authority.revoked_ids, |f| f) {
            return Err(ListError::Unsorted("revoked ids"));
        }
        self.authority = authority;
        Ok(self)
    }

    /// Lists from parts in any order (the console's side): sorted, duplicates dropped.
    pub fn from_unsorted(
        mut allowed: Vec<Fingerprint>,
        mut revoked: Vec<Revocation>,
        mut revoked_keys: Vec<Fingerprint>,
    ) -> Self {
        allowed.sort_unstable();
        allowed.dedup();
        revoked.sort_by_key(|r| r.fp);
        revoked.dedup_by(|a, b| a.fp == b.fp);
        revoked_keys.sort_unstable();
        revoked_keys.dedup();
        TrustLists {
            allowed,
            revoked,
            revoked_keys,
            authority: Authority::default(),
            attested: Vec::new(),
        }
    }

    /// A revocation-only version (the console's side, parts in any order): the
    /// issuing CAs, the revoked ids, the mark; no allow-list.
    pub fn revocations_only(
        mut cas: Vec<Vec<u8>>,
        mut revoked_ids: Vec<ShortId>,
        issued_up_to: i64,
    ) -> Self {
        cas.sort_unstable();
        cas.dedup();
        revoked_ids.sort_unstable();
        revoked_ids.dedup();
        TrustLists {
            authority: Authority {
                cas,
                revoked_ids,
                issued_up_to,
                attested_since: 0,
            },
            ..TrustLists::default()
        }
    }

    pub fn allowed(&self) -> &[Fingerprint] {
        &self.allowed
    }
    pub fn revoked(&self) -> &[Revocation] {
        &self.revoked
    }
    pub fn revoked_keys(&self) -> &[Fingerprint] {
        &self.revoked_keys
    }
    /// The allowed certificates whose key was attested (generated on the card).
    pub fn attested(&self) -> &[Fingerprint] {
        &self.attested
    }
    pub fn is_attested(&self, fp: &Fingerprint) -> bool {
        self.attested.binary_search(fp).is_ok()
    }
    /// A revocation-only version whose CA issues only for attested keys since
    /// `since` (unix seconds, the earliest notBefore it issued under that rule).
    pub fn with_attested_since(mut self, since: i64) -> Self {
        if self.authority().is_some() {
            self.authority.attested_since = since;
        }
        self
    }

    /// The issuing CAs and revoked ids, when this is a revocation-only version.
    pub fn authority(&self) -> Option<&Authority> {
        (!self.authority.is_empty()).then_some(&self.authority)
    }

    /// Where the certificate `cert` (with key `key`, SHA-256 of its
    /// SubjectPublicKeyInfo) stands. Every revocation wins over every admission.
    pub fn standing(&self, cert: &Fingerprint, key: Option<&Fingerprint>) -> Standing<'_> {
        if let Some(r) = self.revocation(cert) {
            return Standing::Revoked(r);
        }
        if key.is_some_and(|k| self.is_key_revoked(k)) {
            return Standing::KeyRevoked;
        }
        if self.authority.is_revoked(cert) || key.is_some_and(|k| self.authority.is_revoked(k)) {
            return Standing::RevokedId;
        }
        if self.is_allowed(cert) {
            return Standing::Allowed;
        }
        if !self.authority.cas.is_empty() {
            return Standing::ChainDecides;
        }
        Standing::NotAllowed
    }

    /// [`Self::standing`] with the hex fingerprints certificates are shown with; a
    /// fingerprint that is not hex stands nowhere (not allowed).
    pub fn standing_hex(&self, cert: &str, key: Option<&str>) -> Standing<'_> {
        let Some(cert) = fingerprint_from_hex(cert) else {
            return Standing::NotAllowed;
        };
        let key = key.and_then(fingerprint_from_hex);
        self.standing(&cert, key.as_ref())
    }

    pub fn is_allowed(&self, fp: &Fingerprint) -> bool {
        self.allowed.binary_search(fp).is_ok()
    }
    pub fn revocation(&self, fp: &Fingerprint) -> Option<&Revocation> {
        self.revoked
            .binary_search_by(|r| r.fp.cmp(fp))
            .ok()
            .map(|i| &self.revoked[i])
    }
    pub fn is_key_revoked(&self, key: &Fingerprint) -> bool {
        self.revoked_keys.binary_search(key).is_ok()
    }

    /// The same questions with the hex fingerprints certificates are shown with.
    pub fn is_allowed_hex(&self, fp: &str) -> bool {
        fingerprint_from_hex(fp).is_some_and(|f| self.is_allowed(&f))
    }
    pub fn revocation_hex(&self, fp: &str) -> Option<&Revocation> {
        fingerprint_from_hex(fp).and_then(|f| self.revocation(&f))
    }
    pub fn is_key_revoked_hex(&self, key: &str) -> bool {
        fingerprint_from_hex(key).is_some_and(|k| self.is_key_revoked(&k))
    }

    /// SHA-256 over the lists in a fixed layout: what a version header commits to.
    /// Equal digests mean equal lists, however they were arrived at (full or deltas).
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"cardstation-trust-lists-2");
        h.update((self.allowed.len() as u64).to_be_bytes());
        for fp in &self.allowed {
            h.update(fp);
        }
        h.update((self.revoked.len() as u64).to_be_bytes());
        for r in &self.revoked {
            h.update(r.fp);
            h.update((r.reason.len() as u64).to_be_bytes());
            h.update(r.reason.as_bytes());
            h.update(r.at.to_be_bytes());
        }
        h.update((self.revoked_keys.len() as u64).to_be_bytes());
        for k in &self.revoked_keys {
            h.update(k);
        }
        // Only a revocation-only version covers an authority, so the digests of
        // allow-list versions (format 2) stay what they were.
        let a = &self.authority;
        if !a.is_empty() {
            h.update(b"authority");
            h.update((a.cas.len() as u64).to_be_bytes());
            for ca in &a.cas {
                h.update((ca.len() as u64).to_be_bytes());
                h.update(ca);
            }
            h.update((a.revoked_ids.len() as u64).to_be_bytes());
            for id in &a.revoked_ids {
                h.update(id);
            }
            h.update(a.issued_up_to.to_be_bytes());
            if a.attested_since != 0 {
                h.update(b"attested-since");
                h.update(a.attested_since.to_be_bytes());
            }
        }
        // Likewise the attestation marks: hashed only where there are some.
        if !self.attested.is_empty() {
            h.update(b"attested");
            h.update((self.attested.len() as u64).to_be_bytes());
            for fp in &self.attested {
                h.update(fp);
            }
        }
        h.finalize().into()
    }

    /// What turns `self` into `next`.
    pub fn diff(&self, next: &TrustLists) -> Changes {
        let (allowed_add, allowed_remove) = set_diff(&self.allowed, &next.allowed);
        let (keys_add, keys_remove) = set_diff(&self.revoked_keys, &next.revoked_keys);
        let (ids_add, ids_remove) =
            set_diff(&self.authority.revoked_ids, &next.authority.revoked_ids);
        let (attested_add, attested_remove) = set_diff(&self.attested, &next.attested);
        let (a, b) = (&self.authority, &next.authority);
        let cas = (a.cas != b.cas).then(|| b.cas.clone());
        let issued_up_to = (a.issued_up_to != b.issued_up_to).then_some(b.issued_up_to);
        let attested_since = (a.attested_since != b.attested_since).then_some(b.attested_since);
        let mut revoked_add = Vec::new();
        let mut revoked_remove = Vec::new();
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.revoked, &next.revoked);
        while i < a.len() || j < b.len() {
            match (a.get(i), b.get(j)) {
                (Some(x), Some(y)) if x.fp == y.fp => {
                    if x != y {
                        revoked_remove.push(x.fp);
                        revoked_add.push(y.clone());
                    }
                    i += 1;
                    j += 1;
                }
                (Some(x), Some(y)) if x.fp < y.fp => {
                    revoked_remove.push(x.fp);
                    i += 1;
                }
                (Some(x), None) => {
                    revoked_remove.push(x.fp);
                    i += 1;
                }
                (_, Some(y)) => {
                    revoked_add.push(y.clone());
                    j += 1;
                }
                (None, None) => break,
            }
        }
        Changes {
            allowed_add,
            allowed_remove,
            revoked_add,
            revoked_remove,
            keys_add,
            keys_remove,
            cas,
            ids_add,
            ids_remove,
            issued_up_to,
            attested_add,
            attested_remove,
            attested_since,
        }
    }

    /// The lists after `changes`, strictly: removing what is absent or adding what is
    /// present means the change was made for other lists, and is refused.
    pub fn apply(&self, changes: &Changes) -> Result<TrustLists, ListError> {
        Ok(TrustLists {
            allowed: apply_set(
                &self.allowed,
                &changes.allowed_add,
                &changes.allowed_remove,
                "allowed",
            )?,
            revoked: apply_revoked(&self.revoked, &changes.revoked_add, &changes.revoked_remove)?,
            revoked_keys: apply_set(
                &self.revoked_keys,
                &changes.keys_add,
                &changes.keys_remove,
                "revoked keys",
            )?,
            authority: Authority {
                cas: match &changes.cas {
                    Some(cas) if !strictly_sorted(cas, |c| c) => {
                        return Err(ListError::Unsorted("issuing CA"))
                    }
                    Some(cas) => cas.clone(),
                    None => self.authority.cas.clone(),
                },
                revoked_ids: apply_set(
                    &self.authority.revoked_ids,
                    &changes.ids_add,
                    &changes.ids_remove,
                    "revoked ids",
                )?,
                issued_up_to: changes.issued_up_to.unwrap_or(self.authority.issued_up_to),
                attested_since: changes
                    .attested_since
                    .unwrap_or(self.authority.attested_since),
            },
            attested: apply_set(
                &self.attested,
                &changes.attested_add,
                &changes.attested_remove,
                "attested",
            )?,
        })
    }
}

/// (in `b` only, in `a` only), both sorted.
fn set_diff<T: Ord + Copy>(a: &[T], b: &[T]) -> (Vec<T>, Vec<T>) {
    let (mut add, mut remove) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => {
                remove.push(*x);
                i += 1;
            }
            (Some(x), None) => {
                remove.push(*x);
                i += 1;
            }
            (_, Some(y)) => {
                add.push(*y);
                j += 1;
            }
            (None, None) => break,
        }
    }
    (add, remove)
}

/// The held list with `remove` taken out and `add` put in: a binary search per
/// change and one copy of each unchanged run (a memcpy), O(k log n + n) for k changes.
fn apply_set<T: Ord + Copy + AsRef<[u8]>>(
    held: &[T],
    add: &[T],
    remove: &[T],
    what: &'static str,
) -> Result<Vec<T>, ListError> {
    if !strictly_sorted(add, |f| f) || !strictly_sorted(remove, |f| f) {
        return Err(ListError::Unsorted(what));
    }
    let mut out = Vec::with_capacity((held.len() + add.len()).saturating_sub(remove.len()));
    let (mut pos, mut a, mut r) = (0, 0, 0);
    loop {
        // The next change in fingerprint order; a removal and an addition of the same
        // fingerprint in one change is not something a diff makes.
        let (fp, adding) = match (add.get(a), remove.get(r)) {
            (Some(x), Some(y)) if x == y => {
                return Err(ListError::DoesNotApply(format!(
                    "{what}: both adds and removes {}",
                    hex::encode(x)
                )))
            }
            (Some(x), Some(y)) if x < y => (x, true),
            (Some(x), None) => (x, true),
            (_, Some(y)) => (y, false),
            (None, None) => break,
        };
        match (held[pos..].binary_search(fp), adding) {
            (Ok(i), false) => {
                out.extend_from_slice(&held[pos..pos + i]);
                pos += i + 1;
                r += 1;
            }
            (Err(i), true) => {
                out.extend_from_slice(&held[pos..pos + i]);
                out.push(*fp);
                pos += i;
                a += 1;
            }
            (Ok(_), true) => {
                return Err(ListError::DoesNotApply(format!(
                    "{what}: adds {} which is already held",
                    hex::encode(fp)
                )))
            }
            (Err(_), false) => {
                return Err(ListError::DoesNotApply(format!(
                    "{what}: removes {} which is not held",
                    hex::encode(fp)
                )))
            }
        }
    }
    out.extend_from_slice(&held[pos..]);
    Ok(out)
}

fn apply_revoked(
    held: &[Revocation],
    add: &[Revocation],
    remove: &[Fingerprint],
) -> Result<Vec<Revocation>, ListError> {
    if !strictly_sorted(add, |r| &r.fp) || !strictly_sorted(remove, |f| f) {
        return Err(ListError::Unsorted("revoked"));
    }
    let kept: Vec<&Revocation> = {
        let mut out = Vec::with_capacity(held.len());
        let mut rm = remove.iter().peekable();
        for r in held {
            if rm.peek() == Some(&&r.fp) {
                rm.next();
                continue;
            }
            if let Some(x) = rm.peek() {
                if **x < r.fp {
                    return Err(ListError::DoesNotApply(format!(
                        "revoked: removes {} which is not held",
                        hex::encode(x)
                    )));
                }
            }
            out.push(r);
        }
        if let Some(x) = rm.next() {
            return Err(ListError::DoesNotApply(format!(
                "revoked: removes {} which is not held",
                hex::encode(x)
            )));
        }
        out
    };
    let mut out = Vec::with_capacity(kept.len() + add.len());
    let mut ad = add.iter().peekable();
    for r in kept {
        while let Some(a) = ad.peek() {
            if a.fp < r.fp {
                out.push((*a).clone());
                ad.next();
            } else {
                break;
            }
        }
        if ad.peek().is_some_and(|a| a.fp == r.fp) {
            return Err(ListError::DoesNotApply(format!(
                "revoked: adds {} which is already held",
                hex::encode(r.fp)
            )));
        }
        out.push(r.clone());
    }
    out.extend(ad.cloned());
    Ok(out)
}

/// Changes `first` then `second` as one change from the lists `first` started from.
/// Composing the console's per-version changes is how a delta over many versions is
/// made without keeping every version's lists.
pub fn compose(first: &Changes, second: &Changes) -> Changes {
    use std::collections::BTreeMap;
    // Per fingerprint: was it present before `first` (None = unknown, i.e. untouched),
    // and is it present after. Sets: presence only.
    fn sets<T: Ord + Copy>(a_add: &[T], a_rm: &[T], b_add: &[T], b_rm: &[T]) -> (Vec<T>, Vec<T>) {
        // fp -> (present at start, present at end)
        let mut m: BTreeMap<T, (bool, bool)> = BTreeMap::new();
        for fp in a_add {
            m.insert(*fp, (false, true));
        }
        for fp in a_rm {
            m.insert(*fp, (true, false));
        }
        for fp in b_rm {
            m.entry(*fp)
                .and_modify(|e| e.1 = false)
                .or_insert((true, false));
        }
        for fp in b_add {
            m.entry(*fp)
                .and_modify(|e| e.1 = true)
                .or_insert((false, true));
        }
        let (mut add, mut rm) = (Vec::new(), Vec::new());
        for (fp, (start, end)) in m {
            match (start, end) {
                (false, true) => add.push(fp),
                (true, false) => rm.push(fp),
                _ => {}
            }
        }
        (add, rm)
    }
    let (allowed_add, allowed_remove) = sets(
        &first.allowed_add,
        &first.allowed_remove,
        &second.allowed_add,
        &second.allowed_remove,
    );
    let (keys_add, keys_remove) = sets(
        &first.keys_add,
        &first.keys_remove,
        &second.keys_add,
        &second.keys_remove,
    );
    let (ids_add, ids_remove) = sets(
        &first.ids_add,
        &first.ids_remove,
        &second.ids_add,
        &second.ids_remove,
    );
    let (attested_add, attested_remove) = sets(
        &first.attested_add,
        &first.attested_remove,
        &second.attested_add,
        &second.attested_remove,
    );
    // Revocations carry a value: fp -> (present at start, value at end).
    let mut m: BTreeMap<Fingerprint, (bool, Option<Revocation>)> = BTreeMap::new();
    for fp in &first.revoked_remove {
        m.insert(*fp, (true, None));
    }
    for r in &first.revoked_add {
        m.entry(r.fp)
            .and_modify(|e| e.1 = Some(r.clone()))
            .or_insert((false, Some(r.clone())));
    }
    for fp in &second.revoked_remove {
        m.entry(*fp)
            .and_modify(|e| e.1 = None)
            .or_insert((true, None));
    }
    for r in &second.revoked_add {
        m.entry(r.fp)
            .and_modify(|e| e.1 = Some(r.clone()))
            .or_insert((false, Some(r.clone())));
    }
    let (mut revoked_add, mut revoked_remove) = (Vec::new(), Vec::new());
    for (fp, (start, end)) in m {
        if start {
            revoked_remove.push(fp);
        }
        if let Some(r) = end {
            revoked_add.push(r);
        }
    }
    Changes {
        allowed_add,
        allowed_remove,
        revoked_add,
        revoked_remove,
        keys_add,
        keys_remove,
        // The later value wins; unchanged in both stays unchanged.
        cas: second.cas.clone().or_else(|| first.cas.clone()),
        ids_add,
        ids_remove,
        issued_up_to: second.issued_up_to.or(first.issued_up_to),
        attested_add,
        attested_remove,
        attested_since: second.attested_since.or(first.attested_since),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fp(n: u8) -> Fingerprint {
        [n; 32]
    }

    fn lists(allowed: &[u8], revoked: &[(u8, u8)], keys: &[u8]) -> TrustLists {
        TrustLists::from_unsorted(
            allowed.iter().map(|&n| fp(n)).collect(),
            revoked
                .iter()
                .map(|&(n, t)| Revocation {
                    fp: fp(n),
                    reason: if t % 2 == 0 { "lost" } else { "stolen" }.into(),
                    at: i64::from(t),
                })
                .collect(),
            keys.iter().map(|&n| fp(n)).collect(),
        )
    }

    #[test]
    fn lookups_answer_by_binary_search() {
        let l = lists(&[3, 1, 2, 2], &[(9, 1)], &[7]);
        assert_eq!(l.allowed().len(), 3);
        assert!(l.is_allowed(&fp(2)) && !l.is_allowed(&fp(4)));
        assert_eq!(l.revocation(&fp(9)).unwrap().reason, "stolen");
        assert!(l.is_key_revoked_hex(&hex::encode(fp(7))));
        assert!(!l.is_allowed_hex("not hex"));
        assert!(TrustLists::new(vec![fp(2), fp(1)], vec![], vec![]).is_err());
    }

    #[test]
    fn unpacking_in_place_equals_copying() {
        let fps = vec![fp(1), fp(2), fp(3)];
        let packed = pack(&fps);
        assert_eq!(unpack_owned(packed.clone(), "x").unwrap(), fps);
        let mut roomy = Vec::with_capacity(100);
        roomy.extend_from_slice(&packed);
        assert_eq!(unpack_owned(roomy, "x").unwrap(), fps);
        assert_eq!(unpack_owned(vec![0; 33], "x"), Err(ListError::Ragged("x")));
    }

    #[test]
    fn a_change_made_for_other_lists_is_refused() {
        let l = lists(&[1, 2], &[], &[]);
        let add_held = Changes {
            allowed_add: vec![fp(2)],
            ..Changes::default()
        };
        assert!(matches!(
            l.apply(&add_held),
            Err(ListError::DoesNotApply(_))
        ));
        let remove_absent = Changes {
            allowed_remove: vec![fp(5)],
            ..Changes::default()
        };
        assert!(matches!(
            l.apply(&remove_absent),
            Err(ListError::DoesNotApply(_))
        ));
    }

    /// Allowed, revoked (fingerprint, reason), revoked keys, an authority (which
    /// CA, revoked ids, mark) that comes, changes and goes, and attestation marks.
    type Raw = (
        Vec<u8>,
        Vec<(u8, u8)>,
        Vec<u8>,
        Option<(u8, Vec<u8>, u8)>,
        Vec<u8>,
    );

    fn raw() -> impl Strategy<Value = Raw> {
        (
            proptest::collection::vec(0u8..40, 0..30),
            proptest::collection::vec((0u8..40, 0u8..4), 0..15),
            proptest::collection::vec(0u8..40, 0..10),
            proptest::option::of((0u8..3, proptest::collection::vec(0u8..40, 0..10), 1u8..4)),
            proptest::collection::vec(0u8..40, 0..15),
        )
    }

    fn versioned((a, r, k, authority, marks): &Raw) -> TrustLists {
        let plain = lists(a, r, k).with_attested_unsorted(marks.iter().map(|&n| fp(n)).collect());
        match authority {
            None => plain,
            Some((ca, ids, mark)) => {
                let mut ids: Vec<ShortId> = ids.iter().map(|&n| [n; 16]).collect();
                ids.sort_unstable();
                ids.dedup();
                plain
                    .with_authority(Authority {
                        cas: vec![vec![*ca; 3]],
                        revoked_ids: ids,
                        issued_up_to: i64::from(*mark),
                        // Comes and goes with the CA drawn.
                        attested_since: if *ca == 1 { 50 } else { 0 },
                    })
                    .unwrap()
            }
        }
    }

    proptest! {
        /// Deltas over any history give exactly the lists (and digest) of the last version.
        #[test]
        fn deltas_over_random_histories_equal_the_full_lists(history in proptest::collection::vec(raw(), 2..8)) {
            let versions: Vec<TrustLists> = history.iter().map(versioned).collect();
            let steps: Vec<Changes> = versions.windows(2).map(|w| w[0].diff(&w[1])).collect();
            // Version by version.
            let mut held = versions[0].clone();
            for (step, want) in steps.iter().zip(&versions[1..]) {
                held = held.apply(step).unwrap();
                prop_assert_eq!(&held, want);
            }
            // From every version, one composed delta to the last.
            let last = versions.last().unwrap();
            for start in 0..versions.len() - 1 {
                let composed = steps[start + 1..]
                    .iter()
                    .fold(steps[start].clone(), |acc, s| compose(&acc, s));
                let got = versions[start].apply(&composed).unwrap();
                prop_assert_eq!(got.digest(), last.digest());
                prop_assert_eq!(&got, last);
            }
        }
    }
}
