package main

import (
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"

	_ "github.com/mattn/go-sqlite3" // database/sql driver "sqlite3"
)

// errIntegrity is returned when PRAGMA integrity_check reports problems.
var errIntegrity = errors.New("integrity check failed")

// integrityCheck opens the database at path read-only and immutable (no
// locks, no -wal or -shm files) and runs PRAGMA integrity_check, which must
// return the single row "ok".
func integrityCheck(path string) error {
	u := url.URL{Scheme: "file", Path: path, RawQuery: "mode=ro&immutable=1"}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer func() { _ = db.Close() }()

	rows, err := db.Query("PRAGMA integrity_check")
	if err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	defer func() { _ = rows.Close() }()
	var msgs []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return fmt.Errorf("integrity check: %w", err)
		}
		msgs = append(msgs, s)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if len(msgs) == 1 && msgs[0] == "ok" {
		return nil
	}
	const maxShown = 3
	more := ""
	if len(msgs) > maxShown {
		more = fmt.Sprintf(" (and %d more)", len(msgs)-maxShown)
		msgs = msgs[:maxShown]
	}
	return fmt.Errorf("%w: %s%s", errIntegrity, strings.Join(msgs, "; "), more)
}
