//! The credential store: every client identity the console issued (stations,
//! gateways, and whatever role comes next), one table keyed by the client
//! certificate's fingerprint, with its name and role.

use super::db::{params, query_one, query_opt, SqlRow, WriteLock};
use super::records::audit;
use super::{Actor, IdentityRow, Role, Store, StoreError};

pub(super) const IDENTITY_COLUMNS: &str =
    "cert_sha256, role, name, issued_at, not_after, revoked_at";

pub(super) fn identity_row(r: &SqlRow) -> Result<IdentityRow, StoreError> {
    let role = r.text(1)?;
    Ok(IdentityRow {
        cert_sha256: r.text(0)?,
        role: Role::parse(&role).ok_or_else(|| {
            StoreError::Failed(format!("an identity has the unknown role {role:?}"))
        })?,
        name: r.text(2)?,
        issued_at: r.int(3)?,
        not_after: r.int(4)?,
        revoked_at: r.opt_int(5)?,
    })
}

impl Store {
    /// Record a newly issued credential; refused while its name has an active one
    /// of the same role. `actor` is who issued it (the administrator, or the first start).
    pub async fn add_identity(&self, id: &IdentityRow, actor: &Actor) -> Result<(), StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        let role = id.role.as_str();
        let active = query_one(
            &mut *tx,
            "SELECT COUNT(*) FROM identities WHERE role = $1 AND name = $2 AND revoked_at IS NULL",
            params![role, &id.name],
        )
        .await?
        .int(0)?;
        if active > 0 {
            return Err(StoreError::Conflict(format!(
                "{role} {name} already has an active credential; revoke it first ({role} revoke {name})",
                name = id.name
            )));
        }
        let sql = format!(
            "INSERT INTO identities ({IDENTITY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL)"
        );
        tx.execute(
            &sql,
            params![&id.cert_sha256, role, &id.name, id.issued_at, id.not_after],
        )
        .await?;
        let action = format!("{role}-add");
        audit(
            &mut *tx,
            id.issued_at,
            actor,
            &action,
            &id.name,
            &id.cert_sha256,
        )
        .await?;
        tx.commit().await
    }

    /// Every credential of `role` (all roles for `None`), by name and issue time.
    pub async fn identities(&self, role: Option<Role>) -> Result<Vec<IdentityRow>, StoreError> {
        let mut tx = self.db.read().await?;
        let rows = match role {
            Some(role) => {
                let sql = format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities WHERE role = $1 ORDER BY name, issued_at"
                );
                tx.query(&sql, params![role.as_str()]).await?
            }
            None => {
                let sql = format!(
                    "SELECT {IDENTITY_COLUMNS} FROM identities ORDER BY role, name, issued_at"
                );
                tx.query(&sql, &[]).await?
            }
        };
        tx.commit().await?;
        rows.iter().map(identity_row).collect()
    }

    /// Revoke every credential of `role` `name`; how many were active.
    pub async fn revoke_identity(
        &self,
        role: Role,
        name: &str,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut tx = self.db.write(WriteLock::Records).await?;
        let n = tx
            .execute(
                "UPDATE identities SET revoked_at = $3
                 WHERE role = $1 AND name = $2 AND revoked_at IS NULL",
                params![role.as_str(), name, now],
            )
            .await?;
        if n > 0 {
            let action = format!("{}-revoke", role.as_str());
            audit(&mut *tx, now, &Actor::Administrator, &action, name, "").await?;
        }
        tx.commit().await?;
        Ok(n)
    }

    /// The identity whose client certificate has this fingerprint.
    pub async fn identity_by_cert(
        &self,
        cert_sha256: &str,
    ) -> Result<Option<IdentityRow>, StoreError> {
        let mut tx = self.db.read().await?;
        let sql = format!("SELECT {IDENTITY_COLUMNS} FROM identities WHERE cert_sha256 = $1");
        let row = query_opt(&mut *tx, &sql, params![cert_sha256]).await?;
        tx.commit().await?;
        row.as_ref().map(identity_row).transpose()
    }
}
