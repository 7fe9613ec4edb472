// Package restore rebuilds a SQLite database file from a replica's LTX
// files (github.com/superfly/ltx).
//
// Plan picks the files: the newest snapshot (a file with MinTXID 1, at any
// level) at or before the target TXID, then a contiguous chain of files
// (each MinTXID is the previous MaxTXID+1) from any level up to the target.
// Restore fetches those files (the newer files of a remote replica
// downloaded ahead, several at once, Options.Parallelism, into temporary
// files next to the output; the snapshot, and a directory replica's files,
// read as they are applied) and applies them newest first to a temporary database file, so
// that every page is written once, from the newest file that holds it. It
// checks every checksum LTX carries (file checksums, each file's pre-apply
// checksum against the post-apply checksum of the file before it, and the
// rolling database checksum of the result), lets the caller verify the
// database (for example PRAGMA integrity_check), then renames it into
// place. On any error the output path is left untouched.
//
// The rolling database checksum is ltx.ChecksumFlag | XOR over pages of
// ltx.ChecksumPage(pgno, data), the lock page (the page holding byte 2^30,
// sqlite.org/fileformat2.html#the_lock_byte_page) excluded.
//
// The package is pure Go and builds with CGO_ENABLED=0.
package restore
