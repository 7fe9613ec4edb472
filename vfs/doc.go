// Package vfs holds the per-database state behind the litestream VFS: it is
// fed by the C shim's events (through the Host interface), follows the WAL
// file, validates frames by salts and checksum chain, assembles committed
// transactions and hands them to the replicator. It is pure Go; the cgo
// side lives in extension/.
//
// The WAL format is sqlite.org/fileformat2.html#walformat.
package vfs
