// Package file implements a replica.Client that stores LTX files in a local
// directory, laid out as "<dir>/ltx/<level decimal>/<min>-<max>.ltx"
// (replica.LTXFilePath), the layout of Litestream 0.5's file replica.
//
// Writes are atomic and durable: a temporary file is written, fsynced and
// renamed into place, and the directory is fsynced.
package file
