package main

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"time"
	"unsafe"

	"github.com/litestream-vfs/litestream_vfs/vfs"
)

// host implements vfs.Host over one database's C state.
type host struct {
	p    *C.lsDb
	path string
}

var _ vfs.Host = (*host)(nil)

func convertEvents(ev *C.lsEvents) vfs.Events {
	return vfs.Events{
		Announced:       uint64(ev.announced),
		Acked:           uint64(ev.acked),
		Restarts:        uint64(ev.restarts),
		GateTimeouts:    uint64(ev.gateTimeouts),
		NonWALWrites:    uint64(ev.nonWalWrites),
		ExclusiveWrites: uint64(ev.exclusiveWrites),
		SnapshotBroken:  uint64(ev.snapshotBroken),
		GateWaits:       uint64(ev.gateWaits),
		GateWait:        time.Duration(ev.gateWaitNs),
		MxFrame:         uint32(ev.mxFrame),
		EndMxFrame:      uint32(ev.endMxFrame),
		EndSalt1:        uint32(ev.endSalt1),
		EndSalt2:        uint32(ev.endSalt2),
		EndChange:       uint32(ev.endChange),
		Salt1:           uint32(ev.salt1),
		Salt2:           uint32(ev.salt2),
		RestartsDone:    uint64(ev.restartsDone),
		Closes:          uint64(ev.closes),
		Closed: vfs.FileStamp{Ino: uint64(ev.closeIno), Size: int64(ev.closeSize),
			Mtime: int64(ev.closeMtimeNs), Ctime: int64(ev.closeCtimeNs)},
		WALOpen:     int(ev.nWalOpen),
		Conns:       int(ev.nConn),
		GateWaiters: int(ev.gateWaiters),
		Shutdown:    ev.shutdown != 0,
		Sync: vfs.SyncEvents{Waits: uint64(ev.syncWaits), Wait: time.Duration(ev.syncWaitNs),
			Timeouts: uint64(ev.syncTimeouts), Degraded: uint64(ev.syncDegraded), Refused: uint64(ev.syncRefused)},
	}
}

func (h *host) Wait(seen uint64, timeout time.Duration) (uint64, vfs.Events) {
	return h.wait(seen, timeout, 0)
}

func (h *host) WaitGate(timeout time.Duration) vfs.Events {
	_, ev := h.wait(0, timeout, 1)
	return ev
}

func (h *host) wait(seen uint64, timeout time.Duration, gateOnly C.int) (uint64, vfs.Events) {
	us := int64(-1)
	if timeout >= 0 {
		us = int64(timeout / time.Microsecond)
	}
	var ev C.lsEvents
	ver := C.ls_wait(h.p, C.uint64_t(seen), C.int64_t(us), gateOnly, &ev)
	return uint64(ver), convertEvents(&ev)
}

func (h *host) Poke()   { C.ls_poke(h.p) }
func (h *host) Notify() { C.ls_notify(h.p) }

func (h *host) ShareState(addr unsafe.Pointer) { C.ls_set_shared(h.p, addr) }

func (h *host) WALIndex() (vfs.WALIndex, bool) {
	var mx, s1, s2, chg C.uint32_t
	if C.ls_walindex(h.p, &mx, &s1, &s2, &chg) == 0 {
		return vfs.WALIndex{}, false
	}
	return vfs.WALIndex{MxFrame: uint32(mx), Salt1: uint32(s1), Salt2: uint32(s2), Change: uint32(chg)}, true
}

func (h *host) Events() vfs.Events {
	var ev C.lsEvents
	C.ls_get_events(h.p, &ev)
	return convertEvents(&ev)
}

func (h *host) Ack(seq uint64, salt1, salt2, frames uint32) {
	C.ls_ack(h.p, C.uint64_t(seq), C.uint32_t(salt1), C.uint32_t(salt2), C.uint32_t(frames))
}
func (h *host) BeginSnapshot() { C.ls_snapshot_begin(h.p) }
func (h *host) EndSnapshot()   { C.ls_snapshot_end(h.p) }
func (h *host) SetAttached(b bool) {
	v := 0
	if b {
		v = 1
	}
	C.ls_set_attached(h.p, C.int(v))
}

// SQLite's primary result codes for a lock another connection holds.
const (
	sqliteBusy   = 5
	sqliteLocked = 6
)

func (h *host) HoldReadTxn() (func(), error) {
	cpath := C.CString(h.path)
	defer C.free(unsafe.Pointer(cpath))
	var cerr *C.char
	var rc C.int
	db := C.ls_reader_begin(cpath, &cerr, &rc)
	if db == nil {
		msg := "unknown error"
		if cerr != nil {
			msg = C.GoString(cerr)
			C.free(unsafe.Pointer(cerr))
		}
		if primary := rc & 0xff; primary == sqliteBusy || primary == sqliteLocked {
			return nil, fmt.Errorf("begin read transaction: %w: %s", vfs.ErrBusy, msg)
		}
		return nil, fmt.Errorf("begin read transaction: %s", msg)
	}
	return func() { C.ls_reader_end(db) }, nil
}

func (h *host) OpenDBFile() (vfs.DBFile, error) {
	if _, err := os.Stat(h.path); errors.Is(err, os.ErrNotExist) {
		return emptyFile{}, nil // SQLite creates it on first write
	}
	cpath := C.CString(h.path)
	defer C.free(unsafe.Pointer(cpath))
	var rc C.int
	f := C.ls_dbfile_open(cpath, &rc)
	if f == nil {
		return nil, fmt.Errorf("open %s: sqlite error %d", h.path, int(rc))
	}
	return &dbFile{f: f, size: -1}, nil
}

// dbFile reads the database through the real VFS (see ls_dbfile_open).
type dbFile struct {
	f    unsafe.Pointer
	size int64
}

func (d *dbFile) Size() (int64, error) {
	var sz C.int64_t
	if rc := C.ls_dbfile_size(d.f, &sz); rc != 0 {
		return 0, fmt.Errorf("file size: sqlite error %d", int(rc))
	}
	d.size = int64(sz)
	return d.size, nil
}

// ReadAt reads len(b) bytes at off. Past the end of the file it returns the
// bytes read and io.EOF, like os.File.
func (d *dbFile) ReadAt(b []byte, off int64) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	size, err := d.Size()
	if err != nil {
		return 0, err
	}
	n := len(b)
	if off >= size {
		return 0, ioEOF
	}
	if off+int64(n) > size {
		n = int(size - off)
	}
	buf := C.malloc(C.size_t(n))
	defer C.free(buf)
	if rc := C.ls_dbfile_read(d.f, buf, C.int(n), C.int64_t(off)); rc != 0 {
		return 0, fmt.Errorf("read db at %d: sqlite error %d", off, int(rc))
	}
	copy(b, unsafe.Slice((*byte)(buf), n))
	if n < len(b) {
		return n, ioEOF
	}
	return n, nil
}

func (d *dbFile) Close() error {
	C.ls_dbfile_close(d.f)
	return nil
}

// emptyFile stands for a database file that does not exist yet.
type emptyFile struct{}

func (emptyFile) Size() (int64, error)              { return 0, nil }
func (emptyFile) ReadAt([]byte, int64) (int, error) { return 0, ioEOF }
func (emptyFile) Close() error                      { return nil }
