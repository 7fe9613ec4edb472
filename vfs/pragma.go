package vfs

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrUnknownPragma is Pragma's error for a litestream_* name it does not
// know.
var ErrUnknownPragma = errors.New("unknown pragma")

// PragmaPrefix starts the names of the PRAGMAs the litestream VFS answers
// (SQLITE_FCNTL_PRAGMA); others pass through to SQLite.
const PragmaPrefix = "litestream_"

// Pragma answers PRAGMA name (value: its argument, hasValue whether one
// was given), with the names Litestream's own VFS uses where the meaning
// matches, for clients that can only send PRAGMAs:
//
//	litestream_txid    the replicated TXID (what litestream_sync returns)
//	litestream_lag     seconds since the oldest transaction not yet in the replica was captured (0: caught up)
//	litestream_status  litestream_status()'s JSON
//
// All are read-only. The name is matched case-insensitively, as SQLite
// matches its own.
func (db *DB) Pragma(name string, hasValue bool) (string, error) {
	lower := strings.ToLower(name)
	switch lower {
	case "litestream_txid", "litestream_lag", "litestream_status":
	default:
		return "", fmt.Errorf("%w: %s (the litestream VFS knows litestream_txid, litestream_lag and litestream_status)", ErrUnknownPragma, name)
	}
	if hasValue {
		return "", fmt.Errorf("PRAGMA %s is read-only: it takes no value", lower)
	}
	st := db.Status()
	switch lower {
	case "litestream_txid":
		return strconv.FormatUint(st.ReplicatedTXID, 10), nil
	case "litestream_lag":
		return strconv.FormatFloat(float64(st.LagMS)/1000, 'f', 3, 64), nil
	default:
		b, err := json.Marshal(st)
		return string(b), err
	}
}
