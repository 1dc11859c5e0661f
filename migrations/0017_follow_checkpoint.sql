-- Read positions of files followed by `opsdash ingest FILE --follow`. One row per followed
-- name; the writer upserts it in the same transaction as the rows it covers, so after a crash
-- the position and the stored rows always agree (no line twice, none missed).
-- (dev, inode) say which file the offset belongs to (a rename-and-create rotation gives the
-- name a new inode); head_hash, the SHA-256 of the file's first head_len bytes (up to 1 KiB),
-- catches a reused inode or a file truncated and rewritten while opsdash was down.
CREATE TABLE opsdash.ingest_checkpoint (
    path       text        PRIMARY KEY,
    dev        bigint      NOT NULL,
    inode      bigint      NOT NULL,
    "offset"   bigint      NOT NULL,
    head_len   integer     NOT NULL,
    head_hash  text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
