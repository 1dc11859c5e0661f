//! Login roles for the least-privilege tests: a role of its own per test (roles are
//! cluster-wide), and the test database opened as that role the way `Db::open` opens it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opsdash::db::access::Access;
use opsdash::db::testkit::TestDb;
use opsdash::db::{Db, DbTarget};

static ROLES: AtomicUsize = AtomicUsize::new(0);

/// A login role of its own (roles are cluster-wide: the name is unique to this process),
/// member of `groups`.
pub async fn login_role(t: &TestDb, stem: &str, groups: &[&str]) -> String {
    let name = format!(
        "{stem}_{}_{}",
        std::process::id(),
        ROLES.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::query(&format!("CREATE ROLE {name} LOGIN"))
        .execute(&t.db.write)
        .await
        .unwrap();
    for g in groups {
        sqlx::query(&format!("GRANT {g} TO {name}"))
            .execute(&t.db.write)
            .await
            .unwrap();
    }
    name
}

/// The test database as `role` sees it, opened the way `Db::open` opens it (schema check,
/// then capabilities).
pub async fn connect_as(t: &TestDb, role: &str, read_only: bool) -> anyhow::Result<Db> {
    let mut db = Db::from_options(
        t.options.clone().username(role),
        None,
        DbTarget::External {
            redacted_url: format!("test database as {role}"),
        },
        4,
        Duration::from_secs(10),
        Duration::from_secs(30),
    )
    .await?;
    db.prepare_schema(false).await?;
    db.access = Access::detect(&db.write, read_only).await?;
    Ok(db)
}
