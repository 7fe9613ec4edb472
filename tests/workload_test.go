package tests

import (
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// newSeed returns E2E_SEED if set, else a fresh seed, and logs it.
func newSeed(tb testing.TB) uint64 {
	tb.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			tb.Fatalf("E2E_SEED=%q: %v", s, err)
		}
		seed = v
	}
	tb.Logf("workload seed %d (replay with E2E_SEED=%d)", seed, seed)
	return seed
}

// schemaLines create the workload's tables; safe to run again.
var schemaLines = []string{
	"BEGIN; CREATE TABLE IF NOT EXISTS w1(id INTEGER PRIMARY KEY, name TEXT, data BLOB, n INTEGER); " +
		"CREATE INDEX IF NOT EXISTS w1_name ON w1(name); " +
		"CREATE TABLE IF NOT EXISTS w2(k TEXT PRIMARY KEY, v BLOB, r REAL) WITHOUT ROWID; " +
		"CREATE TABLE IF NOT EXISTS w3(id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT); COMMIT;",
}

// workload generates n randomized transactions (each one line of SQL: one
// autocommit statement, a BEGIN…COMMIT of several statements, a rolled-back
// transaction, or one with a rolled-back savepoint) over the tables of
// schemaLines, which it includes first. The same seed gives the same SQL;
// randomblob() makes the data itself differ per run, which is fine because
// restores are compared with the source, not with the generator.
func workload(seed uint64, n int) []string {
	g := &gen{r: rand.New(rand.NewPCG(seed, 0x6c697465))}
	lines := append([]string(nil), schemaLines...)
	for i := 0; i < n; i++ {
		switch p := g.r.IntN(100); {
		case p < 45:
			lines = append(lines, g.stmt())
		case p < 88:
			lines = append(lines, "BEGIN; "+g.stmts(2+g.r.IntN(5))+" COMMIT;")
		case p < 94:
			lines = append(lines, "BEGIN; "+g.stmts(1+g.r.IntN(3))+" ROLLBACK;")
		default:
			lines = append(lines, "BEGIN; "+g.stmts(1)+" SAVEPOINT sp; "+g.stmts(2)+" ROLLBACK TO sp; "+g.stmts(1)+" RELEASE sp; COMMIT;")
		}
	}
	return lines
}

type gen struct{ r *rand.Rand }

func (g *gen) stmts(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = g.stmt()
	}
	return strings.Join(s, " ")
}

// stmt is one random data statement.
func (g *gen) stmt() string {
	r := g.r
	switch p := r.IntN(100); {
	case p < 35:
		return fmt.Sprintf("INSERT INTO w1(name, data, n) VALUES(%s, %s, %d);", g.text(1+r.IntN(60)), g.blob(), r.Int64N(1<<40))
	case p < 45:
		return fmt.Sprintf("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) "+
			"INSERT INTO w1(name, data, n) SELECT %s||i, randomblob(%d), i FROM c;",
			1+r.IntN(40), g.text(8), r.IntN(3000))
	case p < 60:
		return fmt.Sprintf("INSERT OR REPLACE INTO w2(k, v, r) VALUES('k%03d', %s, %g);", r.IntN(300), g.blob(), r.NormFloat64()*1e6)
	case p < 70:
		return fmt.Sprintf("INSERT INTO w3(body) VALUES(%s);", g.text(r.IntN(6000)))
	case p < 82:
		m := 2 + r.IntN(9)
		return fmt.Sprintf("UPDATE w1 SET data = %s, n = n + 1, name = %s WHERE id %% %d = %d;", g.blob(), g.text(12), m, r.IntN(m))
	case p < 88:
		return fmt.Sprintf("UPDATE w2 SET v = randomblob(%d) WHERE k < 'k%03d';", r.IntN(9000), r.IntN(300))
	case p < 95:
		m := 3 + r.IntN(12)
		return fmt.Sprintf("DELETE FROM w1 WHERE id %% %d = %d;", m, r.IntN(m))
	default:
		return fmt.Sprintf("DELETE FROM w3 WHERE id IN (SELECT id FROM w3 ORDER BY id LIMIT %d);", 1+r.IntN(5))
	}
}

// blob is a random BLOB expression: a hex literal, or randomblob() with an
// occasional overflow-page-sized value.
func (g *gen) blob() string {
	r := g.r
	switch p := r.IntN(100); {
	case p < 5:
		return "NULL"
	case p < 55:
		b := make([]byte, r.IntN(1500))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return "X'" + hex.EncodeToString(b) + "'"
	case p < 95:
		return fmt.Sprintf("randomblob(%d)", r.IntN(20000))
	default:
		return fmt.Sprintf("randomblob(%d)", 50000+r.IntN(200000))
	}
}

// textRunes are what random text is made of: ASCII, accents, CJK, emoji, a
// quote (escaped) and a semicolon (inside a literal, so not a statement end).
var textRunes = []rune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789     éüß漢字🙂';,.-_")

// text is a random SQL string literal of n characters.
func (g *gen) text(n int) string {
	var sb strings.Builder
	sb.WriteByte('\'')
	for i := 0; i < n; i++ {
		c := textRunes[g.r.IntN(len(textRunes))]
		if c == '\'' {
			sb.WriteString("''")
			continue
		}
		sb.WriteRune(c)
	}
	sb.WriteByte('\'')
	return sb.String()
}
