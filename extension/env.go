package main

/*
#include <stdlib.h>
extern char **environ;
*/
import "C"

import (
	"os"
	"strings"
	"unsafe"
)

// envPrefixes are the variables the extension and the libraries it calls
// read (LITESTREAM_*, and AWS_* for S3).
var envPrefixes = []string{"LITESTREAM_", "AWS_"}

// syncEnv copies the process's environment as it is now into the Go
// runtime's copy, for the variables of envPrefixes. The Go runtime of a
// shared library takes the environment the process was started with: a
// LITESTREAM_REPLICA_URL (or S3 credentials) the application set itself
// before loading the extension or opening a database (os.environ in
// Python, setenv in C) was ignored (found by an attack). Called at load
// and at each open.
func syncEnv() {
	now := map[string]string{}
	for p := C.environ; p != nil && *p != nil; p = (**C.char)(unsafe.Add(unsafe.Pointer(p), unsafe.Sizeof(*p))) {
		kv := C.GoString(*p)
		k, v, ok := strings.Cut(kv, "=")
		if ok && watched(k) {
			now[k] = v
		}
	}
	for _, kv := range os.Environ() {
		if k, _, ok := strings.Cut(kv, "="); ok && watched(k) {
			if _, still := now[k]; !still {
				_ = os.Unsetenv(k)
			}
		}
	}
	for k, v := range now {
		if cur, ok := os.LookupEnv(k); !ok || cur != v {
			_ = os.Setenv(k, v)
		}
	}
}

func watched(name string) bool {
	for _, p := range envPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
