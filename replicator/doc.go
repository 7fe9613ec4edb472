// Package replicator turns committed SQLite transactions into LTX files,
// spools them durably on local disk and ships them to a replica.Client in
// TXID order from a background goroutine.
//
// It keeps the rolling database checksum of LTX (ChecksumFlag | XOR over
// pages of CRC64-ISO(pgno ‖ data), the lock page excluded) as a table of
// per-page checksums, so every file carries pre- and post-apply checksums.
// Nothing here touches SQLite: page data arrives through a PageReader.
package replicator
