module github.com/litestream-vfs/litestream_vfs

go 1.26.8

require (
	github.com/mattn/go-sqlite3 v1.14.53
	github.com/superfly/ltx v0.5.3
)

require github.com/pierrec/lz4/v4 v4.1.33 // indirect
