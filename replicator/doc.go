// Package replicator turns committed SQLite transactions into LTX files,
// spools them durably on local disk and ships them to a replica.Client in
// TXID order from a background goroutine.
//
// It keeps the rolling database checksum of LTX (ChecksumFlag | XOR over
// pages of CRC64-ISO(pgno ‖ data), the lock page excluded) as a table of
// per-page checksums, so every file carries pre- and post-apply checksums.
// Nothing here touches SQLite: page data arrives through a PageReader.
//
// Files by role: replicator.go (the Replicator, its lifecycle and status),
// build.go (LTX files built into the spool: snapshots and appended
// transactions), spool.go (the spool's segment format), committer.go
// (fdatasync of captured files, spool overflow), uploader.go (shipping
// spooled files, merged, to the replica), position.go (the replica's
// position: saved locally, confirmed with the store), reconcile.go (resuming
// a spooled chain against the database), pacer.go (spacing recurring work
// under load), checksums.go and encoder.go.
package replicator
