package vfs

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestPragma(t *testing.T) {
	f := newFakeDB(t)
	f.start()
	f.commit(map[uint32]byte{2: 0x22}, true)
	txid := f.sync()
	tests := []struct {
		name     string
		hasValue bool
		want     func(string) bool
		err      error  // errors.Is
		errText  string // or contained in the message
	}{
		{name: "litestream_txid", want: func(s string) bool { return s == strconv.FormatUint(uint64(txid), 10) }},
		{name: "LITESTREAM_TXID", want: func(s string) bool { return s == strconv.FormatUint(uint64(txid), 10) }},
		{name: "litestream_lag", want: func(s string) bool { return s == "0.000" }},
		{name: "litestream_status", want: func(s string) bool {
			var st Status
			return json.Unmarshal([]byte(s), &st) == nil && st.ReplicatedTXID == uint64(txid)
		}},
		{name: "litestream_bogus", err: ErrUnknownPragma},
		{name: "litestream_", err: ErrUnknownPragma},
		{name: "litestream_txid", hasValue: true, errText: "read-only"},
	}
	for _, tt := range tests {
		got, err := f.db.Pragma(tt.name, tt.hasValue)
		switch {
		case tt.err != nil || tt.errText != "":
			if err == nil || (tt.err != nil && !errors.Is(err, tt.err)) || !strings.Contains(err.Error(), tt.errText) {
				t.Errorf("Pragma(%q, %v) = %q, %v; want an error (%v %q)", tt.name, tt.hasValue, got, err, tt.err, tt.errText)
			}
		case err != nil || !tt.want(got):
			t.Errorf("Pragma(%q, %v) = %q, %v", tt.name, tt.hasValue, got, err)
		}
	}
}
