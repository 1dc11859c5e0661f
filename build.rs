// `sqlx::migrate!` embeds ./migrations when the crate compiles; without this, cargo does not
// know a new or edited migration file should rebuild the crate, and the binary keeps the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
