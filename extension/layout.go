package main

/*
#include "shim.h"
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/litestream-vfs/litestream_vfs/vfs"
)

// sharedLayoutErrors compares struct lsShared (shim.h) with the offsets
// vfs/shared.go uses for the same file.
func sharedLayoutErrors() []string {
	var s C.lsShared
	c := map[string]uintptr{
		"magic": unsafe.Offsetof(s.magic), "version": unsafe.Offsetof(s.version),
		"seq": unsafe.Offsetof(s.seq), "ownerWaiting": unsafe.Offsetof(s.ownerWaiting),
		"urgent": unsafe.Offsetof(s.urgent), "pub": unsafe.Offsetof(s.pub),
		"pubWaiters": unsafe.Offsetof(s.pubWaiters), "ownerPid": unsafe.Offsetof(s.ownerPid),
		"restarts": unsafe.Offsetof(s.restarts), "gateTimeouts": unsafe.Offsetof(s.gateTimeouts),
		"syncReq": unsafe.Offsetof(s.syncReq), "lock": unsafe.Offsetof(s.lock),
		"capSalt1": unsafe.Offsetof(s.capSalt1), "capSalt2": unsafe.Offsetof(s.capSalt2),
		"capFrames": unsafe.Offsetof(s.capFrames), "following": unsafe.Offsetof(s.following),
		"capTXID": unsafe.Offsetof(s.capTXID), "replTXID": unsafe.Offsetof(s.replTXID),
		"stepReq": unsafe.Offsetof(s.stepReq), "stepSeq": unsafe.Offsetof(s.stepSeq),
		"state": unsafe.Offsetof(s.state), "pendingBytes": unsafe.Offsetof(s.pendingBytes),
		"reason": unsafe.Offsetof(s.reason), "lastError": unsafe.Offsetof(s.lastError),
		"wantTXID": unsafe.Offsetof(s.wantTXID), "commitLock": unsafe.Offsetof(s.commitLock),
		"commitSalt1": unsafe.Offsetof(s.commitSalt1), "commitSalt2": unsafe.Offsetof(s.commitSalt2),
		"commitFrames": unsafe.Offsetof(s.commitFrames), "syncTXID": unsafe.Offsetof(s.syncTXID),
	}
	var errs []string
	for name, off := range vfs.SharedLayout {
		if got, ok := c[name]; !ok || got != off {
			errs = append(errs, fmt.Sprintf("%s: C offset %d (present %v), Go offset %d", name, got, ok, off))
		}
	}
	if len(c) != len(vfs.SharedLayout) {
		errs = append(errs, fmt.Sprintf("C struct has %d fields listed, Go %d", len(c), len(vfs.SharedLayout)))
	}
	return errs
}
