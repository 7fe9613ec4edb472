package restore

import "errors"

var (
	// ErrEmptyReplica is returned (wrapped) when the replica holds no LTX
	// files, including when its location does not exist.
	ErrEmptyReplica = errors.New("replica has no ltx files")
	// ErrNoSnapshot is returned (wrapped) when no snapshot exists at or
	// before the target TXID.
	ErrNoSnapshot = errors.New("no snapshot")
	// ErrTXIDGap is returned (wrapped) when no contiguous chain of files
	// reaches the target TXID.
	ErrTXIDGap = errors.New("txid gap")
	// ErrTargetNotFound is returned (wrapped) when the requested TXID is
	// past the replica's latest TXID or no file ends at it.
	ErrTargetNotFound = errors.New("target txid not found")
	// ErrBeforeFirst is returned (wrapped) by TXIDAt when the requested
	// time is before the first restorable state.
	ErrBeforeFirst = errors.New("timestamp before first restorable state")
	// ErrChecksumMismatch is returned (wrapped) when a file checksum, a
	// pre-apply checksum or the restored database's checksum is wrong.
	ErrChecksumMismatch = errors.New("checksum mismatch")
	// ErrInvalidFile is returned (wrapped) for an LTX file that is
	// truncated, malformed or does not match its name.
	ErrInvalidFile = errors.New("invalid ltx file")
	// ErrOutputExists is returned (wrapped) when the output file exists
	// and Options.Overwrite is false.
	ErrOutputExists = errors.New("output file exists")
	// ErrOutputInUse is returned (wrapped) when the output path has a
	// -wal or -journal file beside it, which SQLite would apply to the
	// restored database.
	ErrOutputInUse = errors.New("output database has a wal or journal file")
	// ErrVerify is returned (wrapped, with the cause) when Options.Verify
	// rejects the restored database.
	ErrVerify = errors.New("verify restored database")
)
