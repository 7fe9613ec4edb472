//go:build !linux

package threads

func background() {}
